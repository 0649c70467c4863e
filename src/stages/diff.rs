//! Diff: what to do with one valid unit, given what the target holds under
//! its key.

use crate::target::ExistingUnit;

/// The decision for a valid unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The target has no unit with this key.
    Create,
    /// The target's unit has the same files and meta.
    Unchanged,
    /// The target holds other content under this key (the reason says what).
    Conflict(String),
}

/// One of the unit's files as the diff compares it: its spec, and its SHA-1
/// in hex (`None` when deferred to apply, for a remote source).
pub type FileCheck<'a> = (&'a str, Option<&'a str>);

/// Decides a valid unit's fate. `files` is sorted by spec (an iterator, so
/// the planner's hot loop allocates nothing for it); `meta_json` is the unit's
/// merged meta.
pub fn decide<'a>(
    existing: Option<&[ExistingUnit]>,
    files: impl Iterator<Item = FileCheck<'a>> + Clone,
    meta_json: &str,
) -> Verdict {
    match existing {
        None | Some([]) => Verdict::Create,
        Some([one]) => {
            // A deferred file's SHA-1 is not known: its spec must match.
            let same_files = if files.clone().any(|(_, sha)| sha.is_none()) {
                one.same_specs(files.map(|(spec, _)| spec))
            } else {
                one.same_files(files.map(|(spec, sha)| (spec, sha.unwrap_or_default())))
            };
            let same_meta = one.same_meta(meta_json);
            if same_files && same_meta {
                return Verdict::Unchanged;
            }
            let mut what = Vec::new();
            if !same_files {
                what.push("files differ");
            }
            if !same_meta {
                what.push("meta differs");
            }
            Verdict::Conflict(format!(
                "target unit {} has the same key; {}",
                one.id,
                what.join(", ")
            ))
        }
        Some(many) => Verdict::Conflict(format!(
            "the target has {} units with this key ({})",
            many.len(),
            many.iter()
                .map(|u| u.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(id: &str, files: &[(&str, &str)], meta: &str) -> ExistingUnit {
        ExistingUnit {
            id: id.to_owned(),
            files: files
                .iter()
                .map(|(s, h)| ((*s).to_owned(), (*h).to_owned()))
                .collect(),
            meta_json: meta.to_owned(),
        }
    }

    #[test]
    fn a_key_the_target_lacks_is_created() {
        assert_eq!(
            decide(None, [("image", Some("aa"))].iter().copied(), "{}"),
            Verdict::Create
        );
        assert_eq!(
            decide(Some(&[]), [("image", Some("aa"))].iter().copied(), "{}"),
            Verdict::Create
        );
    }

    #[test]
    fn same_files_and_meta_by_value_is_unchanged() {
        let theirs = [unit(
            "7",
            &[("image", "aa"), ("label", "bb")],
            r#"{"a":1,"b":2}"#,
        )];
        let mine = [("image", Some("aa")), ("label", Some("bb"))];
        assert_eq!(
            decide(Some(&theirs), mine.iter().copied(), r#"{"b":2.0,"a":1}"#),
            Verdict::Unchanged
        );
    }

    #[test]
    fn a_conflict_says_what_differs() {
        let theirs = [unit("7", &[("image", "aa")], r#"{"a":1}"#)];
        assert_eq!(
            decide(
                Some(&theirs),
                [("image", Some("ff"))].iter().copied(),
                r#"{"a":1}"#
            ),
            Verdict::Conflict("target unit 7 has the same key; files differ".into())
        );
        assert_eq!(
            decide(
                Some(&theirs),
                [("image", Some("ff"))].iter().copied(),
                r#"{"a":2}"#
            ),
            Verdict::Conflict("target unit 7 has the same key; files differ, meta differs".into())
        );
        // One spec more on our side is a difference too.
        assert!(matches!(
            decide(
                Some(&theirs),
                [("image", Some("aa")), ("label", Some("bb"))].into_iter(),
                r#"{"a":1}"#
            ),
            Verdict::Conflict(_)
        ));
    }

    #[test]
    fn deferred_files_compare_by_spec_only() {
        let theirs = [unit("7", &[("image", "aa")], "{}")];
        assert_eq!(
            decide(Some(&theirs), [("image", None)].iter().copied(), "{}"),
            Verdict::Unchanged
        );
        assert!(matches!(
            decide(Some(&theirs), [("label", None)].iter().copied(), "{}"),
            Verdict::Conflict(_)
        ));
    }

    #[test]
    fn several_target_units_under_one_key_are_a_conflict() {
        let theirs = [unit("7", &[], "{}"), unit("9", &[], "{}")];
        assert_eq!(
            decide(Some(&theirs), [].iter().copied(), "{}"),
            Verdict::Conflict("the target has 2 units with this key (7, 9)".into())
        );
    }
}
