//! Apply: execute a plan against a target, journaled and resumable.
//!
//! `staleness` decides whether a saved plan still matches its inputs; `execute`
//! does the work and emits [`events::ApplyEvent`]s; `journal` records progress
//! under `.synup/`; `report` is the end report.

pub mod deferred;
pub mod events;
pub mod execute;
pub mod integrity;
pub mod journal;
pub mod remote;
pub mod report;
pub mod saved;
pub mod shard;
pub mod staleness;
pub mod target;

pub use events::{ApplyEvent, ApplyObserver, Silent};
pub use execute::{ApplyError, ApplySettings, ApplyTarget, CrashPoint, execute};
pub use report::ApplyReport;

/// The first `shown` of `lines`, indented, and a count of the rest: how a
/// refused apply names what it found.
pub(crate) fn first_lines(lines: &[String], shown: usize) -> String {
    let mut out: Vec<String> = lines.iter().take(shown).map(|l| format!("  {l}")).collect();
    if lines.len() > shown {
        out.push(format!("  … and {} more", lines.len() - shown));
    }
    out.join("\n")
}

/// "file failed: …" for a unit some of whose files failed to reach the target,
/// `None` when all of them are there. `failed` maps a file's
/// [`identity`](crate::plan::model::PlannedFile::identity) to its reason.
pub(crate) fn failed_files_of<'a>(
    unit: &crate::plan::model::PlannedUnit,
    failed: impl Fn(&str) -> Option<&'a String>,
) -> Option<String> {
    let broken: Vec<String> = unit
        .files
        .values()
        .filter_map(|f| {
            failed(f.sha1.as_deref().unwrap_or(&f.identity())).map(|r| format!("{}: {r}", f.path))
        })
        .collect();
    (!broken.is_empty()).then(|| format!("file failed: {}", broken.join("; ")))
}

/// Tells the observer what the units to create hold; returns their files with
/// a known SHA-1 (SHA-1 → size).
pub(crate) fn announce<'a>(
    observer: &dyn ApplyObserver,
    creates: &[&'a crate::plan::model::PlannedUnit],
) -> std::collections::BTreeMap<&'a str, u64> {
    use crate::plan::model::{deferred_files, distinct_files};
    let distinct = distinct_files(creates.iter().copied());
    let deferred = deferred_files(creates.iter().copied());
    observer.on(&ApplyEvent::Started {
        units: creates.len() as u64,
        files: (distinct.len() + deferred.len()) as u64,
        bytes: distinct.values().chain(deferred.values()).sum(),
    });
    distinct
}
