//! The local file-system walker: parallel, hidden files included, `.gitignore`
//! ignored, symlinks followed with loop detection.

use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use globset::GlobSet;

/// Files never uploaded, wherever they are.
const JUNK_FILES: &[&str] = &[".DS_Store", "Thumbs.db", "desktop.ini", ".gitkeep"];
/// Folders whose whole content is never uploaded, at any depth.
const JUNK_DIRS: &[&str] = &[
    "@eaDir",
    ".@__thumb",
    "@Recycle",
    "#recycle",
    ".synology",
    ".git",
    "__pycache__",
];

/// Whether a relative path lies in a junk folder or is a junk file (for
/// listings that are flat, unlike the walk, which prunes junk folders).
pub fn is_junk_path(rel: &str) -> bool {
    let mut parts = rel.split('/').peekable();
    while let Some(p) = parts.next() {
        let last = parts.peek().is_none();
        if (last && JUNK_FILES.contains(&p)) || (!last && JUNK_DIRS.contains(&p)) {
            return true;
        }
    }
    false
}

/// One discovered file. Paths are relative to the root, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    pub rel: String,
    pub size: u64,
    /// Nanoseconds since the Unix epoch; used only for cache keys, never printed.
    /// For a remote object, a number derived from its version tag.
    pub mtime_ns: i64,
    /// A remote object's version tag (its ETag, or else its last-modified time):
    /// with `checksum: apply` it stands in for the SHA-1 in the plan.
    pub tag: Option<Box<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanIssue {
    /// A symlinked folder that points back to one of its ancestors (a warning).
    SymlinkLoop { link: String, target: String },
    /// A symlink whose target does not exist (a warning).
    BrokenSymlink { link: String },
    /// A folder or file that could not be read (an error).
    Unreadable { path: String, message: String },
}

#[derive(Debug, Default)]
pub struct SourceScan {
    /// Sorted by `rel`.
    pub files: Vec<ScannedFile>,
    /// Lossy renderings of names that are not UTF-8, sorted.
    pub non_utf8: Vec<String>,
    pub excluded: u64,
    pub issues: Vec<ScanIssue>,
}

pub struct ScanOptions<'a> {
    pub recursive: bool,
    pub exclude: &'a GlobSet,
    /// A folder never to descend into (the recipe's own `.synup/`).
    pub skip: Option<PathBuf>,
    pub threads: usize,
}

/// Walks `root`. Errors only if the root itself is missing or not a folder.
///
/// Each folder is read by one task on a pool of `threads` workers (deep I/O
/// queues pay off even on two cores). Entry types come from `readdir`, so only
/// files (for size and mtime) and symlinks (to follow them) cost a `stat`.
pub fn scan_local(root: &Path, opts: &ScanOptions<'_>) -> Result<SourceScan, std::io::Error> {
    let meta = std::fs::metadata(root)?;
    if !meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a folder",
        ));
    }
    let shared = Mutex::new(SourceScan::default());
    let walker = Walker {
        opts,
        shared: &shared,
    };
    let start = Arc::new(Dir {
        abs: root.to_path_buf(),
        rel: String::new(),
        id: (meta.dev(), meta.ino()),
        excluded: false,
        parent: None,
    });
    match rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .build()
    {
        Ok(pool) => pool.scope(|scope| walker.visit(scope, start)),
        Err(_) => rayon::scope(|scope| walker.visit(scope, start)),
    }
    let mut scan = shared.into_inner().unwrap_or_else(|e| e.into_inner());
    scan.files.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    scan.non_utf8.sort();
    scan.issues
        .sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    Ok(scan)
}

/// A folder and the chain of folders above it, by (device, inode), so that a
/// symlinked folder pointing back up is recognised as a loop.
struct Dir {
    abs: PathBuf,
    /// Relative path (`""` for the root).
    rel: String,
    id: (u64, u64),
    /// Inside a junk or excluded folder: its files are only counted.
    excluded: bool,
    parent: Option<Arc<Dir>>,
}

