use std::path::PathBuf;

use synup::serve::{Faults, ServeOptions};

use super::exit;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Folder holding the catalog and the file store (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".synup/serve")]
    data: PathBuf,
    /// Address to listen on; port 0 picks a free one (printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// The base of every URL the server hands out (presigned URLs, page
    /// links), e.g. https://synapse.example.org [default: http:// and the
    /// listen address]. The request's Host header is never used.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// The largest file an upload may announce or send, in bytes
    /// [default: 5 TiB, S3's largest object].
    #[arg(long, value_name = "BYTES", default_value_t = 5 << 40)]
    max_file_size: u64,
    /// Connections served at once; more wait until one closes.
    #[arg(long, value_name = "N", default_value_t = 512)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers (also how long an
    /// idle kept-alive connection stays open).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    header_timeout: u64,
    /// Seconds a request body may stall before the request is abandoned.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    idle_timeout: u64,
    /// Seconds after which an upload that was never confirmed or finished
    /// is deleted.
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    upload_ttl: u64,
    /// The only access token accepted (default: a random one, printed once).
    #[arg(long, env = "SYNUP_SERVE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Collections, storages and projects to create at start (YAML or JSON).
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,
    /// Files above this many bytes get multipart upload URLs.
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    multipart_threshold: u64,
    /// Part size of multipart uploads, in bytes.
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    part_size: u64,
    /// Fault injection: share of requests answered 503.
    #[arg(long, default_value_t = 0.0)]
    fault_error_rate: f64,
    /// Fault injection: random latency up to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    fault_latency_ms: u64,
    /// Fault injection: share of requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    fault_rate_limit: f64,
    /// Fault injection: the Retry-After of injected 429s, in seconds.
    #[arg(long, default_value_t = 1)]
    fault_retry_after: u64,
    /// Fault injection: share of uploads (PUT) whose connection drops halfway.
    #[arg(long, default_value_t = 0.0)]
    fault_drop_rate: f64,
    /// Fault injection: share of POSTs done and then answered by a dropped connection.
    #[arg(long, default_value_t = 0.0)]
    fault_lost_response: f64,
}

pub(super) fn run(args: Args) -> i32 {
    let generated = args.token.is_none();
    let token = match args.token {
        Some(t) => t,
        None => match synup::serve::random_token() {
            Ok(t) => t,
            Err(e) => {
                crate::console::error(&format!(
                    "cannot read the OS's secure random source for a token: {e}"
                ));
                return exit::ERROR;
            }
        },
    };
    if let Some(url) = &args.public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        crate::console::error(&format!(
            "--public-url {url}: give an absolute http:// or https:// URL"
        ));
        return exit::ERROR;
    }
    let request_log: Option<synup::serve::listen::RequestLog> =
        (!crate::console::settings::quiet()).then(|| {
            std::sync::Arc::new(|r: &synup::serve::listen::RequestRecord| {
                crate::console::note(&r.to_string())
            }) as synup::serve::listen::RequestLog
        });
    let opts = ServeOptions {
        data: args.data,
        addr: args.addr,
        public_url: args.public_url,
        token: token.clone(),
        seed: args.seed,
        faults: Faults {
            error_rate: args.fault_error_rate,
            latency_ms: args.fault_latency_ms,
            rate_limit_rate: args.fault_rate_limit,
            retry_after_s: args.fault_retry_after,
            drop_rate: args.fault_drop_rate,
            lost_response_rate: args.fault_lost_response,
        },
        multipart_threshold: args.multipart_threshold,
        part_size: args.part_size,
        max_file_size: args.max_file_size,
        upload_ttl: std::time::Duration::from_secs(args.upload_ttl),
        limits: synup::serve::listen::Limits {
            max_connections: args.max_connections,
            header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
            idle_timeout: std::time::Duration::from_secs(args.idle_timeout.max(1)),
        },
        request_log,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            crate::console::error(&format!("cannot start the server runtime: {e}"));
            return exit::ERROR;
        }
    };
    let public_url_given = opts.public_url.is_some();
    let result = runtime.block_on(synup::serve::serve(opts, |addr| {
        // stdout, one line, flushed: scripts wait for it and read the port.
        crate::console::out(&format!("listening on http://{addr}\n"));
        if addr.ip().is_unspecified() && !public_url_given {
            crate::console::note(&format!(
                "warning: presigned URLs will point at http://{addr}, which clients cannot reach; give --public-url with the address they use"
            ));
        }
        if generated {
            crate::console::note(&format!("generated access token (shown once): {token}"));
        }
    }));
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            crate::console::report(e);
            exit::ERROR
        }
    }
}
