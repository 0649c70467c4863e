//! The local file-system walker: parallel, hidden files included, `.gitignore`
//! ignored, symlinks followed with loop detection.

use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use globset::GlobSet;
use ignore::{WalkBuilder, WalkState};

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

/// One discovered file. Paths are relative to the root, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    pub rel: String,
    pub size: u64,
    /// Nanoseconds since the Unix epoch; used only for cache keys, never printed.
    pub mtime_ns: i64,
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
pub fn scan_local(root: &Path, opts: &ScanOptions<'_>) -> Result<SourceScan, std::io::Error> {
    let meta = std::fs::metadata(root)?;
    if !meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a folder",
        ));
    }
    let mut builder = WalkBuilder::new(root);
    builder
        .standard_filters(false)
        .hidden(false)
        .follow_links(true)
        .threads(opts.threads.max(1))
        .max_depth(if opts.recursive { None } else { Some(1) });
    if let Some(skip) = opts.skip.clone() {
        builder.filter_entry(move |e| e.path() != skip);
    }

    let shared = Mutex::new(SourceScan::default());
    builder.build_parallel().run(|| {
        let mut collector = Collector {
            local: SourceScan::default(),
            shared: &shared,
        };
        Box::new(move |entry| {
            match entry {
                Ok(entry) => visit(root, &entry, opts, &mut collector.local),
                Err(err) => collector.local.issues.push(issue_of(root, err)),
            }
            // Flush in chunks so the lock is rarely taken.
            if collector.local.files.len() >= 4096 {
                merge(collector.shared, &mut collector.local);
            }
            WalkState::Continue
        })
    });
    // Each thread's collector merged its leftovers when `run` dropped it.
    let mut scan = shared.into_inner().unwrap_or_else(|e| e.into_inner());
    scan.files.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    scan.non_utf8.sort();
    scan.issues
        .sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    Ok(scan)
}

fn merge(shared: &Mutex<SourceScan>, local: &mut SourceScan) {
    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
    s.files.append(&mut local.files);
    s.non_utf8.append(&mut local.non_utf8);
    s.issues.append(&mut local.issues);
    s.excluded += std::mem::take(&mut local.excluded);
}

fn visit(root: &Path, entry: &ignore::DirEntry, opts: &ScanOptions<'_>, out: &mut SourceScan) {
    let Some(ft) = entry.file_type() else { return };
    if ft.is_dir() {
        return;
    }
    let path = entry.path();
    let Ok(rel_path) = path.strip_prefix(root) else {
        return;
    };
    let Some(rel) = rel_string(rel_path) else {
        out.non_utf8.push(lossy_rel(rel_path));
        return;
    };
    if is_excluded(&rel, opts.exclude) {
        out.excluded += 1;
        return;
    }
    let meta = match entry.metadata() {
        Ok(m) => m,
        Err(err) => {
            if is_broken_symlink(path) {
                out.issues.push(ScanIssue::BrokenSymlink { link: rel });
            } else {
                out.issues.push(ScanIssue::Unreadable {
                    path: rel,
                    message: err.to_string(),
                });
            }
            return;
        }
    };
    if !meta.is_file() {
        return; // sockets, fifos, devices
    }
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    out.files.push(ScannedFile {
        rel,
        size: meta.len(),
        mtime_ns,
    });
}

/// A walker thread's buffer; merges what is left when the thread is done.
struct Collector<'a> {
    local: SourceScan,
    shared: &'a Mutex<SourceScan>,
}

impl Drop for Collector<'_> {
    fn drop(&mut self) {
        merge(self.shared, &mut self.local);
    }
}

/// Junk names at any depth, and `exclude` globs on the path or any of its folders.
fn is_excluded(rel: &str, exclude: &GlobSet) -> bool {
    let mut parts = rel.split('/').peekable();
    let mut prefix_end = 0;
    while let Some(part) = parts.next() {
        let is_last = parts.peek().is_none();
        if is_last {
            if JUNK_FILES.contains(&part) {
                return true;
            }
        } else {
            if JUNK_DIRS.contains(&part) {
                return true;
            }
            prefix_end += part.len();
            if !exclude.is_empty() && exclude.is_match(&rel[..prefix_end]) {
                return true;
            }
            prefix_end += 1;
        }
    }
    !exclude.is_empty() && exclude.is_match(rel)
}

fn rel_string(rel: &Path) -> Option<String> {
    let mut out = String::new();
    for c in rel.components() {
        if let Component::Normal(part) = c {
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(part.to_str()?);
        }
    }
    Some(out)
}

fn lossy_rel(rel: &Path) -> String {
    rel.components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn issue_of(root: &Path, err: ignore::Error) -> ScanIssue {
    match err {
        ignore::Error::WithPath { path, err } => match *err {
            ignore::Error::Loop { ancestor, child } => loop_issue(root, &ancestor, &child),
            _ if is_broken_symlink(&path) => ScanIssue::BrokenSymlink {
                link: lossy_rel(path.strip_prefix(root).unwrap_or(&path)),
            },
            inner => ScanIssue::Unreadable {
                path: lossy_rel(path.strip_prefix(root).unwrap_or(&path)),
                message: inner.to_string(),
            },
        },
        ignore::Error::Loop { ancestor, child } => loop_issue(root, &ancestor, &child),
        ignore::Error::WithDepth { err, .. } => issue_of(root, *err),
        other => ScanIssue::Unreadable {
            path: String::new(),
            message: other.to_string(),
        },
    }
}

fn is_broken_symlink(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
        && std::fs::metadata(path).is_err()
}

fn loop_issue(root: &Path, ancestor: &Path, child: &Path) -> ScanIssue {
    ScanIssue::SymlinkLoop {
        link: lossy_rel(child.strip_prefix(root).unwrap_or(child)),
        target: lossy_rel(ancestor.strip_prefix(root).unwrap_or(ancestor)),
    }
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
