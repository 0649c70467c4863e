//! From explore's best split to a recipe that plans, taken verbatim: specs,
//! `file_rules`, `group_key_regex`, `exclude` for files that are not unit
//! members, and metadata (a matching sheet, or class folders as a label).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::specs::{self, Class, Marker, Split, glob_escape};
use super::{Sample, SampleUnit, SuggestedRule, sample};
use crate::stages::group::Layout;
use crate::stages::layout;

/// A would-be file specification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuggestedSpec {
    pub name: String,
    pub file_type: String,
    /// With the leading dot (`.nii.gz`).
    pub extensions: Vec<String>,
    pub is_required: bool,
    pub is_primary: bool,
    /// Files of this spec explore saw.
    pub files: u64,
}

/// A metadata source explore suggests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SuggestedMetadata {
    /// A sheet whose column holds the unit keys.
    Sheet(super::sheets::SheetMatch),
    /// One file per unit in class folders: the folder as a field.
    Filename { regex: String, field: String },
}

/// Everything explore suggests.
#[derive(Debug, Clone)]
pub struct Suggestion {
    pub layout: Layout,
    pub problem: Option<String>,
    pub sample_units: Vec<SampleUnit>,
    pub specs: Vec<SuggestedSpec>,
    pub rules: Vec<SuggestedRule>,
    pub exclude: Vec<String>,
    pub metadata: Vec<SuggestedMetadata>,
    /// Units explore found, for the recipe's comment.
    pub units: usize,
}

/// Exact paths listed in `exclude` before explore gives up listing them.
const MOST_EXCLUDED_PATHS: usize = 50;

