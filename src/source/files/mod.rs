//! A root's listing, packed: every path in one string and a column per field,
//! or, past its share of the budget, in a file ([`stored`]).
//!
//! A listing lives from the scan until the plan is written, and at millions of
//! files it was the largest thing a plan held: a `Vec` of structs with a
//! `String` each cost about 110 bytes a file (struct, allocation, allocator
//! overhead). Packed, a file costs its path's bytes plus 20 (its modification
//! time leaves it when the checksum has used it: 12 from then on). That still
//! grows with the dataset (140 MiB at 4.6 million files), so a listing given a
//! spill area ([`FileList::spill_past`]) sorts what it holds into a run on
//! disk whenever it reaches its share, merges the runs when it is finished,
//! and is read back from that file a block at a time.

mod stored;

use std::borrow::Cow;

use rayon::prelude::*;

use self::stored::{StoredFile, StoredFiles, StoredWriter, common_prefix};
use crate::packed::PackedStrs;
use crate::spill::SpillArea;

/// One listed file, borrowed from its [`FileList`] (or, from a stored one,
/// read back). Paths are relative to the root, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile<'a> {
    pub rel: Cow<'a, str>,
    pub size: u64,
    /// A remote object's version tag (its ETag, or else its last-modified time):
    /// with `checksum: apply` it stands in for the SHA-1 in the plan.
    pub tag: Option<Cow<'a, str>>,
    /// Its modification time, while the list has them (a held list gives
    /// them up to the checksum: [`FileList::take_mtimes`]).
    pub mtime_ns: Option<i64>,
}

impl From<StoredFile> for ListedFile<'_> {
    fn from(f: StoredFile) -> Self {
        ListedFile {
            rel: Cow::Owned(f.rel),
            size: f.size,
            tag: f.tag.map(Cow::Owned),
            mtime_ns: Some(f.mtime_ns),
        }
    }
}

/// Files in the order they were pushed until [`FileList::sort`], then by path.
#[derive(Debug, Default)]
pub struct FileList {
    /// The files held in memory: all of them, unless the list is stored
    /// (then none) or being built past its share (then the newest).
    held: Held,
    /// The whole list, in a file.
    stored: Option<StoredFiles>,
    /// While a list given a spill area is built: its runs so far.
    runs: Option<Runs>,
}

/// Who sorts a list: the current rayon pool, or the calling thread alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Threads {
    Pool,
    This,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Held {
    paths: PackedStrs,
    sizes: Vec<u64>,
    mtimes: Vec<i64>,
    /// `None` while no file has a tag (every local listing), so local files
    /// pay nothing for them.
    tags: Option<Vec<Option<Box<str>>>>,
}

/// Sorted runs written while a list is built, each of at most `share`
/// bytes held.
#[derive(Debug)]
struct Runs {
    area: SpillArea,
    share: usize,
    done: Vec<StoredFiles>,
    /// Files in `done`.
    files: usize,
    /// Runs written (merging makes `done` fewer).
    made: usize,
    /// Writing a run failed once: the rest is held.
    gave_up: bool,
}

/// Runs a list keeps before merging them into one: as many as a sort keeps.
use crate::spill::MAX_RUNS;

impl Held {
    fn len(&self) -> usize {
        self.paths.len()
    }

    fn push(&mut self, rel: &str, size: u64, mtime_ns: i64, tag: Option<&str>) {
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

    fn get(&self, i: usize) -> ListedFile<'_> {
        ListedFile {
            rel: Cow::Borrowed(self.paths.get(i)),
            size: self.sizes[i],
            tag: self
                .tags
                .as_ref()
                .and_then(|t| t[i].as_deref())
                .map(Cow::Borrowed),
            mtime_ns: self.mtimes.get(i).copied(),
        }
    }

    /// What the held files take: what their columns allocated (room that
    /// growing by doubling left empty counts), and their tags about.
    fn bytes(&self) -> usize {
        self.bytes_after(0, 0)
    }

