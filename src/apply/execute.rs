//! The executor: runs the apply part of a plan against any target.
//!
//! Work goes batch by batch (`upload.batch_size` units), [`Writer::pipeline`]
//! batches at a time. For each batch: files planned with `checksum: apply`
//! are stored first, which tells their SHA-1; units that exist by now are
//! skipped (same content) or failed as conflicts (other content), never
//! duplicated; the files the target lacks are stored (a file several batches
//! share is stored once); then the units whose files all arrived are
//! registered in one request or transaction and journaled. A kill at any
//! point leaves the whole batch or none of it, plus stored files the next run
//! reuses. What differs between targets (a SQLite catalog and a content store,
//! or Synapse's presigned uploads) is behind [`Writer`]; everything the user
//! sees (events, report, journal, crash points) is decided here, once.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures_util::StreamExt;

use super::deferred::Learned;
use super::events::{ApplyEvent, ApplyObserver};
use super::journal::{Journal, JournalError, Record};
use super::occurrences::{self, Occurrences};
use super::report::{ApplyReport, ReportTarget};
pub use crate::crash::CrashPoint;
use crate::plan::UnitList;
use crate::plan::model::{Action, Plan, PlannedFile, PlannedUnit};
use crate::spill::SpillArea;
use crate::target::ExistingUnit;
use crate::target::local::CatalogError;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ApplyError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Synapse(#[from] crate::target::synapse::SynapseError),
    #[error("cannot write to the target at {path}: {message}")]
    #[diagnostic(
        code(synup::apply::target_write),
        help(
            "fix the cause (free space, permissions) and run apply again: it resumes where it stopped"
        )
    )]
    TargetWrite { path: String, message: String },
    #[error("cannot read the plan's units back from their spill file: {0}")]
    #[diagnostic(
        code(synup::apply::units_unreadable),
        help(
            "the spill folder is `.synup/spill/` (or the temporary folder for a saved plan); check the disk, or raise --memory"
        )
    )]
    Units(std::io::Error),
}

pub struct ApplySettings {
    pub workers: usize,
    pub batch_size: usize,
    /// Retries per request (remote targets).
    pub retries: u32,
    pub project: Option<crate::target::ProjectId>,
    pub crash_at: Option<CrashPoint>,
    /// What listings of the target may hold before they spill (`--memory`).
    pub memory: crate::spill::MemoryBudget,
}

impl ApplySettings {
    /// The recipe's `upload` block and `target.project`; the crash point of
    /// `SYNUP_CRASH_AT` (crash tests).
    pub fn of(recipe: &crate::recipe::model::Recipe) -> Self {
        Self {
            workers: recipe.upload.workers as usize,
            batch_size: recipe.upload.batch_size as usize,
            retries: recipe.upload.retries,
            project: recipe.target.project.map(crate::target::ProjectId),
            crash_at: CrashPoint::from_env(),
            memory: crate::spill::MemoryBudget::DEFAULT,
        }
    }
}

/// A file to put into the target, and its SHA-1 unless the plan deferred it
/// to apply (then the writer learns it while sending the bytes).
pub(crate) struct Outgoing<'p> {
    pub(crate) file: &'p PlannedFile,
    pub(crate) sha1: Option<&'p str>,
}

/// A file now in the target.
pub(crate) struct Stored {
    pub(crate) sha1: String,
    /// Bytes sent; `None` when the target turned out to hold the content.
    pub(crate) written: Option<u64>,
}

/// What registering one unit came to.
pub(crate) enum Registered {
    Created(String),
    /// The target already had it with the same content.
    Unchanged(String),
    Failed(String),
}

/// The first unit under each key of a target's lookup, as
/// [`Writer::existing`] answers.
pub(super) fn first_per_key(
    found: HashMap<String, Vec<ExistingUnit>>,
) -> HashMap<String, ExistingUnit> {
    found
        .into_iter()
        .filter_map(|(k, mut v)| (!v.is_empty()).then(|| (k, v.swap_remove(0))))
        .collect()
}

