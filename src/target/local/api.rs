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

/// The units of collection `?1`.
const OF_COLLECTION: &str = "data_collection_id = ?1";

/// How many units `filter` (on `?1`, a collection) selects.
fn units_count_sql(filter: &str) -> String {
    format!("SELECT count(*) FROM data_units WHERE {filter}")
}

/// The rows (id, collection, meta) of `?2` units `filter` selects, after
/// id `?4` and `?3` more.
fn units_page_sql(filter: &str) -> String {
    format!(
        "SELECT id, data_collection_id, meta FROM data_units WHERE {filter} AND id > ?4 ORDER BY id LIMIT ?2 OFFSET ?3"
    )
}

/// Where a page of the API's unit listing ended, and what it was a page of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageCursor {
    /// The catalog's writes when it was listed: any since, and it is not used.
    stamp: (i64, u64),
    collection: Option<i64>,
    next_offset: u64,
    last_id: i64,
    count: u64,
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

    /// Units `offset..offset + limit` in id order (of one collection, or
    /// all), and how many there are.
    ///
    /// A client pages through in order, so the page after the last one
    /// listed starts after its last id, with the count it had, while nothing
    /// was written since: each page then costs its own units, not a count of
    /// the collection and a walk to its offset. Any other page is found
    /// through the (collection, id) index. The page is read in one read
    /// transaction: one consistent state, and one lock taken for it.
    pub fn api_units(
        &self,
        collection: Option<i64>,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<ApiUnit>), CatalogError> {
        let read = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let stamp = self.write_stamp()?;
        let follows = self
            .page_cursor
            .get()
            .filter(|c| c.stamp == stamp && c.collection == collection && c.next_offset == offset);
        // `?1 IS NULL` is a constant: the rows are walked in id order either way.
        let filter = match collection {
            Some(_) => OF_COLLECTION,
            None => "?1 IS NULL",
        };
        let count = match follows {
            Some(c) => c.count,
            None => self
                .conn
                .prepare_cached(&units_count_sql(filter))
                .and_then(|mut s| s.query_row([collection], |r| r.get::<_, i64>(0)))
                .map_err(|e| self.err(e))? as u64,
        };
        // The rows after the last id listed, or after `offset` of them.
        let (after, skip) = match follows {
            Some(c) => (c.last_id, 0),
            None => (i64::MIN, offset as i64),
        };
        let mut stmt = self
            .conn
            .prepare_cached(&units_page_sql(filter))
            .map_err(|e| self.err(e))?;
        let rows: Vec<(i64, i64, String)> = stmt
            .query_map(params![collection, limit as i64, skip, after], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        self.page_cursor
            .set(rows.last().map(|&(last_id, ..)| PageCursor {
                stamp,
                collection,
                next_offset: offset + rows.len() as u64,
                last_id,
                count,
            }));
        let units = rows
            .into_iter()
            .map(|(id, data_collection, meta)| self.api_unit_of(id, data_collection, &meta))
            .collect::<Result<_, _>>()?;
        read.finish().map_err(|e| self.err(e))?;
        Ok((count, units))
    }

    /// What changes when anything is written to the catalog: by another
    /// connection (`data_version`), or by this one (its total changes).
    fn write_stamp(&self) -> Result<(i64, u64), CatalogError> {
        let theirs = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok((theirs, self.conn.total_changes()))
    }

    pub fn api_unit(&self, id: i64) -> Result<Option<ApiUnit>, CatalogError> {
        let row: Option<(i64, String)> = self
            .conn
            .prepare_cached("SELECT data_collection_id, meta FROM data_units WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(|e| self.err(e))?;
        match row {
            Some((data_collection, meta)) => self.api_unit_of(id, data_collection, &meta).map(Some),
            None => Ok(None),
        }
    }

    /// The unit `id` of `data_collection` with `meta` (its row), with its
    /// files and groups.
    fn api_unit_of(
        &self,
        id: i64,
        data_collection: i64,
        meta: &str,
    ) -> Result<ApiUnit, CatalogError> {
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
        Ok(ApiUnit {
            id,
            data_collection,
            meta: serde_json::from_str(meta).unwrap_or(Json::Null),
            files,
            groups,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A catalog with collections `a` and `b` of `n` units each, made in
    /// turn so their ids interleave; returns it and `a`'s id.
    fn two_collections(dir: &std::path::Path, n: usize) -> (Catalog, i64) {
        let mut c = Catalog::open(dir).unwrap();
        let spec = FileSpec {
            name: "image_1".into(),
            file_type: "image".into(),
            extensions: vec!["png".into()],
            is_required: true,
            is_primary: true,
        };
        let a = c
            .ensure_collection("a", std::slice::from_ref(&spec), None)
            .unwrap();
        let b = c.ensure_collection("b", &[spec], None).unwrap();
        c.conn
            .execute(
                "INSERT INTO files (checksum, size, store_path, created_at) VALUES (?1, 1, 'x', 'now')",
                ["0".repeat(40)],
            )
            .unwrap();
        for i in 0..n {
            let units: Vec<ApiNewUnit> = [a, b]
                .into_iter()
                .map(|collection| ApiNewUnit {
                    data_collection: collection,
                    files: vec![("image_1".into(), "0".repeat(40), format!("{i}.png"))],
                    meta: json!({ "i": i }),
                    groups: vec![],
                })
                .collect();
            c.create_api_units(&units, &|_, _| true).unwrap();
        }
        (c, a)
    }

    fn ids(units: &[ApiUnit]) -> Vec<i64> {
        units.iter().map(|u| u.id).collect()
    }

    #[test]
    fn pages_in_order_follow_on_and_any_write_makes_the_next_one_count_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let (c, a) = two_collections(dir.path(), 25);
        let all: Vec<i64> = c
            .conn
            .prepare("SELECT id FROM data_units WHERE data_collection_id = ?1 ORDER BY id")
            .unwrap()
            .query_map([a], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // In order: each page goes on from where the last one ended.
        let mut paged = Vec::new();
        for offset in (0..25).step_by(7) {
            let (count, units) = c.api_units(Some(a), offset, 7).unwrap();
            assert_eq!(count, 25);
            assert!(c.page_cursor.get().is_some());
            paged.extend(ids(&units));
        }
        assert_eq!(paged, all);
        // Out of order, and across collections: found by offset.
        let (_, units) = c.api_units(Some(a), 14, 7).unwrap();
        assert_eq!(ids(&units), all[14..21]);
        let (count, units) = c.api_units(None, 0, 3).unwrap();
        assert_eq!((count, units.len()), (50, 3));
        assert_eq!(units[0].id, all[0]);
        // Another connection deletes a unit of the first page between two
        // pages: the next page is counted and found afresh, not after the
        // last id listed.
        c.api_units(Some(a), 0, 7).unwrap();
        let other =
            rusqlite::Connection::open(dir.path().join(super::super::catalog::CATALOG_FILE))
                .unwrap();
        other
            .execute("DELETE FROM unit_files WHERE data_unit_id = ?1", [all[2]])
            .unwrap();
        other
            .execute("DELETE FROM data_units WHERE id = ?1", [all[2]])
            .unwrap();
        let (count, units) = c.api_units(Some(a), 7, 7).unwrap();
        assert_eq!(count, 24);
        assert_eq!(ids(&units), all[8..15]);
    }

    #[test]
    fn a_collections_units_are_counted_and_found_through_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let (c, a) = two_collections(dir.path(), 3);
        let plan = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> String {
            c.conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(p, |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
                .join("; ")
        };
        let count = plan(&units_count_sql(OF_COLLECTION), &[&a]);
        assert!(
            count.contains("COVERING INDEX data_units_by_collection"),
            "{count}"
        );
        let page = plan(&units_page_sql(OF_COLLECTION), &[&a, &10, &5, &0]);
        assert!(page.contains("INDEX data_units_by_collection"), "{page}");
        assert!(!page.contains("TEMP B-TREE"), "no sort: {page}");
    }
}
