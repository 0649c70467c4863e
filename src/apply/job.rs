//! What `synup apply` runs, decided before anything is written: a saved plan
//! verified against a fresh one (or the fresh plan of a recipe), sliced to its
//! shard, and whether the recipe's policy on invalid units lets it run.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use super::saved::{self, SavedPlanError};
use super::shard::Shard;
use crate::plan::{Action, Plan, PlanOutcome};
use crate::recipe::model::InvalidUnits;

/// Whether a shard of `saved` can verify its slice alone: not when the plan
/// masks a secret (a masked key is matched by position, in the whole plan).
fn verifies_slice(saved: &Plan) -> bool {
    saved.sensitive.is_empty()
}

fn units_error(source: std::io::Error) -> SavedPlanError {
    SavedPlanError::Units { source }
}

/// A plan ready to run.
pub struct Job {
    /// What runs, with real values (only its shard's units to create).
    pub plan: Plan,
    /// The plan's text (secrets masked) to show first, when it was made from
    /// the recipe just now; a saved plan was shown when it was made.
    pub shown: Option<String>,
    pub shard: Option<Shard>,
    /// Where the run records its progress.
    pub journal: PathBuf,
}

impl Job {
    /// `arg` names a saved plan (`saved`) or the recipe `fresh` was planned
    /// from; `journal` is the recipe's unsharded journal.
    pub fn new(
        arg: &str,
        saved: Option<Plan>,
        fresh: PlanOutcome,
        shard: Option<Shard>,
        journal: PathBuf,
    ) -> Result<Self, SavedPlanError> {
        let sliced = shard.is_some() && saved.as_ref().is_some_and(verifies_slice);
        let (plan, shown) = match (saved, shard) {
            (Some(saved), Some(s)) if sliced => (
                saved::verify_slice(arg, &saved, s.slice(&saved).map_err(units_error)?, fresh)?,
                None,
            ),
            (Some(saved), _) => (saved::verify(arg, &saved, fresh)?, None),
            (None, _) => {
                let shown = crate::plan::render::render_text(&fresh.plan);
                (fresh.into_executable(), Some(shown))
            }
        };
        Ok(Self {
            plan: match shard {
                Some(s) if !sliced => s.slice(&plan).map_err(units_error)?,
                _ => plan,
            },
            shown,
            shard,
            journal: match shard {
                Some(s) => s.journal_path(&journal),
                None => journal,
            },
        })
    }

    /// The keys a shard of a saved plan re-plans to verify its slice: its
    /// own units to create, not the whole dataset. `None` (plan everything)
    /// without a shard, and when the saved plan masks a secret (a masked key
    /// is matched by position, which needs the whole plan).
    pub fn units_to_verify(
        saved: Option<&Plan>,
        shard: Option<Shard>,
    ) -> Result<Option<Arc<HashSet<String>>>, SavedPlanError> {
        let (Some(saved), Some(shard)) = (saved, shard) else {
            return Ok(None);
        };
        if !verifies_slice(saved) {
            return Ok(None);
        }
        let keys = shard
            .slice_units(saved)
            .map(|u| u.map(|u| u.key))
            .collect::<std::io::Result<_>>()
            .map_err(units_error)?;
        Ok(Some(Arc::new(keys)))
    }

    /// The units it creates.
    pub fn creates(&self) -> usize {
        self.plan.units.count(Action::Create)
    }

    /// How many units are invalid when the recipe says that stops the run.
    pub fn refused_for_invalid(&self, policy: InvalidUnits) -> Option<u64> {
        (self.plan.summary.invalid > 0 && policy == InvalidUnits::Fail)
            .then_some(self.plan.summary.invalid)
    }
}
