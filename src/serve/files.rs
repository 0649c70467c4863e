//! Data files: presigned uploads (single URL and multipart) with confirm, the
//! storage URLs they point at, direct and chunked uploads, checksum checks.
//!
//! Files are identified by SHA-1, as the presigned confirm step sends it; the
//! server recomputes it from the bytes it received and refuses a mismatch.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json as JsonBody;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use md5::Md5;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use sha1::{Digest, Sha1};

use super::AppState;
use super::faults::drop_connection;
use super::http::{ApiError, ApiResult, Base, check_signature, s3_error, sign};
use crate::target::local::{FileStore, StoreError};

type St = State<Arc<AppState>>;

const FILE_URL_TTL_S: i64 = 86_400;

/// An upload id: 128 bits from the OS's secure random source, so ids cannot
/// be guessed (they name files on disk and chunked uploads).
fn new_id() -> ApiResult<String> {
    super::secure_random::<16>()
        .map(hex::encode)
        .map_err(ApiError::internal)
}

/// The most checksums one `verify_checksums` request may ask about (the SDK
/// and synup send 1,000).
const MAX_VERIFY: usize = 10_000;

/// Most parts one multipart upload is cut into (S3's limit); a larger file
/// gets larger parts.
const MAX_PARTS: u64 = 10_000;

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A signed, expiring download URL for a stored file.
pub(super) fn file_url(state: &AppState, base: &str, checksum: &str) -> String {
    let expires = chrono::Utc::now().timestamp() + FILE_URL_TTL_S;
    let sig = sign(&state.signing_key, &format!("get:{checksum}"), expires);
    format!("{base}/_storage/files/{checksum}?expires={expires}&signature={sig}")
}

#[derive(Deserialize)]
pub(super) struct PresignRequest {
    files: Vec<PresignFile>,
    #[serde(default)]
    expiration: Option<i64>,
}

#[derive(Deserialize)]
struct PresignFile {
    filename: String,
    size: u64,
    #[serde(default)]
    #[allow(dead_code)]
    content_type: Option<String>,
}

