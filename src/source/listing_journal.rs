//! A remote listing's journal: the objects an interrupted listing had listed,
//! for the next listing of the same root to go on from.
//!
//! Listing millions of objects takes thousands of requests; a crash, a kill
//! or a lost connection part way should not cost them all again. A root's
//! listing is split into parts (folders, ranges of folders, or the whole
//! prefix: `remote::Pass::fanned_out`). As a part is listed, its objects are
//! appended here a batch at a time with the last key the part reached, and a
//! record marks the part done. The next listing of the root, within
//! [`RESUME_WITHIN_SECS`] of when the journal was begun, takes from here the
//! done parts it still has (parts are matched by what they list, so a folder
//! added meanwhile costs only its own listing), goes on with a part from
//! after its last key (where the store can start a listing after a key), and
//! lists the rest.
//!
//! A listing that finishes removes its journal: a complete listing is never
//! reused, so `apply` always checks a plan against the store as it is then
//! (SPEC: staleness), and an object that changed in a part taken from here
//! is caught there.
//!
//! Objects are recorded as listed, before the junk list and `exclude`, which
//! may change between the runs. Records are a length (u32), the fields and
//! their check, as the caches' ([`crate::cache_file::record_check`]). A
//! crash can cut only the last record short, which is dropped; anything else
//! that does not decode means the journal is not used: the listing starts
//! over, as it would have without one, with a warning (SPEC: an unreadable
//! cache is rebuilt with a warning).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::cache_file::{In, record_check};
use crate::crash::CrashPoint;

const MAGIC: &[u8] = b"synup remote listing 1\n";

/// How old an interrupted listing may be and still be gone on with. A
/// resumed listing holds parts listed up to this long ago; a plan made from
/// it is checked against a fresh listing when applied.
pub(super) const RESUME_WITHIN_SECS: i64 = 3600;

/// Objects a part lists before they are journaled, with the key it reached.
pub(super) const BATCH: u32 = 1000;

/// A record longer than this is damage, not a batch.
const MAX_RECORD: u32 = 64 << 20;

const HEADER: u8 = 0;
const BEGIN: u8 = 1;
const OBJECTS: u8 = 2;
const DONE: u8 = 3;

/// A part of a listing: the prefix listed flat, within a range of keys
/// (`from`, exclusive, to `until`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct PartKey<'a> {
    pub(super) at: &'a str,
    pub(super) from: Option<&'a str>,
    pub(super) until: Option<&'a str>,
}

/// Where a part of an interrupted listing got to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum Reached {
    /// Nothing of it is journaled: it is listed from its start.
    #[default]
    Nothing,
    /// Its objects up to this key are journaled: it goes on after it.
    After(String),
    /// All of it is journaled.
    Done,
}

/// One object as listed: key (relative to the root), size, version tag.
pub(super) struct Object<'a> {
    pub(super) rel: &'a str,
    pub(super) size: u64,
    pub(super) tag: Option<&'a str>,
}

/// Objects waiting to be journaled together.
#[derive(Default)]
struct Batch {
    fields: Vec<u8>,
    count: u32,
}

impl Batch {
    fn push(&mut self, o: &Object<'_>) {
        put_str(&mut self.fields, o.rel);
        self.fields.extend_from_slice(&o.size.to_le_bytes());
        put_opt(&mut self.fields, o.tag);
        self.count += 1;
    }
}

/// One part's listing as it is journaled: its objects go in [`BATCH`] at a
/// time with the last key listed, and [`PartLog::done`] marks it whole.
pub(super) struct PartLog<'j> {
    journal: &'j ListingJournal,
    part: usize,
    batch: Batch,
    /// The last key listed.
    reached: String,
}

