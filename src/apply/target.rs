//! A recipe's target as one interface: what the planner diffs against
//! ([`TargetView`]) and what apply writes into, with a local and a Synapse
//! implementation chosen once from the recipe.

use std::path::PathBuf;

use super::events::ApplyObserver;
use super::execute::{ApplyError, ApplySettings, ApplyTarget};
use super::remote::RemoteTarget;
use super::report::ApplyReport;
use crate::plan::Plan;
use crate::recipe::{LoadedRecipe, ResolvedRecipe};
use crate::source::Roots;
use crate::target::synapse::{Session, SynapseView};
use crate::target::{TargetView, local::LocalView};

/// A target a plan is made against and applied to.
pub trait Target {
    /// Its current state, for the planner.
    fn view(&self) -> Result<Box<dyn TargetView + '_>, ViewError>;
    /// Executes the plan's creates, journaled and resumable; events go to `observer`.
    fn apply(
        &self,
        plan: &Plan,
        settings: &ApplySettings,
        observer: &dyn ApplyObserver,
    ) -> Result<ApplyReport, ApplyError>;
}

/// Why a target's current state could not be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ViewError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Local(#[from] crate::target::local::CatalogError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Synapse(#[from] crate::target::synapse::SynapseError),
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum OpenTargetError {
    #[error("a synapse target needs a numeric `data_collection`")]
    #[diagnostic(code(synup::target::collection_id))]
    CollectionId,
}

/// The recipe's target: the Synapse backend `session` reaches, or else the
/// local catalog. `journal` is where apply records its progress.
pub fn open<'a>(
    loaded: &'a LoadedRecipe,
    resolved: &'a ResolvedRecipe,
    session: Option<&'a Session>,
    journal: PathBuf,
) -> Result<Box<dyn Target + 'a>, OpenTargetError> {
    let roots = Roots::new(
        resolved
            .mode
            .roots()
            .into_iter()
            .map(|r| (r.written.clone(), r.source.clone())),
    );
    Ok(match session {
        Some(session) => Box::new(RemoteTarget {
            session,
            collection: resolved
                .synapse_collection
                .ok_or(OpenTargetError::CollectionId)?,
            key_field: resolved.key_field.as_deref(),
            groups: &loaded.recipe.target.groups,
            recipe_dir: &loaded.dir,
            journal,
            roots,
        }),
        None => Box::new(LocalTarget {
            apply: ApplyTarget {
                recipe_dir: &loaded.dir,
                target_dir: &resolved.target_path,
                collection: &resolved.data_collection,
                specs: &resolved.collection.specs,
                meta_schema: resolved.collection.meta_schema.as_ref().map(|m| &m.schema),
                journal,
                roots,
            },
        }),
    })
}

/// The local catalog as a [`Target`].
struct LocalTarget<'a> {
    apply: ApplyTarget<'a>,
}

impl Target for LocalTarget<'_> {
    fn view(&self) -> Result<Box<dyn TargetView + '_>, ViewError> {
        let a = &self.apply;
        match LocalView::open(a.target_dir, a.collection, a.specs) {
            Ok(v) => Ok(Box::new(v)),
            Err(e) => Err(ViewError::Local(e)),
        }
    }
    fn apply(
        &self,
        plan: &Plan,
        settings: &ApplySettings,
        observer: &dyn ApplyObserver,
    ) -> Result<ApplyReport, ApplyError> {
        super::execute(plan, &self.apply, settings, observer)
    }
}

impl Target for RemoteTarget<'_> {
    fn view(&self) -> Result<Box<dyn TargetView + '_>, ViewError> {
        match SynapseView::open(self.session, self.collection, self.key_field) {
            Ok(v) => Ok(Box::new(v)),
            Err(e) => Err(ViewError::Synapse(e)),
        }
    }
    fn apply(
        &self,
        plan: &Plan,
        settings: &ApplySettings,
        observer: &dyn ApplyObserver,
    ) -> Result<ApplyReport, ApplyError> {
        super::remote::execute_remote(plan, self, settings, observer)
    }
}
