//! The local catalog: an SQLite database beside a content-addressed file store.
//!
//! `data_units` has exactly one row per unit in the target, with the unit key in
//! `key` and the collection in `data_collection_id`; users may query it with
//! `sqlite3`. A unit's rows (`data_units`, `unit_files`, `tasks`) are written in
//! one transaction together with the other units of its batch, and only after
//! every file they reference is in the store and in `files`, so the catalog never
//! points at a missing file.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::Value as Json;

use crate::recipe::resolve::FileSpec;
use crate::target::ExistingUnit;

/// Strings as the value of an `rarray(?)` parameter.
fn text_array(items: &[&str]) -> std::rc::Rc<Vec<rusqlite::types::Value>> {
    std::rc::Rc::new(
        items
            .iter()
            .map(|s| rusqlite::types::Value::Text((*s).to_owned()))
            .collect(),
    )
}

pub const CATALOG_FILE: &str = "catalog.sqlite";

/// A catalog failure, always naming the catalog file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CatalogError {
    #[error("catalog {path}: {message}")]
    #[diagnostic(
        code(synup::target::catalog),
        help("if the catalog is damaged, move it aside; `.synup/` journals let apply resume")
    )]
    Sqlite { path: String, message: String },
    #[error("catalog {path} fails its integrity check: {detail}")]
    #[diagnostic(
        code(synup::target::catalog_corrupt),
        help("restore the catalog from a backup, or move it aside and apply again")
    )]
    Corrupt { path: String, detail: String },
    #[error(
        "catalog {path} has schema version {found}, newer than this synup's {known}: it was written by a newer synup"
    )]
    #[diagnostic(
        code(synup::target::catalog_too_new),
        help("upgrade synup; an older synup never changes a newer catalog")
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("collection `{name}` in {path} has other file specifications than the recipe:\n{diff}")]
    #[diagnostic(
        code(synup::target::spec_mismatch),
        help(
            "a collection's specs never change silently: use another `data_collection`, or restore the recipe's collection block"
        )
    )]
    SpecMismatch {
        path: String,
        name: String,
        diff: String,
    },
}

/// A unit as it is registered.
pub struct NewUnit<'a> {
    pub key: &'a str,
    /// The meta object as JSON text (the plan keeps it so; stored as is).
    pub meta_json: &'a str,
    /// (spec, checksum, source path, size, is_primary)
    pub files: Vec<(&'a str, &'a str, &'a str, u64, bool)>,
}

pub struct Catalog {
    pub(super) conn: Connection,
    path: PathBuf,
    /// Where the last page of units the API listed ended, for the next page
    /// to start there instead of counting its way to its offset.
    pub(super) page_cursor: std::cell::Cell<Option<super::api::PageCursor>>,
}

