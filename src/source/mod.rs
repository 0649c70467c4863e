//! Where files come from: one [`Source`] interface with a local and a remote
//! implementation, so the planner's stages never know which they have.
//!
//! A scan yields, per root, every file with its relative path, size and mtime,
//! after the junk list and `exclude` globs; names that are not UTF-8 and walk
//! problems (symlink loops, unreadable folders) are reported beside them.
//! This layer knows nothing of recipes: it lists, reads and hashes.

mod credentials;
pub mod digest;
mod files;
pub mod junk;
mod listing_cache;
mod listing_journal;
pub mod local;
pub mod names;
pub mod object_copies;
pub mod remote;

use std::path::{Path, PathBuf};

use globset::GlobSet;

pub use digest::Sha1Digest;
pub use files::{FileList, ListedFile};
pub use junk::{JunkFilter, is_junk_path};
pub use local::{LocalSource, ResumedListing, ScanIssue, ScanOptions, SourceScan, scan_local};
pub use object_copies::ObjectCopies;
pub use remote::RemoteRoot;

/// What went wrong reading a source; the message says where and why, the
/// kind lets callers tell a missing file from a refused or failed read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
#[diagnostic(code(synup::source::read))]
pub struct SourceError {
    pub kind: SourceErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceErrorKind {
    NotFound,
    PermissionDenied,
    /// The store did not answer, or answered with an error.
    Unavailable,
    Other,
}

impl SourceError {
    pub fn new(kind: SourceErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// An I/O error, described by its own text.
    pub fn io(e: &std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => SourceErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => SourceErrorKind::PermissionDenied,
            _ => SourceErrorKind::Other,
        };
        Self::new(kind, e.to_string())
    }
}

/// How to list a root. Local-only knobs (`skip`, `listing_cache`, `threads`)
/// are ignored by a remote source, and `listing_journal` by a local one.
pub struct ListOptions<'a> {
    pub recursive: bool,
    pub exclude: &'a GlobSet,
    /// Folders dropped whole by `exclude` (besides those `exclude` matches).
    pub exclude_dirs: Option<&'a GlobSet>,
    pub junk: JunkFilter<'a>,
    /// A folder never to descend into (the recipe's own `.synup/`).
    pub skip: Option<PathBuf>,
    /// Where folder listings are cached between scans, if anywhere.
    pub listing_cache: Option<PathBuf>,
    /// Where a remote listing journals what it has listed, for one that is
    /// interrupted to be gone on with, if anywhere.
    pub listing_journal: Option<PathBuf>,
    /// Where a large listing goes past its share of the budget (the spill
    /// folder, where it is sorted in runs and stored), if anywhere;
    /// otherwise it is held and sorted in memory.
    pub spill: Option<crate::spill::SpillArea>,
    pub threads: usize,
    /// Told the number of objects listed so far, during long listings.
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// A root files are read from: a local folder or a bucket/server prefix.
/// Paths are relative to the root, `/`-separated.
pub trait Source: Send + Sync + std::fmt::Debug {
    /// Every file under the root. Errors only when the root itself cannot be
    /// listed (missing, not a folder, unreachable); problems below it are
    /// [`ScanIssue`]s.
    fn list(&self, opts: &ListOptions<'_>) -> Result<SourceScan, SourceError>;
    /// Whether a file exists under the root.
    fn exists(&self, rel: &str) -> bool;
    /// A whole (small) file: metadata sheets and sidecars. Errors give the
    /// reason only; the caller says which file.
    fn read(&self, rel: &str) -> Result<Vec<u8>, SourceError>;
    /// Like [`Source::read`], but a missing file is `Ok(None)`.
    fn read_if_exists(&self, rel: &str) -> Result<Option<Vec<u8>>, SourceError>;
    /// SHA-1 of a file's bytes, streamed; `head` sees the first chunk (up to
    /// 256 KiB) of files read locally, so content screening needs no second read.
    fn sha1(&self, rel: &str, head: &mut dyn FnMut(&[u8])) -> Result<Sha1Digest, SourceError>;
    /// [`Source::sha1`] of a file of `size` bytes, keeping a copy in `copies`
    /// where it fits, for apply to send without reading it again. Only a
    /// remote source keeps copies: a local file is as near as a copy.
    fn sha1_keeping(
        &self,
        rel: &str,
        _size: u64,
        _copies: &ObjectCopies,
    ) -> Result<Sha1Digest, SourceError> {
        self.sha1(rel, &mut |_| {})
    }
    /// A blocking reader over a file.
    fn open(&self, rel: &str) -> std::io::Result<Box<dyn std::io::Read + Send>>;
    /// How messages name a file under the root: its absolute path, or URL.
    fn describe(&self, rel: &str) -> String;
    /// The bytes that name this root in cache keys, ending in `/`: the
    /// absolute folder path, or the URL.
    fn cache_prefix(&self) -> &[u8];
    /// The folder, for a local root.
    fn local_path(&self) -> Option<&Path>;
    /// The operator, for a remote root (uploads stream ranges from it).
    fn remote(&self) -> Option<&RemoteRoot>;
    /// Whether a file's identity before it is read is a version tag (ETag),
    /// not a path and mtime on this machine.
    fn is_remote(&self) -> bool {
        self.remote().is_some()
    }
}

/// The recipe's roots under the names plans give them (`root` of a planned
/// file), to find where a planned file is read from, and the copies of
/// remote objects a plan kept.
#[derive(Debug, Default, Clone)]
pub struct Roots {
    roots: Vec<(String, std::sync::Arc<dyn Source>)>,
    copies: Option<std::sync::Arc<ObjectCopies>>,
}

impl Roots {
    pub fn new(roots: impl IntoIterator<Item = (String, std::sync::Arc<dyn Source>)>) -> Self {
        Self {
            roots: roots.into_iter().collect(),
            copies: None,
        }
    }

    /// These roots, reading remote objects from the copies under `state_dir`
    /// where a plan kept them.
    pub fn with_copies(mut self, state_dir: &Path) -> Self {
        self.copies = Some(std::sync::Arc::new(ObjectCopies::for_apply(
            ObjectCopies::dir_under(state_dir),
        )));
        self
    }

    /// The kept copy of a remote object with this SHA-1 and size.
    pub fn copy_of(&self, sha1: &str, size: u64) -> Option<PathBuf> {
        self.copies.as_ref()?.copy_of(sha1, size)
    }

    /// Drops the copy with this SHA-1: the target holds the content, or the
    /// copy was damaged.
    pub fn forget_copy(&self, sha1: &str) {
        if let Some(c) = &self.copies {
            c.remove(sha1);
        }
    }

    /// The root and relative path of a file shown as `root/path`.
    pub fn locate<'s>(&self, shown: &'s str) -> Option<(&dyn Source, &'s str)> {
        self.roots.iter().find_map(|(written, source)| {
            shown
                .strip_prefix(written.trim_end_matches('/'))
                .and_then(|rest| rest.strip_prefix('/'))
                .map(|rel| (&**source, rel))
        })
    }

    /// [`Roots::locate`] for a file under a remote root.
    pub fn remote_of<'s>(&self, shown: &'s str) -> Option<(&RemoteRoot, &'s str)> {
        self.locate(shown)
            .and_then(|(source, rel)| source.remote().map(|r| (r, rel)))
    }
}
