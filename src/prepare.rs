//! A recipe made ready to plan: loaded, resolved against its target's
//! collection and, for a Synapse target, with the session that reached it.
//!
//! A recipe may leave gaps a person can fill (no `data_collection`, a backend
//! without a default storage); on a terminal the caller passes a [`Gaps`]
//! that asks, elsewhere the gap is an error.

use crate::recipe::model::{Backend, CollectionRef, TargetConfig, UploadConfig};
use crate::recipe::{LoadedRecipe, RecipeErrors, ResolvedRecipe};
use crate::target::synapse::Session;
use crate::target::synapse::collection::{self, CollectionError};
use crate::target::synapse::config::{self, ConfigError, Origin};
use crate::target::{CollectionId, StorageId};

/// A recipe ready to plan.
pub struct Prepared {
    pub loaded: LoadedRecipe,
    pub resolved: ResolvedRecipe,
    /// The backend's session, for a Synapse target.
    pub session: Option<Session>,
}

/// Answers for what a recipe leaves open; `None` stops (the person
/// declined, or the asker already said why).
pub trait Gaps {
    fn data_collection(&self, session: &Session, recipe: &str) -> Option<CollectionId>;
    fn storage(&self, session: &Session, recipe: &str) -> Option<StorageId>;
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PrepareError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Recipe(#[from] RecipeErrors),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Credentials(#[from] ConfigError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Collection(#[from] CollectionError),
    /// A gap was not filled; the asker has said why.
    #[error("stopped: a question was not answered")]
    #[diagnostic(code(synup::prepare::stopped))]
    Stopped,
}

/// Opens a session to a recipe's Synapse backend with the recipe's
/// credentials (else the environment, else the saved login).
pub fn connect(target: &TargetConfig, upload: &UploadConfig) -> Result<Session, ConfigError> {
    let creds = config::resolve(
        target.host.as_deref().map(|h| (h, Origin::Recipe)),
        target.token.as_deref().map(|t| (t, Origin::Recipe)),
    )?;
    Ok(Session::new(creds, upload.workers as usize, upload.retries))
}

/// Loads the recipe at `path` and resolves it against its target: for a
/// Synapse target, the collection comes from the backend (and must match
/// the recipe's pin). Recipe mistakes are reported before any request.
pub fn prepare(path: &str, gaps: Option<&dyn Gaps>) -> Result<Prepared, PrepareError> {
    let mut loaded = crate::recipe::load(path)?;
    if loaded.recipe.target.backend != Backend::Synapse {
        let resolved = crate::recipe::resolve::resolve(&loaded).map_err(|e| loaded.errors(e))?;
        return Ok(Prepared {
            loaded,
            resolved,
            session: None,
        });
    }
    let mut session = None;
    if loaded.recipe.target.data_collection.is_none()
        && let Some(gaps) = gaps
    {
        let s = connect(&loaded.recipe.target, &loaded.recipe.upload)?;
        let id = gaps
            .data_collection(&s, path)
            .ok_or(PrepareError::Stopped)?;
        loaded.recipe.target.data_collection = Some(CollectionRef::Id(id.0));
        session = Some(s);
    }
    crate::recipe::resolve::resolve(&loaded).map_err(|e| loaded.errors(e))?;
    let Some(CollectionRef::Id(id)) = loaded.recipe.target.data_collection.clone() else {
        // Resolving says a synapse target needs a numeric collection.
        return Err(PrepareError::Stopped);
    };
    let session = match session {
        Some(s) => s,
        None => connect(&loaded.recipe.target, &loaded.recipe.upload)?,
    };
    let id = CollectionId(id);
    let wanted = collection::needs_storage(&loaded);
    let storage = loaded.recipe.target.storage.map(StorageId);
    let remote = match collection::fetch(&session, id, storage, wanted) {
        Err(CollectionError::NoDefaultStorage) if gaps.is_some() => {
            let asked = gaps
                .and_then(|g| g.storage(&session, path))
                .ok_or(PrepareError::Stopped)?;
            collection::fetch(&session, id, Some(asked), wanted)?
        }
        other => other?,
    };
    let resolved = crate::recipe::resolve::resolve_with(&loaded, Some(&remote))
        .map_err(|e| loaded.errors(e))?;
    Ok(Prepared {
        loaded,
        resolved,
        session: Some(session),
    })
}
