//! Parsed spreadsheets kept under `.synup/cache/`, so a plan of an unchanged
//! workbook does not unzip and parse its XML again.
//!
//! An entry is addressed by content, not by file time: its key is a SHA-256 of
//! the workbook's own SHA-256 (which the plan computes anyway, for its inputs),
//! the options that shape the table, the format and this program's version. A
//! file edited within the same second, or copied with its old mtime, can
//! therefore never be served stale. Declared column types are not part of the
//! key: they only pick how cells convert, and are applied again on load.
//!
//! One slot per recipe and metadata source: a new key overwrites the old entry,
//! so the cache never grows beyond one table per sheet of the recipe.
//!
//! The file is a flat little-endian encoding ending in a marker and its own
//! length; anything that does not decode exactly (a torn write, another
//! version) is a miss, never an error.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::rows::{SheetRowsBuilder, get_row, put_row};
use super::sheet::{SheetError, SheetOptions, SheetTable, load_csv, load_excel};
use crate::cache_file::{self, In, Out, SealedReader};
use crate::stages::{Warning, WarningCode};

const MAGIC: &[u8; 16] = b"synup-sheet-v2\n\0";

/// Where one sheet's parsed table is kept, and the key it must carry.
pub struct SheetCache {
    path: PathBuf,
    key: [u8; 32],
}

impl SheetCache {
    /// `format` tells the readers apart (`csv`, or the workbook's extension);
    /// `content` is the SHA-256 of the file's bytes.
    pub fn new(path: PathBuf, content: &[u8; 32], format: &str, opts: &SheetOptions<'_>) -> Self {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(MAGIC);
        field(env!("CARGO_PKG_VERSION").as_bytes());
        field(content);
        field(format.as_bytes());
        field(opts.source.as_bytes());
        field(opts.sheet.map_or(&[0xff][..], str::as_bytes));
        field(&opts.header_row.to_le_bytes());
        field(opts.key_column.map_or(&[0xff][..], str::as_bytes));
        field(opts.delimiter.as_slice());
        field(opts.encoding.map_or(&[0xff][..], |e| e.name().as_bytes()));
        Self {
            path,
            key: h.finalize().into(),
        }
    }

    /// The cached table, if there is one for this key. `Err(Ok)` for a
    /// file that is there but does not decode (damaged, or another
    /// version's); `Err(Err)` when its rows could not be spilled.
    pub fn load(
        &self,
        opts: &SheetOptions<'_>,
    ) -> Result<Option<SheetTable>, Result<String, SheetError>> {
        if std::fs::symlink_metadata(&self.path).is_err() {
            return Ok(None);
        }
        // Read forward a window at a time: a million rows' cache is 100 MB.
        let mut r = SealedReader::open(&self.path, MAGIC).ok_or_else(|| Ok(self.damaged()))?;
        let key = r
            .next(|r| r.take(32).map(<[u8]>::to_vec))
            .ok_or_else(|| Ok(self.damaged()))?;
        if key != self.key {
            return Ok(None); // another workbook or options: the slot is reused
        }
        match decode(&mut r, opts) {
            Some(Ok(table)) => Ok(Some(table)),
            Some(Err(e)) => Err(Err(e)),
            None => Err(Ok(self.damaged())),
        }
    }

    fn damaged(&self) -> String {
        format!(
            "sheet cache {} is unreadable (damaged, or another version's); rebuilding it",
            self.path.display()
        )
    }

    /// Replaces the slot's entry.
    pub fn store(&self, table: &SheetTable) -> std::io::Result<()> {
        cache_file::store(&self.path, &encode(table, &self.key)?)
    }
}

