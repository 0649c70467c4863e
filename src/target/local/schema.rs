//! The catalog's schema and its versions (`PRAGMA user_version`).
//!
//! A catalog records the schema version it was last brought to. Opening it
//! for writing upgrades it in one transaction, migration by migration, so a
//! catalog is always at one version, never between two. A catalog from a
//! newer synup is never changed, and is refused for reading too (an older
//! reader may misread a newer layout). Version 0 is an empty file or a
//! catalog made before versions were recorded; both had exactly version 1's
//! tables, which `CREATE TABLE IF NOT EXISTS` completes.

use std::path::Path;

use rusqlite::Connection;

use super::catalog::{CatalogError, sqlite_error};

/// Schema version 1: every table as it is today.
const VERSION_1: &str = "
CREATE TABLE IF NOT EXISTS data_collections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    meta TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS file_specifications (
    id INTEGER PRIMARY KEY,
    data_collection_id INTEGER NOT NULL REFERENCES data_collections(id),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    file_type TEXT NOT NULL,
    extensions TEXT NOT NULL,
    is_required INTEGER NOT NULL,
    is_primary INTEGER NOT NULL,
    UNIQUE (data_collection_id, name)
);
CREATE TABLE IF NOT EXISTS files (
    checksum TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    store_path TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS data_units (
    id INTEGER PRIMARY KEY,
    data_collection_id INTEGER NOT NULL REFERENCES data_collections(id),
    key TEXT NOT NULL,
    meta TEXT NOT NULL,
    created_at TEXT NOT NULL,
    apply_id TEXT,
    UNIQUE (data_collection_id, key)
);
CREATE TABLE IF NOT EXISTS unit_files (
    data_unit_id INTEGER NOT NULL REFERENCES data_units(id),
    spec TEXT NOT NULL,
    checksum TEXT NOT NULL REFERENCES files(checksum),
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    is_primary INTEGER NOT NULL,
    PRIMARY KEY (data_unit_id, spec)
);
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    data_unit_id INTEGER NOT NULL REFERENCES data_units(id),
    created_at TEXT NOT NULL,
    UNIQUE (project_id, data_unit_id)
);
CREATE TABLE IF NOT EXISTS storages (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    provider TEXT NOT NULL,
    configuration TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS unit_groups (
    data_unit_id INTEGER NOT NULL REFERENCES data_units(id),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (data_unit_id, position)
);
CREATE TABLE IF NOT EXISTS applies (
    id TEXT PRIMARY KEY,
    data_collection_id INTEGER NOT NULL,
    recipe_name TEXT NOT NULL,
    recipe_path TEXT NOT NULL,
    plan_hash TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    created_units INTEGER NOT NULL DEFAULT 0,
    skipped_units INTEGER NOT NULL DEFAULT 0,
    failed_units INTEGER NOT NULL DEFAULT 0,
    uploaded_files INTEGER NOT NULL DEFAULT 0,
    uploaded_bytes INTEGER NOT NULL DEFAULT 0
);
";

/// Schema version 2: a collection's units in id order, which is how the API
/// pages them (counting them, and finding a page, read only this index).
const VERSION_2: &str = "
CREATE INDEX IF NOT EXISTS data_units_by_collection ON data_units (data_collection_id, id);
";

/// How to bring a catalog from one version to the next: `MIGRATIONS[i]`
/// takes version `i` to `i + 1`. Append a step to change the schema; never
/// edit one that has shipped.
const MIGRATIONS: &[&str] = &[VERSION_1, VERSION_2];

/// The version this synup writes.
pub(super) const CURRENT: i64 = MIGRATIONS.len() as i64;

fn version(conn: &Connection, path: &Path) -> Result<i64, CatalogError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_error(path))
}

/// Brings the catalog at `path` to [`CURRENT`], or refuses a newer one.
pub(super) fn upgrade(conn: &Connection, path: &Path) -> Result<(), CatalogError> {
    upgrade_with(conn, path, MIGRATIONS)
}

