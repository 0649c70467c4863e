//! Is a saved plan still true? Compare its recorded inputs with a fresh plan of
//! the same recipe. Only inputs count: a target that changed since the plan does
//! not make it stale (those units are skipped or reported when applied).

use std::collections::BTreeMap;

use crate::plan::model::Plan;

/// How many changed inputs are named before the rest are counted.
pub const SHOWN: usize = 50;

/// Every input that differs, described for people; empty when the plan is fresh.
pub fn changed_inputs(saved: &Plan, fresh: &Plan) -> Vec<String> {
    let mut out = changed_settings(saved, fresh);
    // The listings' fingerprints decide whether files changed; the plan's
    // units and `unmatched` only name which (an edited plan that moves a file
    // between them has the same listing, and is integrity's to refuse).
    if saved.inputs.listings != fresh.inputs.listings {
        let mut file_changes = files_changed(saved, fresh, true);
        if file_changes.is_empty() {
            // Files that are in neither units nor `unmatched` (e.g. an ambiguous spec's).
            for (la, lb) in saved.inputs.listings.iter().zip(&fresh.inputs.listings) {
                if la != lb {
                    file_changes.push(format!("changed: the file listing of {}", la.root));
                }
            }
        }
        out.extend(file_changes);
    }
    out
}

/// A shard's slice of a saved plan against a fresh plan of only its units:
/// the same settings and metadata, and each of the slice's files unchanged
/// (the listings' fingerprints cover every file, so they are not compared).
pub fn changed_inputs_of_slice(slice: &Plan, fresh: &Plan) -> Vec<String> {
    let mut out = changed_settings(slice, fresh);
    out.extend(files_changed(slice, fresh, false));
    out
}

/// The files of `a`'s units (and unmatched files, when `unmatched`) that
/// `b`'s differ in.
fn files_changed(a: &Plan, b: &Plan, unmatched: bool) -> Vec<String> {
    match (files_of(a, unmatched), files_of(b, unmatched)) {
        (Ok(files_a), Ok(files_b)) => changed_files(&files_a, &files_b),
        (Err(e), _) | (_, Err(e)) => vec![format!("the plan's units cannot be read back: {e}")],
    }
}

/// The recipe, its environment, the collection and the metadata sources.
fn changed_settings(saved: &Plan, fresh: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let (a, b) = (&saved.inputs, &fresh.inputs);
    if a.recipe_sha256 != b.recipe_sha256 {
        out.push(format!("changed: recipe {}", saved.recipe.path));
    }
    for (name, old) in &a.env {
        match b.env.get(name) {
            Some(new) if new == old => {}
            Some(new) if old == "***" || new == "***" => {
                out.push(format!("changed: environment variable {name}"))
            }
            Some(new) => out.push(format!(
                "changed: environment variable {name} ({old} → {new})"
            )),
            None => out.push(format!(
                "changed: environment variable {name} is no longer used"
            )),
        }
    }
    for name in b.env.keys().filter(|n| !a.env.contains_key(*n)) {
        out.push(format!("changed: environment variable {name} is now used"));
    }
    if a.collection_sha256 != b.collection_sha256 {
        out.push("changed: the collection's file specifications or meta schema".to_owned());
    }
    let meta_a: BTreeMap<&str, &str> = a
        .metadata
        .iter()
        .map(|m| (m.source.as_str(), m.sha256.as_str()))
        .collect();
    let meta_b: BTreeMap<&str, &str> = b
        .metadata
        .iter()
        .map(|m| (m.source.as_str(), m.sha256.as_str()))
        .collect();
    for (source, sha) in &meta_a {
        if meta_b.get(source) != Some(sha) {
            out.push(format!("changed: metadata {source}"));
        }
    }

    out
}

fn changed_files(
    files_a: &BTreeMap<String, (u64, Option<String>)>,
    files_b: &BTreeMap<String, (u64, Option<String>)>,
) -> Vec<String> {
    let mut file_changes = Vec::new();
    for (path, old) in files_a {
        match files_b.get(path) {
            None => file_changes.push(format!("removed: {path}")),
            Some(new) if new == old => {}
            Some(new) if new.0 != old.0 => {
                file_changes.push(format!("changed: {path} (size {} → {})", old.0, new.0))
            }
            Some(_) => file_changes.push(format!("changed: {path} (content)")),
        }
    }
    for path in files_b.keys().filter(|p| !files_a.contains_key(*p)) {
        file_changes.push(format!("added: {path}"));
    }
    file_changes
}

/// `root/path` → (size, SHA-1 or, when deferred, version tag) for every file
/// a plan's units name, and its unmatched files when `unmatched`.
fn files_of(
    plan: &Plan,
    unmatched: bool,
) -> std::io::Result<BTreeMap<String, (u64, Option<String>)>> {
    let mut out = BTreeMap::new();
    let join = |root: &str, path: &str| format!("{}/{path}", root.trim_end_matches('/'));
    for u in plan.units.iter() {
        for f in u?.files.values() {
            let content = f.sha1.clone().or_else(|| f.etag.clone());
            out.insert(f.shown(), (f.size, content));
        }
    }
    for f in plan.unmatched.iter().filter(|_| unmatched) {
        out.insert(join(&f.root, &f.path), (0, None));
    }
    Ok(out)
}

/// The first [`SHOWN`] changes and a count of the rest, one per line.
pub fn describe(changes: &[String]) -> String {
    super::first_lines(changes, SHOWN)
}