/// A sheet's table: from the cache slot at `slot` when a file whose content
/// has SHA-256 `digest` was parsed with these options before, else parsed
/// from the bytes `read` gives (and cached; a cache that cannot be written
/// only costs the next plan a parse). A warm plan so never holds the file's
/// bytes, only its table. Returns the SHA-256 of what the table came from,
/// which names the file among the plan's inputs: the bytes read, if the file
/// changed after `digest` was taken.
pub fn load_or_parse(
    slot: PathBuf,
    path: &Path,
    digest: [u8; 32],
    read: impl FnOnce() -> Result<Vec<u8>, String>,
    is_csv: bool,
    opts: &SheetOptions<'_>,
) -> (Result<SheetTable, SheetError>, [u8; 32]) {
    let format = if is_csv {
        "csv".to_owned()
    } else {
        path.extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let cache = SheetCache::new(slot.clone(), &digest, &format, opts);
    let damage = match cache.load(opts) {
        Ok(Some(table)) => return (Ok(table), digest),
        Ok(None) => None,
        Err(Ok(why)) => Some(why),
        Err(Err(e)) => return (Err(e), digest),
    };
    let bytes = match read() {
        Ok(b) => b,
        Err(why) => return (Err(SheetError::Unreadable(why)), digest),
    };
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let cache = SheetCache::new(slot, &digest, &format, opts);
    let bytes = bytes.as_slice();
    let mut table = if is_csv {
        load_csv(path, bytes, opts)
    } else {
        load_excel(path, bytes, opts)
    };
    if let Ok(t) = &mut table {
        let _ = cache.store(t);
        if let Some(why) = damage {
            t.warnings.push(Warning::new(
                crate::stages::WarningCode::SheetCacheRebuilt,
                why,
            ));
        }
    }
    (table, digest)
}

/// The table's rows are written in key order, as they are held.
fn encode(t: &SheetTable, key: &[u8; 32]) -> std::io::Result<Vec<u8>> {
    let mut out = Out::new(MAGIC, 64 + t.rows.len() * 48);
    out.0.extend_from_slice(key);
    out.str(&t.source);
    match &t.sheet {
        Some(s) => {
            out.u8(1);
            out.str(s);
        }
        None => out.u8(0),
    }
    out.u32(t.headers.len() as u32);
    for (h, c) in t.headers.iter().zip(&t.columns) {
        out.str(h);
        out.u32(*c);
    }
    out.u32(t.warnings.len() as u32);
    for w in &t.warnings {
        out.str(w.code.as_str());
        out.str(&w.message);
    }
    out.u64(t.rows.len() as u64);
    t.rows.for_each(|r| put_row(&mut out, r))?;
    Ok(out.seal())
}

/// What a table's cache holds before its rows.
struct Head {
    source: String,
    sheet: Option<String>,
    headers: Vec<String>,
    columns: Vec<u32>,
    warnings: Vec<Warning>,
}

fn decode_head(r: &mut In<'_>) -> Option<Head> {
    let source = r.string()?;
    let sheet = match r.u8()? {
        0 => None,
        1 => Some(r.string()?),
        _ => return None,
    };
    let n = r.u32()?;
    let n = r.fits(n.into(), 8)?;
    let (mut headers, mut columns) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        headers.push(r.string()?);
        columns.push(r.u32()?);
    }
    let n = r.u32()?;
    let n = r.fits(n.into(), 8)?;
    let mut warnings = Vec::with_capacity(n);
    for _ in 0..n {
        let (code, message) = (r.string()?, r.string()?);
        // A parsed sheet warns only about rows without a key; anything else
        // is another version's cache, rebuilt.
        if code != WarningCode::MetadataRowWithoutKey.as_str() {
            return None;
        }
        warnings.push(Warning::new(WarningCode::MetadataRowWithoutKey, message));
    }
    Some(Head {
        source,
        sheet,
        headers,
        columns,
        warnings,
    })
}

