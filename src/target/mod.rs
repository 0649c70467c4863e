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

use crate::spill::{Keyed, KeyedRun, Record, SortedRun, codec};

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
///
/// The planner asks for units a window of keys at a time, windows in
/// ascending key order: a target too large for memory answers from a sorted
/// stream read forward once ([`SortedUnits`]).
pub trait TargetView: Send + Sync {
    /// Existing units by unit key, for the keys asked (keys scoped to the
    /// collection). Any order is answered; ascending order is fastest.
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

/// A target's unit under its key, as a spill file holds it; ordered by key,
/// then by its place in the listing (units that share a key stay in listing
/// order, and two units are equal only when they are one, so runs sort in
/// place).
#[derive(Debug, Clone)]
pub struct KeyedUnit {
    pub key: String,
    /// Its place in the target's listing.
    pub seq: u64,
    pub unit: ExistingUnit,
}

impl PartialEq for KeyedUnit {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for KeyedUnit {}
impl PartialOrd for KeyedUnit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for KeyedUnit {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key).then(self.seq.cmp(&other.seq))
    }
}

impl Keyed for KeyedUnit {
    fn sort_key(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.key)
    }
}

impl Record for KeyedUnit {
    const EQUAL_IS_SAME: bool = true;

    fn weight(&self) -> usize {
        let u = &self.unit;
        self.key.len()
            + u.id.len()
            + u.meta_json.len()
            + u.files
                .iter()
                .map(|(s, h)| s.len() + h.len() + 48)
                .sum::<usize>()
            + 96
    }
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_str(out, &self.key);
        codec::put_u64(out, self.seq);
        codec::put_str(out, &self.unit.id);
        codec::put_str(out, &self.unit.meta_json);
        codec::put_u64(out, self.unit.files.len() as u64);
        for (spec, sha) in &self.unit.files {
            codec::put_str(out, spec);
            codec::put_str(out, sha);
        }
    }
    fn decode(input: &mut &[u8]) -> std::io::Result<Self> {
        let key = codec::get_str(input)?;
        let seq = codec::get_u64(input)?;
        let id = codec::get_str(input)?;
        let meta_json = codec::get_str(input)?;
        let n = codec::get_u64(input)?;
        let mut files = Vec::new();
        for _ in 0..n {
            files.push((codec::get_str(input)?, codec::get_str(input)?));
        }
        Ok(Self {
            key,
            seq,
            unit: ExistingUnit {
                id,
                files,
                meta_json,
            },
        })
    }
}

/// A target's units sorted by key, held in memory or spilled to one run file
/// ([`KeyedRun`]): asked a window of keys at a time, in ascending order.
pub struct SortedUnits(KeyedRun<KeyedUnit>);

impl SortedUnits {
    pub fn new(run: SortedRun<KeyedUnit>) -> Self {
        Self(KeyedRun::new(run))
    }

    pub fn spilled(&self) -> bool {
        self.0.spilled()
    }

    pub fn lookup(&mut self, keys: &[&str]) -> std::io::Result<HashMap<String, Vec<ExistingUnit>>> {
        let mut out: HashMap<String, Vec<ExistingUnit>> = HashMap::new();
        for &key in keys {
            let found = self.0.find(key)?;
            if !found.is_empty() {
                out.insert(key.to_owned(), found.into_iter().map(|u| u.unit).collect());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spill::Sorter;

    fn unit(key: &str, id: usize, seq: u64) -> KeyedUnit {
        KeyedUnit {
            key: key.to_owned(),
            seq,
            unit: ExistingUnit {
                id: id.to_string(),
                files: vec![("image".into(), format!("{id:040x}"))],
                meta_json: format!("{{\"n\":{id}}}"),
            },
        }
    }

    /// 600 units under 300 keys (every third key twice, in listing order),
    /// pushed in a scrambled order.
    fn sorted(budget: usize, dir: &std::path::Path) -> SortedUnits {
        let mut sorter = Sorter::new(dir, budget);
        let mut rng = fastrand::Rng::with_seed(3);
        let mut ids: Vec<usize> = (0..400).collect();
        rng.shuffle(&mut ids);
        for (seq, id) in ids.into_iter().enumerate() {
            let key = format!("k{:03}", if id >= 300 { (id - 300) * 3 } else { id });
            sorter.push(unit(&key, id, seq as u64)).unwrap();
        }
        SortedUnits::new(sorter.finish_to_run().unwrap())
    }

    #[test]
    fn spilled_units_answer_every_lookup_as_held_ones_do() {
        let dir = tempfile::tempdir().unwrap();
        let mut held = sorted(usize::MAX, dir.path());
        let mut spilled = sorted(2000, dir.path());
        assert!(!held.spilled() && spilled.spilled());
        let keys: Vec<String> = (0..320).map(|i| format!("k{i:03}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        // Windows in key order, a window repeated, then keys out of order.
        let mut asks: Vec<Vec<&str>> = keys.chunks(64).map(<[_]>::to_vec).collect();
        asks.push(keys[100..130].to_vec());
        asks.push(vec!["k250", "k003", "k319", "k000"]);
        for ask in &asks {
            let a = held.lookup(ask).unwrap();
            let b = spilled.lookup(ask).unwrap();
            assert_eq!(a, b, "{ask:?}");
        }
        let both = held.lookup(&["k003", "k004", "k999"]).unwrap();
        assert_eq!(both["k003"].len(), 2, "two units under one key");
        assert_eq!(both["k004"].len(), 1);
        assert!(!both.contains_key("k999"));
    }
}