    /// What [`Self::bytes`] would be after `files` more files whose paths
    /// take `text` bytes (and tags, when the list has them) were added.
    fn bytes_after(&self, files: usize, text: usize) -> usize {
        use crate::packed::grown;
        let n = self.len();
        let column = |capacity: usize| grown(n, capacity, files);
        let tags = self.tags.as_ref().map_or(0, |t| {
            column(t.capacity()) * 16 + t.iter().flatten().map(|t| t.len()).sum::<usize>()
        });
        self.paths.allocated_after(files, text)
            + (column(self.sizes.capacity()) + column(self.mtimes.capacity())) * 8
            + tags
    }

    /// Empties the list, keeping what its columns allocated for the next
    /// files (a list sorted into runs refills them each time).
    fn clear(&mut self) {
        self.paths.clear();
        self.sizes.clear();
        self.mtimes.clear();
        if let Some(tags) = &mut self.tags {
            tags.clear();
        }
    }

    fn truncate(&mut self, n: usize) {
        self.paths.truncate(n);
        self.sizes.truncate(n);
        self.mtimes.truncate(n);
        if let Some(tags) = &mut self.tags {
            tags.truncate(n);
        }
    }

    fn append(&mut self, other: &mut Held) {
        if other.len() == 0 {
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
        *other = Held::default();
    }

    /// The files' positions in path order, or `None` when they are in it.
    /// The passes over the paths are one thread's (a few milliseconds per
    /// million); `threads` says who sorts.
    fn path_order(&self, threads: Threads) -> Option<Vec<u32>> {
        let paths = &self.paths;
        let n = self.len();
        if (1..n).all(|i| paths.get(i - 1) <= paths.get(i)) {
            return None;
        }
        // Sorted by 12-byte keys: the 8 bytes after the prefix every path
        // shares, then the position; only paths equal in those 8 bytes are
        // compared whole. As (&str, position) pairs the sort held 24 bytes a
        // file (110 MiB at 4.6 million), the peak of a plan's scan.
        let shared = (1..n)
            .map(|i| common_prefix(paths.get(0), paths.get(i)))
            .min()
            .unwrap_or(0);
        let key = |i: usize| {
            let rest = &paths.get(i).as_bytes()[shared..];
            let mut head = [0u8; 8];
            let k = rest.len().min(8);
            head[..k].copy_from_slice(&rest[..k]);
            let head = u64::from_be_bytes(head);
            [(head >> 32) as u32, head as u32, i as u32]
        };
        let by_key = |a: &[u32; 3], b: &[u32; 3]| {
            (a[0], a[1])
                .cmp(&(b[0], b[1]))
                .then_with(|| paths.get(a[2] as usize).cmp(paths.get(b[2] as usize)))
                .then(a[2].cmp(&b[2]))
        };
        let mut keys: Vec<[u32; 3]> = (0..n).map(key).collect();
        match threads {
            Threads::Pool => keys.par_sort_unstable_by(by_key),
            Threads::This => keys.sort_unstable_by(by_key),
        }
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

    /// The held files in path order (stably), as stored files.
    fn sorted(&self) -> impl Iterator<Item = std::io::Result<StoredFile>> + '_ {
        let order = self.path_order(Threads::Pool);
        (0..self.len()).map(move |k| {
            let i = order.as_ref().map_or(k, |o| o[k] as usize);
            let f = self.get(i);
            Ok(StoredFile {
                rel: f.rel.into_owned(),
                size: f.size,
                mtime_ns: f.mtime_ns.unwrap_or(0),
                tag: f.tag.map(Cow::into_owned),
            })
        })
    }
}

/// Where merged files go: a file, or memory when the file cannot be made.
enum MergeInto {
    File(StoredWriter),
    Memory(Held),
}

/// Merges sorted `inputs`, stably (on equal paths the earlier input first),
/// into a stored listing in `dir`, or into memory if that file cannot be
/// made. An error: an input could not be read back, or the file written.
fn merge(
    inputs: Vec<Box<dyn Iterator<Item = std::io::Result<StoredFile>> + '_>>,
    dir: &std::path::Path,
) -> std::io::Result<FileList> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    /// An input's next file; the smallest path first, then the earlier input.
    struct Head(StoredFile, usize);
    impl PartialEq for Head {
        fn eq(&self, other: &Self) -> bool {
            self.cmp(other).is_eq()
        }
    }
    impl Eq for Head {}
    impl PartialOrd for Head {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Head {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            (&self.0.rel, self.1).cmp(&(&other.0.rel, other.1))
        }
    }
    let mut inputs = inputs;
    let mut heap = BinaryHeap::with_capacity(inputs.len());
    for (n, input) in inputs.iter_mut().enumerate() {
        if let Some(f) = input.next().transpose()? {
            heap.push(Reverse(Head(f, n)));
        }
    }
    let mut into = match StoredWriter::new(dir) {
        Ok(w) => MergeInto::File(w),
        Err(_) => MergeInto::Memory(Held::default()),
    };
    while let Some(Reverse(Head(f, n))) = heap.pop() {
        match &mut into {
            MergeInto::File(w) => w.push(&f.rel, f.size, f.mtime_ns, f.tag.as_deref())?,
            MergeInto::Memory(held) => held.push(&f.rel, f.size, f.mtime_ns, f.tag.as_deref()),
        }
        if let Some(next) = inputs[n].next().transpose()? {
            heap.push(Reverse(Head(next, n)));
        }
    }
    Ok(match into {
        MergeInto::File(w) => FileList {
            stored: Some(w.finish()?),
            ..FileList::default()
        },
        MergeInto::Memory(mut held) => {
            held.shrink_to_fit();
            FileList {
                held,
                ..FileList::default()
            }
        }
    })
}

