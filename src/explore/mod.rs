//! `synup explore`: what is in a folder, and a recipe that fits it.
//!
//! Explore knows no collection: [`specs`] tells would-be specs apart (by
//! extension, name token or type folder) and runs the planner's own layout
//! inference on them; [`suggest`] turns the best split into a recipe that
//! plans as is; [`sheets`] finds a metadata sheet holding the unit keys;
//! [`sample`] keeps a huge source to a bounded sample.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

pub mod sample;
pub mod sheets;
pub mod specs;
pub mod suggest;

use crate::stages::extension;
use crate::stages::group::Layout;
pub use sample::Sample;
pub use suggest::{SuggestedMetadata, SuggestedSpec};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Exploration {
    pub format_version: u32,
    pub root: String,
    pub files: u64,
    pub bytes: u64,
    pub excluded_files: u64,
    /// Extension (lower case, no dot; "" for none) → file count.
    pub extensions: BTreeMap<String, u64>,
    /// Depth (1 = directly in the root) → file count.
    pub depths: BTreeMap<usize, u64>,
    pub first_level_folders: u64,
    pub layout: Option<Layout>,
    /// Why no layout was detected, if none was.
    pub layout_problem: Option<String>,
    pub sample_units: Vec<SampleUnit>,
    /// Would-be specs: named from their distinguishing token or folder, with
    /// their real (multi-part) extensions.
    pub suggested_specs: Vec<SuggestedSpec>,
    /// In order: the first matching rule wins.
    pub suggested_file_rules: Vec<SuggestedRule>,
    /// Files that are plainly not unit members (a sheet or JSON at the root).
    pub suggested_exclude: Vec<String>,
    pub suggested_metadata: Vec<SuggestedMetadata>,
    /// All of the above as a recipe that plans, taken verbatim.
    pub suggested_recipe: Option<String>,
    pub warnings: Vec<String>,
    /// For a source too large to list whole: what the sample covered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled: Option<Sample>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SampleUnit {
    pub key: String,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuggestedRule {
    pub pattern: String,
    pub spec: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub case_insensitive: bool,
}

/// Explores a local folder; more than `limit` files are sampled.
pub fn explore(root: &Path, written: &str, limit: u64) -> std::io::Result<Exploration> {
    let (scan, sampled) = sample::sample_local(root, limit)?;
    Ok(explore_scan(scan, written, sampled, Some(root)))
}

/// Explores a remote prefix; more than `limit` objects are sampled.
pub fn explore_remote(
    url: &str,
    connection: &std::collections::BTreeMap<String, String>,
    limit: u64,
) -> Result<Exploration, String> {
    let root = crate::source::remote::open(url, connection).map_err(|e| e.to_string())?;
    let (scan, sampled) = sample::sample_remote(&root, limit).map_err(|e| e.message)?;
    Ok(explore_scan(scan, url, sampled, None))
}

fn explore_scan(
    scan: crate::source::SourceScan,
    written: &str,
    sampled: Option<Sample>,
    local_root: Option<&Path>,
) -> Exploration {
    let mut extensions: BTreeMap<String, u64> = BTreeMap::new();
    let mut depths: BTreeMap<usize, u64> = BTreeMap::new();
    let mut first_level: std::collections::BTreeSet<String> = Default::default();
    let mut bytes = 0;
    for f in scan.files.iter() {
        *extensions.entry(extension(&f.rel)).or_default() += 1;
        *depths.entry(f.rel.matches('/').count() + 1).or_default() += 1;
        if let Some((first, _)) = f.rel.split_once('/')
            && !first_level.contains(first)
        {
            first_level.insert(first.to_owned());
        }
        bytes += f.size;
    }
    // Explore's scans are held (never given a spill area), so their paths
    // are borrowed; a stored one would be read back once here.
    let rels: Vec<std::borrow::Cow<'_, str>> = scan.files.iter().map(|f| f.rel).collect();
    let rels: Vec<&str> = rels.iter().map(|r| &**r).collect();
    let mut warnings: Vec<String> = scan
        .issues
        .iter()
        .map(|i| format!("{i:?}"))
        .chain(
            scan.non_utf8
                .iter()
                .map(|n| format!("name is not UTF-8: {n}")),
        )
        .collect();
    let suggestion = suggest::suggest(&rels, local_root, &mut warnings);
    let mut e = Exploration {
        format_version: FORMAT_VERSION,
        root: written.to_owned(),
        files: scan.files.len() as u64,
        bytes,
        excluded_files: scan.excluded,
        extensions,
        depths,
        first_level_folders: first_level.len() as u64,
        layout: None,
        layout_problem: None,
        sample_units: Vec::new(),
        suggested_specs: Vec::new(),
        suggested_file_rules: Vec::new(),
        suggested_exclude: Vec::new(),
        suggested_metadata: Vec::new(),
        suggested_recipe: None,
        warnings,
        sampled,
    };
    match suggestion {
        Some(s) => {
            e.suggested_recipe = Some(suggest::render_recipe(&s, written, e.sampled.as_ref()));
            e.layout_problem = s.problem;
            e.layout = Some(s.layout);
            e.sample_units = s.sample_units;
            e.suggested_specs = s.specs;
            e.suggested_file_rules = s.rules;
            e.suggested_exclude = s.exclude;
            e.suggested_metadata = s.metadata;
        }
        None => e.layout_problem = Some("no file with an extension to group".to_owned()),
    }
    e
}

/// Text for people.
pub fn render_text(e: &Exploration) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} files, {}, {} excluded",
        e.root,
        e.files,
        crate::plan::render::human_bytes(e.bytes),
        e.excluded_files
    );
    if let Some(s) = &e.sampled {
        let _ = writeln!(
            out,
            "(sampled: more than {} files here, so these are {} files from {} of {} first-level folders; `--sample N` looks at more)",
            s.limit, e.files, s.folders_sampled, s.folders_seen
        );
    }
    let _ = writeln!(out, "\nExtensions:");
    let mut exts: Vec<(&String, &u64)> = e.extensions.iter().collect();
    exts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (ext, n) in exts.iter().take(20) {
        let _ = writeln!(
            out,
            "  {:<10} {n}",
            if ext.is_empty() {
                "(none)".to_owned()
            } else {
                format!(".{ext}")
            }
        );
    }
    let _ = writeln!(out, "\nDepth (1 = in the root):");
    for (d, n) in &e.depths {
        let _ = writeln!(out, "  {d:<10} {n}");
    }
    let _ = writeln!(out, "\nFirst-level folders: {}", e.first_level_folders);
    if let Some(l) = &e.layout {
        let what = match l.pattern {
            Some(p) => format!("pattern {p} ({})", l.describe()),
            None => "inferred".to_owned(),
        };
        let _ = writeln!(
            out,
            "Layout: {what}, group_key_regex {}",
            l.group_key_regex.as_deref().unwrap_or("-")
        );
        if let Some(r) = &l.reason {
            let _ = writeln!(out, "  chosen: {r}");
        }
        if let Some(r) = &l.runner_up {
            let _ = writeln!(out, "  runner-up: {r}");
        }
    }
    if let Some(p) = &e.layout_problem {
        let _ = writeln!(out, "Layout problem: {p}");
    }
    if !e.sample_units.is_empty() {
        let _ = writeln!(out, "\nSample units:");
        for u in &e.sample_units {
            let _ = writeln!(out, "  {}", u.key);
            for f in &u.files {
                let _ = writeln!(out, "    {f}");
            }
        }
    }
    for m in &e.suggested_metadata {
        match m {
            SuggestedMetadata::Sheet(s) => {
                let _ = writeln!(
                    out,
                    "\nMetadata: {} column `{}` holds {} of {} unit keys",
                    s.file, s.key_column, s.matched, s.units
                );
            }
            SuggestedMetadata::Filename { field, .. } => {
                let _ = writeln!(
                    out,
                    "\nMetadata: one file per unit in class folders; the folder can be kept as `{field}`"
                );
            }
        }
    }
    if let Some(recipe) = &e.suggested_recipe {
        let _ = writeln!(
            out,
            "\nSuggested recipe (plans as is; save it and run `synup plan`):\n"
        );
        out.push_str(recipe);
    }
    for w in &e.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}
