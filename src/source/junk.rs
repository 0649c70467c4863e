//! The built-in junk list (SPEC 2.1): what operating systems, NAS boxes and
//! tools leave beside data. Junk is dropped and counted as excluded unless the
//! recipe says `include_junk: true` or an asset's `include` glob names it.

use globset::GlobSet;

/// Files never uploaded, wherever they are (besides AppleDouble `._*` files).
const JUNK_FILES: &[&str] = &[
    ".DS_Store",
    "Icon\r",
    "Thumbs.db",
    "desktop.ini",
    ".gitkeep",
];

/// Folders whose whole content is never uploaded, at any depth.
const JUNK_DIRS: &[&str] = &[
    ".Spotlight-V100",
    ".Trashes",
    ".fseventsd",
    ".TemporaryItems",
    "$RECYCLE.BIN",
    "System Volume Information",
    ".ipynb_checkpoints",
    "@eaDir",
    ".@__thumb",
    "@Recycle",
    "#recycle",
    ".synology",
    ".git",
    "__pycache__",
];

/// A junk file name: a known one, or a macOS AppleDouble companion (`._NAME`,
/// the resource fork a Mac writes beside every file it copies to a foreign disk).
pub fn is_junk_file(name: &str) -> bool {
    name.starts_with("._") || JUNK_FILES.contains(&name)
}

pub fn is_junk_dir(name: &str) -> bool {
    JUNK_DIRS.contains(&name)
}

/// Whether a relative path lies in a junk folder or is a junk file (for
/// listings that are flat, unlike the walk, which prunes junk folders).
pub fn is_junk_path(rel: &str) -> bool {
    let mut parts = rel.split('/').peekable();
    while let Some(p) = parts.next() {
        let last = parts.peek().is_none();
        if (last && is_junk_file(p)) || (!last && is_junk_dir(p)) {
            return true;
        }
    }
    false
}

/// What the walk does with junk.
#[derive(Debug, Clone, Copy, Default)]
pub struct JunkFilter<'a> {
    /// `include_junk: true`: keep junk like any other file.
    pub keep_all: bool,
    /// An asset's `include` globs: junk they match is kept.
    pub include: Option<&'a GlobSet>,
}

impl JunkFilter<'_> {
    /// Whether a file that is junk (`junk`: by its name or a junk folder above
    /// it) is dropped.
    pub fn drops(&self, rel: &str, junk: bool) -> bool {
        junk && !self.keep_all && !self.include.is_some_and(|g| g.is_match(rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_and_tool_junk_is_recognised_at_any_depth() {
        for rel in [
            "._BRATS_001.nii.gz",
            "imagesTr/._BRATS_001.nii.gz",
            "a/.DS_Store",
            "a/Icon\r",
            "Thumbs.db",
            ".Spotlight-V100/Store-V2/x",
            "a/.Trashes/501/x.png",
            ".fseventsd/0000",
            ".TemporaryItems/folders.501/x",
            "$RECYCLE.BIN/S-1-5/x.png",
            "System Volume Information/IndexerVolumeGuid",
            "nb/.ipynb_checkpoints/a-checkpoint.ipynb",
            "@eaDir/x.jpg",
            "a/.git/HEAD",
        ] {
            assert!(is_junk_path(rel), "{rel:?}");
        }
        for rel in [
            "Icon",
            "a/_x.png",
            "a._b/c.png",
            ".DS_Store/x.png",
            "x/.gitkeepx",
        ] {
            assert!(!is_junk_path(rel), "{rel:?}");
        }
    }

    #[test]
    fn junk_is_kept_when_asked_for() {
        let include = globset::GlobSetBuilder::new()
            .add(globset::Glob::new("**/._*").unwrap())
            .build()
            .unwrap();
        let default = JunkFilter::default();
        assert!(default.drops("a/._x", true));
        assert!(!default.drops("a/x", false));
        let all = JunkFilter {
            keep_all: true,
            include: None,
        };
        assert!(!all.drops("a/._x", true));
        let named = JunkFilter {
            keep_all: false,
            include: Some(&include),
        };
        assert!(!named.drops("a/._x", true));
        assert!(named.drops("a/.DS_Store", true));
    }
}