impl Dir {
    /// The relative path of the ancestor (or self) with this identity.
    fn find(&self, id: (u64, u64)) -> Option<&str> {
        let mut node = Some(self);
        while let Some(n) = node {
            if n.id == id {
                return Some(&n.rel);
            }
            node = n.parent.as_deref();
        }
        None
    }
}

struct Walker<'a> {
    opts: &'a ScanOptions<'a>,
    shared: &'a Mutex<SourceScan>,
}

impl<'a> Walker<'a> {
    fn visit<'s>(&'s self, scope: &rayon::Scope<'s>, dir: Arc<Dir>) {
        let mut out = SourceScan::default();
        let entries = match std::fs::read_dir(&dir.abs) {
            Ok(e) => e,
            Err(err) => {
                out.issues.push(ScanIssue::Unreadable {
                    path: dir.rel.clone(),
                    message: err.to_string(),
                });
                merge(self.shared, &mut out);
                return;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(err) => {
                    out.issues.push(ScanIssue::Unreadable {
                        path: dir.rel.clone(),
                        message: err.to_string(),
                    });
                    continue;
                }
            };
            let name = entry.file_name();
            let abs = entry.path();
            if self.opts.skip.as_deref() == Some(abs.as_path()) {
                continue;
            }
            let Some(name) = name.to_str() else {
                let rel = if dir.rel.is_empty() {
                    String::new()
                } else {
                    format!("{}/", dir.rel)
                };
                out.non_utf8
                    .push(format!("{rel}{}", name.to_string_lossy()));
                continue;
            };
            let rel = if dir.rel.is_empty() {
                name.to_owned()
            } else {
                format!("{}/{name}", dir.rel)
            };
            let Ok(mut ft) = entry.file_type() else {
                continue;
            };
            let mut followed = None;
            if ft.is_symlink() {
                match std::fs::metadata(&abs) {
                    Ok(m) => {
                        ft = m.file_type();
                        followed = Some(m);
                    }
                    Err(_) => {
                        out.issues.push(ScanIssue::BrokenSymlink { link: rel });
                        continue;
                    }
                }
            }
            if ft.is_dir() {
                if !self.opts.recursive {
                    continue;
                }
                let id = match &followed {
                    Some(m) => (m.dev(), m.ino()),
                    None => (dir.id.0, entry.ino()),
                };
                if followed.is_some()
                    && let Some(target) = dir.find(id)
                {
                    out.issues.push(ScanIssue::SymlinkLoop {
                        link: rel,
                        target: target.to_owned(),
                    });
                    continue;
                }
                let excluded = dir.excluded
                    || JUNK_DIRS.contains(&name)
                    || (!self.opts.exclude.is_empty() && self.opts.exclude.is_match(&rel));
                let child = Arc::new(Dir {
                    abs,
                    rel,
                    id,
                    excluded,
                    parent: Some(dir.clone()),
                });
                scope.spawn(move |s| self.visit(s, child));
                continue;
            }
            if !ft.is_file() {
                continue; // sockets, fifos, devices
            }
            if dir.excluded
                || JUNK_FILES.contains(&name)
                || (!self.opts.exclude.is_empty() && self.opts.exclude.is_match(&rel))
            {
                out.excluded += 1;
                continue;
            }
            let meta = match followed {
                Some(m) => m,
                None => match entry.metadata() {
                    Ok(m) => m,
                    Err(err) => {
                        out.issues.push(ScanIssue::Unreadable {
                            path: rel,
                            message: err.to_string(),
                        });
                        continue;
                    }
                },
            };
            let mtime_ns = meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec());
            out.files.push(ScannedFile {
                rel,
                size: meta.len(),
                mtime_ns,
                tag: None,
            });
        }
        merge(self.shared, &mut out);
    }
}