pub(super) async fn presigned_upload(
    State(state): St,
    Base(base): Base,
    JsonBody(req): JsonBody<PresignRequest>,
) -> ApiResult<JsonBody<Json>> {
    if req.files.is_empty() || req.files.len() > 1000 {
        return Err(ApiError::bad_request(
            "files: between 1 and 1000 files per request",
        ));
    }
    if let Some(i) = req.files.iter().position(|f| f.size < 1) {
        return Err(ApiError::bad_request(format!(
            "files[{i}].size: ensure this value is greater than or equal to 1"
        )));
    }
    if let Some(i) = req.files.iter().position(|f| f.size > state.max_file_size) {
        return Err(ApiError::bad_request(format!(
            "files[{i}].size: ensure this value is less than or equal to {} (the server's --max-file-size)",
            state.max_file_size
        )));
    }
    if let Some(i) = req
        .files
        .iter()
        .position(|f| f.filename.is_empty() || f.filename.len() > 255)
    {
        return Err(ApiError::bad_request(format!(
            "files[{i}].filename: must be 1 to 255 characters"
        )));
    }
    let ttl = req.expiration.unwrap_or(3600).clamp(60, 86_400);
    let expires = chrono::Utc::now().timestamp() + ttl;
    let url = |id: &str, part: u64| {
        let sig = sign(&state.signing_key, &format!("put:{id}:{part}"), expires);
        format!("{base}/_storage/uploads/{id}?part_number={part}&expires={expires}&signature={sig}")
    };
    let mut files: Vec<Json> = Vec::with_capacity(req.files.len());
    for f in &req.files {
        let id = new_id()?;
        let name = f.filename.replace('/', "_");
        let file_key = format!("uploads/{id}/{name}");
        files.push(if f.size > state.multipart_threshold {
            let part_size = part_size_for(state.part_size, f.size);
            let parts = f.size.div_ceil(part_size);
            json!({
                "filename": f.filename, "file_key": file_key, "presigned_url": null,
                "multipart": {
                    "upload_id": id, "part_size": part_size,
                    "parts": (1..=parts).map(|n| json!({"part_number": n, "presigned_url": url(&id, n)})).collect::<Vec<_>>(),
                },
            })
        } else {
            json!({"filename": f.filename, "file_key": file_key, "presigned_url": url(&id, 0), "multipart": null})
        });
    }
    let expires_at = chrono::DateTime::from_timestamp(expires, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    Ok(JsonBody(json!({"expires_at": expires_at, "files": files})))
}

/// The configured part size, or larger when the file would need more than
/// [`MAX_PARTS`] parts.
fn part_size_for(configured: u64, size: u64) -> u64 {
    configured.max(size.div_ceil(MAX_PARTS)).max(1)
}

fn upload_path(state: &AppState, id: &str, part: u64) -> PathBuf {
    if part == 0 {
        state.uploads_dir().join(id)
    } else {
        state.uploads_dir().join(format!("{id}.part{part}"))
    }
}

/// `PUT` to a presigned URL: the raw bytes of a file or of one part.
pub(super) async fn storage_put(
    State(state): St,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let part: u64 = q
        .get("part_number")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    if !valid_id(&id) {
        return s3_error(StatusCode::NOT_FOUND, "NoSuchUpload", "unknown upload");
    }
    if let Err(denied) = check_signature(&state.signing_key, &format!("put:{id}:{part}"), &q) {
        return denied.into_response();
    }
    let expected: Option<u64> = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if expected.is_some_and(|e| e > state.max_file_size) {
        return too_large(state.max_file_size);
    }
    let drop_at = {
        let f = state.faults.read().map(|f| f.drop_rate).unwrap_or(0.0);
        (f > 0.0 && fastrand::f64() < f).then(|| expected.unwrap_or(0) / 2)
    };
    let path = upload_path(&state, &id, part);
    let tmp = path.with_extension(format!("tmp{}", fastrand::u32(..)));
    let result = receive(&state, &tmp, body, drop_at).await;
    match result {
        Ok((n, md5)) => {
            if expected.is_some_and(|e| e != n) {
                let _ = std::fs::remove_file(&tmp);
                return s3_error(
                    StatusCode::BAD_REQUEST,
                    "IncompleteBody",
                    "body shorter than Content-Length",
                );
            }
            if let Err(e) = std::fs::rename(&tmp, &path) {
                return s3_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    &e.to_string(),
                );
            }
            (StatusCode::OK, [(header::ETAG, format!("\"{md5}\""))]).into_response()
        }
        Err(Received::TooLarge) => {
            let _ = std::fs::remove_file(&tmp);
            too_large(state.max_file_size)
        }
        Err(Received::Failed(e)) => {
            let _ = std::fs::remove_file(&tmp);
            s3_error(StatusCode::BAD_REQUEST, "IncompleteBody", &e)
        }
    }
}

fn too_large(max: u64) -> Response {
    s3_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "EntityTooLarge",
        &format!("Your proposed upload exceeds the maximum allowed size ({max} bytes)"),
    )
}

/// Why a body was not received.
enum Received {
    TooLarge,
    Failed(String),
}

impl From<std::io::Error> for Received {
    fn from(e: std::io::Error) -> Self {
        Self::Failed(e.to_string())
    }
}

/// Streams a body into `tmp`, at most `--max-file-size` bytes; returns
/// (bytes, md5 hex). With `drop_at`, the connection is dropped once that many
/// bytes arrived (fault injection).
async fn receive(
    state: &AppState,
    tmp: &Path,
    body: Body,
    drop_at: Option<u64>,
) -> Result<(u64, String), Received> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(tmp).await?;
    let mut md5 = Md5::new();
    let mut n = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Received::Failed(e.to_string()))?;
        if n + chunk.len() as u64 > state.max_file_size {
            return Err(Received::TooLarge);
        }
        if drop_at.is_some_and(|at| n + chunk.len() as u64 > at) {
            drop(file);
            let _ = std::fs::remove_file(tmp);
            super::faults::Injected::count(&state.injected.dropped);
            drop_connection();
        }
        md5.update(&chunk);
        file.write_all(&chunk).await?;
        n += chunk.len() as u64;
    }
    file.flush().await?;
    Ok((n, hex::encode(md5.finalize())))
}

#[derive(Deserialize)]
pub(super) struct ConfirmRequest {
    files: Vec<ConfirmFile>,
}

