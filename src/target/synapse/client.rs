//! An async client for the Synapse v1 REST API, wire-compatible with the
//! official SDK: the same paths, headers, bodies and upload protocol.
//!
//! Every request goes through one retry loop. Requests that are safe to
//! repeat are retried on connection errors, timeouts, 408/425/429/5xx (with
//! `Retry-After` honoured). A registration (`POST data_units/`) is never
//! repeated once it may have reached the server: the caller gets
//! [`SynapseError::MaybeProcessed`] and decides by looking at what exists.

use crate::target::{CollectionId, ProjectId, StorageId, UnitId};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt;
use sha1::{Digest, Sha1};

use reqwest::{Method, StatusCode};
use serde_json::{Value as Json, json};

use super::config::{Credentials, Secret};
use super::retry::{Gate, backoff, retry_after, retryable_status};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SynapseError {
    #[error("{method} {path}: {status} {message}")]
    #[diagnostic(code(synup::target::synapse::http))]
    Http {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{method} {path}: {message}")]
    #[diagnostic(
        code(synup::target::synapse::unreachable),
        help("check the host (SYNAPSE_HOST, `synup doctor`) and the network")
    )]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    #[error(
        "{method} {path}: the response was lost ({message}); the request may have been processed"
    )]
    #[diagnostic(code(synup::target::synapse::response_lost))]
    MaybeProcessed {
        method: String,
        path: String,
        message: String,
    },
    #[error("{path}: unexpected response: {message}")]
    #[diagnostic(code(synup::target::synapse::protocol))]
    Protocol { path: String, message: String },
    #[error("cannot spill a listing to {dir}: {source}")]
    #[diagnostic(
        code(synup::target::synapse::spill),
        help(
            "the listing is sorted on disk under `.synup/spill/` past the memory budget; free disk space there or raise `--memory`"
        )
    )]
    Spill {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

impl SynapseError {
    pub fn status(&self) -> Option<u16> {
        match self {
            SynapseError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }
}

/// Whether a request may be sent again after it may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    Safe,
    Once,
}

/// Where an upload's bytes come from.
#[derive(Clone, Copy)]
pub enum Origin<'a> {
    Local(&'a Path),
    /// An object under a remote root, streamed from there.
    Remote(&'a crate::source::remote::RemoteRoot, &'a str),
}

impl Origin<'_> {
    fn shown(&self) -> String {
        match self {
            Origin::Local(p) => p.display().to_string(),
            Origin::Remote(r, rel) => format!("{}/{rel}", r.url),
        }
    }
}

/// One file to ask an upload URL for.
pub struct UploadRequest<'a> {
    pub filename: &'a str,
    pub size: u64,
    pub content_type: Option<&'static str>,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Secret,
    retries: u32,
    api: Gate,
    storage: Gate,
}

const API_TIMEOUT: Duration = Duration::from_secs(120);
const PUT_TIMEOUT: Duration = Duration::from_secs(300);
/// Files up to this size are read once and sent from memory; larger ones stream.
/// (With 32 workers that bounds the buffers to 32 MiB.)
const IN_MEMORY_PUT: u64 = 1 << 20;

/// A message from an error body: DRF `detail`, FastAPI items, or the text.
fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(m)) => match m.get("detail") {
            Some(Json::String(s)) => s.clone(),
            Some(Json::Array(items)) => items
                .iter()
                .map(|i| {
                    let loc = i
                        .get("loc")
                        .and_then(Json::as_array)
                        .map(|l| {
                            l.iter()
                                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .unwrap_or_default();
                    let msg = i.get("msg").and_then(Json::as_str).unwrap_or_default();
                    format!("{loc}: {msg}")
                })
                .collect::<Vec<_>>()
                .join("; "),
            Some(other) => other.to_string(),
            None => Json::Object(m).to_string(),
        },
        _ => {
            // S3-style XML: keep Code and Message.
            let pick = |tag: &str| {
                let open = format!("<{tag}>");
                let close = format!("</{tag}>");
                text.split_once(&open)
                    .and_then(|(_, rest)| rest.split_once(&close))
                    .map(|(v, _)| v.to_owned())
            };
            match (pick("Code"), pick("Message")) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                _ => text.chars().take(300).collect(),
            }
        }
    }
}

