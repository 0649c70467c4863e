//! A root's listing, packed: every path in one string and a column per field.
//!
//! A listing lives from the scan until the plan is written, and at millions of
//! files it was the largest thing a plan held: a `Vec` of structs with a
//! `String` each cost about 110 bytes a file (struct, allocation, allocator
//! overhead). Packed, a file costs its path's bytes plus 20 (its modification time leaves
//! it when the checksum has used it: 12 from then on).

use rayon::prelude::*;

use crate::packed::PackedStrs;

/// One listed file, borrowed from its [`FileList`]. Paths are relative to the
/// root, `/`-separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedFile<'a> {
    pub rel: &'a str,
    pub size: u64,
    /// A remote object's version tag (its ETag, or else its last-modified time):
    /// with `checksum: apply` it stands in for the SHA-1 in the plan.
    pub tag: Option<&'a str>,
}

/// Files in the order they were pushed until [`FileList::sort`], then by path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileList {
    paths: PackedStrs,
    sizes: Vec<u64>,
    mtimes: Vec<i64>,
    /// `None` while no file has a tag (every local listing), so local files
    /// pay nothing for them.
    tags: Option<Vec<Option<Box<str>>>>,
}

impl FileList {
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn push(&mut self, rel: &str, size: u64, mtime_ns: i64, tag: Option<&str>) {
        self.paths.push(rel);
        self.sizes.push(size);
        self.mtimes.push(mtime_ns);
        if tag.is_some() && self.tags.is_none() {
            self.tags = Some(vec![None; self.len() - 1]);
        }
        if let Some(tags) = &mut self.tags {
            tags.push(tag.map(Box::from));
        }
    }

    /// The path of file `i`.
    pub fn rel(&self, i: usize) -> &str {
        self.paths.get(i)
    }

    /// File `i`. Panics past the end, like a slice.
    pub fn get(&self, i: usize) -> ListedFile<'_> {
        ListedFile {
            rel: self.rel(i),
            size: self.sizes[i],
            tag: self.tags.as_ref().and_then(|t| t[i].as_deref()),
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = ListedFile<'_>> + Clone + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    pub fn par_iter(&self) -> impl IndexedParallelIterator<Item = ListedFile<'_>> + '_ {
        (0..self.len()).into_par_iter().map(|i| self.get(i))
    }

    /// Makes room for `files` more files whose paths take `bytes`.
    pub fn reserve(&mut self, files: usize, bytes: usize) {
        self.paths.reserve(files, bytes);
        self.sizes.reserve(files);
        self.mtimes.reserve(files);
    }

