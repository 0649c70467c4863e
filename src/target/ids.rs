//! Ids of what a target holds, typed so that one cannot be passed where
//! another is meant (a project id where a collection id goes, say). They
//! print and serialize as the bare numbers the wire and the catalog use.

macro_rules! id {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id!(
    /// A data collection on a Synapse backend.
    CollectionId(u64)
);
id!(
    /// A storage on a Synapse backend.
    StorageId(u64)
);
id!(
    /// A project, in which apply creates a task per new unit.
    ProjectId(u64)
);
id!(
    /// A data unit, as the target numbered it.
    UnitId(i64)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_their_numbers_on_the_wire() {
        assert_eq!(CollectionId(41).to_string(), "41");
        assert_eq!(
            serde_json::to_string(&(ProjectId(7), UnitId(-1))).unwrap(),
            "[7,-1]"
        );
    }
}
