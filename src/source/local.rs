//! The local file-system walker: parallel, hidden files included, `.gitignore`
//! ignored, symlinks followed with loop detection.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use globset::GlobSet;
use rustix::fs::{self, AtFlags, FileType, OFlags};

use super::files::FileList;
use super::junk::{JunkFilter, is_junk_dir, is_junk_file};
use super::listing_cache::{EntryReader, Listing, ListingCache, Stamp, push_entry, time_ns};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanIssue {
    /// A symlinked folder that points back to one of its ancestors (a warning).
    SymlinkLoop { link: String, target: String },
    /// A symlink whose target does not exist (a warning).
    BrokenSymlink { link: String },
    /// A folder or file that could not be read (an error).
    Unreadable { path: String, message: String },
    /// The folder-listing cache was there but unreadable; it is rebuilt (a warning).
    CacheRebuilt { cache: String, why: String },
    /// A remote listing's journal held damage a crash cannot cause; the
    /// listing started over (a warning).
    JournalDamaged { journal: String },
}

#[derive(Debug, Default)]
pub struct SourceScan {
    /// Sorted by path.
    pub files: FileList,
    /// Lossy renderings of names that are not UTF-8, sorted.
    pub non_utf8: Vec<String>,
    pub excluded: u64,
    pub issues: Vec<ScanIssue>,
    /// Folders listed from the listing cache, and folders read.
    pub folders_cached: u64,
    pub folders_read: u64,
    /// What a remote listing took from the journal of one interrupted
    /// before it.
    pub resumed: Option<ResumedListing>,
}

/// The part of a remote listing taken from an interrupted one's journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumedListing {
    pub objects: u64,
    /// How long before the interrupted listing was begun.
    pub age_secs: i64,
}

pub struct ScanOptions<'a> {
    pub recursive: bool,
    pub exclude: &'a GlobSet,
    /// Folders dropped whole by `exclude` (besides those `exclude` matches).
    pub exclude_dirs: Option<&'a GlobSet>,
    /// A folder never to descend into (the recipe's own `.synup/`).
    pub skip: Option<PathBuf>,
    pub threads: usize,
    /// Where this root's folder listings are cached between scans, if anywhere.
    pub listing_cache: Option<PathBuf>,
    pub junk: JunkFilter<'a>,
    /// Where a large listing is sorted in runs and stored past its share of
    /// the budget, if anywhere.
    pub spill: Option<crate::spill::SpillArea>,
}

/// Walks `root`. Errors only if the root itself is missing or not a folder.
///
/// Each folder is read by one task on a pool of `threads` workers (deep I/O
/// queues pay off even on two cores). Entry types come from `getdents`, so only
/// files (for size and mtime) and symlinks (to follow them) cost a `stat`, made
/// relative to their folder's descriptor; folders are opened relative to the
/// root's descriptor, so the kernel never re-resolves the root's absolute path.
/// With a `listing_cache`, a folder unchanged since the last scan is not opened
/// at all: its entries come from the cache and are `stat`-ed from the root.
pub fn scan_local(root: &Path, opts: &ScanOptions<'_>) -> Result<SourceScan, std::io::Error> {
    let root_fd = fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        fs::Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::NOTDIR => {
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a folder")
        }
        e => e.into(),
    })?;
    let meta = fs::fstat(&root_fd)?;
    // The recipe's own state folder, as a path under the root (if it is under it).
    let skip = opts
        .skip
        .as_deref()
        .and_then(|s| s.strip_prefix(root).ok())
        .and_then(Path::to_str)
        .map(str::to_owned);
    let cache = opts.listing_cache.clone().map(ListingCache::open);
    let root_id = (meta.st_dev, meta.st_ino);
    let mut scan = walk(
        root_fd.as_fd(),
        root_id,
        opts,
        cache.as_ref(),
        skip.as_deref(),
    );
    if let Some(cache) = cache.as_ref().filter(|c| c.damaged()) {
        scan.issues.push(ScanIssue::CacheRebuilt {
            cache: cache.path().display().to_string(),
            why: "not a folder-listing cache of this version, or damaged".to_owned(),
        });
    }
    if let Some(cache) = cache {
        // A cache that cannot be written only costs the next scan its reads.
        let _ = cache.save();
    }
    // Sorted once the cache is gone: a flat folder's cached listing is as
    // large as the paths, and the sort holds a second copy of them.
    scan.files.sort_finished(opts.spill.as_ref())?;
    sort_scan(&mut scan);
    Ok(scan)
}