#[derive(Deserialize)]
struct ConfirmFile {
    file_key: String,
    checksum: String,
    size: u64,
    #[serde(default)]
    multipart: Option<ConfirmMultipart>,
}

#[derive(Deserialize)]
struct ConfirmMultipart {
    #[allow(dead_code)]
    upload_id: String,
    parts: Vec<ConfirmPart>,
}

#[derive(Deserialize)]
struct ConfirmPart {
    part_number: u64,
    etag: String,
}

pub(super) async fn confirm_upload(
    State(state): St,
    JsonBody(req): JsonBody<ConfirmRequest>,
) -> ApiResult<JsonBody<Json>> {
    let results = state
        .blocking(move |st| confirm_all(st, &req.files))
        .await??;
    let ok = results.iter().filter(|r| r["success"] == true).count();
    Ok(JsonBody(json!({
        "results": results,
        "created_count": ok,
        "failed_count": results.len() - ok,
    })))
}

/// A confirmed file whose bytes are in the store.
struct Staged {
    checksum: String,
    size: u64,
    upload: Option<PathBuf>,
}

/// Moves every uploaded file into the store, makes them durable with one sync,
/// then records them all in one transaction; upload files go last, so a crash
/// anywhere lets the client's repeated confirm finish the job.
fn confirm_all(state: &AppState, files: &[ConfirmFile]) -> ApiResult<Vec<Json>> {
    let staged: Vec<Result<Staged, String>> = files.iter().map(|f| stage(state, f)).collect();
    state.store.sync().map_err(ApiError::internal)?;
    let rows: Vec<(String, u64, String)> = staged
        .iter()
        .flatten()
        .map(|s| {
            (
                s.checksum.clone(),
                s.size,
                FileStore::relative_path(&s.checksum),
            )
        })
        .collect();
    let ids = state.catalog().add_data_files(&rows)?;
    let mut ids = ids.into_iter();
    let mut out = Vec::with_capacity(files.len());
    for (f, s) in files.iter().zip(staged) {
        out.push(match s {
            Ok(s) => {
                let (id, created) = ids.next().unwrap_or((0, false));
                if let Some(p) = s.upload {
                    let _ = std::fs::remove_file(p);
                }
                json!({"file_key": f.file_key, "checksum": s.checksum, "data_file_id": id, "success": true, "error": null, "created": created})
            }
            Err(e) => json!({"file_key": f.file_key, "checksum": f.checksum, "data_file_id": null, "success": false, "error": e, "created": false}),
        });
    }
    Ok(out)
}

