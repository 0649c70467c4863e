//! Classify: decide each discovered file's spec, or why it has none (SPEC 2.1).

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::{UnmatchedReason, ends_with_extension, file_name};
use crate::recipe::resolve::{Asset, FileRuleCompiled, FileSpec};
use crate::source::FileList;

/// A file's outcome before grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    Spec(u32),
    /// The file's spec (by rule, folder or asset) does not list its extension
    /// (`extension_not_allowed`); the spec is kept for the plan's hint.
    WrongExtension(u32),
    Unmatched(UnmatchedReason),
}

impl Classified {
    /// Why the file is not a unit member, if it is not.
    pub fn unmatched(self) -> Option<UnmatchedReason> {
        match self {
            Classified::Spec(_) => None,
            Classified::WrongExtension(_) => Some(UnmatchedReason::ExtensionNotAllowed),
            Classified::Unmatched(r) => Some(r),
        }
    }
}

/// The same extension claimed by several specs, with a file that needed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionConflict {
    pub extension: String,
    pub specs: Vec<String>,
    pub example: String,
}

/// Single-path mode: rules first; without rules, a first-level folder named like a
/// spec, then the spec that claims the extension.
pub fn classify_single(
    files: &FileList,
    specs: &[FileSpec],
    rules: &[FileRuleCompiled],
) -> (Vec<Classified>, Vec<ExtensionConflict>) {
    let mut by_ext: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in specs.iter().enumerate() {
        for e in &s.extensions {
            let list = by_ext.entry(e.as_str()).or_default();
            if !list.contains(&i) {
                list.push(i);
            }
        }
    }
    // Longest first: a name takes the longest listed extension it ends with.
    let mut longest_first: Vec<(&str, &[usize])> =
        by_ext.iter().map(|(e, s)| (*e, s.as_slice())).collect();
    longest_first.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
    // A file whose extension several specs claim is `Err(its place in
    // longest_first)`: a `u32`, so an outcome is the size of a `Classified`
    // and they become the result in place (with a `usize` both lists were
    // held at once, 24 bytes a file).
    let outcomes: Vec<Result<Classified, u32>> = files
        .par_iter()
        .map(|f| {
            let spec = if !rules.is_empty() {
                match rules.iter().find(|r| r.matcher.is_match(&*f.rel)) {
                    Some(rule) => rule.spec,
                    None => return Ok(Classified::Unmatched(UnmatchedReason::NoRule)),
                }
            } else if let Some(i) = f
                .rel
                .split_once('/')
                .and_then(|(first, _)| specs.iter().position(|s| s.name == first))
            {
                i
            } else {
                let name = file_name(&f.rel);
                match longest_first
                    .iter()
                    .position(|(e, _)| ends_with_extension(name, e).is_some())
                {
                    Some(at) => match longest_first[at].1 {
                        [one] => *one,
                        _ => return Err(at as u32),
                    },
                    None => return Ok(Classified::Unmatched(UnmatchedReason::NoRule)),
                }
            };
            Ok(check_extension(&f.rel, spec, specs))
        })
        .collect();
    let mut conflicts: BTreeMap<String, ExtensionConflict> = BTreeMap::new();
    let classified = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| match o {
            Ok(c) => c,
            Err(at) => {
                let (ext, claimed) = longest_first[at as usize];
                conflicts
                    .entry(ext.to_owned())
                    .or_insert_with(|| ExtensionConflict {
                        specs: claimed.iter().map(|&s| specs[s].name.clone()).collect(),
                        extension: ext.to_owned(),
                        example: files.rel(i).into_owned(),
                    });
                Classified::Unmatched(UnmatchedReason::NoRule)
            }
        })
        .collect();
    (classified, conflicts.into_values().collect())
}

/// Multi-path mode: every file under an asset's root is a candidate for its spec,
/// narrowed by the asset's `include` globs.
pub fn classify_asset(files: &FileList, asset: &Asset, specs: &[FileSpec]) -> Vec<Classified> {
    files
        .par_iter()
        .map(|f| match &asset.include {
            Some(include) if !include.is_match(&*f.rel) => {
                Classified::Unmatched(UnmatchedReason::NoRule)
            }
            _ => check_extension(&f.rel, asset.spec, specs),
        })
        .collect()
}