/// Into lists of exactly the room needed (appends from many folders left up
/// to twice that): the listing lives until the plan is done. The files are
/// sorted by the caller, through a file or not.
fn sort_scan(scan: &mut SourceScan) {
    scan.non_utf8.sort();
    scan.issues
        .sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
}

/// The walk itself, from the root's descriptor and (device, inode).
fn walk(
    root_fd: BorrowedFd<'_>,
    root_id: (u64, u64),
    opts: &ScanOptions<'_>,
    cache: Option<&ListingCache>,
    skip: Option<&str>,
) -> SourceScan {
    let mut scan = SourceScan::default();
    if let Some(area) = &opts.spill {
        scan.files.spill_past(area);
    }
    if let Some(cache) = cache {
        let (files, bytes) = cache.size_hint();
        scan.files.reserve(files, bytes);
    }
    let shared = Mutex::new(scan);
    let walker = Walker {
        opts,
        root_fd,
        skip,
        shared: &shared,
        cache,
        stat_backlog: AtomicUsize::new(0),
    };
    let start = Arc::new(Dir {
        rel: String::new(),
        id: root_id,
        excluded: false,
        junk: false,
        parent: None,
    });
    match rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .build()
    {
        Ok(pool) => pool.scope(|scope| walker.visit(scope, start)),
        Err(_) => rayon::scope(|scope| walker.visit(scope, start)),
    }
    shared.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// A folder and the chain of folders above it, by (device, inode), so that a
/// symlinked folder pointing back up is recognised as a loop.
struct Dir {
    /// Relative path (`""` for the root).
    rel: String,
    id: (u64, u64),
    /// Inside an excluded folder: its files are only counted.
    excluded: bool,
    /// Inside a junk folder: its files are counted unless junk is kept.
    junk: bool,
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

    fn child_rel(&self, name: &str) -> String {
        if self.rel.is_empty() {
            name.to_owned()
        } else {
            let mut rel = String::with_capacity(self.rel.len() + 1 + name.len());
            rel.push_str(&self.rel);
            rel.push('/');
            rel.push_str(name);
            rel
        }
    }
}

struct Walker<'a> {
    opts: &'a ScanOptions<'a>,
    root_fd: BorrowedFd<'a>,
    /// The state folder's path under the root, never descended into.
    skip: Option<&'a str>,
    shared: &'a Mutex<SourceScan>,
    cache: Option<&'a ListingCache>,
    /// Batches of files handed to other workers to `stat` and not done yet.
    stat_backlog: AtomicUsize,
}

/// What a folder's entries are `stat`-ed relative to: its own descriptor, or
/// (for a folder listed from the cache, which is never opened) the root's.
#[derive(Clone)]
enum At {
    Root,
    Dir(Arc<OwnedFd>),
}

impl At {
    fn fd<'f>(&'f self, root: BorrowedFd<'f>) -> BorrowedFd<'f> {
        match self {
            At::Root => root,
            At::Dir(fd) => fd.as_fd(),
        }
    }
}

/// A folder's encoded entries, what they are `stat`-ed relative to, and the
/// stamp to cache them under (a whole listing just read, with a cache).
struct Listed {
    at: At,
    entries: Listing,
    keep: Option<Stamp>,
}

fn mtime_ns(st: &fs::Stat) -> i64 {
    time_ns(st.st_mtime, st.st_mtime_nsec as i64)
}

impl<'a> Walker<'a> {
    fn unreadable(out: &mut SourceScan, path: &str, err: rustix::io::Errno) {
        out.issues.push(ScanIssue::Unreadable {
            path: path.to_owned(),
            message: std::io::Error::from(err).to_string(),
        });
    }

