//! Copies of remote objects read at plan time, for apply to send.
//!
//! A plan hashes every object of a remote source (`checksum: plan`) and apply
//! then sends the same bytes to the target: without a copy each object is
//! fetched twice, which on an object store costs as much as the upload. While
//! hashing, the planner keeps each object in `.synup/cache/objects/<sha1>`
//! as long as the copies fit their share of the disk ([`ObjectCopies::MAX_BYTES`],
//! and never more than a quarter of the free space). Apply uses a copy whose
//! size matches instead of the object and checks its SHA-1: the local store
//! moves the checked copy in (`FileStore::adopt`); the Synapse upload hashes
//! what it sends, sends the object itself if the copy was damaged, and removes
//! the copy once the target holds that content.
//!
//! Copies are a cache: a missing or damaged one costs a second read, never a
//! wrong upload. Copies older than [`ObjectCopies::MAX_AGE`] are removed when a
//! plan starts, so a plan that is never applied does not leave them behind.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// A folder of object copies named by SHA-1, with the room new copies may
/// still take.
#[derive(Debug)]
pub struct ObjectCopies {
    dir: PathBuf,
    /// Bytes new copies may still take (none for apply, which only reads).
    room: AtomicU64,
    /// The folder is there: made once, not looked for per object.
    made: AtomicBool,
}

impl ObjectCopies {
    /// What all copies together may take at most.
    pub const MAX_BYTES: u64 = 2 << 30;
    /// Copies not used within this long are removed by the next plan.
    pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

    /// Where the copies of the recipe whose state folder is `state_dir` live.
    pub fn dir_under(state_dir: &Path) -> PathBuf {
        state_dir.join("cache").join("objects")
    }

    /// For a plan: removes stale copies, then sizes the room left from
    /// [`Self::MAX_BYTES`], what the copies already take, and the free space.
    pub fn for_plan(dir: PathBuf) -> Self {
        let held = prune(&dir, SystemTime::now());
        let free = free_bytes(dir.parent().unwrap_or(&dir)).unwrap_or(0);
        let room = Self::MAX_BYTES.saturating_sub(held).min(free / 4);
        tracing::debug!(dir = %dir.display(), held, room, "object copies");
        Self {
            dir,
            room: AtomicU64::new(room),
            made: AtomicBool::new(false),
        }
    }

    /// For apply: finds and removes copies, keeps no new ones.
    pub fn for_apply(dir: PathBuf) -> Self {
        Self {
            dir,
            room: AtomicU64::new(0),
            made: AtomicBool::new(false),
        }
    }

    /// A keeper for an object of `size` bytes, if its copy fits; the room is
    /// taken now and given back unless the copy is kept.
    pub fn keeper(&self, size: u64) -> Option<Keeper<'_>> {
        self.room
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |room| {
                room.checked_sub(size)
            })
            .ok()?;
        let made = match self.made.load(Ordering::Relaxed) {
            true => Ok(()),
            false => std::fs::create_dir_all(&self.dir)
                .inspect(|()| self.made.store(true, Ordering::Relaxed)),
        };
        let file =
            made.and_then(|()| tempfile::NamedTempFile::with_prefix_in(".incoming-", &self.dir));
        match file {
            Ok(f) => Some(Keeper {
                copies: self,
                file: Some(BufWriter::with_capacity(64 * 1024, f)),
                reserved: size,
            }),
            Err(e) => {
                tracing::debug!(error = %e, "no object copy: cannot write under {}", self.dir.display());
                self.room.fetch_add(size, Ordering::Relaxed);
                None
            }
        }
    }

    /// The copy of the object with this SHA-1 (lower-case hex), if one of
    /// `size` bytes is here.
    pub fn copy_of(&self, sha1: &str, size: u64) -> Option<PathBuf> {
        if !is_sha1_hex(sha1) {
            return None;
        }
        let path = self.dir.join(sha1);
        let meta = std::fs::metadata(&path).ok()?;
        (meta.is_file() && meta.len() == size).then_some(path)
    }

    /// Removes the copy with this SHA-1: the target holds its content now,
    /// or it turned out damaged.
    pub fn remove(&self, sha1: &str) {
        if is_sha1_hex(sha1) {
            let _ = std::fs::remove_file(self.dir.join(sha1));
        }
    }
}

/// Writes one object's copy as its bytes are hashed; kept under its SHA-1
/// once the whole object was read, else removed.
pub struct Keeper<'a> {
    copies: &'a ObjectCopies,
    /// `None` once a write failed: the object is still hashed, not copied.
    file: Option<BufWriter<tempfile::NamedTempFile>>,
    reserved: u64,
}