fn upgrade_with(conn: &Connection, path: &Path, migrations: &[&str]) -> Result<(), CatalogError> {
    let sqlite = sqlite_error(path);
    let known = migrations.len() as i64;
    // Checked again inside the transaction: another process may upgrade first.
    if version(conn, path)? == known {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite)?;
    let result = (|| {
        let found = version(conn, path)?;
        if found > known {
            return Err(CatalogError::TooNew {
                path: path.display().to_string(),
                found,
                known,
            });
        }
        for (from, step) in migrations.iter().enumerate().skip(found as usize) {
            conn.execute_batch(step).map_err(sqlite)?;
            tracing::debug!(catalog = %path.display(), from, to = from + 1, "catalog schema upgraded");
        }
        // A pragma cannot take a parameter; `known` is a count, not input.
        conn.execute_batch(&format!("PRAGMA user_version = {known}"))
            .map_err(sqlite)
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(sqlite),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// A read-only opener's check: a catalog from a newer synup is refused.
pub(super) fn check_readable(conn: &Connection, path: &Path) -> Result<(), CatalogError> {
    let found = version(conn, path)?;
    if found > CURRENT {
        return Err(CatalogError::TooNew {
            path: path.display().to_string(),
            found,
            known: CURRENT,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_new_catalog_is_stamped_and_an_unversioned_one_is_completed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let conn = Connection::open(&path).unwrap();
        upgrade(&conn, &path).unwrap();
        assert_eq!(version(&conn, &path).unwrap(), CURRENT);
        assert!(tables(&conn).contains(&"data_units".to_owned()));
        // A catalog from before versions were recorded: one table missing.
        conn.execute_batch("DROP TABLE applies; PRAGMA user_version = 0")
            .unwrap();
        upgrade(&conn, &path).unwrap();
        assert!(tables(&conn).contains(&"applies".to_owned()));
        assert_eq!(version(&conn, &path).unwrap(), CURRENT);
        // A version 1 catalog gains the index the API pages units by.
        conn.execute_batch("DROP INDEX data_units_by_collection; PRAGMA user_version = 1")
            .unwrap();
        upgrade(&conn, &path).unwrap();
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'data_units_by_collection'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!((indexes, version(&conn, &path).unwrap()), (1, 2));
    }

    #[test]
    fn migrations_run_in_order_once_and_a_failing_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let conn = Connection::open(&path).unwrap();
        let v2 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);";
        let v3 = "ALTER TABLE notes ADD COLUMN author TEXT;";
        upgrade_with(&conn, &path, &[VERSION_1, v2]).unwrap();
        conn.execute_batch("INSERT INTO notes (text) VALUES ('kept')")
            .unwrap();
        upgrade_with(&conn, &path, &[VERSION_1, v2, v3]).unwrap();
        assert_eq!(version(&conn, &path).unwrap(), 3);
        let author: Option<String> = conn
            .query_row("SELECT author FROM notes WHERE text = 'kept'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(author, None);
        // Running again applies nothing (v3 twice would fail: duplicate column).
        upgrade_with(&conn, &path, &[VERSION_1, v2, v3]).unwrap();
        let broken = "CREATE TABLE more (x); THIS IS NOT SQL;";
        assert!(upgrade_with(&conn, &path, &[VERSION_1, v2, v3, broken]).is_err());
        assert_eq!(version(&conn, &path).unwrap(), 3);
        assert!(!tables(&conn).contains(&"more".to_owned()), "rolled back");
    }

    #[test]
    fn a_catalog_from_a_newer_synup_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let conn = Connection::open(&path).unwrap();
        upgrade(&conn, &path).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", CURRENT + 1))
            .unwrap();
        let err = upgrade(&conn, &path).unwrap_err();
        assert!(matches!(err, CatalogError::TooNew { found, .. } if found == CURRENT + 1));
        assert!(check_readable(&conn, &path).is_err());
        assert_eq!(version(&conn, &path).unwrap(), CURRENT + 1);
    }
}
