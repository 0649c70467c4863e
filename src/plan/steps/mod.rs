//! One function per stage of the graph: each reads the outputs of the stages
//! it depends on from the [`Board`], calls its stage in [`crate::stages`], and
//! writes its own output (and warnings, and counts for `--stats`).
//! Failures come back as recipe diagnostics; the engine reports them together.

mod assemble;
mod checksum;
mod classify;
mod diff;
mod group;
mod load;
mod merge;
mod scan;
mod screen;

pub(super) use self::checksum::checksum;
pub(super) use self::classify::classify;
pub(super) use self::diff::diff;
pub(super) use self::group::group;
pub(super) use self::screen::screen;
pub(super) use assemble::assemble;
pub(super) use load::load_sheet;
pub(super) use merge::merge_validate;
pub(super) use scan::scan;

use std::sync::Arc;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::build::{Board, Context, root_written};
use super::errors::{group_error, sheet_help, source_missing, unreadable_error};
use super::explain;
use super::model::*;
use crate::bits::BitSet;
use crate::recipe::load::describe_path;
use crate::recipe::model::ContentCheck;
use crate::recipe::resolve::{MetadataKind, SourceMode};
use crate::recipe::{Code, RecipeError};
use crate::source::{ListOptions, ObjectCopies, ScanIssue};
use crate::stages;
use crate::stages::checksum::{ChecksumCache, HashRequest, RequestList};
use crate::stages::classify::Classified;
use crate::stages::diff::Verdict;
use crate::stages::group::{Draft, Layout};
use crate::stages::layout::SpecShape;
use crate::stages::metadata::sheet::normalize_key;
use crate::stages::metadata::{MergeInput, PreparedSource, UnitFile};
use crate::stages::validate::CheckedFile;
use crate::stages::{FileRef, UnmatchedReason, Warning, WarningCode};

type StageResult = Result<(), Vec<RecipeError>>;

/// Group's output besides the units: how files were grouped, and the files
/// no group key was found in.
pub(super) struct Grouping {
    pub layout: Layout,
    pub no_group_key: Vec<FileRef>,
    /// Per root, the files classification left out of every unit (by index,
    /// with why): all of classification that is kept past grouping, rather
    /// than a verdict for every file.
    pub unmatched: Vec<Vec<(u32, crate::stages::classify::Classified)>>,
}

/// The files the checksum hashes (each root's unit files that are not
/// deferred to apply), numbered root after root in listing order: the
/// request numbers.
pub(super) type Requested = crate::stages::FileSet;

/// Checksum's output. Every unit file is hashed once, even if two units share
/// it; `requested` numbers them, `digests` is in that order.
pub(super) struct Hashed {
    pub requested: Requested,
    pub digests: stages::checksum::Digests,
}

/// What the screen needs besides the digests (put only when content is
/// screened, and taken by the screen): per root, by file, whether the spec
/// it was first requested for is a video (for the frame-rate check).
pub(super) struct ScreenInput {
    pub video: Vec<crate::bits::BitSet>,
}

impl Hashed {
    /// The digest of file `index` of root `root` (or why it could not be
    /// read), if it was hashed.
    fn digest(
        &self,
        root: usize,
        index: usize,
    ) -> Option<Result<stages::checksum::Sha1Digest, &crate::source::SourceError>> {
        let i = self.requested.number_of(root, index)?;
        Some(self.digests.get(i))
    }
}

/// What the checksum pass saw of each file's first chunk, for the screen.
pub(super) type SeenVerdicts = Vec<Option<Option<Box<stages::screen::Finding>>>>;

/// Screen's output: the findings, and per hashed file an index into them
/// (or [`stages::screen::CLEAN`]).
pub(super) struct ScreenVerdicts {
    pub findings: Vec<stages::screen::Finding>,
    pub finding_of: Vec<u32>,
}

/// A unit's merged meta (compact JSON) and every reason it is invalid.
pub(super) struct MergedUnit {
    pub meta: Box<serde_json::value::RawValue>,
    pub problems: Vec<stages::validate::Problem>,
    pub key_field_overridden: Option<String>,
}

