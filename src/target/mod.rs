//! What a target already holds, as the planner needs it to diff.
//!
//! The planner asks a [`TargetView`] for the units that carry given keys and for
//! the checksums it already stores; it never changes anything through it.

pub mod ids;
pub mod local;
pub mod synapse;

pub use ids::{CollectionId, ProjectId, StorageId, UnitId};

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

/// A unit the target already has.
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingUnit {
    pub id: String,
    /// (spec, SHA-1 hex), sorted by spec.
    pub files: Vec<(String, String)>,
    /// Its meta as JSON text.
    pub meta_json: String,
}

impl ExistingUnit {
    /// Same spec → checksum map as `mine` (sorted by spec).
    pub fn same_files<'a>(&self, mine: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        let mut theirs = self.files.iter();
        for (spec, sha) in mine {
            match theirs.next() {
                Some((s, h)) if s == spec && h == sha => {}
                _ => return false,
            }
        }
        theirs.next().is_none()
    }

    /// The same specs as `mine` (sorted), whatever their content: all a plan
    /// can compare when SHA-1s are deferred to apply.
    pub fn same_specs<'a>(&self, mine: impl Iterator<Item = &'a str>) -> bool {
        self.files.iter().map(|(s, _)| s.as_str()).eq(mine)
    }

    /// Same meta by JSON equality; identical text is the fast path.
    pub fn same_meta(&self, mine_json: &str) -> bool {
        if self.meta_json == mine_json {
            return true;
        }
        match (
            serde_json::from_str::<Json>(&self.meta_json),
            serde_json::from_str::<Json>(mine_json),
        ) {
            (Ok(a), Ok(b)) => json_equal(&a, &b),
            _ => false,
        }
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TargetError {
    #[error("cannot read the target at {path}: {message}")]
    #[diagnostic(
        code(synup::target::unreadable),
        help("check the target path, or move the damaged catalog aside")
    )]
    Unreadable { path: String, message: String },
}

/// Read-only view of a target's current state.
pub trait TargetView: Send + Sync {
    /// Existing units by unit key, for the keys asked (keys scoped to the collection).
    fn units_by_key(
        &self,
        keys: &[&str],
    ) -> Result<HashMap<String, Vec<ExistingUnit>>, TargetError>;
    /// Which of these SHA-1s the target already stores.
    fn known_checksums(&self, sha1s: &[&str]) -> Result<HashSet<String>, TargetError>;
}

/// A target that holds nothing yet (a local catalog that does not exist).
pub struct EmptyTarget;

impl TargetView for EmptyTarget {
    fn units_by_key(
        &self,
        _keys: &[&str],
    ) -> Result<HashMap<String, Vec<ExistingUnit>>, TargetError> {
        Ok(HashMap::new())
    }
    fn known_checksums(&self, _sha1s: &[&str]) -> Result<HashSet<String>, TargetError> {
        Ok(HashSet::new())
    }
}

pub use crate::json::json_equal;