    /// A folder's entries, encoded as in the listing cache: from the cache
    /// when the folder is unchanged, else read (and offered to the cache).
    fn list(&self, dir: &Dir, out: &mut SourceScan) -> Option<Listed> {
        let here = if dir.rel.is_empty() {
            "."
        } else {
            dir.rel.as_str()
        };
        let cache = self.cache;
        if let Some(cache) = cache.filter(|c| !c.is_empty())
            && let Ok(st) = fs::statat(self.root_fd, here, AtFlags::empty())
            && let Some(listing) = cache.get(&dir.rel, &Stamp::of(&st))
        {
            out.folders_cached += 1;
            return Some(Listed {
                at: At::Root,
                entries: listing,
                keep: None,
            });
        }
        out.folders_read += 1;
        let dir_fd = match fs::openat(
            self.root_fd,
            here,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            fs::Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(err) => {
                // An excluded folder is read only to count what it drops:
                // one that cannot be read drops silently (SPEC 2.1).
                if !dir.excluded {
                    Self::unreadable(out, &dir.rel, err);
                }
                return None;
            }
        };
        // Stamped before reading: a change while reading shows on the next scan.
        let stamp = cache
            .and_then(|_| fs::fstat(&dir_fd).ok())
            .map(|st| Stamp::of(&st));
        let mut listing = Vec::new();
        let mut complete = true;
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 32 * 1024];
        let mut raw = fs::RawDir::new(&dir_fd, &mut buf);
        while let Some(entry) = raw.next() {
            match entry {
                Ok(e) => {
                    let name = e.file_name().to_bytes();
                    if name != b"." && name != b".." {
                        push_entry(&mut listing, name, e.file_type(), e.ino());
                    }
                }
                Err(err) => {
                    Self::unreadable(out, &dir.rel, err);
                    complete = false;
                    break;
                }
            }
        }
        Some(Listed {
            at: At::Dir(Arc::new(dir_fd)),
            entries: Listing::Read(listing),
            keep: stamp.filter(|_| complete),
        })
    }

    fn visit<'s>(&'s self, scope: &rayon::Scope<'s>, dir: Arc<Dir>) {
        let mut out = SourceScan::default();
        let Some(Listed {
            at,
            entries: listing,
            keep,
        }) = self.list(&dir, &mut out)
        else {
            merge(self.shared, &mut out);
            return;
        };
        // Regular files waiting for their stat, and where the path that is
        // relative to `at` starts in their relative paths.
        let mut to_stat: Vec<String> = Vec::new();
        let name_at = match at {
            At::Dir(_) if !dir.rel.is_empty() => dir.rel.len() + 1,
            _ => 0,
        };
        let at_fd = at.fd(self.root_fd);
        // Stats one entry (by name) relative to `at`.
        let stat_entry = |name: &str, flags: AtFlags| match &at {
            At::Dir(_) => fs::statat(at_fd, name, flags),
            At::Root => fs::statat(at_fd, dir.child_rel(name), flags),
        };
        let mut reader = EntryReader::new(&listing, self.cache);
        while let Some((bytes, mut ft, ino)) = reader.next() {
            let Ok(name) = std::str::from_utf8(bytes) else {
                let prefix = if dir.rel.is_empty() {
                    String::new()
                } else {
                    format!("{}/", dir.rel)
                };
                out.non_utf8
                    .push(format!("{prefix}{}", String::from_utf8_lossy(bytes)));
                continue;
            };
            let mut stat = None;
            if ft == FileType::Unknown {
                // Some file systems leave the type out of `getdents`.
                match stat_entry(name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => {
                        ft = FileType::from_raw_mode(st.st_mode);
                        stat = Some(st);
                    }
                    Err(err) => {
                        Self::unreadable(&mut out, &dir.child_rel(name), err);
                        continue;
                    }
                }
            }
            let mut followed = false;
            if ft == FileType::Symlink {
                match stat_entry(name, AtFlags::empty()) {
                    Ok(st) => {
                        ft = FileType::from_raw_mode(st.st_mode);
                        stat = Some(st);
                        followed = true;
                    }
                    Err(_) => {
                        out.issues.push(ScanIssue::BrokenSymlink {
                            link: dir.child_rel(name),
                        });
                        continue;
                    }
                }
            }
            if ft == FileType::Directory {
                if !self.opts.recursive {
                    continue;
                }
                let rel = dir.child_rel(name);
                if self.skip == Some(rel.as_str()) {
                    continue;
                }
                let id = match &stat {
                    Some(st) => (st.st_dev, st.st_ino),
                    None => (dir.id.0, ino),
                };
                if followed && let Some(target) = dir.find(id) {
                    out.issues.push(ScanIssue::SymlinkLoop {
                        link: rel,
                        target: target.to_owned(),
                    });
                    continue;
                }
                let excluded = dir.excluded
                    || (!self.opts.exclude.is_empty() && self.opts.exclude.is_match(&rel))
                    || self.opts.exclude_dirs.is_some_and(|d| d.is_match(&rel));
                let child = Arc::new(Dir {
                    rel,
                    id,
                    excluded,
                    junk: dir.junk || is_junk_dir(name),
                    parent: Some(dir.clone()),
                });
                scope.spawn(move |s| self.visit(s, child));
                continue;
            }
            if ft != FileType::RegularFile {
                continue; // sockets, fifos, devices
            }
            let rel = dir.child_rel(name);
            if dir.excluded
                || self.opts.junk.drops(&rel, dir.junk || is_junk_file(name))
                || (!self.opts.exclude.is_empty() && self.opts.exclude.is_match(&rel))
            {
                out.excluded += 1;
                continue;
            }
            match stat {
                Some(st) => push_stat(&mut out.files, &rel, &st),
                None => {
                    to_stat.push(rel);
                    if to_stat.len() == STAT_BATCH {
                        // A big folder: its files are stat-ed by other workers
                        // while this one goes on through its names.
                        let batch = std::mem::take(&mut to_stat);
                        // Names from the cache come far faster than their
                        // stats: unbounded, the waiting batches held every
                        // path as a string of its own (250 MiB at 4.6 million
                        // files). Past the bound this worker stats its batch.
                        if self.stat_backlog.fetch_add(1, Ordering::Relaxed) < max_backlog() {
                            let at = at.clone();
                            scope.spawn(move |_| {
                                let mut out = SourceScan::default();
                                Self::stat_files(at.fd(self.root_fd), name_at, batch, &mut out);
                                merge(self.shared, &mut out);
                                self.stat_backlog.fetch_sub(1, Ordering::Relaxed);
                            });
                        } else {
                            self.stat_backlog.fetch_sub(1, Ordering::Relaxed);
                            let mut done = SourceScan::default();
                            Self::stat_files(at_fd, name_at, batch, &mut done);
                            merge(self.shared, &mut done);
                        }
                    }
                }
            }
        }
        if let Some(e) = reader.error.take() {
            // The cache file could not be read to the end of this listing:
            // its folder's files past that point are missing, so say so.
            out.issues.push(ScanIssue::Unreadable {
                path: dir.rel.clone(),
                message: format!("its cached listing could not be read: {e}"),
            });
        }
        drop(reader);
        Self::stat_files(at_fd, name_at, to_stat, &mut out);
        merge(self.shared, &mut out);
        // Offered to the cache once used: the listing is moved, not copied.
        if let (Some(cache), Some(stamp), Listing::Read(listing)) = (self.cache, keep, listing) {
            cache.put(&dir.rel, stamp, listing);
        }
    }

    /// Stats files of one folder relative to `fd` (the folder's or the root's
    /// descriptor; the path relative to it starts at byte `name_at`).
    fn stat_files(fd: BorrowedFd<'_>, name_at: usize, rels: Vec<String>, out: &mut SourceScan) {
        for rel in rels {
            match fs::statat(fd, &rel[name_at..], AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => push_stat(&mut out.files, &rel, &st),
                Err(err) => Self::unreadable(out, &rel, err),
            }
        }
    }
}

