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

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{FileType, Stat};

use crate::cache_file::{self, In, Out, unseal};

const MAGIC: &[u8; 16] = b"synup-dirs-v1\n\0\0";
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

/// The entries of an encoded listing: (name, type, inode). Stops at the first
/// malformed entry (listings are checked whole when the cache is opened).
pub(super) fn entries(listing: &[u8]) -> impl Iterator<Item = (&[u8], FileType, u64)> {
    let mut r = In(listing);
    std::iter::from_fn(move || next_entry(&mut r))
}

fn next_entry<'a>(r: &mut In<'a>) -> Option<(&'a [u8], FileType, u64)> {
    let n = r.u16()? as usize;
    let name = r.take(n)?;
    let ft = FileType::from_raw_mode(u32::from(r.u8()?) << 12);
    Some((name, ft, r.u64()?))
}

fn well_formed(listing: &[u8]) -> bool {
    let mut r = In(listing);
    while !r.is_empty() {
        if next_entry(&mut r).is_none() {
            return false;
        }
    }
    true
}

struct Record {
    rel: Range<usize>,
    stamp: Stamp,
    listing: Range<usize>,
}

/// A listing read this scan, to be kept.
struct Fresh {
    rel: String,
    stamp: Stamp,
    listing: Vec<u8>,
}

/// The cached listings of one source root, shared by the walk's workers.
pub(super) struct ListingCache {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Sorted by relative path.
    records: Vec<Record>,
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
        let bytes = std::fs::read(&path).unwrap_or_default();
        let records = decode(&bytes);
        let damaged = !bytes.is_empty() && records.is_none();
        let records = records.unwrap_or_default();
        Self {
            damaged,
            path,
            used: records.iter().map(|_| AtomicBool::new(false)).collect(),
            records,
            bytes,
            fresh: Mutex::new(Vec::new()),
            scan_start_ns,
        }
    }

    /// The cached listing of the folder at `rel` (`""` for the root), if its
    /// stamp is still `now`.
    pub(super) fn get(&self, rel: &str, now: &Stamp) -> Option<&[u8]> {
        let i = self
            .records
            .binary_search_by(|r| self.bytes[r.rel.clone()].cmp(rel.as_bytes()))
            .ok()?;
        let r = &self.records[i];
        if r.stamp != *now {
            return None;
        }
        self.used[i].store(true, Ordering::Relaxed);
        Some(&self.bytes[r.listing.clone()])
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
        let (mut files, mut bytes) = (0, 0);
        for r in &self.records {
            let prefix = match r.rel.len() {
                0 => 0,
                n => n + 1,
            };
            for (name, _, _) in entries(&self.bytes[r.listing.clone()]) {
                files += 1;
                bytes += prefix + name.len();
            }
        }
        (files, bytes)
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
        let mut all: Vec<(&[u8], Stamp, &[u8])> = used
            .iter()
            .map(|r| {
                (
                    &self.bytes[r.rel.clone()],
                    r.stamp,
                    &self.bytes[r.listing.clone()],
                )
            })
            .chain(
                fresh
                    .iter()
                    .map(|f| (f.rel.as_bytes(), f.stamp, f.listing.as_slice())),
            )
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.dedup_by(|a, b| a.0 == b.0);
        let size: usize = all.iter().map(|(r, _, l)| r.len() + l.len() + 48).sum();
        let mut out = Out::new(MAGIC, size + 32);
        out.u64(all.len() as u64);
        for (rel, s, listing) in all {
            out.bytes(rel);
            out.u64(s.mtime_ns as u64);
            out.u64(s.ctime_ns as u64);
            out.u64(s.ino);
            out.u64(s.dev);
            out.bytes(listing);
        }
        cache_file::store(&self.path, &out.seal())
    }
}

fn decode(bytes: &[u8]) -> Option<Vec<Record>> {
    let mut r = unseal(bytes, MAGIC)?;
    let n = r.u64()?;
    let n = r.fits(n, 40)?;
    let at = |r: &In<'_>| bytes.len() - 12 - r.0.len();
    let mut records: Vec<Record> = Vec::with_capacity(n);
    for _ in 0..n {
        let rel_len = r.u32()? as usize;
        let start = at(&r);
        std::str::from_utf8(r.take(rel_len)?).ok()?;
        let rel = start..start + rel_len;
        let stamp = Stamp {
            mtime_ns: r.u64()? as i64,
            ctime_ns: r.u64()? as i64,
            ino: r.u64()?,
            dev: r.u64()?,
        };
        let listing_len = r.u32()? as usize;
        let start = at(&r);
        if !well_formed(r.take(listing_len)?) {
            return None;
        }
        let listing = start..start + listing_len;
        if records
            .last()
            .is_some_and(|p| bytes[p.rel.clone()] >= bytes[rel.clone()])
        {
            return None; // out of order: lookups would miss
        }
        records.push(Record {
            rel,
            stamp,
            listing,
        });
    }
    r.is_empty().then_some(records)
}