fn merge(shared: &Mutex<SourceScan>, local: &mut SourceScan) {
    if local.files.is_empty()
        && local.non_utf8.is_empty()
        && local.issues.is_empty()
        && local.excluded == 0
    {
        return;
    }
    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
    s.files.append(&mut local.files);
    s.non_utf8.append(&mut local.non_utf8);
    s.issues.append(&mut local.issues);
    s.excluded += std::mem::take(&mut local.excluded);
}

/// One-byte files at these relative paths, for other modules' unit tests.
#[cfg(test)]
pub(crate) fn scanned_files(rels: &[&str]) -> Vec<ScannedFile> {
    rels.iter()
        .map(|r| ScannedFile {
            rel: (*r).to_owned(),
            size: 1,
            mtime_ns: 0,
            tag: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(exclude: &GlobSet) -> ScanOptions<'_> {
        ScanOptions {
            recursive: true,
            exclude,
            skip: None,
            threads: 4,
        }
    }

    fn globs(g: &[&str]) -> GlobSet {
        let mut b = globset::GlobSetBuilder::new();
        for g in g {
            b.add(
                globset::GlobBuilder::new(g)
                    .literal_separator(true)
                    .build()
                    .unwrap(),
            );
        }
        b.build().unwrap()
    }

    #[test]
    fn walks_hidden_files_and_drops_junk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/.git")).unwrap();
        std::fs::create_dir_all(root.join("a/@eaDir")).unwrap();
        std::fs::write(root.join("a/.hidden.png"), b"x").unwrap();
        std::fs::write(root.join("a/.gitignore"), b"*.png\n").unwrap();
        std::fs::write(root.join("a/.git/HEAD"), b"x").unwrap();
        std::fs::write(root.join("a/@eaDir/t.png"), b"x").unwrap();
        std::fs::write(root.join(".DS_Store"), b"x").unwrap();
        let empty = GlobSet::empty();
        let scan = scan_local(root, &opts(&empty)).unwrap();
        let rels: Vec<_> = scan.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["a/.gitignore", "a/.hidden.png"]);
        assert_eq!(scan.excluded, 3);
    }

    #[test]
    fn exclude_on_a_folder_drops_everything_below() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("x/.cache/deep")).unwrap();
        std::fs::write(root.join("x/.cache/deep/f.png"), b"x").unwrap();
        std::fs::write(root.join("x/keep.png"), b"x").unwrap();
        let ex = globs(&["**/.cache"]);
        let scan = scan_local(root, &opts(&ex)).unwrap();
        assert_eq!(scan.files.len(), 1);
        assert_eq!(scan.excluded, 1);
    }

    #[test]
    fn non_recursive_stays_at_the_top() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("top.png"), b"x").unwrap();
        std::fs::write(dir.path().join("sub/below.png"), b"x").unwrap();
        let empty = GlobSet::empty();
        let o = ScanOptions {
            recursive: false,
            ..opts(&empty)
        };
        let scan = scan_local(dir.path(), &o).unwrap();
        assert_eq!(scan.files.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loop_is_a_warning_naming_the_link() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/f.png"), b"x").unwrap();
        std::os::unix::fs::symlink("..", dir.path().join("a/up")).unwrap();
        let empty = GlobSet::empty();
        let scan = scan_local(dir.path(), &opts(&empty)).unwrap();
        assert_eq!(scan.files.len(), 1);
        assert!(
            scan.issues
                .iter()
                .any(|i| matches!(i, ScanIssue::SymlinkLoop { link, .. } if link == "a/up")),
            "{:?}",
            scan.issues
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_are_reported_not_fatal() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(b"bad\xffname.png");
        std::fs::write(dir.path().join(name), b"x").unwrap();
        let empty = GlobSet::empty();
        let scan = scan_local(dir.path(), &opts(&empty)).unwrap();
        assert!(scan.files.is_empty());
        assert_eq!(scan.non_utf8, ["bad\u{fffd}name.png"]);
    }

    #[test]
    fn missing_root_is_an_error() {
        let empty = GlobSet::empty();
        assert!(scan_local(Path::new("/definitely/not/here"), &opts(&empty)).is_err());
    }
}