impl PartLog<'_> {
    /// Journals `o` (with the batch it fills).
    pub(super) fn push(&mut self, o: &Object<'_>) {
        self.batch.push(o);
        self.reached.clear();
        self.reached.push_str(o.rel);
        if self.batch.count >= BATCH {
            self.journal
                .objects(self.part, &self.reached, &mut self.batch);
        }
    }

    /// The part is listed whole.
    pub(super) fn done(mut self) {
        if self.batch.count > 0 {
            self.journal
                .objects(self.part, &self.reached, &mut self.batch);
        }
        self.journal.done(self.part);
    }
}

/// What a resumed listing takes from the journal.
#[derive(Debug, Default)]
pub(super) struct Resumed {
    /// Where each part got to.
    pub(super) reached: Vec<Reached>,
    /// Objects taken from the journal.
    pub(super) objects: u64,
    /// How long ago the interrupted listing was begun, in seconds.
    pub(super) age_secs: i64,
    /// The journal held damage a crash cannot cause; it was begun afresh.
    pub(super) damaged: bool,
    /// The journal is ready to be appended to (else the listing goes on
    /// without one).
    writable: bool,
}

/// The journal of one listing in progress, locked against other listings of
/// the root (which then list without one).
pub(super) struct ListingJournal {
    file: Mutex<File>,
    path: PathBuf,
    /// Objects journaled so far (resumed ones included), for the crash point.
    listed: AtomicU64,
    crash_after: Option<u64>,
    /// A write failed: the journal is given up (the listing goes on).
    broken: AtomicBool,
}

impl ListingJournal {
    /// Opens the journal at `path` for a listing of `parts` of the root named
    /// by `identity`, at `now` (Unix seconds). When the journal holds an
    /// interrupted listing of the same root and parts begun within
    /// [`RESUME_WITHIN_SECS`], `each` is given the objects of each part it
    /// finished, and of each part it got part way through where the store
    /// can go on after a key (`go_on`); otherwise it is begun afresh.
    ///
    /// `Ok(None)` when it cannot be used (another listing holds it, or the
    /// disk refuses): the listing goes on without one. An error only when
    /// the journal changed while it was read, after `each` was given some of
    /// its objects: the listing cannot go on without listing some twice.
    pub(super) fn open(
        path: &Path,
        identity: &str,
        parts: &[PartKey<'_>],
        now: i64,
        go_on: bool,
        each: &mut dyn FnMut(Object<'_>),
    ) -> std::io::Result<Option<(Self, Resumed)>> {
        let mut file = match Self::open_file(path) {
            Ok(file) => file,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "listing without a journal");
                return Ok(None);
            }
        };
        let found = read(&mut file, identity, parts, now, go_on);
        let resumed = match found {
            Ok(Found::Taken(taken)) => match taken.give(&mut file, path, identity, parts, each) {
                Ok(resumed) => resumed,
                Err(e) => {
                    let _ = std::fs::remove_file(path);
                    return Err(e);
                }
            },
            found => match begin(&mut file, identity, parts, now) {
                Ok(()) => Resumed {
                    reached: vec![Reached::Nothing; parts.len()],
                    damaged: matches!(found, Ok(Found::Damaged)),
                    writable: true,
                    ..Resumed::default()
                },
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "listing without a journal");
                    return Ok(None);
                }
            },
        };
        Ok(Some((
            Self {
                file: Mutex::new(file),
                path: path.to_owned(),
                listed: AtomicU64::new(resumed.objects),
                crash_after: match CrashPoint::from_env() {
                    Some(CrashPoint::AfterListed(n)) => Some(n),
                    _ => None,
                },
                broken: AtomicBool::new(!resumed.writable),
            },
            resumed,
        )))
    }

    fn open_file(path: &Path) -> std::io::Result<File> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Not through a link: a journal is emptied and written over, and a
        // link planted in its place would have that done to what it names.
        let file = crate::fs_write::not_through_links(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        )
        .open(path)?;
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::other(
                "another listing of this root holds it",
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Part `part`'s log, going on after key `after`, or else listed from
    /// its start (what was journaled of it before then no longer counts).
    pub(super) fn part(&self, part: usize, after: Option<&str>) -> PartLog<'_> {
        if after.is_none() {
            self.begin(part);
        }
        PartLog {
            journal: self,
            part,
            batch: Batch::default(),
            reached: String::new(),
        }
    }

    fn begin(&self, part: usize) {
        let mut fields = vec![BEGIN];
        fields.extend_from_slice(&(part as u32).to_le_bytes());
        self.append(&fields);
    }

    /// `batch`'s objects of part `part`, which has reached key `after`.
    fn objects(&self, part: usize, after: &str, batch: &mut Batch) {
        let mut fields = Vec::with_capacity(batch.fields.len() + after.len() + 16);
        fields.push(OBJECTS);
        fields.extend_from_slice(&(part as u32).to_le_bytes());
        put_str(&mut fields, after);
        fields.extend_from_slice(&batch.count.to_le_bytes());
        fields.append(&mut batch.fields);
        let count = std::mem::take(&mut batch.count);
        self.append(&fields);
        let listed = self.listed.fetch_add(u64::from(count), Ordering::SeqCst) + u64::from(count);
        if self.crash_after.is_some_and(|n| listed >= n) {
            crate::crash::crash_now();
        }
    }

    fn done(&self, part: usize) {
        let mut fields = vec![DONE];
        fields.extend_from_slice(&(part as u32).to_le_bytes());
        self.append(&fields);
    }

    /// The listing is whole: its journal is removed, never to be reused.
    pub(super) fn finish(self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a finished listing's journal");
        }
    }

    fn append(&self, fields: &[u8]) {
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        let record = framed(fields);
        // One write per record: a kill cuts at most the last one short.
        let written = self
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&record);
        if let Err(e) = written {
            self.broken.store(true, Ordering::Relaxed);
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the listing's journal; an interrupted listing will start over");
        }
    }
}

