//! `synup serve`: a Synapse-compatible API over a local catalog.
//!
//! It speaks the v1 REST API the official SDK uses (reference section 5):
//! collections, storages, presigned uploads whose URLs point back here (signed
//! and expiring), confirm, direct and chunked uploads, checksum verification,
//! data units, projects, tasks, agents, jobs and logs. The data lives in the
//! same catalog and content-addressed store as the `local` target.

mod expiry;
mod faults;
mod files;
mod http;
pub mod listen;
mod resources;
mod seed;
#[cfg(test)]
pub(crate) mod testing;
mod units;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::routing::{get, post, put};

pub use faults::Faults;

use crate::target::local::{Catalog, CatalogError, FileStore};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ServeError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot use the data folder {path}: {message}")]
    #[diagnostic(code(synup::serve::data_dir))]
    DataDir { path: String, message: String },
    #[error("seed file {path}: {message}")]
    #[diagnostic(
        code(synup::serve::seed),
        help(
            "a seed holds `data_collections`, `storages` and `projects` lists in the API's shape"
        )
    )]
    Seed { path: String, message: String },
    #[error("the access token is empty")]
    #[diagnostic(
        code(synup::serve::empty_token),
        help(
            "give a token of your own with --token (or SYNUP_SERVE_TOKEN), or leave it out for a random one"
        )
    )]
    EmptyToken,
    #[error("cannot listen on {addr}: {message}")]
    #[diagnostic(code(synup::serve::listen))]
    Listen { addr: String, message: String },
}

pub struct ServeOptions {
    pub data: PathBuf,
    pub addr: SocketAddr,
    /// The base of every URL handed out (presigned URLs, page links);
    /// `None`: `http://` and the bound address. Never the request's `Host`.
    pub public_url: Option<String>,
    pub token: String,
    pub seed: Option<PathBuf>,
    pub faults: Faults,
    /// Files larger than this get multipart URLs.
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// The largest file an upload may announce or send, in bytes.
    pub max_file_size: u64,
    /// Uploads not confirmed within this long are deleted.
    pub upload_ttl: std::time::Duration,
    pub limits: listen::Limits,
    pub request_log: Option<listen::RequestLog>,
}

/// Shared by every handler.
pub struct AppState {
    catalog: Mutex<Catalog>,
    store: FileStore,
    dir: PathBuf,
    token: String,
    signing_key: Vec<u8>,
    faults: RwLock<Faults>,
    injected: faults::Injected,
    multipart_threshold: u64,
    part_size: u64,
    max_file_size: u64,
    /// Set once the listener is bound.
    public_url: std::sync::OnceLock<String>,
    rules: Mutex<HashMap<i64, Arc<units::CollectionRules>>>,
}

impl AppState {
    fn catalog(&self) -> std::sync::MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn uploads_dir(&self) -> PathBuf {
        self.dir.join("uploads")
    }
    /// Runs catalog or disk work on the blocking pool, so a slow request never
    /// stalls the threads that accept and answer the others.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&AppState) -> T + Send + 'static,
    ) -> Result<T, http::ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || work(&state))
            .await
            .map_err(http::ApiError::internal)
    }
    /// The base of URLs handed out (SPEC 5: configured, never from `Host`).
    fn public_url(&self) -> &str {
        self.public_url
            .get()
            .map_or("http://127.0.0.1", String::as_str)
    }
}

/// Opens the data folder, applies the seed, binds; calls `ready` with the bound
/// address once connections will be served, then serves until ctrl-c.
pub async fn serve(opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    serve_until(opts, ready, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// [`serve`], until `shutdown` completes (tests stop their server this way).
pub async fn serve_until(
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if opts.token.trim().is_empty() {
        return Err(ServeError::EmptyToken);
    }
    let state = Arc::new(open_state(&opts)?);
    if let Some(seed) = &opts.seed {
        seed::apply(&state, seed)?;
    }
    seed::ensure_default_storage(&state)?;
    faults::install_panic_hook();
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|e| ServeError::Listen {
            addr: opts.addr.to_string(),
            message: e.to_string(),
        })?;
    let bound = listener.local_addr().map_err(|e| ServeError::Listen {
        addr: opts.addr.to_string(),
        message: e.to_string(),
    })?;
    let public = opts
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    let _ = state
        .public_url
        .set(public.trim_end_matches('/').to_owned());
    tokio::spawn(expiry::sweep_forever(state.clone(), opts.upload_ttl));
    ready(bound);
    let app = listen::layered(router(state), opts.limits, opts.request_log.clone());
    listen::serve(listener, app, opts.limits, shutdown)
        .await
        .map_err(|e| ServeError::Listen {
            addr: bound.to_string(),
            message: e.to_string(),
        })
}

fn open_state(opts: &ServeOptions) -> Result<AppState, ServeError> {
    let dir_err = |e: std::io::Error| ServeError::DataDir {
        path: opts.data.display().to_string(),
        message: e.to_string(),
    };
    if !opts.data.exists() {
        // Only its owner needs the catalog, the store and the signing key.
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&opts.data)
            .map_err(dir_err)?;
    }
    let catalog = Catalog::open(&opts.data)?;
    let store = FileStore::open(&opts.data).map_err(dir_err)?;
    store.clean_tmp();
    for sub in ["uploads", "chunked"] {
        std::fs::create_dir_all(opts.data.join(sub)).map_err(dir_err)?;
    }
    Ok(AppState {
        catalog: Mutex::new(catalog),
        store,
        signing_key: signing_key(&opts.data).map_err(dir_err)?,
        dir: opts.data.clone(),
        token: opts.token.clone(),
        faults: RwLock::new(opts.faults.clone()),
        injected: faults::Injected::default(),
        multipart_threshold: opts.multipart_threshold,
        part_size: opts.part_size.max(1),
        max_file_size: opts.max_file_size,
        public_url: std::sync::OnceLock::new(),
        rules: Mutex::new(HashMap::new()),
    })
}