/// Checks one confirmed file and puts its bytes in the store (SHA-1 checked).
fn stage(state: &AppState, f: &ConfirmFile) -> Result<Staged, String> {
    let checksum = f.checksum.to_ascii_lowercase();
    if checksum.len() != 40 || !checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("checksum must be a SHA-1 hex digest".into());
    }
    let id = f
        .file_key
        .strip_prefix("uploads/")
        .and_then(|rest| rest.split('/').next())
        .filter(|id| valid_id(id))
        .ok_or_else(|| format!("unknown file_key {}", f.file_key))?;
    let path = upload_path(state, id, 0);
    if let Some(mp) = &f.multipart {
        assemble_parts(state, id, mp, &path)?;
    }
    if !path.exists() {
        // A confirm sent again after its answer was lost: the bytes are stored already.
        let stored = std::fs::metadata(state.store.path_of(&checksum)).map(|m| m.len());
        if stored.as_ref().is_ok_and(|&n| n == f.size) {
            return Ok(Staged {
                checksum,
                size: f.size,
                upload: None,
            });
        }
        return Err(format!("no bytes were uploaded for {}", f.file_key));
    }
    let size = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    if size != f.size {
        let _ = std::fs::remove_file(&path);
        return Err(format!(
            "size mismatch: {} bytes received, {} confirmed",
            size, f.size
        ));
    }
    match state.store.put(&path, &checksum) {
        Ok(_) => Ok(Staged {
            checksum,
            size,
            upload: Some(path),
        }),
        Err(StoreError::Changed { actual, .. }) => {
            let _ = std::fs::remove_file(&path);
            Err(format!(
                "checksum mismatch: the bytes received have SHA-1 {actual}"
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn assemble_parts(
    state: &AppState,
    id: &str,
    mp: &ConfirmMultipart,
    into: &Path,
) -> Result<(), String> {
    let mut parts: Vec<&ConfirmPart> = mp.parts.iter().collect();
    parts.sort_by_key(|p| p.part_number);
    let first = upload_path(state, id, parts.first().map_or(1, |p| p.part_number));
    if !first.exists() && into.exists() {
        return Ok(()); // assembled by an earlier confirm whose answer was lost
    }
    let tmp = into.with_extension("assembling");
    let mut out = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
    for p in &parts {
        let part_path = upload_path(state, id, p.part_number);
        let bytes = std::fs::read(&part_path)
            .map_err(|_| format!("part {} was not uploaded", p.part_number))?;
        let etag = format!("\"{}\"", hex::encode(Md5::digest(&bytes)));
        if etag != p.etag && etag.trim_matches('"') != p.etag {
            return Err(format!(
                "part {}: ETag {} does not match",
                p.part_number, p.etag
            ));
        }
        out.write_all(&bytes).map_err(|e| e.to_string())?;
    }
    out.sync_all().map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, into).map_err(|e| e.to_string())?;
    for p in &parts {
        let _ = std::fs::remove_file(upload_path(state, id, p.part_number));
    }
    Ok(())
}

/// Puts bytes into the content-addressed store (checking their SHA-1) and records them.
fn store_file(state: &AppState, path: &Path, sha1: &str, size: u64) -> Result<(i64, bool), String> {
    match state.store.put(path, sha1) {
        Ok(_) => {}
        Err(StoreError::Changed { actual, .. }) => {
            return Err(format!(
                "checksum mismatch: the bytes received have SHA-1 {actual}"
            ));
        }
        Err(e) => return Err(e.to_string()),
    }
    state.store.sync().map_err(|e| e.to_string())?;
    state
        .catalog()
        .add_data_file(sha1, size, &FileStore::relative_path(sha1))
        .map_err(|e| e.to_string())
}

fn sha1_of(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match std::io::Read::read(&mut f, &mut buf)? {
            0 => return Ok(hex::encode(h.finalize())),
            n => h.update(&buf[..n]),
        }
    }
}

pub(super) async fn verify_checksums(
    State(state): St,
    JsonBody(body): JsonBody<Json>,
) -> ApiResult<JsonBody<Json>> {
    let list: Vec<String> = body
        .get("checksums")
        .or_else(|| body.get("existing_checksums"))
        .and_then(Json::as_array)
        .ok_or_else(|| ApiError::bad_request("checksums: a list of checksums is required"))?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    if list.len() > MAX_VERIFY {
        return Err(ApiError::bad_request(format!(
            "checksums: at most {MAX_VERIFY} per request"
        )));
    }
    // Off the request threads, and the catalog lock released between
    // slices, so other requests interleave with a large check.
    let existing = state
        .blocking(move |state| -> ApiResult<Vec<String>> {
            let mut existing = Vec::new();
            for slice in list.chunks(500) {
                let catalog = state.catalog();
                for c in slice {
                    if catalog.data_file(c)?.is_some() {
                        existing.push(c.clone());
                    }
                }
            }
            Ok(existing)
        })
        .await??;
    Ok(JsonBody(json!({"existing_checksums": existing})))
}

fn data_file_json(state: &AppState, base: &str, id: i64, checksum: &str, size: u64) -> Json {
    json!({"id": id, "checksum": checksum, "size": size, "file": file_url(state, base, checksum),
           "created_at": crate::target::local::catalog::now_rfc3339()})
}

/// `POST data_files/`: a multipart `file`, or `{"chunked_upload": id}`.
pub(super) async fn create_data_file(
    State(state): St,
    Base(base): Base,
    req: Request,
) -> ApiResult<Response> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        let JsonBody(body): JsonBody<Json> = JsonBody::from_request(req, &state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let id = body
            .get("chunked_upload")
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
            .ok_or_else(|| {
                ApiError::bad_request("send a multipart `file` or {\"chunked_upload\": id}")
            })?;
        let st = read_chunked(&state, &id)?;
        let checksum = st["checksum"]
            .as_str()
            .ok_or_else(|| ApiError::bad_request("chunked upload is not complete"))?;
        let (file_id, size) = state
            .catalog()
            .data_file(checksum)?
            .ok_or_else(|| ApiError::not_found("data file"))?;
        return Ok((
            StatusCode::CREATED,
            JsonBody(data_file_json(&state, &base, file_id, checksum, size)),
        )
            .into_response());
    }
    let mut multipart = Multipart::from_request(req, &state)
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let tmp = state.uploads_dir().join(format!("direct-{}", new_id()?));
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let st = state.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<(i64, String, u64), String> {
            std::fs::write(&tmp, &bytes).map_err(|e| e.to_string())?;
            let sha = sha1_of(&tmp).map_err(|e| e.to_string())?;
            let r = store_file(&st, &tmp, &sha, bytes.len() as u64);
            let _ = std::fs::remove_file(&tmp);
            r.map(|(id, _)| (id, sha, bytes.len() as u64))
        })
        .await
        .map_err(ApiError::internal)?;
        let (id, sha, size) = result.map_err(ApiError::bad_request)?;
        return Ok((
            StatusCode::CREATED,
            JsonBody(data_file_json(&state, &base, id, &sha, size)),
        )
            .into_response());
    }
    Err(ApiError::bad_request("file: this field is required"))
}