fn framed(fields: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(fields.len() + 8);
    record.extend_from_slice(&(fields.len() as u32).to_le_bytes());
    record.extend_from_slice(fields);
    record.extend_from_slice(&record_check(fields));
    record
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

fn take_str<'a>(i: &mut In<'a>) -> Option<&'a str> {
    std::str::from_utf8(i.bytes()?).ok()
}

fn take_opt<'a>(i: &mut In<'a>) -> Option<Option<&'a str>> {
    match i.u8()? {
        0 => Some(None),
        1 => take_str(i).map(Some),
        _ => None,
    }
}

/// The header's fields: who is listed, since when, in which parts.
fn header(identity: &str, parts: &[PartKey<'_>], started: i64) -> Vec<u8> {
    let mut fields = vec![HEADER];
    put_str(&mut fields, identity);
    fields.extend_from_slice(&started.to_le_bytes());
    fields.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for p in parts {
        put_str(&mut fields, p.at);
        put_opt(&mut fields, p.from);
        put_opt(&mut fields, p.until);
    }
    fields
}

/// Empties the file and writes the magic and the header.
fn begin(file: &mut File, identity: &str, parts: &[PartKey<'_>], now: i64) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&framed(&header(identity, parts, now)));
    file.write_all(&bytes)
}

/// Reads records one at a time; `None` at the end or at a record cut short
/// or damaged, with [`Records::damaged`] telling which.
struct Records<R> {
    input: R,
    /// Bytes of whole records read so far (after the magic).
    at: u64,
    buf: Vec<u8>,
    damaged: bool,
    len: u64,
}

impl<R: Read> Records<R> {
    fn next(&mut self) -> Option<&[u8]> {
        let mut len = [0u8; 4];
        let left = self.len - self.at;
        if left == 0 {
            return None;
        }
        if left < 8 || self.input.read_exact(&mut len).is_err() {
            return None;
        }
        let n = u32::from_le_bytes(len);
        if n > MAX_RECORD {
            self.damaged = true;
            return None;
        }
        if u64::from(n) + 8 > left {
            // Cut short: the crash's, if it is the last; dropped.
            return None;
        }
        self.buf.resize(n as usize + 4, 0);
        if self.input.read_exact(&mut self.buf).is_err() {
            return None;
        }
        let (fields, check) = self.buf.split_at(n as usize);
        if record_check(fields) != check {
            self.damaged = true;
            return None;
        }
        self.at += u64::from(n) + 8;
        Some(&self.buf[..n as usize])
    }
}

/// An interrupted listing found in a journal, checked whole: where each part
/// got to, and which records hold the objects it takes.
struct Taken {
    /// Where each of this listing's parts got to.
    reached: Vec<Reached>,
    /// Each of this listing's parts' last begin, as a record number: its
    /// objects before it are void.
    last_begin: Vec<u64>,
    /// The journal's part numbers as this listing's: `None` for a part this
    /// listing does not have (a folder gone, or ranges split elsewhere).
    renumbered: Vec<Option<usize>>,
    /// When the interrupted listing was begun.
    started: i64,
    /// Where the whole records end.
    whole: u64,
    age_secs: i64,
}

/// The fields of an objects record after its kind and part: the key reached,
/// and each object, given to `each`; `None` unless they decode exactly.
fn objects_of<'a>(r: &mut In<'a>, each: &mut dyn FnMut(Object<'a>)) -> Option<u64> {
    take_str(r)?;
    let n = r.u32()?;
    for _ in 0..n {
        let rel = take_str(r)?;
        let size = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let tag = take_opt(r)?;
        each(Object { rel, size, tag });
    }
    r.is_empty().then_some(u64::from(n))
}

fn records(file: &mut File, len: u64) -> std::io::Result<Records<BufReader<&mut File>>> {
    let start = MAGIC.len() as u64;
    file.seek(SeekFrom::Start(start))?;
    Ok(Records {
        input: BufReader::with_capacity(1 << 16, file),
        at: 0,
        buf: Vec::new(),
        damaged: false,
        len: len.saturating_sub(start),
    })
}

/// What a journal holds.
enum Found {
    /// No listing to go on with: none, or one of another root or other
    /// parts, or too old.
    Nothing,
    /// Damage a crash cannot cause (a record before the end that does not
    /// decode): the listing starts over, with a warning.
    Damaged,
    Taken(Taken),
}

/// The interrupted listing the journal in `file` holds, if it is of this
/// root and these parts, recent, and whole up to a last record cut short.
fn read(
    file: &mut File,
    identity: &str,
    parts: &[PartKey<'_>],
    now: i64,
    go_on: bool,
) -> std::io::Result<Found> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Found::Nothing);
    }
    let mut magic = Vec::with_capacity(MAGIC.len());
    file.seek(SeekFrom::Start(0))?;
    (&mut *file)
        .take(MAGIC.len() as u64)
        .read_to_end(&mut magic)?;
    if magic != MAGIC {
        // Cut inside the magic (a kill as the journal began), or not a journal.
        let cut = magic.len() < MAGIC.len() && MAGIC.starts_with(&magic);
        return Ok(if cut { Found::Nothing } else { Found::Damaged });
    }
    let mut pass = records(file, len)?;
    let Some(head) = pass.next() else {
        // Cut inside the header: killed as it began.
        return Ok(if pass.damaged {
            Found::Damaged
        } else {
            Found::Nothing
        });
    };
    let mut h = In(head);
    // (identity, started, its parts as this listing's). Parts are matched by
    // what they list, not by number: a folder added since leaves the others'.
    let numbers: std::collections::HashMap<PartKey<'_>, usize> =
        parts.iter().enumerate().map(|(i, &p)| (p, i)).collect();
    let header = (|| {
        (h.u8()? == HEADER).then_some(())?;
        let theirs = take_str(&mut h)?;
        let started = i64::from_le_bytes(h.take(8)?.try_into().ok()?);
        let n = h.u32()?;
        let mut renumbered = Vec::with_capacity(h.fits(u64::from(n), 6)?);
        for _ in 0..n {
            let key = PartKey {
                at: take_str(&mut h)?,
                from: take_opt(&mut h)?,
                until: take_opt(&mut h)?,
            };
            renumbered.push(numbers.get(&key).copied());
        }
        h.is_empty()
            .then_some((theirs == identity, started, renumbered))
    })();
    let Some((ours, started, renumbered)) = header else {
        return Ok(Found::Damaged);
    };
    let age_secs = now - started;
    let shared = renumbered.iter().any(Option::is_some);
    if !ours || !shared || !(0..RESUME_WITHIN_SECS).contains(&age_secs) {
        return Ok(Found::Nothing);
    }
    let mut reached = vec![Reached::Nothing; parts.len()];
    let mut last_begin = vec![0u64; parts.len()];
    let mut record = 0u64;
    while let Some(fields) = pass.next() {
        record += 1;
        let mut r = In(fields);
        let (Some(kind), Some(theirs)) = (r.u8(), r.u32().map(|p| p as usize)) else {
            return Ok(Found::Damaged);
        };
        let Some(&part) = renumbered.get(theirs) else {
            return Ok(Found::Damaged);
        };
        // Checked whole either way; kept for a part this listing has.
        let mut state = Reached::Nothing;
        let state = match part {
            Some(part) => &mut reached[part],
            None => &mut state,
        };
        match kind {
            BEGIN => {
                *state = Reached::Nothing;
                if let Some(part) = part {
                    last_begin[part] = record;
                }
            }
            OBJECTS => {
                let after = take_str(&mut In(r.0));
                if after.is_none() || objects_of(&mut r, &mut |_| {}).is_none() {
                    return Ok(Found::Damaged);
                }
                *state = Reached::After(after.unwrap_or_default().to_owned());
            }
            DONE => *state = Reached::Done,
            _ => return Ok(Found::Damaged),
        }
    }
    if pass.damaged {
        return Ok(Found::Damaged);
    }
    let whole = MAGIC.len() as u64 + pass.at;
    // Where the store cannot go on after a key, a part got part way through
    // is listed again from its start.
    if !go_on {
        for state in &mut reached {
            if matches!(state, Reached::After(_)) {
                *state = Reached::Nothing;
            }
        }
    }
    Ok(Found::Taken(Taken {
        reached,
        last_begin,
        renumbered,
        started,
        whole,
        age_secs,
    }))
}

