//! The planner's stages, one module each. Every stage is a pure function of its
//! inputs (the checksum stage also reads file bytes and its cache); the planner
//! in [`crate::plan`] wires them into a graph and runs independent ones at once.

pub mod checksum;
pub mod classify;
pub mod group;
pub mod metadata;
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

/// A non-fatal observation that the plan reports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Warning {
    pub code: String,
    pub message: String,
}

impl Warning {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The extension of a file name: after the last `.` of the name, lower-cased;
/// empty when the name has no dot (or is a dot-file without another dot).
pub fn extension(rel: &str) -> String {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    match name.rfind('.') {
        Some(0) | None => String::new(),
        Some(i) => name[i + 1..].to_ascii_lowercase(),
    }
}

/// The file name without its last extension.
pub fn stem(rel: &str) -> &str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    match name.rfind('.') {
        Some(0) | None => name,
        Some(i) => &name[..i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_and_stems() {
        assert_eq!(extension("a/b/scan.PNG"), "png");
        assert_eq!(extension("a/archive.tar.gz"), "gz");
        assert_eq!(extension("README"), "");
        assert_eq!(extension(".hidden"), "");
        assert_eq!(stem("a/archive.tar.gz"), "archive.tar");
        assert_eq!(stem("a/.hidden"), ".hidden");
    }
}
