//! A sorted listing kept in a file instead of memory: past its share of the
//! budget a listing (paths, sizes, modification times, tags) is written here
//! in blocks of [`BLOCK_FILES`] files, and read back a block at a time
//! through [`SLOTS`] cached blocks. Only each block's offset stays in memory
//! (a byte a file at most), so a listing costs the same at ten million files
//! as at ten thousand.
//!
//! A block's files are written one after another, each as its path (the
//! bytes it shares with the path before it in the block, then the rest: sorted
//! paths share most of their bytes), its size and modification time (8 bytes
//! each: read back many times, and cheaper to decode than varints) and its
//! tag.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::{Mutex, OnceLock};

use crate::spill::codec::{get_u64, put_u64};

/// Files in a block.
pub(super) const BLOCK_FILES: usize = 64;
/// Blocks cached: stages read in about path order, a few regions at once
/// (one per folder of a spec, say), on several threads.
const SLOTS: usize = 64;

/// One file as it is read back: everything owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredFile {
    pub(super) rel: String,
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    pub(super) tag: Option<String>,
}

/// A block read back: its files' columns.
#[derive(Debug, Default)]
struct Block {
    text: String,
    ends: Vec<u32>,
    sizes: Vec<u64>,
    mtimes: Vec<i64>,
    tags: Vec<Option<Box<str>>>,
}

impl Block {
    fn rel(&self, j: usize) -> &str {
        let start = if j == 0 { 0 } else { self.ends[j - 1] as usize };
        &self.text[start..self.ends[j] as usize]
    }

    fn file(&self, j: usize) -> StoredFile {
        StoredFile {
            rel: self.rel(j).to_owned(),
            size: self.sizes[j],
            mtime_ns: self.mtimes[j],
            tag: self.tags[j].as_deref().map(str::to_owned),
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Decodes `n` files from `bytes`.
    fn decode(mut bytes: &[u8], n: usize) -> io::Result<Block> {
        let input = &mut bytes;
        let mut b = Block::default();
        let mut path = String::new();
        for _ in 0..n {
            let shared = get_len(input)?;
            if !path.is_char_boundary(shared) {
                return Err(damaged());
            }
            // The shared part was checked with the path before; a rest
            // that is UTF-8 on its own keeps the whole path UTF-8 (the
            // writer cuts at a character boundary).
            path.truncate(shared);
            let rest = get_len(input)?;
            let rest = std::str::from_utf8(take(input, rest)?).map_err(|_| damaged())?;
            path.push_str(rest);
            b.text.push_str(&path);
            b.ends
                .push(u32::try_from(b.text.len()).map_err(|_| damaged())?);
            b.sizes.push(u64::from_le_bytes(take_array(input)?));
            b.mtimes.push(i64::from_le_bytes(take_array(input)?));
            b.tags.push(match get_len(input)? {
                0 => None,
                n => Some(
                    std::str::from_utf8(take(input, n - 1)?)
                        .map_err(|_| damaged())?
                        .into(),
                ),
            });
        }
        Ok(b)
    }
}

fn damaged() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "a damaged stored listing")
}

