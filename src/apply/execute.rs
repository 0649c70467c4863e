//! The executor: runs the apply part of a plan against the local target.
//!
//! Work goes batch by batch (`upload.batch_size` units): the batch's files are
//! copied into the store by `upload.workers` parallel workers, made durable with
//! one `syncfs`, recorded in `files`; then the batch's units are registered in
//! one transaction and journaled. A kill at any point leaves either a whole batch
//! or none of it, and files that are stored but not yet referenced, which the
//! next run reuses. Units that exist by the time their batch runs are skipped
//! (same content) or failed as conflicts (other content), never duplicated.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use serde_json::Value as Json;

use super::deferred::Learned;
use super::events::{ApplyEvent, ApplyObserver};
use super::journal::{JournalError, Record};
use super::report::{ApplyReport, ReportTarget};
use crate::plan::model::{Plan, PlannedFile, PlannedUnit};
use crate::recipe::resolve::FileSpec;
use crate::target::local::{
    Catalog, CatalogError, FileStore, LockWait, NewUnit, StoreError, TargetLock,
};

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
}

/// Where the executor may deliberately die, for crash tests (`SYNUP_CRASH_AT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After this many files were stored in this run.
    AfterFiles(u64),
    /// Before committing this batch (1-based), its files stored and synced.
    BeforeCommit(u64),
    /// After committing this batch, before journaling it.
    AfterCommit(u64),
}

impl CrashPoint {
    /// `files:N`, `before_commit:N` or `after_commit:N`.
    pub fn parse(s: &str) -> Option<Self> {
        let (kind, n) = s.split_once(':')?;
        let n = n.parse().ok()?;
        match kind {
            "files" => Some(Self::AfterFiles(n)),
            "before_commit" => Some(Self::BeforeCommit(n)),
            "after_commit" => Some(Self::AfterCommit(n)),
            _ => None,
        }
    }
}

/// Dies the way `kill -9` kills: no destructors, no flushing.
pub(crate) fn crash_now() -> ! {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    std::process::abort()
}

pub struct ApplySettings {
    pub workers: usize,
    pub batch_size: usize,
    /// Retries per request (remote targets).
    pub retries: u32,
    pub project: Option<i64>,
    pub crash_at: Option<CrashPoint>,
}

impl ApplySettings {
    /// The recipe's `upload` block and `target.project`; the crash point of
    /// `SYNUP_CRASH_AT` (crash tests).
    pub fn of(recipe: &crate::recipe::model::Recipe) -> Self {
        Self {
            workers: recipe.upload.workers as usize,
            batch_size: recipe.upload.batch_size as usize,
            retries: recipe.upload.retries,
            project: recipe.target.project.map(|p| p as i64),
            crash_at: std::env::var("SYNUP_CRASH_AT")
                .ok()
                .and_then(|s| CrashPoint::parse(&s)),
        }
    }
}

/// Everything the executor needs besides the plan.
pub struct ApplyTarget<'a> {
    /// Folder the plan's roots are relative to (the recipe's folder).
    pub recipe_dir: &'a Path,
    /// The local target folder.
    pub target_dir: &'a Path,
    pub collection: &'a str,
    pub specs: &'a [FileSpec],
    pub meta_schema: Option<&'a Json>,
    pub journal: PathBuf,
    /// The recipe's roots: where planned files are read from.
    pub roots: crate::source::Roots,
}

impl ApplyTarget<'_> {
    fn write_error(&self, e: std::io::Error) -> ApplyError {
        ApplyError::TargetWrite {
            path: self.target_dir.display().to_string(),
            message: e.to_string(),
        }
    }
}