    /// Each file's modification time (nanoseconds since the Unix epoch; for a
    /// remote object, a number derived from its version tag), taken out of
    /// the list: only the checksum cache's keys use them, and the list lives
    /// until the plan is written. The list has none afterwards.
    pub fn take_mtimes(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.mtimes)
    }

    /// Keeps the first `n` files.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        self.paths.truncate(n);
        self.sizes.truncate(n);
        self.mtimes.truncate(n);
        if let Some(tags) = &mut self.tags {
            tags.truncate(n);
        }
    }

    /// Moves every file of `other` to the end of this list.
    pub fn append(&mut self, other: &mut FileList) {
        if other.is_empty() {
            return;
        }
        let had = self.len();
        self.paths.append(&mut other.paths);
        self.sizes.append(&mut other.sizes);
        self.mtimes.append(&mut other.mtimes);
        if let Some(mut theirs) = other.tags.take() {
            let tags = self.tags.get_or_insert_with(|| vec![None; had]);
            tags.append(&mut theirs);
        } else if let Some(tags) = &mut self.tags {
            tags.resize(self.paths.len(), None);
        }
        *other = FileList::default();
    }

    /// Sorts by path (byte order; equal paths keep their order), into lists
    /// of exactly the size needed. Columns are rebuilt one at a time, so a
    /// sort never holds two whole listings.
    pub fn sort(&mut self) {
        // Sorted as slices, so a comparison reads the two paths and nothing
        // else (looking each one up by position was most of a warm scan).
        let mut by_path: Vec<(&str, u32)> = self.paths.iter().zip(0..).collect();
        by_path.par_sort_unstable_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
        // The order alone, in a vector of its own: collected in place it
        // would keep the sort's 24 bytes a file while the columns are rebuilt.
        let mut order: Vec<u32> = Vec::with_capacity(by_path.len());
        order.extend(by_path.iter().map(|&(_, i)| i));
        drop(by_path);
        if order.iter().enumerate().all(|(at, &i)| at == i as usize) {
            self.shrink_to_fit();
            return;
        }
        self.sizes = order.iter().map(|&i| self.sizes[i as usize]).collect();
        self.mtimes = order.iter().map(|&i| self.mtimes[i as usize]).collect();
        if let Some(tags) = &mut self.tags {
            *tags = order.iter().map(|&i| tags[i as usize].take()).collect();
        }
        self.paths = self.paths.permuted(&order);
    }

    fn shrink_to_fit(&mut self) {
        self.paths.shrink_to_fit();
        self.sizes.shrink_to_fit();
        self.mtimes.shrink_to_fit();
        if let Some(tags) = &mut self.tags {
            tags.shrink_to_fit();
        }
    }

    /// Replaces file `i`'s tag (tests build remote listings with it).
    #[cfg(test)]
    pub(crate) fn set_tag(&mut self, i: usize, tag: Option<&str>) {
        let n = self.len();
        self.tags.get_or_insert_with(|| vec![None; n])[i] = tag.map(Box::from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rels(list: &FileList) -> Vec<&str> {
        list.iter().map(|f| f.rel).collect()
    }

    #[test]
    fn sorting_moves_every_column_with_its_path() {
        let mut list = FileList::default();
        list.push("b/2.png", 2, 20, None);
        list.push("a.png", 1, 10, None);
        list.push("c", 3, 30, None);
        list.push("", 0, 0, None);
        list.sort();
        assert_eq!(rels(&list), ["", "a.png", "b/2.png", "c"]);
        assert_eq!(list.get(2).size, 2);
        assert_eq!(list.clone().take_mtimes()[2], 20);
        assert_eq!(list.get(1).tag, None);
        assert!(list.tags.is_none(), "local listings carry no tag column");
    }

    #[test]
    fn tags_appear_when_a_file_has_one_and_survive_append_and_sort() {
        let mut a = FileList::default();
        a.push("z", 1, 1, None);
        a.push("y", 2, 2, Some("\"e\""));
        let mut b = FileList::default();
        b.push("x", 3, 3, None);
        let mut c = FileList::default();
        c.push("w", 4, 4, Some(""));
        b.append(&mut c);
        a.append(&mut b);
        assert!(b.is_empty() && c.is_empty());
        a.sort();
        assert_eq!(rels(&a), ["w", "x", "y", "z"]);
        let tags: Vec<_> = a.iter().map(|f| f.tag).collect();
        assert_eq!(tags, [Some(""), None, Some("\"e\""), None]);
        assert_eq!(a.get(0).size, 4);
    }

    #[test]
    fn an_untagged_list_appended_to_a_tagged_one_keeps_columns_aligned() {
        let mut a = FileList::default();
        a.push("a", 1, 1, Some("t"));
        let mut b = FileList::default();
        b.push("b", 2, 2, None);
        a.append(&mut b);
        a.push("c", 3, 3, None);
        assert_eq!(a.get(1).tag, None);
        assert_eq!(a.get(2).tag, None);
        assert_eq!(a.get(0).tag, Some("t"));
    }

    #[test]
    fn equal_paths_keep_their_order() {
        let mut list = FileList::default();
        list.push("b", 1, 0, None);
        list.push("a", 2, 0, None);
        list.push("b", 3, 0, None);
        list.sort();
        let sizes: Vec<u64> = list.iter().map(|f| f.size).collect();
        assert_eq!(sizes, [2, 1, 3]);
    }
}
