//! The content-addressed file store: `objects/<2 hex>/<38 hex>`, named by SHA-1.
//!
//! A file is copied to `objects/tmp/` while its SHA-1 is computed, checked against
//! the checksum the plan promised, and only then renamed to its final name, so a
//! name in the store always holds exactly the bytes it is named after.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha1::{Digest, Sha1};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write to the store at {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} changed since it was planned (sha1 {expected} → {actual}, {size} bytes)")]
    Changed {
        path: String,
        expected: String,
        actual: String,
        size: u64,
    },
}

pub struct FileStore {
    root: PathBuf,
    counter: AtomicU64,
}

impl FileStore {
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("objects").join("tmp"))?;
        Ok(Self {
            root: root.to_path_buf(),
            counter: AtomicU64::new(0),
        })
    }

    /// Store path of a checksum, relative to the target folder.
    pub fn relative_path(sha1: &str) -> String {
        format!("objects/{}/{}", &sha1[..2], &sha1[2..])
    }

    pub fn path_of(&self, sha1: &str) -> PathBuf {
        self.root.join(Self::relative_path(sha1))
    }

    pub fn contains(&self, sha1: &str) -> bool {
        self.path_of(sha1).is_file()
    }

    /// Copies `source` into the store as `sha1`; returns the bytes written
    /// (0 when the store already had it).
    pub fn put(&self, source: &Path, sha1: &str) -> Result<u64, StoreError> {
        if self.path_of(sha1).is_file() {
            return Ok(0);
        }
        let input = std::fs::File::open(source).map_err(|e| StoreError::Read {
            path: source.display().to_string(),
            source: e,
        })?;
        self.put_from(input, &source.display().to_string(), sha1)
    }

    /// Copies bytes from `input` (a file, a remote object) into the store as
    /// `sha1`, checking them; `shown` names the source in errors.
    pub fn put_from(&self, input: impl Read, shown: &str, sha1: &str) -> Result<u64, StoreError> {
        if self.path_of(sha1).is_file() {
            return Ok(0);
        }
        self.copy_in(input, shown, Some(sha1))
            .map(|(_, bytes)| bytes)
    }

    /// Copies bytes whose SHA-1 is not known yet into the store, learning it
    /// on the way (a file planned with `checksum: apply`); returns the SHA-1
    /// and the bytes written (0 when the store already had that content).
    pub fn put_learning(&self, input: impl Read, shown: &str) -> Result<(String, u64), StoreError> {
        self.copy_in(input, shown, None)
    }

    fn copy_in(
        &self,
        mut input: impl Read,
        shown: &str,
        expected: Option<&str>,
    ) -> Result<(String, u64), StoreError> {
        let read_err = |e| StoreError::Read {
            path: shown.to_owned(),
            source: e,
        };
        let write_err = |e| StoreError::Write {
            path: self.root.display().to_string(),
            source: e,
        };
        let tmp = self.root.join("objects").join("tmp").join(format!(
            "{}.{}.{}",
            expected.unwrap_or("incoming"),
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut out = std::fs::File::create(&tmp).map_err(write_err)?;
            let mut hasher = Sha1::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut size = 0u64;
            loop {
                let n = input.read(&mut buf).map_err(read_err)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(write_err)?;
                size += n as u64;
            }
            let actual = hex::encode(hasher.finalize());
            if let Some(sha1) = expected.filter(|e| *e != actual) {
                return Err(StoreError::Changed {
                    path: shown.to_owned(),
                    expected: sha1.to_owned(),
                    actual,
                    size,
                });
            }
            out.flush().map_err(write_err)?;
            drop(out);
            let dest = self.path_of(&actual);
            if dest.is_file() {
                let _ = std::fs::remove_file(&tmp);
                return Ok((actual, 0));
            }
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir).map_err(write_err)?;
            }
            std::fs::rename(&tmp, &dest).map_err(write_err)?;
            Ok((actual, size))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Makes everything written so far durable with one `syncfs`, instead of an
    /// fsync per file; called before a batch that references the files commits.
    pub fn sync(&self) -> std::io::Result<()> {
        let dir = std::fs::File::open(&self.root)?;
        rustix::fs::syncfs(&dir).map_err(std::io::Error::from)
    }

    /// Leftovers of interrupted copies.
    pub fn clean_tmp(&self) {
        if let Ok(entries) = std::fs::read_dir(self.root.join("objects").join("tmp")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_checks_the_checksum_and_dedupes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(&dir.path().join("t")).unwrap();
        let src = dir.path().join("f");
        std::fs::write(&src, b"abc").unwrap();
        let sha = "a9993e364706816aba3e25717850c26c9cd0d89d";
        assert_eq!(store.put(&src, sha).unwrap(), 3);
        assert_eq!(std::fs::read(store.path_of(sha)).unwrap(), b"abc");
        assert_eq!(store.put(&src, sha).unwrap(), 0, "already stored");
        std::fs::write(&src, b"abd").unwrap();
        let other = "0000000000000000000000000000000000000000";
        assert!(matches!(
            store.put(&src, other),
            Err(StoreError::Changed { .. })
        ));
        assert!(!store.contains(other));
        assert_eq!(
            std::fs::read_dir(dir.path().join("t/objects/tmp"))
                .unwrap()
                .count(),
            0
        );
    }
}
