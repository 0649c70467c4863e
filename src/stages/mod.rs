//! The planner's stages, one module each. Every stage is a pure function of its
//! inputs (the checksum stage also reads file bytes and its cache); the planner
//! in [`crate::plan`] wires them into a graph and runs independent ones at once.

pub mod checksum;
pub mod classify;
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

/// Suffixes that compress the format before them: `.nii.gz` is one extension.
pub const COMPRESSION_SUFFIXES: [&str; 4] = ["gz", "bz2", "xz", "zst"];

/// The file name of a relative path.
pub fn file_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// The extension of a file name where no spec is involved (SPEC 2.1): its last
/// suffix, joined with the one before when the last is a compression suffix
/// (`scan.nii.gz` → `nii.gz`), lower-cased, without the dot; empty when the
/// name has no dot (or is a dot-file without another dot).
pub fn extension(rel: &str) -> String {
    let name = file_name(rel);
    name[name.len() - extension_len(name)..]
        .trim_start_matches('.')
        .to_ascii_lowercase()
}

/// The file name without [`extension`].
pub fn stem(rel: &str) -> &str {
    let name = file_name(rel);
    &name[..name.len() - extension_len(name)]
}

/// Bytes of `name` taken by its extension, dot included (0 for none).
fn extension_len(name: &str) -> usize {
    let last = match name.rfind('.') {
        Some(0) | None => return 0,
        Some(i) => i,
    };
    let suffix = &name[last + 1..];
    if COMPRESSION_SUFFIXES
        .iter()
        .any(|c| c.eq_ignore_ascii_case(suffix))
        && let Some(before) = name[..last].rfind('.')
        && before > 0
        && before + 1 < last
    {
        return name.len() - before;
    }
    name.len() - last
}

/// Bytes of `name` taken by `ext` (lower case, no leading dot) when the name
/// ends with it after a non-empty stem, compared case-insensitively.
pub fn ends_with_extension(name: &str, ext: &str) -> Option<usize> {
    let n = ext.len() + 1;
    if name.len() <= n || !name.is_char_boundary(name.len() - n) {
        return None;
    }
    let tail = &name.as_bytes()[name.len() - n..];
    (tail[0] == b'.' && tail[1..].eq_ignore_ascii_case(ext.as_bytes())).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_and_stems() {
        assert_eq!(extension("a/b/scan.PNG"), "png");
        assert_eq!(extension("a/archive.tar.gz"), "tar.gz");
        assert_eq!(extension("a/BRATS_001.NII.GZ"), "nii.gz");
        assert_eq!(extension("a/x.ome.tif"), "tif");
        assert_eq!(extension("a/log.gz"), "gz");
        assert_eq!(extension("a/.bashrc.gz"), "gz");
        assert_eq!(extension("a/x..gz"), "gz");
        assert_eq!(extension("README"), "");
        assert_eq!(extension(".hidden"), "");
        assert_eq!(stem("a/archive.tar.gz"), "archive");
        assert_eq!(
            stem("a/BraTS2021_00000_flair.nii.gz"),
            "BraTS2021_00000_flair"
        );
        assert_eq!(stem("a/.hidden"), ".hidden");
        assert_eq!(stem("a/x.png"), "x");
    }

    #[test]
    fn a_listed_extension_must_follow_a_stem() {
        assert_eq!(ends_with_extension("a.NII.gz", "nii.gz"), Some(7));
        assert_eq!(ends_with_extension("a.nii.gz", "gz"), Some(3));
        assert_eq!(ends_with_extension(".png", "png"), None);
        assert_eq!(ends_with_extension("apng", "png"), None);
        assert_eq!(ends_with_extension("é.png", "png"), Some(4));
        assert_eq!(ends_with_extension("x.ñg", "png"), None);
    }
}