pub fn execute(
    plan: &Plan,
    target: &ApplyTarget<'_>,
    settings: &ApplySettings,
    observer: &dyn ApplyObserver,
) -> Result<ApplyReport, ApplyError> {
    let started = Instant::now();
    let write_err = |e| target.write_error(e);

    // One apply per target at a time; the OS drops the lock if we die.
    let _lock = match TargetLock::try_acquire(target.target_dir).map_err(write_err)? {
        LockWait::Acquired(lock) => lock,
        LockWait::Busy(file) => {
            observer.on(&ApplyEvent::WaitingForLock {
                path: &target.target_dir.display().to_string(),
            });
            TargetLock::wait(file).map_err(write_err)?
        }
    };
    let mut catalog = Catalog::open(target.target_dir)?;
    let store = FileStore::open(target.target_dir).map_err(write_err)?;
    store.clean_tmp();
    let collection =
        catalog.ensure_collection(target.collection, target.specs, target.meta_schema)?;
    let apply_id = super::new_apply_id();
    catalog.begin_apply(
        &apply_id,
        collection,
        &plan.recipe.name,
        &plan.recipe.path,
        &plan.plan_hash,
    )?;
    let super::Run {
        journal,
        mut previous,
        report,
        creates,
        ..
    } = super::begin_run(
        plan,
        &apply_id,
        &target.journal,
        ReportTarget {
            backend: "local".into(),
            data_collection: target.collection.to_owned(),
            path: plan.target.path.clone().unwrap_or_default(),
        },
        observer,
    )?;

    let copier = Copier {
        roots: &target.roots,
        pool: rayon::ThreadPoolBuilder::new()
            .num_threads(settings.workers.max(1))
            .build()
            .ok(),
        stored_in_run: AtomicU64::new(0),
        crash_at: settings.crash_at,
    };
    let mut run = LocalRun {
        target,
        settings,
        observer,
        catalog,
        store,
        collection,
        apply_id: &apply_id,
        journal,
        report,
        copier,
        primary_spec: target
            .specs
            .iter()
            .find(|s| s.is_primary)
            .map(|s| s.name.as_str()),
        learned: Learned::new(std::mem::take(&mut previous.learned)),
    };
    let outcome = creates
        .chunks(settings.batch_size.max(1))
        .enumerate()
        .try_for_each(|(i, batch)| run.batch(i as u64 + 1, batch));
    let LocalRun {
        catalog,
        mut journal,
        mut report,
        ..
    } = run;

    report.close(started.elapsed(), outcome.is_err());
    let _ = catalog.finish_apply(
        &apply_id,
        &report.status,
        report.units.created,
        report.units.unchanged,
        report.units.failed,
        report.files.uploaded,
        report.bytes_uploaded,
    );
    let _ = journal.append(&[Record::End {
        apply: apply_id,
        status: report.status.clone(),
    }]);
    let _ = journal.sync();
    observer.on(&ApplyEvent::Finished);
    outcome.map(|()| report)
}

/// One local apply in progress: what its batches share.
struct LocalRun<'a> {
    target: &'a ApplyTarget<'a>,
    settings: &'a ApplySettings,
    observer: &'a dyn ApplyObserver,
    catalog: Catalog,
    store: FileStore,
    collection: i64,
    apply_id: &'a str,
    journal: super::journal::Journal,
    report: ApplyReport,
    copier: Copier<'a>,
    primary_spec: Option<&'a str>,
    /// SHA-1s of files planned with `checksum: apply`, as they are learned.
    learned: Learned,
}

