//! Metadata sheets near the root: a CSV or spreadsheet whose column values
//! match the unit keys explore found is suggested as a metadata source, with
//! the column matching the most keys.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::stages::metadata::sheet::normalize_key;

/// Spreadsheet formats synup reads (SPEC 2.4).
/// CSV only with commas: the planner reads no other delimiter yet.
const SHEET_EXTENSIONS: &[&str] = &["csv", "xlsx", "xlsm", "xls", "ods"];
/// Only this close to the root: deeper sheets belong to units, not the set.
const MOST_DEPTH: usize = 2;
/// Sheets larger than this are not read by explore.
const MOST_BYTES: u64 = 64 << 20;

/// A sheet explore suggests as metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SheetMatch {
    /// Relative to the explored root.
    pub file: String,
    pub is_csv: bool,
    pub key_column: String,
    /// How many unit keys the column holds, of `units`.
    pub matched: usize,
    pub units: usize,
}

/// Whether explore looks at this file as a metadata sheet.
pub fn is_sheet(rel: &str) -> bool {
    rel.matches('/').count() < MOST_DEPTH
        && SHEET_EXTENSIONS.contains(&crate::stages::extension(rel).as_str())
}

/// The best (most keys matched; then the earlier file and column) of the
/// sheets among `rels` under `root`.
pub fn best_match(root: &Path, rels: &[&str], keys: &BTreeSet<&str>) -> Option<SheetMatch> {
    if keys.is_empty() {
        return None;
    }
    let normalized: BTreeSet<String> = keys.iter().map(|k| normalize_key(k).into_owned()).collect();
    let mut best: Option<SheetMatch> = None;
    for rel in rels.iter().filter(|r| is_sheet(r)) {
        let path = root.join(rel);
        if std::fs::metadata(&path).map_or(true, |m| m.len() > MOST_BYTES) {
            continue;
        }
        let Some(columns) = read_columns(&path) else {
            continue;
        };
        for (header, values) in columns {
            let matched = values
                .iter()
                .filter(|v| normalized.contains(normalize_key(v).as_ref()))
                .collect::<BTreeSet<_>>()
                .len();
            if matched > 0 && best.as_ref().is_none_or(|b| matched > b.matched) {
                best = Some(SheetMatch {
                    file: (*rel).to_owned(),
                    is_csv: crate::stages::extension(rel) == "csv",
                    key_column: header,
                    matched,
                    units: keys.len(),
                });
            }
        }
    }
    best
}

/// (header, cell texts) per column; `None` for a file that is not a sheet.
fn read_columns(path: &Path) -> Option<Vec<(String, Vec<String>)>> {
    let ext = crate::stages::extension(&path.to_string_lossy());
    let rows: Vec<Vec<String>> = if ext == "csv" {
        let bytes = std::fs::read(path).ok()?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes.as_slice());
        reader
            .records()
            .map_while(Result::ok)
            .map(|r| r.iter().map(str::to_owned).collect())
            .collect()
    } else {
        use calamine::Reader;
        let bytes = std::fs::read(path).ok()?;
        let mut workbook =
            calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).ok()?;
        let range = workbook.worksheet_range_at(0)?.ok()?;
        range
            .rows()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    };
    let mut rows = rows.into_iter();
    let headers = rows.next()?;
    let mut columns: Vec<(String, Vec<String>)> = headers
        .into_iter()
        .map(|h| (h.trim().to_owned(), Vec::new()))
        .collect();
    for row in rows {
        for (i, cell) in row.into_iter().enumerate() {
            if let Some((_, values)) = columns.get_mut(i) {
                values.push(cell);
            }
        }
    }
    columns.retain(|(h, _)| !h.is_empty());
    Some(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_matching_most_keys_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("name_mapping.csv"),
            "Grade,BraTS_2017_subject_ID,BraTS_2020_subject_ID\nHGG,Brats17_1,BraTS20_Training_001\nLGG,Brats17_2,BraTS20_Training_002\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("survival_info.csv"),
            "Brats20ID;Age\nBraTS20_Training_001;60\n",
        )
        .unwrap();
        let keys: BTreeSet<&str> = [
            "BraTS20_Training_001",
            "BraTS20_Training_002",
            "BraTS20_Training_003",
        ]
        .into();
        let m = best_match(
            dir.path(),
            &["name_mapping.csv", "survival_info.csv", "a/b/deep.csv"],
            &keys,
        )
        .unwrap();
        assert_eq!(m.file, "name_mapping.csv");
        assert_eq!(m.key_column, "BraTS_2020_subject_ID");
        assert_eq!((m.matched, m.units), (2, 3));
    }
}
