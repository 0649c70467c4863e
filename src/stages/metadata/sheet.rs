//! Load a spreadsheet (Excel/ODS through calamine) or CSV into a table of rows
//! keyed by the key column's normalised text.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use calamine::{Data, DataRef, Reader, Sheets};
use unicode_normalization::UnicodeNormalization;

use super::convert::{Cell, column_letter};
use super::rows::{RowsError, SheetRows, SheetRowsBuilder};
use crate::recipe::model::ColumnType;
use crate::stages::Warning;

/// One data row: its 1-based sheet row and its non-empty cells by header index.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub row: u32,
    pub key: String,
    pub cells: Vec<(u32, Cell)>,
}

/// A loaded sheet, ready to be joined to units by key.
#[derive(Debug)]
pub struct SheetTable {
    /// The file as written in the recipe.
    pub source: String,
    /// `None` for CSV.
    pub sheet: Option<String>,
    /// Header text by header index.
    pub headers: Vec<String>,
    /// 0-based sheet column of each header index (for provenance).
    pub columns: Vec<u32>,
    pub types: Vec<Option<ColumnType>>,
    /// Rows by normalised key, held or spilled.
    pub rows: SheetRows,
    pub warnings: Vec<Warning>,
}

impl SheetTable {
    /// The row for unit key `key`, if any (one key; the merge asks
    /// [`SheetRows::window`] for a window of keys).
    pub fn lookup(&self, key: &str) -> std::io::Result<Option<Row>> {
        self.rows.lookup(key)
    }
    /// `meta.xlsx!Sheet1!C14`, or `extra.csv!C14`.
    pub fn provenance(&self, header: u32, row: u32) -> String {
        let col = column_letter(self.columns[header as usize]);
        match &self.sheet {
            Some(s) => format!("{}!{s}!{col}{row}", self.source),
            None => format!("{}!{col}{row}", self.source),
        }
    }
}

/// Trimmed and NFC-normalised, for matching only. ASCII text is already in
/// NFC, so the common case only trims and borrows.
pub fn normalize_key(s: &str) -> Cow<'_, str> {
    let s = s.trim();
    if s.is_ascii() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfc().collect())
    }
}

/// Why a sheet cannot be used; each is a plan error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SheetError {
    Unreadable(String),
    /// A CSV file without `encoding` whose bytes are not UTF-8.
    NotUtf8 {
        file: String,
        line: usize,
        byte: u8,
    },
    NoSuchSheet {
        sheet: String,
        available: Vec<String>,
    },
    NoHeaderRow {
        row: u32,
    },
    DuplicateHeaders {
        header: String,
        columns: Vec<String>,
    },
    NoKeyColumn {
        column: String,
        headers: Vec<String>,
    },
    DuplicateKeys {
        keys: Vec<(String, Vec<u32>)>,
    },
    /// The rows could not be spilled or read back.
    Spill(String),
}

impl std::fmt::Display for SheetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SheetError::Unreadable(m) | SheetError::Spill(m) => f.write_str(m),
            SheetError::NotUtf8 { file, line, byte } => write!(
                f,
                "{file} is not UTF-8: line {line} holds the byte 0x{byte:02X}"
            ),
            SheetError::NoSuchSheet { sheet, available } => write!(
                f,
                "there is no sheet `{sheet}` (sheets: {})",
                available.join(", ")
            ),
            SheetError::NoHeaderRow { row } => write!(f, "row {row}, the header row, is empty"),
            SheetError::DuplicateHeaders { header, columns } => write!(
                f,
                "header `{header}` appears in columns {}",
                columns.join(", ")
            ),
            SheetError::NoKeyColumn { column, headers } => write!(
                f,
                "there is no column `{column}` (headers: {})",
                headers.join(", ")
            ),
            SheetError::DuplicateKeys { keys } => {
                let shown: Vec<String> = keys
                    .iter()
                    .take(10)
                    .map(|(k, rows)| {
                        format!(
                            "`{k}` in rows {}",
                            rows.iter()
                                .map(u32::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                    .collect();
                let more = if keys.len() > 10 {
                    format!(" and {} more", keys.len() - 10)
                } else {
                    String::new()
                };
                write!(f, "duplicate keys: {}{more}", shown.join("; "))
            }
        }
    }
}

pub struct SheetOptions<'a> {
    pub source: &'a str,
    pub sheet: Option<&'a str>,
    pub header_row: u32,
    pub key_column: Option<&'a str>,
    pub columns: &'a BTreeMap<String, ColumnType>,
    /// csv: the separator; `None`: sniffed from the header line.
    pub delimiter: Option<u8>,
    /// csv: the text encoding; `None`: UTF-8 (a BOM is allowed).
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// Where rows spill past their share of `--memory`; `None` holds them.
    pub spill: Option<&'a crate::spill::SpillArea>,
}

