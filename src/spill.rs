//! Sorting more than fits in memory: records pile up until their share of the
//! memory budget is used, are then sorted and written to a temporary file (a
//! run), and reading merges the runs. With little data nothing touches the
//! disk and the sort is an in-memory one.
//!
//! Run files are unnamed (`O_TMPFILE` where the OS has it) in a folder under
//! `.synup/`: a killed process leaves nothing behind. The sort is stable:
//! records that compare equal come out in the order they were pushed, so what
//! is built from a sorted stream does not depend on where the runs were cut.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;

use rayon::slice::ParallelSliceMut;

/// The memory synup may use for what grows with the dataset (`--memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    pub bytes: usize,
}

impl MemoryBudget {
    pub const DEFAULT: Self = Self { bytes: 512 << 20 };

    /// `512MiB`, `2GiB`, `1.5G`, `300M`, `1000000` (bytes); binary units either way.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a size; write e.g. 512MiB or 2GiB"))?;
        let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{text}`; use KiB, MiB or GiB"
                ));
            }
        };
        let bytes = number * scale as f64;
        if bytes < (16 << 20) as f64 {
            return Err(format!(
                "`{text}` is too little memory to plan in; give at least 16MiB"
            ));
        }
        Ok(Self {
            bytes: bytes.min(usize::MAX as f64) as usize,
        })
    }

    /// `1/parts` of what the budget has left, for one of several sorts that
    /// hold memory together. What the process already holds when the sort
    /// starts counts against the budget. Never more than a quarter of the
    /// whole budget's `1/parts` ([`CEILING`]): a run of 32 MiB sorts and
    /// merges as fast as one of 128, and a share that grows with what is
    /// left makes a large plan hold more than a small one (memory that grows
    /// with the dataset, up to the budget). Never less than [`MIN_SHARE`]
    /// (or the whole budget's share, if smaller), so a process over its
    /// budget still spills in runs of a useful size.
    pub fn share(self, parts: usize) -> usize {
        self.share_beside(resident_bytes().unwrap_or(0), parts)
    }

    /// As [`Self::share`], with `held` bytes already in use.
    fn share_beside(self, held: usize, parts: usize) -> usize {
        let parts = parts.max(1);
        let floor = MIN_SHARE.min(self.bytes / parts);
        let ceiling = self.bytes / parts / CEILING;
        (self.bytes.saturating_sub(held) / parts)
            .min(ceiling)
            .max(floor)
    }
}

/// A share is at most the whole budget's `1/parts` divided by this: the
/// rest is room for what the stages hold besides their sorts.
const CEILING: usize = 4;

/// The least a sort is given however much is held: 4 MiB makes a run of tens
/// of thousands of records.
const MIN_SHARE: usize = 4 << 20;

/// What this process holds in memory now (Linux's `/proc/self/statm`).
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size())
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where sorts spill (a folder under the recipe's `.synup/`) and the budget
/// they share.
#[derive(Debug, Clone)]
pub struct SpillArea {
    pub dir: PathBuf,
    pub budget: MemoryBudget,
}

impl SpillArea {
    /// The spill folder of a recipe's state folder (`.synup/`).
    pub fn under(state_dir: &std::path::Path, budget: MemoryBudget) -> Self {
        Self {
            dir: state_dir.join("spill"),
            budget,
        }
    }

    /// A sorter given `1/parts` of the budget, for one of several sorts that
    /// hold memory at the same time.
    pub fn sorter<T: Record + Ord + Send>(&self, parts: usize) -> Sorter<T> {
        Sorter::new(&self.dir, self.budget.share(parts))
    }

    /// A spool given `1/parts` of the budget.
    pub fn spool<T: Record>(&self, parts: usize) -> Spool<T> {
        Spool::new(&self.dir, self.budget.share(parts))
    }

    /// A shelf given `1/parts` of the budget.
    pub fn shelf<T: Record>(&self, parts: usize) -> ShelfWriter<T> {
        ShelfWriter::new(&self.dir, self.budget.share(parts))
    }
}

/// A value a [`Sorter`] or [`Spool`] can hold and write to a file.
pub trait Record: Sized {
    /// Whether two records that compare equal are the same record (their
    /// order looks at everything they encode). A [`Sorter`] then sorts its
    /// runs in place: an unstable sort gives the stable order when equals
    /// cannot be told apart, without the stable sort's buffer, which is as
    /// large as the run (a spike of a whole share each time a run spilled).
    const EQUAL_IS_SAME: bool = false;

    /// About how many bytes it occupies in memory, heap included.
    fn weight(&self) -> usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(input: &mut &[u8]) -> io::Result<Self>;
}

/// An external merge sort with a memory budget.
pub struct Sorter<T: Record + Ord> {
    dir: PathBuf,
    budget: usize,
    held: Vec<T>,
    weight: usize,
    runs: Vec<File>,
}

impl<T: Record + Ord + Send> Sorter<T> {
    /// Spills to unnamed files in `dir` (created when first needed) once the
    /// records held weigh more than `budget` bytes.
    pub fn new(dir: impl Into<PathBuf>, budget: usize) -> Self {
        Self {
            dir: dir.into(),
            budget,
            held: Vec::new(),
            weight: 0,
            runs: Vec::new(),
        }
    }

    pub fn push(&mut self, record: T) -> io::Result<()> {
        if outgrows_weighed(&self.held, self.weight, self.budget) {
            self.spill()?;
        }
        self.weight += record.weight() + std::mem::size_of::<T>();
        self.held.push(record);
        if self.weight > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// How many runs went to disk so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> io::Result<()> {
        sort_run(&mut self.held);
        let mut file = new_run(&self.dir)?;
        write_run(&mut file, self.held.drain(..))?;
        let file = written_run(file)?;
        self.runs.push(file);
        self.weight = 0;
        if self.runs.len() >= MAX_RUNS {
            self.compact()?;
        }
        Ok(())
    }

    /// Merges every run into one, so a small budget over a large input never
    /// holds more than [`MAX_RUNS`] files open (runs keep their order, so
    /// the merge stays stable).
    fn compact(&mut self) -> io::Result<()> {
        let runs = std::mem::take(&mut self.runs);
        let merged = merge::<T>(runs, self.budget)?;
        let mut file = new_run(&self.dir)?;
        let mut out = Vec::new();
        for record in merged {
            write_frame(&mut file, &mut out, &record?)?;
        }
        let file = written_run(file)?;
        self.runs.push(file);
        Ok(())
    }

    /// Every record pushed, in order.
    pub fn finish(mut self) -> io::Result<Sorted<T>> {
        if self.runs.is_empty() {
            sort_run(&mut self.held);
            return Ok(Sorted(Merging::Memory(self.held.into_iter())));
        }
        if !self.held.is_empty() {
            self.spill()?;
        }
        merge(self.runs, self.budget)
    }

    /// Every record pushed, in order, in one run file that can be read again
    /// from the start ([`SortedRun::rewind`]); held in memory if it fits.
    pub fn finish_to_run(self) -> io::Result<SortedRun<T>> {
        self.finish_to_run_seeing(|_| {})
    }

    /// [`Self::finish_to_run`], showing `see` every record in order on the
    /// way (a check that needs the sorted order costs no second read).
    pub fn finish_to_run_seeing(self, mut see: impl FnMut(&T)) -> io::Result<SortedRun<T>> {
        if self.runs.is_empty() {
            let mut held = self.held;
            sort_run(&mut held);
            held.iter().for_each(see);
            return Ok(SortedRun::Memory(held));
        }
        let dir = self.dir.clone();
        let budget = self.budget;
        let sorted = self.finish()?;
        let mut file = new_run(&dir)?;
        let mut out = Vec::new();
        for record in sorted {
            let record = record?;
            see(&record);
            write_frame(&mut file, &mut out, &record)?;
        }
        let file = written_run(file)?;
        Ok(SortedRun::File(RunReader::new(file, read_buffer(budget))))
    }
}

/// Whether adding `more` elements to `v` makes it reallocate to more than
/// `budget` bytes (a `Vec` doubles): a buffer that spills before it grows
/// past its share, rather than after, never holds up to twice the share
/// (plus the old buffer while it is copied).
pub(crate) fn outgrows<T>(v: &Vec<T>, more: usize, budget: usize) -> bool {
    let after = crate::packed::grown(v.len(), v.capacity(), more);
    !v.is_empty() && after > v.capacity() && after * std::mem::size_of::<T>() > budget
}

/// [`outgrows`] for one more record of records that weigh `weight` in all
/// (their own size and their heap): the `Vec` gets what the heap leaves.
fn outgrows_weighed<T>(held: &Vec<T>, weight: usize, budget: usize) -> bool {
    let heap = weight - held.len() * std::mem::size_of::<T>();
    outgrows(held, 1, budget.saturating_sub(heap))
}

/// Sorts records stably: in place when equal records are the same
/// ([`Record::EQUAL_IS_SAME`]), else by a stable sort (with its buffer).
fn sort_run<T: Record + Ord + Send>(held: &mut [T]) {
    if T::EQUAL_IS_SAME {
        held.par_sort_unstable();
    } else {
        held.par_sort();
    }
}

/// A new unnamed file in `dir` (created if missing): gone with its last
/// handle, so a crash leaves nothing behind to clean up.
pub fn unnamed_file(dir: &std::path::Path) -> io::Result<File> {
    std::fs::create_dir_all(dir)?;
    tempfile::tempfile_in(dir)
}

/// A new unnamed file in `dir`, buffered for writing.
fn new_run(dir: &std::path::Path) -> io::Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(1 << 16, unnamed_file(dir)?))
}

/// A written run, flushed and ready to read from its start.
fn written_run(file: BufWriter<File>) -> io::Result<File> {
    let mut file = file.into_inner().map_err(|e| e.into_error())?;
    file.rewind()?;
    Ok(file)
}

/// Run files a sort keeps open at most; past it they are merged into one.
pub(crate) const MAX_RUNS: usize = 64;

/// The records of `runs`, merged; each run reads through an even share of
/// `budget`.
fn merge<T: Record + Ord>(runs: Vec<File>, budget: usize) -> io::Result<Sorted<T>> {
    let buffer = read_buffer(budget / runs.len().max(1));
    let mut readers: Vec<RunReader<T>> = runs
        .into_iter()
        .map(|f| RunReader::new(f, buffer))
        .collect();
    let mut heap = BinaryHeap::with_capacity(readers.len());
    for (run, reader) in readers.iter_mut().enumerate() {
        if let Some(record) = reader.next().transpose()? {
            heap.push(Head { record, run });
        }
    }
    Ok(Sorted(Merging::Merge { readers, heap }))
}

/// A run reader's buffer: its share of the budget, within 4 KiB..1 MiB.
fn read_buffer(share: usize) -> usize {
    share.clamp(4 << 10, 1 << 20)
}

fn write_run<T: Record>(w: &mut impl Write, records: impl Iterator<Item = T>) -> io::Result<()> {
    let mut out = Vec::new();
    for record in records {
        write_frame(w, &mut out, &record)?;
    }
    w.flush()
}

/// One record as its length (u32, little-endian) and its bytes.
fn write_frame<T: Record>(w: &mut impl Write, out: &mut Vec<u8>, record: &T) -> io::Result<()> {
    out.clear();
    record.encode(out);
    let len = u32::try_from(out.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a record over 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(out)
}

/// Reads a run's records back, in the order they were written.
pub struct RunReader<T, R = File> {
    file: BufReader<R>,
    frame: Vec<u8>,
    _records: std::marker::PhantomData<T>,
}

impl<T: Record, R: Read> RunReader<T, R> {
    fn new(file: R, buffer: usize) -> Self {
        Self {
            file: BufReader::with_capacity(buffer, file),
            frame: Vec::new(),
            _records: std::marker::PhantomData,
        }
    }
}

impl<T: Record> RunReader<T> {
    fn rewind(&mut self) -> io::Result<()> {
        self.file.rewind()
    }
}

impl<T: Record, R: Read> Iterator for RunReader<T, R> {
    type Item = io::Result<T>;
    fn next(&mut self) -> Option<io::Result<T>> {
        let mut len = [0u8; 4];
        match self.file.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return None,
            Err(e) => return Some(Err(e)),
        }
        self.frame.resize(u32::from_le_bytes(len) as usize, 0);
        if let Err(e) = self.file.read_exact(&mut self.frame) {
            return Some(Err(e));
        }
        let mut input = self.frame.as_slice();
        Some(T::decode(&mut input))
    }
}

/// The next record of run `run`; the heap's top is the smallest, and among
/// equals the earliest run, which keeps the merge stable.
struct Head<T> {
    record: T,
    run: usize,
}

impl<T: Ord> Ord for Head<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .record
            .cmp(&self.record)
            .then_with(|| other.run.cmp(&self.run))
    }
}
impl<T: Ord> PartialOrd for Head<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Ord> PartialEq for Head<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T: Ord> Eq for Head<T> {}

/// A sorter's records in order.
pub struct Sorted<T: Record + Ord>(Merging<T>);

enum Merging<T: Record + Ord> {
    Memory(std::vec::IntoIter<T>),
    Merge {
        readers: Vec<RunReader<T>>,
        heap: BinaryHeap<Head<T>>,
    },
}

impl<T: Record + Ord> Iterator for Sorted<T> {
    type Item = io::Result<T>;
    fn next(&mut self) -> Option<io::Result<T>> {
        match &mut self.0 {
            Merging::Memory(records) => records.next().map(Ok),
            Merging::Merge { readers, heap } => {
                let Head { record, run } = heap.pop()?;
                match readers[run].next() {
                    Some(Ok(next)) => heap.push(Head { record: next, run }),
                    Some(Err(e)) => return Some(Err(e)),
                    None => {}
                }
                Some(Ok(record))
            }
        }
    }
}

/// Sorted records that can be read from the start again.
pub enum SortedRun<T> {
    Memory(Vec<T>),
    File(RunReader<T>),
}

impl<T: Record + Ord> SortedRun<T> {
    pub fn spilled(&self) -> bool {
        matches!(self, SortedRun::File(_))
    }

    /// Reads from the start again (a file run; a held one is read by index).
    pub fn rewind(&mut self) -> io::Result<()> {
        match self {
            SortedRun::Memory(_) => Ok(()),
            SortedRun::File(reader) => reader.rewind(),
        }
    }
}

/// Records kept in the order they were pushed: held up to a budget, and
/// past it all written to one unnamed file; read back once, in order. What
/// one stage hands the next when it may not fit in memory.
pub struct Spool<T> {
    dir: PathBuf,
    budget: usize,
    held: Vec<T>,
    weight: usize,
    file: Option<BufWriter<File>>,
    frame: Vec<u8>,
    len: usize,
}

impl<T: Record> Spool<T> {
    /// Spills to an unnamed file in `dir` (created when first needed) once
    /// the records held weigh more than `budget` bytes.
    pub fn new(dir: impl Into<PathBuf>, budget: usize) -> Self {
        Self {
            dir: dir.into(),
            budget,
            held: Vec::new(),
            weight: 0,
            file: None,
            frame: Vec::new(),
            len: 0,
        }
    }

    pub fn push(&mut self, record: T) -> io::Result<()> {
        self.len += 1;
        if let Some(file) = &mut self.file {
            return write_frame(file, &mut self.frame, &record);
        }
        let outgrown = outgrows_weighed(&self.held, self.weight, self.budget);
        self.weight += record.weight() + std::mem::size_of::<T>();
        // Held unless holding it would grow the records past the budget.
        let last = if outgrown {
            Some(record)
        } else {
            self.held.push(record);
            if self.weight <= self.budget {
                return Ok(());
            }
            None
        };
        std::fs::create_dir_all(&self.dir)?;
        let mut file = new_run(&self.dir)?;
        for held in self.held.drain(..).chain(last) {
            write_frame(&mut file, &mut self.frame, &held)?;
        }
        self.held = Vec::new();
        self.file = Some(file);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn spilled(&self) -> bool {
        self.file.is_some()
    }

    /// Every record, in the order pushed.
    pub fn finish(self) -> io::Result<SpoolReader<T>> {
        Ok(SpoolReader(match self.file {
            None => Spooled::Held(self.held.into_iter()),
            Some(file) => {
                let file = written_run(file)?;
                Spooled::Run(RunReader::new(file, read_buffer(self.budget)))
            }
        }))
    }
}

/// A [`Spool`]'s records, in order.
pub struct SpoolReader<T>(Spooled<T>);

enum Spooled<T> {
    Held(std::vec::IntoIter<T>),
    Run(RunReader<T>),
}

impl<T: Record> Iterator for SpoolReader<T> {
    type Item = io::Result<T>;
    fn next(&mut self) -> Option<io::Result<T>> {
        match &mut self.0 {
            Spooled::Held(records) => records.next().map(Ok),
            Spooled::Run(reader) => reader.next(),
        }
    }
}

/// Records written once and then read forward any number of times, by
/// several readers at once (each with its own position in the file): what
/// one stage hands to several later ones. Held up to a budget; past it, all
/// are written to one unnamed file.
pub struct ShelfWriter<T> {
    spool: Spool<Arc<T>>,
}

impl<T: Record> ShelfWriter<T> {
    pub fn new(dir: impl Into<PathBuf>, budget: usize) -> Self {
        Self {
            spool: Spool::new(dir, budget),
        }
    }

    pub fn push(&mut self, record: T) -> io::Result<()> {
        self.spool.push(Arc::new(record))
    }

    pub fn finish(self) -> io::Result<Shelf<T>> {
        let Spool {
            budget,
            held,
            file,
            len,
            ..
        } = self.spool;
        let file = match file {
            Some(file) => Some(Arc::new(written_run(file)?)),
            None => None,
        };
        Ok(Shelf {
            held,
            file,
            len,
            buffer: read_buffer(budget),
        })
    }
}

/// A shelf holds its records shared, so each reader of held ones gets them
/// without a copy.
impl<T: Record> Record for Arc<T> {
    fn weight(&self) -> usize {
        T::weight(self)
    }
    fn encode(&self, out: &mut Vec<u8>) {
        T::encode(self, out)
    }
    fn decode(input: &mut &[u8]) -> io::Result<Self> {
        T::decode(input).map(Arc::new)
    }
}

/// A [`ShelfWriter`]'s records, ready to be read.
pub struct Shelf<T> {
    held: Vec<Arc<T>>,
    file: Option<Arc<File>>,
    len: usize,
    buffer: usize,
}

impl<T> Default for Shelf<T> {
    fn default() -> Self {
        Self {
            held: Vec::new(),
            file: None,
            len: 0,
            buffer: read_buffer(0),
        }
    }
}

impl<T: Record> Shelf<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn spilled(&self) -> bool {
        self.file.is_some()
    }

    /// Every record, in the order pushed, from the start; readers do not
    /// disturb one another.
    pub fn read(&self) -> ShelfReader<T> {
        ShelfReader(match &self.file {
            None => Shelved::Held(self.held.clone().into_iter()),
            Some(file) => Shelved::File(RunReader::new(
                ReadAt {
                    file: file.clone(),
                    at: 0,
                },
                self.buffer,
            )),
        })
    }
}

/// A [`Shelf`]'s records, in order.
pub struct ShelfReader<T>(Shelved<T>);

enum Shelved<T> {
    Held(std::vec::IntoIter<Arc<T>>),
    File(RunReader<T, ReadAt>),
}

impl<T: Record> Iterator for ShelfReader<T> {
    type Item = io::Result<Arc<T>>;
    fn next(&mut self) -> Option<io::Result<Arc<T>>> {
        match &mut self.0 {
            Shelved::Held(records) => records.next().map(Ok),
            Shelved::File(reader) => reader.next().map(|r| r.map(Arc::new)),
        }
    }
}

/// A shared file read from a position of its own (`pread`), so readers of
/// one file never move each other.
struct ReadAt {
    file: Arc<File>,
    at: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// A record looked up by the text it is sorted by.
pub trait Keyed: Record + Ord + Clone {
    /// The text records are ordered by; `Ord` must order by it alone.
    fn sort_key(&self) -> std::borrow::Cow<'_, str>;
}

/// Sorted records, held or in one run file, answering lookups by key. A held
/// run is searched; a file is read forward, and a key before the last one
/// asked rewinds it, so asking in ascending order reads the file once.
pub struct KeyedRun<T> {
    run: SortedRun<T>,
    /// The file's next record, read but not yet past the keys asked.
    peeked: Option<T>,
    last: Option<String>,
}

impl<T: Keyed> KeyedRun<T> {
    pub fn new(run: SortedRun<T>) -> Self {
        Self {
            run,
            peeked: None,
            last: None,
        }
    }

    pub fn spilled(&self) -> bool {
        self.run.spilled()
    }

    /// Every record under `key`, in the order they were pushed.
    pub fn find(&mut self, key: &str) -> io::Result<Vec<T>> {
        let reader = match &mut self.run {
            SortedRun::Memory(held) => {
                let from = held.partition_point(|r| r.sort_key().as_ref() < key);
                return Ok(held[from..]
                    .iter()
                    .take_while(|r| r.sort_key() == key)
                    .cloned()
                    .collect());
            }
            SortedRun::File(reader) => reader,
        };
        if self.last.as_deref().is_some_and(|last| key <= last) {
            reader.rewind()?;
            self.peeked = None;
        }
        self.last = Some(key.to_owned());
        let mut found = Vec::new();
        loop {
            let next = match self.peeked.take() {
                Some(r) => r,
                None => match reader.next() {
                    Some(r) => r?,
                    None => return Ok(found),
                },
            };
            match next.sort_key().as_ref().cmp(key) {
                Ordering::Less => {}
                Ordering::Equal => found.push(next),
                Ordering::Greater => {
                    self.peeked = Some(next);
                    return Ok(found);
                }
            }
        }
    }

    /// Calls `f` with every record, in order; the next lookup starts afresh.
    pub fn for_each(&mut self, mut f: impl FnMut(&T)) -> io::Result<()> {
        self.last = None;
        self.peeked = None;
        match &mut self.run {
            SortedRun::Memory(held) => held.iter().for_each(f),
            SortedRun::File(reader) => {
                reader.rewind()?;
                for record in reader.by_ref() {
                    f(&record?);
                }
                reader.rewind()?;
            }
        }
        Ok(())
    }
}

/// Little helpers for [`Record::encode`]/[`Record::decode`]: integers as LEB128
/// varints, strings as their length and bytes.
pub mod codec {
    use std::io;

    pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub fn put_str(out: &mut Vec<u8>, s: &str) {
        put_u64(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }

    pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(b);
    }

    fn damaged() -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, "a damaged spill file")
    }

    pub fn get_u64(input: &mut &[u8]) -> io::Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = input.split_first().ok_or_else(damaged)?;
            *input = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(damaged())
    }

    pub fn get_str(input: &mut &[u8]) -> io::Result<String> {
        let len = usize::try_from(get_u64(input)?).map_err(|_| damaged())?;
        if input.len() < len {
            return Err(damaged());
        }
        let (s, rest) = input.split_at(len);
        *input = rest;
        String::from_utf8(s.to_vec()).map_err(|_| damaged())
    }

    pub fn get_array<const N: usize>(input: &mut &[u8]) -> io::Result<[u8; N]> {
        if input.len() < N {
            return Err(damaged());
        }
        let (a, rest) = input.split_at(N);
        *input = rest;
        Ok(a.try_into().expect("split at N"))
    }
}

#[cfg(test)]
mod tests {
    use super::codec::*;
    use super::*;

    #[test]
    fn a_share_is_taken_from_what_the_budget_has_left() {
        let b = MemoryBudget::DEFAULT;
        // At most a quarter of the whole budget's share, however much is left.
        assert_eq!(b.share_beside(0, 8), 16 << 20);
        assert_eq!(b.share_beside(256 << 20, 8), 16 << 20);
        assert_eq!(b.share_beside(400 << 20, 8), 14 << 20);
        // Past the budget: the floor, or the whole budget's share if smaller.
        assert_eq!(b.share_beside(1 << 30, 8), MIN_SHARE);
        let small = MemoryBudget::parse("16MiB").unwrap();
        assert_eq!(small.share_beside(1 << 30, 8), 2 << 20);
        assert!(resident_bytes().is_some_and(|r| r > 0));
    }

    /// A key and the order it was pushed in; compared by key only, so the
    /// order among equal keys shows whether the sort is stable.
    #[derive(Debug)]
    struct Keyed(String, u64);
    impl PartialEq for Keyed {
        fn eq(&self, o: &Self) -> bool {
            self.0 == o.0
        }
    }
    impl Eq for Keyed {}
    impl PartialOrd for Keyed {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Keyed {
        fn cmp(&self, o: &Self) -> Ordering {
            self.0.cmp(&o.0)
        }
    }
    impl Record for Keyed {
        fn weight(&self) -> usize {
            self.0.len()
        }
        fn encode(&self, out: &mut Vec<u8>) {
            put_str(out, &self.0);
            put_u64(out, self.1);
        }
        fn decode(input: &mut &[u8]) -> io::Result<Self> {
            Ok(Keyed(get_str(input)?, get_u64(input)?))
        }
    }

    fn records(n: u64) -> Vec<Keyed> {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..n)
            .map(|i| Keyed(format!("k{:03}", rng.u32(0..500)), i))
            .collect()
    }

    fn sorted_by(budget: usize, n: u64) -> (Vec<(String, u64)>, usize, usize) {
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("spill");
        let mut sorter = Sorter::new(&spill, budget);
        for r in records(n) {
            sorter.push(r).unwrap();
        }
        let runs = sorter.runs();
        let out: Vec<_> = sorter
            .finish()
            .unwrap()
            .map(|r| r.map(|k| (k.0, k.1)).unwrap())
            .collect();
        // Run files are unnamed: nothing is left in the folder.
        let left = std::fs::read_dir(&spill).map_or(0, |d| d.count());
        (out, runs, left)
    }

    #[test]
    fn spilled_sort_is_the_stable_in_memory_sort() {
        let mut expected: Vec<(String, u64)> =
            records(5000).into_iter().map(|k| (k.0, k.1)).collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0)); // stable
        let (in_memory, runs, _) = sorted_by(usize::MAX, 5000);
        assert_eq!(runs, 0);
        assert_eq!(in_memory, expected);
        let (spilled, runs, left) = sorted_by(2000, 5000);
        assert!(runs > 10, "{runs} runs");
        assert_eq!(spilled, expected);
        assert_eq!(left, 0);
        // A run per record: runs are merged as they pile up, so no more
        // than MAX_RUNS files are ever open, and the order is the same.
        let (one_each, runs, left) = sorted_by(1, 5000);
        assert!(runs < MAX_RUNS, "{runs} runs");
        assert_eq!(one_each, expected);
        assert_eq!(left, 0);
    }

    /// Ordered by both fields: equal records are the same.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    struct Pair(u16, u64);
    impl Record for Pair {
        const EQUAL_IS_SAME: bool = true;
        fn weight(&self) -> usize {
            0
        }
        fn encode(&self, out: &mut Vec<u8>) {
            put_u64(out, u64::from(self.0));
            put_u64(out, self.1);
        }
        fn decode(input: &mut &[u8]) -> io::Result<Self> {
            let a = get_u64(input)?;
            Ok(Pair(a as u16, get_u64(input)?))
        }
    }

    #[test]
    fn records_equal_only_when_the_same_sort_in_place_to_the_stable_order() {
        let mut rng = fastrand::Rng::with_seed(11);
        // Few distinct values: most records have equals, in runs and across.
        let input: Vec<Pair> = (0..20_000)
            .map(|_| Pair(rng.u16(0..40), rng.u64(0..3)))
            .collect();
        let mut expected = input.clone();
        expected.sort(); // stable
        let dir = tempfile::tempdir().unwrap();
        for budget in [usize::MAX, 4096, 1] {
            let mut sorter = Sorter::new(dir.path().join("spill"), budget);
            for p in &input {
                sorter.push(*p).unwrap();
            }
            assert_eq!(sorter.runs() > 0, budget != usize::MAX);
            let out: Vec<Pair> = sorter.finish().unwrap().map(Result::unwrap).collect();
            assert_eq!(out, expected, "budget {budget}");
        }
    }

    #[test]
    fn held_records_never_grow_past_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 16 << 10;
        let mut sorter = Sorter::new(dir.path().join("spill"), budget);
        let mut spool = Spool::new(dir.path().join("spill"), budget);
        for i in 0..10_000u64 {
            sorter.push(Pair(0, i)).unwrap();
            spool.push(Pair(0, i)).unwrap();
            assert!(sorter.held.capacity() * std::mem::size_of::<Pair>() <= budget);
            assert!(spool.held.capacity() * std::mem::size_of::<Pair>() <= budget);
        }
        // Runs are whole buffers: half the budget or more, never tiny ones.
        assert!(
            sorter.runs() <= 10_000 * 16 / (budget / 2),
            "{}",
            sorter.runs()
        );
        let sorted: Vec<u64> = sorter.finish().unwrap().map(|p| p.unwrap().1).collect();
        assert_eq!(sorted, (0..10_000).collect::<Vec<_>>());
        let spooled: Vec<u64> = spool.finish().unwrap().map(|p| p.unwrap().1).collect();
        assert_eq!(spooled, (0..10_000).collect::<Vec<_>>());
        // Growth past a budget is seen before the push that would cause it.
        let mut v: Vec<u8> = Vec::with_capacity(8);
        v.extend_from_slice(&[0; 8]);
        assert!(outgrows(&v, 1, 15) && !outgrows(&v, 1, 16));
        assert!(
            !outgrows(&Vec::<u8>::new(), 100, 1),
            "an empty buffer takes one record"
        );
    }

    #[test]
    fn a_spool_reads_back_in_the_order_pushed_held_or_spilled() {
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("spill");
        for budget in [usize::MAX, 500] {
            let mut spool = Spool::new(&spill, budget);
            for r in records(300) {
                spool.push(r).unwrap();
            }
            assert_eq!((spool.len(), spool.spilled()), (300, budget == 500));
            let back: Vec<(String, u64)> = spool
                .finish()
                .unwrap()
                .map(|r| r.map(|k| (k.0, k.1)).unwrap())
                .collect();
            let pushed: Vec<(String, u64)> = records(300).into_iter().map(|k| (k.0, k.1)).collect();
            assert_eq!(back, pushed);
        }
        assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
    }

    #[test]
    fn a_run_reads_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut sorter = Sorter::new(dir.path(), 1000);
        for r in records(300) {
            sorter.push(r).unwrap();
        }
        let mut run = sorter.finish_to_run().unwrap();
        assert!(run.spilled());
        let SortedRun::File(reader) = &mut run else {
            unreachable!()
        };
        let first: Vec<String> = reader.by_ref().map(|r| r.unwrap().0).collect();
        assert_eq!(first.len(), 300);
        assert!(first.is_sorted());
        run.rewind().unwrap();
        let SortedRun::File(reader) = &mut run else {
            unreachable!()
        };
        assert_eq!(reader.map(|r| r.unwrap().0).collect::<Vec<_>>(), first);
    }

    #[test]
    fn a_damaged_frame_is_an_error_not_a_panic() {
        let mut bad: &[u8] = &[0xff, 0xff];
        assert!(get_u64(&mut bad).is_err());
        let mut short: &[u8] = &[5, b'a'];
        assert!(get_str(&mut short).is_err());
    }

    #[test]
    fn budgets_parse_with_units() {
        assert_eq!(MemoryBudget::parse("512MiB").unwrap().bytes, 512 << 20);
        assert_eq!(MemoryBudget::parse("2G").unwrap().bytes, 2 << 30);
        assert_eq!(MemoryBudget::parse("1.5gib").unwrap().bytes, 3 << 29);
        assert!(MemoryBudget::parse("lots").is_err());
        assert!(
            MemoryBudget::parse("10MB")
                .unwrap_err()
                .contains("at least")
        );
        assert!(MemoryBudget::parse("5 parsecs").is_err());
    }
}
