//! Folder listings kept between plans (git's "untracked cache" idea), so that a
//! folder whose entries have not changed is not opened and read again: on a
//! tree of 100,000 small folders, `openat` + `getdents` was most of the walk.
//!
//! A listing is trusted when the folder's [`Stamp`] is unchanged. Adding,
//! removing or renaming an entry changes the folder's mtime; `chmod` changes
//! its ctime; a folder replaced by another has another inode. Files are still
//! `stat`-ed on every scan (their size and mtime key the checksum cache), and
//! everything the walk decides from a listing (junk, `exclude`, symlinks,
//! loops, names that are not UTF-8) is decided again from the cached one.
//!
//! A folder changed shortly before the scan started is read but not cached:
//! a second change within the same timestamp tick would leave its mtime as it
//! was (git's "racy" entries). Such a folder is read again until it settles.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{FileType, Stat};

use crate::cache_file::{self, In, SealedReader};

/// v2: each listing is followed by the check of its bytes (a damaged name
/// was trusted by every later scan, and made its file look missing or
/// misnamed).
const MAGIC: &[u8; 16] = b"synup-dirs-v2\n\0\0";
/// How long before the scan a folder must have last changed to be cached.
const SETTLED_NS: i64 = 2_000_000_000;

/// One state of a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
}

/// Nanoseconds since the epoch from a `stat` time's seconds and nanoseconds
/// (`st_mtime` is `i64` on 64-bit Linux and narrower on some other targets).
pub(super) fn time_ns(secs: impl Into<i64>, nanos: i64) -> i64 {
    secs.into()
        .saturating_mul(1_000_000_000)
        .saturating_add(nanos)
}

impl Stamp {
    pub(super) fn of(st: &Stat) -> Self {
        Self {
            mtime_ns: time_ns(st.st_mtime, st.st_mtime_nsec as i64),
            ctime_ns: time_ns(st.st_ctime, st.st_ctime_nsec as i64),
            ino: st.st_ino,
            dev: st.st_dev,
        }
    }
}

/// Appends one entry to an encoded listing:
/// `[u16 name length][name][u8 file type][u64 inode]`.
pub(super) fn push_entry(listing: &mut Vec<u8>, name: &[u8], ft: FileType, ino: u64) {
    listing.extend_from_slice(&(name.len() as u16).to_le_bytes());
    listing.extend_from_slice(name);
    listing.push((ft.as_raw_mode() >> 12) as u8);
    listing.extend_from_slice(&ino.to_le_bytes());
}

fn next_entry<'a>(r: &mut In<'a>) -> Option<(&'a [u8], FileType, u64)> {
    let n = r.u16()? as usize;
    let name = r.take(n)?;
    let ft = FileType::from_raw_mode(u32::from(r.u8()?) << 12);
    Some((name, ft, r.u64()?))
}

/// A folder's entries as the walk reads them: a listing just read, or a
/// cached one read from the cache file as it goes (a flat folder's cached
/// listing is as large as its paths, and is never held whole).
pub(super) enum Listing {
    Read(Vec<u8>),
    Cached(Range<u64>),
}

/// Reads a [`Listing`]'s entries one at a time.
pub(super) struct EntryReader<'a> {
    source: Source<'a>,
    name: Vec<u8>,
    /// Why a cached listing stopped before its end.
    pub error: Option<std::io::Error>,
}

enum Source<'a> {
    Memory(In<'a>),
    File(std::io::BufReader<Region<'a>>),
}

impl<'a> EntryReader<'a> {
    pub(super) fn new(listing: &'a Listing, cache: Option<&'a ListingCache>) -> Self {
        let (source, error) = match (listing, cache.and_then(|c| c.file.as_ref())) {
            (Listing::Read(bytes), _) => (Source::Memory(In(bytes)), None),
            (Listing::Cached(range), Some(file)) => (
                Source::File(std::io::BufReader::with_capacity(
                    1 << 16,
                    Region {
                        file,
                        at: range.start,
                        end: range.end,
                    },
                )),
                None,
            ),
            // Cached listings come only from a cache with its file open.
            (Listing::Cached(_), None) => (
                Source::Memory(In(&[])),
                Some(std::io::Error::other("the listing cache is not open")),
            ),
        };
        Self {
            source,
            name: Vec::new(),
            error,
        }
    }

    /// The next entry: (name, type, inode).
    pub(super) fn next(&mut self) -> Option<(&[u8], FileType, u64)> {
        match &mut self.source {
            Source::Memory(r) => next_entry(r),
            Source::File(r) => {
                let mut head = [0u8; 2];
                match r.read_exact(&mut head) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
                    Err(e) => {
                        self.error = Some(e);
                        return None;
                    }
                }
                self.name.resize(usize::from(u16::from_le_bytes(head)), 0);
                let mut tail = [0u8; 9];
                if let Err(e) = r
                    .read_exact(&mut self.name)
                    .and_then(|()| r.read_exact(&mut tail))
                {
                    self.error = Some(e);
                    return None;
                }
                let ft = FileType::from_raw_mode(u32::from(tail[0]) << 12);
                let ino = u64::from_le_bytes(tail[1..].try_into().unwrap_or_default());
                Some((&self.name, ft, ino))
            }
        }
    }
}