impl FileList {
    pub fn len(&self) -> usize {
        match &self.stored {
            Some(s) => s.len(),
            None => self.held.len() + self.runs.as_ref().map_or(0, |r| r.files),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the list is in a file rather than memory.
    pub fn is_stored(&self) -> bool {
        self.stored.is_some()
    }

    /// From now until it is sorted, the list holds at most a share of
    /// `area`'s budget (an eighth of what it has left now): past it, what it
    /// holds is sorted into a run in `area`'s folder. Sorting then merges
    /// the runs into a stored list.
    pub fn spill_past(&mut self, area: &SpillArea) {
        self.spill_past_share(area, area.budget.share(8));
    }

    fn spill_past_share(&mut self, area: &SpillArea, share: usize) {
        self.runs = Some(Runs {
            area: area.clone(),
            share,
            done: Vec::new(),
            files: 0,
            made: 0,
            gave_up: false,
        });
    }

    pub fn push(&mut self, rel: &str, size: u64, mtime_ns: i64, tag: Option<&str>) {
        debug_assert!(self.stored.is_none(), "a stored list is finished");
        self.make_room(1, rel.len());
        self.held.push(rel, size, mtime_ns, tag);
        self.spill_if_full();
    }

    /// The path of file `i`.
    pub fn rel(&self, i: usize) -> Cow<'_, str> {
        match &self.stored {
            Some(s) => Cow::Owned(s.rel(i)),
            None => Cow::Borrowed(self.held.paths.get(i)),
        }
    }

    /// File `i`. Panics past the end, like a slice.
    pub fn get(&self, i: usize) -> ListedFile<'_> {
        match &self.stored {
            Some(s) => s.get(i).into(),
            None => self.held.get(i),
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = ListedFile<'_>> + Clone + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    pub fn par_iter(&self) -> impl IndexedParallelIterator<Item = ListedFile<'_>> + '_ {
        (0..self.len()).into_par_iter().map(|i| self.get(i))
    }

    /// Why a stored list could not be read back, if it could not: its
    /// files were answered empty, so nothing made from them may be written.
    pub fn unreadable(&self) -> Option<&str> {
        self.stored.as_ref().and_then(StoredFiles::unreadable)
    }

    /// Makes room for `files` more files whose paths take `bytes` (within
    /// the list's share, when it has one).
    pub fn reserve(&mut self, files: usize, bytes: usize) {
        if let Some(runs) = &self.runs
            && bytes + files * 20 > runs.share
        {
            return;
        }
        self.held.paths.reserve(files, bytes);
        self.held.sizes.reserve(files);
        self.held.mtimes.reserve(files);
    }

    /// Each file's modification time (nanoseconds since the Unix epoch; for a
    /// remote object, a number derived from its version tag), taken out of
    /// a held list: only the checksum cache's keys use them, and the list
    /// lives until the plan is written. A held list has none afterwards; a
    /// stored one keeps them in its file, gives none here, and answers them
    /// with each file.
    pub fn take_mtimes(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.held.mtimes)
    }