/// A path for messages: no query string (presigned URLs carry signatures).
fn shown(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_owned()
}

impl Client {
    pub fn new(creds: &Credentials, workers: usize, retries: u32) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(workers.max(8))
            .user_agent(concat!("synup/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with static settings");
        Self {
            http,
            base: creds.host.trim_end_matches('/').to_owned(),
            token: creds.token.clone(),
            retries,
            api: Gate::new(workers.clamp(1, 16)),
            storage: Gate::new(workers),
        }
    }

    pub fn host(&self) -> &str {
        &self.base
    }

    /// The SDK's join: absolute URLs as is, else base + `/` + path.
    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// An API call with JSON in and out, retried as `repeat` allows.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Json>,
        repeat: Repeat,
    ) -> Result<Json, SynapseError> {
        let url = self.url(path);
        let (m, p) = (method.to_string(), shown(path));
        let mut attempt = 0u32;
        loop {
            let permit = self.api.acquire().await;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .timeout(API_TIMEOUT)
                .header(
                    "Synapse-Access-Token",
                    format!("Token {}", self.token.expose()),
                );
            if let Some(b) = body {
                req = req.json(b);
            }
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(bytes) => Ok((status, headers, bytes)),
                        Err(e) => Err((false, crate::error_chain::describe(&e.without_url()))),
                    }
                }
                Err(e) => Err((
                    e.is_connect(),
                    crate::error_chain::describe(&e.without_url()),
                )),
            };
            drop(permit);
            let exhausted = attempt >= self.retries;
            match &outcome {
                Ok((status, _, _)) => {
                    tracing::trace!(method = %m, path = %p, status = status.as_u16(), attempt, "api response")
                }
                Err((_, message)) => {
                    tracing::debug!(method = %m, path = %p, attempt, error = %message, "api request failed")
                }
            }
            match outcome {
                Ok((status, _, bytes)) if status.is_success() => {
                    self.api.succeeded();
                    if status == StatusCode::NO_CONTENT || bytes.is_empty() {
                        return Ok(Json::Null);
                    }
                    return serde_json::from_slice(&bytes).map_err(|e| SynapseError::Protocol {
                        path: p.clone(),
                        message: format!("not JSON: {e}"),
                    });
                }
                Ok((status, headers, bytes)) => {
                    let code = status.as_u16();
                    let message = error_message(&bytes);
                    if code == 429 {
                        self.api
                            .throttled(retry_after(&headers).unwrap_or_else(|| backoff(attempt)));
                    }
                    // A rate limit means "not done"; other failures of a
                    // registration may have happened after the work.
                    let retry = retryable_status(code) && (repeat == Repeat::Safe || code == 429);
                    if retry && !exhausted {
                        let delay = retry_after(&headers).unwrap_or_else(|| backoff(attempt));
                        tracing::debug!(method = %m, path = %p, status = code, attempt, delay_ms = delay.as_millis() as u64, "retrying after a retryable status");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                        continue;
                    }
                    if repeat == Repeat::Once && retryable_status(code) && code != 429 {
                        return Err(SynapseError::MaybeProcessed {
                            method: m,
                            path: p,
                            message: format!("{code} {message}"),
                        });
                    }
                    return Err(SynapseError::Http {
                        method: m,
                        path: p,
                        status: code,
                        message,
                    });
                }
                Err((connect, message)) => {
                    if (connect || repeat == Repeat::Safe) && !exhausted {
                        let delay = backoff(attempt);
                        tracing::debug!(method = %m, path = %p, attempt, delay_ms = delay.as_millis() as u64, error = %message, "retrying after a transport error");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                        continue;
                    }
                    if connect {
                        return Err(SynapseError::Transport {
                            method: m,
                            path: p,
                            message,
                        });
                    }
                    return Err(match repeat {
                        Repeat::Safe => SynapseError::Transport {
                            method: m,
                            path: p,
                            message,
                        },
                        Repeat::Once => SynapseError::MaybeProcessed {
                            method: m,
                            path: p,
                            message,
                        },
                    });
                }
            }
        }
    }

    pub async fn get(&self, path: &str) -> Result<Json, SynapseError> {
        self.call(Method::GET, path, None, Repeat::Safe).await
    }

    /// Every item of a DRF-paginated list, following `next`.
    pub async fn list_all(&self, path: &str) -> Result<Vec<Json>, SynapseError> {
        let mut out = Vec::new();
        self.each_page(path, |items| {
            out.extend(items);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Follows a listing's `next` links, handing each page's items to `take`
    /// as it arrives: a listing of millions is never held whole.
    pub async fn each_page(
        &self,
        path: &str,
        mut take: impl FnMut(Vec<Json>) -> Result<(), SynapseError>,
    ) -> Result<(), SynapseError> {
        let mut next = Some(path.to_owned());
        while let Some(p) = next.take() {
            let page = self.get(&p).await?;
            match page {
                Json::Array(items) => take(items)?,
                Json::Object(mut m) => {
                    if let Some(Json::Array(items)) = m.remove("results") {
                        take(items)?;
                    }
                    next = m.get("next").and_then(Json::as_str).map(str::to_owned);
                }
                other => {
                    return Err(SynapseError::Protocol {
                        path: shown(&p),
                        message: format!("expected a page, got {other}"),
                    });
                }
            }
        }
        Ok(())
    }

    pub async fn collection(&self, id: CollectionId) -> Result<Json, SynapseError> {
        self.get(&format!(
            "data_collections/{id}/?expand=file_specifications"
        ))
        .await
    }

    pub async fn collections(&self) -> Result<Vec<Json>, SynapseError> {
        self.list_all("data_collections/").await
    }

    /// The `is_default` internal storage, else the first one.
    pub async fn default_storage(&self) -> Result<Option<Json>, SynapseError> {
        let all = self.list_all("storages/?category=internal").await?;
        Ok(all
            .iter()
            .find(|s| s.get("is_default").and_then(Json::as_bool) == Some(true))
            .or(all.first())
            .cloned())
    }

    /// Every storage the backend lists.
    pub async fn storages(&self) -> Result<Vec<Json>, SynapseError> {
        self.list_all("storages/").await
    }

    pub async fn storage(&self, id: StorageId) -> Result<Json, SynapseError> {
        self.get(&format!("storages/{id}/")).await
    }

    /// `POST storages/{id}/session/ {"purpose": "read"}`: provider and configuration.
    pub async fn storage_session(&self, id: StorageId) -> Result<Json, SynapseError> {
        let r = self
            .call(
                Method::POST,
                &format!("storages/{id}/session/"),
                Some(&json!({"purpose": "read"})),
                Repeat::Safe,
            )
            .await?;
        match r.get("contract_version").and_then(Json::as_u64) {
            Some(1) | None => Ok(r),
            Some(v) => Err(SynapseError::Protocol {
                path: format!("storages/{id}/session/"),
                message: format!("contract_version {v} is not supported (only 1)"),
            }),
        }
    }

    pub async fn agents(&self) -> Result<Json, SynapseError> {
        self.get("agents/").await
    }

    /// Every unit of a collection.
    pub async fn units(&self, collection: CollectionId) -> Result<Vec<Json>, SynapseError> {
        self.list_all(&format!(
            "data_units/?data_collection={collection}&page_size=1000"
        ))
        .await
    }

    /// Which of these checksums the backend holds (1000 per request).
    pub async fn verify_checksums(&self, sha1s: &[&str]) -> Result<HashSet<String>, SynapseError> {
        let mut out = HashSet::new();
        for chunk in sha1s.chunks(1000) {
            let r = self
                .call(
                    Method::POST,
                    "data_files/verify_checksums/",
                    Some(&json!({"checksums": chunk})),
                    Repeat::Safe,
                )
                .await?;
            if let Some(list) = r.get("existing_checksums").and_then(Json::as_array) {
                out.extend(list.iter().filter_map(Json::as_str).map(str::to_owned));
            }
        }
        Ok(out)
    }

    /// Upload URLs for these files, in request order.
    pub async fn presign(&self, files: &[UploadRequest<'_>]) -> Result<Vec<Json>, SynapseError> {
        let body = json!({
            "files": files.iter().map(|f| json!({"filename": f.filename, "size": f.size, "content_type": f.content_type})).collect::<Vec<_>>(),
            "expiration": 3600,
        });
        let r = self
            .call(
                Method::POST,
                "data_files/presigned_upload/upload/",
                Some(&body),
                Repeat::Safe,
            )
            .await?;
        let entries = r
            .get("files")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        if entries.len() != files.len() {
            return Err(SynapseError::Protocol {
                path: "data_files/presigned_upload/upload/".into(),
                message: format!("asked for {} URLs, got {}", files.len(), entries.len()),
            });
        }
        Ok(entries)
    }

    /// Confirms uploaded files; returns the server's per-file results.
    pub async fn confirm(&self, files: Vec<Json>) -> Result<Vec<Json>, SynapseError> {
        let r = self
            .call(
                Method::POST,
                "data_files/presigned_upload/confirm_upload/",
                Some(&json!({"files": files})),
                Repeat::Safe,
            )
            .await?;
        Ok(r.get("results")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// `POST data_units/` with a list; the answer lists the units in order.
    pub async fn create_units(&self, units: &[Json]) -> Result<Vec<Json>, SynapseError> {
        let r = self
            .call(
                Method::POST,
                "data_units/",
                Some(&Json::Array(units.to_vec())),
                Repeat::Once,
            )
            .await?;
        match r {
            Json::Array(items) => Ok(items),
            Json::Object(mut m) if m.contains_key("results") => match m.remove("results") {
                Some(Json::Array(items)) => Ok(items),
                _ => Ok(Vec::new()),
            },
            other => Err(SynapseError::Protocol {
                path: "data_units/".into(),
                message: format!(
                    "expected a list of units, got {}",
                    other.to_string().chars().take(200).collect::<String>()
                ),
            }),
        }
    }

    pub async fn create_tasks(
        &self,
        project: ProjectId,
        units: &[UnitId],
    ) -> Result<(), SynapseError> {
        let body = json!({"project": project, "data": units.iter().map(|u| json!({"data_unit": u})).collect::<Vec<_>>()});
        self.call(Method::POST, "tasks/", Some(&body), Repeat::Safe)
            .await
            .map(drop)
    }

    /// PUTs `len` bytes of `path` from `offset` to a presigned URL; returns the
    /// ETag. Retried on connection errors, timeouts, 5xx/408/425/429 and on 4xx
    /// without a storage error code (a proxy), never on a storage's refusal.
    /// With `hasher`, the bytes sent are also hashed into it (each attempt starts
    /// from its state, so a retry does not hash twice), saving a second read of
    /// a file whose SHA-1 is learned while it is uploaded.
    pub async fn put(
        &self,
        url: &str,
        origin: Origin<'_>,
        offset: u64,
        len: u64,
        content_type: Option<&str>,
        mut hasher: Option<&mut Sha1>,
    ) -> Result<String, SynapseError> {
        let p = shown(url);
        let io_err = |e: std::io::Error| SynapseError::Transport {
            method: "PUT".into(),
            path: origin.shown(),
            message: e.to_string(),
        };
        let in_memory = match origin {
            Origin::Local(path) if len <= IN_MEMORY_PUT => Some(bytes::Bytes::from(
                read_range(path, offset, len).await.map_err(io_err)?,
            )),
            _ => None,
        };
        let mut attempt = 0u32;
        loop {
            let permit = self.storage.acquire().await;
            // (state, bytes hashed) of this attempt's stream.
            let tap = match (&hasher, &in_memory) {
                (Some(h), None) => Some(Arc::new(Mutex::new(((**h).clone(), 0u64)))),
                _ => None,
            };
            let tapped = |tap: Option<Arc<Mutex<(Sha1, u64)>>>| {
                move |chunk: &bytes::Bytes| {
                    if let Some(t) = &tap {
                        let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
                        t.0.update(chunk);
                        t.1 += chunk.len() as u64;
                    }
                }
            };
            let body = match (&in_memory, origin) {
                (Some(b), _) => reqwest::Body::from(b.clone()),
                (None, Origin::Remote(root, rel)) => {
                    let stream = crate::source::remote::byte_stream(root, rel, offset, len)
                        .await
                        .map_err(|e| SynapseError::Transport {
                            method: "GET".into(),
                            path: origin.shown(),
                            message: e.message,
                        })?;
                    reqwest::Body::wrap_stream(stream.inspect_ok(tapped(tap.clone())))
                }
                (None, Origin::Local(path)) => {
                    use tokio::io::{AsyncReadExt, AsyncSeekExt};
                    let mut f = tokio::fs::File::open(path).await.map_err(io_err)?;
                    f.seek(std::io::SeekFrom::Start(offset))
                        .await
                        .map_err(io_err)?;
                    reqwest::Body::wrap_stream(
                        tokio_util::io::ReaderStream::with_capacity(f.take(len), 256 << 10)
                            .inspect_ok(tapped(tap.clone())),
                    )
                }
            };
            let mut req = self
                .http
                .put(url)
                .timeout(PUT_TIMEOUT)
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(body);
            if let Some(ct) = content_type {
                req = req.header(reqwest::header::CONTENT_TYPE, ct);
            }
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let bytes = resp.bytes().await.unwrap_or_default();
                    Ok((status, headers, bytes))
                }
                Err(e) => Err(crate::error_chain::describe(&e.without_url())),
            };
            drop(permit);
            let exhausted = attempt >= self.retries;
            match outcome {
                Ok((status, headers, _)) if status.is_success() => {
                    self.storage.succeeded();
                    if let Some(h) = hasher.as_deref_mut() {
                        match (&in_memory, tap) {
                            (Some(b), _) => h.update(b),
                            (None, Some(tap)) => {
                                let (state, hashed) =
                                    tap.lock().unwrap_or_else(|e| e.into_inner()).clone();
                                if hashed != len {
                                    return Err(SynapseError::Transport {
                                        method: "PUT".into(),
                                        path: origin.shown(),
                                        message: format!(
                                            "the storage accepted the upload after {hashed} of {len} bytes"
                                        ),
                                    });
                                }
                                *h = state;
                            }
                            (None, None) => {}
                        }
                    }
                    let etag = headers
                        .get(reqwest::header::ETAG)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    return Ok(etag);
                }
                Ok((status, headers, bytes)) => {
                    let code = status.as_u16();
                    let message = error_message(&bytes);
                    let storage_refusal = (400..500).contains(&code)
                        && !matches!(code, 408 | 425 | 429)
                        && String::from_utf8_lossy(&bytes).contains("<Code>");
                    if code == 429 {
                        self.storage
                            .throttled(retry_after(&headers).unwrap_or_else(|| backoff(attempt)));
                    }
                    if !storage_refusal && !exhausted {
                        let delay = retry_after(&headers).unwrap_or_else(|| backoff(attempt));
                        tracing::debug!(path = %p, status = code, attempt, delay_ms = delay.as_millis() as u64, "retrying an upload after its status");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(SynapseError::Http {
                        method: "PUT".into(),
                        path: p,
                        status: code,
                        message,
                    });
                }
                Err(message) => {
                    if !exhausted {
                        let delay = backoff(attempt);
                        tracing::debug!(path = %p, attempt, delay_ms = delay.as_millis() as u64, error = %message, "retrying an upload after a transport error");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(SynapseError::Transport {
                        method: "PUT".into(),
                        path: p,
                        message,
                    });
                }
            }
        }
    }
}

async fn read_range(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(path).await?;
    if offset > 0 {
        f.seek(std::io::SeekFrom::Start(offset)).await?;
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut buf).await?;
    if (buf.len() as u64) != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "{} is shorter than planned ({} of {len} bytes)",
                path.display(),
                buf.len()
            ),
        ));
    }
    Ok(buf)
}

/// The MIME type the SDK would guess for a file name, for common types.
pub fn content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "webp" => "image/webp",
        "json" => "application/json",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "wav" => "audio/x-wav",
        "mp3" => "audio/mpeg",
        "zip" => "application/zip",
        "dcm" => "application/dicom",
        _ => return None,
    })
}

