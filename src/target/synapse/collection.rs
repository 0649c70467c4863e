//! What a recipe with a synapse target needs from the backend before it can
//! be resolved: the data collection (its file specifications and schema), and
//! the storage that storage-relative source paths live in.

use serde_json::Value as Json;

use super::{Session, SynapseError};
use crate::recipe::LoadedRecipe;
use crate::recipe::resolve::{RemoteCollection, StorageInfo, looks_storage_relative};
use crate::target::{CollectionId, StorageId};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CollectionError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Backend(#[from] SynapseError),
    #[error("target.storage {id} is not usable on {host}: {source}")]
    #[diagnostic(
        code(synup::target::synapse::storage_unusable),
        help("`synup storages` lists the storages this token can use")
    )]
    StorageUnusable {
        id: StorageId,
        host: String,
        source: SynapseError,
    },
    /// Askable on a terminal: which storage to use.
    #[error(
        "the backend lists no default storage for storage-relative paths: set `target.storage` in the recipe (`synup storages` lists them)"
    )]
    #[diagnostic(code(synup::target::synapse::no_default_storage))]
    NoDefaultStorage,
    #[error("cannot find the default storage: {0}")]
    #[diagnostic(code(synup::target::synapse::storage))]
    DefaultStorage(SynapseError),
    #[error("storage {id}: {source}")]
    #[diagnostic(code(synup::target::synapse::storage))]
    Storage { id: StorageId, source: SynapseError },
}

/// Fetches collection `id` and, when `storage_wanted`, the storage (`storage`
/// or the backend's default) with its configuration.
pub fn fetch(
    session: &Session,
    id: CollectionId,
    storage: Option<StorageId>,
    storage_wanted: bool,
) -> Result<RemoteCollection, CollectionError> {
    let client = &session.client;
    let json = session.block_on(client.collection(id))?;
    // A storage named in the recipe must exist (it resolves storage-relative paths).
    if let Some(storage) = storage {
        session
            .block_on(client.storage(storage))
            .map_err(|source| CollectionError::StorageUnusable {
                id: storage,
                host: client.host().to_owned(),
                source,
            })?;
    }
    let storage = match storage_wanted {
        true => Some(storage_info(session, storage)?),
        false => None,
    };
    Ok(RemoteCollection {
        origin: format!("data collection {id} on {}", client.host()),
        json,
        storage,
    })
}

/// Whether a source or asset path may be storage-relative: it looks relative
/// and is not a folder beside the recipe (so the target's storage is needed).
pub fn needs_storage(loaded: &LoadedRecipe) -> bool {
    let r = &loaded.recipe;
    let mut paths = r.source.iter().map(|s| s.path.as_str()).chain(
        r.assets
            .iter()
            .flat_map(|a| a.values().map(|x| x.path.as_str())),
    );
    paths.any(|p| looks_storage_relative(p) && !loaded.dir.join(p).exists())
}

/// The storage `id` (else the default) with its configuration:
/// `POST storages/{id}/session/`, falling back to
/// `GET storages/{id}/?with_configuration=true` on 404/405, as the SDK does.
pub fn storage_info(
    session: &Session,
    id: Option<StorageId>,
) -> Result<StorageInfo, CollectionError> {
    let client = &session.client;
    let id = match id {
        Some(id) => id,
        None => match session.block_on(client.default_storage()) {
            Ok(Some(s)) => match s.get("id").and_then(Json::as_u64) {
                Some(id) => StorageId(id),
                None => {
                    return Err(CollectionError::DefaultStorage(SynapseError::Protocol {
                        path: "storages/".into(),
                        message: "the default storage has no numeric `id`".into(),
                    }));
                }
            },
            Ok(None) => return Err(CollectionError::NoDefaultStorage),
            Err(e) => return Err(CollectionError::DefaultStorage(e)),
        },
    };
    let info = match session.block_on(client.storage_session(id)) {
        Ok(s) => s,
        Err(e) if matches!(e.status(), Some(404 | 405)) => session
            .block_on(client.get(&format!("storages/{id}/?with_configuration=true")))
            .map_err(|source| CollectionError::Storage { id, source })?,
        Err(source) => return Err(CollectionError::Storage { id, source }),
    };
    Ok(StorageInfo {
        id,
        provider: info
            .get("provider")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
        configuration: info.get("configuration").cloned().unwrap_or_default(),
    })
}