    /// Keeps the first `n` files.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        match &mut self.stored {
            Some(s) => s.truncate(n),
            None => self.held.truncate(n),
        }
    }

    /// Moves every file of `other` (a held list) to the end of this list.
    pub fn append(&mut self, other: &mut FileList) {
        debug_assert!(self.stored.is_none() && other.stored.is_none());
        self.make_room(other.held.len(), other.held.paths.text_len());
        self.held.append(&mut other.held);
        *other = FileList::default();
        self.spill_if_full();
    }

    /// Before `files` more files (paths of `text` bytes) are added: if the
    /// columns would have to grow past the list's share, what it holds
    /// becomes a run first. The columns then never hold more than the share
    /// (growing by doubling, they reached up to twice it, and the old and
    /// new columns were both held while one was copied).
    fn make_room(&mut self, files: usize, text: usize) {
        if let Some(runs) = &self.runs
            && !runs.gave_up
            && self.held.len() > 0
            && self.held.bytes_after(files, text) > runs.share
        {
            self.spill_now();
        }
    }

    /// Past its share, what the list holds becomes a sorted run on disk.
    /// A run that cannot be written leaves the files held (and the list
    /// holds whatever comes after them too).
    fn spill_if_full(&mut self) {
        if let Some(runs) = &self.runs
            && !runs.gave_up
            && self.held.bytes() > runs.share
        {
            self.spill_now();
        }
    }

    /// What the list holds, sorted into a run; its columns are kept to be
    /// filled again.
    fn spill_now(&mut self) {
        let Some(runs) = &mut self.runs else {
            return;
        };
        let written = (|| {
            let mut w = StoredWriter::new(&runs.area.dir)?;
            let held = &self.held;
            // This thread: an append may run under its caller's lock, on
            // a worker of the pool whose other jobs wait for that lock (the
            // local walker's merge). Waiting on the pool here, the holder
            // could take up such a job and deadlock; one run, sorted by one
            // thread, is a few milliseconds.
            let order = held.path_order(Threads::This);
            for k in 0..held.len() {
                let i = order.as_ref().map_or(k, |o| o[k] as usize);
                let tag = held.tags.as_ref().and_then(|t| t[i].as_deref());
                w.push(held.paths.get(i), held.sizes[i], held.mtimes[i], tag)?;
            }
            w.finish()
        })();
        match written {
            Ok(run) => {
                runs.files += run.len();
                runs.made += 1;
                runs.done.push(run);
                self.held.clear();
                // Columns one large append grew past the share are let go:
                // kept, every file after would make a run of its own.
                if self.held.bytes() > runs.share {
                    self.held = Held::default();
                }
            }
            Err(_) => runs.gave_up = true,
        }
        if runs.done.len() >= MAX_RUNS {
            let done = std::mem::take(&mut runs.done);
            let inputs = done
                .iter()
                .map(|r| Box::new(r.read()) as Box<dyn Iterator<Item = _>>)
                .collect();
            match merge(inputs, &runs.area.dir) {
                Ok(FileList {
                    stored: Some(one), ..
                }) => runs.done.push(one),
                // Merged into memory or not at all: keep the runs as they
                // were and stop making more.
                _ => {
                    runs.done = done;
                    runs.gave_up = true;
                }
            }
        }
    }

    /// Sorts by path (byte order; equal paths keep their order), into lists
    /// of exactly the size needed. Columns are rebuilt one at a time, so a
    /// sort never holds two whole listings. For lists never given a spill
    /// area: one that was is sorted by [`Self::sort_through`].
    pub fn sort(&mut self) {
        debug_assert!(self.runs.as_ref().is_none_or(|r| r.done.is_empty()));
        self.runs = None;
        if let Some(order) = self.held.path_order(Threads::Pool) {
            self.held.paths = self.held.paths.permuted(&order);
            self.held.reorder_columns(&order);
        }
        self.held.shrink_to_fit();
    }

    /// [`Self::sort`], reordering large paths through an unnamed file in
    /// `spill` instead of a second copy of them in memory (in memory after
    /// all when the file cannot be made or written). A list that spilled
    /// runs ([`Self::spill_past`]) merges them into a stored list. An error
    /// (a file cannot be read back) leaves the list unusable: the scan that
    /// made it fails.
    pub fn sort_through(&mut self, spill: &std::path::Path) -> std::io::Result<()> {
        if self.finish_runs(spill)? {
            return Ok(());
        }
        self.sort_through_above(spill, SORT_THROUGH_FILE)
    }

    /// Puts a finished listing in path order: through `spill` (see
    /// [`Self::sort_through`]) when the scan has a spill area, else in
    /// memory. The error says what could not be done, and where.
    pub fn sort_finished(&mut self, spill: Option<&SpillArea>) -> std::io::Result<()> {
        match spill {
            Some(area) => self.sort_through(&area.dir).map_err(|e| {
                std::io::Error::other(format!(
                    "its listing could not be put in order through {}: {e}",
                    area.dir.display()
                ))
            }),
            None => {
                self.sort();
                Ok(())
            }
        }
    }

    /// Merges the runs (and what is held) into one sorted list stored in
    /// `spill`: `Ok(true)` if there were runs.
    fn finish_runs(&mut self, spill: &std::path::Path) -> std::io::Result<bool> {
        let Some(runs) = self.runs.take() else {
            return Ok(false);
        };
        if runs.done.is_empty() {
            return Ok(false);
        }
        let held = std::mem::take(&mut self.held);
        let mut inputs: Vec<Box<dyn Iterator<Item = _>>> = runs
            .done
            .iter()
            .map(|r| Box::new(r.read()) as Box<dyn Iterator<Item = _>>)
            .collect();
        inputs.push(Box::new(held.sorted()));
        *self = merge(inputs, spill)?;
        Ok(true)
    }

    fn sort_through_above(&mut self, spill: &std::path::Path, bytes: usize) -> std::io::Result<()> {
        let held = &mut self.held;
        if let Some(order) = held.path_order(Threads::Pool) {
            // A spill folder that cannot take the file costs memory, not the
            // plan: the paths are reordered in memory instead.
            let through_file = held.paths.text_len() >= bytes
                && match crate::spill::unnamed_file(spill) {
                    Ok(mut file) => held.paths.permute_through(&order, &mut file)?,
                    Err(_) => false,
                };
            if !through_file {
                held.paths = held.paths.permuted(&order);
            }
            held.reorder_columns(&order);
        }
        held.shrink_to_fit();
        Ok(())
    }

    /// Replaces file `i`'s tag (tests build remote listings with it).
    #[cfg(test)]
    pub(crate) fn set_tag(&mut self, i: usize, tag: Option<&str>) {
        let n = self.len();
        self.held.tags.get_or_insert_with(|| vec![None; n])[i] = tag.map(Box::from);
    }
}