/// Maps SQLite and I/O errors to a [`CatalogError`] naming the catalog file.
pub(super) fn sqlite_error<E: std::fmt::Display>(
    path: &Path,
) -> impl Fn(E) -> CatalogError + Copy + '_ {
    move |e| CatalogError::Sqlite {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

pub(super) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The current UTC time as the API writes it.
pub fn now_rfc3339() -> String {
    now()
}

impl Catalog {
    pub(super) fn err(&self, e: rusqlite::Error) -> CatalogError {
        sqlite_error(&self.path)(e)
    }

    /// Opens (creating if needed) the catalog in `dir`.
    pub fn open(dir: &Path) -> Result<Self, CatalogError> {
        let path = dir.join(CATALOG_FILE);
        let sqlite = sqlite_error(&path);
        std::fs::create_dir_all(dir).map_err(sqlite_error(&path))?;
        let conn = Connection::open(&path).map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(sqlite)?;
        // WAL keeps every commit atomic. `synchronous=NORMAL` does not fsync
        // each commit: a power loss may take the last commits back, which a
        // rerun redoes. It can never leave a unit pointing at a missing file,
        // because apply makes the store's files durable (syncfs) before the
        // commit that references them, and the WAL is replayed in order.
        // A 32 MiB page cache and a checkpoint every 32 MiB of WAL keep the
        // indexes' pages from being read and written back batch after batch.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; \
             PRAGMA cache_size=-32768; PRAGMA wal_autocheckpoint=8192;",
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                CatalogError::Corrupt {
                    path: path.display().to_string(),
                    detail: "not an SQLite database".to_owned(),
                }
            }
            other => sqlite(other),
        })?;
        super::schema::upgrade(&conn, &path)?;
        rusqlite::vtab::array::load_module(&conn).map_err(sqlite)?;
        Ok(Self {
            conn,
            path,
            page_cursor: Default::default(),
        })
    }

    /// Opens an existing catalog read-only; `None` when there is none.
    pub fn open_existing(dir: &Path) -> Result<Option<Self>, CatalogError> {
        let path = dir.join(CATALOG_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let sqlite = sqlite_error(&path);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(sqlite)?;
        rusqlite::vtab::array::load_module(&conn).map_err(sqlite)?;
        let c = Self {
            conn,
            path,
            page_cursor: Default::default(),
        };
        c.check_integrity()?;
        super::schema::check_readable(&c.conn, &c.path)?;
        Ok(Some(c))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PRAGMA quick_check`, as an error naming the file: every page readable
    /// and every record well formed, which is what a truncated, overwritten
    /// or half-copied file breaks. `integrity_check` would also compare each
    /// index with its table, which only a bug can break, and took 11.7 s of a
    /// 33 s plan against a catalog of a million units (`quick_check`: 1.7 s).
    pub fn check_integrity(&self) -> Result<(), CatalogError> {
        let corrupt = |detail: String| CatalogError::Corrupt {
            path: self.path.display().to_string(),
            detail,
        };
        let result: Result<String, _> = self.conn.query_row("PRAGMA quick_check", [], |r| r.get(0));
        match result {
            Ok(s) if s == "ok" => Ok(()),
            Ok(s) => Err(corrupt(s)),
            Err(rusqlite::Error::SqliteFailure(f, m))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
                ) =>
            {
                Err(corrupt(
                    m.unwrap_or_else(|| "not an SQLite database".to_owned()),
                ))
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// The collection's id by name or id, if it exists.
    pub fn find_collection(&self, name_or_id: &str) -> Result<Option<i64>, CatalogError> {
        let by_name: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM data_collections WHERE name = ?1",
                [name_or_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if by_name.is_some() {
            return Ok(by_name);
        }
        match name_or_id.parse::<i64>() {
            Ok(id) => self
                .conn
                .query_row("SELECT id FROM data_collections WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| self.err(e)),
            Err(_) => Ok(None),
        }
    }

    pub fn collection_specs(&self, id: i64) -> Result<Vec<FileSpec>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, file_type, extensions, is_required, is_primary FROM file_specifications WHERE data_collection_id = ?1 ORDER BY position")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([id], |r| {
                let exts: String = r.get(2)?;
                Ok(FileSpec {
                    name: r.get(0)?,
                    file_type: r.get(1)?,
                    extensions: serde_json::from_str(&exts).unwrap_or_default(),
                    is_required: r.get::<_, i64>(3)? != 0,
                    is_primary: r.get::<_, i64>(4)? != 0,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Checks that an existing collection has exactly the recipe's specs.
    pub fn check_specs(&self, id: i64, name: &str, specs: &[FileSpec]) -> Result<(), CatalogError> {
        let have = self.collection_specs(id)?;
        if have == specs {
            return Ok(());
        }
        let mut diff = Vec::new();
        for s in &have {
            if !specs.contains(s) {
                diff.push(format!("  - {}", s.describe()));
            }
        }
        for s in specs {
            if !have.contains(s) {
                diff.push(format!("  + {}", s.describe()));
            }
        }
        Err(CatalogError::SpecMismatch {
            path: self.path.display().to_string(),
            name: name.to_owned(),
            diff: diff.join("\n"),
        })
    }

    /// Finds or creates the collection; an existing one must have the same specs.
    pub fn ensure_collection(
        &mut self,
        name_or_id: &str,
        specs: &[FileSpec],
        meta_schema: Option<&Json>,
    ) -> Result<i64, CatalogError> {
        if let Some(id) = self.find_collection(name_or_id)? {
            self.check_specs(id, name_or_id, specs)?;
            return Ok(id);
        }
        let meta = serde_json::json!({ "data_unit_meta_schema": meta_schema });
        self.insert_collection(name_or_id.parse::<i64>().ok(), name_or_id, &meta, specs)
    }

    /// Inserts a collection and its specs in one transaction; returns its id.
    pub(super) fn insert_collection(
        &mut self,
        id: Option<i64>,
        name: &str,
        meta: &Json,
        specs: &[FileSpec],
    ) -> Result<i64, CatalogError> {
        let e = sqlite_error(&self.path);
        let tx = self.conn.transaction().map_err(e)?;
        tx.execute(
            "INSERT INTO data_collections (id, name, meta, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, name, meta.to_string(), now()],
        )
        .map_err(e)?;
        let id = tx.last_insert_rowid();
        for (pos, s) in specs.iter().enumerate() {
            tx.execute(
                "INSERT INTO file_specifications (data_collection_id, position, name, file_type, extensions, is_required, is_primary) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id, pos as i64, s.name, s.file_type, serde_json::to_string(&s.extensions).unwrap_or_default(), s.is_required, s.is_primary],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)?;
        Ok(id)
    }

    /// Units with these keys, found through the `(collection, key)` index in
    /// one query, however many keys are asked and however many units the
    /// collection holds. Callers ask a window of keys at a time, so the answer
    /// stays small.
    pub fn units_by_key(
        &self,
        collection: i64,
        keys: &[&str],
    ) -> Result<HashMap<String, Vec<ExistingUnit>>, CatalogError> {
        let mut out: HashMap<String, Vec<ExistingUnit>> = HashMap::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT d.id, d.key, d.meta, f.spec, f.checksum FROM data_units d \
                 LEFT JOIN unit_files f ON f.data_unit_id = d.id \
                 WHERE d.data_collection_id = ?1 AND d.key IN rarray(?2) ORDER BY d.id, f.spec",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(params![collection, text_array(keys)])
            .map_err(|e| self.err(e))?;
        let mut current: Option<(String, ExistingUnit)> = None;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let id: i64 = row.get(0).map_err(|e| self.err(e))?;
            if current.as_ref().is_none_or(|(_, u)| u.id != id.to_string()) {
                if let Some((k, u)) = current.take() {
                    out.entry(k).or_default().push(u);
                }
                current = Some((
                    row.get(1).map_err(|e| self.err(e))?,
                    ExistingUnit {
                        id: id.to_string(),
                        files: Vec::new(),
                        meta_json: row.get(2).map_err(|e| self.err(e))?,
                    },
                ));
            }
            let spec: Option<String> = row.get(3).map_err(|e| self.err(e))?;
            let sha: Option<String> = row.get(4).map_err(|e| self.err(e))?;
            if let (Some(spec), Some(sha), Some((_, u))) = (spec, sha, current.as_mut()) {
                u.files.push((spec, sha));
            }
        }
        if let Some((k, u)) = current.take() {
            out.entry(k).or_default().push(u);
        }
        Ok(out)
    }

    /// Which of these checksums the catalog has: one query through the
    /// primary key, never a scan of every file.
    pub fn known_checksums(&self, sha1s: &[&str]) -> Result<HashSet<String>, CatalogError> {
        if sha1s.is_empty() {
            return Ok(HashSet::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT checksum FROM files WHERE checksum IN rarray(?1)")
            .map_err(|e| self.err(e))?;
        stmt.query_map([text_array(sha1s)], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    /// Records files already in the store, in one transaction.
    pub fn add_files(&mut self, files: &[(String, u64, String)]) -> Result<(), CatalogError> {
        let e = sqlite_error(&self.path);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut stmt = tx.prepare_cached("INSERT OR IGNORE INTO files (checksum, size, store_path, created_at) VALUES (?1, ?2, ?3, ?4)").map_err(e)?;
            let ts = now();
            for (sha, size, store_path) in files {
                stmt.execute(params![sha, *size as i64, store_path, ts])
                    .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// Registers a batch of units atomically; returns their ids in order.
    /// A key that already exists makes the whole batch fail (the caller re-diffs).
    pub fn create_units(
        &mut self,
        collection: i64,
        apply_id: &str,
        project: Option<i64>,
        units: &[NewUnit<'_>],
    ) -> Result<Vec<i64>, CatalogError> {
        let e = sqlite_error(&self.path);
        let tx = self.conn.transaction().map_err(e)?;
        let mut ids = Vec::with_capacity(units.len());
        {
            let ts = now();
            if let Some(p) = project {
                tx.execute(
                    "INSERT OR IGNORE INTO projects (id, title) VALUES (?1, ?2)",
                    params![p, format!("project {p}")],
                )
                .map_err(e)?;
            }
            let mut unit_stmt = tx.prepare_cached("INSERT INTO data_units (data_collection_id, key, meta, created_at, apply_id) VALUES (?1, ?2, ?3, ?4, ?5)").map_err(e)?;
            let mut file_stmt = tx.prepare_cached("INSERT INTO unit_files (data_unit_id, spec, checksum, path, size, is_primary) VALUES (?1, ?2, ?3, ?4, ?5, ?6)").map_err(e)?;
            let mut task_stmt = tx.prepare_cached("INSERT OR IGNORE INTO tasks (project_id, data_unit_id, created_at) VALUES (?1, ?2, ?3)").map_err(e)?;
            for u in units {
                unit_stmt
                    .execute(params![collection, u.key, u.meta_json, ts, apply_id])
                    .map_err(e)?;
                let id = tx.last_insert_rowid();
                for (spec, sha, src, size, primary) in &u.files {
                    file_stmt
                        .execute(params![id, spec, sha, src, *size as i64, primary])
                        .map_err(e)?;
                }
                if let Some(p) = project {
                    task_stmt.execute(params![p, id, ts]).map_err(e)?;
                }
                ids.push(id);
            }
        }
        tx.commit().map_err(e)?;
        Ok(ids)
    }

    pub fn begin_apply(
        &self,
        id: &str,
        collection: i64,
        recipe_name: &str,
        recipe_path: &str,
        plan_hash: &str,
    ) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO applies (id, data_collection_id, recipe_name, recipe_path, plan_hash, started_at, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running')",
                params![id, collection, recipe_name, recipe_path, plan_hash, now()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn finish_apply(
        &self,
        id: &str,
        status: &str,
        created: u64,
        skipped: u64,
        failed: u64,
        files: u64,
        bytes: u64,
    ) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE applies SET finished_at = ?2, status = ?3, created_units = ?4, skipped_units = ?5, failed_units = ?6, uploaded_files = ?7, uploaded_bytes = ?8 WHERE id = ?1",
                params![id, now(), status, created as i64, skipped as i64, failed as i64, files as i64, bytes as i64],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Units in a collection.
    pub fn count_units(&self, collection: i64) -> Result<u64, CatalogError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM data_units WHERE data_collection_id = ?1",
                [collection],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Past applies of a recipe, newest first.
    pub fn applies(
        &self,
        recipe_name: &str,
        limit: usize,
    ) -> Result<Vec<ApplyRecord>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, plan_hash, started_at, finished_at, status, created_units, skipped_units, failed_units, uploaded_files, uploaded_bytes FROM applies WHERE recipe_name = ?1 ORDER BY started_at DESC, id DESC LIMIT ?2")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![recipe_name, limit as i64], |r| {
                Ok(ApplyRecord {
                    id: r.get(0)?,
                    plan_hash: r.get(1)?,
                    started_at: r.get(2)?,
                    finished_at: r.get(3)?,
                    status: r.get(4)?,
                    created_units: r.get::<_, i64>(5)? as u64,
                    skipped_units: r.get::<_, i64>(6)? as u64,
                    failed_units: r.get::<_, i64>(7)? as u64,
                    uploaded_files: r.get::<_, i64>(8)? as u64,
                    uploaded_bytes: r.get::<_, i64>(9)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Checksums that units reference but the store beside the catalog lacks:
    /// an invariant that must never break (shown by `status`).
    pub fn missing_store_files(&self) -> Result<Vec<String>, CatalogError> {
        let store_root = self.path.parent().unwrap_or(Path::new("."));
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT f.checksum, f.store_path FROM unit_files u JOIN files f ON f.checksum = u.checksum ORDER BY 1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut missing = Vec::new();
        for row in rows {
            let (sha, store_path) = row.map_err(|e| self.err(e))?;
            if !store_root.join(store_path).is_file() {
                missing.push(sha);
            }
        }
        Ok(missing)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplyRecord {
    pub id: String,
    pub plan_hash: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub created_units: u64,
    pub skipped_units: u64,
    pub failed_units: u64,
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
}
