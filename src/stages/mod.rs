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