pub fn suggest(
    rels: &[&str],
    local_root: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Option<Suggestion> {
    let first = specs::best_split(rels)?;
    // Classes none of whose files is in a complete unit are not specs: a
    // lone sheet, `dataset.json`, split lists. Plan again without them.
    let units = unit_files(&first, rels);
    let mut kept = vec![false; first.classes.len()];
    for unit in units.values().filter(|u| u.complete) {
        for &(spec, _) in &unit.files {
            kept[spec as usize] = true;
        }
    }
    let classes: Vec<Class> = first
        .classes
        .iter()
        .zip(&kept)
        .filter(|(_, k)| **k)
        .map(|(c, _)| c.clone())
        .collect();
    let split = specs::evaluate_classes(classes, rels).unwrap_or(first.clone());
    let units = unit_files(&split, rels);
    let inference = &split.inference;

    // Specs: required when every unit has one; the commonest image is primary.
    let names = unique_names(&split.classes);
    let mut specs: Vec<SuggestedSpec> = split
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| SuggestedSpec {
            name: names[i].clone(),
            file_type: file_type(&c.ext).to_owned(),
            extensions: vec![format!(".{}", c.ext)],
            is_required: !units.is_empty()
                && units
                    .values()
                    .all(|u| u.files.iter().any(|(s, _)| *s as usize == i)),
            is_primary: false,
            files: c.files.len() as u64,
        })
        .collect();
    let primary = (0..specs.len())
        .filter(|&i| specs[i].file_type == "image")
        .max_by_key(|&i| (specs[i].files, std::cmp::Reverse(i)))
        .or_else(|| (0..specs.len()).max_by_key(|&i| (specs[i].files, std::cmp::Reverse(i))));
    if let Some(p) = primary {
        specs[p].is_primary = true;
    }

    // Rules in precedence order: tokens, then folders, then whole extensions.
    let mut order: Vec<usize> = (0..split.classes.len()).collect();
    order.sort_by_key(|&i| {
        let c = &split.classes[i];
        let rank = match &c.marker {
            Marker::Suffix { token, .. } | Marker::Prefix { token, .. } => {
                (0, usize::MAX - token.len())
            }
            Marker::Folder(_) => (1, 0),
            Marker::None => (2, 0),
        };
        (rank, i)
    });
    let rules: Vec<SuggestedRule> = order
        .iter()
        .map(|&i| SuggestedRule {
            pattern: split.classes[i].glob(),
            spec: names[i].clone(),
            case_insensitive: split.classes[i].mixed_case,
        })
        .collect();

    // Exclude: whole set-aside classes where their glob takes nothing kept,
    // else the paths one by one; files no unit can hold, by path.
    let mut exclude: Vec<String> = Vec::new();
    let mut paths: BTreeSet<&str> = BTreeSet::new();
    let kept_files: BTreeSet<usize> = split
        .classes
        .iter()
        .flat_map(|c| c.files.iter().copied())
        .collect();
    for (c, _) in first.classes.iter().zip(&kept).filter(|(_, k)| !**k) {
        let glob = c.glob();
        let takes_kept = match compile(&glob, c.mixed_case) {
            Some(m) => kept_files.iter().any(|&f| m.is_match(rels[f])),
            None => true,
        };
        if takes_kept {
            paths.extend(c.files.iter().map(|&f| rels[f]));
        } else {
            exclude.push(glob);
        }
    }
    for (i, rel) in rels.iter().enumerate() {
        let in_class = first.spec_of[i].is_some();
        if !in_class || (kept_files.contains(&i) && inference.chosen.key(rel).is_none()) {
            paths.insert(rel);
        }
    }
    if paths.len() > MOST_EXCLUDED_PATHS {
        warnings.push(format!(
            "{} files are not unit members; `exclude` lists the first {MOST_EXCLUDED_PATHS}",
            paths.len()
        ));
    }
    exclude.extend(
        paths
            .iter()
            .take(MOST_EXCLUDED_PATHS)
            .map(|p| glob_escape(p)),
    );

    // Metadata: a sheet near the root holding the keys; class folders.
    let mut metadata = Vec::new();
    let keys: BTreeSet<&str> = units.keys().copied().collect();
    match local_root {
        Some(root) => {
            if let Some(m) = super::sheets::best_match(root, rels, &keys) {
                metadata.push(SuggestedMetadata::Sheet(m));
            }
        }
        None => warnings.push(
            "sheets are not read from a remote source; add a metadata sheet by hand".to_owned(),
        ),
    }
    if inference.class_folders.is_some() {
        metadata.push(SuggestedMetadata::Filename {
            regex: "(?P<label>[^/]+)/[^/]+$".to_owned(),
            field: "label".to_owned(),
        });
    }

    // Check that the rules give every kept file its class.
    let compiled: Vec<(Option<globset::GlobMatcher>, usize)> = order
        .iter()
        .map(|&i| {
            (
                compile(&split.classes[i].glob(), split.classes[i].mixed_case),
                i,
            )
        })
        .collect();
    let misfiled = split
        .classes
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.files.iter().map(move |&f| (i, f)))
        .filter(|&(i, f)| {
            compiled
                .iter()
                .find(|(m, _)| m.as_ref().is_some_and(|m| m.is_match(rels[f])))
                .map(|(_, c)| *c)
                != Some(i)
        })
        .count();
    if misfiled > 0 {
        warnings.push(format!("the suggested file_rules send {misfiled} file(s) to another spec than explore chose; check them"));
    }

    let members = split.members(rels);
    let layout = Layout {
        pattern: layout::seed_pattern(&inference.chosen, &members, false),
        group_key_regex: Some(inference.chosen.regex()),
        reason: Some(inference.reason()),
        runner_up: inference.runner_up_text(),
    };
    let problem = (!inference.is_convincing()).then(|| {
        format!(
            "no grouping makes most units complete (best, {}); set group_key_regex by hand",
            inference.reason()
        )
    });
    let unit_keys: Vec<&str> = units.keys().copied().collect();
    let sample_units = sample::spread(unit_keys.len(), 3)
        .into_iter()
        .map(|i| {
            let u = &units[unit_keys[i]];
            SampleUnit {
                key: unit_keys[i].to_owned(),
                files: u
                    .files
                    .iter()
                    .take(10)
                    .map(|&(_, f)| rels[f].to_owned())
                    .collect(),
            }
        })
        .collect();
    Some(Suggestion {
        layout,
        problem,
        sample_units,
        specs,
        rules,
        exclude,
        metadata,
        units: units.len(),
    })
}

fn compile(glob: &str, case_insensitive: bool) -> Option<globset::GlobMatcher> {
    globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .case_insensitive(case_insensitive)
        .build()
        .ok()
        .map(|g| g.compile_matcher())
}

struct UnitFiles {
    /// (spec, file index), in path order.
    files: Vec<(u32, usize)>,
    complete: bool,
}

/// The units of a split's chosen grouping, by key.
fn unit_files<'a>(split: &Split, rels: &[&'a str]) -> BTreeMap<&'a str, UnitFiles> {
    let members = split.members(rels);
    let required = layout::scoring_requirements(&members, &split.shapes, None);
    let mut units: BTreeMap<&str, UnitFiles> = BTreeMap::new();
    for (i, rel) in rels.iter().enumerate() {
        let (Some(spec), Some(key)) = (split.spec_of[i], split.inference.chosen.key(rel)) else {
            continue;
        };
        units
            .entry(key)
            .or_insert_with(|| UnitFiles {
                files: Vec::new(),
                complete: false,
            })
            .files
            .push((spec, i));
    }
    for u in units.values_mut() {
        let mut specs: Vec<u32> = u.files.iter().map(|(s, _)| *s).collect();
        specs.sort_unstable();
        let n = specs.len();
        specs.dedup();
        u.complete = specs.len() == n
            && required
                .iter()
                .enumerate()
                .all(|(s, r)| !r || specs.contains(&(s as u32)));
    }
    units
}