/// Part of a file, read by position.
struct Region<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for Region<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.end - self.at).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.at += n as u64;
        Ok(n)
    }
}

struct Record {
    rel: String,
    stamp: Stamp,
    /// Where the listing lies in the file.
    listing: Range<u64>,
}

/// A listing read this scan, to be kept.
struct Fresh {
    rel: String,
    stamp: Stamp,
    listing: Vec<u8>,
}

/// The cached listings of one source root, shared by the walk's workers:
/// which folders it has and where their listings are in the file, which
/// is kept open and read from as the walk reaches them.
pub(super) struct ListingCache {
    path: PathBuf,
    file: Option<File>,
    /// Sorted by relative path.
    records: Vec<Record>,
    /// Entries in all listings, and the bytes of their paths.
    size_hint: (usize, usize),
    used: Vec<AtomicBool>,
    fresh: Mutex<Vec<Fresh>>,
    scan_start_ns: i64,
    /// The file was there but did not decode (damaged, or another version's).
    damaged: bool,
}

impl ListingCache {
    /// Opens the cache at `path`; a missing or damaged file is an empty cache.
    pub(super) fn open(path: PathBuf) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Self::open_at(path, now)
    }

    /// As [`Self::open`], for a scan that starts at `scan_start_ns` (tests
    /// move it ahead to see folders they just made as settled).
    pub(super) fn open_at(path: PathBuf, scan_start_ns: i64) -> Self {
        let there = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        let decoded = SealedReader::open(&path, MAGIC).and_then(decode);
        let damaged = there && decoded.is_none();
        let (records, size_hint, file) = match decoded {
            Some((records, hint, file)) => (records, hint, Some(file)),
            None => (Vec::new(), (0, 0), None),
        };
        Self {
            damaged,
            path,
            file,
            used: records.iter().map(|_| AtomicBool::new(false)).collect(),
            records,
            size_hint,
            fresh: Mutex::new(Vec::new()),
            scan_start_ns,
        }
    }

    /// The cached listing of the folder at `rel` (`""` for the root), if its
    /// stamp is still `now`.
    pub(super) fn get(&self, rel: &str, now: &Stamp) -> Option<Listing> {
        let i = self
            .records
            .binary_search_by(|r| r.rel.as_str().cmp(rel))
            .ok()?;
        let r = &self.records[i];
        if r.stamp != *now {
            return None;
        }
        self.used[i].store(true, Ordering::Relaxed);
        Some(Listing::Cached(r.listing.clone()))
    }

    /// Whether folders are looked up at all (not for an empty cache: then a
    /// lookup would only cost a `stat`).
    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// How many entries the cached listings hold, and the bytes of their
    /// paths relative to the root: a walk the cache answers lists about
    /// that many files, and can make room for them once rather than grow
    /// by doubling (at millions of files, growing left up to 80% of the
    /// listing's room unused while the cache was held beside it).
    pub(super) fn size_hint(&self) -> (usize, usize) {
        self.size_hint
    }

    /// Whether the file was there but could not be used.
    pub(super) fn damaged(&self) -> bool {
        self.damaged
    }

    pub(super) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// How many cached listings this scan used.
    #[cfg(test)]
    pub(super) fn reused(&self) -> usize {
        self.used
            .iter()
            .filter(|u| u.load(Ordering::Relaxed))
            .count()
    }

    /// Keeps a listing just read, unless its folder changed too recently.
    pub(super) fn put(&self, rel: &str, stamp: Stamp, listing: Vec<u8>) {
        let settled = self.scan_start_ns.saturating_sub(SETTLED_NS);
        if stamp.mtime_ns >= settled || stamp.ctime_ns >= settled {
            return;
        }
        let mut fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
        fresh.push(Fresh {
            rel: rel.to_owned(),
            stamp,
            listing,
        });
    }

    /// Writes the listings used or read by this scan, if they differ from the
    /// file's. Failing to write only costs the next scan its reads.
    pub(super) fn save(self) -> std::io::Result<()> {
        let fresh = self.fresh.into_inner().unwrap_or_else(|e| e.into_inner());
        let used: Vec<&Record> = self
            .records
            .iter()
            .zip(&self.used)
            .filter(|(_, u)| u.load(Ordering::Relaxed))
            .map(|(r, _)| r)
            .collect();
        if fresh.is_empty() && used.len() == self.records.len() && !self.damaged {
            return Ok(());
        }
        // Written as it is made, the listings kept from the old file copied
        // from it a piece at a time: built whole, the new file was a second
        // copy of every listing (150 MiB for a folder of 4.6M files, on top
        // of the listing just read and the files found in it).
        let mut all: Vec<(&str, Stamp, Kept<'_>)> = fresh
            .iter()
            .map(|f| (f.rel.as_str(), f.stamp, Kept::Fresh(&f.listing)))
            .chain(
                used.iter()
                    .map(|r| (r.rel.as_str(), r.stamp, Kept::InFile(r.listing.clone()))),
            )
            .collect();
        // A folder read again this scan keeps what was read.
        all.sort_by(|a, b| a.0.cmp(b.0));
        all.dedup_by(|a, b| a.0 == b.0);
        let old = self.file.as_ref();
        cache_file::store_with(&self.path, false, |w| {
            let mut w = cache_file::SealedWriter::new(
                std::io::BufWriter::with_capacity(1 << 20, w),
                MAGIC,
            )?;
            w.put(&(all.len() as u64).to_le_bytes())?;
            let mut buf = Vec::new();
            for (rel, s, listing) in &all {
                w.put(&(rel.len() as u32).to_le_bytes())?;
                w.put(rel.as_bytes())?;
                for v in [s.mtime_ns as u64, s.ctime_ns as u64, s.ino, s.dev] {
                    w.put(&v.to_le_bytes())?;
                }
                let mut check = cache_file::Check::default();
                match listing {
                    Kept::Fresh(bytes) => {
                        w.put(&(bytes.len() as u32).to_le_bytes())?;
                        check.feed(bytes);
                        w.put(bytes)?;
                    }
                    Kept::InFile(range) => {
                        w.put(&((range.end - range.start) as u32).to_le_bytes())?;
                        let file = old.ok_or_else(|| {
                            std::io::Error::other("a cached listing without its file")
                        })?;
                        let mut at = range.start;
                        while at < range.end {
                            buf.resize(((range.end - at) as usize).min(1 << 20), 0);
                            file.read_exact_at(&mut buf, at)?;
                            check.feed(&buf);
                            w.put(&buf)?;
                            at += buf.len() as u64;
                        }
                    }
                }
                w.put(&check.finish())?;
            }
            w.finish()
        })
    }
}