impl SheetOptions<'_> {
    /// A failure to spill or read back this sheet's rows.
    pub fn spill_error(&self, e: &std::io::Error) -> SheetError {
        SheetError::Spill(match self.spill {
            Some(area) => format!(
                "cannot keep the rows of {} in {}: {e}",
                self.source,
                area.dir.display()
            ),
            None => format!("cannot keep the rows of {}: {e}", self.source),
        })
    }

    /// The rows built, or why not.
    pub fn finish_rows(&self, rows: SheetRowsBuilder) -> Result<SheetRows, SheetError> {
        rows.finish().map_err(|e| match e {
            RowsError::Duplicates(keys) => SheetError::DuplicateKeys { keys },
            RowsError::Io(e) => self.spill_error(&e),
        })
    }
}

impl SheetOptions<'_> {
    /// The recipe's declared type of each header's column (`None`: lossless).
    pub fn declared_types(&self, headers: &[String]) -> Vec<Option<ColumnType>> {
        headers
            .iter()
            .map(|h| self.columns.get(h).copied())
            .collect()
    }
}

/// Reads a spreadsheet with calamine. `.xlsx`/`.xlsm` sheets are streamed cell by
/// cell (a 100,000-row sheet never exists in memory as a grid); other formats
/// go through calamine's ranges.
/// `bytes` are the file's content (the caller fingerprints the same bytes, so
/// the file is read once); `path` names it in messages and picks the format.
pub fn load_excel(
    path: &Path,
    bytes: &[u8],
    opts: &SheetOptions<'_>,
) -> Result<SheetTable, SheetError> {
    let mut workbook =
        open_workbook(path, bytes).map_err(|e| SheetError::Unreadable(excel_error(path, &e)))?;
    let names = workbook.sheet_names();
    let sheet = match opts.sheet {
        Some(s) if names.iter().any(|n| n == s) => s.to_owned(),
        Some(s) => {
            return Err(SheetError::NoSuchSheet {
                sheet: s.to_owned(),
                available: names,
            });
        }
        None => names
            .first()
            .cloned()
            .ok_or_else(|| SheetError::Unreadable("the workbook has no sheets".to_owned()))?,
    };
    if let Sheets::Xlsx(x) = &mut workbook {
        let merged = x.merge_cells_by_sheet_name(&sheet).unwrap_or_default();
        let mut reader = x
            .worksheet_cells_reader(&sheet)
            .map_err(|e| SheetError::Unreadable(excel_error(path, &calamine::Error::Xlsx(e))))?;
        let first_col = reader.dimensions().start.1;
        let mut failure = None;
        let rows = XlsxRows::new(&mut reader, &merged, &mut failure);
        let table = build(opts, Some(sheet), first_col, rows);
        if let Some(e) = failure {
            return Err(SheetError::Unreadable(format!(
                "cannot read spreadsheet {}: {e}",
                path.display()
            )));
        }
        return table;
    }
    let range = workbook
        .worksheet_range(&sheet)
        .map_err(|e| SheetError::Unreadable(excel_error(path, &e)))?;
    let merged = match &mut workbook {
        Sheets::Xls(x) => x.merge_cells_by_sheet_name(&sheet).unwrap_or_default(),
        _ => Vec::new(),
    };
    drop(workbook);

    let Some((r0, c0)) = range.start() else {
        return Err(SheetError::NoHeaderRow {
            row: opts.header_row,
        });
    };
    let (r1, c1) = range.end().unwrap_or((r0, c0));
    let fill = merge_cover(&merged);
    let cell_at = |r: u32, c: u32| -> Option<Cell> {
        let pos = fill.get(&(r, c)).copied().unwrap_or((r, c));
        range.get_value(pos).and_then(|d| cell_of(&data_ref(d)))
    };
    let rows = (r0..=r1).map(|r| {
        (
            r + 1,
            (c0..=c1).map(|c| (c, cell_at(r, c))).collect::<Vec<_>>(),
        )
    });
    build(opts, Some(sheet), c0, rows)
}

