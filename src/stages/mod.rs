//! The planner's stages, one module each. Every stage is a pure function of its
//! inputs (the checksum stage also reads file bytes and its cache); the planner
//! in [`crate::plan`] wires them into a graph and runs independent ones at once.

pub mod checksum;
pub mod classify;
pub mod diff;
pub mod drafts;
pub mod fingerprint;
pub mod group;
pub mod layout;
pub mod metadata;
pub mod screen;
pub mod validate;

use serde::Serialize;

/// A file by its root (index into the recipe's roots) and its index in that root's scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileRef {
    pub root: u32,
    pub index: u32,
}

/// Some files of several roots, numbered root after root in listing order
/// (the checksum's requests, grouping's members): a bit per listed file and
/// a rank index, instead of a number per file and a [`FileRef`] per member
/// (12 bytes a file, 55 MiB at 4.6 million).
#[derive(Debug, Clone, Default)]
pub struct FileSet {
    roots: Vec<crate::bits::RankedBits>,
    /// The number of each root's first member.
    starts: Vec<usize>,
}

impl FileSet {
    /// The set of each root's members, by file index.
    pub fn new(roots: Vec<crate::bits::BitSet>) -> Self {
        let roots: Vec<_> = roots.into_iter().map(|b| b.into_ranked()).collect();
        let starts = roots
            .iter()
            .scan(0, |next, b| {
                let start = *next;
                *next += b.count();
                Some(start)
            })
            .collect();
        Self { roots, starts }
    }

    pub fn len(&self) -> usize {
        let last = self.starts.last().zip(self.roots.last());
        last.map_or(0, |(start, bits)| start + bits.count())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many of root `root`'s files are members.
    pub fn in_root(&self, root: usize) -> usize {
        self.roots[root].count()
    }

    /// The number of file `index` of root `root`, if it is a member.
    pub fn number_of(&self, root: usize, index: usize) -> Option<usize> {
        Some(self.starts[root] + self.roots[root].rank(index)?)
    }

    /// Member `n`. Panics past the end, like a slice.
    pub fn file(&self, n: usize) -> FileRef {
        // The last root starting at or before n (empty roots start where
        // the next one does).
        let root = self.starts.partition_point(|&s| s <= n) - 1;
        FileRef {
            root: root as u32,
            index: self.roots[root].select(n - self.starts[root]) as u32,
        }
    }
}

/// Why a discovered file is not part of any unit (SPEC 2.1, outcomes 2–5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedReason {
    NonUtf8Name,
    NoRule,
    ExtensionNotAllowed,
    NoGroupKey,
}

impl UnmatchedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnmatchedReason::NonUtf8Name => "non_utf8_name",
            UnmatchedReason::NoRule => "no_rule",
            UnmatchedReason::ExtensionNotAllowed => "extension_not_allowed",
            UnmatchedReason::NoGroupKey => "no_group_key",
        }
    }
}

/// What a warning is about; written into the plan as its `code` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningCode {
    ChecksumDeferred,
    ChecksumApplyLocal,
    Conflict,
    KeyFieldOverridden,
    SymlinkLoop,
    BrokenSymlink,
    MetadataRowWithoutKey,
    ListingCacheRebuilt,
    ChecksumCacheRebuilt,
    ChecksumCacheUnwritable,
    ScreenCacheRebuilt,
    ScreenCacheUnwritable,
    SheetCacheRebuilt,
    /// A recipe warning (e.g. `literal_token`), by its diagnostic code.
    Recipe(crate::recipe::Code),
    /// A content-screening finding under `validation.content: warn`.
    Content(screen::Rule),
}

impl WarningCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChecksumDeferred => "checksum_deferred",
            Self::ChecksumApplyLocal => "checksum_apply_local",
            Self::Conflict => "conflict",
            Self::KeyFieldOverridden => "key_field_overridden",
            Self::SymlinkLoop => "symlink_loop",
            Self::BrokenSymlink => "broken_symlink",
            Self::MetadataRowWithoutKey => "metadata_row_without_key",
            Self::ListingCacheRebuilt => "listing_cache_rebuilt",
            Self::ChecksumCacheRebuilt => "checksum_cache_rebuilt",
            Self::ChecksumCacheUnwritable => "checksum_cache_unwritable",
            Self::ScreenCacheRebuilt => "screen_cache_rebuilt",
            Self::ScreenCacheUnwritable => "screen_cache_unwritable",
            Self::SheetCacheRebuilt => "sheet_cache_rebuilt",
            Self::Recipe(code) => code.as_str(),
            Self::Content(rule) => rule.as_str(),
        }
    }

    /// Warnings about caches or the target's state, not about the inputs: a
    /// re-plan of the same inputs may differ in these (apply's integrity
    /// check ignores them).
    pub const VOLATILE: [WarningCode; 7] = [
        Self::Conflict,
        Self::ListingCacheRebuilt,
        Self::ChecksumCacheRebuilt,
        Self::ChecksumCacheUnwritable,
        Self::ScreenCacheRebuilt,
        Self::ScreenCacheUnwritable,
        Self::SheetCacheRebuilt,
    ];
}

/// A non-fatal observation that the plan reports. Ordered by code text, then
/// message, as the plan lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub code: WarningCode,
    pub message: String,
}

impl Warning {
    pub fn new(code: WarningCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl Ord for Warning {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.code.as_str(), &self.message).cmp(&(other.code.as_str(), &other.message))
    }
}

impl PartialOrd for Warning {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

pub use crate::source::names::{
    COMPRESSION_SUFFIXES, ends_with_extension, extension, file_name, stem,
};

#[cfg(test)]
mod file_set_tests {
    use super::*;
    use crate::bits::BitSet;

    /// Numbers run root after root in listing order, an empty root
    /// (or one with nothing hashed) taking none, and map back to their files.
    #[test]
    fn requests_are_numbered_root_after_root_and_map_back_to_their_files() {
        let bits = |len: usize, members: &[usize]| {
            let mut b = BitSet::new(len);
            members.iter().for_each(|&m| {
                b.insert(m);
            });
            b
        };
        let requested = FileSet::new(vec![
            bits(5, &[1, 4]),
            bits(0, &[]),
            bits(3, &[]),
            bits(200, &[0, 70, 199]),
        ]);
        assert_eq!(requested.len(), 5);
        let files: Vec<(u32, u32)> = (0..5)
            .map(|n| requested.file(n))
            .map(|f| (f.root, f.index))
            .collect();
        assert_eq!(files, [(0, 1), (0, 4), (3, 0), (3, 70), (3, 199)]);
        for (n, &(root, index)) in files.iter().enumerate() {
            assert_eq!(requested.number_of(root as usize, index as usize), Some(n));
        }
        assert_eq!(requested.number_of(0, 0), None);
        assert_eq!(requested.number_of(2, 1), None);
        assert_eq!(
            (0..4).map(|r| requested.in_root(r)).collect::<Vec<_>>(),
            [2, 0, 0, 3]
        );
        assert_eq!(FileSet::new(Vec::new()).len(), 0);
    }
}
