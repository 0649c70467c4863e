//! Checksum: SHA-1 of every unit file, read with many concurrent readers, with a
//! cache keyed by (path, size, mtime) so an unchanged tree is not read again.
//!
//! The cache is a file of fixed-size binary records in the order the files
//! were hashed, rewritten atomically (`cache_file::store_with`). It is never
//! held whole (52 bytes a file is 120 MB at a million units): since an
//! unchanged tree asks for its files in the same order, the n-th request is
//! checked against the n-th record, reading the file a window at a time, and
//! the few requests found elsewhere are matched in one more pass over the
//! records against their sorted keys. A record cut short by a crash at the
//! end is dropped silently; an unknown header makes the cache start empty,
//! with a warning. A cache in the older text format (`v1`) is read and
//! rewritten in the new one the next time anything is hashed.

use std::io::BufRead;
use std::path::PathBuf;

use rayon::prelude::*;
use sha1::{Digest, Sha1};

use super::Warning;

pub use crate::source::Sha1Digest;
use crate::source::{ObjectCopies, Source, SourceError};

/// A file's digest, or why it could not be read (boxed: failures are rare).
pub type HashResult = Result<Sha1Digest, Box<SourceError>>;

/// The digests of a hash pass, by request: 20 bytes each, with the few
/// failures beside them. As a `Vec<HashResult>` each cost 24 bytes (110 MiB
/// at 4.6 million files), held from the checksum until the plan is written.
/// More than a share of the budget are in an unnamed file from the start
/// ([`Digests::within`]), written and read back through a small cache of
/// blocks: the cache answers, and later stages read, in about request order.
#[derive(Debug, Default)]
pub struct Digests {
    sha1: Column,
    /// Requests that could not be read; their digest is a placeholder.
    failed: std::collections::BTreeMap<usize, Box<SourceError>>,
}

#[derive(Debug)]
enum Column {
    Held(Vec<Sha1Digest>),
    Spilled(SpilledDigests),
}

impl Default for Column {
    fn default() -> Self {
        Column::Held(Vec::new())
    }
}

/// Digests in a file, `len` of them, read a block at a time into one of
/// [`SLOTS`] cached blocks (the block's number picks its slot), and written
/// back when another block takes its slot.
#[derive(Debug)]
struct SpilledDigests {
    file: std::fs::File,
    len: usize,
    slots: Vec<std::sync::Mutex<Option<CachedBlock>>>,
    /// The first read or write that failed: its digests were answered with
    /// zeros, and the plan must not be written ([`Digests::unreadable`]).
    failed_read: std::sync::OnceLock<String>,
}

/// A block's number, its bytes, and whether they changed since read.
type CachedBlock = (usize, Vec<u8>, bool);

/// Digests in a block read from a spilled column: one page's worth.
const BLOCK_DIGESTS: usize = 4096 / 20;
/// Blocks cached: a window of units reads from a few regions at once (one
/// per folder of a spec, say), by several threads; 64 blocks are 260 KiB.
const SLOTS: usize = 64;

impl SpilledDigests {
    /// `len` zero digests in a new unnamed file in `dir`.
    fn create(dir: &std::path::Path, len: usize) -> std::io::Result<Self> {
        let file = crate::spill::unnamed_file(dir)?;
        file.set_len((len * 20) as u64)?;
        Ok(Self {
            file,
            len,
            slots: (0..SLOTS).map(|_| std::sync::Mutex::new(None)).collect(),
            failed_read: std::sync::OnceLock::new(),
        })
    }

    /// `f` of digest `i`'s 20 bytes in its cached block, and whether it
    /// changed them. The block the slot held before is written back first
    /// if it changed.
    fn with_digest<T>(
        &self,
        i: usize,
        f: impl FnOnce(&mut [u8]) -> (T, bool),
    ) -> std::io::Result<T> {
        use std::os::unix::fs::FileExt;
        assert!(i < self.len, "digest {i} of {}", self.len);
        let block = i / BLOCK_DIGESTS;
        let mut slot = self.slots[block % SLOTS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(|(b, _, _)| *b != block) {
            let mut bytes = match slot.take() {
                Some((old, bytes, true)) => {
                    self.file
                        .write_all_at(&bytes, (old * BLOCK_DIGESTS * 20) as u64)?;
                    bytes
                }
                Some((_, bytes, false)) => bytes,
                None => Vec::new(),
            };
            let first = block * BLOCK_DIGESTS;
            let n = BLOCK_DIGESTS.min(self.len - first);
            bytes.resize(n * 20, 0);
            self.file.read_exact_at(&mut bytes, (first * 20) as u64)?;
            *slot = Some((block, bytes, false));
        }
        let (_, bytes, dirty) = slot.as_mut().expect("filled above");
        let at = (i % BLOCK_DIGESTS) * 20;
        let (out, changed) = f(&mut bytes[at..at + 20]);
        *dirty |= changed;
        Ok(out)
    }

    fn get(&self, i: usize) -> std::io::Result<Sha1Digest> {
        self.with_digest(i, |d| (d.try_into().expect("20 bytes"), false))
    }

    fn set(&self, i: usize, digest: &Sha1Digest) -> std::io::Result<()> {
        self.with_digest(i, |d| {
            d.copy_from_slice(digest);
            ((), true)
        })
    }

    /// Remembers the first failure: every digest since may be wrong.
    fn failed(&self, e: &std::io::Error) {
        self.failed_read.get_or_init(|| e.to_string());
    }
}

impl Digests {
    /// `n` placeholder digests, held.
    pub fn held(n: usize) -> Self {
        Self {
            sha1: Column::Held(vec![[0; 20]; n]),
            failed: Default::default(),
        }
    }