/// What a target does for the executor. Methods are async so a networked
/// target keeps several batches in flight; the local one works synchronously
/// inside them (its copies run on threads of their own).
pub(crate) trait Writer {
    /// How the report names the target.
    fn describe(&self) -> ReportTarget;
    /// Batches in flight at once.
    fn pipeline(&self) -> usize;
    /// Reads what the run needs to know of the target before its first batch.
    async fn prepare(&mut self) -> Result<(), ApplyError>;
    /// Which of `sha1s` the target holds.
    async fn holds(&self, sha1s: &[&str]) -> Result<HashSet<String>, ApplyError>;
    /// The unit the target has under each of these units' keys, if any
    /// ([`first_per_key`] of a target's lookup).
    async fn existing(
        &self,
        units: &[&PlannedUnit],
    ) -> Result<HashMap<String, ExistingUnit>, ApplyError>;
    /// Puts `files` into the target, each durable once this returns, calling
    /// `tally.file_stored()` as each arrives; a file that cannot be read or is
    /// refused gets its reason. An error no other file would escape (the
    /// target's disk is full) is returned instead.
    async fn store(
        &self,
        files: &[Outgoing<'_>],
        tally: &Tally,
    ) -> Result<Vec<Result<Stored, String>>, ApplyError>;
    /// Registers units whose files are all in place; one outcome per unit,
    /// in order, and failures of follow-up work (tasks) that fail no unit.
    async fn register(
        &self,
        units: &[&PlannedUnit],
        project: Option<crate::target::ProjectId>,
    ) -> Result<(Vec<Registered>, Vec<String>), ApplyError>;
    /// Records how the run ended, best effort.
    fn finish(&self, report: &ApplyReport);
}

/// Counts files stored in this run, for `SYNUP_CRASH_AT=files:N`.
pub(crate) struct Tally {
    stored: AtomicU64,
    /// Registrations begun and done, for the commit crash points.
    commits_begun: AtomicU64,
    commits_done: AtomicU64,
    crash_at: Option<CrashPoint>,
}

impl Tally {
    pub(crate) fn file_stored(&self) {
        let n = self.stored.fetch_add(1, Ordering::SeqCst) + 1;
        if self.crash_at == Some(CrashPoint::AfterFiles(n)) {
            crate::crash::crash_now();
        }
    }
}

/// A file some batch is storing, or has: its SHA-1, or why not.
type FileResult = Result<String, String>;

/// State the batches of one run share (one task: no locks needed).
struct Run<'a, W> {
    writer: &'a W,
    settings: &'a ApplySettings,
    observer: &'a dyn ApplyObserver,
    report: RefCell<ApplyReport>,
    journal: RefCell<Journal>,
    /// Which batch stores each file: the one that meets it first.
    occurrences: Occurrences,
    /// Files some batch is storing, or failed to; others wait for (or take)
    /// the outcome. A file met again later gets its cell when the batch that
    /// meets it first is read from the plan, so a later batch never stores
    /// it too; a stored file leaves, a failed one stays. What this holds is
    /// bounded by the batches in flight, not by the run.
    in_flight: RefCell<HashMap<String, Cell>>,
    /// SHA-1s of files planned with `checksum: apply`, as they are learned.
    learned: RefCell<Learned>,
    tally: Tally,
}

/// A batch read from the plan: its units, and the files it meets first (by
/// SHA-1), each `true` when its cell was made as it was read.
struct Batch {
    units: Vec<PlannedUnit>,
    owned: HashMap<String, bool>,
}

/// Why a batch asks the target whether it holds a file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// The batch meets it first: held means it was there before the run.
    Owned,
    /// Met first by a unit the batch skipped; another unit meets it later.
    ForLater,
    /// A file planned with `checksum: apply`, its SHA-1 now known.
    Learned,
}

/// Applies `plan` through `writer`: the one executor every target runs.
pub(crate) async fn execute<W: Writer>(
    plan: &Plan,
    mut writer: W,
    apply_id: &str,
    journal_path: &std::path::Path,
    settings: &ApplySettings,
    observer: &dyn ApplyObserver,
    spill: &SpillArea,
) -> Result<ApplyReport, ApplyError> {
    let started = Instant::now();
    let super::Begun {
        journal,
        mut previous,
        report,
        occurrences,
    } = super::begin_run(
        plan,
        apply_id,
        journal_path,
        writer.describe(),
        observer,
        spill,
    )?;
    let (mut report, mut journal, outcome) = match writer.prepare().await {
        Err(e) => (report, journal, Err(e)),
        Ok(()) => {
            let run = Run {
                writer: &writer,
                settings,
                observer,
                report: RefCell::new(report),
                journal: RefCell::new(journal),
                occurrences,
                in_flight: RefCell::new(HashMap::new()),
                learned: RefCell::new(Learned::new(std::mem::take(&mut previous.learned))),
                tally: Tally {
                    stored: AtomicU64::new(0),
                    commits_begun: AtomicU64::new(0),
                    commits_done: AtomicU64::new(0),
                    crash_at: settings.crash_at,
                },
            };
            let outcome = run.all_batches(&plan.units).await;
            (run.report.into_inner(), run.journal.into_inner(), outcome)
        }
    };
    report.close(started.elapsed(), outcome.is_err());
    writer.finish(&report);
    let _ = journal.append(&[Record::End {
        apply: apply_id.to_owned(),
        status: report.status.clone(),
    }]);
    let _ = journal.sync();
    observer.on(&ApplyEvent::Finished);
    outcome.map(|()| report)
}

