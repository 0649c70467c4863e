//! The units grouping found, packed: every key in one string, every unit's
//! files in one vector.
//!
//! Drafts live from grouping until the diff has written every unit. As a
//! `Vec` of structs with two `String`s and a `Vec` each, a unit cost about 180
//! bytes; packed, a unit of 2.3 files costs its key's bytes plus about 45.
//! They are kept as [`UnitDrafts`]: packed windows of [`WINDOW`] units on a
//! [`crate::spill::Shelf`], held while they fit their share of `--memory` and
//! on disk past it, read forward a window at a time by each later stage.

use std::sync::Arc;

use super::FileRef;
use crate::packed::PackedStrs;
use crate::spill::{Shelf, ShelfWriter};

/// Units in a window: what each later stage works on at once (the diff asks
/// the target for a window's keys, merging joins a window's sheet rows).
pub const WINDOW: usize = 8192;

/// One unit before metadata: its key, group key and files, borrowed from its
/// [`Drafts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draft<'a> {
    pub key: &'a str,
    pub group_key: &'a str,
    /// (spec, file), sorted by spec then path.
    pub files: &'a [(u32, FileRef)],
}

/// Units in the order they were pushed (grouping pushes them by key).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drafts {
    keys: PackedStrs,
    /// `None` while every group key is its unit key (no key template), so
    /// those units store their key once.
    group_keys: Option<PackedStrs>,
    files: Vec<(u32, FileRef)>,
    /// Where each unit's files end in `files`.
    file_ends: Vec<usize>,
}

impl Drafts {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn push(
        &mut self,
        key: &str,
        group_key: &str,
        files: impl IntoIterator<Item = (u32, FileRef)>,
    ) {
        if group_key != key && self.group_keys.is_none() {
            self.group_keys = Some(self.keys.clone());
        }
        self.keys.push(key);
        if let Some(g) = &mut self.group_keys {
            g.push(group_key);
        }
        self.files.extend(files);
        self.file_ends.push(self.files.len());
    }

    /// How many files the units have in all.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Unit `i`. Panics past the end, like a slice.
    pub fn get(&self, i: usize) -> Draft<'_> {
        let start = if i == 0 { 0 } else { self.file_ends[i - 1] };
        let key = self.keys.get(i);
        Draft {
            key,
            group_key: self.group_keys.as_ref().map_or(key, |g| g.get(i)),
            files: &self.files[start..self.file_ends[i]],
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Draft<'_>> + Clone + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    pub fn shrink_to_fit(&mut self) {
        self.keys.shrink_to_fit();
        if let Some(g) = &mut self.group_keys {
            g.shrink_to_fit();
        }
        self.files.shrink_to_fit();
        self.file_ends.shrink_to_fit();
    }
}

/// A window is written as its units, each as its key, its group key (empty
/// when it is the key) and its files as (spec, root, index), as varints.
impl crate::spill::Record for Drafts {
    fn weight(&self) -> usize {
        self.keys.len() * 8
            + self.keys.iter().map(str::len).sum::<usize>()
            + self
                .group_keys
                .as_ref()
                .map_or(0, |g| g.len() * 8 + g.iter().map(str::len).sum::<usize>())
            + self.files.len() * std::mem::size_of::<(u32, FileRef)>()
            + self.file_ends.len() * 8
    }

    fn encode(&self, out: &mut Vec<u8>) {
        use crate::spill::codec::{put_str, put_u64};
        put_u64(out, self.len() as u64);
        for d in self.iter() {
            put_str(out, d.key);
            if d.group_key == d.key {
                put_u64(out, 0);
            } else {
                put_u64(out, 1);
                put_str(out, d.group_key);
            }
            put_u64(out, d.files.len() as u64);
            for (spec, f) in d.files {
                put_u64(out, u64::from(*spec));
                put_u64(out, u64::from(f.root));
                put_u64(out, u64::from(f.index));
            }
        }
    }

    fn decode(input: &mut &[u8]) -> std::io::Result<Self> {
        use crate::spill::codec::{get_str, get_u64};
        let small = |v: u64| {
            u32::try_from(v).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "a draft's number past u32")
            })
        };
        let units = get_u64(input)? as usize;
        let mut out = Drafts::default();
        let mut files = Vec::new();
        for _ in 0..units {
            let key = get_str(input)?;
            let group_key = match get_u64(input)? {
                0 => None,
                _ => Some(get_str(input)?),
            };
            files.clear();
            for _ in 0..get_u64(input)? {
                let spec = small(get_u64(input)?)?;
                let root = small(get_u64(input)?)?;
                let index = small(get_u64(input)?)?;
                files.push((spec, FileRef { root, index }));
            }
            out.push(
                &key,
                group_key.as_deref().unwrap_or(&key),
                files.iter().copied(),
            );
        }
        out.shrink_to_fit();
        Ok(out)
    }
}

