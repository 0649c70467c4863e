//! The embedded `local` target: a folder with `catalog.sqlite` and a
//! content-addressed file store. Nothing to install or start.

pub mod api;
pub mod catalog;
mod schema;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

pub use catalog::{ApplyRecord, Catalog, CatalogError, NewUnit};
pub use store::{FileStore, StoreError};

use super::{ExistingUnit, TargetError, TargetView};
use crate::recipe::resolve::FileSpec;

/// Read-only view of a local catalog's collection, for planning.
pub struct LocalView {
    catalog: Option<(Mutex<Catalog>, i64)>,
}

impl LocalView {
    /// Opens the catalog in `dir` if it exists; a collection that exists must
    /// have the recipe's specs.
    pub fn open(dir: &Path, collection: &str, specs: &[FileSpec]) -> Result<Self, CatalogError> {
        let Some(catalog) = Catalog::open_existing(dir)? else {
            return Ok(Self { catalog: None });
        };
        match catalog.find_collection(collection)? {
            Some(id) => {
                catalog.check_specs(id, collection, specs)?;
                Ok(Self {
                    catalog: Some((Mutex::new(catalog), id)),
                })
            }
            None => Ok(Self { catalog: None }),
        }
    }

    pub fn collection_id(&self) -> Option<i64> {
        self.catalog.as_ref().map(|(_, id)| *id)
    }
}

fn target_error(e: CatalogError) -> TargetError {
    TargetError::Unreadable {
        path: String::new(),
        message: e.to_string(),
    }
}

impl TargetView for LocalView {
    fn units_by_key(
        &self,
        keys: &[&str],
    ) -> Result<HashMap<String, Vec<ExistingUnit>>, TargetError> {
        match &self.catalog {
            None => Ok(HashMap::new()),
            Some((c, id)) => c
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .units_by_key(*id, keys)
                .map_err(target_error),
        }
    }
    fn known_checksums(&self, sha1s: &[&str]) -> Result<HashSet<String>, TargetError> {
        match &self.catalog {
            None => Ok(HashSet::new()),
            Some((c, _)) => c
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .known_checksums(sha1s)
                .map_err(target_error),
        }
    }
}

/// An exclusive lock on a target folder, held by the OS: a killed process
/// leaves none behind.
pub struct TargetLock {
    _file: std::fs::File,
}

pub enum LockWait {
    Acquired(TargetLock),
    /// Another process holds it; call `wait` to block until it is released.
    Busy(std::fs::File),
}

impl TargetLock {
    pub fn try_acquire(dir: &Path) -> std::io::Result<LockWait> {
        std::fs::create_dir_all(dir)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("apply.lock"))?;
        match file.try_lock() {
            Ok(()) => Ok(LockWait::Acquired(TargetLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(LockWait::Busy(file)),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether an apply holds the lock on `dir` right now (an apply recorded
    /// as running whose lock is free was killed: it is interrupted).
    pub fn is_held(dir: &Path) -> std::io::Result<bool> {
        let file = match std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("apply.lock"))
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    pub fn wait(file: std::fs::File) -> std::io::Result<TargetLock> {
        file.lock()?;
        Ok(TargetLock { _file: file })
    }
}
