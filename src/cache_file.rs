//! The binary layout shared by the caches under `.synup/cache/` (parsed
//! sheets, folder listings): little-endian fields after a magic line, sealed
//! with an end marker and the file's own length, so that a torn or cut file is
//! recognised and treated as a miss. Caches are never fatal: anything that
//! does not decode exactly is simply rebuilt.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

const END: &[u8; 4] = b"end\n";

/// An encoder. Lengths are `u32` unless a caller writes a `u64` itself.
pub struct Out(pub Vec<u8>);

impl Out {
    pub fn new(magic: &[u8], capacity: usize) -> Self {
        let mut v = Vec::with_capacity(capacity);
        v.extend_from_slice(magic);
        Self(v)
    }
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    /// Appends the end marker and the total length.
    pub fn seal(mut self) -> Vec<u8> {
        self.0.extend_from_slice(END);
        let len = self.0.len() as u64 + 8;
        self.u64(len);
        self.0
    }
}

/// The seal to write after `written` bytes (magic and body) of a file
/// written piece by piece; what [`Out::seal`] appends.
fn seal_after(written: u64) -> [u8; 12] {
    let mut seal = [0u8; 12];
    seal[..4].copy_from_slice(END);
    seal[4..].copy_from_slice(&(written + 12).to_le_bytes());
    seal
}

/// Writes a sealed file piece by piece (one too large to build in memory):
/// the magic first, then what is put, then [`Self::finish`] seals it with
/// the length it counted.
pub struct SealedWriter<W: Write> {
    inner: W,
    written: u64,
}

impl<W: Write> SealedWriter<W> {
    pub fn new(inner: W, magic: &[u8]) -> std::io::Result<Self> {
        let mut w = Self { inner, written: 0 };
        w.put(magic)?;
        Ok(w)
    }

    pub fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Appends the seal and flushes.
    pub fn finish(mut self) -> std::io::Result<()> {
        let seal = seal_after(self.written);
        self.put(&seal)?;
        self.inner.flush()
    }
}

/// The body between `magic` and the seal, if `bytes` is a whole file of this kind.
pub fn unseal<'a>(bytes: &'a [u8], magic: &[u8]) -> Option<In<'a>> {
    let (body, len) = bytes.split_last_chunk::<8>()?;
    if u64::from_le_bytes(*len) != bytes.len() as u64 {
        return None;
    }
    let body = body.strip_suffix(END)?.strip_prefix(magic)?;
    Some(In(body))
}

/// A bounds-checked decoder: every read past the end is `None`.
pub struct In<'a>(pub &'a [u8]);

