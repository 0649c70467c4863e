//! The local target's side of apply: a SQLite catalog and a content-addressed
//! file store under the target folder.
//!
//! Files are copied into the store by `upload.workers` threads and made
//! durable with one `syncfs` per batch before the catalog records them; a
//! batch's units are registered in one transaction. One apply runs per target
//! at a time (an OS lock, dropped if we die).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::events::{ApplyEvent, ApplyObserver};
use super::execute::{
    ApplyError, ApplySettings, Outgoing, Registered, Stored, Tally, Writer, execute,
};
use super::report::{ApplyReport, ReportTarget};
use crate::plan::model::{Plan, PlannedUnit};
use crate::recipe::resolve::FileSpec;
use crate::target::ExistingUnit;
use crate::target::local::{Catalog, FileStore, LockWait, NewUnit, StoreError, TargetLock};

/// A local target folder, as apply writes into it.
pub struct LocalTarget<'a> {
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

impl LocalTarget<'_> {
    fn write_error(&self, e: std::io::Error) -> ApplyError {
        ApplyError::TargetWrite {
            path: self.target_dir.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Applies `plan`: takes the target's lock (waiting for another apply
    /// that holds it), records the run in the catalog, runs the executor.
    pub fn apply(
        &self,
        plan: &Plan,
        settings: &ApplySettings,
        observer: &dyn ApplyObserver,
    ) -> Result<ApplyReport, ApplyError> {
        let write_err = |e| self.write_error(e);
        let _lock = match TargetLock::try_acquire(self.target_dir).map_err(write_err)? {
            LockWait::Acquired(lock) => lock,
            LockWait::Busy(file) => {
                observer.on(&ApplyEvent::WaitingForLock {
                    path: &self.target_dir.display().to_string(),
                });
                TargetLock::wait(file).map_err(write_err)?
            }
        };
        let mut catalog = Catalog::open(self.target_dir)?;
        let store = FileStore::open(self.target_dir).map_err(write_err)?;
        store.clean_tmp();
        let collection =
            catalog.ensure_collection(self.collection, self.specs, self.meta_schema)?;
        let apply_id = super::new_apply_id();
        catalog.begin_apply(
            &apply_id,
            collection,
            &plan.recipe.name,
            &plan.recipe.path,
            &plan.plan_hash,
        )?;
        let writer = LocalWriter {
            target: self,
            catalog: RefCell::new(catalog),
            store,
            collection,
            apply_id: apply_id.clone(),
            target_path: plan.target.path.clone().unwrap_or_default(),
            workers: settings.workers.max(1),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            primary_spec: self.specs.iter().find(|s| s.is_primary).map(|s| &*s.name),
        };
        let spill =
            crate::spill::SpillArea::under(&self.recipe_dir.join(".synup"), settings.memory);
        crate::io_runtime::block_on(execute(
            plan,
            writer,
            &apply_id,
            &self.journal,
            settings,
            observer,
            &spill,
        ))
    }

    /// The bytes of the file shown as `root/path`: a remote object, or the
    /// local file `local`.
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
}

/// One local apply in progress.
struct LocalWriter<'a> {
    target: &'a LocalTarget<'a>,
    catalog: RefCell<Catalog>,
    store: FileStore,
    collection: i64,
    apply_id: String,
    target_path: String,
    /// `upload.workers`: copies at once from a remote source.
    workers: usize,
    /// Copies at once from local files.
    cores: usize,
    primary_spec: Option<&'a str>,
}