impl LocalRun<'_> {
    /// One batch: learn deferred checksums, skip units that appeared since
    /// the plan, store the files the catalog lacks, register the rest in one
    /// transaction, journal it. A kill at any point leaves the whole batch or
    /// none of it.
    fn batch(&mut self, batch_no: u64, batch: &[&PlannedUnit]) -> Result<(), ApplyError> {
        let (deferred_failed, learned_now) = self.learn_deferred(batch)?;
        let filled = self.learned.fill(batch);
        let batch: Vec<&PlannedUnit> = filled.iter().map(|u| u.as_ref()).collect();
        let (todo, journal_units) = self.skip_existing(&batch)?;
        let failed_files = self.store_files(&todo, &learned_now)?;
        let mut ready: Vec<&PlannedUnit> = Vec::with_capacity(todo.len());
        for u in todo {
            match super::failed_files_of(u, |id| {
                failed_files.get(id).or_else(|| deferred_failed.get(id))
            }) {
                None => ready.push(u),
                Some(reason) => self.report.fail_unit(self.observer, &u.key, &reason),
            }
        }
        self.register(batch_no, &ready, journal_units)
    }

    /// Stores the batch's files planned with `checksum: apply`, which tells
    /// their SHA-1; returns the files that failed (by identity) and the
    /// SHA-1s stored now.
    fn learn_deferred(
        &mut self,
        batch: &[&PlannedUnit],
    ) -> Result<(HashMap<String, String>, HashSet<String>), ApplyError> {
        let target = self.target;
        let unknown: Vec<(String, &PlannedFile)> =
            self.learned.unknown(batch).into_iter().collect();
        let (copier, store) = (&self.copier, &self.store);
        let learnt = copier.run(&unknown, |(_, f)| {
            let shown = f.shown();
            let local = target.recipe_dir.join(&*f.root).join(&f.path);
            copier
                .open(&shown, &local)
                .and_then(|input| store.put_learning(input, &shown))
        });
        let mut failed: HashMap<String, String> = HashMap::new();
        let mut learned_now: Vec<(String, u64, String)> = Vec::new();
        let mut records = Vec::new();
        for ((id, f), result) in unknown.iter().zip(learnt) {
            match result {
                Ok((sha, bytes)) => {
                    self.report.count_stored(self.observer, bytes);
                    records.push(self.learned.insert(f, &sha));
                    records.push(Record::File { sha1: sha.clone() });
                    let rel = FileStore::relative_path(&sha);
                    learned_now.push((sha, f.size, rel));
                }
                Err(StoreError::Write { source, .. }) => return Err(target.write_error(source)),
                Err(e) => {
                    let reason = e.to_string();
                    self.report.fail_file(self.observer, &f.shown(), &reason);
                    failed.insert(id.clone(), reason);
                }
            }
        }
        if !learned_now.is_empty() {
            self.store.sync().map_err(|e| target.write_error(e))?;
            self.catalog.add_files(&learned_now)?;
            self.journal.append(&records)?;
        }
        Ok((
            failed,
            learned_now.into_iter().map(|(sha, _, _)| sha).collect(),
        ))
    }

    /// Units that appeared in the target since the plan: the same content is
    /// skipped (and journaled), other content fails as a conflict; never a
    /// duplicate. Returns the units still to create and the journal records.
    fn skip_existing<'u>(
        &mut self,
        batch: &[&'u PlannedUnit],
    ) -> Result<(Vec<&'u PlannedUnit>, Vec<Record>), ApplyError> {
        let keys: Vec<&str> = batch.iter().map(|u| u.key.as_str()).collect();
        let existing = self.catalog.units_by_key(self.collection, &keys)?;
        let mut todo: Vec<&PlannedUnit> = Vec::with_capacity(batch.len());
        let mut records = Vec::new();
        for u in batch {
            match existing.get(&u.key).and_then(|v| v.first()) {
                None => todo.push(u),
                Some(have) => {
                    if have.same_files(u.files.checksums()) && have.same_meta(u.meta.get()) {
                        self.report.units.unchanged += 1;
                        records.push(Record::Unit {
                            key: u.key.clone(),
                            id: have.id.clone(),
                        });
                        self.observer.on(&ApplyEvent::UnitUnchanged { key: &u.key });
                    } else {
                        let reason = format!(
                            "conflict: the target already has unit {} with this key and other content",
                            have.id
                        );
                        self.report.fail_unit(self.observer, &u.key, &reason);
                    }
                }
            }
        }
        Ok((todo, records))
    }

    /// Copies the files these units need that the catalog does not hold yet
    /// (those in `learned_now` were just stored), syncs them, records them;
    /// returns the files that failed (by SHA-1).
    fn store_files(
        &mut self,
        todo: &[&PlannedUnit],
        learned_now: &HashSet<String>,
    ) -> Result<HashMap<String, String>, ApplyError> {
        let target = self.target;
        let mut needed: BTreeMap<&str, (PathBuf, u64, String)> = BTreeMap::new();
        for u in todo {
            for f in u.files.values() {
                if let Some(sha) = &f.sha1 {
                    needed.entry(sha.as_str()).or_insert_with(|| {
                        (
                            target.recipe_dir.join(&*f.root).join(&f.path),
                            f.size,
                            f.shown(),
                        )
                    });
                }
            }
        }
        // Those stored just now were counted when they were.
        needed.retain(|sha, _| !learned_now.contains(*sha));
        let wanted: Vec<&str> = needed.keys().copied().collect();
        let known = self.catalog.known_checksums(&wanted)?;
        let to_store: Vec<(&str, &(PathBuf, u64, String))> = needed
            .iter()
            .filter(|(s, _)| !known.contains(**s))
            .map(|(s, v)| (*s, v))
            .collect();
        self.report.files.already_present += (needed.len() - to_store.len()) as u64;
        for _ in 0..(needed.len() - to_store.len()) {
            self.observer.on(&ApplyEvent::FileStored { bytes: 0 });
        }
        let (copier, store) = (&self.copier, &self.store);
        let results = copier.run(&to_store, |(sha, (src, _, shown))| {
            match target.roots.remote_of(shown) {
                Some(_) => copier
                    .open(shown, src)
                    .and_then(|input| store.put_from(input, shown, sha)),
                None => store.put(src, sha),
            }
        });
        let mut stored: Vec<(String, u64, String)> = Vec::new();
        let mut failed: HashMap<String, String> = HashMap::new();
        for ((sha, (_, size, shown)), result) in to_store.iter().zip(results) {
            match result {
                Ok(bytes) => {
                    self.report.count_stored(self.observer, bytes);
                    stored.push(((*sha).to_owned(), *size, FileStore::relative_path(sha)));
                }
                Err(StoreError::Write { source, .. }) => return Err(target.write_error(source)),
                Err(e) => {
                    let reason = e.to_string();
                    self.report.fail_file(self.observer, shown, &reason);
                    failed.insert((*sha).to_owned(), reason);
                }
            }
        }
        if !stored.is_empty() {
            self.store.sync().map_err(|e| target.write_error(e))?;
            self.catalog.add_files(&stored)?;
            self.journal.append(
                &stored
                    .iter()
                    .map(|(sha, _, _)| Record::File { sha1: sha.clone() })
                    .collect::<Vec<_>>(),
            )?;
        }
        Ok(failed)
    }

    /// Registers `ready` (every file in place) in one transaction, then
    /// journals the batch (`records` holds its skipped units already).
    fn register(
        &mut self,
        batch_no: u64,
        ready: &[&PlannedUnit],
        mut records: Vec<Record>,
    ) -> Result<(), ApplyError> {
        let primary_spec = self.primary_spec;
        let new_units: Vec<NewUnit<'_>> = ready
            .iter()
            .map(|u| NewUnit {
                key: &u.key,
                meta_json: u.meta.get(),
                files: u
                    .files
                    .iter()
                    .map(|(spec, f)| {
                        (
                            spec,
                            f.sha1.as_deref().unwrap_or_default(),
                            f.path.as_str(),
                            f.size,
                            primary_spec == Some(spec),
                        )
                    })
                    .collect(),
            })
            .collect();
        let crash_at = self.settings.crash_at;
        if crash_at == Some(CrashPoint::BeforeCommit(batch_no)) {
            crash_now();
        }
        let ids = if new_units.is_empty() {
            Vec::new()
        } else {
            self.catalog.create_units(
                self.collection,
                self.apply_id,
                self.settings.project,
                &new_units,
            )?
        };
        if crash_at == Some(CrashPoint::AfterCommit(batch_no)) {
            crash_now();
        }
        for (u, id) in ready.iter().zip(&ids) {
            self.report.units.created += 1;
            records.push(Record::Unit {
                key: u.key.clone(),
                id: id.to_string(),
            });
            self.observer.on(&ApplyEvent::UnitCreated { key: &u.key });
        }
        self.journal.append(&records)?;
        self.journal.sync()?;
        Ok(())
    }
}