    /// `n` placeholder digests: held if they take at most `share` bytes
    /// (or the spill folder `dir` cannot take them), else in a file there.
    pub fn within(n: usize, dir: &std::path::Path, share: usize) -> Self {
        if n * 20 <= share {
            return Self::held(n);
        }
        match SpilledDigests::create(dir, n) {
            Ok(s) => Self {
                sha1: Column::Spilled(s),
                failed: Default::default(),
            },
            Err(_) => Self::held(n),
        }
    }

    /// The digests of these results (tests build them so).
    #[cfg(test)]
    pub(crate) fn from_results(results: Vec<HashResult>) -> Self {
        let mut d = Self::held(results.len());
        for (i, r) in results.into_iter().enumerate() {
            d.set(i, r);
        }
        d
    }

    pub fn len(&self) -> usize {
        match &self.sha1 {
            Column::Held(v) => v.len(),
            Column::Spilled(s) => s.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Request `i`'s digest, or why it could not be read. Panics past the
    /// end, like a slice. A spilled digest that cannot be read back is
    /// answered with zeros and remembered ([`Self::unreadable`]).
    pub fn get(&self, i: usize) -> Result<Sha1Digest, &SourceError> {
        if let Some(e) = self.failed.get(&i) {
            return Err(e);
        }
        match &self.sha1 {
            Column::Held(v) => Ok(v[i]),
            Column::Spilled(s) => Ok(s.get(i).unwrap_or_else(|e| {
                s.failed(&e);
                [0; 20]
            })),
        }
    }

    /// Why spilled digests could not be read back, if one could not: every
    /// stage that read them is then wrong, and the plan is not written.
    pub fn unreadable(&self) -> Option<&str> {
        match &self.sha1 {
            Column::Held(_) => None,
            Column::Spilled(s) => s.failed_read.get().map(String::as_str),
        }
    }

    pub fn is_ok(&self, i: usize) -> bool {
        !self.failed.contains_key(&i)
    }

    /// The requests that could not be read, in order.
    pub fn failures(&self) -> impl Iterator<Item = (usize, &SourceError)> + '_ {
        self.failed.iter().map(|(&i, e)| (i, &**e))
    }

    /// Whether the digests are in a file.
    pub fn spilled(&self) -> bool {
        matches!(self.sha1, Column::Spilled(_))
    }

    fn set(&mut self, i: usize, result: HashResult) {
        match result {
            Ok(d) => {
                match &mut self.sha1 {
                    Column::Held(held) => held[i] = d,
                    Column::Spilled(s) => {
                        if let Err(e) = s.set(i, &d) {
                            s.failed(&e);
                        }
                    }
                }
                self.failed.remove(&i);
            }
            Err(e) => {
                self.failed.insert(i, e);
            }
        }
    }
}

pub use crate::source::digest::sha1_file;

/// Lower-case hex of a digest, the way the plan writes it (one allocation of
/// exactly 40 bytes; this runs once per planned file).
pub fn hex(d: &Sha1Digest) -> String {
    let mut out = [0u8; 40];
    hex::encode_to_slice(d, &mut out).expect("40 bytes hold 20 in hex");
    std::str::from_utf8(&out).expect("hex is ASCII").to_owned()
}

const HEADER_V1: &str = "synup-checksums v1";
/// Records without their own check: still read (so an upgrade does not
/// re-read a whole dataset), and rewritten as v3 by the next save.
const HEADER_V2: &[u8] = b"synup-checksums v2\n";
const HEADER: &[u8] = b"synup-checksums v3\n";
/// key (16) + size (8) + mtime (8) + SHA-1 (20), little-endian numbers.
const FIELDS: usize = 52;
/// The fields and their check ([`crate::cache_file::append_check`]).
const RECORD: usize = FIELDS + 4;

/// Entries are keyed by a digest of the path (16 bytes instead of the path
/// itself: at a million files this halves the cache's footprint).
type PathKey = [u8; 16];

fn path_key(path: &str) -> PathKey {
    key_of(Sha1::new_with_prefix(path.as_bytes()))
}

/// The first 16 bytes of the path's SHA-1, fed whole or piece by piece.
fn key_of(hasher: Sha1) -> PathKey {
    let d: [u8; 20] = hasher.finalize().into();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CacheEntry {
    key: PathKey,
    size: u64,
    mtime_ns: i64,
    sha1: Sha1Digest,
}

impl CacheEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mtime_ns.to_le_bytes());
        out.extend_from_slice(&self.sha1);
        crate::cache_file::append_check(out, FIELDS);
    }