impl Keeper<'_> {
    pub fn write(&mut self, chunk: &[u8]) {
        if let Some(f) = &mut self.file
            && let Err(e) = f.write_all(chunk)
        {
            tracing::debug!(error = %e, "object copy abandoned");
            self.file = None;
        }
    }

    /// Keeps the copy as `sha1` (lower-case hex) if `read` bytes, all of
    /// them, were written. No fsync: a copy lost in a crash is read again.
    pub fn keep(mut self, sha1: &str, read: u64) {
        let Some(f) = self.file.take() else { return };
        if read != self.reserved || !is_sha1_hex(sha1) {
            return;
        }
        let kept = f
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.persist(self.copies.dir.join(sha1)).map_err(|e| e.error));
        match kept {
            Ok(_) => self.reserved = 0,
            Err(e) => tracing::debug!(error = %e, "object copy not kept"),
        }
    }
}

impl Drop for Keeper<'_> {
    fn drop(&mut self) {
        // A copy not kept (the read failed or was cut short) gives its room back;
        // its temporary file goes with `file`.
        self.copies.room.fetch_add(self.reserved, Ordering::Relaxed);
    }
}

fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Removes copies (and temporary files of a killed plan) older than
/// [`ObjectCopies::MAX_AGE`]; returns the bytes the remaining ones take.
fn prune(dir: &Path, now: SystemTime) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut held = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if age > ObjectCopies::MAX_AGE {
            let _ = std::fs::remove_file(entry.path());
        } else {
            held += meta.len();
        }
    }
    held
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let mut at = dir;
    // The folder may not exist yet: ask the nearest one that does.
    loop {
        if let Ok(s) = rustix::fs::statvfs(at) {
            return Some(s.f_bavail.saturating_mul(s.f_frsize));
        }
        at = at.parent()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";

    fn with_room(dir: &Path, room: u64) -> ObjectCopies {
        ObjectCopies {
            dir: dir.join("objects"),
            room: AtomicU64::new(room),
            made: AtomicBool::new(false),
        }
    }

    #[test]
    fn a_whole_object_is_kept_under_its_sha1_and_found_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let copies = with_room(dir.path(), 10);
        let mut k = copies.keeper(3).unwrap();
        k.write(b"ab");
        k.write(b"c");
        k.keep(SHA, 3);
        let path = copies.copy_of(SHA, 3).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        assert_eq!(
            copies.copy_of(SHA, 4),
            None,
            "another size is another object"
        );
        assert_eq!(copies.room.load(Ordering::Relaxed), 7);
        copies.remove(SHA);
        assert_eq!(copies.copy_of(SHA, 3), None);
        // Nothing else is left in the folder: no temporary file.
        assert_eq!(std::fs::read_dir(&copies.dir).unwrap().count(), 0);
    }

    #[test]
    fn a_short_read_or_a_full_room_keeps_nothing_and_gives_the_room_back() {
        let dir = tempfile::tempdir().unwrap();
        let copies = with_room(dir.path(), 5);
        assert!(copies.keeper(6).is_none(), "bigger than the room");
        let mut k = copies.keeper(5).unwrap();
        assert!(
            copies.keeper(1).is_none(),
            "the room is taken while copying"
        );
        k.write(b"abc");
        k.keep(SHA, 3);
        assert_eq!(copies.copy_of(SHA, 3), None);
        assert_eq!(copies.room.load(Ordering::Relaxed), 5);
        let k = copies.keeper(2).unwrap();
        drop(k); // the read failed
        assert_eq!(copies.room.load(Ordering::Relaxed), 5);
        assert_eq!(std::fs::read_dir(&copies.dir).unwrap().count(), 0);
    }

    #[test]
    fn apply_keeps_nothing_and_names_are_only_sha1s() {
        let dir = tempfile::tempdir().unwrap();
        let copies = ObjectCopies::for_apply(dir.path().join("objects"));
        assert!(copies.keeper(1).is_none());
        std::fs::create_dir_all(dir.path().join("objects")).unwrap();
        std::fs::write(dir.path().join("x"), b"abc").unwrap();
        assert_eq!(copies.copy_of("../x", 3), None);
        copies.remove("../x");
        assert!(dir.path().join("x").exists());
    }

    #[test]
    fn a_plan_removes_copies_older_than_a_week_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        std::fs::create_dir_all(&objects).unwrap();
        std::fs::write(objects.join(SHA), b"abc").unwrap();
        let old = objects.join("b".repeat(40));
        std::fs::write(&old, b"abcdef").unwrap();
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_modified(SystemTime::now() - ObjectCopies::MAX_AGE - Duration::from_secs(60))
            .unwrap();
        assert_eq!(prune(&objects, SystemTime::now()), 3);
        assert!(!old.exists());
        let copies = ObjectCopies::for_plan(objects);
        assert!(copies.room.load(Ordering::Relaxed) <= ObjectCopies::MAX_BYTES - 3);
    }
}
