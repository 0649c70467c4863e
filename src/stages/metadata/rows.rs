//! A sheet's rows sorted by normalised key, held in memory up to their share
//! of `--memory` and spilled to a run file under `.synup/spill/` past it, and
//! joined to units by key: the units of a window ask their keys in ascending
//! order, so a spilled sheet is read forward, once.
//!
//! Which rows some unit matched is one bit per sheet row, so the rows no unit
//! matched (reported in the plan) are found without holding every unit key.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDateTime};

use super::convert::Cell;
use super::sheet::{Row, normalize_key};
use crate::cache_file::{In, Out};
use crate::spill::{Keyed, KeyedRun, Record, SortedRun, Sorter, SpillArea};

/// The rows of one sheet, sorted by normalised key (rows that share a key
/// stay in sheet order; a finished table has none).
pub struct SheetRows {
    store: Store,
    /// Bit `n` is set once some unit matched sheet row `n`.
    matched: Vec<AtomicU64>,
    len: usize,
}

enum Store {
    /// Looked up in place, from any thread.
    Held(Vec<Row>),
    /// A run file, read forward a window of keys at a time.
    Spilled(Mutex<KeyedRun<Sorted>>),
}

/// The held row under normalised `key`, by binary search.
fn find_held<'a>(held: &'a [Row], key: &str) -> Option<&'a Row> {
    let at = held.partition_point(|r| normalize_key(&r.key).as_ref() < key);
    held.get(at).filter(|r| normalize_key(&r.key) == key)
}

/// How the units of one window find their rows in one sheet.
pub enum Window<'a> {
    /// Each unit looks its row up itself.
    Held(&'a SheetRows),
    /// The window's rows, read from the run file, by normalised key.
    Joined(HashMap<String, Row>),
}

impl Window<'_> {
    /// The row for a unit's normalised key, which counts as matched.
    pub fn row(&self, key: &str) -> Option<&Row> {
        match self {
            Window::Held(rows) => {
                let Store::Held(held) = &rows.store else {
                    unreachable!("a held window is made of held rows")
                };
                let row = find_held(held, key)?;
                rows.mark(row.row);
                Some(row)
            }
            Window::Joined(rows) => rows.get(key),
        }
    }
}

impl std::fmt::Debug for SheetRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SheetRows")
            .field("len", &self.len)
            .field("spilled", &self.spilled())
            .finish()
    }
}

/// Collects a sheet's rows in sheet order.
pub struct SheetRowsBuilder {
    sorter: Sorter<Sorted>,
    len: usize,
    max_row: u32,
}

/// Why rows could not be finished.
#[derive(Debug)]
pub enum RowsError {
    /// Normalised keys that more than one row holds: each key as the later
    /// row wrote it, with the rows that hold it, in sheet order.
    Duplicates(Vec<(String, Vec<u32>)>),
    Io(io::Error),
}

impl From<io::Error> for RowsError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl SheetRowsBuilder {
    /// Rows spill under `spill` past an eighth of its budget; `None` holds
    /// them all (tests, and tables too small to matter).
    pub fn new(spill: Option<&SpillArea>) -> Self {
        let sorter = match spill {
            Some(area) => area.sorter(8),
            None => Sorter::new(std::env::temp_dir(), usize::MAX),
        };
        Self {
            sorter,
            len: 0,
            max_row: 0,
        }
    }

    pub fn push(&mut self, row: Row) -> io::Result<()> {
        self.len += 1;
        self.max_row = self.max_row.max(row.row);
        self.sorter.push(Sorted(row))
    }

    /// The rows, sorted; refused when two rows share a normalised key.
    pub fn finish(self) -> Result<SheetRows, RowsError> {
        let mut duplicates: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        // The first row of the current key: its normalised key and row.
        let (mut first_key, mut first_row) = (String::new(), None);
        let run = self.sorter.finish_to_run_seeing(|Sorted(row)| {
            let key = normalize_key(&row.key);
            match first_row {
                Some(first) if first_key == key => duplicates
                    .entry(row.key.clone())
                    .or_insert_with(|| vec![first])
                    .push(row.row),
                _ => {
                    first_key.clear();
                    first_key.push_str(&key);
                    first_row = Some(row.row);
                }
            }
        })?;
        if !duplicates.is_empty() {
            return Err(RowsError::Duplicates(duplicates.into_iter().collect()));
        }
        let store = match run {
            SortedRun::Memory(held) => Store::Held(held.into_iter().map(|Sorted(r)| r).collect()),
            file => Store::Spilled(Mutex::new(KeyedRun::new(file))),
        };
        Ok(SheetRows {
            store,
            matched: (0..self.max_row as usize / 64 + 1)
                .map(|_| AtomicU64::new(0))
                .collect(),
            len: self.len,
        })
    }
}

impl SheetRows {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the rows went to a run file.
    pub fn spilled(&self) -> bool {
        matches!(self.store, Store::Spilled(_))
    }