fn chunked_paths(state: &AppState, id: &str) -> (PathBuf, PathBuf) {
    let dir = state.dir.join("chunked");
    (
        dir.join(format!("{id}.data")),
        dir.join(format!("{id}.json")),
    )
}

fn read_chunked(state: &AppState, id: &str) -> ApiResult<Json> {
    if !valid_id(id) {
        return Err(ApiError::not_found("chunked upload"));
    }
    let (_, meta) = chunked_paths(state, id);
    let text = std::fs::read_to_string(meta).map_err(|_| ApiError::not_found("chunked upload"))?;
    serde_json::from_str(&text).map_err(ApiError::internal)
}

fn write_chunked(state: &AppState, id: &str, st: &Json) -> ApiResult<()> {
    let (_, meta) = chunked_paths(state, id);
    let tmp = meta.with_extension("json.tmp");
    std::fs::write(&tmp, st.to_string()).map_err(ApiError::internal)?;
    std::fs::rename(&tmp, &meta).map_err(ApiError::internal)
}

fn chunk_response(base: &str, id: &str, st: &Json) -> Json {
    let mut out = st.clone();
    out["id"] = json!(id);
    out["url"] = json!(format!("{base}/chunked_upload/{id}/"));
    out
}

/// `Content-Range: bytes START-END/TOTAL` → START.
fn range_start(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let range = v.strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

pub(super) async fn chunk_put_new(
    state: St,
    base: Base,
    headers: HeaderMap,
    mp: Multipart,
) -> ApiResult<JsonBody<Json>> {
    let id = new_id()?;
    chunk_append(state, base, id, headers, mp, true).await
}

pub(super) async fn chunk_put(
    state: St,
    base: Base,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    mp: Multipart,
) -> ApiResult<JsonBody<Json>> {
    chunk_append(state, base, id, headers, mp, false).await
}

async fn chunk_append(
    State(state): St,
    Base(base): Base,
    id: String,
    headers: HeaderMap,
    mut mp: Multipart,
    new: bool,
) -> ApiResult<JsonBody<Json>> {
    let mut filename = None;
    let mut bytes = None;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?
    {
        match field.name() {
            Some("filename") => {
                filename = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| ApiError::bad_request(e.body_text()))?,
                )
            }
            Some("file") => {
                bytes = Some(
                    field
                        .bytes()
                        .await
                        .map_err(|e| ApiError::bad_request(e.body_text()))?,
                )
            }
            _ => {}
        }
    }
    let bytes = bytes.ok_or_else(|| ApiError::bad_request("file: this field is required"))?;
    let mut st = if new {
        json!({"filename": filename.clone().unwrap_or_default(), "offset": 0, "completed_at": null, "status": 1})
    } else {
        read_chunked(&state, &id)?
    };
    if st["status"] == 2 {
        return Err(ApiError::bad_request("chunked upload is already complete"));
    }
    let offset = st["offset"].as_u64().unwrap_or(0);
    if offset.saturating_add(bytes.len() as u64) > state.max_file_size {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload would exceed the server's --max-file-size ({} bytes)",
                state.max_file_size
            ),
        ));
    }
    let start = range_start(&headers).unwrap_or(offset);
    if start != offset {
        return Err(ApiError::bad_request(format!(
            "Offsets do not match: expected {offset}, got {start}"
        )));
    }
    let (data, _) = chunked_paths(&state, &id);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&data)
        .map_err(ApiError::internal)?;
    f.write_all(&bytes).map_err(ApiError::internal)?;
    f.sync_data().map_err(ApiError::internal)?;
    st["offset"] = json!(offset + bytes.len() as u64);
    if let Some(name) = filename {
        st["filename"] = json!(name);
    }
    write_chunked(&state, &id, &st)?;
    Ok(JsonBody(chunk_response(&base, &id, &st)))
}

