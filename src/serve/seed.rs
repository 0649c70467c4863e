//! `--seed FILE`: collections, storages and projects created at start, ids kept.
//! Applying a seed twice (a restart) changes nothing.

use std::path::Path;

use serde_json::{Value as Json, json};

use super::{AppState, ServeError};
use crate::recipe::resolve::FileSpec;

pub(super) fn apply(state: &AppState, path: &Path) -> Result<(), ServeError> {
    let err = |message: String| ServeError::Seed {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let seed: Json = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
    } else {
        serde_saphyr::from_str(&text).map_err(|e| err(e.to_string()))?
    };
    let Some(obj) = seed.as_object() else {
        return Err(err("expected a mapping at the top".into()));
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "data_collections" | "storages" | "projects") {
            return Err(err(format!(
                "unknown key `{key}` (expected data_collections, storages, projects)"
            )));
        }
    }
    let list = |k: &str| {
        obj.get(k)
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut catalog = state.catalog();
    for (i, c) in list("data_collections").iter().enumerate() {
        let name = c
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| err(format!("data_collections[{i}]: `name` is required")))?;
        let specs = c
            .get("file_specifications")
            .and_then(Json::as_array)
            .ok_or_else(|| {
                err(format!(
                    "data_collections[{i}]: `file_specifications` is required"
                ))
            })?
            .iter()
            .enumerate()
            .map(|(j, s)| {
                spec(s).ok_or_else(|| {
                    err(format!(
                        "data_collections[{i}].file_specifications[{j}]: needs `name`"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let meta = c.get("meta").cloned().unwrap_or_else(|| json!({}));
        catalog.seed_collection(c.get("id").and_then(Json::as_i64), name, &specs, &meta)?;
    }
    for s in list("storages") {
        catalog.seed_storage(&s)?;
    }
    for (i, p) in list("projects").iter().enumerate() {
        let id = p
            .get("id")
            .and_then(Json::as_i64)
            .ok_or_else(|| err(format!("projects[{i}]: `id` is required")))?;
        let title = p.get("title").and_then(Json::as_str).unwrap_or("project");
        catalog.seed_project(id, title)?;
    }
    Ok(())
}

fn spec(s: &Json) -> Option<FileSpec> {
    Some(FileSpec {
        name: s.get("name")?.as_str()?.to_owned(),
        file_type: s
            .get("file_type")
            .and_then(Json::as_str)
            .unwrap_or("data")
            .to_owned(),
        extensions: s
            .get("extensions")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default(),
        is_required: s
            .get("is_required")
            .and_then(Json::as_bool)
            .unwrap_or(false),
        is_primary: s.get("is_primary").and_then(Json::as_bool).unwrap_or(false),
    })
}

/// Without a seeded storage, one default internal storage (provider `minio`,
/// so SDK calls that pick a strategy by provider work).
pub(super) fn ensure_default_storage(state: &AppState) -> Result<(), ServeError> {
    let catalog = state.catalog();
    if catalog.storages(None)?.is_empty() {
        catalog.seed_storage(&json!({
            "id": 1, "name": "synup-serve", "category": "internal", "provider": "minio",
            "configuration": {"bucket_name": "synup"}, "is_default": true,
        }))?;
    }
    Ok(())
}
