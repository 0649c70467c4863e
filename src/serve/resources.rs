//! Collections, storages, projects, tasks, agents, jobs, logs and the fault admin.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json as JsonBody;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::http::{ApiError, ApiResult, Base, Page};
use super::{AppState, Faults};

type St = State<Arc<AppState>>;
type Q = Query<HashMap<String, String>>;

pub(super) async fn agents(
    State(_): St,
    Base(base): Base,
    uri: Uri,
    Query(q): Q,
) -> ApiResult<JsonBody<Json>> {
    let agent =
        json!({"id": 1, "name": "synup-serve", "url": base, "status": "connected", "token": null});
    Ok(JsonBody(Page::from_query(&q)?.body(
        &base,
        &uri,
        1,
        vec![agent],
    )?))
}

pub(super) async fn collections(
    State(state): St,
    Base(base): Base,
    uri: Uri,
    Query(q): Q,
) -> ApiResult<JsonBody<Json>> {
    let page = Page::from_query(&q)?;
    let catalog = state.catalog();
    let (count, ids) = catalog.collection_ids(page.offset(), page.size)?;
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(c) = catalog.collection_json(id)? {
            results.push(c);
        }
    }
    Ok(JsonBody(page.body(&base, &uri, count, results)?))
}

pub(super) async fn collection(
    State(state): St,
    UrlPath(id): UrlPath<i64>,
) -> ApiResult<JsonBody<Json>> {
    state
        .catalog()
        .collection_json(id)?
        .map(JsonBody)
        .ok_or_else(|| ApiError::not_found(format!("data collection {id}")))
}

pub(super) async fn storages(
    State(state): St,
    Base(base): Base,
    uri: Uri,
    Query(q): Q,
) -> ApiResult<JsonBody<Json>> {
    let page = Page::from_query(&q)?;
    let all = state
        .catalog()
        .storages(q.get("category").map(String::as_str))?;
    let count = all.len() as u64;
    let results = all
        .into_iter()
        .skip(page.offset() as usize)
        .take(page.size as usize)
        .map(|mut s| {
            if q.get("with_configuration").map(String::as_str) != Some("true") {
                s["configuration"] = json!({});
            }
            s
        })
        .collect();
    Ok(JsonBody(page.body(&base, &uri, count, results)?))
}

pub(super) async fn storage(
    State(state): St,
    UrlPath(id): UrlPath<i64>,
    Query(q): Q,
) -> ApiResult<JsonBody<Json>> {
    let mut s = state
        .catalog()
        .storage(id)?
        .ok_or_else(|| ApiError::not_found(format!("storage {id}")))?;
    if q.get("with_configuration").map(String::as_str) != Some("true") {
        s["configuration"] = json!({});
    }
    Ok(JsonBody(s))
}

pub(super) async fn storage_session(
    State(state): St,
    UrlPath(id): UrlPath<i64>,
) -> ApiResult<JsonBody<Json>> {
    let s = state
        .catalog()
        .storage(id)?
        .ok_or_else(|| ApiError::not_found(format!("storage {id}")))?;
    Ok(JsonBody(json!({
        "provider": s["provider"], "configuration": s["configuration"],
        "expires_at": null, "contract_version": 1,
    })))
}

pub(super) async fn project(
    State(state): St,
    UrlPath(id): UrlPath<i64>,
) -> ApiResult<JsonBody<Json>> {
    let title = state
        .catalog()
        .project(id)?
        .ok_or_else(|| ApiError::not_found(format!("project {id}")))?;
    Ok(JsonBody(json!({"id": id, "title": title})))
}

/// `POST tasks/ {project, data: [{data_unit: id}, ...]}`: one task per unit.
pub(super) async fn create_tasks(
    State(state): St,
    JsonBody(body): JsonBody<Json>,
) -> ApiResult<Response> {
    let project = body
        .get("project")
        .and_then(Json::as_i64)
        .ok_or_else(|| ApiError::bad_request("project: field required"))?;
    let data = body
        .get("data")
        .and_then(Json::as_array)
        .ok_or_else(|| ApiError::bad_request("data: a list is required"))?;
    let mut catalog = state.catalog();
    if catalog.project(project)?.is_none() {
        return Err(ApiError::bad_request(format!(
            "project {project} does not exist"
        )));
    }
    let mut units = Vec::with_capacity(data.len());
    for (i, d) in data.iter().enumerate() {
        let unit = d
            .get("data_unit")
            .and_then(Json::as_i64)
            .ok_or_else(|| ApiError::bad_request(format!("data[{i}].data_unit: field required")))?;
        if catalog.api_unit(unit)?.is_none() {
            return Err(ApiError::bad_request(format!(
                "data[{i}].data_unit: unit {unit} does not exist"
            )));
        }
        units.push(unit);
    }
    let tasks = catalog.create_tasks(project, &units)?;
    let out: Vec<Json> = tasks
        .into_iter()
        .map(|(id, unit)| json!({"id": id, "project": project, "data_unit": unit}))
        .collect();
    Ok((StatusCode::CREATED, JsonBody(Json::Array(out))).into_response())
}

pub(super) async fn patch_job(UrlPath(id): UrlPath<String>) -> JsonBody<Json> {
    JsonBody(json!({"id": id}))
}

pub(super) async fn post_logs() -> Response {
    (StatusCode::CREATED, JsonBody(json!({}))).into_response()
}

/// The faults in force, and how many of each were injected so far.
pub(super) async fn get_faults(State(state): St) -> JsonBody<Json> {
    let faults = state.faults.read().map(|f| f.clone()).unwrap_or_default();
    let mut out = serde_json::to_value(faults).unwrap_or_default();
    out["injected"] = state.injected.snapshot();
    JsonBody(out)
}

pub(super) async fn put_faults(
    State(state): St,
    JsonBody(faults): JsonBody<Faults>,
) -> JsonBody<Faults> {
    if let Ok(mut f) = state.faults.write() {
        *f = faults.clone();
    }
    JsonBody(faults)
}
