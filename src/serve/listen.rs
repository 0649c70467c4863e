//! Accepting connections the way a server on a shared machine must (SPEC 5):
//! a bounded number at a time, each closed when its client stalls.
//!
//! `axum::serve` has neither: it would wait forever for the rest of a
//! half-sent request (a few hundred such clients starve everyone, no token
//! needed) and accept connections until file descriptors run out. Here:
//!
//! - at most `max_connections` are served at once; further clients wait in
//!   the kernel's backlog until one closes;
//! - a request's headers must arrive within `header_timeout`, which also
//!   closes a kept-alive connection that sends nothing for that long (hyper
//!   starts the timer whenever the connection waits for a request);
//! - a request body that stops arriving for `idle_timeout` is abandoned;
//! - every request is logged: method, path (never the query, which carries
//!   presigned signatures), status and time; never a header.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// One served request, for the request log.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub elapsed: Duration,
}

impl std::fmt::Display for RequestRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {:.1}ms",
            self.method,
            self.path,
            self.status,
            self.elapsed.as_secs_f64() * 1000.0
        )
    }
}

/// Where request records go (the binary prints them on stderr).
pub type RequestLog = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

/// Connection limits and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Adds the request log and the body idle timeout to `router`.
pub fn layered(router: Router, limits: Limits, log: Option<RequestLog>) -> Router {
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.idle_timeout,
    ));
    match log {
        Some(log) => router.layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let log = log.clone();
                async move {
                    let started = Instant::now();
                    let method = req.method().to_string();
                    let path = req.uri().path().to_owned();
                    let response: Response = next.run(req).await;
                    log(&RequestRecord {
                        method,
                        path,
                        status: response.status().as_u16(),
                        elapsed: started.elapsed(),
                    });
                    response
                }
            },
        )),
        None => router,
    }
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => return Ok(()),
            p = permits.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
        };
        let (stream, _peer): (_, SocketAddr) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors or a connection reset before accept:
                // back off briefly instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let http = http.clone();
        tokio::spawn(async move {
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
            drop(permit);
        });
    }
}