/// Opens a workbook held in memory, choosing the reader by the file's extension
/// as calamine's `open_workbook_auto` does for paths.
fn open_workbook<'b>(
    path: &Path,
    bytes: &'b [u8],
) -> Result<Sheets<std::io::Cursor<&'b [u8]>>, calamine::Error> {
    use calamine::open_workbook_from_rs as open;
    let data = std::io::Cursor::new(bytes);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(match ext.as_str() {
        "xls" | "xla" => Sheets::Xls(open(data).map_err(calamine::Error::from)?),
        "xlsx" | "xlsm" | "xlam" => Sheets::Xlsx(open(data).map_err(calamine::Error::from)?),
        "xlsb" => Sheets::Xlsb(open(data).map_err(calamine::Error::from)?),
        "ods" => Sheets::Ods(open(data).map_err(calamine::Error::from)?),
        _ => calamine::open_workbook_auto_from_rs(data)?,
    })
}

/// Every cell inside a merged region (but its top-left) → that top-left cell.
fn merge_cover(merged: &[calamine::Dimensions]) -> HashMap<(u32, u32), (u32, u32)> {
    let mut fill = HashMap::new();
    for m in merged {
        for r in m.start.0..=m.end.0 {
            for c in m.start.1..=m.end.1 {
                if (r, c) != m.start {
                    fill.insert((r, c), m.start);
                }
            }
        }
    }
    fill
}

/// Rows of an xlsx sheet from calamine's streaming cell reader, with merged
/// regions filled from their top-left cell.
struct XlsxRows<'r, 'a, RS: std::io::Read + std::io::Seek> {
    reader: &'r mut calamine::XlsxCellReader<'a, RS>,
    cover: HashMap<(u32, u32), (u32, u32)>,
    /// Values of merged regions' top-left cells, as they stream past.
    tops: HashMap<(u32, u32), Cell>,
    /// Top-left positions of merged regions.
    starts: std::collections::HashSet<(u32, u32)>,
    /// Covered positions by row, to add to rows that stream past.
    covered_by_row: BTreeMap<u32, Vec<u32>>,
    pending: Option<((u32, u32), Option<Cell>)>,
    failure: &'r mut Option<String>,
    done: bool,
}

impl<'r, 'a, RS: std::io::Read + std::io::Seek> XlsxRows<'r, 'a, RS> {
    fn new(
        reader: &'r mut calamine::XlsxCellReader<'a, RS>,
        merged: &[calamine::Dimensions],
        failure: &'r mut Option<String>,
    ) -> Self {
        let cover = merge_cover(merged);
        let mut covered_by_row: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &(r, c) in cover.keys() {
            covered_by_row.entry(r).or_default().push(c);
        }
        Self {
            reader,
            cover,
            tops: HashMap::new(),
            starts: merged.iter().map(|m| m.start).collect(),
            covered_by_row,
            pending: None,
            failure,
            done: false,
        }
    }

    fn next_cell(&mut self) -> Option<((u32, u32), Option<Cell>)> {
        if let Some(p) = self.pending.take() {
            return Some(p);
        }
        if self.done {
            return None;
        }
        match self.reader.next_cell_with_formula() {
            Ok(Some(cell)) => {
                let value = match (&cell.value, cell.formula) {
                    (DataRef::Empty, Some(formula)) if !formula.trim().is_empty() => {
                        Some(Cell::Uncomputed(formula))
                    }
                    (value, _) => cell_of(value),
                };
                Some((cell.pos, value))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                *self.failure = Some(e.to_string());
                self.done = true;
                None
            }
        }
    }
}

impl<RS: std::io::Read + std::io::Seek> Iterator for XlsxRows<'_, '_, RS> {
    type Item = (u32, Vec<(u32, Option<Cell>)>);

