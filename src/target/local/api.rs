//! The catalog as the Synapse API sees it: what `synup serve` reads and writes.
//!
//! Units registered through the API have no recipe key; their `key` column holds
//! a digest of their content (spec → checksum map and meta), so the UNIQUE
//! constraint on (collection, key) is what makes an identical unit reused
//! rather than created twice, even under concurrent requests.

use rusqlite::{OptionalExtension, params};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use super::catalog::{Catalog, CatalogError, now, sqlite_error};
use crate::recipe::resolve::FileSpec;

/// A unit as the API lists it (URLs are added by the server).
#[derive(Debug, Clone)]
pub struct ApiUnit {
    pub id: i64,
    pub data_collection: i64,
    pub meta: Json,
    /// (spec, checksum, path, size, is_primary), sorted by spec.
    pub files: Vec<(String, String, String, u64, bool)>,
    pub groups: Vec<String>,
}

/// A unit to register: files by spec → (checksum, original path).
#[derive(Debug, Clone)]
pub struct ApiNewUnit {
    pub data_collection: i64,
    pub files: Vec<(String, String, String)>,
    pub meta: Json,
    pub groups: Vec<String>,
}

impl ApiNewUnit {
    /// The content key: same files and same meta give the same key.
    pub fn content_key(&self) -> String {
        let mut files: Vec<(&str, &str)> = self
            .files
            .iter()
            .map(|(s, c, _)| (s.as_str(), c.as_str()))
            .collect();
        files.sort();
        let text = json!({"files": files, "meta": self.meta}).to_string();
        format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
    }
}

impl Catalog {
    /// Creates a collection with the id given, unless one with that id exists.
    pub fn seed_collection(
        &mut self,
        id: Option<i64>,
        name: &str,
        specs: &[FileSpec],
        meta: &Json,
    ) -> Result<i64, CatalogError> {
        if let Some(id) = id
            && self.collection_json(id)?.is_some()
        {
            return Ok(id);
        }
        if let Some(existing) = self.find_collection(name)?
            && id.is_none()
        {
            return Ok(existing);
        }
        self.insert_collection(id, name, meta, specs)
    }

