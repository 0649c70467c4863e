//! A recipe's target as one interface: what the planner diffs against
//! ([`TargetView`]) and what apply writes into, with a local and a Synapse
//! implementation chosen once from the recipe.

use std::path::PathBuf;

use super::events::ApplyObserver;
use super::execute::{ApplyError, ApplySettings};
use super::local::LocalTarget;
use super::report::ApplyReport;
use super::synapse::SynapseTarget;
use crate::plan::Plan;
use crate::recipe::{LoadedRecipe, ResolvedRecipe};
use crate::source::Roots;
use crate::spill::SpillArea;
use crate::target::synapse::{Session, SynapseView};
use crate::target::{TargetView, local::LocalView};

/// A target a plan is made against and applied to.
pub trait Target {
    /// Its current state, for the planner; what does not fit in the budget
    /// is sorted on disk in `spill`.
    fn view(&self, spill: &SpillArea) -> Result<Box<dyn TargetView + '_>, ViewError>;
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
    )
    .with_copies(&loaded.state_dir());
    Ok(match session {
        Some(session) => Box::new(SynapseTarget {
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
            recipe_dir: &loaded.dir,
            target_dir: &resolved.target_path,
            collection: &resolved.data_collection,
            specs: &resolved.collection.specs,
            meta_schema: resolved.collection.meta_schema.as_ref().map(|m| &m.schema),
            journal,
            roots,
        }),
    })
}

impl Target for LocalTarget<'_> {
    fn view(&self, _spill: &SpillArea) -> Result<Box<dyn TargetView + '_>, ViewError> {
        // The catalog answers lookups through its index: nothing to spill.
        match LocalView::open(self.target_dir, self.collection, self.specs) {
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
        LocalTarget::apply(self, plan, settings, observer)
    }
}

impl Target for SynapseTarget<'_> {
    fn view(&self, spill: &SpillArea) -> Result<Box<dyn TargetView + '_>, ViewError> {
        match SynapseView::open(self.session, self.collection, self.key_field, spill) {
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
        SynapseTarget::apply(self, plan, settings, observer)
    }
}

/// The local target through the same interface apply uses: plan, apply,
/// re-plan, apply again.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, PlanOptions, build_plan};

    #[test]
    fn a_second_apply_of_the_same_recipe_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // Two units; both share one label file's content.
        let (loaded, resolved) = crate::apply::test_recipe(dir.path(), 2);
        let journal = loaded.state_dir().join("journal.jsonl");
        let target = open(&loaded, &resolved, None, journal).unwrap();
        let settings = ApplySettings {
            workers: 2,
            batch_size: 1,
            retries: 0,
            project: None,
            crash_at: None,
            memory: Default::default(),
        };
        let plan_now = || {
            let spill = SpillArea::under(&loaded.state_dir(), Default::default());
            let view = target.view(&spill).unwrap();
            build_plan(&loaded, &resolved, view.as_ref(), &PlanOptions::default())
                .unwrap()
                .into_executable()
        };

        let first = plan_now();
        assert_eq!(first.summary.create, 2);
        let report = target
            .apply(&first, &settings, &super::super::Silent)
            .unwrap();
        assert_eq!((report.units.created, report.units.failed), (2, 0));
        // Three distinct contents: two images and the shared label.
        assert_eq!(report.files.uploaded, 3);

        let second = plan_now();
        assert_eq!(second.units.count(Action::Unchanged), second.units.len());
        assert_eq!(second.summary.files_to_upload, 0);
        let again = target
            .apply(&second, &settings, &super::super::Silent)
            .unwrap();
        assert_eq!((again.units.created, again.files.uploaded), (0, 0));
    }
}
