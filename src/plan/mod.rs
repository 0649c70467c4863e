//! Planning: compile a resolved recipe into a stage graph, run it, and render
//! the resulting [`Plan`] for people (text) and machines (JSON).

pub mod build;
pub mod engine;
mod errors;
pub mod explain;
pub mod graph;
pub mod markdown;
pub mod model;
pub mod render;
pub mod sensitive;
mod steps;
pub mod units;

pub use build::{PlanOptions, PlanOutcome, PlanStats, build_plan};
pub use graph::StageGraph;
pub use model::{Action, Plan, PlannedUnit};
pub use units::{UnitList, UnitListBuilder};