impl Taken {
    /// Gives `each` the objects of the parts taken, and leaves the journal
    /// ready for the listing to append after: cut to its whole records, or,
    /// when its parts were numbered otherwise, written again in this
    /// listing's numbering (its header, then what is taken).
    fn give(
        self,
        file: &mut File,
        path: &Path,
        identity: &str,
        parts: &[PartKey<'_>],
        each: &mut dyn FnMut(Object<'_>),
    ) -> std::io::Result<Resumed> {
        let same = self.renumbered.len() == parts.len()
            && self
                .renumbered
                .iter()
                .enumerate()
                .all(|(i, p)| *p == Some(i));
        // Written again beside the journal (it can be as large as a listing
        // of millions of objects), then copied back into the locked file.
        // Where that fails, the listing goes on without a journal: what was
        // taken is still true.
        let mut again = (!same).then(|| {
            let dir = path.parent().unwrap_or(Path::new("."));
            let mut again = std::io::BufWriter::new(tempfile::tempfile_in(dir)?);
            again.write_all(MAGIC)?;
            again.write_all(&framed(&header(identity, parts, self.started)))?;
            Ok(again)
        });
        let changed = || std::io::Error::other("the listing's journal changed while it was read");
        let mut pass = records(file, self.whole)?;
        pass.next();
        let (mut record, mut objects) = (0u64, 0u64);
        while let Some(fields) = pass.next() {
            record += 1;
            let mut r = In(fields);
            let (Some(kind), Some(theirs)) = (r.u8(), r.u32().map(|p| p as usize)) else {
                return Err(changed());
            };
            let Some(part) = self.renumbered.get(theirs).copied().flatten() else {
                continue;
            };
            if self.reached[part] == Reached::Nothing || record < self.last_begin[part] {
                continue;
            }
            if kind == OBJECTS {
                objects += objects_of(&mut r, each).ok_or_else(changed)?;
            }
            if let Some(Ok(w)) = &mut again
                && kind != BEGIN
            {
                let mut fields = fields.to_vec();
                fields[1..5].copy_from_slice(&(part as u32).to_le_bytes());
                if let Err(e) = w.write_all(&framed(&fields)) {
                    again = Some(Err(e));
                }
            }
        }
        if pass.damaged {
            return Err(changed());
        }
        drop(pass);
        let ready = match again {
            Some(again) => again.and_then(|w| {
                let mut again = w.into_inner().map_err(|e| e.into_error())?;
                again.seek(SeekFrom::Start(0))?;
                file.set_len(0)?;
                file.seek(SeekFrom::Start(0))?;
                std::io::copy(&mut again, file).map(drop)
            }),
            None => file
                .set_len(self.whole)
                .and_then(|()| file.seek(SeekFrom::End(0)).map(drop)),
        };
        if let Err(e) = &ready {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the listing's journal again; going on without it");
            let _ = file.set_len(0);
        }
        Ok(Resumed {
            reached: self.reached,
            objects,
            age_secs: self.age_secs,
            damaged: false,
            writable: ready.is_ok(),
        })
    }
}

/// Seconds since the Unix epoch.
pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARTS: [PartKey<'static>; 2] = [
        PartKey {
            at: "p/",
            from: None,
            until: Some("p/m/"),
        },
        PartKey {
            at: "p/",
            from: Some("p/m/"),
            until: None,
        },
    ];
    const NOW: i64 = 1_800_000_000;

    /// Opens the journal at `path` as a listing at `now` would, returning
    /// the objects it took (as `rel size tag`) and where each part got to.
    fn open_at(
        path: &Path,
        parts: &[PartKey<'_>],
        now: i64,
        go_on: bool,
    ) -> (ListingJournal, Vec<String>, Vec<Reached>) {
        let mut taken = Vec::new();
        let (journal, resumed) =
            ListingJournal::open(path, "s3://b/p\n", parts, now, go_on, &mut |o| {
                taken.push(format!("{} {} {}", o.rel, o.size, o.tag.unwrap_or("-")));
            })
            .unwrap()
            .expect("a journal");
        assert_eq!(resumed.objects, taken.len() as u64);
        assert!(
            !resumed.damaged,
            "a cut, an old or another listing is not damage"
        );
        (journal, taken, resumed.reached)
    }

    fn batch(objects: &[(&str, u64)]) -> Batch {
        let mut b = Batch::default();
        for &(rel, size) in objects {
            b.push(&Object {
                rel,
                size,
                tag: (size % 2 == 0).then_some("\"etag\""),
            });
        }
        b
    }

    /// Part 0 listed whole, part 1 up to `p/n/2`: what an interrupted
    /// listing leaves.
    fn interrupted(path: &Path) {
        let (j, taken, reached) = open_at(path, &PARTS, NOW, true);
        assert!(taken.is_empty());
        assert_eq!(reached, [Reached::Nothing, Reached::Nothing]);
        j.begin(0);
        j.begin(1);
        j.objects(0, "p/a/1", &mut batch(&[("p/a/1", 1)]));
        j.objects(1, "p/n/2", &mut batch(&[("p/n/1", 2), ("p/n/2", 3)]));
        j.objects(0, "p/b/1", &mut batch(&[("p/b/1", 4)]));
        j.done(0);
        // Dropped without `finish`: as a killed listing leaves it.
    }

    #[test]
    fn an_interrupted_listing_is_gone_on_with_from_where_each_part_got_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache/r.listing");
        interrupted(&path);
        let (j, taken, reached) = open_at(&path, &PARTS, NOW + 60, true);
        assert_eq!(
            taken,
            [
                "p/a/1 1 -",
                "p/n/1 2 \"etag\"",
                "p/n/2 3 -",
                "p/b/1 4 \"etag\""
            ]
        );
        assert_eq!(reached, [Reached::Done, Reached::After("p/n/2".into())]);
        // Going on, and interrupted again: both runs' objects are taken.
        j.objects(1, "p/z", &mut batch(&[("p/z", 5)]));
        drop(j);
        let (j, taken, reached) = open_at(&path, &PARTS, NOW + 120, true);
        assert_eq!(taken.len(), 5);
        assert_eq!(reached, [Reached::Done, Reached::After("p/z".into())]);
        // A listing that finishes leaves nothing to go on with.
        j.done(1);
        j.finish();
        assert!(!path.exists());
    }

    #[test]
    fn a_part_begun_again_drops_what_was_journaled_of_it_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.listing");
        interrupted(&path);
        // A store that cannot go on after a key lists part 1 again.
        let (j, taken, reached) = open_at(&path, &PARTS, NOW + 60, false);
        assert_eq!(taken, ["p/a/1 1 -", "p/b/1 4 \"etag\""]);
        assert_eq!(reached, [Reached::Done, Reached::Nothing]);
        j.begin(1);
        j.objects(1, "p/n/1", &mut batch(&[("p/n/1", 2)]));
        drop(j);
        let (_, taken, reached) = open_at(&path, &PARTS, NOW + 90, true);
        // In the order they were journaled.
        assert_eq!(taken, ["p/a/1 1 -", "p/b/1 4 \"etag\"", "p/n/1 2 \"etag\""]);
        assert_eq!(reached, [Reached::Done, Reached::After("p/n/1".into())]);
    }

