//! The one tokio runtime synup's I/O runs on: remote sources, the Synapse
//! client, the Ray client. Sync callers block on it; it starts on first use
//! and [`shutdown`] stops it at the end of a command, which drops the
//! connections it still holds (for sftp, that closes the ssh master processes).
//! `synup serve` is a server process and runs its own.

static RUNTIME: std::sync::Mutex<Option<tokio::runtime::Runtime>> = std::sync::Mutex::new(None);

/// A handle on the runtime, started on first use.
pub fn handle() -> tokio::runtime::Handle {
    let mut rt = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    rt.get_or_insert_with(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("synup-io")
            .enable_all()
            .build()
            // Only fails when no thread can be started: nothing could run.
            .expect("the I/O runtime starts")
    })
    .handle()
    .clone()
}

/// Runs `f` to completion on the runtime, from a thread outside it.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    handle().block_on(f)
}

/// Stops the runtime, dropping every connection it holds.
pub fn shutdown() {
    let rt = RUNTIME.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(rt) = rt {
        rt.shutdown_timeout(std::time::Duration::from_secs(2));
    }
}