    fn next(&mut self) -> Option<Self::Item> {
        let (first_pos, first) = self.next_cell()?;
        let row = first_pos.0;
        let mut cells = vec![(first_pos.1, first)];
        while let Some((pos, cell)) = self.next_cell() {
            if pos.0 != row {
                self.pending = Some((pos, cell));
                break;
            }
            cells.push((pos.1, cell));
        }
        for (c, cell) in &cells {
            if let Some(v) = cell
                && self.starts.contains(&(row, *c))
            {
                self.tops.insert((row, *c), v.clone());
            }
        }
        if let Some(cols) = self.covered_by_row.get(&row) {
            for col in cols {
                let top = self.cover[&(row, *col)];
                if let Some(v) = self.tops.get(&top) {
                    cells.retain(|(c, _)| c != col);
                    cells.push((*col, Some(v.clone())));
                }
            }
            cells.sort_by_key(|(c, _)| *c);
        }
        Some((row + 1, cells))
    }
}

/// Reads a CSV file: every cell is text.
pub fn load_csv(
    path: &Path,
    bytes: &[u8],
    opts: &SheetOptions<'_>,
) -> Result<SheetTable, SheetError> {
    let text = decode_csv(path, bytes, opts.encoding)?;
    let delimiter = opts
        .delimiter
        .unwrap_or_else(|| sniff_delimiter(&text, opts.header_row));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| SheetError::Unreadable(format!("{}: {e}", path.display())))?;
        let cells = rec
            .iter()
            .enumerate()
            .map(|(c, v)| {
                (
                    c as u32,
                    (!v.trim().is_empty()).then(|| Cell::Text(v.to_owned())),
                )
            })
            .collect::<Vec<_>>();
        rows.push((i as u32 + 1, cells));
    }
    build(opts, None, 0, rows.into_iter())
}

/// The file's text: decoded from `encoding`, else UTF-8 with an optional BOM.
/// Bytes that are not UTF-8 are an error naming the line and suggesting an
/// encoding, never silently replaced.
fn decode_csv<'b>(
    path: &Path,
    bytes: &'b [u8],
    encoding: Option<&'static encoding_rs::Encoding>,
) -> Result<Cow<'b, str>, SheetError> {
    if let Some(enc) = encoding {
        let (text, _, _) = enc.decode(bytes);
        return Ok(text);
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(body) {
        Ok(text) => Ok(Cow::Borrowed(text)),
        Err(e) => {
            let at = e.valid_up_to();
            let line = body[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            Err(SheetError::NotUtf8 {
                file: path.display().to_string(),
                line,
                byte: body[at],
            })
        }
    }
}

/// The separator of a CSV file: whichever of `,` `;` tab `|` appears most
/// often, outside quotes, on the header line (`,` when none does).
pub fn sniff_delimiter(text: &str, header_row: u32) -> u8 {
    let line = text
        .lines()
        .nth(header_row.saturating_sub(1) as usize)
        .unwrap_or_default();
    let mut counts = [0usize; 4];
    let candidates = [b',', b';', b'\t', b'|'];
    let mut quoted = false;
    for b in line.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = candidates.iter().position(|&c| c == b) {
            counts[i] += 1;
        }
    }
    let (best, n) = counts
        .iter()
        .enumerate()
        .max_by_key(|&(i, n)| (*n, std::cmp::Reverse(i)))
        .unwrap_or((0, &0));
    if *n == 0 { b',' } else { candidates[best] }
}

