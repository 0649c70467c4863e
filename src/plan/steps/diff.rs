//! Diff: each unit's action.

use super::*;

/// Diff: each unit's action against the target, consuming the drafts and
/// merged meta a window at a time (each window in parallel), so they are
/// freed as the plan's units grow. Each window asks the target for its valid
/// keys only (windows come in key order), so the target's units are never
/// held all at once. Then which files the target lacks, from a sort of the
/// created units' files that spills past its share of the budget.
pub(in crate::plan) fn diff(cx: &Context<'_>, board: &Board) -> StageResult {
    let recipe = cx.recipe;
    let specs = &recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let hashed = board.hashed.get();
    let target_error = |e: &dyn std::fmt::Display| {
        vec![RecipeError::new(
            Code::Target,
            e.to_string(),
            cx.loaded.spans.key("/target"),
        )]
    };
    let spill = crate::spill::SpillArea::under(&cx.state_dir, cx.opts.memory);
    // What the created units reference: SHA-1s (binary, 28 bytes a file) and
    // the rare deferred files' identities, each sorted to be counted once.
    // Small shares: the diff runs while the listing, units and hashes are
    // still held, and a spilled run costs little (it is read back once).
    let mut uploads = spill.sorter::<Upload<[u8; 20]>>(8);
    let mut deferred = spill.sorter::<Upload<String>>(8);
    let spec_names: Vec<Arc<str>> = specs.iter().map(|s| Arc::from(s.name.as_str())).collect();
    let root_names: Vec<Arc<str>> = cx
        .roots
        .iter()
        .map(|r| Arc::from(r.written.as_str()))
        .collect();
    let drafts = board.drafts.take();
    let merged = board
        .merged
        .take()
        .finish()
        .map_err(|e| target_error(&spill_failed(&spill, MERGED, &e)))?;
    let mut summary = Summary::default();
    // The plan's units, as the text they are written as, spilling past
    // their share of the budget (lines spilled are read back once, from the
    // page cache, to write and hash the plan).
    let mut units = crate::plan::UnitListBuilder::new(&spill, 16);
    let mut tally = explain::UnitTally::default();
    let mut overridden: Vec<String> = Vec::new();
    let mut merged = merged;
    for drafts_window in drafts.windows() {
        let drafts_window = drafts_window.map_err(|e| drafts_unreadable(cx, &e))?;
        let window: Vec<(Draft<'_>, MergedUnit)> = drafts_window
            .iter()
            .zip(merged.by_ref())
            .map(|(u, m)| m.map(|m| (u, m)))
            .collect::<std::io::Result<_>>()
            .map_err(|e| target_error(&spill_failed(&spill, MERGED, &e)))?;
        let valid: Vec<&str> = window
            .iter()
            .filter(|(_, m)| m.problems.is_empty())
            .map(|(u, _)| u.key)
            .collect();
        let existing = cx
            .target
            .units_by_key(&valid)
            .map_err(|e| target_error(&e))?;
        drop(valid);
        let built: Vec<Built> = window
            .into_par_iter()
            .map(|(u, m)| {
                // A draft's files are sorted by spec; a spec with more than
                // one file is ambiguous (a problem) and gets none.
                let files: Vec<(Arc<str>, PlannedFile)> = u
                    .files
                    .chunk_by(|a, b| a.0 == b.0)
                    .filter_map(|run| match run {
                        [one] => Some(one),
                        _ => None,
                    })
                    .map(|(spec, f)| {
                        let (r, i) = (f.root as usize, f.index as usize);
                        let s = scans[r].files.get(i);
                        let sha1 = hashed
                            .digest(r, i)
                            .map(|h| h.map(|d| stages::checksum::hex(&d)).unwrap_or_default());
                        let etag = if cx.deferred(r) {
                            s.tag.map(std::borrow::Cow::into_owned)
                        } else {
                            None
                        };
                        let file = PlannedFile {
                            root: root_names[r].clone(),
                            path: s.rel.into_owned(),
                            size: s.size,
                            sha1,
                            etag,
                        };
                        (spec_names[*spec as usize].clone(), file)
                    })
                    .collect();
                let files = SortedMap::from_sorted(files);
                let overridden = m
                    .key_field_overridden
                    .as_ref()
                    .map(|o| format!("{}: {o}", u.key));
                let (action, conflict) = if !m.problems.is_empty() {
                    (Action::Invalid, None)
                } else {
                    let checks = files.iter().map(|(spec, f)| (spec, f.sha1.as_deref()));
                    match stages::diff::decide(
                        existing.get(u.key).map(Vec::as_slice),
                        checks,
                        m.meta.get(),
                    ) {
                        Verdict::Create => (Action::Create, None),
                        Verdict::Unchanged => (Action::Unchanged, None),
                        Verdict::Conflict(why) => (Action::Conflict, Some(why)),
                    }
                };
                let unit = PlannedUnit {
                    key: u.key.to_owned(),
                    action,
                    files,
                    meta: m.meta,
                    problems: m.problems,
                    conflict,
                };
                // What the rest of the stage needs of the unit, taken here
                // so the unit is serialised and freed in parallel.
                let mut files = Vec::new();
                if unit.action == Action::Create {
                    for f in unit.files.values() {
                        let mut sha1 = [0u8; 20];
                        files.push(match f.sha1.as_deref() {
                            Some(hex) if hex::decode_to_slice(hex, &mut sha1).is_ok() => {
                                Ok(Upload::new(sha1, f.size))
                            }
                            _ => Err(Upload::new(f.identity(), f.size)),
                        });
                    }
                }
                let mut head = explain::UnitTally::default();
                head.add(&unit);
                Built {
                    line: serde_json::to_vec(&unit).unwrap_or_default(),
                    action: unit.action,
                    tally: head,
                    files,
                    overridden,
                }
            })
            .collect();
        for unit in built {
            overridden.extend(unit.overridden);
            for file in unit.files {
                match file {
                    Ok(sha1) => uploads.push(sha1),
                    Err(identity) => deferred.push(identity),
                }
                .map_err(|e| target_error(&spill_failed(&spill, UPLOADS, &e)))?;
            }
            tally.merge(unit.tally);
            units
                .push_line(&unit.line, unit.action)
                .map_err(|e| target_error(&spill_failed(&spill, UNITS, &e)))?;
        }
    }
    let units = units
        .finish()
        .map_err(|e| target_error(&spill_failed(&spill, UNITS, &e)))?;
    summary.units = units.len() as u64;
    let count = |a: Action| units.count(a) as u64;
    summary.create = count(Action::Create);
    summary.unchanged = count(Action::Unchanged);
    summary.conflict = count(Action::Conflict);
    summary.invalid = count(Action::Invalid);
    if summary.conflict > 0 {
        board.warn([Warning::new(WarningCode::Conflict, format!("{} unit(s) have a key the target already uses with other content; they will not be overwritten", summary.conflict))]);
    }
    if !overridden.is_empty() {
        board.warn([Warning::new(
            WarningCode::KeyFieldOverridden,
            format!("{} unit(s): a metadata source set `{}`, which receives the unit key; the key wins (first: {})", overridden.len(), recipe.key_field.as_deref().unwrap_or(""), overridden[0]),
        )]);
    }

    // Files to upload: distinct checksums of units to create that the target
    // lacks, asked a window at a time. Deferred files count as to upload:
    // whether the target has them is learned from their SHA-1, during apply.
    let failed = |e: std::io::Error| target_error(&spill_failed(&spill, UPLOADS, &e));
    for file in distinct(deferred.finish().map_err(failed)?) {
        summary.files_to_upload += 1;
        summary.bytes_to_upload += file.map_err(failed)?.1;
    }
    let mut window: Vec<(String, u64)> = Vec::new();
    let mut count_unknown = |window: &mut Vec<(String, u64)>| -> StageResult {
        let asked: Vec<&str> = window.iter().map(|(sha, _)| sha.as_str()).collect();
        let known = cx
            .target
            .known_checksums(&asked)
            .map_err(|e| vec![RecipeError::new(Code::Target, e.to_string(), None)])?;
        drop(asked);
        for (sha, size) in window.drain(..) {
            if !known.contains(&sha) {
                summary.files_to_upload += 1;
                summary.bytes_to_upload += size;
            }
        }
        Ok(())
    };
    for file in distinct(uploads.finish().map_err(failed)?) {
        let (sha1, size) = file.map_err(failed)?;
        window.push((hex::encode(sha1), size));
        if window.len() == 8192 {
            count_unknown(&mut window)?;
        }
    }
    if !window.is_empty() {
        count_unknown(&mut window)?;
    }
    board.diffed.put(Diffed {
        units,
        tally,
        summary,
    });
    Ok(())
}

const UPLOADS: &str = "sort the files to upload";
const UNITS: &str = "keep the plan's units";
const MERGED: &str = "read back the merged units";

/// A unit as the diff made it: its plan line and what the stage counts.
struct Built {
    line: Vec<u8>,
    action: Action,
    tally: explain::UnitTally,
    /// A unit to create's files: a known SHA-1, or a deferred identity.
    files: Vec<Result<Upload<[u8; 20]>, Upload<String>>>,
    overridden: Option<String>,
}

/// A file of a unit to create, by what identifies its content (a binary
/// SHA-1, or a deferred file's identity); sorted by identity, then size, so
/// the smallest size of one SHA-1 is counted, as a sorted, deduplicated list
/// always did.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Upload<I> {
    identity: I,
    size: u64,
}

