//! The apply journal: one JSON record per line under `.synup/journal/`, appended
//! as files are confirmed and units are created.
//!
//! A crash can cut only the last record short, so an incomplete last line is
//! dropped silently; a record that does not parse *before* the end is damage a
//! crash cannot cause, and reading the journal fails naming the file and line.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Record {
    /// An apply run started.
    Start { apply: String, plan_hash: String },
    /// A file is in the target under this checksum.
    File { sha1: String },
    /// A unit exists in the target.
    Unit { key: String, id: String },
    /// The SHA-1 of a file planned with `checksum: apply` (named as `root/path`,
    /// with the size and version tag the plan identified it by).
    Learned {
        path: String,
        size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        etag: Option<String>,
        sha1: String,
    },
    /// An apply run ended.
    End { apply: String, status: String },
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum JournalError {
    #[error("journal {path} is damaged at line {line}: {reason}")]
    #[diagnostic(
        code(synup::apply::journal_corrupt),
        help(
            "a crash can only cut the last line short; this damage came from elsewhere. Move the journal aside to apply without it (the target is checked either way)"
        )
    )]
    Corrupt {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("cannot use journal {path}: {source}")]
    #[diagnostic(code(synup::apply::journal_io))]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The journal of one recipe applying into one collection, under `state_dir`.
pub fn path_for(state_dir: &Path, recipe: &str, collection: &str) -> PathBuf {
    let safe: String = collection
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    state_dir
        .join("journal")
        .join(format!("{recipe}.{safe}.jsonl"))
}

/// What a journal says has been done.
#[derive(Debug, Default)]
pub struct JournalState {
    /// Files and units journaled, collected only by [`read`] (`synup status`
    /// counts them); an apply reopening a journal of millions of records
    /// needs only what it learned.
    pub files: HashSet<String>,
    pub units: HashSet<String>,
    /// SHA-1s learned for deferred files, by [`PlannedFile::identity`](crate::plan::model::PlannedFile::identity).
    pub learned: HashMap<String, String>,
    pub records: usize,
}

/// How often a run's journal is synced at most (and at its end).
pub const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    last_sync: std::time::Instant,
}

impl Journal {
    /// Reads the journal at `path` (if any) and opens it for appending.
    pub fn open(path: &Path) -> Result<(Self, JournalState), JournalError> {
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let state = scan(path, false)?;
        // Drop a torn last record so new records start on a line of their own.
        if let Ok(meta) = std::fs::metadata(path) {
            let valid = state.1;
            if valid < meta.len() {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io)?;
                f.set_len(valid).map_err(io)?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
                last_sync: std::time::Instant::now(),
            },
            state.0,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends records with one write (a crash leaves at most a torn last line).
    pub fn append(&mut self, records: &[Record]) -> Result<(), JournalError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(records.len() * 64);
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(|e| JournalError::Io {
                path: self.path.display().to_string(),
                source: e.into(),
            })?;
            buf.push(b'\n');
        }
        self.file
            .write_all(&buf)
            .map_err(|source| JournalError::Io {
                path: self.path.display().to_string(),
                source,
            })
    }

    /// Makes appended records durable.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.last_sync = std::time::Instant::now();
        self.file.sync_data().map_err(|source| JournalError::Io {
            path: self.path.display().to_string(),
            source,
        })
    }

    /// [`sync`](Self::sync) when the last one is [`SYNC_EVERY`] old. A killed
    /// process loses nothing it appended (the kernel has it); only a power
    /// loss can take back the records of that last moment, which a rerun
    /// redoes. A sync per batch cost more than the batch's work.
    pub fn sync_due(&mut self) -> Result<(), JournalError> {
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync()
        } else {
            Ok(())
        }
    }
}

/// Reads a journal: its state and the byte length of its complete records.
pub fn read(path: &Path) -> Result<(JournalState, u64), JournalError> {
    scan(path, true)
}

/// [`read`], collecting the files and units journaled only if `done`.
fn scan(path: &Path, done: bool) -> Result<(JournalState, u64), JournalError> {
    let mut state = JournalState::default();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((state, 0)),
        Err(source) => {
            return Err(JournalError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut valid = 0u64;
    let mut number = 0;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| JournalError::Io {
                path: path.display().to_string(),
                source,
            })?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            break; // torn by a crash: dropped
        }
        match serde_json::from_slice::<Record>(&line[..line.len() - 1]) {
            Ok(r) => {
                state.records += 1;
                match r {
                    Record::File { sha1 } if done => {
                        state.files.insert(sha1);
                    }
                    Record::Unit { key, .. } if done => {
                        state.units.insert(key);
                    }
                    Record::Learned {
                        path,
                        size,
                        etag,
                        sha1,
                    } => {
                        state.learned.insert(
                            crate::plan::model::PlannedFile::identity_of(
                                &path,
                                size,
                                etag.as_deref(),
                            ),
                            sha1,
                        );
                    }
                    Record::File { .. }
                    | Record::Unit { .. }
                    | Record::Start { .. }
                    | Record::End { .. } => {}
                }
            }
            Err(e) => {
                return Err(JournalError::Corrupt {
                    path: path.display().to_string(),
                    line: number,
                    reason: e.to_string(),
                });
            }
        }
        valid += n as u64;
    }
    Ok((state, valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j/a.jsonl");
        let (mut j, s) = Journal::open(&p).unwrap();
        assert_eq!(s.records, 0);
        j.append(&[
            Record::File { sha1: "ab".into() },
            Record::Unit {
                key: "u1".into(),
                id: "1".into(),
            },
        ])
        .unwrap();
        drop(j);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"t\":\"unit\",\"key\":\"u2\"").unwrap();
        drop(f);
        let (s, _) = read(&p).unwrap();
        assert!(s.files.contains("ab") && s.units.contains("u1") && !s.units.contains("u2"));
        let (mut j, s) = Journal::open(&p).unwrap();
        assert!(
            s.files.is_empty() && s.units.is_empty(),
            "apply needs neither"
        );
        assert_eq!(s.records, 2);
        j.append(&[Record::Unit {
            key: "u3".into(),
            id: "3".into(),
        }])
        .unwrap();
        let (s, _) = read(&p).unwrap();
        assert_eq!(s.records, 3, "the torn record was cut before appending");
    }

    #[test]
    fn damage_before_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        std::fs::write(
            &p,
            "{\"t\":\"file\",\"sha1\":\"ab\"}\nGARBAGE\n{\"t\":\"file\",\"sha1\":\"cd\"}\n",
        )
        .unwrap();
        let err = read(&p).unwrap_err();
        assert!(
            matches!(err, JournalError::Corrupt { line: 2, .. }),
            "{err}"
        );
    }
}
