//! Data units: list in, list out. A request is checked whole before anything is
//! written (unknown collection, spec or checksum, a missing required spec, meta
//! that fails the collection's schema: 400, nothing created); identical units
//! are reused.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json as JsonBody;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::AppState;
use super::files::file_url;
use super::http::{ApiError, ApiResult, Base, Page};
use crate::recipe::resolve::FileSpec;
use crate::target::local::api::{ApiNewUnit, ApiUnit};

/// What a unit of a collection must satisfy.
pub(super) struct CollectionRules {
    specs: Vec<FileSpec>,
    meta_schema: Option<jsonschema::Validator>,
}

fn rules(state: &AppState, id: i64) -> ApiResult<Option<Arc<CollectionRules>>> {
    if let Some(r) = state
        .rules
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
    {
        return Ok(Some(r.clone()));
    }
    let catalog = state.catalog();
    let Some(json) = catalog.collection_json(id)? else {
        return Ok(None);
    };
    let specs = catalog.collection_specs(id)?;
    drop(catalog);
    let meta_schema = match json.pointer("/meta/data_unit_meta_schema") {
        Some(s) if s.is_object() => Some(
            jsonschema::options()
                .should_validate_formats(true)
                .build(s)
                .map_err(|e| {
                    ApiError::internal(format!("collection {id}: bad meta schema: {e}"))
                })?,
        ),
        _ => None,
    };
    let r = Arc::new(CollectionRules { specs, meta_schema });
    state
        .rules
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, r.clone());
    Ok(Some(r))
}

pub(super) fn unit_json(state: &AppState, base: &str, u: &ApiUnit) -> Json {
    let files: serde_json::Map<String, Json> = u
        .files
        .iter()
        .map(|(spec, checksum, path, size, primary)| {
            (
                spec.clone(),
                json!({"checksum": checksum, "path": path, "size": size,
                       "url": file_url(state, base, checksum), "is_primary": primary}),
            )
        })
        .collect();
    json!({"id": u.id, "data_collection": u.data_collection, "meta": u.meta,
           "files": files, "groups": u.groups})
}

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    Base(base): Base,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<JsonBody<Json>> {
    let page = Page::from_query(&q)?;
    let collection = match q.get("data_collection") {
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_request("data_collection: a number is required"))?,
        ),
        None => None,
    };
    let (offset, size, base2) = (page.offset(), page.size, base.clone());
    let (count, results) = state
        .blocking(move |state| -> ApiResult<(u64, Vec<Json>)> {
            let (count, units) = state.catalog().api_units(collection, offset, size)?;
            Ok((
                count,
                units.iter().map(|u| unit_json(state, &base2, u)).collect(),
            ))
        })
        .await??;
    Ok(JsonBody(page.body(&base, &uri, count, results)?))
}

pub(super) async fn detail(
    State(state): State<Arc<AppState>>,
    Base(base): Base,
    UrlPath(id): UrlPath<i64>,
) -> ApiResult<JsonBody<Json>> {
    let unit = state
        .catalog()
        .api_unit(id)?
        .ok_or_else(|| ApiError::not_found("data unit"))?;
    Ok(JsonBody(unit_json(&state, &base, &unit)))
}

/// A FastAPI-style error item, which the SDK formats field by field.
fn problem(loc: Vec<Json>, msg: impl Into<String>) -> Json {
    json!({"loc": loc, "msg": msg.into(), "type": "value_error"})
}

pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    Base(base): Base,
    JsonBody(body): JsonBody<Json>,
) -> ApiResult<Response> {
    let (items, single) = match body {
        Json::Array(items) => (items, false),
        obj @ Json::Object(_) => (vec![obj], true),
        _ => {
            return Err(ApiError::bad_request(
                "expected a data unit or a list of them",
            ));
        }
    };
    if items.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 data units per request"));
    }
    let mut problems = Vec::new();
    let mut units = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(u) = check_item(&state, i, item, &mut problems)? {
            units.push(u);
        }
    }
    if !problems.is_empty() {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            detail: Json::Array(problems),
        });
    }
    let created = state
        .blocking(move |st| {
            let primaries: HashMap<i64, Option<String>> = units
                .iter()
                .map(|u| u.data_collection)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|c| {
                    let primary = rules(st, c).ok().flatten().and_then(|r| {
                        r.specs
                            .iter()
                            .find(|s| s.is_primary)
                            .map(|s| s.name.clone())
                    });
                    (c, primary)
                })
                .collect();
            let is_primary =
                |c: i64, spec: &str| primaries.get(&c).and_then(|p| p.as_deref()) == Some(spec);
            let ids = st.catalog().create_api_units(&units, &is_primary)?;
            let catalog = st.catalog();
            ids.into_iter()
                .map(|(id, created)| Ok((catalog.api_unit(id)?, created)))
                .collect::<Result<Vec<_>, crate::target::local::CatalogError>>()
        })
        .await??;
    let mut out: Vec<Json> = created
        .into_iter()
        .filter_map(|(u, created)| {
            u.map(|u| {
                let mut j = unit_json(&state, &base, &u);
                j["created"] = json!(created);
                j
            })
        })
        .collect();
    let body = if single {
        out.pop().unwrap_or(Json::Null)
    } else {
        Json::Array(out)
    };
    Ok((StatusCode::CREATED, JsonBody(body)).into_response())
}

