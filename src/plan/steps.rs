//! One function per stage of the graph: each reads the outputs of the stages
//! it depends on from the [`Board`], calls its stage in [`crate::stages`], and
//! writes its own output (and warnings, and counts for `--stats`).
//! Failures come back as recipe diagnostics; the engine reports them together.

use std::collections::HashSet;
use std::sync::Arc;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::build::{Board, Context, root_written};
use super::errors::{group_error, sheet_help, source_missing, unreadable_error};
use super::explain;
use super::model::*;
use crate::recipe::load::describe_path;
use crate::recipe::model::ContentCheck;
use crate::recipe::resolve::{MetadataKind, SourceMode};
use crate::recipe::{Code, RecipeError};
use crate::source::{ListOptions, ScanIssue};
use crate::stages::checksum::{self, ChecksumCache, HashRequest};
use crate::stages::classify::{self, Classified};
use crate::stages::diff::{self, Verdict};
use crate::stages::group::{self, Layout, UnitDraft};
use crate::stages::layout::SpecShape;
use crate::stages::metadata::sheet::normalize_key;
use crate::stages::metadata::{self, MergeInput, PreparedSource, UnitFile, load};
use crate::stages::screen;
use crate::stages::validate::{self, CheckedFile};
use crate::stages::{FileRef, UnmatchedReason, Warning, WarningCode, fingerprint};

type StageResult = Result<(), Vec<RecipeError>>;

/// Group's output besides the units: how files were grouped, and the files
/// no group key was found in.
pub(super) struct Grouping {
    pub layout: Layout,
    pub no_group_key: Vec<FileRef>,
}

/// Checksum's output. Every unit file is hashed once, even if two units share
/// it: `request_of[root][file]` is its index in `files` and `hashes`
/// (`u32::MAX`: not a unit file, or deferred to apply).
pub(super) struct Hashed {
    pub request_of: Vec<Vec<u32>>,
    pub files: Vec<FileRef>,
    /// Whether each file's spec is a video (for the frame-rate check).
    pub video: Vec<bool>,
    pub hashes: Vec<checksum::HashResult>,
}

impl Hashed {
    /// The digest of file `index` of root `root`, if it was hashed.
    fn digest(&self, root: usize, index: usize) -> Option<&checksum::HashResult> {
        let i = self.request_of[root][index];
        (i != u32::MAX).then(|| &self.hashes[i as usize])
    }
}

/// What the checksum pass saw of each file's first chunk, for the screen.
pub(super) type SeenVerdicts = Vec<Option<Option<Box<screen::Finding>>>>;

/// Screen's output: the findings, and per hashed file an index into them
/// (or [`screen::CLEAN`]).
pub(super) struct ScreenVerdicts {
    pub findings: Vec<screen::Finding>,
    pub finding_of: Vec<u32>,
}

/// A unit's merged meta (compact JSON) and every reason it is invalid.
pub(super) struct MergedUnit {
    pub meta: Box<serde_json::value::RawValue>,
    pub problems: Vec<validate::Problem>,
    pub key_field_overridden: Option<String>,
}

/// Diff's output: the plan's units and their tally.
pub(super) struct Diffed {
    pub units: Vec<PlannedUnit>,
    pub summary: Summary,
}

/// The hash requests for `files`, built when needed (they borrow the scans).
fn requests<'a>(
    cx: &'a Context<'_>,
    scans: &'a [super::build::Filled<'a, crate::source::SourceScan>],
    files: &[FileRef],
) -> Vec<HashRequest<'a>> {
    files
        .iter()
        .map(|f| {
            let scanned = &scans[f.root as usize].files[f.index as usize];
            HashRequest {
                source: &*cx.roots[f.root as usize].source,
                rel: &scanned.rel,
                size: scanned.size,
                mtime_ns: scanned.mtime_ns,
            }
        })
        .collect()
}

