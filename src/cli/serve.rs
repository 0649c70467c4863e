use std::path::PathBuf;

use synup::serve::{Faults, ServeOptions};

use super::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder holding the catalog and the file store (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".synup/serve")]
    data: PathBuf,
    /// Address to listen on; port 0 picks a free one (printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
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

pub fn run(args: Args) -> i32 {
    let generated = args.token.is_none();
    let token = args.token.unwrap_or_else(synup::serve::random_token);
    let opts = ServeOptions {
        data: args.data,
        addr: args.addr,
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
    let result = runtime.block_on(synup::serve::serve(opts, |addr| {
        // stdout, one line, flushed: scripts wait for it and read the port.
        crate::console::out(&format!("listening on http://{addr}\n"));
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