/// Checks one item; pushes every problem found. Collection errors are answered
/// before the rest is checked.
fn check_item(
    state: &AppState,
    i: usize,
    item: &Json,
    problems: &mut Vec<Json>,
) -> ApiResult<Option<ApiNewUnit>> {
    let loc = |rest: &[&str]| {
        let mut l = vec![json!("body"), json!(i)];
        l.extend(rest.iter().map(|s| json!(s)));
        l
    };
    let Some(obj) = item.as_object() else {
        problems.push(problem(loc(&[]), "expected an object"));
        return Ok(None);
    };
    for k in obj.keys() {
        if !matches!(k.as_str(), "data_collection" | "files" | "meta" | "groups") {
            problems.push(problem(loc(&[k]), "extra fields not permitted"));
        }
    }
    let Some(collection) = obj.get("data_collection").and_then(Json::as_i64) else {
        problems.push(problem(loc(&["data_collection"]), "field required"));
        return Ok(None);
    };
    let Some(rules) = rules(state, collection)? else {
        problems.push(problem(
            loc(&["data_collection"]),
            format!("data collection {collection} does not exist"),
        ));
        return Ok(None);
    };
    let meta = match obj.get("meta") {
        None | Some(Json::Null) => json!({}),
        Some(m @ Json::Object(_)) => m.clone(),
        Some(_) => {
            problems.push(problem(loc(&["meta"]), "meta must be an object"));
            return Ok(None);
        }
    };
    let groups: Vec<String> = match obj.get("groups") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::String(s)) => vec![s.clone()],
        Some(Json::Array(a)) if a.iter().all(Json::is_string) => a
            .iter()
            .filter_map(|g| g.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            problems.push(problem(loc(&["groups"]), "groups must be a list of names"));
            Vec::new()
        }
    };
    let Some(files_obj) = obj.get("files").and_then(Json::as_object) else {
        problems.push(problem(
            loc(&["files"]),
            "field required: an object of spec → {checksum, path}",
        ));
        return Ok(None);
    };
    let mut files = Vec::new();
    let catalog = state.catalog();
    for (spec, f) in files_obj {
        if !rules.specs.iter().any(|s| &s.name == spec) {
            let names: Vec<&str> = rules.specs.iter().map(|s| s.name.as_str()).collect();
            problems.push(problem(
                loc(&["files", spec]),
                format!(
                    "`{spec}` is not a file specification of collection {collection} (specs: {})",
                    names.join(", ")
                ),
            ));
            continue;
        }
        let Some(checksum) = f.get("checksum").and_then(Json::as_str) else {
            problems.push(problem(loc(&["files", spec, "checksum"]), "field required"));
            continue;
        };
        if catalog.data_file(checksum)?.is_none() {
            problems.push(problem(
                loc(&["files", spec, "checksum"]),
                format!("no data file with checksum {checksum}: upload and confirm it first"),
            ));
            continue;
        }
        let path = f.get("path").and_then(Json::as_str).unwrap_or_default();
        if path.len() > 1024 {
            problems.push(problem(
                loc(&["files", spec, "path"]),
                "at most 1024 characters",
            ));
        }
        files.push((spec.clone(), checksum.to_owned(), path.to_owned()));
    }
    drop(catalog);
    for s in rules.specs.iter().filter(|s| s.is_required) {
        if !files_obj.contains_key(&s.name) {
            problems.push(problem(
                loc(&["files", &s.name]),
                format!("required file specification `{}` is missing", s.name),
            ));
        }
    }
    if let Some(v) = &rules.meta_schema {
        for e in v.iter_errors(&meta) {
            problems.push(problem(
                loc(&["meta"]),
                format!("{} (at {})", e, e.instance_path()),
            ));
        }
    }
    Ok(Some(ApiNewUnit {
        data_collection: collection,
        files,
        meta,
        groups,
    }))
}