/// Builds the table from rows of (1-based row, cells by 0-based column); rows may
/// hold only their non-empty cells. `first_col` is where the sheet's columns start.
fn build(
    opts: &SheetOptions<'_>,
    sheet: Option<String>,
    first_col: u32,
    rows: impl Iterator<Item = (u32, Vec<(u32, Option<Cell>)>)>,
) -> Result<SheetTable, SheetError> {
    let mut rows = rows.skip_while(|(r, _)| *r < opts.header_row).peekable();
    let header_cells = match rows.next() {
        Some((r, cells)) if r == opts.header_row && cells.iter().any(|(_, c)| c.is_some()) => cells,
        _ => {
            return Err(SheetError::NoHeaderRow {
                row: opts.header_row,
            });
        }
    };
    // Trailing blank header cells are not columns; blank ones inside are.
    let named: HashMap<u32, String> = header_cells
        .iter()
        .filter_map(|(c, cell)| cell.as_ref().map(|v| (*c, v.key_text().trim().to_owned())))
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let last = named.keys().copied().max().unwrap_or(first_col);
    let mut headers = Vec::new();
    let mut columns = Vec::new();
    for col in first_col.min(last)..=last {
        headers.push(
            named
                .get(&col)
                .cloned()
                .unwrap_or_else(|| format!("column_{}", column_letter(col))),
        );
        columns.push(col);
    }
    let mut seen: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (h, c) in headers.iter().zip(&columns) {
        seen.entry(h.as_str()).or_default().push(column_letter(*c));
    }
    if let Some((h, cols)) = seen.into_iter().find(|(_, c)| c.len() > 1) {
        return Err(SheetError::DuplicateHeaders {
            header: h.to_owned(),
            columns: cols,
        });
    }
    let key_index = match opts.key_column {
        Some(k) => headers
            .iter()
            .position(|h| h == k)
            .ok_or_else(|| SheetError::NoKeyColumn {
                column: k.to_owned(),
                headers: headers.clone(),
            })?,
        None => 0,
    };
    let types = opts.declared_types(&headers);

    // Header columns are contiguous: a sheet column's header index is its offset.
    let first_header_col = columns[0];
    let header_count = columns.len() as u32;
    let header_of = |c: u32| {
        c.checked_sub(first_header_col)
            .filter(|i| *i < header_count)
    };
    let mut table_rows = SheetRowsBuilder::new(opts.spill);
    let mut skipped = Vec::new();
    for (r, cells) in rows {
        let cells: Vec<(u32, Cell)> = cells
            .into_iter()
            .filter_map(|(c, cell)| Some((header_of(c)?, cell?)))
            .collect();
        if cells.is_empty() {
            continue;
        }
        let key = cells
            .iter()
            .find(|(h, _)| *h as usize == key_index)
            .map(|(_, c)| c.key_text());
        let Some(key) = key.filter(|k| !k.trim().is_empty()) else {
            skipped.push(r);
            continue;
        };
        table_rows
            .push(Row {
                row: r,
                key: key.trim().to_owned(),
                cells,
            })
            .map_err(|e| opts.spill_error(&e))?;
    }
    let mut table = SheetTable {
        source: opts.source.to_owned(),
        sheet,
        headers,
        columns,
        types,
        rows: opts.finish_rows(table_rows)?,
        warnings: Vec::new(),
    };
    if !skipped.is_empty() {
        let shown: Vec<String> = skipped.iter().take(10).map(u32::to_string).collect();
        table.warnings.push(Warning::new(
            crate::stages::WarningCode::MetadataRowWithoutKey,
            format!(
                "{}: {} row(s) with an empty key cell skipped (rows {}{})",
                opts.source,
                skipped.len(),
                shown.join(", "),
                if skipped.len() > 10 { ", …" } else { "" }
            ),
        ));
    }
    Ok(table)
}

/// A grid cell as the streaming reader's borrowed form, so both readers share
/// one conversion.
fn data_ref(d: &Data) -> DataRef<'_> {
    match d {
        Data::Empty => DataRef::Empty,
        Data::String(s) => DataRef::SharedString(s),
        Data::Int(i) => DataRef::Int(*i),
        Data::Float(f) => DataRef::Float(*f),
        Data::Bool(b) => DataRef::Bool(*b),
        Data::DateTime(dt) => DataRef::DateTime(*dt),
        Data::DateTimeIso(s) => DataRef::DateTimeIso(s.clone()),
        Data::DurationIso(s) => DataRef::DurationIso(s.clone()),
        Data::Error(e) => DataRef::Error(e.clone()),
    }
}