/// Files per stat task in a big folder.
const STAT_BATCH: usize = 2048;

/// Stat batches waiting for a worker at most: enough to keep every worker
/// busy, few enough that waiting paths stay a few MiB.
fn max_backlog() -> usize {
    rayon::current_num_threads() * 4
}

fn push_stat(files: &mut FileList, rel: &str, st: &fs::Stat) {
    files.push(rel, st.st_size as u64, mtime_ns(st), None);
}

fn merge(shared: &Mutex<SourceScan>, local: &mut SourceScan) {
    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
    s.files.append(&mut local.files);
    s.non_utf8.append(&mut local.non_utf8);
    s.issues.append(&mut local.issues);
    s.excluded += std::mem::take(&mut local.excluded);
    s.folders_cached += std::mem::take(&mut local.folders_cached);
    s.folders_read += std::mem::take(&mut local.folders_read);
}

/// One-byte files at these relative paths, for other modules' unit tests.
#[cfg(test)]
pub(crate) fn scanned_files(rels: &[&str]) -> FileList {
    let mut files = FileList::default();
    for r in rels {
        files.push(r, 1, 0, None);
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(exclude: &GlobSet) -> ScanOptions<'_> {
        ScanOptions {
            recursive: true,
            exclude,
            exclude_dirs: None,
            skip: None,
            threads: 4,
            listing_cache: None,
            junk: JunkFilter::default(),
            spill: None,
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
        let rels: Vec<_> = scan.files.iter().map(|f| f.rel).collect();
        assert_eq!(rels, ["a/.gitignore", "a/.hidden.png"]);
        assert_eq!(scan.excluded, 3);
    }

    #[test]
    fn mac_companions_are_junk_unless_junk_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("imagesTr")).unwrap();
        std::fs::create_dir_all(root.join(".Trashes/501")).unwrap();
        std::fs::write(root.join("imagesTr/BRATS_001.nii.gz"), b"x").unwrap();
        std::fs::write(root.join("imagesTr/._BRATS_001.nii.gz"), b"x").unwrap();
        std::fs::write(root.join(".Trashes/501/old.png"), b"x").unwrap();
        let empty = GlobSet::empty();
        let scan = scan_local(root, &opts(&empty)).unwrap();
        let rels: Vec<_> = scan.files.iter().map(|f| f.rel).collect();
        assert_eq!(rels, ["imagesTr/BRATS_001.nii.gz"]);
        assert_eq!(scan.excluded, 2);
        let keep = ScanOptions {
            junk: JunkFilter {
                keep_all: true,
                include: None,
            },
            ..opts(&empty)
        };
        assert_eq!(scan_local(root, &keep).unwrap().files.len(), 3);
        let include = globs(&["**/._*"]);
        let named = ScanOptions {
            junk: JunkFilter {
                keep_all: false,
                include: Some(&include),
            },
            ..opts(&empty)
        };
        let scan = scan_local(root, &named).unwrap();
        assert_eq!(scan.files.len(), 2);
        assert_eq!(scan.excluded, 1);
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
    fn a_big_folder_is_stat_ed_in_batches_with_nothing_lost() {
        let dir = tempfile::tempdir().unwrap();
        let n = STAT_BATCH * 2 + 7;
        for i in 0..n {
            std::fs::write(dir.path().join(format!("f{i:05}.png")), vec![b'x'; i % 13]).unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/g.png"), b"yy").unwrap();
        let empty = GlobSet::empty();
        let scan = scan_local(dir.path(), &opts(&empty)).unwrap();
        assert_eq!(scan.files.len(), n + 1);
        assert!(scan.files.iter().is_sorted_by(|a, b| a.rel < b.rel));
        for (i, f) in scan.files.iter().take(n).enumerate() {
            assert_eq!(
                (&*f.rel, f.size),
                (format!("f{i:05}.png").as_str(), (i % 13) as u64)
            );
        }
        assert_eq!(
            (&*scan.files.get(n).rel, scan.files.get(n).size),
            ("sub/g.png", 2)
        );
    }

    /// Scans with a listing cache opened as if the scan started a minute
    /// from now, so folders made by the test count as settled.
    fn cached_scan(root: &Path, cache: &Path) -> (SourceScan, usize) {
        let empty = GlobSet::empty();
        let later = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64
            + 60_000_000_000;
        let cache = ListingCache::open_at(cache.to_path_buf(), later);
        let fd = fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY, fs::Mode::empty()).unwrap();
        let st = fs::fstat(&fd).unwrap();
        let mut scan = walk(
            fd.as_fd(),
            (st.st_dev, st.st_ino),
            &opts(&empty),
            Some(&cache),
            None,
        );
        let reused = cache.reused();
        cache.save().unwrap();
        scan.files.sort();
        sort_scan(&mut scan);
        (scan, reused)
    }

    #[test]
    fn a_cached_walk_is_sized_by_the_cache_to_what_it_lists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let cache = dir.path().join("cache.dirs");
        for f in ["a/x.png", "a/b/y.json", "top.png", "top2.png"] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), f).unwrap();
        }
        cached_scan(&root, &cache);
        let later = i64::MAX / 2;
        let hint = ListingCache::open_at(cache, later).size_hint();
        // Entries: a, top.png, top2.png; a/b, a/x.png; a/b/y.json.
        let paths = ["a", "top.png", "top2.png", "a/b", "a/x.png", "a/b/y.json"];
        assert_eq!(hint, (6, paths.iter().map(|p| p.len()).sum()));
    }

    fn uncached(root: &Path) -> SourceScan {
        scan_local(root, &opts(&GlobSet::empty())).unwrap()
    }

    fn same(a: &SourceScan, b: &SourceScan) {
        assert_eq!(a.files, b.files);
        assert_eq!(
            (&a.non_utf8, a.excluded, &a.issues),
            (&b.non_utf8, b.excluded, &b.issues)
        );
    }

    #[test]
    fn unchanged_folders_are_listed_from_the_cache_and_every_change_is_seen() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let cache = dir.path().join("cache.dirs");
        for f in [
            "a/x.png",
            "a/y.json",
            "b/z.png",
            "c/d/w.png",
            "top.png",
            "a/.DS_Store",
        ] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), f).unwrap();
        }
        std::fs::create_dir_all(root.join("@eaDir")).unwrap();
        std::fs::write(root.join("@eaDir/t.png"), "t").unwrap();
        std::os::unix::fs::symlink("../c", root.join("c/d/up")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("b/broken")).unwrap();
        std::fs::write(
            root.join(std::ffi::OsStr::from_bytes(b"b/bad\xff.png")),
            "x",
        )
        .unwrap();

        let (first, reused) = cached_scan(&root, &cache);
        assert_eq!(reused, 0);
        same(&first, &uncached(&root));
        assert_eq!(first.issues.len(), 2, "{:?}", first.issues);
        let (second, reused) = cached_scan(&root, &cache);
        assert_eq!(reused, 6, "every folder: root, a, b, c, c/d and @eaDir");
        same(&second, &first);

        // Added, removed, grown: all seen, and only changed folders are read.
        std::fs::write(root.join("a/new.png"), "n").unwrap();
        std::fs::remove_file(root.join("b/z.png")).unwrap();
        std::fs::write(root.join("c/d/w.png"), "longer content").unwrap();
        let (third, reused) = cached_scan(&root, &cache);
        same(&third, &uncached(&root));
        assert_eq!(reused, 4, "a and b are read again");

        // An entry added with the folder's mtime put back: its ctime moved.
        let before = std::fs::metadata(root.join("c"))
            .unwrap()
            .modified()
            .unwrap();
        std::fs::write(root.join("c/sneaky.png"), "s").unwrap();
        std::fs::File::open(root.join("c"))
            .unwrap()
            .set_modified(before)
            .unwrap();
        let (fourth, _) = cached_scan(&root, &cache);
        assert!(fourth.files.iter().any(|f| f.rel == "c/sneaky.png"));
        same(&fourth, &uncached(&root));

        // A removed folder's listing is dropped; a damaged file is a miss.
        std::fs::remove_dir_all(root.join("@eaDir")).unwrap();
        let (fifth, _) = cached_scan(&root, &cache);
        same(&fifth, &uncached(&root));
        let bytes = std::fs::read(&cache).unwrap();
        std::fs::write(&cache, &bytes[..bytes.len() - 3]).unwrap();
        let (sixth, reused) = cached_scan(&root, &cache);
        assert_eq!(reused, 0);
        same(&sixth, &fifth);
        let (_, reused) = cached_scan(&root, &cache);
        assert_eq!(reused, 5, "rebuilt by the scan that found it damaged");
    }

    #[test]
    fn a_folder_changed_just_before_the_scan_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.png"), "x").unwrap();
        let cache_path = dir.path().join("c.dirs");
        let empty = GlobSet::empty();
        let o = ScanOptions {
            listing_cache: Some(cache_path.clone()),
            ..opts(&empty)
        };
        let scan = scan_local(dir.path(), &o).unwrap();
        assert_eq!(scan.files.len(), 1);
        assert!(!cache_path.exists(), "nothing settled, nothing written");
    }

    #[test]
    fn missing_root_is_an_error() {
        let empty = GlobSet::empty();
        assert!(scan_local(Path::new("/definitely/not/here"), &opts(&empty)).is_err());
    }
}

