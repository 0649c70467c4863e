//! Discovering files under a source root.
//!
//! A scan yields, per root, every file with its relative path, size and mtime,
//! after the junk list and `exclude` globs; names that are not UTF-8 and walk
//! problems (symlink loops, unreadable folders) are reported beside them.

pub mod junk;
mod listing_cache;
pub mod local;
pub mod remote;

pub use junk::{JunkFilter, is_junk_path};
pub use local::{ScanIssue, ScanOptions, ScannedFile, SourceScan, scan_local};
