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

/// "file failed: …" for a unit some of whose files failed to reach the target,
/// `None` when all of them are there. `failed` maps a SHA-1 to its reason.
pub(crate) fn failed_files_of<'a>(
    unit: &crate::plan::model::PlannedUnit,
    failed: impl Fn(&str) -> Option<&'a String>,
) -> Option<String> {
    let broken: Vec<String> = unit
        .files
        .values()
        .filter_map(|f| {
            f.sha1
                .as_deref()
                .and_then(&failed)
                .map(|r| format!("{}: {r}", f.path))
        })
        .collect();
    (!broken.is_empty()).then(|| format!("file failed: {}", broken.join("; ")))
}