/// A local folder as a [`super::Source`].
#[derive(Debug, Clone)]
pub struct LocalSource {
    path: PathBuf,
    /// The path's bytes with one trailing `/`: what names its files in cache keys.
    key_prefix: Vec<u8>,
}

impl LocalSource {
    pub fn new(path: PathBuf) -> Self {
        use std::os::unix::ffi::OsStrExt;
        let mut key_prefix = path.as_os_str().as_bytes().to_vec();
        if !key_prefix.ends_with(b"/") {
            key_prefix.push(b'/');
        }
        Self { path, key_prefix }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl super::Source for LocalSource {
    fn list(&self, opts: &super::ListOptions<'_>) -> Result<SourceScan, super::SourceError> {
        let scan = ScanOptions {
            recursive: opts.recursive,
            exclude: opts.exclude,
            exclude_dirs: opts.exclude_dirs,
            skip: opts.skip.clone(),
            threads: opts.threads,
            listing_cache: opts.listing_cache.clone(),
            junk: opts.junk,
            spill: opts.spill.clone(),
        };
        scan_local(&self.path, &scan).map_err(|e| {
            let mut error = super::SourceError::io(&e);
            error.message = match error.kind {
                super::SourceErrorKind::NotFound => "no such folder".to_owned(),
                super::SourceErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => error.message,
            };
            error
        })
    }
    fn exists(&self, rel: &str) -> bool {
        self.path.join(rel).is_file()
    }
    fn read(&self, rel: &str) -> Result<Vec<u8>, super::SourceError> {
        std::fs::read(self.path.join(rel)).map_err(|e| super::SourceError::io(&e))
    }
    fn read_if_exists(&self, rel: &str) -> Result<Option<Vec<u8>>, super::SourceError> {
        match std::fs::read(self.path.join(rel)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(super::SourceError::io(&e)),
        }
    }
    fn sha1(
        &self,
        rel: &str,
        head: &mut dyn FnMut(&[u8]),
    ) -> Result<super::Sha1Digest, super::SourceError> {
        super::digest::sha1_file_seeing_head(&self.path.join(rel), head)
            .map_err(|e| super::SourceError::io(&e))
    }
    fn open(&self, rel: &str) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(std::fs::File::open(self.path.join(rel))?))
    }
    fn describe(&self, rel: &str) -> String {
        self.path.join(rel).display().to_string()
    }
    fn cache_prefix(&self) -> &[u8] {
        &self.key_prefix
    }
    fn local_path(&self) -> Option<&Path> {
        Some(&self.path)
    }
    fn remote(&self) -> Option<&super::RemoteRoot> {
        None
    }
}
