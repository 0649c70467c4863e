//! Retries with exponential backoff and jitter, and concurrency that adapts:
//! a 429 or `Retry-After` halves the number of requests in flight for that
//! endpoint and pauses it; successes grow it back one at a time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Backoff before attempt `attempt` (0-based retry count): exponential from
/// 250 ms, capped at 15 s, with jitter between half and all of it.
pub fn backoff(attempt: u32) -> Duration {
    let base = 0.25 * 2f64.powi(attempt.min(10) as i32);
    let capped = base.min(15.0);
    Duration::from_secs_f64(capped * (0.5 + fastrand::f64() * 0.5))
}

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 allows both;
/// proxies and CDNs send dates), capped at 60 s. A date in the past is no wait.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<f64>() {
        Ok(seconds) => Duration::from_secs_f64(seconds.clamp(0.0, 60.0)),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(Duration::from_secs(60)))
}

/// Statuses worth another try.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..600).contains(&status)
}

struct GateState {
    in_flight: usize,
    limit: usize,
    successes: usize,
    paused_until: Option<Instant>,
}

/// An adaptive concurrency limit for one endpoint.
pub struct Gate {
    max: usize,
    state: Mutex<GateState>,
    notify: Notify,
}

pub struct Permit<'a> {
    gate: &'a Gate,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        s.in_flight -= 1;
        drop(s);
        self.gate.notify.notify_waiters();
    }
}

impl Gate {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            max,
            state: Mutex::new(GateState {
                in_flight: 0,
                limit: max,
                successes: 0,
                paused_until: None,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let notified = self.notify.notified();
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                match s.paused_until {
                    Some(t) if t > now => Some(t - now),
                    _ => {
                        s.paused_until = None;
                        if s.in_flight < s.limit {
                            s.in_flight += 1;
                            return Permit { gate: self };
                        }
                        None
                    }
                }
            };
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => notified.await,
            }
        }
    }

    /// The endpoint said "slow down": halve the limit and pause it.
    pub fn throttled(&self, pause: Duration) {
        let mut s = self.lock();
        let before = s.limit;
        s.limit = (s.limit / 2).max(1);
        tracing::debug!(
            from = before,
            to = s.limit,
            pause_ms = pause.as_millis() as u64,
            "throttled: fewer requests in flight"
        );
        s.successes = 0;
        let until = Instant::now() + pause;
        if s.paused_until.is_none_or(|t| t < until) {
            s.paused_until = Some(until);
        }
    }

    /// Additive increase: one more slot after `limit` successes in a row.
    pub fn succeeded(&self) {
        let mut s = self.lock();
        if s.limit < self.max {
            s.successes += 1;
            if s.successes >= s.limit {
                s.successes = 0;
                s.limit += 1;
                tracing::trace!(to = s.limit, "one more request in flight");
                drop(s);
                self.notify.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let with = |v: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap());
            retry_after(&h)
        };
        assert_eq!(with("2"), Some(Duration::from_secs(2)));
        assert_eq!(with("3600"), Some(Duration::from_secs(60)));
        let soon = std::time::SystemTime::now() + Duration::from_secs(30);
        let wait = with(&httpdate::fmt_http_date(soon)).unwrap();
        assert!(
            wait > Duration::from_secs(27) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(with("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(with("soon"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(250));
        assert!(backoff(3) >= Duration::from_secs(1));
        assert!(backoff(30) <= Duration::from_secs(15));
    }

    #[test]
    fn throttling_halves_and_successes_grow_back() {
        let g = Gate::new(8);
        g.throttled(Duration::ZERO);
        assert_eq!(g.limit(), 4);
        g.throttled(Duration::ZERO);
        g.throttled(Duration::ZERO);
        g.throttled(Duration::ZERO);
        assert_eq!(g.limit(), 1);
        g.succeeded();
        assert_eq!(g.limit(), 2);
        for _ in 0..2 {
            g.succeeded();
        }
        assert_eq!(g.limit(), 3);
    }

    #[test]
    fn retry_after_is_read_and_capped() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(reqwest::header::RETRY_AFTER, "3600".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(60)));
    }
}