fn check_extension(rel: &str, spec: usize, specs: &[FileSpec]) -> Classified {
    if specs[spec].matched_extension(file_name(rel)).is_some() {
        Classified::Spec(spec as u32)
    } else {
        Classified::WrongExtension(spec as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_no_larger_than_its_classification() {
        use std::mem::{align_of, size_of};
        assert_eq!(
            size_of::<Result<Classified, u32>>(),
            size_of::<Classified>()
        );
        assert_eq!(
            align_of::<Result<Classified, u32>>(),
            align_of::<Classified>()
        );
    }

    fn spec(name: &str, exts: &[&str]) -> FileSpec {
        FileSpec {
            name: name.into(),
            file_type: "x".into(),
            extensions: exts.iter().map(|e| e.to_string()).collect(),
            is_required: true,
            is_primary: false,
        }
    }
    use crate::source::local::scanned_files as files;
    fn rule(p: &str, spec: usize) -> FileRuleCompiled {
        FileRuleCompiled {
            pattern: p.into(),
            matcher: globset::GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .unwrap()
                .compile_matcher(),
            spec,
        }
    }

    #[test]
    fn extension_fallback_and_no_rule() {
        let specs = [spec("image_1", &["png"]), spec("label_1", &["json"])];
        let (c, conflicts) = classify_single(
            &files(&["p1/a.png", "p1/a.JSON", "p1/notes.txt"]),
            &specs,
            &[],
        );
        assert_eq!(
            c,
            [
                Classified::Spec(0),
                Classified::Spec(1),
                Classified::Unmatched(UnmatchedReason::NoRule)
            ]
        );
        assert!(conflicts.is_empty());
    }

    #[test]
    fn the_longest_listed_extension_wins_and_may_have_several_parts() {
        let specs = [
            spec("flair", &["nii.gz"]),
            spec("archive", &["gz"]),
            spec("ome", &["ome.tif"]),
        ];
        let (c, conflicts) = classify_single(
            &files(&[
                "c/C_flair.NII.GZ",
                "c/log.gz",
                "c/x.ome.tif",
                "c/x.tif",
                "c/.gz",
            ]),
            &specs,
            &[],
        );
        assert_eq!(
            c,
            [
                Classified::Spec(0),
                Classified::Spec(1),
                Classified::Spec(2),
                Classified::Unmatched(UnmatchedReason::NoRule),
                Classified::Unmatched(UnmatchedReason::NoRule),
            ]
        );
        assert!(conflicts.is_empty());
        assert_eq!(specs[0].stem("c/BRATS_001.nii.gz"), "BRATS_001");
    }

    #[test]
    fn spec_named_folders_win_over_extensions() {
        let specs = [spec("image_1", &["png"]), spec("mask_1", &["png"])];
        let (c, conflicts) =
            classify_single(&files(&["mask_1/a.png", "image_1/a.png"]), &specs, &[]);
        assert_eq!(c, [Classified::Spec(1), Classified::Spec(0)]);
        assert!(conflicts.is_empty());
    }

    #[test]
    fn shared_extension_without_rules_is_a_conflict() {
        let specs = [spec("image_1", &["png"]), spec("mask_1", &["png"])];
        let (_, conflicts) = classify_single(&files(&["p1/a.png"]), &specs, &[]);
        assert_eq!(conflicts[0].specs, ["image_1", "mask_1"]);
    }

    #[test]
    fn first_matching_rule_wins_then_extension_is_checked() {
        let specs = [spec("image_1", &["png"]), spec("label_1", &["json"])];
        let rules = [rule("**/img/*", 0), rule("**/*", 1)];
        let (c, _) = classify_single(
            &files(&["p/img/a.png", "p/img/a.gif", "p/x.json", "p/x.txt"]),
            &specs,
            &rules,
        );
        assert_eq!(
            c,
            [
                Classified::Spec(0),
                Classified::WrongExtension(0),
                Classified::Spec(1),
                Classified::WrongExtension(1)
            ]
        );
    }

    #[test]
    fn leading_double_star_matches_zero_folders() {
        let specs = [spec("image_1", &["png"])];
        let (c, _) = classify_single(&files(&["a.png"]), &specs, &[rule("**/*.png", 0)]);
        assert_eq!(c, [Classified::Spec(0)]);
    }
}