/// Copies files into the store on the worker pool, counting the files stored
/// in this run (for `SYNUP_CRASH_AT=files:N`).
struct Copier<'a> {
    roots: &'a crate::source::Roots,
    pool: Option<rayon::ThreadPool>,
    stored_in_run: AtomicU64,
    crash_at: Option<CrashPoint>,
}

impl Copier<'_> {
    /// The bytes of the file shown as `root/path`: a remote object, or `local`.
    fn open(&self, shown: &str, local: &Path) -> Result<Box<dyn Read + Send>, StoreError> {
        let read_err = |source| StoreError::Read {
            path: shown.to_owned(),
            source,
        };
        match self.roots.locate(shown) {
            Some((source, rel)) => source.open(rel).map_err(read_err),
            None => std::fs::File::open(local)
                .map(|f| Box::new(f) as Box<dyn Read + Send>)
                .map_err(read_err),
        }
    }

    /// `copy` over `items`, in parallel on the pool.
    fn run<T: Sync, R: Send>(
        &self,
        items: &[T],
        copy: impl Fn(&T) -> Result<R, StoreError> + Sync,
    ) -> Vec<Result<R, StoreError>> {
        let one = |item: &T| {
            let r = copy(item);
            if r.is_ok() {
                let n = self.stored_in_run.fetch_add(1, Ordering::SeqCst) + 1;
                if self.crash_at == Some(CrashPoint::AfterFiles(n)) {
                    crash_now();
                }
            }
            r
        };
        match &self.pool {
            Some(pool) => pool.install(|| items.par_iter().map(one).collect()),
            None => items.iter().map(one).collect(),
        }
    }
}