/// Grouping's units, as windows of [`WINDOW`] units in key order.
#[derive(Default)]
pub struct UnitDrafts {
    windows: Shelf<Drafts>,
    units: usize,
    files: usize,
}

impl UnitDrafts {
    pub fn len(&self) -> usize {
        self.units
    }

    pub fn is_empty(&self) -> bool {
        self.units == 0
    }

    /// How many files the units have in all.
    pub fn file_count(&self) -> usize {
        self.files
    }

    /// Whether the windows went to disk.
    pub fn spilled(&self) -> bool {
        self.windows.spilled()
    }

    /// Every unit in one packed list (for tests: it holds them all).
    #[cfg(test)]
    pub fn gather(&self) -> Drafts {
        let mut all = Drafts::default();
        for window in self.windows() {
            for d in window.expect("readable drafts").iter() {
                all.push(d.key, d.group_key, d.files.iter().copied());
            }
        }
        all
    }

    /// The windows from the first, each read when it is reached.
    pub fn windows(&self) -> impl Iterator<Item = std::io::Result<Arc<Drafts>>> + '_ {
        self.windows.read()
    }
}

/// Builds [`UnitDrafts`] a unit at a time, in key order.
pub struct UnitDraftsWriter {
    shelf: ShelfWriter<Drafts>,
    window: Drafts,
    units: usize,
    files: usize,
}

impl UnitDraftsWriter {
    pub fn new(shelf: ShelfWriter<Drafts>) -> Self {
        Self {
            shelf,
            window: Drafts::default(),
            units: 0,
            files: 0,
        }
    }

    pub fn push(
        &mut self,
        key: &str,
        group_key: &str,
        files: impl IntoIterator<Item = (u32, FileRef)>,
    ) -> std::io::Result<()> {
        let before = self.window.file_count();
        self.window.push(key, group_key, files);
        self.units += 1;
        self.files += self.window.file_count() - before;
        if self.window.len() == WINDOW {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut full = std::mem::take(&mut self.window);
        full.shrink_to_fit();
        self.shelf.push(full)
    }

    pub fn finish(mut self) -> std::io::Result<UnitDrafts> {
        if !self.window.is_empty() {
            self.flush()?;
        }
        Ok(UnitDrafts {
            windows: self.shelf.finish()?,
            units: self.units,
            files: self.files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(index: u32) -> (u32, FileRef) {
        (0, FileRef { root: 0, index })
    }

    #[test]
    fn a_group_key_is_stored_only_once_some_unit_differs_from_its_key() {
        let mut d = Drafts::default();
        d.push("a", "a", [file(0), file(1)]);
        d.push("b", "b", []);
        assert!(d.group_keys.is_none());
        d.push("C-c", "c", [file(2)]);
        let got: Vec<_> = d
            .iter()
            .map(|u| (u.key, u.group_key, u.files.len()))
            .collect();
        assert_eq!(got, [("a", "a", 2), ("b", "b", 0), ("C-c", "c", 1)]);
        assert_eq!(d.get(2).files, [file(2)]);
    }

    #[test]
    fn windows_written_to_disk_read_back_as_they_were_by_every_reader() {
        use crate::spill::Record;
        let dir = tempfile::tempdir().unwrap();
        let build = |budget: usize| {
            let mut w = UnitDraftsWriter::new(ShelfWriter::new(dir.path(), budget));
            for i in 0..(WINDOW + 3) as u32 {
                let key = format!("u{i:05}");
                // An empty group key that differs from its key, and one that is the key.
                let group = if i % 7 == 0 { "" } else { &key };
                w.push(
                    &key,
                    group,
                    [
                        file(i),
                        (
                            1,
                            FileRef {
                                root: 2,
                                index: u32::MAX,
                            },
                        ),
                    ],
                )
                .unwrap();
            }
            w.finish().unwrap()
        };
        let (held, spilled) = (build(usize::MAX), build(0));
        assert!(!held.spilled() && spilled.spilled());
        assert_eq!(
            (spilled.len(), spilled.file_count()),
            (WINDOW + 3, 2 * WINDOW + 6)
        );
        let sizes: Vec<usize> = spilled.windows().map(|w| w.unwrap().len()).collect();
        assert_eq!(sizes, [WINDOW, 3]);
        // Two readers at once do not move each other.
        let mut first = spilled.windows();
        let mut second = spilled.windows();
        assert_eq!(
            *first.next().unwrap().unwrap(),
            *second.next().unwrap().unwrap()
        );
        assert_eq!(spilled.gather(), held.gather());
        assert_eq!(spilled.gather().get(7).group_key, "");
        // A window cut short is an error, not a shorter window.
        let mut bytes = Vec::new();
        held.gather().encode(&mut bytes);
        bytes.pop();
        assert!(Drafts::decode(&mut bytes.as_slice()).is_err());
    }
}
