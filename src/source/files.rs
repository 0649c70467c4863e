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
        if let Some(order) = self.path_order() {
            self.paths = self.paths.permuted(&order);
            self.reorder_columns(&order);
        }
        self.shrink_to_fit();
    }

    /// [`Self::sort`], reordering large paths through an unnamed file in
    /// `spill` instead of a second copy of them in memory (in memory after
    /// all when the file cannot be made or written). An error (the file
    /// cannot be read back) leaves the list unusable: the scan that made it
    /// fails.
    pub fn sort_through(&mut self, spill: &std::path::Path) -> std::io::Result<()> {
        self.sort_through_above(spill, SORT_THROUGH_FILE)
    }

    fn sort_through_above(&mut self, spill: &std::path::Path, bytes: usize) -> std::io::Result<()> {
        if let Some(order) = self.path_order() {
            // A spill folder that cannot take the file costs memory, not the
            // plan: the paths are reordered in memory instead.
            let through_file = self.paths.text_len() >= bytes
                && match crate::spill::unnamed_file(spill) {
                    Ok(mut file) => self.paths.permute_through(&order, &mut file)?,
                    Err(_) => false,
                };
            if !through_file {
                self.paths = self.paths.permuted(&order);
            }
            self.reorder_columns(&order);
        }
        self.shrink_to_fit();
        Ok(())
    }

    /// The files' positions in path order, or `None` when they are in it.
    fn path_order(&self) -> Option<Vec<u32>> {
        let paths = &self.paths;
        if (1..self.len())
            .into_par_iter()
            .all(|i| paths.get(i - 1) <= paths.get(i))
        {
            return None;
        }
        // Sorted by 12-byte keys: the 8 bytes after the prefix every path
        // shares, then the position; only paths equal in those 8 bytes are
        // compared whole. As (&str, position) pairs the sort held 24 bytes a
        // file (110 MiB at 4.6 million), the peak of a plan's scan.
        let shared = (1..self.len())
            .into_par_iter()
            .map(|i| common_prefix(paths.get(0), paths.get(i)))
            .min()
            .unwrap_or(0);
        let mut keys: Vec<[u32; 3]> = (0..self.len())
            .into_par_iter()
            .map(|i| {
                let rest = &paths.get(i).as_bytes()[shared..];
                let mut head = [0u8; 8];
                let n = rest.len().min(8);
                head[..n].copy_from_slice(&rest[..n]);
                let head = u64::from_be_bytes(head);
                [(head >> 32) as u32, head as u32, i as u32]
            })
            .collect();
        keys.par_sort_unstable_by(|a, b| {
            (a[0], a[1])
                .cmp(&(b[0], b[1]))
                .then_with(|| paths.get(a[2] as usize).cmp(paths.get(b[2] as usize)))
                .then(a[2].cmp(&b[2]))
        });
        let mut order: Vec<u32> = Vec::with_capacity(keys.len());
        order.extend(keys.iter().map(|k| k[2]));
        Some(order)
    }

    /// Puts every column but the paths in `order`.
    fn reorder_columns(&mut self, order: &[u32]) {
        self.sizes = order.iter().map(|&i| self.sizes[i as usize]).collect();
        if !self.mtimes.is_empty() {
            self.mtimes = order.iter().map(|&i| self.mtimes[i as usize]).collect();
        }
        if let Some(tags) = &mut self.tags {
            *tags = order.iter().map(|&i| tags[i as usize].take()).collect();
        }
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

/// Paths of at least this many bytes are reordered through a file when a
/// spill folder is given: below it the second copy costs little.
const SORT_THROUGH_FILE: usize = 16 << 20;

/// How many leading bytes `a` and `b` share.
fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
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

    /// Paths that share a long prefix and agree in the 8 bytes after it
    /// (compared whole), a path that is a prefix of another, and the same
    /// order through a file as in memory.
    #[test]
    fn sorting_by_keys_after_the_shared_prefix_and_through_a_file_gives_path_order() {
        let paths = [
            "data/patient_0000002.png",
            "data/patient_0000001.json",
            "data/patient_0000001.png",
            "data/patient_000000",
            "data/patient_0000001.dcm",
            "data/patient_0000001",
            "data/patient_0000010.png",
            "data/patient_0000001.png.bak",
            "data/patient_00000é.png",
        ];
        let mut list = FileList::default();
        for (i, rel) in paths.iter().enumerate() {
            list.push(rel, i as u64, -(i as i64), None);
        }
        let mut expected: Vec<&str> = paths.to_vec();
        expected.sort();
        let mut in_memory = list.clone();
        in_memory.sort();
        assert_eq!(rels(&in_memory), expected);
        let dir = tempfile::tempdir().unwrap();
        list.sort_through_above(&dir.path().join("spill"), 0)
            .unwrap();
        assert_eq!(list, in_memory);
        for f in list.iter() {
            assert_eq!(
                paths[f.size as usize], f.rel,
                "sizes moved with their paths"
            );
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("spill")).unwrap().count(),
            0,
            "unnamed"
        );
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
