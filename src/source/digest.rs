//! SHA-1 of a file's bytes, the checksum Synapse identifies files by.

use std::io::Read;
use std::path::Path;

use sha1::{Digest, Sha1};

pub type Sha1Digest = [u8; 20];

/// How much is read from a file at a time.
pub const READ_CHUNK: usize = 256 * 1024;

thread_local! {
    /// One read buffer per thread: a fresh 256 KiB buffer per file cost a
    /// zeroing for every small file (a fifth of a cold plan's CPU time on a
    /// tree of small files).
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's [`READ_CHUNK`]-byte buffer (a fresh one when
/// `f` is already running on this thread).
pub fn with_read_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    READ_BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < READ_CHUNK {
                buf.resize(READ_CHUNK, 0);
            }
            f(&mut buf)
        }
        Err(_) => f(&mut vec![0; READ_CHUNK]),
    })
}

/// SHA-1 of a file's bytes, streamed in 256 KiB chunks.
pub fn sha1_file(path: &Path) -> std::io::Result<Sha1Digest> {
    sha1_file_seeing_head(path, &mut |_| {})
}

/// [`sha1_file`], showing the first chunk to `head` on the way.
pub fn sha1_file_seeing_head(
    path: &Path,
    head: &mut dyn FnMut(&[u8]),
) -> std::io::Result<Sha1Digest> {
    let mut file = std::fs::File::open(path)?;
    sha1_reading(&mut file, head).map(|(digest, _)| digest)
}

/// SHA-1 of everything `input` gives, and how many bytes that was, showing
/// the first chunk to `head` on the way.
pub fn sha1_reading(
    input: &mut impl Read,
    head: &mut dyn FnMut(&[u8]),
) -> std::io::Result<(Sha1Digest, u64)> {
    let mut hasher = Sha1::new();
    let mut size = 0u64;
    with_read_buffer(|buf| -> std::io::Result<()> {
        let mut first = true;
        loop {
            let n = input.read(buf)?;
            if first {
                head(&buf[..n]);
                first = false;
            }
            if n == 0 {
                return Ok(());
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
    })?;
    Ok((hasher.finalize().into(), size))
}