/// A table from what follows the key: `None` if it does not decode (two
/// rows under one key included), `Some(Err)` if its rows cannot be spilled.
/// (A damaged item is looked for in ever larger windows, up to the rest of
/// the file: damage costs one read of it, never a wrong table.)
fn decode(r: &mut SealedReader, opts: &SheetOptions<'_>) -> Option<Result<SheetTable, SheetError>> {
    let Head {
        source,
        sheet,
        headers,
        columns,
        warnings,
    } = r.next(decode_head)?;
    let n = r.next(|r| r.u64())?;
    let n = r.fits(n, 12)?;
    let width = headers.len() as u32;
    let mut rows = SheetRowsBuilder::new(opts.spill);
    for _ in 0..n {
        let row = r.next(|r| get_row(r, width))?;
        if let Err(e) = rows.push(row) {
            return Some(Err(opts.spill_error(&e)));
        }
    }
    if !r.is_done() {
        return None;
    }
    let rows = match opts.finish_rows(rows) {
        Ok(rows) => rows,
        Err(SheetError::DuplicateKeys { .. }) => return None,
        Err(e) => return Some(Err(e)),
    };
    let types = opts.declared_types(&headers);
    Some(Ok(SheetTable {
        source,
        sheet,
        headers,
        columns,
        types,
        rows,
        warnings,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::recipe::model::ColumnType;
    use crate::stages::metadata::convert::Cell;
    use crate::stages::metadata::sheet::Row;

    fn opts<'a>(columns: &'a BTreeMap<String, ColumnType>) -> SheetOptions<'a> {
        SheetOptions {
            source: "meta.csv",
            sheet: None,
            header_row: 1,
            key_column: Some("id"),
            columns,
            delimiter: None,
            encoding: None,
            spill: None,
        }
    }

    fn rows_of(t: &SheetTable) -> Vec<Row> {
        let mut rows = Vec::new();
        t.rows.for_each(|r| rows.push(r.clone())).unwrap();
        rows
    }

    fn table(columns: &BTreeMap<String, ColumnType>) -> SheetTable {
        let csv =
            "id,when,n,x,flag,took,err,f\n Ä1 ,2024-01-02,3,2.5,true,1:02,#N/A,\nb,,,,,,,\n,,7\n";
        super::super::sheet::load_csv(
            std::path::Path::new("meta.csv"),
            csv.as_bytes(),
            &opts(columns),
        )
        .unwrap()
    }

    /// A whole file's table, if it carries `key`.
    fn read(bytes: &[u8], key: &[u8; 32], o: &SheetOptions<'_>) -> Option<SheetTable> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.meta0.sheet");
        std::fs::write(&path, bytes).unwrap();
        SheetCache { path, key: *key }.load(o).ok().flatten()
    }

    fn assert_same(a: &SheetTable, b: &SheetTable) {
        assert_eq!(
            (&a.source, &a.sheet, &a.headers, &a.columns, &a.types),
            (&b.source, &b.sheet, &b.headers, &b.columns, &b.types)
        );
        assert_eq!(rows_of(a), rows_of(b));
        assert_eq!(a.warnings, b.warnings);
    }

    #[test]
    fn every_kind_of_cell_reads_back_as_it_was_written() {
        let columns = BTreeMap::from([("n".to_owned(), ColumnType::Integer)]);
        let mut t = table(&columns);
        let dt = chrono::NaiveDate::from_ymd_opt(1999, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 58, 123_456_789)
            .unwrap();
        let mut rows = rows_of(&t);
        rows[0].cells.extend([
            (1, Cell::DateTime(dt)),
            (2, Cell::Int(-42)),
            (3, Cell::Float(-0.1)),
            (4, Cell::Bool(false)),
            (5, Cell::Duration("PT1H".into())),
            (6, Cell::Error("#DIV/0!".into())),
            (7, Cell::Uncomputed("A1*2".into())),
        ]);
        let mut held = SheetRowsBuilder::new(None);
        for r in rows {
            held.push(r).unwrap();
        }
        t.rows = held.finish().unwrap();
        t.sheet = Some("Données".into());
        let key = [7; 32];
        let back = read(&encode(&t, &key).unwrap(), &key, &opts(&columns)).unwrap();
        assert_same(&t, &back);
        assert_eq!(back.types[2], Some(ColumnType::Integer));
        assert!(back.lookup("ä1").unwrap().is_none() && back.lookup(" Ä1").unwrap().is_some());
        assert_eq!(back.warnings.len(), 1, "the keyless row's warning is kept");
    }

    #[test]
    fn declared_types_come_from_the_recipe_not_the_cache() {
        let none = BTreeMap::new();
        let t = table(&none);
        let key = [1; 32];
        let typed = BTreeMap::from([("x".to_owned(), ColumnType::Number)]);
        let back = read(&encode(&t, &key).unwrap(), &key, &opts(&typed)).unwrap();
        assert_eq!(back.types[3], Some(ColumnType::Number));
    }

    #[test]
    fn another_key_a_cut_file_or_stray_bytes_are_a_miss() {
        let columns = BTreeMap::new();
        let t = table(&columns);
        let o = opts(&columns);
        let bytes = encode(&t, &[1; 32]).unwrap();
        assert!(read(&bytes, &[2; 32], &o).is_none());
        for cut in [0, 1, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(read(&bytes[..cut], &[1; 32], &o).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read(&longer, &[1; 32], &o).is_none());
        // A count that claims more items than the file holds.
        let mut lying = bytes;
        let at = MAGIC.len() + 32 + 4 + "meta.csv".len() + 1;
        lying[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read(&lying, &[1; 32], &o).is_none());
    }

    #[test]
    fn the_key_follows_content_format_and_options_but_not_types() {
        let none = BTreeMap::new();
        let typed = BTreeMap::from([("n".to_owned(), ColumnType::Integer)]);
        let key = |content: u8, format: &str, o: &SheetOptions<'_>| {
            SheetCache::new(PathBuf::new(), &[content; 32], format, o).key
        };
        let base = key(0, "csv", &opts(&none));
        assert_eq!(base, key(0, "csv", &opts(&typed)));
        assert_ne!(base, key(1, "csv", &opts(&none)));
        assert_ne!(base, key(0, "xlsx", &opts(&none)));
        for changed in [
            SheetOptions {
                header_row: 2,
                ..opts(&none)
            },
            SheetOptions {
                sheet: Some("S"),
                ..opts(&none)
            },
            SheetOptions {
                key_column: None,
                ..opts(&none)
            },
            SheetOptions {
                source: "other.csv",
                ..opts(&none)
            },
        ] {
            assert_ne!(base, key(0, "csv", &changed));
        }
    }

    #[test]
    fn a_stored_table_is_loaded_and_a_new_key_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache").join("r.meta0.sheet");
        let columns = BTreeMap::new();
        let o = opts(&columns);
        let t = table(&columns);
        let first = SheetCache::new(path.clone(), &[1; 32], "csv", &o);
        let missing = |c: &SheetCache| matches!(c.load(&o), Ok(None));
        assert!(missing(&first));
        first.store(&t).unwrap();
        assert_same(&t, &first.load(&o).unwrap().unwrap());
        let second = SheetCache::new(path.clone(), &[2; 32], "csv", &o);
        assert!(missing(&second));
        second.store(&t).unwrap();
        assert!(missing(&first), "one slot per source");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        std::fs::write(&path, b"not a cache").unwrap();
        assert!(
            second
                .load(&o)
                .unwrap_err()
                .unwrap()
                .contains("rebuilding it")
        );
    }

    #[test]
    fn a_warm_load_never_reads_the_file_and_a_file_changed_since_its_digest_is_named_by_what_was_read()
     {
        let dir = tempfile::tempdir().unwrap();
        let slot = dir.path().join("r.meta0.sheet");
        let columns = BTreeMap::new();
        let o = opts(&columns);
        let a = b"id,n\nx,1\n".to_vec();
        let b = b"id,n\ny,2\n".to_vec();
        let sha = |bytes: &[u8]| -> [u8; 32] { Sha256::digest(bytes).into() };
        let path = Path::new("meta.csv");
        // Digest taken of `a`, but the file holds `b` when it is read to be
        // parsed: the table and its digest are `b`'s, and cached as `b`'s.
        let (t, digest) = load_or_parse(slot.clone(), path, sha(&a), || Ok(b.clone()), true, &o);
        assert_eq!(digest, sha(&b));
        assert_eq!(rows_of(&t.unwrap())[0].key, "y");
        let (t, digest) = load_or_parse(
            slot.clone(),
            path,
            sha(&b),
            || panic!("a cached table is not read again"),
            true,
            &o,
        );
        assert_eq!(
            (digest, rows_of(&t.unwrap())[0].key.as_str()),
            (sha(&b), "y")
        );
        let (t, _) = load_or_parse(slot, path, sha(&a), || Err("gone".to_owned()), true, &o);
        assert!(matches!(t, Err(SheetError::Unreadable(why)) if why == "gone"));
    }
}