/// Scan: list root `r`. Unreadable folders fail the stage; loops, broken
/// links and a damaged listing cache are warnings.
pub(super) fn scan(cx: &Context<'_>, board: &Board, r: usize) -> StageResult {
    let (recipe, root) = (cx.recipe, cx.roots[r]);
    // One listing cache per root, named by the root's path.
    let root_id = Sha256::digest(root.path.as_os_str().as_encoded_bytes());
    let progress = |n: u64| {
        if let Some(p) = &cx.opts.listing_progress {
            p(&root.written, n);
        }
    };
    let opts = ListOptions {
        recursive: root.recursive,
        exclude: &recipe.exclude,
        exclude_dirs: Some(&recipe.exclude_dirs),
        junk: recipe.mode.junk_filter(r, recipe.include_junk),
        skip: Some(cx.state_dir.clone()),
        listing_cache: Some(cx.cache_dir.join(format!(
            "{}.{}.dirs",
            recipe.name,
            hex::encode(&root_id[..6])
        ))),
        threads: cx.opts.scan_threads,
        progress: &progress,
    };
    let scan = root
        .source
        .list(&opts)
        .map_err(|why| vec![source_missing(cx.loaded, root, &why.to_string())])?;
    let mut unreadable = Vec::new();
    let mut warnings = Vec::new();
    for issue in &scan.issues {
        let shown = |p: &str| if p.is_empty() { "." } else { p }.to_owned();
        match issue {
            ScanIssue::Unreadable { path, message } => {
                unreadable.push(format!("{}: {message}", shown(path)));
            }
            ScanIssue::SymlinkLoop { link, target } => warnings.push(Warning::new(
                WarningCode::SymlinkLoop,
                format!(
                    "{}: symlink `{link}` loops back to `{}`; not followed",
                    root.written,
                    shown(target)
                ),
            )),
            ScanIssue::BrokenSymlink { link } => warnings.push(Warning::new(
                WarningCode::BrokenSymlink,
                format!(
                    "{}: symlink `{link}` points to nothing; skipped",
                    root.written
                ),
            )),
            ScanIssue::CacheRebuilt { cache, why } => warnings.push(Warning::new(
                WarningCode::ListingCacheRebuilt,
                format!("folder-listing cache {cache} is unreadable ({why}); rebuilding it"),
            )),
        }
    }
    board.warn(warnings);
    {
        let mut stats = board.stats();
        stats.files_scanned += scan.files.len() as u64;
        stats.folders_cached += scan.folders_cached;
        stats.folders_read += scan.folders_read;
    }
    board.scans[r].put(scan);
    if unreadable.is_empty() {
        Ok(())
    } else {
        Err(vec![unreadable_error(cx.loaded, root, &unreadable)])
    }
}

/// Load: read and parse metadata sheet `index` (through its cache).
pub(super) fn load_sheet(cx: &Context<'_>, board: &Board, index: usize) -> StageResult {
    let Some(spec) = cx.recipe.metadata.iter().find(|m| m.index == index) else {
        return Ok(());
    };
    let (MetadataKind::Sheet { file, .. }, Some(found)) = (&spec.kind, cx.sheet_files.get(&index))
    else {
        return Ok(());
    };
    let cache_file = cx
        .cache_dir
        .join(format!("{}.meta{index}.sheet", cx.recipe.name));
    let (table, sha256) = load::load(&spec.kind, found, cache_file);
    board
        .metadata_inputs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(MetadataInput {
            source: file.written.clone(),
            path: display_rel(&found.describe(), &cx.loaded.dir),
            sha256,
        });
    match table {
        Ok(t) => {
            board.warn(t.warnings.iter().cloned());
            board
                .sheets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(index, t);
            Ok(())
        }
        Err(e) => Err(vec![
            RecipeError::new(
                Code::MetadataSheet,
                format!("{}: {e}", file.written),
                cx.loaded.spans.value(&file.pointer),
            )
            .help(sheet_help(&e)),
        ]),
    }
}