/// The key presigned URLs are signed with; kept in the data folder (mode
/// 0600) so URLs issued before a restart stay valid after it.
fn signing_key(dir: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("signing.key");
    match std::fs::read(&path) {
        Ok(k) if k.len() >= 32 => {
            // A key left readable by an older version is locked down.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            Ok(k)
        }
        _ => {
            let key = secure_random::<32>()?.to_vec();
            crate::fs_write::write(&path, crate::fs_write::Access::Private, &key)
                .map_err(std::io::Error::other)?;
            Ok(key)
        }
    }
}

/// `N` bytes from the OS's secure random source (getrandom(2)).
pub fn secure_random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    let mut filled = 0;
    while filled < N {
        filled +=
            rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty())
                .map_err(std::io::Error::from)?;
    }
    Ok(buf)
}

/// A random access token (40 hex digits), for when `--token` is not given.
pub fn random_token() -> std::io::Result<String> {
    Ok(hex::encode(secure_random::<20>()?))
}

/// Request bodies are bounded per route (SPEC 5): JSON requests by what the
/// API needs, uploads by the largest chunk a client sends. Presigned `PUT`s
/// stream to disk and are bounded by `--max-file-size` as they arrive.
mod body_limits {
    /// Most JSON requests: a page of presign or confirm items, a task batch.
    pub(super) const JSON: usize = 4 << 20;
    /// `POST data_units/`: up to 1,000 units with their meta.
    pub(super) const UNITS: usize = 32 << 20;
    /// A chunked-upload chunk (the SDK sends 50 MiB) or a direct upload.
    pub(super) const CHUNK: usize = 64 << 20;
}

fn router(state: Arc<AppState>) -> Router {
    use axum::extract::DefaultBodyLimit;
    let chunk_limit = body_limits::CHUNK
        .min(usize::try_from(state.max_file_size.saturating_add(1 << 20)).unwrap_or(usize::MAX));
    let api = Router::new()
        .route("/agents/", get(resources::agents))
        .route("/data_collections/", get(resources::collections))
        .route("/data_collections/{id}/", get(resources::collection))
        .route("/storages/", get(resources::storages))
        .route("/storages/{id}/", get(resources::storage))
        .route("/storages/{id}/session/", post(resources::storage_session))
        .route("/projects/{id}/", get(resources::project))
        .route("/tasks/", post(resources::create_tasks))
        .route("/jobs/{id}/", axum::routing::patch(resources::patch_job))
        .route("/logs/", post(resources::post_logs))
        .route(
            "/data_files/",
            post(files::create_data_file).layer(DefaultBodyLimit::max(chunk_limit)),
        )
        .route(
            "/data_files/presigned_upload/upload/",
            post(files::presigned_upload),
        )
        .route(
            "/data_files/presigned_upload/confirm_upload/",
            post(files::confirm_upload),
        )
        .route(
            "/data_files/verify_checksums/",
            post(files::verify_checksums),
        )
        .route(
            "/chunked_upload/",
            put(files::chunk_put_new)
                .post(files::chunk_finish_empty)
                .layer(DefaultBodyLimit::max(chunk_limit)),
        )
        .route(
            "/chunked_upload/{id}/",
            put(files::chunk_put)
                .post(files::chunk_finish)
                .get(files::chunk_get)
                .layer(DefaultBodyLimit::max(chunk_limit)),
        )
        .route(
            "/data_units/",
            get(units::list)
                .post(units::create)
                .layer(DefaultBodyLimit::max(body_limits::UNITS)),
        )
        .route("/data_units/{id}/", get(units::detail))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::require_token,
        ));
    // Tests turn faults on and off here; this route never fails by itself.
    let admin = Router::new()
        .route(
            "/_admin/faults",
            get(resources::get_faults).put(resources::put_faults),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::require_token,
        ));
    // Presigned URLs carry their own signature instead of a token; their
    // bodies stream to disk, bounded by --max-file-size in the handler.
    let storage = Router::new()
        .route("/_storage/uploads/{id}", put(files::storage_put))
        .route("/_storage/files/{checksum}", get(files::storage_get));
    api.merge(storage)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            faults::inject,
        ))
        .merge(admin)
        .layer(DefaultBodyLimit::max(body_limits::JSON))
        .with_state(state)
}