/// Lists are equal when they list the same files in the same order.
impl PartialEq for FileList {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for FileList {}

/// A copy in memory (a stored list is read back whole; tests use it).
impl Clone for FileList {
    fn clone(&self) -> Self {
        let mut held = Held::default();
        for f in self.iter() {
            held.push(&f.rel, f.size, f.mtime_ns.unwrap_or(0), f.tag.as_deref());
        }
        if self.stored.is_none() && self.held.mtimes.is_empty() {
            held.mtimes.clear();
        }
        FileList {
            held,
            ..FileList::default()
        }
    }
}

/// Paths of at least this many bytes are reordered through a file when a
/// spill folder is given: below it the second copy costs little.
const SORT_THROUGH_FILE: usize = 16 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn rels(list: &FileList) -> Vec<String> {
        list.iter().map(|f| f.rel.into_owned()).collect()
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
        assert!(
            list.held.tags.is_none(),
            "local listings carry no tag column"
        );
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
    fn a_list_in_runs_holds_at_most_its_share_and_refills_its_columns() {
        let dir = tempfile::tempdir().unwrap();
        let area = SpillArea::under(dir.path(), crate::spill::MemoryBudget::DEFAULT);
        let share = 64 << 10;
        let mut list = FileList::default();
        list.spill_past_share(&area, share);
        // A folder larger than the share, appended whole: it becomes a run
        // and its columns are let go, not refilled one file at a time.
        let mut big = FileList::default();
        for i in 0..5_000 {
            big.push(&format!("big/{i:06}.png"), 1, 0, None);
        }
        list.append(&mut big);
        assert!(list.held.bytes() <= share);
        for i in 0..20_000 {
            list.push(&format!("d/{i:06}.png"), 1, 0, None);
            assert!(list.held.bytes() <= share, "{} at {i}", list.held.bytes());
        }
        // 20,000 files of about 40 bytes held: runs of a half to a whole
        // share, plus the big folder's.
        let made = list.runs.as_ref().unwrap().made;
        assert!((10..=30).contains(&made), "{made} runs");
        list.sort_through(&area.dir).unwrap();
        assert_eq!(list.len(), 25_000);
        assert_eq!(list.rel(0), "big/000000.png");
        assert_eq!(list.rel(24_999), "d/019999.png");
    }

    /// Workers of one pool append into a shared list under its lock (the
    /// local walker merges so), each append making a run. Sorting the run
    /// with the pool's help let the lock holder, while it waited, take up
    /// another worker's job that wants the same lock: a deadlock, seen as a
    /// warm 1M-file plan that never finished. Fails by timeout, not by hanging.
    #[test]
    fn runs_made_under_a_lock_by_a_pool_worker_do_not_wait_on_that_pool() {
        let dir = tempfile::tempdir().unwrap();
        let area = SpillArea::under(dir.path(), crate::spill::MemoryBudget::DEFAULT);
        let mut list = FileList::default();
        list.spill_past_share(&area, 2 << 10);
        let shared = std::sync::Arc::new(std::sync::Mutex::new(list));
        let (done, finished) = std::sync::mpsc::channel();
        // A thread of its own, not joined: a deadlocked pool must not keep
        // the test from failing.
        let appending = std::sync::Arc::clone(&shared);
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(4)
                .build()
                .unwrap();
            // A few rounds: whether the holder takes up such a job depends
            // on timing (one plain round hung about one time in eight).
            for round in 0..16 {
                pool.scope(|scope| {
                    for job in 0..64 {
                        let shared = &appending;
                        scope.spawn(move |_| {
                            let mut mine = FileList::default();
                            // Out of order, so a run is sorted.
                            for i in (0..250).rev() {
                                mine.push(&format!("r{round:02}/j{job:02}/{i:03}.png"), 1, 0, None);
                            }
                            shared.lock().unwrap().append(&mut mine);
                        });
                    }
                });
            }
            drop(appending);
            let _ = done.send(());
        });
        let waited = finished.recv_timeout(std::time::Duration::from_secs(60));
        assert!(waited.is_ok(), "the pool deadlocked");
        let mut list = std::sync::Arc::into_inner(shared)
            .unwrap()
            .into_inner()
            .unwrap();
        list.sort_through(&area.dir).unwrap();
        assert_eq!(list.len(), 256_000);
        assert_eq!(list.rel(0), "r00/j00/000.png");
        assert_eq!(list.rel(255_999), "r15/j63/249.png");
    }

    /// A list past its share sorts in runs (more than are kept open, so
    /// they are merged on the way) and is stored: it reads back as the list
    /// sorted in memory, with equal paths in the order they came, tags and
    /// modification times; a truncated stored list keeps its first files.
    #[test]
    fn a_list_past_its_share_is_stored_and_reads_back_as_one_sorted_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let area = SpillArea::under(dir.path(), crate::spill::MemoryBudget::DEFAULT);
        let mut stored = FileList::default();
        stored.spill_past_share(&area, 200);
        let mut held = FileList::default();
        for i in 0..3_000u64 {
            // Every path six times (paths repeat every 500 files).
            let rel = format!("d{}/f_{:05}.png", i % 2, (i * 7919) % 500);
            let tag = i.is_multiple_of(5).then(|| format!("\"{i}\""));
            for list in [&mut stored, &mut held] {
                // Pushed one at a time and appended in folders, as walkers do.
                if i.is_multiple_of(2) {
                    list.push(&rel, i, -(i as i64), tag.as_deref());
                } else {
                    let mut folder = FileList::default();
                    folder.push(&rel, i, -(i as i64), tag.as_deref());
                    list.append(&mut folder);
                }
            }
        }
        assert!(stored.runs.as_ref().unwrap().done.len() < MAX_RUNS);
        stored.sort_through(&area.dir).unwrap();
        held.sort();
        assert!(stored.is_stored() && !held.is_stored());
        assert_eq!(stored.len(), 3_000);
        assert_eq!(stored, held);
        let mtimes: Vec<_> = stored.iter().map(|f| f.mtime_ns).collect();
        let held_mtimes: Vec<_> = held.clone().take_mtimes().into_iter().map(Some).collect();
        assert_eq!(mtimes, held_mtimes);
        assert_eq!(stored.rel(2_999), held.rel(2_999));
        assert!(stored.unreadable().is_none());
        stored.truncate(65);
        held.truncate(65);
        assert_eq!(stored, held);
        assert_eq!(
            std::fs::read_dir(&area.dir).unwrap().count(),
            0,
            "runs and the stored list are unnamed"
        );
    }

    /// A spill folder that cannot be made (a file is in its way) keeps the
    /// list held, sorted as in memory.
    #[test]
    fn a_list_whose_runs_cannot_be_written_stays_held() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spill"), "in the way").unwrap();
        let area = SpillArea::under(dir.path(), crate::spill::MemoryBudget::DEFAULT);
        let mut list = FileList::default();
        list.spill_past_share(&area, 10);
        for i in 0..100 {
            list.push(&format!("f{}", 99 - i), i, 0, None);
        }
        list.sort_through(&area.dir).unwrap();
        assert!(!list.is_stored());
        assert_eq!(rels(&list)[..3], ["f0", "f1", "f10"]);
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
        let tags: Vec<_> = a.iter().map(|f| f.tag.map(Cow::into_owned)).collect();
        assert_eq!(tags, [Some("".into()), None, Some("\"e\"".into()), None]);
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
        assert_eq!(a.get(0).tag.as_deref(), Some("t"));
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