    #[test]
    fn parts_both_listings_have_are_taken_when_a_folder_came_between() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.listing");
        interrupted(&path);
        // A part before the others now, and part 0 gone: part 1 is taken
        // under its new number, and the journal goes on in the new numbers.
        let now = [
            PartKey {
                at: "p/0/",
                from: None,
                until: None,
            },
            PARTS[1],
        ];
        let (j, taken, reached) = open_at(&path, &now, NOW + 60, true);
        assert_eq!(taken, ["p/n/1 2 \"etag\"", "p/n/2 3 -"]);
        assert_eq!(reached, [Reached::Nothing, Reached::After("p/n/2".into())]);
        j.begin(0);
        j.objects(0, "p/0/a", &mut batch(&[("p/0/a", 6)]));
        j.done(0);
        j.objects(1, "p/z", &mut batch(&[("p/z", 5)]));
        drop(j);
        let (_, taken, reached) = open_at(&path, &now, NOW + 90, true);
        assert_eq!(
            taken,
            [
                "p/n/1 2 \"etag\"",
                "p/n/2 3 -",
                "p/0/a 6 \"etag\"",
                "p/z 5 -"
            ]
        );
        assert_eq!(reached, [Reached::Done, Reached::After("p/z".into())]);
        // Still begun when the first listing was.
        let (_, taken, _) = open_at(&path, &now, NOW + RESUME_WITHIN_SECS, true);
        assert!(taken.is_empty());
    }

    #[test]
    fn an_old_or_other_listing_is_not_gone_on_with() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.listing");
        let fresh = [Reached::Nothing, Reached::Nothing];
        // Too old, and (a clock set back) from the future.
        for now in [NOW + RESUME_WITHIN_SECS, NOW - 1] {
            interrupted(&path);
            let (_, taken, reached) = open_at(&path, &PARTS, now, true);
            assert!(taken.is_empty() && reached == fresh, "{now}");
        }
        // The root split into other parts, none the same.
        interrupted(&path);
        let other = [PartKey {
            from: Some("p/l/"),
            ..PARTS[1]
        }];
        let (_, taken, _) = open_at(&path, &other, NOW, true);
        assert!(taken.is_empty());
        // Another store under the same URL.
        interrupted(&path);
        let opened = ListingJournal::open(
            &path,
            "s3://b/p\nhttp://elsewhere",
            &PARTS,
            NOW,
            true,
            &mut |_| panic!("another store's objects"),
        );
        assert!(opened.unwrap().unwrap().1.objects == 0);
    }

    #[test]
    fn a_record_cut_short_is_dropped_and_damage_starts_the_listing_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.listing");
        interrupted(&path);
        let whole = std::fs::read(&path).unwrap();
        // Every cut inside the last record (`done 0`): part 0 is then only
        // got part way through, and the cut record is gone for good.
        let last = framed(&[DONE, 0, 0, 0, 0]).len();
        for cut in 1..last {
            std::fs::write(&path, &whole[..whole.len() - cut]).unwrap();
            let (j, taken, reached) = open_at(&path, &PARTS, NOW, true);
            assert_eq!(taken.len(), 4, "cut {cut}");
            assert_eq!(reached[0], Reached::After("p/b/1".into()), "cut {cut}");
            drop(j);
            assert_eq!(
                std::fs::metadata(&path).unwrap().len() as usize,
                whole.len() - last
            );
        }
        // A changed byte anywhere: what is taken is what the records before
        // it hold (a length changed to run past the end reads as a cut), or
        // nothing; never an object twice, never a panic.
        // Damage is told (a warning), a cut is not.
        let (_, all, _) = open_at(&path, &PARTS, NOW, true);
        let mut told = 0;
        for at in 0..whole.len() {
            let mut bad = whole.clone();
            bad[at] ^= 0x20;
            std::fs::write(&path, &bad).unwrap();
            let mut taken = Vec::new();
            let (_, resumed) =
                ListingJournal::open(&path, "s3://b/p\n", &PARTS, NOW, true, &mut |o| {
                    taken.push(format!("{} {} {}", o.rel, o.size, o.tag.unwrap_or("-")));
                })
                .unwrap()
                .unwrap();
            assert!(all.starts_with(&taken), "byte {at}: {taken:?}");
            assert!(!resumed.damaged || taken.is_empty(), "byte {at}");
            told += usize::from(resumed.damaged);
        }
        // Only a length grown past the end (of 7 records) reads as a cut.
        assert!(told >= whole.len() - 4 * 7, "{told} of {}", whole.len());
        // A file that is not a journal at all is damage too; an empty one,
        // or one cut inside its magic, is not.
        for (bytes, damaged) in [
            (&b"PK\x03\x04 a zip"[..], true),
            (b"", false),
            (&MAGIC[..5], false),
        ] {
            std::fs::write(&path, bytes).unwrap();
            let opened = ListingJournal::open(&path, "s3://b/p\n", &PARTS, NOW, true, &mut |_| {});
            assert_eq!(opened.unwrap().unwrap().1.damaged, damaged, "{bytes:?}");
        }
    }

    #[test]
    fn a_link_or_a_folder_in_the_journals_place_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("precious");
        std::fs::write(&named, "not a journal").unwrap();
        let link = dir.path().join("r.listing");
        std::os::unix::fs::symlink(&named, &link).unwrap();
        let folder = dir.path().join("f.listing");
        std::fs::create_dir(&folder).unwrap();
        for path in [&link, &folder] {
            let opened = ListingJournal::open(path, "s3://b/p\n", &PARTS, NOW, true, &mut |_| {});
            assert!(opened.unwrap().is_none(), "{}", path.display());
        }
        assert_eq!(std::fs::read_to_string(&named).unwrap(), "not a journal");
    }

    #[test]
    fn a_journal_another_listing_holds_is_left_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.listing");
        let (held, _, _) = open_at(&path, &PARTS, NOW, true);
        let second = ListingJournal::open(&path, "s3://b/p\n", &PARTS, NOW, true, &mut |_| {});
        assert!(second.unwrap().is_none());
        drop(held);
    }
}