impl<W: Writer> Run<'_, W> {
    /// The batches, `pipeline` at a time; the first error stops the run (the
    /// batches in flight are dropped: what they stored is reused next time).
    /// Batches are read from the plan as they are started, so only the
    /// batches in flight are held decoded.
    async fn all_batches(&self, units: &UnitList) -> Result<(), ApplyError> {
        let size = self.settings.batch_size.max(1);
        let mut creates = units.with_action(Action::Create);
        let mut seq = 0u64;
        let batches = std::iter::from_fn(move || {
            match creates
                .by_ref()
                .take(size)
                .collect::<std::io::Result<Vec<_>>>()
            {
                Ok(batch) if batch.is_empty() => None,
                Ok(units) => Some(Ok(self.read_batch(units, &mut seq))),
                Err(e) => Some(Err(ApplyError::Units(e))),
            }
        });
        let mut stream = futures_util::stream::iter(batches)
            .map(|batch| async move {
                let batch = batch?;
                let units: Vec<&PlannedUnit> = batch.units.iter().collect();
                self.batch(&units, &batch.owned).await
            })
            .buffer_unordered(self.writer.pipeline().max(1));
        tracing::debug!(
            batch_size = size,
            in_flight = self.writer.pipeline().max(1),
            "applying batches"
        );
        while let Some(done) = stream.next().await {
            done?;
        }
        Ok(())
    }

    /// Numbers the files of `units` from `seq` on, as
    /// [`Occurrences`] did, and makes a cell for each it meets first that a
    /// later batch meets again. Runs as batches are read, in plan order, so
    /// a cell is there before any batch that could wait for it.
    fn read_batch(&self, units: Vec<PlannedUnit>, seq: &mut u64) -> Batch {
        let mut owned = HashMap::new();
        let mut in_flight = self.in_flight.borrow_mut();
        for u in &units {
            for (_, sha1) in occurrences::counted(u.files.values()) {
                if self.occurrences.is_first(*seq) {
                    let made = self.occurrences.met_again(*seq) && !in_flight.contains_key(sha1);
                    if made {
                        in_flight.insert(sha1.to_owned(), Rc::default());
                    }
                    owned.insert(sha1.to_owned(), made);
                }
                *seq += 1;
            }
        }
        Batch { units, owned }
    }

    async fn batch(
        &self,
        batch: &[&PlannedUnit],
        owned: &HashMap<String, bool>,
    ) -> Result<(), ApplyError> {
        let observer = self.observer;
        tracing::debug!(
            units = batch.len(),
            first = batch.first().map_or("", |u| u.key.as_str()),
            "batch started"
        );
        let mut file_errors: HashMap<String, String> = HashMap::new();

        // Files planned with `checksum: apply` are stored first, which tells
        // their SHA-1; then the batch goes on as if it had been planned.
        let unknown = self.learned.borrow().unknown(batch);
        let deferred: BTreeMap<String, Outgoing<'_>> = unknown
            .iter()
            .map(|(id, f)| {
                (
                    id.clone(),
                    Outgoing {
                        file: f,
                        sha1: None,
                    },
                )
            })
            .collect();
        let mut records = Vec::new();
        for (id, result) in self.transfer(deferred).await? {
            match result {
                Ok(sha) => records.push(self.learned.borrow_mut().insert(unknown[&id], &sha)),
                Err(e) => {
                    file_errors.insert(id, e);
                }
            }
        }
        if !records.is_empty() {
            self.journal.borrow_mut().append(&records)?;
        }
        // Files whose SHA-1 the plan left to apply (few: remote roots).
        let learned: HashSet<String> = batch
            .iter()
            .flat_map(|u| u.files.values().filter(|f| f.sha1.is_none()))
            .map(PlannedFile::identity)
            .collect();
        let filled = self.learned.borrow().fill(batch);
        let batch: Vec<&PlannedUnit> = filled.iter().map(|u| u.as_ref()).collect();

        // Units that appeared since the plan: never a duplicate.
        let existing = self.writer.existing(&batch).await?;
        let mut records = Vec::new();
        let mut todo: Vec<&PlannedUnit> = Vec::with_capacity(batch.len());
        for &u in &batch {
            match existing.get(&u.key) {
                None => todo.push(u),
                Some(have)
                    if have.same_files(u.files.checksums()) && have.same_meta(u.meta.get()) =>
                {
                    self.report.borrow_mut().units.unchanged += 1;
                    records.push(Record::Unit {
                        key: u.key.clone(),
                        id: have.id.clone(),
                    });
                    observer.on(&ApplyEvent::UnitUnchanged { key: &u.key });
                }
                Some(have) => self.report.borrow_mut().fail_unit(
                    observer,
                    &u.key,
                    &format!(
                        "conflict: the target already has unit {} with this key and other content",
                        have.id
                    ),
                ),
            }
        }

        // The files these units need that the target lacks, and those the
        // batch meets first for a later unit although it skipped their unit.
        let mut waits = Vec::new();
        let mut ask: BTreeMap<&str, (Outgoing<'_>, Ask)> = BTreeMap::new();
        {
            let in_flight = self.in_flight.borrow();
            for u in &todo {
                for f in u.files.values() {
                    let Some(sha) = f.sha1.as_deref() else {
                        continue;
                    };
                    let out = Outgoing {
                        file: f,
                        sha1: Some(sha),
                    };
                    if owned.contains_key(sha) {
                        ask.insert(sha, (out, Ask::Owned));
                    } else if ask.contains_key(sha) || waits.iter().any(|(w, _)| w == sha) {
                        // Met already in this batch.
                    } else if let Some(cell) = in_flight.get(sha) {
                        waits.push((sha.to_owned(), cell.clone()));
                    } else if !learned.is_empty() && learned.contains(&f.identity()) {
                        ask.insert(sha, (out, Ask::Learned));
                    }
                    // Else an earlier batch met it first and it is stored
                    // (a file that failed keeps its cell).
                }
            }
            for u in &batch {
                for (f, sha) in occurrences::counted(u.files.values()) {
                    if owned.get(sha) == Some(&true) && !ask.contains_key(sha) {
                        let out = Outgoing {
                            file: f,
                            sha1: Some(sha),
                        };
                        ask.insert(sha, (out, Ask::ForLater));
                    }
                }
            }
        }
        for (sha, result) in self.ensure(ask, owned, waits).await? {
            if let Err(e) = result {
                file_errors.insert(sha, e);
            }
        }
        self.release_unresolved(owned);

        // Units whose files are all there are registered.
        let mut ready: Vec<&PlannedUnit> = Vec::with_capacity(todo.len());
        for u in todo {
            match super::failed_files_of(u, |id| file_errors.get(id)) {
                None => ready.push(u),
                Some(reason) => self
                    .report
                    .borrow_mut()
                    .fail_unit(observer, &u.key, &reason),
            }
        }
        let crash_at = self.settings.crash_at;
        let begun = self.tally.commits_begun.fetch_add(1, Ordering::SeqCst) + 1;
        if crash_at == Some(CrashPoint::BeforeCommit(begun)) {
            crate::crash::crash_now();
        }
        let (outcomes, task_failures) = if ready.is_empty() {
            Default::default()
        } else {
            self.writer.register(&ready, self.settings.project).await?
        };
        let done = self.tally.commits_done.fetch_add(1, Ordering::SeqCst) + 1;
        if crash_at == Some(CrashPoint::AfterCommit(done)) {
            crate::crash::crash_now();
        }
        let mut report = self.report.borrow_mut();
        for (u, outcome) in ready.iter().zip(outcomes) {
            let id = match outcome {
                Registered::Created(id) => {
                    report.units.created += 1;
                    observer.on(&ApplyEvent::UnitCreated { key: &u.key });
                    id
                }
                Registered::Unchanged(id) => {
                    report.units.unchanged += 1;
                    observer.on(&ApplyEvent::UnitUnchanged { key: &u.key });
                    id
                }
                Registered::Failed(reason) => {
                    report.fail_unit(observer, &u.key, &reason);
                    continue;
                }
            };
            records.push(Record::Unit {
                key: u.key.clone(),
                id,
            });
        }
        for reason in task_failures {
            report.failures.push(super::report::Failure {
                kind: "task".into(),
                key: None,
                path: None,
                reason,
            });
        }
        drop(report);
        let mut journal = self.journal.borrow_mut();
        journal.append(&records)?;
        journal.sync_due()?;
        Ok(())
    }

    /// Every cell this batch made is resolved by now (`ensure` saw each file
    /// it meets first). Were one not, the batches waiting on it would wait
    /// forever: it is failed instead, loudly, so a slip costs units, not a
    /// hung run.
    fn release_unresolved(&self, owned: &HashMap<String, bool>) {
        let in_flight = self.in_flight.borrow();
        for sha in owned.iter().filter(|(_, made)| **made).map(|(s, _)| s) {
            if let Some(cell) = in_flight.get(sha).filter(|c| c.get().is_none()) {
                tracing::error!(sha1 = %sha, "a shared file was left unresolved by its batch");
                debug_assert!(false, "file {sha} left unresolved");
                let _ = cell.set(Err(
                    "not stored (an internal error: please report it)".into()
                ));
            }
        }
    }

    /// Gets the files planned with `checksum: apply` (by identity) into the
    /// target: those another batch is storing are waited for, the rest are
    /// stored here. Returns each file's outcome.
    async fn transfer(
        &self,
        files: BTreeMap<String, Outgoing<'_>>,
    ) -> Result<Vec<(String, FileResult)>, ApplyError> {
        let mut claimed = Vec::new();
        let mut waits = Vec::new();
        {
            let mut in_flight = self.in_flight.borrow_mut();
            for (id, out) in files {
                match claim(&mut in_flight, &id) {
                    Some(cell) => waits.push((id, cell)),
                    None => claimed.push((id, out)),
                }
            }
        }
        let mut results = self.store_claimed(claimed).await?;
        results.extend(wait_for(waits).await);
        Ok(results)
    }

    /// Gets the files of `ask` into the target unless it holds them: one
    /// question for all, then each missing file is stored by the batch that
    /// owns its cell (or claims one now); `waits` are files other batches
    /// are storing. Returns each file's outcome.
    async fn ensure(
        &self,
        ask: BTreeMap<&str, (Outgoing<'_>, Ask)>,
        owned: &HashMap<String, bool>,
        mut waits: Vec<(String, Cell)>,
    ) -> Result<Vec<(String, FileResult)>, ApplyError> {
        let ids: Vec<&str> = ask.keys().copied().collect();
        let held = if ids.is_empty() {
            HashSet::new()
        } else {
            self.writer.holds(&ids).await?
        };
        let mut results = Vec::with_capacity(ask.len());
        let mut claimed = Vec::new();
        {
            let mut in_flight = self.in_flight.borrow_mut();
            for (sha, (out, why)) in ask {
                let ours = owned.get(sha) == Some(&true);
                if held.contains(sha) {
                    if why == Ask::Owned {
                        self.report.borrow_mut().count_stored(self.observer, None);
                    }
                    if let Some(cell) = ours.then(|| in_flight.remove(sha)).flatten() {
                        let _ = cell.set(Ok(sha.to_owned()));
                    }
                    results.push((sha.to_owned(), Ok(sha.to_owned())));
                } else if ours {
                    claimed.push((sha.to_owned(), out));
                } else if let Some(cell) = claim(&mut in_flight, sha) {
                    // Claimed by another batch while the target was asked.
                    waits.push((sha.to_owned(), cell));
                } else {
                    claimed.push((sha.to_owned(), out));
                }
            }
        }
        results.extend(self.store_claimed(claimed).await?);
        results.extend(wait_for(waits).await);
        Ok(results)
    }

    /// Stores `files`, whose cells this batch holds; journals them and
    /// resolves the cells. A stored file's cell leaves (later batches take
    /// it as stored); a failed one stays, so the batches that share it fail
    /// with it instead of trying again.
    async fn store_claimed(
        &self,
        files: Vec<(String, Outgoing<'_>)>,
    ) -> Result<Vec<(String, FileResult)>, ApplyError> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, outgoing): (Vec<String>, Vec<Outgoing<'_>>) = files.into_iter().unzip();
        let stored = match self.writer.store(&outgoing, &self.tally).await {
            Ok(stored) => stored,
            Err(e) => {
                // Batches waiting on these files learn they failed.
                for id in &ids {
                    if let Some(cell) = self.in_flight.borrow_mut().remove(id) {
                        let _ = cell.set(Err(e.to_string()));
                    }
                }
                return Err(e);
            }
        };
        let mut results = Vec::with_capacity(ids.len());
        let mut records = Vec::new();
        for ((id, out), result) in ids.into_iter().zip(&outgoing).zip(stored) {
            let result = match result {
                Ok(s) => {
                    self.report
                        .borrow_mut()
                        .count_stored(self.observer, s.written);
                    records.push(Record::File {
                        sha1: s.sha1.clone(),
                    });
                    Ok(s.sha1)
                }
                Err(reason) => {
                    self.report
                        .borrow_mut()
                        .fail_file(self.observer, &out.file.shown(), &reason);
                    Err(reason)
                }
            };
            let mut in_flight = self.in_flight.borrow_mut();
            let cell = match result {
                Ok(_) => in_flight.remove(&id),
                Err(_) => in_flight.get(&id).cloned(),
            };
            drop(in_flight);
            if let Some(cell) = cell {
                let _ = cell.set(result.clone());
            }
            results.push((id, result));
        }
        if !records.is_empty() {
            self.journal.borrow_mut().append(&records)?;
        }
        Ok(results)
    }
}

/// A file some batch is storing: the outcome it will have.
type Cell = Rc<tokio::sync::OnceCell<FileResult>>;

/// Claims file `id` for the calling batch (`None`: it makes the cell and
/// stores the file), unless another batch has: then its cell, to wait on.
fn claim(in_flight: &mut HashMap<String, Cell>, id: &str) -> Option<Cell> {
    if let Some(cell) = in_flight.get(id) {
        return Some(cell.clone());
    }
    in_flight.insert(id.to_owned(), Rc::default());
    None
}

/// The outcomes of files other batches are storing, as they arrive.
async fn wait_for(waits: Vec<(String, Cell)>) -> Vec<(String, FileResult)> {
    let mut results = Vec::with_capacity(waits.len());
    for (id, cell) in waits {
        let result = loop {
            if let Some(r) = cell.get() {
                break r.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        results.push((id, result));
    }
    results
}

/// The executor against an in-memory target: what it does to any target,
/// whatever that target's writer.
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::apply::Silent;
    use crate::apply::journal;

    /// A target that holds its files and units in memory. Each `store` yields
    /// first, so batches in flight interleave as they do over a network.
    #[derive(Default)]
    struct Memory {
        files: RefCell<BTreeSet<String>>,
        /// How many times each SHA-1 was sent.
        sent: RefCell<BTreeMap<String, u32>>,
        units: RefCell<BTreeMap<String, ExistingUnit>>,
        /// Files (by path) that cannot be read.
        unreadable: Vec<&'static str>,
        /// `store` fails the whole run (a full disk).
        broken: bool,
    }

    impl Writer for &Memory {
        fn describe(&self) -> ReportTarget {
            ReportTarget {
                backend: "memory".into(),
                data_collection: "c".into(),
                path: String::new(),
            }
        }
        fn pipeline(&self) -> usize {
            3
        }
        async fn prepare(&mut self) -> Result<(), ApplyError> {
            Ok(())
        }
        async fn holds(&self, sha1s: &[&str]) -> Result<HashSet<String>, ApplyError> {
            let files = self.files.borrow();
            Ok(sha1s
                .iter()
                .filter(|s| files.contains(**s))
                .map(|s| (*s).to_owned())
                .collect())
        }
        async fn existing(
            &self,
            units: &[&PlannedUnit],
        ) -> Result<HashMap<String, ExistingUnit>, ApplyError> {
            let have = self.units.borrow();
            Ok(units
                .iter()
                .filter_map(|u| Some((u.key.clone(), have.get(&u.key)?.clone())))
                .collect())
        }
        async fn store(
            &self,
            files: &[Outgoing<'_>],
            tally: &Tally,
        ) -> Result<Vec<Result<Stored, String>>, ApplyError> {
            tokio::task::yield_now().await;
            if self.broken {
                return Err(ApplyError::TargetWrite {
                    path: "memory".into(),
                    message: "no space left on device".into(),
                });
            }
            Ok(files
                .iter()
                .map(|o| {
                    if self.unreadable.contains(&o.file.path.as_str()) {
                        return Err("cannot read it".to_owned());
                    }
                    let sha1 = o.sha1.map(str::to_owned).unwrap_or_default();
                    *self.sent.borrow_mut().entry(sha1.clone()).or_default() += 1;
                    self.files.borrow_mut().insert(sha1.clone());
                    tally.file_stored();
                    Ok(Stored {
                        sha1,
                        written: Some(o.file.size),
                    })
                })
                .collect())
        }
        async fn register(
            &self,
            units: &[&PlannedUnit],
            _project: Option<crate::target::ProjectId>,
        ) -> Result<(Vec<Registered>, Vec<String>), ApplyError> {
            let mut have = self.units.borrow_mut();
            Ok((
                units
                    .iter()
                    .map(|u| {
                        let id = (have.len() + 1).to_string();
                        let files = u
                            .files
                            .checksums()
                            .map(|(s, h)| (s.to_owned(), h.to_owned()))
                            .collect();
                        have.insert(
                            u.key.clone(),
                            ExistingUnit {
                                id: id.clone(),
                                files,
                                meta_json: u.meta.get().to_owned(),
                            },
                        );
                        Registered::Created(id)
                    })
                    .collect(),
                Vec::new(),
            ))
        }
        fn finish(&self, _report: &ApplyReport) {}
    }

    /// A plan of `n` units (see [`crate::apply::test_recipe`]), with its
    /// journal path.
    fn plan_of(dir: &std::path::Path, n: usize) -> (Plan, std::path::PathBuf) {
        let (loaded, resolved) = crate::apply::test_recipe(dir, n);
        let plan = crate::plan::build_plan(
            &loaded,
            &resolved,
            &crate::target::EmptyTarget,
            &Default::default(),
        )
        .unwrap()
        .into_executable();
        (plan, dir.join("journal.jsonl"))
    }

    fn settings(batch_size: usize) -> ApplySettings {
        ApplySettings {
            workers: 2,
            batch_size,
            retries: 0,
            project: None,
            crash_at: None,
            memory: Default::default(),
        }
    }

    fn run(
        plan: &Plan,
        target: &Memory,
        journal: &std::path::Path,
        batch: usize,
    ) -> Result<ApplyReport, ApplyError> {
        crate::io_runtime::block_on(execute(
            plan,
            target,
            "run-1",
            journal,
            &settings(batch),
            &Silent,
            &SpillArea::under(journal.parent().unwrap(), Default::default()),
        ))
    }

    #[test]
    fn a_file_shared_by_batches_in_flight_is_sent_once() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, journal) = plan_of(dir.path(), 6);
        let target = Memory::default();
        let report = run(&plan, &target, &journal, 1).unwrap();
        assert_eq!((report.units.created, report.units.failed), (6, 0));
        // Six images and one label, each sent once although three
        // one-unit batches wanted the label at the same time.
        assert_eq!(report.files.uploaded, 7);
        assert!(target.sent.borrow().values().all(|n| *n == 1));
        assert_eq!(target.units.borrow().len(), 6);
        let (state, _) = journal::read(&journal).unwrap();
        assert_eq!(state.units.len(), 6);
        assert_eq!(state.files.len(), 7);

        // Again: every unit is there with the same content.
        let again = run(&plan, &target, &journal, 4).unwrap();
        assert_eq!((again.units.created, again.units.unchanged), (0, 6));
        assert_eq!(again.files.uploaded, 0);
    }

    #[test]
    fn a_plan_whose_units_spilled_applies_batch_by_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (loaded, resolved) = crate::apply::test_recipe(dir.path(), 9);
        let tight = crate::plan::PlanOptions {
            memory: crate::spill::MemoryBudget { bytes: 4 },
            ..Default::default()
        };
        let plan = crate::plan::build_plan(&loaded, &resolved, &crate::target::EmptyTarget, &tight)
            .unwrap()
            .into_executable();
        assert!(plan.units.spilled());
        let target = Memory::default();
        let journal = dir.path().join("journal.jsonl");
        let report = run(&plan, &target, &journal, 2).unwrap();
        assert_eq!((report.units.planned, report.units.created), (9, 9));
        assert_eq!(target.units.borrow().len(), 9);
    }

    #[test]
    fn an_unreadable_file_fails_its_unit_and_a_conflict_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, journal) = plan_of(dir.path(), 4);
        let mut target = Memory {
            unreadable: vec!["u1/scan.png"],
            ..Memory::default()
        };
        let taken = ExistingUnit {
            id: "99".into(),
            files: vec![("image".into(), "0".repeat(40))],
            meta_json: "{}".into(),
        };
        target.units.get_mut().insert("u2".into(), taken.clone());
        let report = run(&plan, &target, &journal, 2).unwrap();
        assert_eq!(report.units.created, 2);
        let failed: Vec<(&str, Option<&str>)> = report
            .failures
            .iter()
            .map(|f| (f.kind.as_str(), f.key.as_deref().or(f.path.as_deref())))
            .collect();
        assert_eq!(
            failed,
            [
                ("file", Some("data/u1/scan.png")),
                ("unit", Some("u1")),
                ("unit", Some("u2")),
            ]
        );
        assert_eq!(target.units.borrow()["u2"], taken);
        assert_eq!(report.status, "failed");
    }

    /// The label every unit shares, as the plan of [`plan_of`] has it.
    fn label_of(plan: &Plan) -> String {
        let u0 = plan.units.iter().next().unwrap().unwrap();
        u0.files
            .values()
            .find(|f| f.path.ends_with(".json"))
            .unwrap()
            .sha1
            .clone()
            .unwrap()
    }

    /// The label is met first by u0; when u0 is not created (a conflict, or
    /// there already), the later units still get it, stored at most once,
    /// one-unit batches three at a time.
    #[test]
    fn a_shared_file_first_met_by_a_skipped_unit_reaches_the_later_units() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, journal) = plan_of(dir.path(), 6);
        let label = label_of(&plan);
        // u0 taken by other content: its label is stored for u1..u5 anyway.
        let target = Memory::default();
        let other = ExistingUnit {
            id: "99".into(),
            files: vec![("image".into(), "0".repeat(40))],
            meta_json: "{}".into(),
        };
        target.units.borrow_mut().insert("u0".into(), other);
        let report = run(&plan, &target, &journal, 1).unwrap();
        assert_eq!((report.units.created, report.units.failed), (5, 1));
        assert_eq!(target.sent.borrow()[&label], 1);
        assert!(target.sent.borrow().values().all(|n| *n == 1));
        assert_eq!(report.files.uploaded, 6, "five images and the label");

        // u0 there with this content (and so its files): the label is not
        // sent again, and nothing is counted twice.
        let dir = tempfile::tempdir().unwrap();
        let (plan, journal) = plan_of(dir.path(), 6);
        let u0 = plan.units.iter().next().unwrap().unwrap();
        let target = Memory::default();
        for (_, sha1) in u0.files.checksums() {
            target.files.borrow_mut().insert(sha1.to_owned());
        }
        let same = ExistingUnit {
            id: "1".into(),
            files: u0
                .files
                .checksums()
                .map(|(s, h)| (s.to_owned(), h.to_owned()))
                .collect(),
            meta_json: u0.meta.get().to_owned(),
        };
        target.units.borrow_mut().insert("u0".into(), same);
        let report = run(&plan, &target, &journal, 1).unwrap();
        assert_eq!((report.units.created, report.units.unchanged), (5, 1));
        assert!(!target.sent.borrow().contains_key(&label));
        assert_eq!(
            (report.files.uploaded, report.files.already_present),
            (5, 0)
        );
        assert_eq!(target.units.borrow().len(), 6);
    }

    /// A file the target held before the run is counted once as present,
    /// however many batches need it, and never sent.
    #[test]
    fn a_file_held_before_the_run_is_present_once() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, journal) = plan_of(dir.path(), 6);
        let label = label_of(&plan);
        let target = Memory::default();
        target.files.borrow_mut().insert(label.clone());
        let report = run(&plan, &target, &journal, 2).unwrap();
        assert_eq!(report.units.created, 6);
        assert_eq!(
            (report.files.uploaded, report.files.already_present),
            (6, 1)
        );
        assert!(!target.sent.borrow().contains_key(&label));
    }

    #[test]
    fn a_target_that_cannot_be_written_aborts_and_journals_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, journal) = plan_of(dir.path(), 3);
        let target = Memory {
            broken: true,
            ..Memory::default()
        };
        let err = run(&plan, &target, &journal, 1).unwrap_err();
        assert!(matches!(err, ApplyError::TargetWrite { .. }), "{err}");
        assert!(target.units.borrow().is_empty());
        let text = std::fs::read_to_string(&journal).unwrap();
        assert!(text.lines().last().unwrap().contains("aborted"), "{text}");
    }
}
