//! Apply: execute a plan against a target, journaled and resumable.
//!
//! `staleness` decides whether a saved plan still matches its inputs; `execute`
//! does the work and emits [`events::ApplyEvent`]s; `journal` records progress
//! under `.synup/`; `report` is the end report.

pub mod events;
pub mod execute;
pub mod journal;
pub mod remote;
pub mod report;
pub mod staleness;

pub use events::{ApplyEvent, ApplyObserver, Silent};
pub use execute::{ApplyError, ApplySettings, ApplyTarget, CrashPoint, execute};
pub use report::ApplyReport;
