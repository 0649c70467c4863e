//! The units grouping found, packed: every key in one string, every unit's
//! files in one vector.
//!
//! Drafts live from grouping until the diff has written every unit. As a
//! `Vec` of structs with two `String`s and a `Vec` each, a unit cost about 180
//! bytes; packed, a unit of 2.3 files costs its key's bytes plus about 45.

use super::FileRef;
use crate::packed::PackedStrs;

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
    /// Room for `units` units whose keys take `key_bytes`, with `files` files
    /// in all (group keys, when they differ, grow as they come).
    pub fn with_capacity(units: usize, key_bytes: usize, files: usize) -> Self {
        Self {
            keys: PackedStrs::with_capacity(units, key_bytes),
            group_keys: None,
            files: Vec::with_capacity(files),
            file_ends: Vec::with_capacity(units),
        }
    }

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

    /// The units `n` at a time, as `slice::chunks` (the last may be shorter).
    pub fn chunks(&self, n: usize) -> impl Iterator<Item = Vec<Draft<'_>>> + '_ {
        (0..self.len()).step_by(n.max(1)).map(move |start| {
            (start..(start + n).min(self.len()))
                .map(|i| self.get(i))
                .collect()
        })
    }

    /// Keeps the units `keep` says yes to, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Draft<'_>) -> bool) {
        let mut kept = Drafts::default();
        for d in self.iter().filter(|d| keep(d)) {
            kept.push(d.key, d.group_key, d.files.iter().copied());
        }
        kept.shrink_to_fit();
        *self = kept;
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
    fn chunks_and_retain_keep_order() {
        let mut d = Drafts::default();
        for (i, k) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            d.push(k, k, [file(i as u32)]);
        }
        let sizes: Vec<usize> = d.chunks(2).map(|w| w.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        d.retain(|u| u.key != "b" && u.key != "e");
        let keys: Vec<_> = d.iter().map(|u| u.key).collect();
        assert_eq!(keys, ["a", "c", "d"]);
        assert_eq!(d.get(1).files, [file(2)]);
        assert_eq!(Drafts::default().chunks(8).count(), 0);
    }
}
