//! Checks of the wizard's answers and flags: paths, regexes, rules, sheets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inquire::validator::Validation;
use serde_json::Value as Json;
use synup::init::{MetadataAnswer, SourceAnswer, parse_static};

/// `excel:FILE[:KEY]`, `csv:FILE[:KEY]`, `filename:REGEX`, `sidecar:TEMPLATE`,
/// `static:K=V,…`, `none`.
pub(super) fn metadata_flag(s: &str) -> Result<Option<MetadataAnswer>, String> {
    if s == "none" {
        return Ok(None);
    }
    let (kind, rest) = s
        .split_once(':')
        .ok_or("expected excel:FILE, csv:FILE, filename:REGEX, sidecar:TEMPLATE, static:FIELD=VALUE or none")?;
    Ok(Some(match kind {
        "excel" | "csv" => {
            let (file, key) = match rest.rsplit_once(':') {
                Some((f, k)) if !k.contains('.') && !k.contains('/') => (f, Some(k.to_owned())),
                _ => (rest, None),
            };
            MetadataAnswer::Sheet {
                file: file.to_owned(),
                is_csv: kind == "csv",
                key_column: key,
                columns: Vec::new(),
            }
        }
        "filename" => {
            check_filename_regex(rest)?;
            MetadataAnswer::Filename {
                regex: rest.to_owned(),
                types: Vec::new(),
            }
        }
        "sidecar" => MetadataAnswer::Sidecar {
            template: rest.to_owned(),
        },
        "static" => MetadataAnswer::Static(parse_static(rest)?),
        other => return Err(format!("`{other}` is not a metadata kind")),
    }))
}

pub(super) fn check_filename_regex(re: &str) -> Result<regex::Regex, String> {
    let r = regex::Regex::new(re).map_err(|e| format!("not a regex: {e}"))?;
    if r.capture_names().flatten().next().is_none() {
        return Err("the regex names no field: use (?P<field>…)".into());
    }
    Ok(r)
}

/// `Ok(Valid)` or `Ok(Invalid(reason))`, as inquire's validators return.
pub(super) fn verdict(r: Result<(), String>) -> Result<Validation, inquire::CustomUserError> {
    Ok(match r {
        Ok(()) => Validation::Valid,
        Err(why) => Validation::Invalid(why.into()),
    })
}

pub(super) fn single(path: &str) -> SourceAnswer {
    SourceAnswer::Single {
        path: path.to_owned(),
        file_rules: Vec::new(),
        group_key_regex: None,
    }
}

/// `a/*.png=image_1; b/*.json=label_1`.
pub(super) fn parse_rules(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (p, spec) = part
            .rsplit_once('=')
            .ok_or_else(|| format!("`{part}`: expected PATTERN=SPEC"))?;
        globset::Glob::new(p.trim()).map_err(|e| format!("`{p}`: {e}"))?;
        out.push((p.trim().to_owned(), spec.trim().to_owned()));
    }
    Ok(out)
}

/// A local folder (relative to the recipe's folder) that exists, or a remote
/// URL whose scheme synup reads.
pub(super) fn check_path(dir: &Path, p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("give a path".into());
    }
    if p.contains("://") {
        // The wizard asks for no connection settings: the providers' usual
        // environment variables apply, as they do in a recipe without `connection`.
        let root = synup::source::remote::open(p, &BTreeMap::new()).map_err(|e| e.to_string())?;
        return synup::source::remote::probe(&root, std::time::Duration::from_secs(5))
            .map_err(|e| e.message);
    }
    let full = dir.join(shellexpand_home(p));
    match std::fs::metadata(&full) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("`{p}` is a file, not a folder")),
        Err(e) => Err(format!("`{p}` cannot be read: {e}")),
    }
}

pub(super) fn shellexpand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

pub(super) fn explore(dir: &Path, path: &str) -> Result<synup::explore::Exploration, String> {
    if path.contains("://") {
        synup::explore::explore_remote(path, &BTreeMap::new(), 20_000)
    } else {
        synup::explore::explore(&dir.join(shellexpand_home(path)), path, 20_000)
            .map_err(|e| e.to_string())
    }
}

pub(super) fn load_sheet(
    dir: &Path,
    file: &str,
    key: Option<&str>,
) -> Result<synup::stages::metadata::sheet::SheetTable, String> {
    use synup::stages::metadata::sheet::{self, SheetOptions};
    if file.is_empty() {
        return Err("give a file".into());
    }
    let path = dir.join(shellexpand_home(file));
    let bytes = std::fs::read(&path).map_err(|e| format!("`{file}` cannot be read: {e}"))?;
    let columns = BTreeMap::new();
    let o = SheetOptions {
        source: file,
        sheet: None,
        header_row: 1,
        key_column: key,
        columns: &columns,
        delimiter: None,
        encoding: None,
        spill: None,
    };
    let table = if file.to_ascii_lowercase().ends_with(".csv") {
        sheet::load_csv(&path, &bytes, &o)
    } else {
        sheet::load_excel(&path, &bytes, &o)
    };
    table.map_err(|e| e.to_string())
}

pub(super) fn local_collections(target: &Path) -> Vec<String> {
    let Ok(Some(catalog)) = synup::target::local::Catalog::open_existing(target) else {
        return Vec::new();
    };
    let Ok((_, ids)) = catalog.collection_ids(0, 1000) else {
        return Vec::new();
    };
    ids.into_iter()
        .filter_map(|id| catalog.collection_json(id).ok().flatten())
        .filter_map(|j| j.get("name").and_then(Json::as_str).map(str::to_owned))
        .collect()
}