/// Merged units wait for the diff in a [`crate::spill::Spool`]: the meta as
/// its text, problems (rare) as JSON, the override note or nothing.
impl crate::spill::Record for MergedUnit {
    fn weight(&self) -> usize {
        let problems: usize = self.problems.iter().map(|p| p.message.len() + 160).sum();
        self.meta.get().len()
            + 16
            + problems
            + self
                .key_field_overridden
                .as_ref()
                .map_or(0, |o| o.len() + 16)
    }
    fn encode(&self, out: &mut Vec<u8>) {
        use crate::spill::codec::{put_str, put_u64};
        put_str(out, self.meta.get());
        if self.problems.is_empty() {
            put_str(out, "");
        } else {
            put_str(
                out,
                &serde_json::to_string(&self.problems).unwrap_or_default(),
            );
        }
        match &self.key_field_overridden {
            Some(o) => {
                put_u64(out, 1);
                put_str(out, o);
            }
            None => put_u64(out, 0),
        }
    }
    fn decode(input: &mut &[u8]) -> std::io::Result<Self> {
        use crate::spill::codec::{get_str, get_u64};
        let damaged =
            |e: serde_json::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let meta = serde_json::value::RawValue::from_string(get_str(input)?).map_err(damaged)?;
        let problems = match get_str(input)? {
            p if p.is_empty() => Vec::new(),
            p => serde_json::from_str(&p).map_err(damaged)?,
        };
        let key_field_overridden = match get_u64(input)? {
            0 => None,
            _ => Some(get_str(input)?),
        };
        Ok(Self {
            meta,
            problems,
            key_field_overridden,
        })
    }
}

/// A spill that failed doing `what` (sorting the files to upload, keeping
/// the plan's units, reading back sheet rows), as one message with its remedy.
fn spill_failed(spill: &crate::spill::SpillArea, what: &str, e: &std::io::Error) -> String {
    // The remedy follows the cause: a full disk, or a folder that is not
    // one (a file in its way, no permission).
    let remedy = match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            "free disk space there or raise --memory"
        }
        _ => "make it a folder synup can write to, or raise --memory",
    };
    format!("cannot {what} in {}: {e}; {remedy}", spill.dir.display())
}

/// Grouping's units that could not be read back from their spill.
fn drafts_unreadable(cx: &Context<'_>, e: &std::io::Error) -> Vec<RecipeError> {
    let spill = crate::spill::SpillArea::under(&cx.state_dir, cx.opts.memory);
    vec![RecipeError::new(
        Code::Target,
        spill_failed(&spill, "read back the units spilled", e),
        None,
    )]
}

/// Diff's output: the plan's units and their tally.
pub(super) struct Diffed {
    pub units: crate::plan::UnitList,
    pub tally: explain::UnitTally,
    pub summary: Summary,
}

/// The hash requests for `files`, each built when it is looked at (from
/// the scans it borrows, and each root's modification times: a stored
/// listing's own, or a held one's while the checksum has them; without
/// them a request's mtime is 0).
struct Requests<'a> {
    cx: &'a Context<'a>,
    scans: &'a [super::build::Filled<'a, crate::source::SourceScan>],
    mtimes: Option<&'a [Vec<i64>]>,
    requested: &'a Requested,
}

impl RequestList for Requests<'_> {
    fn len(&self) -> usize {
        self.requested.len()
    }

    fn get(&self, i: usize) -> HashRequest<'_> {
        let f = self.requested.file(i);
        let scanned = self.scans[f.root as usize].files.get(f.index as usize);
        HashRequest {
            source: &*self.cx.roots[f.root as usize].source,
            rel: scanned.rel,
            size: scanned.size,
            mtime_ns: scanned
                .mtime_ns
                .or_else(|| {
                    self.mtimes
                        .and_then(|m| m[f.root as usize].get(f.index as usize).copied())
                })
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod spill_failed_tests {
    #[test]
    fn the_remedy_follows_the_cause() {
        let area = crate::spill::SpillArea::under(
            std::path::Path::new(".synup"),
            crate::spill::MemoryBudget::DEFAULT,
        );
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let blocked = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
        assert!(
            super::spill_failed(&area, "sort", &full)
                .ends_with("free disk space there or raise --memory")
        );
        assert!(
            super::spill_failed(&area, "sort", &blocked)
                .contains("make it a folder synup can write to")
        );
    }
}
