//! Files planned with `checksum: apply`: the plan names them by URL, size and
//! ETag, and their SHA-1 is learned while the executor stores or uploads them,
//! so each is read once. What was learned is journaled, so a rerun (after a
//! crash, or of the next plan) knows those files without reading them again.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use super::journal::Record;
use crate::plan::model::{PlannedFile, PlannedUnit};

/// SHA-1s learned for deferred files, by [`PlannedFile::identity`].
#[derive(Debug, Default)]
pub struct Learned(HashMap<String, String>);

impl Learned {
    pub fn new(from_journal: HashMap<String, String>) -> Self {
        Self(from_journal)
    }

    /// Records what `f` turned out to be; returns the journal record for it.
    pub fn insert(&mut self, f: &PlannedFile, sha1: &str) -> Record {
        self.0.insert(f.identity(), sha1.to_owned());
        Record::Learned {
            path: f.shown(),
            size: f.size,
            etag: f.etag.clone(),
            sha1: sha1.to_owned(),
        }
    }

    /// The deferred files of `units` not learned yet, once each: identity → file.
    pub fn unknown<'a>(&self, units: &[&'a PlannedUnit]) -> BTreeMap<String, &'a PlannedFile> {
        let mut out = BTreeMap::new();
        for u in units {
            for f in u.files.values().filter(|f| f.sha1.is_none()) {
                let id = f.identity();
                if !self.0.contains_key(&id) {
                    out.insert(id, f);
                }
            }
        }
        out
    }

    /// `units` with every SHA-1 learned so far filled in; units without
    /// deferred files are borrowed as they are.
    pub fn fill<'a>(&self, units: &[&'a PlannedUnit]) -> Vec<Cow<'a, PlannedUnit>> {
        units
            .iter()
            .map(|u| {
                if u.files.values().all(|f| f.sha1.is_some()) {
                    return Cow::Borrowed(*u);
                }
                let mut filled = (*u).clone();
                for f in filled.files.values_mut() {
                    if f.sha1.is_none() {
                        f.sha1 = self.0.get(&f.identity()).cloned();
                    }
                }
                Cow::Owned(filled)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{Action, SortedMap};

    fn unit(key: &str, files: &[(&str, Option<&str>)]) -> PlannedUnit {
        PlannedUnit {
            key: key.into(),
            action: Action::Create,
            files: SortedMap::from_sorted(
                files
                    .iter()
                    .map(|(path, sha)| {
                        (
                            format!("spec_{path}").into(),
                            PlannedFile {
                                root: "s3://b/p".into(),
                                path: (*path).into(),
                                size: 3,
                                sha1: sha.map(str::to_owned),
                                etag: sha.is_none().then(|| "\"e1\"".to_owned()),
                            },
                        )
                    })
                    .collect(),
            ),
            meta: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            problems: Vec::new(),
            conflict: None,
        }
    }

    #[test]
    fn learned_files_are_filled_in_and_journaled_by_identity() {
        let a = unit("a", &[("a.png", None), ("a.json", Some("aa"))]);
        let b = unit("b", &[("b.png", Some("bb"))]);
        let mut learned = Learned::default();
        let units = [&a, &b];
        let unknown = learned.unknown(&units);
        assert_eq!(unknown.len(), 1);
        let f = *unknown.values().next().unwrap();
        let record = learned.insert(f, "ff");
        assert_eq!(
            record,
            Record::Learned {
                path: "s3://b/p/a.png".into(),
                size: 3,
                etag: Some("\"e1\"".into()),
                sha1: "ff".into()
            }
        );
        assert!(learned.unknown(&units).is_empty());
        let filled = learned.fill(&units);
        assert!(matches!(filled[1], Cow::Borrowed(_)));
        let shas: Vec<_> = filled[0].files.checksums().collect();
        assert_eq!(shas, [("spec_a.json", "aa"), ("spec_a.png", "ff")]);
    }
}