    fn run(&self) -> Option<std::sync::MutexGuard<'_, KeyedRun<Sorted>>> {
        match &self.store {
            Store::Held(_) => None,
            Store::Spilled(run) => Some(run.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }

    fn mark(&self, row: u32) {
        let n = row as usize;
        if let Some(word) = self.matched.get(n / 64) {
            word.fetch_or(1 << (n % 64), Ordering::Relaxed);
        }
    }

    /// How a window of units (keys in ascending order) finds its rows: held
    /// rows are looked up by each unit; a spilled sheet is read forward to
    /// the window's keys, once, and the rows found count as matched.
    pub fn window(&self, unit_keys: &[&str]) -> io::Result<Window<'_>> {
        let Some(mut run) = self.run() else {
            return Ok(Window::Held(self));
        };
        let mut keys: Vec<Cow<'_, str>> = unit_keys.iter().map(|k| normalize_key(k)).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut found = HashMap::new();
        for key in keys {
            if let Some(Sorted(row)) = run.find(&key)?.into_iter().next() {
                self.mark(row.row);
                found.insert(key.into_owned(), row);
            }
        }
        Ok(Window::Joined(found))
    }

    /// The one row for `key`, if any (not counted as matched).
    pub fn lookup(&self, key: &str) -> io::Result<Option<Row>> {
        let key = normalize_key(key);
        match &self.store {
            Store::Held(held) => Ok(find_held(held, &key).cloned()),
            Store::Spilled(_) => {
                let found = self.run().expect("spilled").find(&key)?;
                Ok(found.into_iter().next().map(|Sorted(row)| row))
            }
        }
    }

    /// Calls `f` with every row, in key order.
    pub fn for_each(&self, mut f: impl FnMut(&Row)) -> io::Result<()> {
        match &self.store {
            Store::Held(held) => {
                held.iter().for_each(f);
                Ok(())
            }
            Store::Spilled(_) => self.run().expect("spilled").for_each(|Sorted(row)| f(row)),
        }
    }

    /// The rows no unit matched, in sheet order.
    pub fn unmatched(&self) -> io::Result<Vec<Row>> {
        let mut out = Vec::new();
        self.for_each(|row| {
            let n = row.row as usize;
            if self.matched[n / 64].load(Ordering::Relaxed) & (1 << (n % 64)) == 0 {
                out.push(row.clone());
            }
        })?;
        out.sort_by_key(|r| r.row);
        Ok(out)
    }
}

/// A row as a sort holds it: ordered by normalised key, then by row. Rows
/// come in sheet order (or from the sheet cache, in the order this sort
/// gave them), so rows that share a key come in row order: this is the
/// order a stable sort by key gives. No two rows share a row number, so two
/// are equal only when they are one.
#[derive(Clone)]
struct Sorted(Row);

impl PartialEq for Sorted {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Sorted {}
impl PartialOrd for Sorted {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Sorted {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key()
            .cmp(&other.sort_key())
            .then(self.0.row.cmp(&other.0.row))
    }
}

impl Keyed for Sorted {
    fn sort_key(&self) -> Cow<'_, str> {
        normalize_key(&self.0.key)
    }
}

impl Record for Sorted {
    const EQUAL_IS_SAME: bool = true;

    fn weight(&self) -> usize {
        let text: usize = self
            .0
            .cells
            .iter()
            .map(|(_, c)| match c {
                Cell::Text(s) | Cell::Duration(s) | Cell::Error(s) | Cell::Uncomputed(s) => {
                    s.len() + 16
                }
                _ => 0,
            })
            .sum();
        self.0.key.len() + 16 + self.0.cells.capacity() * std::mem::size_of::<(u32, Cell)>() + text
    }
    fn encode(&self, out: &mut Vec<u8>) {
        let mut o = Out(std::mem::take(out));
        put_row(&mut o, &self.0);
        *out = o.0;
    }
    fn decode(input: &mut &[u8]) -> io::Result<Self> {
        let mut r = In(input);
        let row = get_row(&mut r, u32::MAX)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a damaged spill file"))?;
        *input = r.0;
        Ok(Self(row))
    }
}

/// A row as the sheet cache and spill files hold it.
pub(super) fn put_row(out: &mut Out, r: &Row) {
    out.u32(r.row);
    out.str(&r.key);
    out.u32(r.cells.len() as u32);
    for (h, c) in &r.cells {
        out.u32(*h);
        put_cell(out, c);
    }
}

/// A row back; `None` if damaged or a cell names a header at or past `headers`.
pub(super) fn get_row(r: &mut In<'_>, headers: u32) -> Option<Row> {
    let row = r.u32()?;
    let key = r.string()?;
    let n = r.u32()?;
    let n = r.fits(n.into(), 5)?;
    let mut cells = Vec::with_capacity(n);
    for _ in 0..n {
        let h = r.u32()?;
        if h >= headers {
            return None;
        }
        cells.push((h, get_cell(r)?));
    }
    Some(Row { row, key, cells })
}