fn cell_of(d: &DataRef<'_>) -> Option<Cell> {
    let text = |s: &str| (!s.trim().is_empty()).then(|| Cell::Text(s.to_owned()));
    Some(match d {
        DataRef::Empty => return None,
        DataRef::String(s) => return text(s),
        DataRef::SharedString(s) => return text(s),
        DataRef::Int(i) => Cell::Int(*i),
        DataRef::Float(f) => Cell::Float(*f),
        DataRef::Bool(b) => Cell::Bool(*b),
        DataRef::DateTime(dt) if dt.is_duration() => Cell::Duration(
            dt.as_duration()
                .map_or_else(|| dt.to_string(), |d| format_duration(d.num_seconds())),
        ),
        DataRef::DateTime(dt) => match dt.as_datetime() {
            Some(v) => Cell::DateTime(v.with_nanosecond_rounded()),
            None => Cell::Float(dt.as_f64()),
        },
        DataRef::DateTimeIso(s) => match super::convert::parse_iso(s) {
            Some(v) => Cell::DateTime(v.with_nanosecond_rounded()),
            None => Cell::Text(s.clone()),
        },
        DataRef::DurationIso(s) => Cell::Duration(s.clone()),
        DataRef::Error(e) => Cell::Error(format!("{e}")),
    })
}

fn format_duration(secs: i64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Excel stores times as fractions of a day; round to whole seconds.
trait RoundSeconds {
    fn with_nanosecond_rounded(self) -> Self;
}

impl RoundSeconds for chrono::NaiveDateTime {
    fn with_nanosecond_rounded(self) -> Self {
        use chrono::{Duration, Timelike};
        let nanos = self.nanosecond();
        let base = self.with_nanosecond(0).unwrap_or(self);
        if nanos >= 500_000_000 {
            base + Duration::seconds(1)
        } else {
            base
        }
    }
}

fn excel_error(path: &Path, e: &calamine::Error) -> String {
    let text = e.to_string();
    if text.to_ascii_lowercase().contains("password") {
        return format!(
            "{} is password-protected; save an unprotected copy for synup to read",
            path.display()
        );
    }
    format!("cannot read spreadsheet {}: {text}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts<'a>(cols: &'a BTreeMap<String, ColumnType>) -> SheetOptions<'a> {
        SheetOptions {
            source: "meta.csv",
            sheet: None,
            header_row: 1,
            key_column: None,
            columns: cols,
            delimiter: None,
            encoding: None,
            spill: None,
        }
    }

    #[test]
    fn csv_rows_are_keyed_and_typed_later() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "id,age,,site\n P1 ,45,x,Seoul\n,3,,\nP2,50,,\n").unwrap();
        let cols = BTreeMap::new();
        let t = load_csv(&p, &std::fs::read(&p).unwrap(), &opts(&cols)).unwrap();
        assert_eq!(t.headers, ["id", "age", "column_C", "site"]);
        assert_eq!(t.lookup("P1").unwrap().unwrap().row, 2);
        assert_eq!(t.lookup("P2").unwrap().unwrap().cells.len(), 2);
        assert_eq!(t.warnings[0].code.as_str(), "metadata_row_without_key");
        assert_eq!(t.provenance(1, 2), "meta.csv!B2");
    }

    #[test]
    fn duplicate_keys_and_headers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "id,a\nP1,1\nP1,2\n").unwrap();
        let cols = BTreeMap::new();
        assert_eq!(
            load_csv(&p, &std::fs::read(&p).unwrap(), &opts(&cols)).unwrap_err(),
            SheetError::DuplicateKeys {
                keys: vec![("P1".into(), vec![2, 3])]
            }
        );
        std::fs::write(&p, "id,a,a\nP1,1,2\n").unwrap();
        assert!(matches!(
            load_csv(&p, &std::fs::read(&p).unwrap(), &opts(&cols)).unwrap_err(),
            SheetError::DuplicateHeaders { .. }
        ));
    }

    #[test]
    fn keys_match_after_nfc_normalisation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        // "é" as e + combining acute in the sheet, precomposed in the unit key.
        std::fs::write(&p, "id,a\nJose\u{301},1\n").unwrap();
        let cols = BTreeMap::new();
        let t = load_csv(&p, &std::fs::read(&p).unwrap(), &opts(&cols)).unwrap();
        assert!(t.lookup("Jos\u{e9}").unwrap().is_some());
    }

    #[test]
    fn missing_header_row_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "").unwrap();
        let cols = BTreeMap::new();
        assert!(matches!(
            load_csv(&p, &std::fs::read(&p).unwrap(), &opts(&cols)).unwrap_err(),
            SheetError::NoHeaderRow { .. }
        ));
    }
}
