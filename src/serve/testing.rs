//! An in-process `synup serve` for unit tests: started on a free port on
//! 127.0.0.1, ready when `start` returns, stopped (and its thread joined) when
//! dropped, even if the test panics.

use std::net::SocketAddr;

use super::{ServeOptions, listen};

pub(crate) const TOKEN: &str = "unit-test-token";

pub(crate) struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _data: tempfile::TempDir,
}

impl TestServer {
    /// A server whose catalog is seeded with `seed` (the `--seed` format).
    pub(crate) fn start(seed: serde_json::Value) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let seed_path = data.path().join("seed.json");
        std::fs::write(&seed_path, seed.to_string()).expect("seed written");
        let opts = ServeOptions {
            data: data.path().join("data"),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            token: TOKEN.to_owned(),
            seed: Some(seed_path),
            faults: Default::default(),
            multipart_threshold: 64 << 20,
            part_size: 8 << 20,
            max_file_size: 1 << 30,
            upload_ttl: std::time::Duration::from_secs(3600),
            limits: listen::Limits::default(),
            request_log: None,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let failed = ready_tx.clone();
            let result = rt.block_on(super::serve_until(
                opts,
                move |addr| {
                    let _ = ready_tx.send(Ok(addr));
                },
                async {
                    let _ = stopped.await;
                },
            ));
            if let Err(e) = result {
                let _ = failed.send(Err(e.to_string()));
            }
        });
        let addr = ready_rx
            .recv()
            .expect("the server thread reports")
            .unwrap_or_else(|e| panic!("the test server did not start: {e}"));
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            _data: data,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