    fn decode(r: &[u8]) -> Self {
        let mut e = CacheEntry {
            key: [0; 16],
            size: 0,
            mtime_ns: 0,
            sha1: [0; 20],
        };
        e.key.copy_from_slice(&r[..16]);
        e.size = u64::from_le_bytes(r[16..24].try_into().expect("8 bytes"));
        e.mtime_ns = i64::from_le_bytes(r[24..32].try_into().expect("8 bytes"));
        e.sha1.copy_from_slice(&r[32..52]);
        e
    }
}

/// How many records a lookup or a save holds at once (3.4 MB of them): the
/// cache of a million files is streamed through, never held whole.
const WINDOW: usize = 1 << 16;

#[derive(Debug)]
pub struct ChecksumCache {
    path: PathBuf,
    records: Records,
    changed: bool,
    pub warning: Option<Warning>,
}

/// Where a cache's records are read from, window by window.
#[derive(Debug)]
enum Records {
    /// The file, in the current format: records after the header.
    File(crate::cache_file::RecordFile),
    /// Converted from the older text format (small, and read once).
    Memory(Vec<u8>),
}

impl crate::cache_file::Records for Records {
    fn count(&self) -> usize {
        match self {
            Records::File(file) => file.len(),
            Records::Memory(bytes) => bytes.len() / RECORD,
        }
    }

    fn record_len(&self) -> usize {
        match self {
            Records::File(file) => crate::cache_file::Records::record_len(file),
            Records::Memory(_) => RECORD,
        }
    }

    fn read(&self, start: usize, end: usize, buf: &mut Vec<u8>) {
        match self {
            Records::File(file) => file.read(start, end, buf),
            Records::Memory(bytes) => {
                buf.clear();
                let end = end.min(self.count());
                if start < end {
                    buf.extend_from_slice(&bytes[start * RECORD..end * RECORD]);
                }
            }
        }
    }
}

impl ChecksumCache {
    /// Opens the cache at `path`; a missing file is an empty cache.
    pub fn open(path: PathBuf) -> Self {
        let (records, changed, warning) = match open_records(&path) {
            Ok((records, current)) => (records, !current, None),
            Err(why) => (
                Records::Memory(Vec::new()),
                true,
                Some(Warning::new(
                    crate::stages::WarningCode::ChecksumCacheRebuilt,
                    format!(
                        "checksum cache {} is unreadable ({why}); rebuilding it",
                        path.display()
                    ),
                )),
            ),
        };
        Self {
            path,
            records,
            changed,
            warning,
        }
    }

    /// How many entries the file held.
    fn len(&self) -> usize {
        crate::cache_file::Records::count(&self.records)
    }

    /// The cached digest of each of `n` files, set in `results` (`probe(i)`
    /// is file i's key and its size and mtime), and whether the cache
    /// answered for it (where it did not, the digest is a placeholder and
    /// the file must be read), and how
    /// many it answered at their own position. Looked up by position, a window at a time
    /// ([`crate::cache_file::find_by_position`]); a record of the file at an
    /// earlier size or mtime means it is read again.
    ///
    /// Placeholders are plain digests, not errors: an error is a heap
    /// allocation, and one per file was 200 MiB at 4.6 million files, held
    /// until the cache had answered for them.
    fn find_all(
        &self,
        n: usize,
        probe: impl Fn(usize) -> (PathKey, (u64, i64)) + Sync,
        results: &mut Digests,
    ) -> (Vec<bool>, usize) {
        let mut found = vec![false; n];
        let in_place = crate::cache_file::find_by_position(
            &self.records,
            WINDOW,
            n,
            probe,
            |r| CacheEntry::decode(r).key,
            |stamp, r| {
                let e = CacheEntry::decode(r);
                (crate::cache_file::intact(r, FIELDS) && stamp == (e.size, e.mtime_ns))
                    .then_some(e.sha1)
            },
            |i, sha1| {
                results.set(i, Ok(sha1));
                found[i] = true;
            },
        );
        (found, in_place)
    }

    /// Rewrites the cache with this run's files, if anything changed. Errors are
    /// returned as a warning: a cache that cannot be written costs only time.
    pub fn save(
        &mut self,
        requests: &(impl RequestList + ?Sized),
        results: &Digests,
    ) -> Option<Warning> {
        let hashed = results.len() - results.failed.len();
        if !self.changed && hashed == self.len() {
            return None;
        }
        let result = crate::cache_file::store_with(&self.path, true, |file| {
            file.write_all(HEADER)?;
            let mut buf = Vec::with_capacity(RECORD * WINDOW);
            for start in (0..results.len()).step_by(WINDOW) {
                let end = (start + WINDOW).min(results.len());
                // Keys are SHA-1s of paths: computed in parallel, a window at a time.
                let window: Vec<Option<CacheEntry>> = (start..end)
                    .into_par_iter()
                    .map(|i| {
                        let sha1 = results.get(i).ok()?;
                        let req = requests.get(i);
                        Some(CacheEntry {
                            key: req.key(),
                            size: req.size,
                            mtime_ns: req.mtime_ns,
                            sha1,
                        })
                    })
                    .collect();
                buf.clear();
                for r in window.iter().flatten() {
                    r.encode(&mut buf);
                }
                file.write_all(&buf)?;
            }
            Ok(())
        });
        result.err().map(|e| {
            Warning::new(
                crate::stages::WarningCode::ChecksumCacheUnwritable,
                format!("cannot write checksum cache {}: {e}", self.path.display()),
            )
        })
    }
}