impl<I> Upload<I> {
    fn new(identity: I, size: u64) -> Self {
        Self { identity, size }
    }
}

/// Each identity once, with its size.
fn distinct<I: Ord + Clone>(
    sorted: impl Iterator<Item = std::io::Result<Upload<I>>>,
) -> impl Iterator<Item = std::io::Result<(I, u64)>> {
    let mut previous: Option<I> = None;
    sorted.filter_map(move |u| match u {
        Err(e) => Some(Err(e)),
        Ok(u) if previous.as_ref() == Some(&u.identity) => None,
        Ok(u) => {
            previous = Some(u.identity.clone());
            Some(Ok((u.identity, u.size)))
        }
    })
}

impl crate::spill::Record for Upload<[u8; 20]> {
    // Ordered by every field.
    const EQUAL_IS_SAME: bool = true;

    fn weight(&self) -> usize {
        0
    }
    fn encode(&self, out: &mut Vec<u8>) {
        crate::spill::codec::put_bytes(out, &self.identity);
        crate::spill::codec::put_u64(out, self.size);
    }
    fn decode(input: &mut &[u8]) -> std::io::Result<Self> {
        Ok(Self::new(
            crate::spill::codec::get_array(input)?,
            crate::spill::codec::get_u64(input)?,
        ))
    }
}

impl crate::spill::Record for Upload<String> {
    // Ordered by every field.
    const EQUAL_IS_SAME: bool = true;

    fn weight(&self) -> usize {
        self.identity.len()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        crate::spill::codec::put_str(out, &self.identity);
        crate::spill::codec::put_u64(out, self.size);
    }
    fn decode(input: &mut &[u8]) -> std::io::Result<Self> {
        Ok(Self::new(
            crate::spill::codec::get_str(input)?,
            crate::spill::codec::get_u64(input)?,
        ))
    }
}
