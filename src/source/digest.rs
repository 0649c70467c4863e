//! SHA-1 of a file's bytes, the checksum Synapse identifies files by.

use std::io::Read;
use std::path::Path;

use sha1::{Digest, Sha1};

pub type Sha1Digest = [u8; 20];

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
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut first = true;
    loop {
        let n = file.read(&mut buf)?;
        if first {
            head(&buf[..n]);
            first = false;
        }
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}