/// Classify: which spec each file is, by `file_rules`, assets or extension.
pub(super) fn classify(cx: &Context<'_>, board: &Board) -> StageResult {
    let specs = &cx.recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let mut errors = Vec::new();
    let classified: Vec<Vec<Classified>> = match &cx.recipe.mode {
        SourceMode::Single { rules, .. } => {
            let (c, conflicts) = classify::classify_single(&scans[0].files, specs, rules);
            for conflict in conflicts {
                errors.push(
                    RecipeError::new(
                        Code::ExtensionConflict,
                        format!("extension `.{}` is claimed by specs {}, so `{}` matches more than one", conflict.extension, conflict.specs.join(" and "), conflict.example),
                        cx.loaded.spans.key("/collection"),
                    )
                    .help(format!("add `file_rules` that say which files are which, e.g. {{pattern: \"**/img/*.{}\", spec: {}}}", conflict.extension, conflict.specs[0])),
                );
            }
            vec![c]
        }
        SourceMode::Multi { assets } => assets
            .iter()
            .zip(&scans)
            .map(|(a, s)| classify::classify_asset(&s.files, a, specs))
            .collect(),
    };
    board.classified.put(classified);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Group: files into units by the layout (inferred or `group_key_regex`).
pub(super) fn group(cx: &Context<'_>, board: &Board) -> StageResult {
    let recipe = cx.recipe;
    let specs = &recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let files: Vec<&[crate::source::ScannedFile]> =
        scans.iter().map(|s| s.files.as_slice()).collect();
    let multi = matches!(recipe.mode, SourceMode::Multi { .. });
    let shapes: Vec<SpecShape> = specs
        .iter()
        .map(|s| SpecShape {
            required: s.is_required,
            extensions: s.extensions.clone(),
        })
        .collect();
    let grouped = group::group(
        &files,
        &board.classified.get(),
        recipe.group_key_regex.as_ref(),
        &recipe.key_template,
        &shapes,
        specs.iter().position(|s| s.is_primary),
        multi,
    );
    if !grouped.errors.is_empty() {
        return Err(grouped
            .errors
            .iter()
            .map(|e| group_error(cx.loaded, e, multi))
            .collect());
    }
    board.grouping.put(Grouping {
        layout: grouped.layout.unwrap_or(Layout {
            pattern: None,
            group_key_regex: None,
            reason: None,
            runner_up: None,
        }),
        no_group_key: grouped.no_group_key,
    });
    board.drafts.put(grouped.units);
    Ok(())
}

/// Checksum: SHA-1 of every unit file, from the cache where the file is
/// unchanged. Files read now are screened from the same first chunk.
pub(super) fn checksum(cx: &Context<'_>, board: &Board) -> StageResult {
    let recipe = cx.recipe;
    let specs = &recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let mut request_of: Vec<Vec<u32>> = scans
        .iter()
        .map(|s| vec![u32::MAX; s.files.len()])
        .collect();
    let (mut files, mut video) = (Vec::new(), Vec::new());
    for unit in board.drafts.get().iter() {
        for (spec, f) in &unit.files {
            let slot = &mut request_of[f.root as usize][f.index as usize];
            if *slot == u32::MAX && !cx.deferred(f.root as usize) {
                video.push(specs[*spec as usize].file_type == "video");
                files.push(*f);
                *slot = (files.len() - 1) as u32;
            }
        }
    }
    let requests = requests(cx, &scans, &files);
    let mut cache = ChecksumCache::open(cx.cache_dir.join(format!("{}.checksums", recipe.name)));
    let heads =
        (recipe.content_check != ContentCheck::Off).then(|| screen::SeenHeads::new(requests.len()));
    let see = |i: usize, bytes: &[u8]| {
        if let Some(h) = &heads {
            h.see(i, crate::stages::file_name(requests[i].rel), bytes);
        }
    };
    let (hashes, hash_stats) = checksum::hash_all(
        &requests,
        &mut cache,
        cx.opts.readers,
        heads
            .is_some()
            .then_some(&see as checksum::HeadObserver<'_>),
    );
    board.stats().hash = hash_stats;
    board.warn(cache.warning.take());
    board.warn(cache.save(&requests, &hashes));
    drop(cache);
    board.seen_heads.put(
        heads
            .map(screen::SeenHeads::into_verdicts)
            .unwrap_or_default(),
    );
    let mut errors = Vec::new();
    for (r, root) in cx.roots.iter().enumerate() {
        let unreadable: Vec<String> = files
            .iter()
            .zip(&hashes)
            .filter(|(f, _)| f.root as usize == r)
            .filter_map(|(f, h)| {
                h.as_ref()
                    .err()
                    .map(|e| format!("{}: {e}", scans[r].files[f.index as usize].rel))
            })
            .collect();
        if !unreadable.is_empty() {
            errors.push(unreadable_error(cx.loaded, root, &unreadable));
        }
    }
    drop(requests);
    board.hashed.put(Hashed {
        request_of,
        files,
        video,
        hashes,
    });
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Screen: one content verdict per hashed file, from the cache when its
/// content and name were seen before.
pub(super) fn screen(cx: &Context<'_>, board: &Board) -> StageResult {
    let recipe = cx.recipe;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let hashed = board.hashed.get();
    let requests = requests(cx, &scans, &hashed.files);
    let screened = screen::screen_requests(
        &requests,
        &hashed.hashes,
        &hashed.video,
        board.seen_heads.take(),
        cx.cache_dir.join(format!("{}.screen", recipe.name)),
        recipe.content_check == ContentCheck::Warn,
        |r| explain::shown(root_written(cx, r.source), r.rel),
    );
    {
        let mut stats = board.stats();
        stats.screened_read = screened.read;
        stats.screened_cached = screened.cached;
    }
    board.warn(screened.warnings);
    board.screened.put(ScreenVerdicts {
        findings: screened.findings,
        finding_of: screened.finding_of,
    });
    Ok(())
}

/// Merge and validate: each unit's metadata from every source, then its
/// problems, in one task per unit (its provenance map lives only that long).
/// Also finds the sheet rows no unit matched.
pub(super) fn merge_validate(cx: &Context<'_>, board: &Board) -> StageResult {
    let (loaded, recipe) = (cx.loaded, cx.recipe);
    let specs = &recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let drafts = board.drafts.get();
    let mut sheets = std::mem::take(&mut *board.sheets.lock().unwrap_or_else(|e| e.into_inner()));
    let prepared: Vec<PreparedSource<'_>> = recipe
        .metadata
        .iter()
        .map(|m| PreparedSource {
            spec: m,
            table: sheets.remove(&m.index),
            label: match &m.kind {
                MetadataKind::Sheet { file, .. } => file.written.clone(),
                MetadataKind::Static { pointer, .. } => format!(
                    "{}:{}",
                    loaded.path,
                    describe_path(pointer).trim_matches('`')
                ),
                _ => m.label(),
            },
        })
        .collect();
    let primary_order = recipe.collection.primary_order();
    // Content findings fail a unit only under `validation.content: fail`
    // (then this stage runs after the screen).
    let screened = (recipe.content_check == ContentCheck::Fail)
        .then(|| (board.screened.get(), board.hashed.get()));
    let merged: Vec<MergedUnit> = drafts
        .par_iter()
        .map(|u| {
            let files: Vec<UnitFile<'_>> = u
                .files
                .iter()
                .map(|(spec, f)| UnitFile {
                    spec: *spec,
                    rel: &scans[f.root as usize].files[f.index as usize].rel,
                    source: &*cx.roots[f.root as usize].source,
                })
                .collect();
            let m = metadata::merge(
                &prepared,
                &MergeInput {
                    key: &u.key,
                    group_key: &u.group_key,
                    files: &files,
                    primary_order: &primary_order,
                    specs,
                    key_field: recipe.key_field.as_deref(),
                },
            );
            let checked: Vec<CheckedFile<'_>> = u
                .files
                .iter()
                .map(|(spec, f)| {
                    let s = &scans[f.root as usize].files[f.index as usize];
                    CheckedFile {
                        spec: *spec,
                        rel: &s.rel,
                        size: s.size,
                    }
                })
                .collect();
            // Moved, not cloned: the schema validates the same value that is written.
            let meta = serde_json::Value::Object(m.meta);
            let mut found = m.problems;
            if let Some((verdicts, hashed)) = &screened {
                for (spec, f) in &u.files {
                    let i = hashed.request_of[f.root as usize][f.index as usize];
                    let verdict = verdicts
                        .finding_of
                        .get(i as usize)
                        .copied()
                        .unwrap_or(screen::CLEAN);
                    if let Some(finding) = verdicts.findings.get(verdict as usize) {
                        let rel = &scans[f.root as usize].files[f.index as usize].rel;
                        let mut p = validate::Problem::new(
                            finding.rule.into(),
                            format!("{rel}: {}", finding.detail),
                        )
                        .spec(&specs[*spec as usize].name);
                        p.path = Some(rel.to_owned());
                        found.push(p);
                    }
                }
            }
            let problems = validate::validate_unit(
                specs,
                &checked,
                recipe.max_file_size,
                &meta,
                |field| m.provenance.get(field),
                recipe.collection.meta_schema.as_ref(),
                found,
            );
            MergedUnit {
                meta: meta_raw(&meta),
                problems,
                key_field_overridden: m.key_field_overridden,
            }
        })
        .collect();
    drop(screened);
    let unit_keys: HashSet<std::borrow::Cow<'_, str>> =
        drafts.iter().map(|u| normalize_key(&u.key)).collect();
    let mut orphan_rows: Vec<OrphanRow> = Vec::new();
    for t in prepared.iter().filter_map(|p| p.table.as_ref()) {
        for row in &t.rows {
            if !unit_keys.contains(normalize_key(&row.key).as_ref()) {
                orphan_rows.push(OrphanRow {
                    source: t.source.clone(),
                    sheet: t.sheet.clone(),
                    row: row.row,
                    key: row.key.clone(),
                });
            }
        }
    }
    board.merged.put(merged);
    board.orphan_rows.put(orphan_rows);
    Ok(())
}

/// Read target: the target's units under the keys of valid units.
pub(super) fn read_target(cx: &Context<'_>, board: &Board) -> StageResult {
    let drafts = board.drafts.get();
    let merged = board.merged.get();
    let valid_keys: Vec<&str> = drafts
        .iter()
        .zip(merged.iter())
        .filter(|(_, m)| m.problems.is_empty())
        .map(|(u, _)| u.key.as_str())
        .collect();
    let existing = cx.target.units_by_key(&valid_keys).map_err(|e| {
        vec![RecipeError::new(
            Code::Target,
            e.to_string(),
            cx.loaded.spans.key("/target"),
        )]
    })?;
    board.existing.put(existing);
    Ok(())
}

/// Diff: each unit's action against the target, consuming the drafts and
/// merged meta a window at a time (each window in parallel), so they are
/// freed as the plan's units grow; then which files the target lacks.
pub(super) fn diff(cx: &Context<'_>, board: &Board) -> StageResult {
    let recipe = cx.recipe;
    let specs = &recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let hashed = board.hashed.get();
    let existing = board.existing.take();
    let spec_names: Vec<Arc<str>> = specs.iter().map(|s| Arc::from(s.name.as_str())).collect();
    let root_names: Vec<Arc<str>> = cx
        .roots
        .iter()
        .map(|r| Arc::from(r.written.as_str()))
        .collect();
    let drafts = board.drafts.take();
    let merged = board.merged.take();
    let mut summary = Summary::default();
    let mut units = Vec::with_capacity(drafts.len());
    let mut overridden: Vec<String> = Vec::new();
    let mut pending = drafts.into_iter().zip(merged);
    loop {
        let window: Vec<(UnitDraft, MergedUnit)> = pending.by_ref().take(8192).collect();
        if window.is_empty() {
            break;
        }
        let built: Vec<(PlannedUnit, Option<String>)> = window
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
                        let s = &scans[r].files[i];
                        let sha1 = hashed
                            .digest(r, i)
                            .map(|h| h.as_ref().map(checksum::hex).unwrap_or_default());
                        let etag = if cx.deferred(r) {
                            s.tag.as_deref().map(str::to_owned)
                        } else {
                            None
                        };
                        let file = PlannedFile {
                            root: root_names[r].clone(),
                            path: s.rel.clone(),
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
                    let checks: Vec<diff::FileCheck<'_>> = files
                        .iter()
                        .map(|(spec, f)| (spec, f.sha1.as_deref()))
                        .collect();
                    match diff::decide(
                        existing.get(&u.key).map(Vec::as_slice),
                        &checks,
                        m.meta.get(),
                    ) {
                        Verdict::Create => (Action::Create, None),
                        Verdict::Unchanged => (Action::Unchanged, None),
                        Verdict::Conflict(why) => (Action::Conflict, Some(why)),
                    }
                };
                let unit = PlannedUnit {
                    key: u.key,
                    action,
                    files,
                    meta: m.meta,
                    problems: m.problems,
                    conflict,
                };
                (unit, overridden)
            })
            .collect();
        for (unit, o) in built {
            match unit.action {
                Action::Create => summary.create += 1,
                Action::Unchanged => summary.unchanged += 1,
                Action::Conflict => summary.conflict += 1,
                Action::Invalid => summary.invalid += 1,
            }
            overridden.extend(o);
            units.push(unit);
        }
    }
    drop(existing);
    summary.units = units.len() as u64;
    if summary.conflict > 0 {
        board.warn([Warning::new(WarningCode::Conflict, format!("{} unit(s) have a key the target already uses with other content; they will not be overwritten", summary.conflict))]);
    }
    if !overridden.is_empty() {
        board.warn([Warning::new(
            WarningCode::KeyFieldOverridden,
            format!("{} unit(s): a metadata source set `{}`, which receives the unit key; the key wins (first: {})", overridden.len(), recipe.key_field.as_deref().unwrap_or(""), overridden[0]),
        )]);
    }

    // Files to upload: distinct checksums of units to create that the target lacks.
    let upload = distinct_files(units.iter().filter(|u| u.action == Action::Create));
    let wanted: Vec<&str> = upload.keys().copied().collect();
    let known = cx
        .target
        .known_checksums(&wanted)
        .map_err(|e| vec![RecipeError::new(Code::Target, e.to_string(), None)])?;
    for (sha, size) in &upload {
        if !known.contains(*sha) {
            summary.files_to_upload += 1;
            summary.bytes_to_upload += size;
        }
    }
    // Deferred files count as to upload: whether the target has them is
    // learned from their SHA-1, during apply.
    for size in deferred_files(units.iter().filter(|u| u.action == Action::Create)).values() {
        summary.files_to_upload += 1;
        summary.bytes_to_upload += size;
    }
    drop(upload);
    board.diffed.put(Diffed { units, summary });
    Ok(())
}

/// Assemble: unmatched files and why, the inputs' fingerprints, the plan's
/// hash; secrets masked.
pub(super) fn assemble(cx: &Context<'_>, board: &Board) -> StageResult {
    let (loaded, recipe) = (cx.loaded, cx.recipe);
    let specs = &recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let Diffed { units, mut summary } = board.diffed.take();
    let classified = board.classified.get();
    let grouping = board.grouping.take();
    let hashed = board.hashed.get();

    let mut unmatched: Vec<UnmatchedFile> = Vec::new();
    let classification = match &recipe.mode {
        SourceMode::Single { rules, .. } if !rules.is_empty() => explain::Classification::Rules,
        SourceMode::Single { .. } => explain::Classification::Extensions,
        SourceMode::Multi { .. } => explain::Classification::Assets,
    };
    let mut by_reason =
        explain::UnmatchedSummary::new(specs, classification, recipe.group_key_regex.is_some());
    let mut add_unmatched = |root: &str, path: &str, reason: UnmatchedReason, spec: Option<u32>| {
        by_reason.add(reason, spec, root, path);
        unmatched.push(UnmatchedFile {
            root: root.to_owned(),
            path: path.to_owned(),
            reason: reason.as_str().into(),
        });
    };
    for (r, (scan, classes)) in scans.iter().zip(classified.iter()).enumerate() {
        let root = &cx.roots[r].written;
        for bad in &scan.non_utf8 {
            add_unmatched(root, bad, UnmatchedReason::NonUtf8Name, None);
        }
        for (f, c) in scan.files.iter().zip(classes) {
            if let Some(reason) = c.unmatched() {
                let spec = match c {
                    Classified::WrongExtension(s) => Some(*s),
                    _ => None,
                };
                add_unmatched(root, &f.rel, reason, spec);
            }
        }
    }
    for f in &grouping.no_group_key {
        add_unmatched(
            &cx.roots[f.root as usize].written,
            &scans[f.root as usize].files[f.index as usize].rel,
            UnmatchedReason::NoGroupKey,
            None,
        );
    }
    let unmatched_summary = by_reason.finish();
    unmatched.sort();
    summary.unmatched_files = unmatched.len() as u64;
    summary.excluded_files = scans.iter().map(|s| s.excluded).sum();
    let files_seen: u64 = scans
        .iter()
        .map(|s| (s.files.len() + s.non_utf8.len()) as u64)
        .sum();
    let diagnosis = explain::diagnose(
        &units,
        &unmatched_summary,
        files_seen,
        summary.excluded_files,
    );

    let listings = cx
        .roots
        .iter()
        .zip(&scans)
        .enumerate()
        .map(|(r, (root, scan))| ListingInput {
            root: root.written.clone(),
            files: (scan.files.len() + scan.non_utf8.len()) as u64,
            sha256: fingerprint::listing_sha256(
                scan,
                |i| hashed.digest(r, i).and_then(|h| h.as_ref().ok()).copied(),
                cx.deferred(r),
            ),
        })
        .collect();
    let mut metadata_inputs = std::mem::take(
        &mut *board
            .metadata_inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    metadata_inputs.sort_by(|a, b| (&a.source, &a.path).cmp(&(&b.source, &b.path)));
    let env = loaded
        .vars
        .values()
        .map(|v| {
            (
                v.name.clone(),
                v.value.clone().unwrap_or_else(|| "***".to_owned()),
            )
        })
        .collect();
    let inputs = Inputs {
        recipe_sha256: loaded.sha256.clone(),
        env,
        collection_sha256: hex::encode(Sha256::digest(recipe.collection.fingerprint.as_bytes())),
        metadata: metadata_inputs,
        listings,
    };

    let mut warnings =
        std::mem::take(&mut *board.warnings.lock().unwrap_or_else(|e| e.into_inner()));
    warnings.sort();
    warnings.dedup();
    let layout = grouping.layout;
    let mut plan = Plan {
        format_version: FORMAT_VERSION,
        plan_hash: String::new(),
        recipe: RecipeRef {
            name: recipe.name.clone(),
            path: loaded.path.clone(),
            sha256: loaded.sha256.clone(),
        },
        target: TargetRef {
            backend: recipe.backend.as_str().to_owned(),
            data_collection: recipe.data_collection.clone(),
            // The local catalog folder; a synapse target is named by its collection id.
            path: (recipe.backend == crate::recipe::model::Backend::Local)
                .then(|| loaded.recipe.target.path_or_default().to_owned()),
        },
        layout: LayoutRef {
            pattern: layout.pattern,
            group_key_regex: layout.group_key_regex,
            reason: layout.reason,
            runner_up: layout.runner_up,
        },
        summary,
        diagnosis,
        units,
        unmatched,
        unmatched_summary,
        orphan_rows: board.orphan_rows.take(),
        warnings: warnings
            .into_iter()
            .map(|w| PlanWarning {
                code: w.code.as_str().to_owned(),
                message: w.message,
            })
            .collect(),
        sensitive: Vec::new(),
        inputs,
    };
    // One pass over the plan's text both hashes it and looks for secrets.
    let mut scanner = crate::secrets::JsonScanner::new();
    plan.plan_hash = plan.compute_hash_seeing(&mut |piece| scanner.feed(piece));
    let masked = scanner
        .found()
        .then(|| super::sensitive::masked(&plan))
        .flatten();
    board.plan.put(match masked {
        Some(masked) => (masked, Some(plan)),
        None => (plan, None),
    });
    Ok(())
}

/// `path` relative to `base` when it is inside it (a URL stays whole).
fn display_rel(path: &str, base: &std::path::Path) -> String {
    let p = std::path::Path::new(path);
    p.strip_prefix(base).map_or_else(
        |_| path.to_owned(),
        |p| p.to_string_lossy().replace('\\', "/"),
    )
}