/// The client against a real `synup serve` in the same process: every route
/// the executor uses, in the order it uses them, and the errors it must tell
/// apart.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::testing::{TOKEN, TestServer};
    use crate::target::synapse::config::Origin as From;

    fn seed() -> Json {
        json!({"data_collections": [{
            "id": 41, "name": "ct",
            "file_specifications": [
                {"name": "image", "file_type": "image", "extensions": [".png"], "is_required": true, "is_primary": true}
            ],
        }]})
    }

    fn client(server: &TestServer, token: &str) -> Client {
        let creds = Credentials {
            host: server.url(),
            host_origin: From::Flag,
            token: Secret::new(token),
            token_origin: From::Flag,
        };
        Client::new(&creds, 4, 1)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn collections_storages_and_the_errors_told_apart() {
        let server = TestServer::start(seed());
        let rt = runtime();
        let c = rt.block_on(async { client(&server, TOKEN) });
        rt.block_on(async {
            let all = c.collections().await.unwrap();
            assert_eq!(all.len(), 1);
            let one = c.collection(CollectionId(41)).await.unwrap();
            assert_eq!(one["file_specifications"][0]["name"], "image");
            assert_eq!(
                c.collection(CollectionId(99)).await.unwrap_err().status(),
                Some(404)
            );
            assert!(c.default_storage().await.unwrap().is_some());
            assert!(c.units(CollectionId(41)).await.unwrap().is_empty());
        });
        let wrong = rt.block_on(async { client(&server, "not-the-token") });
        let e = rt.block_on(wrong.collections()).unwrap_err();
        assert_eq!(e.status(), Some(401), "{e}");
    }

    #[test]
    fn a_file_goes_up_through_a_presigned_url_and_a_unit_registers_once() {
        let server = TestServer::start(seed());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.png");
        std::fs::write(&file, b"\x89PNG\r\n\x1a\nunit test").unwrap();
        let size = std::fs::metadata(&file).unwrap().len();
        let sha = hex::encode(crate::source::digest::sha1_file(&file).unwrap());
        let rt = runtime();
        let c = rt.block_on(async { client(&server, TOKEN) });
        rt.block_on(async {
            assert!(c.verify_checksums(&[&sha]).await.unwrap().is_empty());
            let urls = c
                .presign(&[UploadRequest {
                    filename: "a.png",
                    size,
                    content_type: Some("image/png"),
                }])
                .await
                .unwrap();
            let url = urls[0]["presigned_url"].as_str().expect("an upload URL");
            c.put(url, Origin::Local(&file), 0, size, Some("image/png"), None)
                .await
                .unwrap();
            let confirmed = c
                .confirm(vec![json!({"file_key": urls[0]["file_key"], "checksum": sha, "size": size})])
                .await
                .unwrap();
            assert_eq!(confirmed.len(), 1, "{confirmed:?}");
            assert!(c.verify_checksums(&[&sha]).await.unwrap().contains(&sha));
            let unit = json!({"data_collection": 41, "files": {"image": {"checksum": sha, "path": "a.png"}}, "meta": {"k": "u1"}});
            let created = c.create_units(std::slice::from_ref(&unit)).await.unwrap();
            assert_eq!(created.len(), 1);
            let listed = c.units(CollectionId(41)).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0]["meta"]["k"], "u1");
        });
    }
}