fn put_cell(out: &mut Out, c: &Cell) {
    match c {
        Cell::Text(s) => {
            out.u8(0);
            out.str(s);
        }
        Cell::Int(i) => {
            out.u8(1);
            out.u64(*i as u64);
        }
        Cell::Float(f) => {
            out.u8(2);
            out.u64(f.to_bits());
        }
        Cell::Bool(b) => {
            out.u8(3);
            out.u8(u8::from(*b));
        }
        Cell::DateTime(dt) => {
            let utc = dt.and_utc();
            out.u8(4);
            out.u64(utc.timestamp() as u64);
            out.u32(utc.timestamp_subsec_nanos());
        }
        Cell::Duration(s) => {
            out.u8(5);
            out.str(s);
        }
        Cell::Error(s) => {
            out.u8(6);
            out.str(s);
        }
        Cell::Uncomputed(s) => {
            out.u8(7);
            out.str(s);
        }
    }
}

fn get_cell(r: &mut In<'_>) -> Option<Cell> {
    Some(match r.u8()? {
        0 => Cell::Text(r.string()?),
        1 => Cell::Int(r.u64()? as i64),
        2 => Cell::Float(f64::from_bits(r.u64()?)),
        3 => Cell::Bool(match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        }),
        4 => {
            let secs = r.u64()? as i64;
            let nanos = r.u32()?;
            let dt: NaiveDateTime = DateTime::from_timestamp(secs, nanos)?.naive_utc();
            Cell::DateTime(dt)
        }
        5 => Cell::Duration(r.string()?),
        6 => Cell::Error(r.string()?),
        7 => Cell::Uncomputed(r.string()?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spill::MemoryBudget;

    fn row(n: u32, key: &str) -> Row {
        Row {
            row: n,
            key: key.to_owned(),
            cells: vec![
                (0, Cell::Text(key.to_owned())),
                (1, Cell::Int(i64::from(n))),
                (2, Cell::Text("Seoul".repeat(n as usize % 3))),
            ],
        }
    }

    /// 2,000 rows in shuffled key order, held and spilled.
    fn rows(spill: Option<&SpillArea>) -> SheetRows {
        let mut b = SheetRowsBuilder::new(spill);
        let mut order: Vec<u32> = (0..2000).collect();
        fastrand::Rng::with_seed(7).shuffle(&mut order);
        for (i, k) in order.into_iter().enumerate() {
            b.push(row(i as u32 + 2, &format!("p{k:05}"))).unwrap();
        }
        b.finish().unwrap()
    }

    fn tiny(dir: &std::path::Path) -> SpillArea {
        SpillArea {
            dir: dir.join("spill"),
            budget: MemoryBudget { bytes: 8 * 4096 },
        }
    }

    #[test]
    fn spilled_rows_join_and_report_unmatched_rows_as_held_ones_do() {
        let dir = tempfile::tempdir().unwrap();
        let area = tiny(dir.path());
        let held = rows(None);
        let spilled = rows(Some(&area));
        assert!(!held.spilled() && spilled.spilled());
        assert_eq!((held.len(), spilled.len()), (2000, 2000));
        // Windows in key order, keys padded and unsorted within a window,
        // missing keys, then a window behind the last (the file rewinds).
        let mut asks: Vec<Vec<String>> = (0..10)
            .map(|w| {
                (0..150)
                    .rev()
                    .map(|i| format!(" p{:05} ", w * 190 + i))
                    .collect()
            })
            .collect();
        asks.push(vec!["nope".into(), "p00003".into()]);
        for ask in &asks {
            let ask: Vec<&str> = ask.iter().map(String::as_str).collect();
            let (a, b) = (held.window(&ask).unwrap(), spilled.window(&ask).unwrap());
            assert!(matches!(a, Window::Held(_)) && matches!(b, Window::Joined(_)));
            for key in &ask {
                let key = normalize_key(key);
                assert_eq!(a.row(&key), b.row(&key), "{key}");
            }
        }
        let (a, b) = (held.unmatched().unwrap(), spilled.unmatched().unwrap());
        assert_eq!(a, b);
        assert_eq!(a.len(), 2000 - 10 * 150);
        assert!(a.windows(2).all(|w| w[0].row < w[1].row), "sheet order");
        assert_eq!(
            spilled.lookup("p01999").unwrap().map(|r| r.key),
            Some("p01999".to_owned())
        );
        drop(spilled);
        let left: Vec<_> = std::fs::read_dir(&area.dir).unwrap().collect();
        assert!(left.is_empty(), "run files are unnamed: {left:?}");
    }

    #[test]
    fn duplicate_keys_are_found_across_spilled_runs() {
        let dir = tempfile::tempdir().unwrap();
        let area = tiny(dir.path());
        for spill in [None, Some(&area)] {
            let mut b = SheetRowsBuilder::new(spill);
            for n in 0..1500u32 {
                b.push(row(n + 2, &format!("k{:04}", n % 1000))).unwrap();
            }
            b.push(row(5000, "Jos\u{65}\u{301}")).unwrap();
            b.push(row(5001, "Jos\u{e9}")).unwrap();
            let Err(RowsError::Duplicates(d)) = b.finish() else {
                panic!("duplicates")
            };
            assert_eq!(d.len(), 501);
            assert_eq!(d[0], ("Jos\u{e9}".to_owned(), vec![5000, 5001]));
            assert_eq!(d[1], ("k0000".to_owned(), vec![2, 1002]));
        }
    }
}