fn unique_names(classes: &[Class]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    classes
        .iter()
        .map(|c| {
            let base = c.name_hint();
            let n = seen.entry(base.clone()).or_default();
            *n += 1;
            if *n == 1 { base } else { format!("{base}_{n}") }
        })
        .collect()
}

/// A Synapse file type for a (possibly multi-part) extension.
fn file_type(ext: &str) -> &'static str {
    let base = ext
        .strip_suffix(".gz")
        .or_else(|| ext.strip_suffix(".bz2"))
        .or_else(|| ext.strip_suffix(".xz"))
        .or_else(|| ext.strip_suffix(".zst"))
        .unwrap_or(ext);
    let last = base.rsplit('.').next().unwrap_or(base);
    match last {
        "nii" | "nrrd" | "mha" | "mhd" | "dcm" | "dicom" => "medical",
        "json" | "xml" | "csv" | "yaml" | "yml" => "document",
        "jpeg" | "jpg" | "png" | "tif" | "tiff" | "bmp" | "gif" | "webp" => "image",
        "avi" | "mp4" | "mov" | "mkv" | "webm" => "video",
        "wav" | "flac" | "mp3" | "ogg" | "m4a" => "audio",
        other => crate::init::file_type_of(other),
    }
}

/// JSON's quoting is valid YAML.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A recipe name (`[A-Za-z0-9._-]+`) from the root's last folder.
fn recipe_name(written: &str) -> String {
    let last = written
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .find(|s| !s.is_empty() && *s != "." && *s != "..")
        .unwrap_or("upload");
    crate::init::recipe_name(last)
}

/// The suggestion as a recipe for the embedded local target.
pub fn render_recipe(s: &Suggestion, written: &str, sampled: Option<&Sample>) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# Suggested by `synup explore {written}`: {}.",
        s.layout.reason.as_deref().unwrap_or("no layout")
    );
    if let Some(sample) = sampled {
        let _ = writeln!(
            w,
            "# From a sample ({} of {} first-level folders, at most {} files): check it with `synup plan`.",
            sample.folders_sampled, sample.folders_seen, sample.limit
        );
    } else {
        let _ = writeln!(
            w,
            "# Check it with `synup plan`; upload with `synup apply`."
        );
    }
    let _ = writeln!(
        w,
        "version: 1\nname: {}\ntarget:\n  backend: local",
        q(&recipe_name(written))
    );
    let _ = writeln!(w, "collection:\n  file_specifications:");
    for spec in &s.specs {
        let exts: Vec<String> = spec.extensions.iter().map(|e| q(e)).collect();
        let _ = writeln!(
            w,
            "    - {{name: {}, file_type: {}, extensions: [{}], is_required: {}{}}}",
            q(&spec.name),
            spec.file_type,
            exts.join(", "),
            spec.is_required,
            if spec.is_primary {
                ", is_primary: true"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(w, "source:\n  path: {}", q(written));
    if !s.exclude.is_empty() {
        let _ = writeln!(
            w,
            "# Not unit members (a sheet or list beside the units, files no unit holds):"
        );
        let _ = writeln!(w, "exclude:");
        for e in &s.exclude {
            let _ = writeln!(w, "  - {}", q(e));
        }
    }
    let _ = writeln!(w, "file_rules:");
    for r in &s.rules {
        let _ = writeln!(
            w,
            "  - {{pattern: {}, spec: {}{}}}",
            q(&r.pattern),
            q(&r.spec),
            if r.case_insensitive {
                ", case_insensitive: true"
            } else {
                ""
            }
        );
    }
    if let Some(re) = &s.layout.group_key_regex {
        let _ = writeln!(w, "group_key_regex: {}", q(re));
    }
    if !s.metadata.is_empty() {
        let _ = writeln!(w, "metadata:");
        for m in &s.metadata {
            match m {
                SuggestedMetadata::Sheet(sheet) => {
                    let kind = if sheet.is_csv { "csv" } else { "excel" };
                    let _ = writeln!(
                        w,
                        "  # {} of {} unit keys are in this column\n  - {kind}: {}\n    key_column: {}",
                        sheet.matched,
                        sheet.units,
                        q(&sheet.file),
                        q(&sheet.key_column)
                    );
                }
                SuggestedMetadata::Filename { regex, .. } => {
                    let _ = writeln!(
                        w,
                        "  # the class folder above each file\n  - filename: {{regex: {}}}",
                        q(regex)
                    );
                }
            }
        }
    }
    out
}