/// The records of the cache file at `path` and whether it is in the current
/// format; a missing file has none.
fn open_records(path: &std::path::Path) -> Result<(Records, bool), String> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(_) => return Ok((Records::Memory(Vec::new()), true)),
    };
    let len = file.metadata().map_err(|e| e.to_string())?.len() as usize;
    let mut head = Vec::with_capacity(HEADER.len());
    (&mut file)
        .take(HEADER.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    for (header, record) in [(HEADER, RECORD), (HEADER_V2, FIELDS)] {
        if head == header {
            // A torn last record (a crash mid-write) is not counted.
            let count = (len - header.len()) / record;
            let records =
                crate::cache_file::RecordFile::new(file, header.len() as u64, record, count);
            return Ok((Records::File(records), header == HEADER));
        }
    }
    if head.starts_with(HEADER_V1.as_bytes()) {
        // The older text format, read line by line and converted.
        let entries = parse_v1(std::io::BufReader::new(head.as_slice().chain(file)))?;
        let mut records = Vec::with_capacity(entries.len() * RECORD);
        for e in &entries {
            e.encode(&mut records);
        }
        return Ok((Records::Memory(records), false));
    }
    if HEADER.starts_with(&head) || HEADER_V2.starts_with(&head) {
        // Cut within the header by a crash: nothing was cached yet.
        return Ok((Records::Memory(Vec::new()), false));
    }
    // Anything else is not read further: it may be large and is not ours.
    Err("unknown header".to_owned())
}

/// The older text format: `sha1 size mtime "path"` lines after a header line.
fn parse_v1(mut reader: impl BufRead) -> Result<Vec<CacheEntry>, String> {
    let mut entries = Vec::new();
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 || !line.ends_with('\n') {
            // The end, or the last record cut by a crash: drop it.
            return Ok(entries);
        }
        let record = line.trim_end_matches('\n');
        if first {
            first = false;
            if record != HEADER_V1 {
                return Err("unknown header".to_owned());
            }
            continue;
        }
        let mut parts = record.splitn(4, ' ');
        let (Some(sha), Some(size), Some(mtime), Some(path)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed record".to_owned());
        };
        let mut sha1 = [0u8; 20];
        hex::decode_to_slice(sha, &mut sha1).map_err(|_| "malformed checksum".to_owned())?;
        let size = size.parse().map_err(|_| "malformed size".to_owned())?;
        let mtime_ns = mtime.parse().map_err(|_| "malformed mtime".to_owned())?;
        let path: String = serde_json::from_str(path).map_err(|_| "malformed path".to_owned())?;
        entries.push(CacheEntry {
            key: path_key(&path),
            size,
            mtime_ns,
            sha1,
        });
    }
}

/// A file to hash.
#[derive(Debug, Clone)]
pub struct HashRequest<'a> {
    /// Its root; the path under it is joined only while hashing, so a million
    /// requests do not hold a million absolute paths.
    pub source: &'a dyn Source,
    pub rel: std::borrow::Cow<'a, str>,
    pub size: u64,
    /// The mtime, or for an object a number from its version tag.
    pub mtime_ns: i64,
}

impl HashRequest<'_> {
    /// The cache's key: a digest of the root's name and the path, hashed
    /// piece by piece so no path is allocated.
    fn key(&self) -> PathKey {
        let mut h = Sha1::new();
        h.update(self.source.cache_prefix());
        h.update(self.rel.as_bytes());
        key_of(h)
    }

    pub fn sha1(&self) -> HashResult {
        self.source.sha1(&self.rel, &mut |_| {}).map_err(Box::new)
    }

    fn sha1_seeing_head(&self, head: &mut dyn FnMut(&[u8])) -> HashResult {
        self.source.sha1(&self.rel, head).map_err(Box::new)
    }

    fn sha1_keeping(&self, copies: &ObjectCopies) -> HashResult {
        self.source
            .sha1_keeping(&self.rel, self.size, copies)
            .map_err(Box::new)
    }
}

/// The files a pass hashes, by position. A planner builds each request when
/// it is looked at: a million requests held at once cost about 110 MB.
pub trait RequestList: Sync {
    fn len(&self) -> usize;
    fn get(&self, i: usize) -> HashRequest<'_>;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RequestList for [HashRequest<'_>] {
    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    fn get(&self, i: usize) -> HashRequest<'_> {
        self[i].clone()
    }
}

