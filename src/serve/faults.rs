//! Fault injection, so clients can be tested against failures a healthy server
//! never produces: errors, latency, rate limiting, dropped connections and
//! responses lost after the work was done.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;

/// What to inject; every rate is a probability per request (0.0–1.0).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Answer 503 before doing anything.
    pub error_rate: f64,
    /// Wait a random time up to this many milliseconds before answering.
    pub latency_ms: u64,
    /// Answer 429 with `Retry-After: retry_after_s`.
    pub rate_limit_rate: f64,
    pub retry_after_s: u64,
    /// Drop the connection halfway through receiving an upload (PUT).
    pub drop_rate: f64,
    /// Do the work of a POST, then drop the connection before answering.
    pub lost_response_rate: f64,
}

impl Faults {
    pub fn is_quiet(&self) -> bool {
        *self == Self::default()
    }
}

/// How many faults were injected, by kind (tests check faults really happened).
#[derive(Debug, Default)]
pub(super) struct Injected {
    pub errors: std::sync::atomic::AtomicU64,
    pub rate_limited: std::sync::atomic::AtomicU64,
    pub dropped: std::sync::atomic::AtomicU64,
    pub lost: std::sync::atomic::AtomicU64,
}

impl Injected {
    pub(super) fn count(c: &std::sync::atomic::AtomicU64) {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    pub(super) fn snapshot(&self) -> serde_json::Value {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        serde_json::json!({"errors": get(&self.errors), "rate_limited": get(&self.rate_limited),
                           "dropped": get(&self.dropped), "lost": get(&self.lost)})
    }
}

/// The payload of the panic that drops a connection; the panic hook stays quiet about it.
pub(super) const DROP_PANIC: &str = "synup serve: injected connection drop";

/// Drops the connection this request came on: the handler's task unwinds and
/// the server closes the socket without answering.
pub(super) fn drop_connection() -> ! {
    std::panic::panic_any(DROP_PANIC)
}

/// Silences the injected drops and keeps every other panic loud.
pub(super) fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() == Some(&DROP_PANIC) {
            return;
        }
        previous(info);
    }));
}

fn roll(p: f64) -> bool {
    p > 0.0 && fastrand::f64() < p
}

pub(super) async fn inject(
    State(state): State<std::sync::Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let faults = state.faults.read().map(|f| f.clone()).unwrap_or_default();
    if faults.is_quiet() {
        return next.run(req).await;
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=faults.latency_ms))).await;
    }
    if roll(faults.error_rate) {
        Injected::count(&state.injected.errors);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"detail": "injected fault: service unavailable"})),
        )
            .into_response();
    }
    if roll(faults.rate_limit_rate) {
        Injected::count(&state.injected.rate_limited);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, faults.retry_after_s.to_string())],
            axum::Json(serde_json::json!({"detail": "injected fault: too many requests"})),
        )
            .into_response();
    }
    let lose = req.method() == Method::POST && roll(faults.lost_response_rate);
    let response = next.run(req).await;
    if lose && response.status().is_success() {
        Injected::count(&state.injected.lost);
        drop_connection();
    }
    response
}