/// Where a listing to keep comes from.
enum Kept<'a> {
    Fresh(&'a [u8]),
    /// Its place in the old file.
    InFile(Range<u64>),
}

/// The records of a cache file read forward (each listing checked entry by
/// entry, never held), the size hint, and the open file; `None` for a file
/// that does not decode whole.
fn decode(mut r: SealedReader) -> Option<(Vec<Record>, (usize, usize), File)> {
    let n = r.next(|i| i.u64())?;
    let n = r.fits(n, 40)?;
    let mut records: Vec<Record> = Vec::with_capacity(n);
    let (mut files, mut bytes) = (0usize, 0usize);
    for _ in 0..n {
        let (rel, stamp, len) = r.next(|i| {
            let rel = std::str::from_utf8(i.bytes()?).ok()?.to_owned();
            let stamp = Stamp {
                mtime_ns: i.u64()? as i64,
                ctime_ns: i.u64()? as i64,
                ino: i.u64()?,
                dev: i.u64()?,
            };
            Some((rel, stamp, u64::from(i.u32()?)))
        })?;
        let start = r.position();
        let prefix = match rel.len() {
            0 => 0,
            n => n + 1,
        };
        let mut read = 0u64;
        let check = std::cell::Cell::new(cache_file::Check::default());
        while read < len {
            let (size, name) = r.next(|i| {
                let entry = i.0;
                let (name, _, _) = next_entry(i)?;
                let size = entry.len() - i.0.len();
                let mut c = check.get();
                c.feed(&entry[..size]);
                check.set(c);
                Some((size, name.len()))
            })?;
            read += size as u64;
            files += 1;
            bytes += prefix + name;
        }
        let stored = r.next(|i| i.take(4).map(<[u8]>::to_vec))?;
        if read != len
            || stored != check.get().finish()
            || records.last().is_some_and(|p| p.rel >= rel)
        {
            return None; // an entry runs past its listing, a byte changed; or out of order
        }
        records.push(Record {
            rel,
            stamp,
            listing: start..start + len,
        });
    }
    r.is_done()
        .then(|| (records, (files, bytes), r.into_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(n: i64) -> Stamp {
        Stamp {
            mtime_ns: n,
            ctime_ns: n,
            ino: 1,
            dev: 1,
        }
    }

    fn listing(names: &[&str]) -> Vec<u8> {
        let mut l = Vec::new();
        for (i, n) in names.iter().enumerate() {
            push_entry(&mut l, n.as_bytes(), FileType::RegularFile, i as u64);
        }
        l
    }

    fn names(cache: &ListingCache, rel: &str) -> Vec<String> {
        let found = cache.get(rel, &stamp(1)).expect("cached");
        let mut r = EntryReader::new(&found, Some(cache));
        let mut out = Vec::new();
        while let Some((name, _, _)) = r.next() {
            out.push(String::from_utf8_lossy(name).into_owned());
        }
        assert!(r.error.is_none());
        out
    }

    /// A cache holding `folders`, each listing `names`, written as a scan would.
    fn write(path: &std::path::Path, folders: &[(&str, &[&str])]) {
        let cache = ListingCache::open_at(path.to_path_buf(), i64::MAX);
        for (rel, n) in folders {
            cache.put(rel, stamp(1), listing(n));
        }
        cache.save().unwrap();
    }

    #[test]
    fn listings_are_read_from_the_file_opened_even_once_another_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.dirs");
        write(&path, &[("", &["a", "x.png"]), ("a", &["y.png", "z.json"])]);
        let cache = ListingCache::open_at(path.clone(), i64::MAX);
        assert_eq!(cache.size_hint(), (4, 1 + 5 + 7 + 8));
        write(&path, &[("", &["other.png"])]);
        assert_eq!(names(&cache, ""), ["a", "x.png"]);
        assert_eq!(names(&cache, "a"), ["y.png", "z.json"]);
        assert!(
            cache.get("a", &stamp(2)).is_none(),
            "a changed folder is a miss"
        );
    }

    #[test]
    fn any_changed_byte_of_a_listing_makes_the_file_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.dirs");
        write(&path, &[("", &["a.png", "b.png"])]);
        let good = std::fs::read(&path).unwrap();
        // The listing follows magic, count, rel (length, no bytes), stamp and its length.
        let from = MAGIC.len() + 8 + 4 + 32 + 4;
        let len = 2 * (2 + 5 + 1 + 8);
        for at in from..from + len {
            let mut bytes = good.clone();
            bytes[at] ^= 0x40;
            std::fs::write(&path, &bytes).unwrap();
            let cache = ListingCache::open_at(path.clone(), i64::MAX);
            assert!(cache.damaged(), "byte {at} changed unseen");
        }
        std::fs::write(&path, &good).unwrap();
        assert!(!ListingCache::open_at(path, i64::MAX).damaged());
    }

    #[test]
    fn a_listing_that_runs_past_its_length_makes_the_file_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.dirs");
        write(&path, &[("", &["a"]), ("a", &["b.png"])]);
        let mut bytes = std::fs::read(&path).unwrap();
        // The root's listing (after magic, count, rel and stamp) is 1 byte shorter than said.
        let at = MAGIC.len() + 8 + 4 + 32;
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        bytes[at..at + 4].copy_from_slice(&(len - 1).to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let cache = ListingCache::open_at(path, i64::MAX);
        assert!(cache.damaged() && cache.is_empty());
    }
}
