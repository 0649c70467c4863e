//! What every handler shares: auth, errors in the API's shape, the base URL
//! clients reached us on, DRF pagination and URL signing.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;

use super::AppState;

/// An error answer: `{"detail": ...}` (a message, or FastAPI-style items).
#[derive(Debug)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub detail: Json,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            detail: Json::String(message.into()),
        }
    }
    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub(super) fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
    pub(super) fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "detail": self.detail }))).into_response()
    }
}

impl From<crate::target::local::CatalogError> for ApiError {
    fn from(e: crate::target::local::CatalogError) -> Self {
        Self::internal(e)
    }
}

pub(super) type ApiResult<T> = Result<T, ApiError>;

/// The token a request presents: `Synapse-Access-Token: Token <t>` (or the bare
/// value, as v2 sends it), or `Authorization: Token <t>` with a tenant.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(v) = value("synapse-access-token") {
        return Some(v.strip_prefix("Token ").unwrap_or(v).trim());
    }
    if let (Some(v), Some(_tenant)) = (value("authorization"), value("synapse-tenant")) {
        return Some(v.strip_prefix("Token ").unwrap_or(v).trim());
    }
    None
}

pub(super) async fn require_token(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    match presented_token(req.headers()) {
        Some(t) if constant_time_eq(t.as_bytes(), state.token.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "Invalid token.").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided.",
        )
        .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The base of the URLs we hand out: the configured public URL (SPEC 5).
/// Never the request's `Host`, which any client may set: a reflected `Host`
/// would let a client make the server sign URLs that point elsewhere.
pub(super) struct Base(pub String);

impl FromRequestParts<Arc<AppState>> for Base {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        _: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Base(state.public_url().to_owned()))
    }
}

/// `?page=N&page_size=M` (default 100, at most 1000). A page that is not a
/// positive number, or lies past the end, is DRF's 404 `Invalid page.`.
pub(super) struct Page {
    pub page: u64,
    pub size: u64,
}

impl Page {
    pub(super) fn from_query(q: &std::collections::HashMap<String, String>) -> ApiResult<Self> {
        let invalid = || ApiError::new(StatusCode::NOT_FOUND, "Invalid page.");
        let page = match q.get("page") {
            None => 1,
            Some(p) => p.trim().parse::<u64>().map_err(|_| invalid())?,
        };
        let size = q
            .get("page_size")
            .and_then(|p| p.trim().parse::<u64>().ok())
            .unwrap_or(100)
            .clamp(1, 1000);
        // The offset must exist and fit the catalog's signed 64-bit integers.
        let fits = page
            .checked_sub(1)
            .and_then(|p| p.checked_mul(size))
            .is_some_and(|o| i64::try_from(o).is_ok());
        if !fits {
            return Err(invalid());
        }
        Ok(Self { page, size })
    }
    pub(super) fn offset(&self) -> u64 {
        (self.page - 1) * self.size
    }

    /// A DRF page whose `next`/`previous` keep every other query parameter;
    /// 404 for a page past the last (the first page always exists).
    pub(super) fn body(
        &self,
        base: &str,
        uri: &axum::http::Uri,
        count: u64,
        results: Vec<Json>,
    ) -> ApiResult<Json> {
        if self.page > 1 && self.offset() >= count {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "Invalid page."));
        }
        let link = |page: u64| {
            let mut query: Vec<String> = uri
                .query()
                .unwrap_or_default()
                .split('&')
                .filter(|kv| !kv.is_empty() && !kv.starts_with("page="))
                .map(str::to_owned)
                .collect();
            query.push(format!("page={page}"));
            Json::String(format!("{base}{}?{}", uri.path(), query.join("&")))
        };
        let next = if self.offset() + self.size < count {
            link(self.page + 1)
        } else {
            Json::Null
        };
        let previous = if self.page > 1 {
            link(self.page - 1)
        } else {
            Json::Null
        };
        Ok(json!({"count": count, "next": next, "previous": previous, "results": results}))
    }
}

/// Signature of a storage URL: HMAC-SHA256 over what it grants, until when.
pub(super) fn sign(key: &[u8], what: &str, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{what}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Why a storage URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Denied {
    Signature,
    Expired,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Signature => s3_error(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            ),
            Denied::Expired => {
                s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired")
            }
        }
    }
}

/// Checks a storage URL's signature and expiry; refusals answer in S3's XML shape.
pub(super) fn check_signature(
    key: &[u8],
    what: &str,
    q: &std::collections::HashMap<String, String>,
) -> Result<(), Denied> {
    let expires: i64 = q.get("expires").and_then(|e| e.parse().ok()).unwrap_or(0);
    let given = q.get("signature").map(String::as_str).unwrap_or_default();
    if !constant_time_eq(sign(key, what, expires).as_bytes(), given.as_bytes()) {
        return Err(Denied::Signature);
    }
    if expires < chrono::Utc::now().timestamp() {
        return Err(Denied::Expired);
    }
    Ok(())
}

pub(super) fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/xml")],
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        ),
    )
        .into_response()
}
