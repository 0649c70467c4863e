//! Writing the files synup leaves for people and programs (plans, reports,
//! config, recipes), the way SPEC 3 asks:
//!
//! - atomically: the bytes go to a uniquely named temporary file beside the
//!   destination, are synced, and renamed over it; a reader sees the old file
//!   or the new one, and a crash leaves one of them;
//! - through a symlink, never over it: `-o plan.json` where `plan.json` links
//!   elsewhere writes the file it points to, and the link stays;
//! - only over a regular file: `-o /dev/null`, a folder or a FIFO is refused,
//!   because renaming over them would replace them (as root, a device node);
//! - leaving nothing behind on failure: the temporary file is removed however
//!   the write fails.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `options` set never to open through a symbolic link (the open fails):
/// for a file synup checks and then moves, or empties and rewrites, where a
/// planted link would carry that to whatever it names.
pub fn not_through_links(options: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
}

/// Who may read the written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `0644`, or the existing file's permissions when it is replaced.
    Shared,
    /// `0600`: credentials and keys.
    Private,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum WriteError {
    #[error("cannot write {path}: it is {kind}, not a regular file")]
    #[diagnostic(
        code(synup::write::not_a_file),
        help("name a new file or an existing regular file; synup never replaces anything else")
    )]
    NotAFile { path: String, kind: &'static str },
    #[error("cannot write {path}: {source}")]
    #[diagnostic(code(synup::write::io))]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: symlinks nest more than 40 deep")]
    #[diagnostic(code(synup::write::symlink_loop))]
    SymlinkLoop { path: String },
}

impl WriteError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Writes what `fill` produces to `path`, as the module describes.
pub fn write_with(
    path: &Path,
    access: Access,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    replace(path, access, true, fill)
}

/// [`write_with`] for a cache under `.synup/` (mode `0600`), synced only when
/// `synced`: a cache a crash cuts short is rebuilt by the next plan.
pub fn write_cache_with(
    path: &Path,
    synced: bool,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    replace(path, Access::Private, synced, fill)
}

fn replace(
    path: &Path,
    access: Access,
    synced: bool,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let dest = destination(path)?;
    let existing = regular_or_missing(&dest)?;
    let dir = parent_of(&dest);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Dropped (and so deleted) on every early return below.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| WriteError::io(&dest, e))?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
        fill(&mut w).map_err(|e| WriteError::io(&dest, e))?;
        w.flush().map_err(|e| WriteError::io(&dest, e))?;
    }
    set_access(tmp.as_file(), access, existing.as_ref()).map_err(|e| WriteError::io(&dest, e))?;
    if synced {
        tmp.as_file()
            .sync_all()
            .map_err(|e| WriteError::io(&dest, e))?;
    }
    tmp.persist(&dest)
        .map_err(|e| WriteError::io(&dest, e.error))?;
    // The rename is durable once the folder's entry is.
    if synced && let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes `bytes` to `path`, as [`write_with`].
pub fn write(path: &Path, access: Access, bytes: &[u8]) -> Result<(), WriteError> {
    write_with(path, access, |w| w.write_all(bytes))
}

/// Checks, before long work, that [`write`] to `path` would succeed as far as
/// the file system can tell: the destination is a regular file or missing, and
/// its folder takes a new file (one is created and removed).
pub fn check_writable(path: &Path) -> Result<(), WriteError> {
    let dest = destination(path)?;
    regular_or_missing(&dest)?;
    tempfile::Builder::new()
        .prefix(".synup-check.")
        .tempfile_in(parent_of(&dest))
        .map(drop)
        .map_err(|e| WriteError::io(&dest, e))?;
    if dest.exists() {
        // Writing replaces the file, which needs the folder, not the file, to
        // be writable; but a read-only file usually means "do not touch".
        std::fs::OpenOptions::new()
            .append(true)
            .open(&dest)
            .map(drop)
            .map_err(|e| WriteError::io(&dest, e))?;
    }
    Ok(())
}

/// Where a write to `path` lands: `path` itself, or the file its symlinks
/// finally point to (which need not exist yet).
fn destination(path: &Path) -> Result<PathBuf, WriteError> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let target =
                    std::fs::read_link(&current).map_err(|e| WriteError::io(&current, e))?;
                current = parent_of(&current).join(target);
            }
            _ => return Ok(current),
        }
    }
    Err(WriteError::SymlinkLoop {
        path: path.display().to_string(),
    })
}

/// The destination's metadata when it is a regular file, `None` when it does
/// not exist, an error for anything else.
fn regular_or_missing(dest: &Path) -> Result<Option<std::fs::Metadata>, WriteError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(dest) {
        Ok(m) if m.is_file() => Ok(Some(m)),
        Ok(m) => {
            let t = m.file_type();
            let kind = if t.is_dir() {
                "a folder"
            } else if t.is_char_device() || t.is_block_device() {
                "a device"
            } else if t.is_fifo() {
                "a named pipe"
            } else if t.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            };
            Err(WriteError::NotAFile {
                path: dest.display().to_string(),
                kind,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WriteError::io(dest, e)),
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn set_access(
    file: &std::fs::File,
    access: Access,
    existing: Option<&std::fs::Metadata>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match (access, existing) {
        (Access::Private, _) => 0o600,
        (Access::Shared, Some(m)) => m.permissions().mode() & 0o7777,
        (Access::Shared, None) => 0o644,
    };
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_through_a_symlink_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(&real, "old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        write(&link, Access::Shared, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        assert_eq!(entries(dir.path()), ["link.json", "real.json"]);
    }

    #[test]
    fn a_dangling_symlink_creates_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("sub/../made.json", &link).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        write(&link, Access::Shared, b"x").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("made.json")).unwrap(),
            "x"
        );
    }

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = write(Path::new("/dev/null"), Access::Shared, b"x").unwrap_err();
        assert!(
            matches!(
                e,
                WriteError::NotAFile {
                    kind: "a device",
                    ..
                }
            ),
            "{e}"
        );
        let e = write(dir.path(), Access::Shared, b"x").unwrap_err();
        assert!(
            matches!(
                e,
                WriteError::NotAFile {
                    kind: "a folder",
                    ..
                }
            ),
            "{e}"
        );
        assert!(check_writable(Path::new("/dev/null")).is_err());
        let loop_a = dir.path().join("a");
        std::os::unix::fs::symlink("b", &loop_a).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("b")).unwrap();
        assert!(matches!(
            write(&loop_a, Access::Shared, b"x"),
            Err(WriteError::SymlinkLoop { .. })
        ));
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, "old").unwrap();
        let e = write_with(&path, Access::Shared, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(entries(dir.path()), ["plan.json"]);
    }

    #[test]
    fn private_files_are_0600_and_replaced_files_keep_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        write(&key, Access::Private, b"k").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        let shared = dir.path().join("plan.json");
        write(&shared, Access::Shared, b"a").unwrap();
        assert_eq!(mode(&shared), 0o644);
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&shared, Access::Shared, b"b").unwrap();
        assert_eq!(mode(&shared), 0o640);
    }

    #[test]
    fn check_writable_names_a_missing_folder() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_writable(&dir.path().join("no/such/report.json")).unwrap_err();
        assert!(e.to_string().contains("report.json"), "{e}");
        check_writable(&dir.path().join("report.json")).unwrap();
        assert!(entries(dir.path()).is_empty());
    }
}