#[derive(Deserialize)]
pub(super) struct Finish {
    md5: String,
}

pub(super) async fn chunk_finish_empty(
    state: St,
    base: Base,
    body: JsonBody<Finish>,
) -> ApiResult<JsonBody<Json>> {
    let id = new_id()?;
    write_chunked(
        &state.0,
        &id,
        &json!({"filename": "", "offset": 0, "completed_at": null, "status": 1}),
    )?;
    std::fs::File::create(chunked_paths(&state.0, &id).0).map_err(ApiError::internal)?;
    chunk_finish(state, base, UrlPath(id), body).await
}

pub(super) async fn chunk_finish(
    State(state): St,
    Base(base): Base,
    UrlPath(id): UrlPath<String>,
    JsonBody(finish): JsonBody<Finish>,
) -> ApiResult<JsonBody<Json>> {
    let mut st = read_chunked(&state, &id)?;
    if st["status"] == 2 {
        return Ok(JsonBody(chunk_response(&base, &id, &st)));
    }
    let (data, _) = chunked_paths(&state, &id);
    let data2 = data.clone();
    // Streamed: a chunked upload may be as large as --max-file-size.
    let (md5, sha, size) = state
        .blocking(move |_| -> std::io::Result<(String, String, u64)> {
            let mut file = std::fs::File::open(&data2)?;
            let (mut md5, mut sha1, mut size) = (Md5::new(), Sha1::new(), 0u64);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut file, &mut buf)?;
                if n == 0 {
                    break;
                }
                md5.update(&buf[..n]);
                sha1.update(&buf[..n]);
                size += n as u64;
            }
            Ok((
                hex::encode(md5.finalize()),
                hex::encode(sha1.finalize()),
                size,
            ))
        })
        .await?
        .map_err(ApiError::internal)?;
    if !md5.eq_ignore_ascii_case(finish.md5.trim()) {
        return Err(ApiError::bad_request(format!(
            "md5 mismatch: the uploaded bytes have MD5 {md5}"
        )));
    }
    let sha2 = sha.clone();
    state
        .blocking(move |st| store_file(st, &data, &sha2, size))
        .await?
        .map_err(ApiError::bad_request)?;
    st["status"] = json!(2);
    st["checksum"] = json!(sha);
    st["size"] = json!(size);
    st["completed_at"] = json!(crate::target::local::catalog::now_rfc3339());
    st["file"] = json!(file_url(&state, &base, &sha));
    write_chunked(&state, &id, &st)?;
    let _ = std::fs::remove_file(chunked_paths(&state, &id).0);
    Ok(JsonBody(chunk_response(&base, &id, &st)))
}

pub(super) async fn chunk_get(
    State(state): St,
    Base(base): Base,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<JsonBody<Json>> {
    let st = read_chunked(&state, &id)?;
    Ok(JsonBody(chunk_response(&base, &id, &st)))
}

/// A signed download of a stored file.
pub(super) async fn storage_get(
    State(state): St,
    UrlPath(checksum): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    _uri: Uri,
) -> Response {
    if let Err(denied) = check_signature(&state.signing_key, &format!("get:{checksum}"), &q) {
        return denied.into_response();
    }
    if checksum.len() != 40 || !checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    }
    match tokio::fs::File::open(state.store.path_of(&checksum)).await {
        Ok(f) => {
            let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                    (header::CONTENT_LENGTH, len.to_string()),
                ],
                Body::from_stream(tokio_util::io::ReaderStream::new(f)),
            )
                .into_response()
        }
        Err(_) => s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        ),
    }
}