fn get_len(input: &mut &[u8]) -> io::Result<usize> {
    usize::try_from(get_u64(input)?).map_err(|_| damaged())
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> io::Result<&'a [u8]> {
    if input.len() < n {
        return Err(damaged());
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn take_array<const N: usize>(input: &mut &[u8]) -> io::Result<[u8; N]> {
    Ok(take(input, N)?.try_into().expect("N bytes"))
}

/// A listing in a file, in the order it was written.
#[derive(Debug)]
pub(super) struct StoredFiles {
    file: File,
    len: usize,
    /// Where each block starts in the file, and (last) where the file ends.
    starts: Vec<u64>,
    slots: Vec<Mutex<Option<(usize, Block)>>>,
    /// The first read that failed: its files were answered empty, and the
    /// plan must not be written ([`StoredFiles::unreadable`]).
    failed_read: OnceLock<String>,
}

impl StoredFiles {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The bytes the listing takes in its file.
    #[cfg(test)]
    fn file_len(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Keeps the first `n` files (a cached block may hold more: only its
    /// first files are asked for).
    pub(super) fn truncate(&mut self, n: usize) {
        if n < self.len {
            self.len = n;
            self.starts.truncate(n.div_ceil(BLOCK_FILES) + 1);
        }
    }

    fn blocks(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Block `b`, read from the file.
    fn read_block(&self, b: usize) -> io::Result<Block> {
        use std::os::unix::fs::FileExt;
        let (from, to) = (self.starts[b], self.starts[b + 1]);
        let mut bytes = vec![0u8; usize::try_from(to - from).map_err(|_| damaged())?];
        self.file.read_exact_at(&mut bytes, from)?;
        let n = BLOCK_FILES.min(self.len - b * BLOCK_FILES);
        Block::decode(&bytes, n)
    }

    /// File `i`. Panics past the end, like a slice. A file that cannot be
    /// read back is answered empty, and remembered.
    pub(super) fn get(&self, i: usize) -> StoredFile {
        self.with_block(i, Block::file)
            .unwrap_or_else(|| StoredFile {
                rel: String::new(),
                size: 0,
                mtime_ns: 0,
                tag: None,
            })
    }

    /// `f` of file `i`'s block (from its slot, read into it if another is
    /// there) and its place in it; `None` if the block cannot be read.
    fn with_block<T>(&self, i: usize, f: impl FnOnce(&Block, usize) -> T) -> Option<T> {
        assert!(i < self.len, "file {i} of {}", self.len);
        let (b, j) = (i / BLOCK_FILES, i % BLOCK_FILES);
        let mut slot = self.slots[b % SLOTS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(|(held, _)| *held != b) {
            match self.read_block(b) {
                Ok(block) => *slot = Some((b, block)),
                Err(e) => {
                    self.failed_read.get_or_init(|| e.to_string());
                    return None;
                }
            }
        }
        let (_, block) = slot.as_ref().expect("filled above");
        Some(f(block, j))
    }

    /// The path of file `i` (as [`Self::get`]).
    pub(super) fn rel(&self, i: usize) -> String {
        self.with_block(i, |block, j| block.rel(j).to_owned())
            .unwrap_or_default()
    }

    /// Why the listing could not be read back, if it could not.
    pub(super) fn unreadable(&self) -> Option<&str> {
        self.failed_read.get().map(String::as_str)
    }

    /// Every file in order, a block at a time, without the cache.
    pub(super) fn read(&self) -> StoredReader<'_> {
        StoredReader {
            stored: self,
            block: Block::default(),
            next_block: 0,
            at: 0,
        }
    }
}

/// Reads a stored listing forward, one block held.
pub(super) struct StoredReader<'s> {
    stored: &'s StoredFiles,
    block: Block,
    next_block: usize,
    at: usize,
}

impl Iterator for StoredReader<'_> {
    type Item = io::Result<StoredFile>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at == self.block.len() {
            if self.next_block == self.stored.blocks() {
                return None;
            }
            match self.stored.read_block(self.next_block) {
                Ok(block) => self.block = block,
                Err(e) => {
                    self.next_block = self.stored.blocks();
                    self.block = Block::default();
                    self.at = 0;
                    return Some(Err(e));
                }
            }
            self.next_block += 1;
            self.at = 0;
        }
        self.at += 1;
        Some(Ok(self.block.file(self.at - 1)))
    }
}

/// Writes a listing into an unnamed file, file after file.
pub(super) struct StoredWriter {
    out: BufWriter<File>,
    starts: Vec<u64>,
    written: u64,
    len: usize,
    previous: String,
    buf: Vec<u8>,
}

impl StoredWriter {
    /// A writer into a new unnamed file in `dir`.
    pub(super) fn new(dir: &std::path::Path) -> io::Result<Self> {
        Ok(Self {
            out: BufWriter::with_capacity(1 << 20, crate::spill::unnamed_file(dir)?),
            starts: Vec::new(),
            written: 0,
            len: 0,
            previous: String::new(),
            buf: Vec::new(),
        })
    }

    pub(super) fn push(
        &mut self,
        rel: &str,
        size: u64,
        mtime_ns: i64,
        tag: Option<&str>,
    ) -> io::Result<()> {
        let shared = if self.len.is_multiple_of(BLOCK_FILES) {
            self.starts.push(self.written);
            0
        } else {
            // On a character boundary, so a block's text is UTF-8 at every
            // step (the reader checks it).
            let mut n = common_prefix(&self.previous, rel);
            while !rel.is_char_boundary(n) {
                n -= 1;
            }
            n
        };
        let buf = &mut self.buf;
        buf.clear();
        put_u64(buf, shared as u64);
        put_u64(buf, (rel.len() - shared) as u64);
        buf.extend_from_slice(&rel.as_bytes()[shared..]);
        buf.extend_from_slice(&size.to_le_bytes());
        buf.extend_from_slice(&mtime_ns.to_le_bytes());
        match tag {
            None => put_u64(buf, 0),
            Some(t) => {
                put_u64(buf, t.len() as u64 + 1);
                buf.extend_from_slice(t.as_bytes());
            }
        }
        self.out.write_all(buf)?;
        self.written += buf.len() as u64;
        self.len += 1;
        self.previous.clear();
        self.previous.push_str(rel);
        Ok(())
    }

    pub(super) fn finish(mut self) -> io::Result<StoredFiles> {
        self.out.flush()?;
        self.starts.push(self.written);
        Ok(StoredFiles {
            file: self.out.into_inner().map_err(|e| e.into_error())?,
            len: self.len,
            starts: self.starts,
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
            failed_read: OnceLock::new(),
        })
    }
}

/// How many leading bytes `a` and `b` share.
pub(super) fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, i: u64) -> StoredFile {
        StoredFile {
            rel: rel.to_owned(),
            size: i,
            mtime_ns: match i {
                1 => i64::MIN,
                2 => i64::MAX,
                i => -(i as i64) * 1_000_000_007,
            },
            tag: i.is_multiple_of(3).then(|| format!("\"t{i}\"")),
        }
    }

    fn store(dir: &std::path::Path, files: &[StoredFile]) -> StoredFiles {
        let mut w = StoredWriter::new(dir).unwrap();
        for f in files {
            w.push(&f.rel, f.size, f.mtime_ns, f.tag.as_deref())
                .unwrap();
        }
        w.finish().unwrap()
    }

    /// Files across several blocks, with shared prefixes that end inside a
    /// character, empty paths and tags, read back at random, in order and
    /// forward.
    #[test]
    fn stored_files_read_back_as_written_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut files: Vec<StoredFile> = (0..5 * BLOCK_FILES as u64 + 7)
            .map(|i| file(&format!("data/p_{:07}/img_{}.png", i / 3, i % 3), i))
            .collect();
        files[5] = file("", 5);
        files[6] = file("data/é", 6);
        files[7] = file("data/è", 7);
        files[8].tag = Some(String::new());
        let stored = store(dir.path(), &files);
        assert_eq!(stored.len(), files.len());
        for i in (0..files.len()).rev().step_by(3).chain(0..files.len()) {
            assert_eq!(stored.get(i), files[i], "file {i}");
        }
        let forward: Vec<StoredFile> = stored.read().map(Result::unwrap).collect();
        assert_eq!(forward, files);
        assert!(stored.unreadable().is_none());
        assert!(
            stored.file_len() < files.iter().map(|f| f.rel.len() as u64 + 16).sum::<u64>(),
            "shared prefixes are written once"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "unnamed");
    }

    #[test]
    fn an_empty_listing_reads_back_empty() {
        let dir = tempfile::tempdir().unwrap();
        let stored = store(dir.path(), &[]);
        assert_eq!(stored.len(), 0);
        assert_eq!(stored.read().count(), 0);
    }

    /// A block that cannot be read back answers empty files, is remembered,
    /// and ends a forward read with the error.
    #[test]
    fn a_damaged_block_is_an_error_not_a_panic() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<StoredFile> = (0..100).map(|i| file(&format!("f{i}"), i)).collect();
        let stored = store(dir.path(), &files);
        stored.file.write_all_at(&[0xff; 16], 0).unwrap();
        stored.file.set_len(stored.starts[1] + 3).unwrap();
        assert_eq!(stored.get(0).rel, "");
        assert!(stored.unreadable().is_some());
        let mut reader = stored.read();
        assert!(reader.next().unwrap().is_err());
        assert!(reader.next().is_none());
    }
}
