//! `synup explore`: what is in a folder, and a recipe fragment that would fit it.
//!
//! Explore knows no collection, so it treats each extension as a would-be spec
//! when it detects the layout; its suggestions are a starting point for a recipe.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

pub mod sample;

use crate::stages::extension;
use crate::stages::group::{self, Layout};
pub use sample::Sample;

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
    pub suggested_file_rules: Vec<SuggestedRule>,
    pub warnings: Vec<String>,
    /// For a source too large to list whole: what the sample covered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled: Option<Sample>,
}

#[derive(Debug, Serialize)]
pub struct SampleUnit {
    pub key: String,
    pub files: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SuggestedRule {
    pub pattern: String,
    pub spec: String,
}

/// Explores a local folder; more than `limit` files are sampled.
pub fn explore(root: &Path, written: &str, limit: u64) -> std::io::Result<Exploration> {
    let (scan, sampled) = sample::sample_local(root, limit)?;
    Ok(explore_scan(scan, written, sampled))
}

/// Explores a remote prefix; more than `limit` objects are sampled.
pub fn explore_remote(
    url: &str,
    connection: &std::collections::BTreeMap<String, String>,
    limit: u64,
) -> Result<Exploration, String> {
    let root = crate::source::remote::open(url, connection)?;
    let (scan, sampled) = sample::sample_remote(&root, limit)?;
    Ok(explore_scan(scan, url, sampled))
}

fn explore_scan(
    scan: crate::source::SourceScan,
    written: &str,
    sampled: Option<Sample>,
) -> Exploration {
    let mut extensions: BTreeMap<String, u64> = BTreeMap::new();
    let mut depths: BTreeMap<usize, u64> = BTreeMap::new();
    let mut depth_examples: BTreeMap<usize, (usize, String)> = BTreeMap::new();
    let mut first: group::FolderSpecs<'_, String> = group::FolderSpecs::default();
    let mut bytes = 0;
    for f in &scan.files {
        *extensions.entry(extension(&f.rel)).or_default() += 1;
        let d = f.rel.matches('/').count() + 1;
        *depths.entry(d).or_default() += 1;
        depth_examples
            .entry(d)
            .or_insert_with(|| (0, f.rel.clone()))
            .0 += 1;
        first.add(&f.rel, extension(&f.rel));
        bytes += f.size;
    }
    let spec_like = extensions.len().max(1);
    let (layout, layout_problem) = match group::detect_layout(
        &depth_examples,
        first.len(),
        spec_like,
        false,
        first.mostly_mixed(),
    ) {
        Ok(l) => (Some(l), None),
        Err(_) => (
            None,
            Some(format!(
                "files sit at {} different depths; set group_key_regex",
                depths.len()
            )),
        ),
    };

    let mut sample_units = Vec::new();
    if let Some(l) = &layout {
        let re = regex::Regex::new(l.group_key_regex.as_deref().unwrap_or(group::STEM_REGEX))
            .expect("built-in regex");
        // Three units spread over the source: the first, one in the middle, the last.
        let keys: std::collections::BTreeSet<&str> = scan
            .files
            .iter()
            .filter_map(|f| re.captures(&f.rel).and_then(|c| c.name("group_key")))
            .map(|k| k.as_str())
            .collect();
        let keys: Vec<&str> = keys.into_iter().collect();
        let mut groups: BTreeMap<String, Vec<String>> = sample::spread(keys.len(), 3)
            .into_iter()
            .map(|i| (keys[i].to_owned(), Vec::new()))
            .collect();
        for f in &scan.files {
            if let Some(k) = re.captures(&f.rel).and_then(|c| c.name("group_key"))
                && let Some(files) = groups.get_mut(k.as_str())
                && files.len() < 10
            {
                files.push(f.rel.clone());
            }
        }
        sample_units = groups
            .into_iter()
            .map(|(key, files)| SampleUnit { key, files })
            .collect();
    }

    // Suggest rules: by the folder right above the file for patterns 2 and 4, else by extension.
    let mut rules: BTreeMap<String, String> = BTreeMap::new();
    let by_folder = matches!(layout.as_ref().and_then(|l| l.pattern), Some(2) | Some(4));
    for f in &scan.files {
        let ext = extension(&f.rel);
        let pattern = match (by_folder, f.rel.rsplit_once('/')) {
            (true, Some((dir, _))) => {
                let folder = dir.rsplit('/').next().unwrap_or(dir);
                if layout.as_ref().and_then(|l| l.pattern) == Some(2) {
                    format!("{folder}/*.{ext}")
                } else {
                    format!("**/{folder}/*.{ext}")
                }
            }
            _ => format!("**/*.{ext}"),
        };
        if ext.is_empty() || rules.len() >= 20 {
            continue;
        }
        let spec_guess = if by_folder {
            f.rel.rsplit_once('/').map_or(ext.clone(), |(d, _)| {
                d.rsplit('/').next().unwrap_or(d).to_owned()
            })
        } else {
            ext.clone()
        };
        rules
            .entry(pattern)
            .or_insert_with(|| format!("{}_1", sanitize(&spec_guess)));
    }
    let warnings = scan
        .issues
        .iter()
        .map(|i| format!("{i:?}"))
        .chain(
            scan.non_utf8
                .iter()
                .map(|n| format!("name is not UTF-8: {n}")),
        )
        .collect();
    Exploration {
        format_version: FORMAT_VERSION,
        root: written.to_owned(),
        files: scan.files.len() as u64,
        bytes,
        excluded_files: scan.excluded,
        extensions,
        depths,
        first_level_folders: first.len() as u64,
        layout,
        layout_problem,
        sample_units,
        suggested_file_rules: rules
            .into_iter()
            .map(|(pattern, spec)| SuggestedRule { pattern, spec })
            .collect(),
        warnings,
        sampled,
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
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
    match (&e.layout, &e.layout_problem) {
        (Some(l), _) => {
            let _ = writeln!(
                out,
                "Layout: pattern {} ({})",
                l.pattern.unwrap_or(0),
                l.describe()
            );
        }
        (None, Some(p)) => {
            let _ = writeln!(out, "Layout: none detected: {p}");
        }
        _ => {}
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
    let _ = writeln!(out, "\nSuggested recipe fragment:");
    if let Some(re) = e.layout.as_ref().and_then(|l| l.group_key_regex.as_ref()) {
        let _ = writeln!(out, "  group_key_regex: '{re}'");
    }
    if !e.suggested_file_rules.is_empty() {
        let _ = writeln!(out, "  file_rules:");
        for r in &e.suggested_file_rules {
            let _ = writeln!(
                out,
                "    - {{pattern: \"{}\", spec: {}}}",
                r.pattern, r.spec
            );
        }
    }
    for w in &e.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}