impl Writer for LocalWriter<'_> {
    fn describe(&self) -> ReportTarget {
        ReportTarget {
            backend: "local".into(),
            data_collection: self.target.collection.to_owned(),
            path: self.target_path.clone(),
        }
    }

    fn pipeline(&self) -> usize {
        // While one batch waits for its files to be durable, the next one
        // copies. The catalog is one connection, used between awaits only.
        2
    }

    async fn prepare(&mut self) -> Result<(), ApplyError> {
        Ok(())
    }

    async fn holds(&self, sha1s: &[&str]) -> Result<HashSet<String>, ApplyError> {
        Ok(self.catalog.borrow().known_checksums(sha1s)?)
    }

    async fn existing(
        &self,
        units: &[&PlannedUnit],
    ) -> Result<HashMap<String, ExistingUnit>, ApplyError> {
        let keys: Vec<&str> = units.iter().map(|u| u.key.as_str()).collect();
        let found = self.catalog.borrow().units_by_key(self.collection, &keys)?;
        Ok(super::execute::first_per_key(found))
    }

    async fn store(
        &self,
        files: &[Outgoing<'_>],
        tally: &Tally,
    ) -> Result<Vec<Result<Stored, String>>, ApplyError> {
        let target = self.target;
        let store = &self.store;
        let copy = |out: &Outgoing<'_>| -> Result<Stored, StoreError> {
            let f = out.file;
            let shown = f.shown();
            let local = target.recipe_dir.join(&*f.root).join(&f.path);
            let (sha1, bytes) = match out.sha1 {
                None => target
                    .open(&shown, &local)
                    .and_then(|input| store.put_learning(input, &shown))?,
                Some(sha) if target.roots.remote_of(&shown).is_some() => {
                    let from_copy = target
                        .roots
                        .copy_of(sha, f.size)
                        .map(|copy| store.adopt(&copy, &shown, sha));
                    let bytes = match from_copy {
                        Some(Ok(bytes)) => {
                            tracing::debug!(file = %shown, "sent from the plan's copy");
                            bytes
                        }
                        Some(Err(e @ StoreError::Write { .. })) => return Err(e),
                        // No copy, or a damaged one: the object itself.
                        other => {
                            if let Some(Err(e)) = other {
                                tracing::debug!(file = %shown, error = %e, "object copy damaged, reading the object");
                            }
                            target
                                .open(&shown, &local)
                                .and_then(|input| store.put_from(input, &shown, sha))?
                        }
                    };
                    target.roots.forget_copy(sha);
                    (sha.to_owned(), bytes)
                }
                Some(sha) => (sha.to_owned(), store.put(&local, sha)?),
            };
            tally.file_stored();
            Ok(Stored {
                sha1,
                written: (bytes > 0).then_some(bytes),
            })
        };
        // Local files are copied by as many threads as there are cores (more
        // only contend); objects of a remote source by `upload.workers`,
        // since they wait on the network.
        let remote = files
            .iter()
            .any(|o| target.roots.remote_of(&o.file.shown()).is_some());
        let threads = match remote {
            true => self.workers,
            false => self.cores.min(self.workers),
        };
        let results: Vec<Result<Stored, StoreError>> = in_parallel(files, threads, copy);
        let mut out = Vec::with_capacity(results.len());
        let mut stored: Vec<(String, u64, String)> = Vec::new();
        for (file, result) in files.iter().zip(results) {
            match result {
                Ok(s) => {
                    let rel = FileStore::relative_path(&s.sha1);
                    stored.push((s.sha1.clone(), file.file.size, rel));
                    out.push(Ok(s));
                }
                Err(StoreError::Write { source, .. }) => return Err(target.write_error(source)),
                Err(e) => out.push(Err(e.to_string())),
            }
        }
        if !stored.is_empty() {
            // Durable before the catalog says they are there. The sync runs
            // on the blocking pool, so the next batch copies meanwhile.
            let sync = self.store.sync_later().map_err(|e| target.write_error(e))?;
            tokio::task::spawn_blocking(sync)
                .await
                .map_err(|e| target.write_error(std::io::Error::other(e)))?
                .map_err(|e| target.write_error(e))?;
            self.catalog.borrow_mut().add_files(&stored)?;
        }
        Ok(out)
    }

    async fn register(
        &self,
        units: &[&PlannedUnit],
        project: Option<crate::target::ProjectId>,
    ) -> Result<(Vec<Registered>, Vec<String>), ApplyError> {
        let primary_spec = self.primary_spec;
        let new_units: Vec<NewUnit<'_>> = units
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
        let ids = self.catalog.borrow_mut().create_units(
            self.collection,
            &self.apply_id,
            project.map(|p| p.0 as i64),
            &new_units,
        )?;
        Ok((
            ids.into_iter()
                .map(|id| Registered::Created(id.to_string()))
                .collect(),
            Vec::new(),
        ))
    }

    fn finish(&self, report: &ApplyReport) {
        let _ = self.catalog.borrow().finish_apply(
            &self.apply_id,
            &report.status,
            report.units.created,
            report.units.unchanged,
            report.units.failed,
            report.files.uploaded,
            report.bytes_uploaded,
        );
    }
}

/// `f` over `items` on up to `threads` threads, each taking the next item as
/// it finishes one; results in the order of `items`. Threads live for one
/// call: a pool's idle workers spun through a `sched_yield` storm between
/// batches of small files.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return done;
            };
            done.push((i, f(item)));
        }
    };
    let mut all: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn in_parallel_keeps_the_order_of_its_items() {
        let items: Vec<u32> = (0..1000).collect();
        for threads in [1, 2, 7, 64] {
            let out = super::in_parallel(&items, threads, |i| i * 2);
            assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        }
    }
}
