//! The binary layout shared by the caches under `.synup/cache/` (parsed
//! sheets, folder listings): little-endian fields after a magic line, sealed
//! with an end marker and the file's own length, so that a torn or cut file is
//! recognised and treated as a miss. Caches are never fatal: anything that
//! does not decode exactly is simply rebuilt.

use std::io::Write;
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
        let n = usize::try_from(n).ok()?;
        (n.checked_mul(min)? <= self.0.len()).then_some(n)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
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