    /// A collection in the API's shape.
    pub fn collection_json(&self, id: i64) -> Result<Option<Json>, CatalogError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT name, meta FROM data_collections WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((name, meta)) = row else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, name, file_type, extensions, is_required, is_primary, position FROM file_specifications WHERE data_collection_id = ?1 ORDER BY position")
            .map_err(|e| self.err(e))?;
        let specs: Vec<Json> = stmt
            .query_map([id], |r| {
                let exts: String = r.get(3)?;
                let exts: Vec<String> = serde_json::from_str(&exts).unwrap_or_default();
                Ok(json!({
                    "id": r.get::<_, i64>(0)?,
                    "name": r.get::<_, String>(1)?,
                    "file_type": r.get::<_, String>(2)?,
                    "extensions": exts.iter().map(|e| format!(".{e}")).collect::<Vec<_>>(),
                    "is_required": r.get::<_, i64>(4)? != 0,
                    "is_primary": r.get::<_, i64>(5)? != 0,
                    "index": r.get::<_, i64>(6)?,
                    "is_sequential": false,
                }))
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        Ok(Some(json!({
            "id": id,
            "name": name,
            "description": "",
            "category": "data",
            "meta": serde_json::from_str::<Json>(&meta).unwrap_or_else(|_| json!({})),
            "is_archived": false,
            "file_specifications": specs,
        })))
    }

    pub fn collection_ids(&self, offset: u64, limit: u64) -> Result<(u64, Vec<i64>), CatalogError> {
        let count: i64 = self
            .conn
            .query_row("SELECT count(*) FROM data_collections", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM data_collections ORDER BY id LIMIT ?1 OFFSET ?2")
            .map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map([limit as i64, offset as i64], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        Ok((count as u64, ids))
    }

    /// Stores a storage exactly as given (`id` kept).
    pub fn seed_storage(&self, storage: &Json) -> Result<i64, CatalogError> {
        let s = |k: &str| storage.get(k).and_then(Json::as_str).unwrap_or_default();
        self.conn
            .execute(
                "INSERT OR REPLACE INTO storages (id, name, category, provider, configuration, is_default) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    storage.get("id").and_then(Json::as_i64),
                    s("name"),
                    if s("category").is_empty() { "internal" } else { s("category") },
                    s("provider"),
                    storage.get("configuration").cloned().unwrap_or_else(|| json!({})).to_string(),
                    storage.get("is_default").and_then(Json::as_bool).unwrap_or(false),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Storages, optionally of one category, in id order.
    pub fn storages(&self, category: Option<&str>) -> Result<Vec<Json>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, name, category, provider, configuration, is_default FROM storages WHERE ?1 IS NULL OR category = ?1 ORDER BY id")
            .map_err(|e| self.err(e))?;
        stmt.query_map([category], storage_json)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    pub fn storage(&self, id: i64) -> Result<Option<Json>, CatalogError> {
        self.conn
            .query_row(
                "SELECT id, name, category, provider, configuration, is_default FROM storages WHERE id = ?1",
                [id],
                storage_json,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn seed_project(&self, id: i64, title: &str) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO projects (id, title) VALUES (?1, ?2)",
                params![id, title],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn project(&self, id: i64) -> Result<Option<String>, CatalogError> {
        self.conn
            .query_row("SELECT title FROM projects WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A stored file's (data-file id, size).
    pub fn data_file(&self, checksum: &str) -> Result<Option<(i64, u64)>, CatalogError> {
        self.conn
            .query_row(
                "SELECT rowid, size FROM files WHERE checksum = ?1",
                [checksum],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records a stored file; returns its data-file id and whether it is new.
    pub fn add_data_file(
        &self,
        checksum: &str,
        size: u64,
        store_path: &str,
    ) -> Result<(i64, bool), CatalogError> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO files (checksum, size, store_path, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![checksum, size as i64, store_path, now()],
            )
            .map_err(|e| self.err(e))?;
        let (id, _) = self
            .data_file(checksum)?
            .ok_or_else(|| CatalogError::Sqlite {
                path: self.path().display().to_string(),
                message: format!("file {checksum} vanished after insert"),
            })?;
        Ok((id, n == 1))
    }

    /// Records stored files in one transaction; returns (data-file id, created) for each.
    pub fn add_data_files(
        &mut self,
        files: &[(String, u64, String)],
    ) -> Result<Vec<(i64, bool)>, CatalogError> {
        let path = self.path().to_owned();
        let e = sqlite_error(&path);
        let tx = self.conn.transaction().map_err(e)?;
        let mut out = Vec::with_capacity(files.len());
        {
            let ts = now();
            let mut ins = tx.prepare_cached("INSERT OR IGNORE INTO files (checksum, size, store_path, created_at) VALUES (?1, ?2, ?3, ?4)").map_err(e)?;
            let mut get = tx
                .prepare_cached("SELECT rowid FROM files WHERE checksum = ?1")
                .map_err(e)?;
            for (sha, size, store_path) in files {
                let n = ins
                    .execute(params![sha, *size as i64, store_path, ts])
                    .map_err(e)?;
                let id: i64 = get.query_row([sha], |r| r.get(0)).map_err(e)?;
                out.push((id, n == 1));
            }
        }
        tx.commit().map_err(e)?;
        Ok(out)
    }

    /// A page of units, optionally of one collection, in id order.
    pub fn api_units(
        &self,
        collection: Option<i64>,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<ApiUnit>), CatalogError> {
        let count: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM data_units WHERE ?1 IS NULL OR data_collection_id = ?1",
                [collection],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM data_units WHERE ?1 IS NULL OR data_collection_id = ?1 ORDER BY id LIMIT ?2 OFFSET ?3")
            .map_err(|e| self.err(e))?;
        let ids: Vec<i64> = stmt
            .query_map(params![collection, limit as i64, offset as i64], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let mut units = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(u) = self.api_unit(id)? {
                units.push(u);
            }
        }
        Ok((count as u64, units))
    }

    pub fn api_unit(&self, id: i64) -> Result<Option<ApiUnit>, CatalogError> {
        let row: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT data_collection_id, meta FROM data_units WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((data_collection, meta)) = row else {
            return Ok(None);
        };
        let mut fstmt = self
            .conn
            .prepare_cached("SELECT spec, checksum, path, size, is_primary FROM unit_files WHERE data_unit_id = ?1 ORDER BY spec")
            .map_err(|e| self.err(e))?;
        let files = fstmt
            .query_map([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)? as u64,
                    r.get::<_, i64>(4)? != 0,
                ))
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let mut gstmt = self
            .conn
            .prepare_cached(
                "SELECT name FROM unit_groups WHERE data_unit_id = ?1 ORDER BY position",
            )
            .map_err(|e| self.err(e))?;
        let groups = gstmt
            .query_map([id], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        Ok(Some(ApiUnit {
            id,
            data_collection,
            meta: serde_json::from_str(&meta).unwrap_or(Json::Null),
            files,
            groups,
        }))
    }

    /// Registers units in one transaction: all or none. An identical unit
    /// (same files, same meta) is reused. Returns (id, created) in order.
    /// Callers validate specs, checksums and meta first.
    pub fn create_api_units(
        &mut self,
        units: &[ApiNewUnit],
        primary: &dyn Fn(i64, &str) -> bool,
    ) -> Result<Vec<(i64, bool)>, CatalogError> {
        let path = self.path().to_owned();
        let e = sqlite_error(&path);
        let tx = self.conn.transaction().map_err(e)?;
        let mut out = Vec::with_capacity(units.len());
        {
            let ts = now();
            let mut find = tx
                .prepare_cached(
                    "SELECT id FROM data_units WHERE data_collection_id = ?1 AND key = ?2",
                )
                .map_err(e)?;
            let mut unit_stmt = tx.prepare_cached("INSERT INTO data_units (data_collection_id, key, meta, created_at) VALUES (?1, ?2, ?3, ?4)").map_err(e)?;
            let mut file_stmt = tx.prepare_cached("INSERT INTO unit_files (data_unit_id, spec, checksum, path, size, is_primary) VALUES (?1, ?2, ?3, ?4, (SELECT size FROM files WHERE checksum = ?3), ?5)").map_err(e)?;
            let mut group_stmt = tx
                .prepare_cached(
                    "INSERT INTO unit_groups (data_unit_id, position, name) VALUES (?1, ?2, ?3)",
                )
                .map_err(e)?;
            for u in units {
                let key = u.content_key();
                if let Some(id) = find
                    .query_row(params![u.data_collection, key], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(e)?
                {
                    out.push((id, false));
                    continue;
                }
                unit_stmt
                    .execute(params![u.data_collection, key, u.meta.to_string(), ts])
                    .map_err(e)?;
                let id = tx.last_insert_rowid();
                for (spec, checksum, original) in &u.files {
                    file_stmt
                        .execute(params![
                            id,
                            spec,
                            checksum,
                            original,
                            primary(u.data_collection, spec)
                        ])
                        .map_err(e)?;
                }
                for (i, g) in u.groups.iter().enumerate() {
                    group_stmt.execute(params![id, i as i64, g]).map_err(e)?;
                }
                out.push((id, true));
            }
        }
        tx.commit().map_err(e)?;
        Ok(out)
    }

    /// Creates one task per unit (an existing one is kept); returns (task id, unit id).
    pub fn create_tasks(
        &mut self,
        project: i64,
        units: &[i64],
    ) -> Result<Vec<(i64, i64)>, CatalogError> {
        let path = self.path().to_owned();
        let e = sqlite_error(&path);
        let tx = self.conn.transaction().map_err(e)?;
        let mut out = Vec::with_capacity(units.len());
        {
            let ts = now();
            let mut ins = tx.prepare_cached("INSERT OR IGNORE INTO tasks (project_id, data_unit_id, created_at) VALUES (?1, ?2, ?3)").map_err(e)?;
            let mut get = tx
                .prepare_cached("SELECT id FROM tasks WHERE project_id = ?1 AND data_unit_id = ?2")
                .map_err(e)?;
            for &u in units {
                ins.execute(params![project, u, ts]).map_err(e)?;
                let id: i64 = get
                    .query_row(params![project, u], |r| r.get(0))
                    .map_err(e)?;
                out.push((id, u));
            }
        }
        tx.commit().map_err(e)?;
        Ok(out)
    }

    pub fn count_tasks(&self, project: i64) -> Result<u64, CatalogError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM tasks WHERE project_id = ?1",
                [project],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
}

fn storage_json(r: &rusqlite::Row<'_>) -> rusqlite::Result<Json> {
    let config: String = r.get(4)?;
    Ok(json!({
        "id": r.get::<_, i64>(0)?,
        "name": r.get::<_, String>(1)?,
        "category": r.get::<_, String>(2)?,
        "provider": r.get::<_, String>(3)?,
        "configuration": serde_json::from_str::<Json>(&config).unwrap_or_else(|_| json!({})),
        "is_default": r.get::<_, i64>(5)? != 0,
    }))
}