/// Sees the first chunk of each local file a hash pass reads: `(request
/// index, bytes)`, from the reader threads.
pub type HeadObserver<'a> = &'a (dyn Fn(usize, &[u8]) + Sync);

/// Counts for the plan's progress and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HashStats {
    pub cached: u64,
    pub hashed: u64,
    pub bytes_read: u64,
}

/// Hashes every request: cache lookups first (on the global pool), then the
/// misses with `readers` concurrent readers. A warm run starts no extra threads.
/// Told what the hash pass will read, then each file as it is read (from
/// the readers' threads), for a progress bar.
pub trait HashProgress: Sync {
    fn start(&self, files: u64, bytes: u64);
    fn read(&self, bytes: u64);
}

/// What a hash pass does besides hashing: who sees each local file's first
/// chunk, where remote objects are copied for apply, who hears progress.
#[derive(Default, Clone, Copy)]
pub struct HashSideEffects<'a> {
    pub heads: Option<HeadObserver<'a>>,
    pub copies: Option<&'a ObjectCopies>,
    pub progress: Option<&'a dyn HashProgress>,
    /// Where the digests go past `share` bytes (a spill folder), if
    /// anywhere; otherwise they are held.
    pub spill: Option<(&'a std::path::Path, usize)>,
}

pub fn hash_all(
    requests: &(impl RequestList + ?Sized),
    cache: &mut ChecksumCache,
    readers: usize,
    side: HashSideEffects<'_>,
) -> (Digests, HashStats) {
    let HashSideEffects {
        heads,
        copies,
        progress,
        spill,
    } = side;
    let mut results = match spill {
        Some((dir, share)) => Digests::within(requests.len(), dir, share),
        None => Digests::held(requests.len()),
    };
    let (found, in_place) = cache.find_all(
        requests.len(),
        |i| {
            let r = requests.get(i);
            (r.key(), (r.size, r.mtime_ns))
        },
        &mut results,
    );
    let misses: Vec<usize> = (0..found.len()).filter(|&i| !found[i]).collect();
    drop(found);
    // Records found away from their request's position (the files are asked
    // for in another order now) are rewritten in this order, so the next run
    // finds each at its place instead of sorting every key again.
    if in_place < requests.len() - misses.len() {
        cache.changed = true;
    }
    let mut stats = HashStats {
        cached: (requests.len() - misses.len()) as u64,
        ..HashStats::default()
    };
    if !misses.is_empty() {
        if let Some(p) = progress {
            let bytes = misses.iter().map(|&i| requests.get(i).size).sum();
            p.start(misses.len() as u64, bytes);
        }
        let work = || {
            misses
                .par_iter()
                .map(|&i| {
                    let r = requests.get(i);
                    let result = match (copies, heads) {
                        (Some(copies), _) if r.source.is_remote() => r.sha1_keeping(copies),
                        (_, Some(see)) => r.sha1_seeing_head(&mut |b| see(i, b)),
                        _ => r.sha1(),
                    };
                    if let Some(p) = progress {
                        p.read(requests.get(i).size);
                    }
                    result
                })
                .collect::<Vec<_>>()
        };
        let hashed = match rayon::ThreadPoolBuilder::new()
            .num_threads(readers.max(1))
            .build()
        {
            Ok(pool) => pool.install(work),
            Err(_) => work(),
        };
        for (i, result) in misses.into_iter().zip(hashed) {
            if result.is_ok() {
                stats.hashed += 1;
                stats.bytes_read += requests.get(i).size;
            }
            results.set(i, result);
        }
        cache.changed = true;
    }
    (results, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::LocalSource;
    use std::path::Path;

    #[test]
    fn digests_keep_failures_beside_the_digests_and_a_later_success_clears_one() {
        let failed = || {
            Err(Box::new(SourceError::new(
                crate::source::SourceErrorKind::NotFound,
                "b",
            )))
        };
        let mut d = Digests::from_results(vec![Ok([1; 20]), failed(), Ok([3; 20]), failed()]);
        assert_eq!(d.len(), 4);
        assert_eq!(d.get(0), Ok([1; 20]));
        assert!(d.get(1).is_err() && !d.is_ok(1) && d.is_ok(2));
        assert_eq!(d.failures().map(|(i, _)| i).collect::<Vec<_>>(), [1, 3]);
        d.set(1, Ok([2; 20]));
        assert_eq!(d.get(1), Ok([2; 20]));
        assert_eq!(d.failures().map(|(i, _)| i).collect::<Vec<_>>(), [3]);
    }

    /// Spilled digests read back as held ones, across blocks and cache
    /// slots, in order and out of it; one that cannot be read back is
    /// zeros, remembered.
    #[test]
    fn spilled_digests_read_back_as_held_and_a_failed_read_is_remembered() {
        let n = BLOCK_DIGESTS * (SLOTS + 3) + 7;
        let digest = |i: usize| -> Sha1Digest { std::array::from_fn(|b| (i * 31 + b) as u8) };
        let failed = || {
            Err(Box::new(SourceError::new(
                crate::source::SourceErrorKind::Other,
                "x",
            )))
        };
        let dir = tempfile::tempdir().unwrap();
        assert!(
            !Digests::within(n, dir.path(), n * 20).spilled(),
            "within its share: held"
        );
        std::fs::write(dir.path().join("in-the-way"), "").unwrap();
        let no_folder = Digests::within(n, &dir.path().join("in-the-way"), 0);
        assert!(
            !no_folder.spilled(),
            "a spill folder that cannot be made: held"
        );
        let mut d = Digests::within(n, dir.path(), 0);
        assert!(d.spilled());
        // Set out of order (a cache's answers, then the files read), across
        // more blocks than slots, so changed blocks are written back.
        for i in (0..n).step_by(2).chain((1..n).step_by(2).rev()) {
            d.set(i, if i == 5 { failed() } else { Ok(digest(i)) });
        }
        let order = (0..n)
            .chain((0..n).rev())
            .chain((0..n).step_by(BLOCK_DIGESTS * SLOTS - 1));
        for i in order {
            match i {
                5 => assert!(d.get(i).is_err()),
                _ => assert_eq!(d.get(i), Ok(digest(i)), "{i}"),
            }
        }
        assert_eq!(d.unreadable(), None);
        let Column::Spilled(s) = &d.sha1 else {
            unreachable!()
        };
        s.file.set_len(0).unwrap();
        s.slots.iter().for_each(|slot| *slot.lock().unwrap() = None);
        let far = n - 1;
        assert_eq!(d.get(far), Ok([0; 20]));
        assert!(d.unreadable().is_some());
    }

    #[test]
    fn hex_is_the_lower_case_text_of_every_byte() {
        let d: Sha1Digest = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        assert_eq!(hex(&d), hex::encode(d));
        assert_eq!(hex(&[0xff; 20]), "f".repeat(40));
    }

    #[test]
    fn known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            hex::encode(sha1_file(&p).unwrap()),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    /// What a progress bar hears: one start with what will be read, then
    /// each file read; nothing when everything is cached.
    #[test]
    fn progress_hears_what_is_read_and_nothing_from_the_cache() {
        use std::sync::Mutex;
        #[derive(Default)]
        struct Heard(Mutex<(Vec<(u64, u64)>, u64)>);
        impl HashProgress for Heard {
            fn start(&self, files: u64, bytes: u64) {
                self.0.lock().unwrap().0.push((files, bytes));
            }
            fn read(&self, bytes: u64) {
                self.0.lock().unwrap().1 += bytes;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"abc").unwrap();
        std::fs::write(dir.path().join("b"), b"hello").unwrap();
        let src = LocalSource::new(dir.path().to_path_buf());
        let req = [("a", 3), ("b", 5)].map(|(rel, size)| HashRequest {
            source: &src,
            rel: rel.into(),
            size,
            mtime_ns: 1,
        });
        let cache_path = dir.path().join("cache");
        let mut cache = ChecksumCache::open(cache_path.clone());
        let heard = Heard::default();
        let (r, _) = hash_all(
            &req[..],
            &mut cache,
            2,
            HashSideEffects {
                progress: Some(&heard),
                ..Default::default()
            },
        );
        assert_eq!(*heard.0.lock().unwrap(), (vec![(2, 8)], 8));
        assert!(cache.save(&req[..], &r).is_none());
        let mut cache = ChecksumCache::open(cache_path);
        let again = Heard::default();
        hash_all(
            &req[..],
            &mut cache,
            2,
            HashSideEffects {
                progress: Some(&again),
                ..Default::default()
            },
        );
        assert_eq!(*again.0.lock().unwrap(), (vec![], 0));
    }

    #[test]
    fn cache_round_trip_skips_unchanged_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let cache_path = dir.path().join("cache");
        let src = LocalSource::new(dir.path().to_path_buf());
        let req = [at_3_bytes_7ns(&src, "f")];
        let mut cache = ChecksumCache::open(cache_path.clone());
        let (r, stats) = hash_all(&req[..], &mut cache, 2, HashSideEffects::default());
        assert_eq!(stats.hashed, 1);
        assert!(cache.save(&req[..], &r).is_none());
        let mut cache = ChecksumCache::open(cache_path.clone());
        let (r, stats) = hash_all(&req[..], &mut cache, 2, HashSideEffects::default());
        assert_eq!((stats.cached, stats.hashed), (1, 0));
        assert_eq!(
            hex::encode(r.get(0).unwrap()),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        // A different mtime means the file is read again.
        let req2 = [HashRequest {
            source: &src,
            rel: "f".into(),
            size: 3,
            mtime_ns: 8,
        }];
        let (_, stats) = hash_all(&req2[..], &mut cache, 2, HashSideEffects::default());
        assert_eq!(stats.hashed, 1);
    }

    fn saved_cache(dir: &Path, rels: &[&str]) -> PathBuf {
        let cache_path = dir.join("cache");
        let src = LocalSource::new(dir.to_path_buf());
        let reqs: Vec<HashRequest> = rels
            .iter()
            .map(|rel| HashRequest {
                source: &src,
                rel: (*rel).into(),
                size: 3,
                mtime_ns: 7,
            })
            .collect();
        let results = Digests::from_results(vec![Ok([1u8; 20]); reqs.len()]);
        let mut cache = ChecksumCache::open(cache_path.clone());
        assert!(cache.save(&reqs[..], &results).is_none());
        cache_path
    }

    /// Files asked for in another order are all answered from the cache, and
    /// the cache is rewritten in the new order so the next run finds each
    /// at its own position.
    #[test]
    fn a_new_order_is_answered_and_saved_so_the_next_run_finds_each_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let cache_path = saved_cache(dir.path(), &["a", "b", "c"]);
        let src = LocalSource::new(dir.path().to_path_buf());
        let req = ["c", "a", "b"].map(|rel| at_3_bytes_7ns(&src, rel));
        let in_place = |cache: &ChecksumCache| {
            let probe = |i: usize| (req[i].key(), (req[i].size, req[i].mtime_ns));
            cache.find_all(3, probe, &mut Digests::held(3)).1
        };
        let mut cache = ChecksumCache::open(cache_path.clone());
        assert_eq!(in_place(&cache), 0);
        let (r, stats) = hash_all(&req[..], &mut cache, 1, HashSideEffects::default());
        assert_eq!((stats.cached, stats.hashed), (3, 0));
        assert!(cache.save(&req[..], &r).is_none());
        let cache = ChecksumCache::open(cache_path);
        assert_eq!(in_place(&cache), 3);
    }

    #[test]
    fn torn_last_record_is_dropped_silently() {
        let dir = tempfile::tempdir().unwrap();
        let cache_path = saved_cache(dir.path(), &["a", "b"]);
        let bytes = std::fs::read(&cache_path).unwrap();
        assert_eq!(bytes.len(), HEADER.len() + 2 * RECORD);
        std::fs::write(&cache_path, &bytes[..bytes.len() - 10]).unwrap();
        let cache = ChecksumCache::open(cache_path.clone());
        assert!(cache.warning.is_none());
        assert_eq!(cache.len(), 1);
        // Cut inside the header: an empty cache, no warning.
        std::fs::write(&cache_path, &HEADER[..5]).unwrap();
        let cache = ChecksumCache::open(cache_path);
        assert!(cache.warning.is_none());
        assert!((cache.len() == 0));
    }

    #[test]
    fn a_requests_key_is_the_key_of_its_joined_path() {
        let src = LocalSource::new(PathBuf::from("/data/root"));
        let req = HashRequest {
            source: &src,
            rel: "u1/a.png".into(),
            size: 1,
            mtime_ns: 1,
        };
        assert_eq!(req.key(), path_key("/data/root/u1/a.png"));
    }

    /// A request for `rel` under `src`, 3 bytes at mtime 7 ns.
    fn at_3_bytes_7ns<'a>(src: &'a LocalSource, rel: &'a str) -> HashRequest<'a> {
        HashRequest {
            source: src,
            rel: rel.into(),
            size: 3,
            mtime_ns: 7,
        }
    }

    /// What `find_all` answers for each probe, as `Some(digest)` or `None`.
    fn found(cache: &ChecksumCache, probes: &[(PathKey, u64, i64)]) -> Vec<Option<Sha1Digest>> {
        let mut results = Digests::held(probes.len());
        let (found, _) = cache.find_all(
            probes.len(),
            |i| (probes[i].0, (probes[i].1, probes[i].2)),
            &mut results,
        );
        found
            .into_iter()
            .enumerate()
            .map(|(i, found)| found.then(|| results.get(i).unwrap()))
            .collect()
    }

    #[test]
    fn entries_are_found_by_path_size_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let rels: Vec<String> = (0..500).map(|i| format!("u{i}/f.png")).collect();
        let refs: Vec<&str> = rels.iter().map(String::as_str).collect();
        let cache = ChecksumCache::open(saved_cache(dir.path(), &refs));
        assert_eq!(cache.len(), 500);
        let key = |rel: &str| path_key(&dir.path().join(rel).to_string_lossy());
        let hit = Some([1u8; 20]);
        // In saved order, every file is at its position.
        let all: Vec<_> = refs.iter().map(|r| (key(r), 3, 7)).collect();
        assert!(found(&cache, &all).iter().all(|f| *f == hit));
        // Out of order, a changed size or mtime, and a file never saved.
        let probes = [
            (key("u7/f.png"), 3, 7),
            (key("u1/f.png"), 3, 7),
            (key("u9/f.png"), 4, 7),
            (key("u3/f.png"), 3, 8),
            (key("u500/f.png"), 3, 7),
            (key("u499/f.png"), 3, 7),
        ];
        assert_eq!(
            found(&cache, &probes),
            [hit, hit, None, None, None, hit],
            "elsewhere, at its position, stale size, stale mtime, unknown, elsewhere"
        );
    }

    /// A file added at the front shifts every later position by one: each is
    /// still found, across windows, by the pass over all records.
    #[test]
    fn files_shifted_from_their_position_are_found_across_windows() {
        let dir = tempfile::tempdir().unwrap();
        let n = WINDOW + 10;
        let rels: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
        let refs: Vec<&str> = rels.iter().map(String::as_str).collect();
        let cache = ChecksumCache::open(saved_cache(dir.path(), &refs));
        assert_eq!(cache.len(), n);
        let key = |rel: &str| path_key(&dir.path().join(rel).to_string_lossy());
        let mut probes = vec![(key("new"), 3, 7)];
        probes.extend(refs.iter().map(|r| (key(r), 3, 7)));
        let f = found(&cache, &probes);
        assert_eq!(f[0], None);
        assert!(f[1..].iter().all(|x| *x == Some([1u8; 20])));
    }

    #[test]
    fn text_cache_of_earlier_versions_is_read_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let cache_path = dir.path().join("cache");
        let v1 = format!(
            "{HEADER_V1}\n{} 3 7 \"/x\"\na9993e36470681",
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        std::fs::write(&cache_path, v1).unwrap();
        let mut cache = ChecksumCache::open(cache_path.clone());
        assert!(cache.warning.is_none());
        assert_eq!(cache.len(), 1);
        let sha = found(&cache, &[(path_key("/x"), 3, 7)])[0].unwrap();
        assert_eq!(hex::encode(sha), "a9993e364706816aba3e25717850c26c9cd0d89d");
        // Saving rewrites it in the current format even when nothing was hashed.
        let src = LocalSource::new(PathBuf::from("/"));
        let req = [at_3_bytes_7ns(&src, "x")];
        assert!(
            cache
                .save(&req[..], &Digests::from_results(vec![Ok(sha)]))
                .is_none()
        );
        assert!(std::fs::read(&cache_path).unwrap().starts_with(HEADER));
    }

    /// One changed byte anywhere in a record makes it a miss (that file is
    /// read again), never a wrong answer; the next save writes it whole.
    #[test]
    fn a_damaged_record_is_a_miss_and_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"abc").unwrap();
        let cache_path = saved_cache(dir.path(), &["a", "b"]);
        let clean = std::fs::read(&cache_path).unwrap();
        let key = |rel: &str| path_key(&dir.path().join(rel).to_string_lossy());
        let probes = [(key("a"), 3, 7), (key("b"), 3, 7)];
        for at in 0..RECORD {
            let mut bytes = clean.clone();
            bytes[HEADER.len() + at] ^= 0x10;
            std::fs::write(&cache_path, &bytes).unwrap();
            let cache = ChecksumCache::open(cache_path.clone());
            assert_eq!(
                found(&cache, &probes),
                [None, Some([1u8; 20])],
                "byte {at} of the first record changed"
            );
        }
        // Planned again, the file is read and its record written anew.
        let src = LocalSource::new(dir.path().to_path_buf());
        let reqs = [at_3_bytes_7ns(&src, "a")];
        let mut cache = ChecksumCache::open(cache_path.clone());
        let (r, stats) = hash_all(&reqs[..], &mut cache, 1, HashSideEffects::default());
        assert_eq!((stats.cached, stats.hashed), (0, 1));
        assert!(cache.save(&reqs[..], &r).is_none());
        let cache = ChecksumCache::open(cache_path);
        assert_eq!(found(&cache, &probes[..1]), [r.get(0).ok()]);
    }

    /// A cache from before records carried a check is still answered from,
    /// and is rewritten with checks by the next save.
    #[test]
    fn a_v2_cache_is_read_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let cache_path = dir.path().join("cache");
        let entry = CacheEntry {
            key: path_key("/x"),
            size: 3,
            mtime_ns: 7,
            sha1: [9; 20],
        };
        let mut v2 = HEADER_V2.to_vec();
        entry.encode(&mut v2);
        v2.truncate(v2.len() - 4);
        std::fs::write(&cache_path, &v2).unwrap();
        let mut cache = ChecksumCache::open(cache_path.clone());
        assert!(cache.warning.is_none());
        assert_eq!(found(&cache, &[(path_key("/x"), 3, 7)]), [Some([9; 20])]);
        let src = LocalSource::new(PathBuf::from("/"));
        let req = [at_3_bytes_7ns(&src, "x")];
        assert!(
            cache
                .save(&req[..], &Digests::from_results(vec![Ok([9; 20])]))
                .is_none()
        );
        let bytes = std::fs::read(&cache_path).unwrap();
        assert!(bytes.starts_with(HEADER));
        assert_eq!(bytes.len(), HEADER.len() + RECORD);
    }

    #[test]
    fn garbage_cache_is_rebuilt_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let cache_path = dir.path().join("cache");
        std::fs::write(&cache_path, "\u{0}\u{1}garbage\nmore\n").unwrap();
        let cache = ChecksumCache::open(cache_path);
        assert_eq!(
            cache.warning.as_ref().unwrap().code,
            crate::stages::WarningCode::ChecksumCacheRebuilt
        );
        assert!((cache.len() == 0));
    }
}