impl<'a> In<'a> {
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_owned)
    }
    /// A list's length that the remaining bytes can hold at `min` bytes per
    /// item: a damaged count never reserves more memory than the file could
    /// describe.
    pub fn fits(&self, n: u64, min: usize) -> Option<usize> {
        fits(n, min, self.0.len() as u64)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A sealed file's body read forward a window at a time, for caches whose
/// bodies are too large to hold whole (a million-row sheet's is 100 MB):
/// each item is decoded from the window, which is refilled when an item
/// runs past its end. The seal is checked before anything is decoded.
pub struct SealedReader {
    file: std::fs::File,
    window: Vec<u8>,
    /// Where the next item starts in `window`.
    at: usize,
    /// Body bytes not yet read into the window.
    unread: u64,
    /// Where the body ends in the file (the seal follows).
    body_end: u64,
}

/// Bytes read per refill (a window grows past it only for a larger item).
const WINDOW: usize = 1 << 20;

impl SealedReader {
    /// `None` when the file is missing, or is not a whole sealed file
    /// starting with `magic`.
    pub fn open(path: &Path, magic: &[u8]) -> Option<Self> {
        let file = std::fs::File::open(path).ok()?;
        let len = file.metadata().ok()?.len();
        let seal = (END.len() + 8) as u64;
        let body = len.checked_sub(magic.len() as u64 + seal)?;
        let mut head = vec![0u8; magic.len()];
        file.read_exact_at(&mut head, 0).ok()?;
        let mut tail = [0u8; 12];
        file.read_exact_at(&mut tail, len - seal).ok()?;
        let (end, stated) = tail.split_at(END.len());
        let stated = u64::from_le_bytes(stated.try_into().ok()?);
        if head != magic || end != END || stated != len {
            return None;
        }
        let mut file = file;
        file.seek(SeekFrom::Start(magic.len() as u64)).ok()?;
        Some(Self {
            file,
            window: Vec::new(),
            at: 0,
            unread: body,
            body_end: magic.len() as u64 + body,
        })
    }

    /// The rest of the body as `count` records of `record` bytes each, to be
    /// read by position; `None` unless they fill it exactly.
    pub fn into_records(self, record: usize, count: usize) -> Option<RecordFile> {
        let left = self.left();
        (count.checked_mul(record)? as u64 == left).then(|| RecordFile {
            at: self.body_end - left,
            file: self.file,
            record,
            count,
        })
    }

    /// The next item, or `None` when it does not decode from the rest of the
    /// body (damage, or the body's end).
    pub fn next<T>(&mut self, decode: impl Fn(&mut In<'_>) -> Option<T>) -> Option<T> {
        loop {
            let mut r = In(&self.window[self.at..]);
            if let Some(item) = decode(&mut r) {
                self.at = self.window.len() - r.0.len();
                return Some(item);
            }
            if !self.refill() {
                return None;
            }
        }
    }

    /// Moves what is left of the window to its front and reads more of the
    /// body after it; `false` at the body's end or on a read error.
    fn refill(&mut self) -> bool {
        if self.unread == 0 {
            return false;
        }
        self.window.drain(..self.at);
        self.at = 0;
        let want =
            (WINDOW.max(self.window.len())).min(usize::try_from(self.unread).unwrap_or(usize::MAX));
        let had = self.window.len();
        self.window.resize(had + want, 0);
        if self.file.read_exact(&mut self.window[had..]).is_err() {
            return false;
        }
        self.unread -= want as u64;
        true
    }

    /// Where the next item starts in the file.
    pub fn position(&self) -> u64 {
        self.body_end - self.left()
    }

    /// The open file, for reading what was found by position (the same
    /// file, even if another is renamed over its path meanwhile).
    pub fn into_file(self) -> std::fs::File {
        self.file
    }

    /// Body bytes not yet decoded.
    fn left(&self) -> u64 {
        self.unread + (self.window.len() - self.at) as u64
    }

    /// As [`In::fits`], against what is left of the body.
    pub fn fits(&self, n: u64, min: usize) -> Option<usize> {
        fits(n, min, self.left())
    }

    /// Whether every byte of the body was decoded.
    pub fn is_done(&self) -> bool {
        self.left() == 0
    }
}

/// Fixed-size records at a known place in a cache file, read a window at a
/// time by position: a cache of millions of files is never held whole.
#[derive(Debug)]
pub struct RecordFile {
    file: std::fs::File,
    /// Where record 0 starts.
    at: u64,
    /// Bytes per record.
    record: usize,
    count: usize,
}

impl RecordFile {
    pub fn new(file: std::fs::File, at: u64, record: usize, count: usize) -> Self {
        Self {
            file,
            at,
            record,
            count,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Records `start..end` (clipped to what there is) into `buf`. A read
    /// that fails leaves `buf` empty: a cache only saves time.
    pub fn read(&self, start: usize, end: usize, buf: &mut Vec<u8>) {
        let end = end.min(self.count);
        buf.clear();
        if start >= end {
            return;
        }
        buf.resize((end - start) * self.record, 0);
        let at = self.at + (start * self.record) as u64;
        if self.file.read_exact_at(buf, at).is_err() {
            buf.clear();
        }
    }
}

/// Fixed-size records that can be read a window at a time by position: a
/// cache file ([`RecordFile`]), or records converted in memory.
pub trait Records: Sync {
    /// How many records there are.
    fn count(&self) -> usize;
    /// Bytes per record.
    fn record_len(&self) -> usize;
    /// Records `start..end` (clipped to what there is) into `buf`; a read
    /// that fails leaves `buf` empty.
    fn read(&self, start: usize, end: usize, buf: &mut Vec<u8>);
}

impl Records for RecordFile {
    fn count(&self) -> usize {
        self.count
    }
    fn record_len(&self) -> usize {
        self.record
    }
    fn read(&self, start: usize, end: usize, buf: &mut Vec<u8>) {
        RecordFile::read(self, start, end, buf)
    }
}

/// Looks `n` requests up in `records`, which an earlier run saved in the
/// order it asked: request i is checked against record i, `window` records
/// at a time; requests whose record holds another key (one added early
/// shifts every later position) are matched in one more pass over the
/// records against their keys sorted, so memory grows with those misses,
/// never with the cache. `probe(i)` is request i's key and what else its
/// answer needs (made together: a request can be costly to look at);
/// `answer(extra, record)` judges a record whose key is request i's (`None`:
/// stale, and not looked for elsewhere); `found(i, t)` receives each
/// answer. Returns how many were answered at their position.
pub fn find_by_position<K: Ord + Copy + Send + Sync, S: Send, T: Send>(
    records: &impl Records,
    window: usize,
    n: usize,
    probe: impl Fn(usize) -> (K, S) + Sync,
    record_key: impl Fn(&[u8]) -> K + Sync,
    answer: impl Fn(S, &[u8]) -> Option<T> + Sync,
    mut found: impl FnMut(usize, T),
) -> usize {
    use rayon::prelude::*;
    let len = records.record_len();
    if records.count() == 0 || len == 0 {
        return 0;
    }
    let (mut in_place, mut elsewhere) = (0, Vec::<(K, u32)>::new());
    let mut buf = Vec::new();
    for start in (0..n).step_by(window) {
        let end = (start + window).min(n);
        records.read(start, end, &mut buf);
        let at_own: Vec<Result<Option<T>, K>> = (start..end)
            .into_par_iter()
            .map(|i| {
                let (k, extra) = probe(i);
                let at = (i - start) * len;
                match buf.get(at..at + len) {
                    Some(r) if record_key(r) == k => Ok(answer(extra, r)),
                    _ => Err(k),
                }
            })
            .collect();
        for (i, a) in (start..).zip(at_own) {
            match a {
                Ok(Some(t)) => {
                    in_place += 1;
                    found(i, t);
                }
                Ok(None) => {}
                Err(k) => elsewhere.push((k, i as u32)),
            }
        }
    }
    if elsewhere.is_empty() {
        return in_place;
    }
    elsewhere.par_sort_unstable();
    for start in (0..records.count()).step_by(window) {
        records.read(start, start + window, &mut buf);
        let hits: Vec<(u32, T)> = buf
            .par_chunks_exact(len)
            .flat_map_iter(|r| {
                let k = record_key(r);
                let from = elsewhere.partition_point(|(w, _)| *w < k);
                elsewhere[from..]
                    .iter()
                    .take_while(|(w, _)| *w == k)
                    .filter_map(|&(_, i)| Some((i, answer(probe(i as usize).1, r)?)))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (i, t) in hits {
            found(i as usize, t);
        }
    }
    in_place
}

/// FNV-1a (32 bits) of a record's fields, stored after them. The seal only
/// proves a cache file whole; this proves each record as it was written, so a
/// damaged byte (a disk's, or a hand's) costs a re-read of one file instead
/// of a wrong answer that every later run would trust. Each step is a
/// bijection of the state, so any one changed byte always changes the check.
pub fn record_check(fields: &[u8]) -> [u8; 4] {
    let mut c = Check::default();
    c.feed(fields);
    c.finish()
}

/// [`record_check`] of bytes fed a piece at a time.
#[derive(Debug, Clone, Copy)]
pub struct Check(u32);

impl Default for Check {
    fn default() -> Self {
        Self(0x811c_9dc5)
    }
}

impl Check {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }

    pub fn finish(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

/// Appends the check of the record whose `fields` bytes end `out`.
pub fn append_check(out: &mut Vec<u8>, fields: usize) {
    let check = record_check(&out[out.len() - fields..]);
    out.extend_from_slice(&check);
}

/// Whether `record` is as it was written: `fields` bytes and their check,
/// or exactly `fields` bytes (a format from before records had checks).
pub fn intact(record: &[u8], fields: usize) -> bool {
    match record.len().checked_sub(fields) {
        Some(0) => true,
        Some(4) => record_check(&record[..fields]) == record[fields..],
        _ => false,
    }
}

/// A list's length `n`, if `left` bytes can hold it at `min` bytes an item.
fn fits(n: u64, min: usize, left: u64) -> Option<usize> {
    let n = usize::try_from(n).ok()?;
    (n.checked_mul(min)? as u64 <= left).then_some(n)
}

/// Writes `bytes` to `path` as [`store_with`] does. No `fsync`: a cache lost
/// in a crash is rebuilt.
pub fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    store_with(path, false, |w| w.write_all(bytes))
}

/// Lets `write` fill a new file beside `path` (uniquely named, so concurrent
/// plans never write into each other's), then renames it over `path`: readers
/// see the old file or the new one, never a mix. As every file synup writes
/// ([`crate::fs_write`]): through a symlink, never over a non-file.
pub fn store_with(
    path: &Path,
    synced: bool,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    crate::fs_write::write_cache_with(path, synced, write).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_file_reads_forward_across_windows_and_a_cut_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let mut out = Out::new(b"magic\n", 0);
        // Items larger than a window, and many small ones after.
        let big = "x".repeat(WINDOW + 17);
        out.str(&big);
        for i in 0..100_000u32 {
            out.u32(i);
        }
        let bytes = out.seal();
        std::fs::write(&path, &bytes).unwrap();
        let mut r = SealedReader::open(&path, b"magic\n").unwrap();
        assert_eq!(r.next(|r| r.string()).as_deref(), Some(big.as_str()));
        assert_eq!(r.fits(100_000, 4), Some(100_000));
        assert_eq!(r.fits(100_001, 4), None);
        for i in 0..100_000u32 {
            assert_eq!(r.next(|r| r.u32()), Some(i));
        }
        assert!(r.is_done());
        assert_eq!(r.next(|r| r.u8()), None);
        assert!(SealedReader::open(&path, b"other\n").is_none());
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(SealedReader::open(&path, b"magic\n").is_none());
        assert!(SealedReader::open(&dir.path().join("missing"), b"magic\n").is_none());
    }

    #[test]
    fn a_sealed_body_reads_back_and_any_cut_is_refused() {
        let mut out = Out::new(b"magic\n", 0);
        out.u16(7);
        out.str("héllo");
        out.u64(u64::MAX);
        let bytes = out.seal();
        let mut r = unseal(&bytes, b"magic\n").unwrap();
        assert_eq!(
            (r.u16(), r.string(), r.u64()),
            (Some(7), Some("héllo".into()), Some(u64::MAX))
        );
        assert!(r.is_empty() && r.u8().is_none());
        assert!(unseal(&bytes, b"other\n").is_none());
        for cut in 0..bytes.len() {
            assert!(unseal(&bytes[..cut], b"magic\n").is_none(), "cut at {cut}");
        }
        assert_eq!(In(&[1, 2]).fits(3, 1), None);
        assert_eq!(In(&[1, 2]).fits(u64::MAX, 2), None);
        assert_eq!(In(&[1, 2]).fits(1, 2), Some(1));
    }
}
