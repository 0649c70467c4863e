//! File names as the recipe sees them: the name, its stem and its extension
//! (`scan.nii.gz` has the extension `nii.gz`).

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
