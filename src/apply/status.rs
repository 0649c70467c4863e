//! `synup status`: what a recipe's target holds and what its applies did.
//! The local catalog records every apply; for a Synapse collection, the
//! backend counts the units and this recipe's journal tells what it applied.

use serde_json::{Value as Json, json};

use crate::recipe::{LoadedRecipe, ResolvedRecipe};
use crate::target::local::{ApplyRecord, Catalog, CatalogError, TargetLock};
use crate::target::synapse::{Session, SynapseError};

/// Applies shown, newest first.
const SHOWN_APPLIES: usize = 10;

pub enum Status {
    Local(LocalStatus),
    Synapse(SynapseStatus),
}

pub struct LocalStatus {
    pub recipe: String,
    /// The target folder as the recipe writes it.
    pub target: String,
    pub data_collection: String,
    /// `None` until the first apply creates the catalog or the collection.
    pub contents: Option<LocalContents>,
    pub journal: String,
}

pub struct LocalContents {
    pub units: u64,
    /// Files units reference that the store lacks: an invariant that must
    /// never break, shown so a damaged target is noticed.
    pub missing_files: usize,
    pub applies: Vec<ApplyRecord>,
}

pub struct SynapseStatus {
    pub recipe: String,
    pub host: String,
    pub data_collection: String,
    /// As the backend counts them.
    pub units: Json,
    pub journal: String,
    pub journaled_units: usize,
    pub journaled_files: usize,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StatusError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Journal(#[from] super::journal::JournalError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Synapse(#[from] SynapseError),
    #[error("a synapse target needs a numeric `data_collection`")]
    #[diagnostic(code(synup::target::collection_id))]
    CollectionId,
}

/// The status of the recipe's target: the local catalog, or the Synapse
/// collection `session` reaches.
pub fn status(
    loaded: &LoadedRecipe,
    resolved: &ResolvedRecipe,
    session: Option<&Session>,
) -> Result<Status, StatusError> {
    match session {
        Some(session) => synapse(loaded, resolved, session).map(Status::Synapse),
        None => local(loaded, resolved).map(Status::Local),
    }
}

fn local(loaded: &LoadedRecipe, resolved: &ResolvedRecipe) -> Result<LocalStatus, StatusError> {
    let mut status = LocalStatus {
        recipe: resolved.name.clone(),
        target: loaded.recipe.target.path_or_default().to_owned(),
        data_collection: resolved.data_collection.clone(),
        contents: None,
        journal: loaded.state_dir().join("journal").display().to_string(),
    };
    let Some(catalog) = Catalog::open_existing(&resolved.target_path)? else {
        // Nothing applied yet: name the folder where the catalog will be.
        status.target = resolved.target_path.display().to_string();
        return Ok(status);
    };
    let Some(id) = catalog.find_collection(&resolved.data_collection)? else {
        return Ok(status);
    };
    let mut applies = catalog.applies(&resolved.name, SHOWN_APPLIES)?;
    // "running" is what the apply wrote when it started; only the OS lock
    // it holds while alive tells a running apply from a killed one.
    if applies.iter().any(|a| a.status == "running")
        && !TargetLock::is_held(&resolved.target_path).unwrap_or(true)
    {
        for a in applies.iter_mut().filter(|a| a.status == "running") {
            a.status = "interrupted".to_owned();
        }
    }
    status.contents = Some(LocalContents {
        units: catalog.count_units(id)?,
        missing_files: catalog.missing_store_files()?.len(),
        applies,
    });
    Ok(status)
}

fn synapse(
    loaded: &LoadedRecipe,
    resolved: &ResolvedRecipe,
    session: &Session,
) -> Result<SynapseStatus, StatusError> {
    let path = super::journal::path_for(
        &loaded.state_dir(),
        &resolved.name,
        &resolved.data_collection,
    );
    let (journal, _) = super::journal::read(&path)?;
    let id = resolved
        .synapse_collection
        .ok_or(StatusError::CollectionId)?;
    let page = session.block_on(
        session
            .client
            .get(&format!("data_units/?data_collection={id}&page_size=1")),
    )?;
    Ok(SynapseStatus {
        recipe: resolved.name.clone(),
        host: session.client.host().to_owned(),
        data_collection: resolved.data_collection.clone(),
        units: page.get("count").cloned().unwrap_or(Json::Null),
        journal: path.display().to_string(),
        journaled_units: journal.units.len(),
        journaled_files: journal.files.len(),
    })
}

impl Status {
    /// `synup status --format json`.
    pub fn to_json(&self) -> Json {
        match self {
            Status::Local(s) => match &s.contents {
                None => json!({
                    "format_version": 1,
                    "recipe": s.recipe,
                    "target": s.target,
                    "data_collection": s.data_collection,
                    "exists": false,
                    "units": 0,
                    "applies": [],
                }),
                Some(c) => json!({
                    "format_version": 1,
                    "recipe": s.recipe,
                    "target": s.target,
                    "data_collection": s.data_collection,
                    "exists": true,
                    "units": c.units,
                    "missing_files": c.missing_files,
                    "journal": s.journal,
                    "applies": c.applies,
                }),
            },
            Status::Synapse(s) => json!({
                "format_version": 1,
                "recipe": s.recipe,
                "target": s.host,
                "backend": "synapse",
                "data_collection": s.data_collection,
                "units": s.units,
                "journal": s.journal,
                "journaled_units": s.journaled_units,
                "journaled_files": s.journaled_files,
            }),
        }
    }
}
