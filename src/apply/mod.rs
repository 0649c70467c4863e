//! Apply: execute a plan against a target, journaled and resumable.
//!
//! `saved`, `integrity` and `staleness` decide whether a saved plan may run;
//! `target` opens the recipe's target; `execute` is the one executor, which
//! drives a target's writer (`local`, `synapse`), emits
//! [`events::ApplyEvent`]s, records progress in `journal` under `.synup/`
//! and ends with a `report`.

pub mod deferred;
pub mod events;
pub mod execute;
pub mod integrity;
pub mod job;
pub mod journal;
pub mod local;
mod occurrences;
pub mod report;
pub mod saved;
pub mod shard;
pub mod staleness;
pub mod status;
pub mod synapse;
pub mod target;

pub use events::{ApplyEvent, ApplyObserver, Silent};
pub use execute::{ApplyError, ApplySettings, CrashPoint};
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

/// Tells the observer what the plan's units to create hold, read a unit at
/// a time; returns where each of their files is met first
/// ([`occurrences::Occurrences`], sorted within `spill`'s budget).
pub(crate) fn announce(
    observer: &dyn ApplyObserver,
    plan: &crate::plan::Plan,
    spill: &crate::spill::SpillArea,
) -> std::io::Result<occurrences::Occurrences> {
    use std::collections::BTreeMap;
    // Files planned with `checksum: apply`, by identity (few: remote roots).
    let mut deferred: BTreeMap<String, u64> = BTreeMap::new();
    let mut finder = occurrences::Occurrences::finder(spill);
    for unit in plan.units.with_action(crate::plan::Action::Create) {
        let unit = unit?;
        for f in unit.files.values().filter(|f| f.sha1.is_none()) {
            deferred.insert(f.identity(), f.size);
        }
        for (f, sha1) in occurrences::counted(unit.files.values()) {
            finder.push(occurrences::content_of(sha1), f.size)?;
        }
    }
    let (found, distinct) = finder.finish()?;
    observer.on(&ApplyEvent::Started {
        units: plan.units.count(crate::plan::Action::Create) as u64,
        files: distinct.files + deferred.len() as u64,
        bytes: distinct.bytes + deferred.values().sum::<u64>(),
    });
    Ok(found)
}

/// A name for one apply run: its start time and process id.
pub(crate) fn new_apply_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id()
    )
}

/// What every executor does first, whatever the target: journal the run's
/// start, begin its report, and tell the observer what there is to create.
pub(crate) struct Begun {
    pub journal: journal::Journal,
    /// What earlier runs of this journal recorded.
    pub previous: journal::JournalState,
    pub report: ApplyReport,
    /// Where each file with a known SHA-1 is met first.
    pub occurrences: occurrences::Occurrences,
}

pub(crate) fn begin_run(
    plan: &crate::plan::Plan,
    apply_id: &str,
    journal_path: &std::path::Path,
    target: report::ReportTarget,
    observer: &dyn ApplyObserver,
    spill: &crate::spill::SpillArea,
) -> Result<Begun, execute::ApplyError> {
    let (mut journal, previous) = journal::Journal::open(journal_path)?;
    journal.append(&[journal::Record::Start {
        apply: apply_id.to_owned(),
        plan_hash: plan.plan_hash.clone(),
    }])?;
    let report = ApplyReport::begin(plan, target, apply_id.to_owned());
    let occurrences = announce(observer, plan, spill).map_err(execute::ApplyError::Units)?;
    Ok(Begun {
        journal,
        previous,
        report,
        occurrences,
    })
}

/// A recipe for apply's tests: `n` units under `dir/data`, each an image of
/// its own and a label every unit shares, on a local target.
#[cfg(test)]
pub(crate) fn test_recipe(
    dir: &std::path::Path,
    n: usize,
) -> (crate::recipe::LoadedRecipe, crate::recipe::ResolvedRecipe) {
    for i in 0..n {
        let u = dir.join(format!("data/u{i}"));
        std::fs::create_dir_all(&u).unwrap();
        std::fs::write(u.join("scan.png"), format!("image {i}")).unwrap();
        std::fs::write(u.join("scan.json"), "{}").unwrap();
    }
    std::fs::write(
        dir.join("collection.json"),
        r#"{"name": "ct", "file_specifications": [
            {"name": "image", "file_type": "image", "extensions": [".png"], "is_required": true, "is_primary": true},
            {"name": "label", "file_type": "document", "extensions": [".json"], "is_required": true}]}"#,
    )
    .unwrap();
    let recipe = dir.join("recipe.yaml");
    std::fs::write(
        &recipe,
        "version: 1\nname: t\ntarget: {backend: local}\ncollection: {file: collection.json}\nsource: {path: data}\n",
    )
    .unwrap();
    let loaded = crate::recipe::load(recipe.to_str().unwrap()).unwrap();
    let resolved = crate::recipe::resolve::resolve(&loaded).unwrap();
    (loaded, resolved)
}
