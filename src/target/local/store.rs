//! The content-addressed file store: `objects/<2 hex>/<38 hex>`, named by SHA-1.
//!
//! A file is copied into an unnamed file in `objects/tmp/` (O_TMPFILE; a named
//! one where the system lacks it) while its SHA-1 is computed, checked against
//! the checksum the plan promised, and only then linked (or renamed) in under
//! its final name, so a name in the store always holds exactly the bytes it is
//! named after.

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
    /// Names temporary files (a `getpid` per file showed in profiles).
    pid: u32,
    /// `/proc/self/fd` is there, so unnamed files can be linked in.
    proc_fd: bool,
}

impl FileStore {
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("objects").join("tmp"))?;
        Ok(Self {
            root: root.to_path_buf(),
            counter: AtomicU64::new(0),
            pid: std::process::id(),
            proc_fd: Path::new("/proc/self/fd").is_dir(),
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
        // No look first: callers copy what the catalog lacks, which the store
        // lacks too but after a crash; the final rename refuses to replace.
        let input = std::fs::File::open(source).map_err(|e| StoreError::Read {
            path: source.display().to_string(),
            source: e,
        })?;
        self.copy_in(input, &source.display().to_string(), Some(sha1))
            .map(|(_, bytes)| bytes)
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

    /// Moves the file at `path` into the store as `sha1` once its bytes are
    /// checked: a file synup wrote for this and nobody else reads (a plan's
    /// copy of a remote object). A rename costs no new file, no second
    /// write of the bytes and no delete, the three things copying a small
    /// file is made of. Where the file cannot be renamed into the store
    /// (another filesystem), it is copied. Returns the bytes stored (0 when
    /// the store had them; the file is then left where it is).
    pub fn adopt(&self, path: &Path, shown: &str, sha1: &str) -> Result<u64, StoreError> {
        let dest = self.path_of(sha1);
        if dest.is_file() {
            return Ok(0);
        }
        let read_err = |source| StoreError::Read {
            path: path.display().to_string(),
            source,
        };
        // Not through a symbolic link: the rename would move the link into
        // the store, and the file it names could change after the check.
        let mut file = crate::fs_write::not_through_links(std::fs::OpenOptions::new().read(true))
            .open(path)
            .map_err(read_err)?;
        let (digest, size) =
            crate::source::digest::sha1_reading(&mut file, &mut |_| {}).map_err(read_err)?;
        let actual = hex::encode(digest);
        if actual != sha1 {
            return Err(StoreError::Changed {
                path: shown.to_owned(),
                expected: sha1.to_owned(),
                actual,
                size,
            });
        }
        // As a copied-in file is: copies are made private to their user.
        let readable = file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        match readable.and_then(|()| place(path, &dest)) {
            Ok(true) => Ok(size),
            Ok(false) => Ok(0),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
                drop(file);
                self.put(path, sha1)
            }
            Err(source) => Err(StoreError::Write {
                path: self.root.display().to_string(),
                source,
            }),
        }
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
            self.pid,
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        // An unnamed file (O_TMPFILE) needs no name in `tmp/` and no rename:
        // it is linked in once complete, and vanishes if we die first.
        let anonymous = self.proc_fd.then(|| {
            use rustix::fs::{CWD, Mode, OFlags, openat};
            openat(
                CWD,
                tmp.parent().unwrap_or(&self.root),
                OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .ok()
            .map(std::fs::File::from)
        });
        let named = anonymous.as_ref().is_none_or(Option::is_none);
        let result = (|| {
            let mut out = match anonymous {
                Some(Some(f)) => f,
                _ => std::fs::File::create(&tmp).map_err(write_err)?,
            };
            let mut hasher = Sha1::new();
            let mut size = 0u64;
            crate::source::digest::with_read_buffer(|buf| {
                loop {
                    let n = input.read(buf).map_err(read_err)?;
                    if n == 0 {
                        return Ok(());
                    }
                    hasher.update(&buf[..n]);
                    out.write_all(&buf[..n]).map_err(write_err)?;
                    size += n as u64;
                }
            })?;
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
            let dest = self.path_of(&actual);
            let placed = match named {
                true => place(&tmp, &dest),
                false => link_in(&out, &dest),
            };
            match placed {
                Ok(true) => Ok((actual, size)),
                Ok(false) => {
                    // The store had this content already.
                    let _ = std::fs::remove_file(&tmp);
                    Ok((actual, 0))
                }
                Err(e) => Err(write_err(e)),
            }
        })();
        if result.is_err() && named {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Makes everything written so far durable with one `syncfs`, instead of an
    /// fsync per file; called before a batch that references the files commits.
    pub fn sync(&self) -> std::io::Result<()> {
        self.sync_later()?()
    }

    /// [`sync`](Self::sync) as a job for another thread.
    pub fn sync_later(
        &self,
    ) -> std::io::Result<impl FnOnce() -> std::io::Result<()> + Send + 'static> {
        let dir = std::fs::File::open(&self.root)?;
        Ok(move || rustix::fs::syncfs(&dir).map_err(std::io::Error::from))
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

/// Puts a file at `dest` with `put`, a rename or link that refuses to
/// replace: `true` when it did, `false` when `dest` already held a file.
/// `dest`'s folder is made on first use. No `stat` first: that cost a
/// directory lookup per file.
fn put_at(dest: &Path, put: impl Fn() -> rustix::io::Result<()>) -> std::io::Result<bool> {
    use rustix::io::Errno;
    for attempt in 0..2 {
        match put() {
            Ok(()) => return Ok(true),
            Err(Errno::EXIST) => return exists_as_file(dest),
            Err(Errno::NOENT) if attempt == 0 => {
                if let Some(dir) = dest.parent() {
                    std::fs::create_dir_all(dir)?;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(std::io::Error::from(Errno::NOENT))
}

/// Renames the named temporary file `tmp` to `dest` (see [`put_at`]).
fn place(tmp: &Path, dest: &Path) -> std::io::Result<bool> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    let placed = put_at(dest, || {
        renameat_with(CWD, tmp, CWD, dest, RenameFlags::NOREPLACE)
    });
    let unsupported = [Errno::INVAL, Errno::NOSYS].map(|e| Some(e.raw_os_error()));
    match placed {
        // A filesystem without RENAME_NOREPLACE: look, then rename.
        Err(e) if unsupported.contains(&e.raw_os_error()) => {
            if dest.is_file() {
                return Ok(false);
            }
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::rename(tmp, dest)?;
            Ok(true)
        }
        other => other,
    }
}

/// `false` (the store has it) when `dest` is a regular file; an error when
/// something else squats its name, which must not pass for stored content.
fn exists_as_file(dest: &Path) -> std::io::Result<bool> {
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.is_file() => Ok(false),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} is not a regular file", dest.display()),
        )),
        Err(e) => Err(e),
    }
}

/// Links the unnamed file `out` in as `dest` (see [`put_at`]).
fn link_in(out: &std::fs::File, dest: &Path) -> std::io::Result<bool> {
    use rustix::fs::{AtFlags, CWD, linkat};
    use std::os::fd::AsRawFd;
    let name = format!("/proc/self/fd/{}", out.as_raw_fd());
    put_at(dest, || {
        linkat(CWD, name.as_str(), CWD, dest, AtFlags::SYMLINK_FOLLOW)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_checks_the_checksum_and_dedupes() {
        // Unnamed temporary files where the system has them, and the named
        // ones a system without O_TMPFILE or /proc gets.
        for proc_fd in [true, false] {
            puts_check_and_dedupe(proc_fd);
        }
    }

    fn puts_check_and_dedupe(proc_fd: bool) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::open(&dir.path().join("t")).unwrap();
        store.proc_fd &= proc_fd;
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
        let (learned, bytes) = store.put_learning(&b"xyz"[..], "x").unwrap();
        assert_eq!((store.path_of(&learned).is_file(), bytes), (true, 3));
        assert_eq!(store.put_learning(&b"xyz"[..], "x").unwrap().1, 0);
        // A folder squatting a content's name is an error, never "stored".
        let sha_q = "22ea1c649c82946aa6e479e1ffd321e4a318b1b0";
        std::fs::create_dir_all(store.path_of(sha_q)).unwrap();
        std::fs::write(&src, b"q").unwrap();
        assert!(matches!(
            store.put(&src, sha_q),
            Err(StoreError::Write { .. })
        ));
        assert_eq!(
            std::fs::read_dir(dir.path().join("t/objects/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    /// A plan's copy is moved in when its bytes are what it is named after,
    /// readable as a copied file is; left where it is when damaged or when
    /// the store already holds that content.
    #[test]
    fn adopting_moves_a_checked_file_in_and_leaves_a_damaged_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(&dir.path().join("t")).unwrap();
        let sha = "a9993e364706816aba3e25717850c26c9cd0d89d";
        let copy = dir.path().join(sha);
        std::fs::write(&copy, b"abd").unwrap();
        assert!(matches!(
            store.adopt(&copy, "s3://b/x", sha),
            Err(StoreError::Changed { .. })
        ));
        assert!(copy.is_file() && !store.contains(sha));
        std::fs::write(&copy, b"abc").unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(store.adopt(&copy, "s3://b/x", sha).unwrap(), 3);
        assert!(!copy.exists());
        assert_eq!(std::fs::read(store.path_of(sha)).unwrap(), b"abc");
        let mode = std::fs::metadata(store.path_of(sha))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        std::fs::write(&copy, b"abc").unwrap();
        assert_eq!(
            store.adopt(&copy, "s3://b/x", sha).unwrap(),
            0,
            "already stored"
        );
        assert!(copy.is_file());
        // A link where the copy should be is refused, not moved in.
        let other = FileStore::open(&dir.path().join("u")).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&copy, &link).unwrap();
        assert!(matches!(
            other.adopt(&link, "s3://b/x", sha),
            Err(StoreError::Read { .. })
        ));
        assert!(!other.contains(sha) && link.is_symlink());
    }
}
