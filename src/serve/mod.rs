//! `synup serve`: a Synapse-compatible API over a local catalog.
//!
//! It speaks the v1 REST API the official SDK uses (reference section 5):
//! collections, storages, presigned uploads whose URLs point back here (signed
//! and expiring), confirm, direct and chunked uploads, checksum verification,
//! data units, projects, tasks, agents, jobs and logs. The data lives in the
//! same catalog and content-addressed store as the `local` target.

mod faults;
mod files;
mod http;
mod resources;
mod seed;
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
    #[error("cannot listen on {addr}: {message}")]
    #[diagnostic(code(synup::serve::listen))]
    Listen { addr: String, message: String },
}

pub struct ServeOptions {
    pub data: PathBuf,
    pub addr: SocketAddr,
    pub token: String,
    pub seed: Option<PathBuf>,
    pub faults: Faults,
    /// Files larger than this get multipart URLs.
    pub multipart_threshold: u64,
    pub part_size: u64,
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
    rules: Mutex<HashMap<i64, Arc<units::CollectionRules>>>,
}

impl AppState {
    fn catalog(&self) -> std::sync::MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn uploads_dir(&self) -> PathBuf {
        self.dir.join("uploads")
    }
}

/// Opens the data folder, applies the seed, binds; calls `ready` with the bound
/// address once connections will be served, then serves until ctrl-c.
pub async fn serve(opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
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
    ready(bound);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
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
    std::fs::create_dir_all(&opts.data).map_err(dir_err)?;
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
        rules: Mutex::new(HashMap::new()),
    })
}

/// The key presigned URLs are signed with; kept in the data folder so URLs
/// issued before a restart stay valid after it.
fn signing_key(dir: &Path) -> std::io::Result<Vec<u8>> {
    let path = dir.join("signing.key");
    match std::fs::read(&path) {
        Ok(k) if k.len() >= 32 => Ok(k),
        _ => {
            let key: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
            let tmp = dir.join("signing.key.tmp");
            std::fs::write(&tmp, &key)?;
            std::fs::rename(&tmp, &path)?;
            Ok(key)
        }
    }
}

/// A random access token (40 hex digits), for when `--token` is not given.
pub fn random_token() -> String {
    (0..20)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}

fn router(state: Arc<AppState>) -> Router {
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
        .route("/data_files/", post(files::create_data_file))
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
            put(files::chunk_put_new).post(files::chunk_finish_empty),
        )
        .route(
            "/chunked_upload/{id}/",
            put(files::chunk_put)
                .post(files::chunk_finish)
                .get(files::chunk_get),
        )
        .route("/data_units/", get(units::list).post(units::create))
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
    // Presigned URLs carry their own signature instead of a token.
    let storage = Router::new()
        .route("/_storage/uploads/{id}", put(files::storage_put))
        .route("/_storage/files/{checksum}", get(files::storage_get));
    api.merge(storage)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            faults::inject,
        ))
        .merge(admin)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}
