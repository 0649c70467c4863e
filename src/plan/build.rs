//! The planner: runs the stage graph's pure part and assembles the [`Plan`].
//!
//! Independent stages run at once: every root scan, every spreadsheet load and
//! the checksum-cache read start together on their own threads. Checksum misses
//! are read by many concurrent readers; classify, group, merge and validate run
//! on rayon. Everything printed or hashed is sorted, so the plan does not depend
//! on listing order or thread count.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::explain;
use super::model::*;
use crate::recipe::load::describe_path;
use crate::recipe::model::ChecksumMode;
use crate::recipe::model::ContentCheck;
use crate::recipe::resolve::{MetadataKind, ResolvedRecipe, Root, SourceMode};
use crate::recipe::{Code, LoadedRecipe, RecipeError, RecipeErrors};
use crate::source::{ScanIssue, ScanOptions, SourceScan, scan_local};
use crate::stages::checksum::{self, ChecksumCache, HashRequest, HashStats};
use crate::stages::classify::{self, Classified};
use crate::stages::group::{self, GroupError, UnitDraft};
use crate::stages::layout::SpecShape;
use crate::stages::metadata::sheet::{self, SheetOptions, SheetTable, normalize_key};
use crate::stages::metadata::sheet_cache;
use crate::stages::metadata::{self, MergeInput, PreparedSource, UnitFile};
use crate::stages::screen;
use crate::stages::validate::{self, CheckedFile};
use crate::stages::{FileRef, UnmatchedReason, Warning};
use crate::target::TargetView;

/// A unit's merged meta (compact JSON) and every reason it is invalid.
struct MergedUnit {
    meta: Box<serde_json::value::RawValue>,
    problems: Vec<validate::Problem>,
    key_field_overridden: Option<String>,
}

/// A spreadsheet load's result and the SHA-256 of the file's bytes.
type LoadedSheet = (Result<SheetTable, sheet::SheetError>, String);

/// A callback told `(root, objects listed so far)`.
pub type ListingProgress = std::sync::Arc<dyn Fn(&str, u64) + Send + Sync>;

/// Knobs that change speed, never the plan.
#[derive(Clone)]
pub struct PlanOptions {
    /// Concurrent file readers while hashing; small files on a cold disk reward depth.
    pub readers: usize,
    pub scan_threads: usize,
    /// Told `(root, objects listed so far)` during long remote listings.
    pub listing_progress: Option<ListingProgress>,
}

impl std::fmt::Debug for PlanOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanOptions")
            .field("readers", &self.readers)
            .field("scan_threads", &self.scan_threads)
            .finish()
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            readers: 16,
            scan_threads: 8,
            listing_progress: None,
        }
    }
}

/// How long each stage took and how much it read; for `--stats` and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct PlanStats {
    pub files_scanned: u64,
    /// Local folders listed from the listing cache, and read.
    pub folders_cached: u64,
    pub folders_read: u64,
    pub hash: HashStats,
    /// Files whose content verdict came from the cache, and files read for it.
    pub screened_cached: u64,
    pub screened_read: u64,
    pub timings: Vec<(&'static str, Duration)>,
    /// Peak resident memory so far, after each stage (Linux; 0 elsewhere).
    pub rss_mib: Vec<u64>,
}

fn current_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

pub struct PlanOutcome {
    /// The plan as people see it: secrets masked (SPEC 2).
    pub plan: Plan,
    /// The same plan with the real values, when masking changed anything:
    /// what `apply` executes.
    pub unmasked: Option<Plan>,
    pub stats: PlanStats,
}

impl PlanOutcome {
    /// The plan with real values, for execution.
    pub fn into_executable(self) -> Plan {
        self.unmasked.unwrap_or(self.plan)
    }
}

/// Builds the plan for a resolved recipe against a target's current state.
pub fn build_plan(
    loaded: &LoadedRecipe,
    recipe: &ResolvedRecipe,
    target: &dyn TargetView,
    opts: &PlanOptions,
) -> Result<PlanOutcome, RecipeErrors> {
    let mut stats = PlanStats::default();
    let mut clock = Instant::now();
    let mut lap = |stats: &mut PlanStats, name: &'static str| {
        stats.timings.push((name, clock.elapsed()));
        stats.rss_mib.push(current_rss_mib());
        clock = Instant::now();
    };
    let roots: Vec<&Root> = recipe.mode.roots();
    let mut errors: Vec<RecipeError> = Vec::new();
    let mut warnings: Vec<Warning> = recipe
        .warnings
        .iter()
        .map(|w| {
            Warning::new(
                crate::stages::WarningCode::Recipe(w.code),
                w.message.clone(),
            )
        })
        .collect();

    // Preflight: roots and metadata files exist.
    for root in &roots {
        if root.remote.is_some() {
            if root.checksum == ChecksumMode::Apply {
                warnings.push(Warning::new(crate::stages::WarningCode::ChecksumDeferred, format!("`checksum: apply`: files under `{}` are identified by URL + size + ETag and not read while planning; their SHA-1 is computed while they are uploaded, and files the target already holds are recognised then (dedupe happens during apply). A unit the target already has under the same key is `unchanged` when its specs and meta are the same: its file content is not compared", root.written)));
            }
            continue; // reached while scanning: its errors name the URL there
        }
        match std::fs::metadata(&root.path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => errors.push(
                RecipeError::new(
                    Code::SourceNotDir,
                    format!("source `{}` is not a folder", root.written),
                    loaded.spans.value(&root.pointer),
                )
                .help("point `path` at the folder that holds the files"),
            ),
            Err(e) => errors.push(source_missing(loaded, root, &io_reason(&e))),
        }
        if root.checksum == ChecksumMode::Apply {
            warnings.push(Warning::new(crate::stages::WarningCode::ChecksumApplyLocal, format!("`checksum: apply` has no effect on the local source `{}`: local files are hashed while planning", root.written)));
        }
    }
    let first_root = roots.first().copied();
    let mut sheet_paths: BTreeMap<usize, MetaFile> = BTreeMap::new();
    for m in &recipe.metadata {
        if let MetadataKind::Sheet { file, .. } = &m.kind {
            match find_metadata_file(&file.written, &loaded.dir, first_root) {
                Some(p) => {
                    sheet_paths.insert(m.index, p);
                }
                None => errors.push(
                    RecipeError::new(Code::MetadataFileMissing, format!("metadata file `{}` does not exist", file.written), loaded.spans.value(&file.pointer))
                        .help("it is looked for as an absolute path, then beside the recipe, then under the source root"),
                ),
            }
        }
    }
    if !errors.is_empty() {
        return Err(loaded.errors(errors));
    }

    // Wave 1: scans, spreadsheet loads, cache and target reads, all at once.
    let skip = loaded.state_dir();
    let cache_dir = skip.join("cache");
    let cache_path = cache_dir.join(format!("{}.checksums", recipe.name));
    // Sheets load on their own threads and are joined only when metadata is
    // merged: their parsing overlaps classify, group and checksum too.
    let mut sheet_loads = Some(spawn_sheet_loads(recipe, &sheet_paths, &cache_dir));
    let (scans, mut cache) = std::thread::scope(|s| {
        let scans: Vec<_> = roots
            .iter()
            .enumerate()
            .map(|(index, root)| {
                let junk = recipe.mode.junk_filter(index, recipe.include_junk);
                let skip = skip.clone();
                let cache_dir = &cache_dir;
                s.spawn(move || -> Result<SourceScan, String> {
                    if let Some(remote) = &root.remote {
                        let progress = opts.listing_progress.clone();
                        return crate::source::remote::scan_remote(
                            remote,
                            root.recursive,
                            &recipe.exclude,
                            junk,
                            &move |n| {
                                if let Some(p) = &progress {
                                    p(&root.written, n);
                                }
                            },
                        );
                    }
                    // One listing cache per root, named by the root's path.
                    let root_id = Sha256::digest(root.path.as_os_str().as_encoded_bytes());
                    let listing_cache = cache_dir.join(format!(
                        "{}.{}.dirs",
                        recipe.name,
                        hex::encode(&root_id[..6])
                    ));
                    let opts = ScanOptions {
                        recursive: root.recursive,
                        exclude: &recipe.exclude,
                        exclude_dirs: Some(&recipe.exclude_dirs),
                        skip: Some(skip),
                        threads: opts.scan_threads,
                        listing_cache: Some(listing_cache),
                        junk,
                    };
                    scan_local(&root.path, &opts).map_err(|e| io_reason(&e))
                })
            })
            .collect();
        let cache = s.spawn(|| ChecksumCache::open(cache_path.clone()));
        let scans: Vec<Result<SourceScan, String>> = scans
            .into_iter()
            .map(|h| h.join().expect("scan thread"))
            .collect();
        (scans, cache.join().expect("cache thread"))
    });
    lap(&mut stats, "scan+load");

    let mut root_scans: Vec<SourceScan> = Vec::new();
    for (root, scan) in roots.iter().zip(scans) {
        match scan {
            Ok(scan) => {
                let unreadable: Vec<String> = scan
                    .issues
                    .iter()
                    .filter_map(|i| match i {
                        ScanIssue::Unreadable { path, message } => Some(format!(
                            "{}: {message}",
                            if path.is_empty() { "." } else { path }
                        )),
                        _ => None,
                    })
                    .collect();
                if !unreadable.is_empty() {
                    errors.push(unreadable_error(loaded, root, &unreadable));
                }
                for issue in &scan.issues {
                    match issue {
                        ScanIssue::SymlinkLoop { link, target } => warnings.push(Warning::new(
                            crate::stages::WarningCode::SymlinkLoop,
                            format!(
                                "{}: symlink `{link}` loops back to `{}`; not followed",
                                root.written,
                                if target.is_empty() { "." } else { target }
                            ),
                        )),
                        ScanIssue::BrokenSymlink { link } => warnings.push(Warning::new(
                            crate::stages::WarningCode::BrokenSymlink,
                            format!(
                                "{}: symlink `{link}` points to nothing; skipped",
                                root.written
                            ),
                        )),
                        ScanIssue::CacheRebuilt { cache, why } => warnings.push(Warning::new(
                            crate::stages::WarningCode::ListingCacheRebuilt,
                            format!(
                                "folder-listing cache {cache} is unreadable ({why}); rebuilding it"
                            ),
                        )),
                        ScanIssue::Unreadable { .. } => {}
                    }
                }
                stats.files_scanned += scan.files.len() as u64;
                stats.folders_cached += scan.folders_cached;
                stats.folders_read += scan.folders_read;
                root_scans.push(scan);
            }
            Err(e) => {
                errors.push(source_missing(loaded, root, &e));
                root_scans.push(SourceScan::default());
            }
        }
    }
    let mut sheet_tables: HashMap<usize, SheetTable> = HashMap::new();
    let mut metadata_inputs = Vec::new();
    let mut join_sheets = |errors: &mut Vec<RecipeError>, warnings: &mut Vec<Warning>| {
        let Some(loads) = sheet_loads.take() else {
            return;
        };
        for (index, handle) in loads {
            let (table, digest) = handle.join().expect("sheet thread");
            let spec = recipe
                .metadata
                .iter()
                .find(|m| m.index == index)
                .expect("index from recipe");
            let MetadataKind::Sheet { file, .. } = &spec.kind else {
                continue;
            };
            metadata_inputs.push(MetadataInput {
                source: file.written.clone(),
                path: match &sheet_paths[&index] {
                    MetaFile::Local(p) => display_rel(p, &loaded.dir),
                    MetaFile::Remote(root, rel) => format!("{}/{rel}", root.url),
                },
                sha256: digest,
            });
            match table {
                Ok(t) => {
                    warnings.extend(t.warnings.iter().cloned());
                    sheet_tables.insert(index, t);
                }
                Err(e) => errors.push(
                    RecipeError::new(
                        Code::MetadataSheet,
                        format!("{}: {e}", file.written),
                        loaded.spans.value(&file.pointer),
                    )
                    .help(sheet_help(&e)),
                ),
            }
        }
    };

    // Classify.
    let specs = &recipe.collection.specs;
    let file_slices: Vec<&[crate::source::ScannedFile]> =
        root_scans.iter().map(|s| s.files.as_slice()).collect();
    let classified: Vec<Vec<Classified>> = match &recipe.mode {
        SourceMode::Single { rules, .. } => {
            let (c, conflicts) = classify::classify_single(file_slices[0], specs, rules);
            for conflict in conflicts {
                errors.push(
                    RecipeError::new(
                        Code::ExtensionConflict,
                        format!("extension `.{}` is claimed by specs {}, so `{}` matches more than one", conflict.extension, conflict.specs.join(" and "), conflict.example),
                        loaded.spans.key("/collection"),
                    )
                    .help(format!("add `file_rules` that say which files are which, e.g. {{pattern: \"**/img/*.{}\", spec: {}}}", conflict.extension, conflict.specs[0])),
                );
            }
            vec![c]
        }
        SourceMode::Multi { assets } => assets
            .iter()
            .zip(&file_slices)
            .map(|(a, f)| classify::classify_asset(f, a, specs))
            .collect(),
    };
    lap(&mut stats, "classify");

    // Group.
    let multi = matches!(recipe.mode, SourceMode::Multi { .. });
    let shapes: Vec<SpecShape> = specs
        .iter()
        .map(|s| SpecShape {
            required: s.is_required,
            extensions: s.extensions.clone(),
        })
        .collect();
    let mut grouped = group::group(
        &file_slices,
        &classified,
        recipe.group_key_regex.as_ref(),
        &recipe.key_template,
        &shapes,
        specs.iter().position(|s| s.is_primary),
        multi,
    );
    for e in &grouped.errors {
        errors.push(group_error(loaded, e, multi));
    }
    lap(&mut stats, "group");
    join_sheets(&mut errors, &mut warnings);
    if !errors.is_empty() {
        return Err(loaded.errors(errors));
    }
    let layout = grouped.layout.clone().unwrap_or(group::Layout {
        pattern: None,
        group_key_regex: None,
        reason: None,
        runner_up: None,
    });

    // Every unit file is hashed once, even if two units share it.
    // request_of[root][file] = index into `requests` (u32::MAX: not a unit file).
    let mut request_of: Vec<Vec<u32>> = file_slices
        .iter()
        .map(|f| vec![u32::MAX; f.len()])
        .collect();
    let mut requests: Vec<HashRequest> = Vec::new();
    let deferred: Vec<bool> = roots
        .iter()
        .map(|r| r.remote.is_some() && r.checksum == ChecksumMode::Apply)
        .collect();
    // Whether each request's spec is a video (for the frame-rate check).
    let mut request_video: Vec<bool> = Vec::new();
    for unit in &grouped.units {
        for (spec, f) in &unit.files {
            let slot = &mut request_of[f.root as usize][f.index as usize];
            if *slot == u32::MAX && !deferred[f.root as usize] {
                request_video.push(specs[*spec as usize].file_type == "video");
                let scanned = &file_slices[f.root as usize][f.index as usize];
                requests.push(HashRequest {
                    remote: roots[f.root as usize].remote.as_deref(),
                    dir: &roots[f.root as usize].path,
                    rel: &scanned.rel,
                    size: scanned.size,
                    mtime_ns: scanned.mtime_ns,
                });
                *slot = (requests.len() - 1) as u32;
            }
        }
    }
    let primary_order = recipe.collection.primary_order();
    // Checksum, then merge+validate. Both are CPU-bound once the page cache is
    // warm, so on a small machine running them one after the other costs no
    // time, and the checksum cache is freed before the unit metadata grows.
    // Files read for their checksum are screened from the same first chunk.
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
        opts.readers,
        heads
            .is_some()
            .then_some(&see as checksum::HeadObserver<'_>),
    );
    let seen_heads = heads
        .map(screen::SeenHeads::into_verdicts)
        .unwrap_or_default();
    stats.hash = hash_stats;
    if let Some(w) = cache.warning.take() {
        warnings.push(w);
    }
    if let Some(w) = cache.save(&requests, &hashes) {
        warnings.push(w);
    }
    drop(cache);
    lap(&mut stats, "checksum");

    // Content screening: one verdict per hashed file, from the cache when
    // its content and name were seen before.
    let screened = match recipe.content_check {
        ContentCheck::Off => screen::Screened::default(),
        check => screen::screen_requests(
            &requests,
            &hashes,
            &request_video,
            seen_heads,
            cache_dir.join(format!("{}.screen", recipe.name)),
            check == ContentCheck::Warn,
            |r| {
                let root = roots
                    .iter()
                    .find(|root| std::ptr::eq(r.dir, root.path.as_path()))
                    .map_or("", |root| root.written.as_str());
                explain::shown(root, r.rel)
            },
        ),
    };
    stats.screened_read = screened.read;
    stats.screened_cached = screened.cached;
    warnings.extend(screened.warnings);
    let (findings, finding_of) = (screened.findings, screened.finding_of);
    lap(&mut stats, "screen");
    for root in &roots {
        let unreadable: Vec<String> = requests
            .iter()
            .zip(&hashes)
            .filter(|(r, _)| std::ptr::eq(r.dir, root.path.as_path()))
            .filter_map(|(r, h)| h.as_ref().err().map(|e| format!("{}: {e}", r.rel)))
            .collect();
        if !unreadable.is_empty() {
            errors.push(unreadable_error(loaded, root, &unreadable));
        }
    }
    join_sheets(&mut errors, &mut warnings);
    if !errors.is_empty() {
        return Err(loaded.errors(errors));
    }
    drop(requests);
    let prepared: Vec<PreparedSource<'_>> = recipe
        .metadata
        .iter()
        .map(|m| PreparedSource {
            spec: m,
            table: sheet_tables.remove(&m.index),
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
    // Merge and validate one unit in one task, so each unit's provenance map
    // lives only while its problems are found.
    let merged: Vec<MergedUnit> = grouped
        .units
        .par_iter()
        .map(|u| {
            let files: Vec<UnitFile<'_>> = u
                .files
                .iter()
                .map(|(spec, f)| UnitFile {
                    spec: *spec,
                    rel: &file_slices[f.root as usize][f.index as usize].rel,
                    root: &roots[f.root as usize].path,
                    remote: roots[f.root as usize].remote.as_deref(),
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
                    let s = &file_slices[f.root as usize][f.index as usize];
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
            if recipe.content_check == ContentCheck::Fail {
                for (spec, f) in &u.files {
                    let i = request_of[f.root as usize][f.index as usize];
                    let verdict = finding_of.get(i as usize).copied().unwrap_or(screen::CLEAN);
                    if let Some(finding) = findings.get(verdict as usize) {
                        let rel = &file_slices[f.root as usize][f.index as usize].rel;
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
        .collect::<Vec<_>>();
    lap(&mut stats, "merge+validate");
    // `None` for a deferred file.
    let sha_of = |f: &FileRef| -> Option<String> {
        let i = request_of[f.root as usize][f.index as usize];
        (i != u32::MAX).then(|| {
            hashes[i as usize]
                .as_ref()
                .map(checksum::hex)
                .unwrap_or_default()
        })
    };

    let unit_keys: HashSet<std::borrow::Cow<'_, str>> = grouped
        .units
        .iter()
        .map(|u| normalize_key(&u.key))
        .collect();
    let mut orphan_rows: Vec<OrphanRow> = Vec::new();
    for p in &prepared {
        if let Some(t) = &p.table {
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
    }

    // The sheets are merged and checked: free them before the plan grows.
    drop(unit_keys);
    drop(prepared);

    // Diff against the target.
    let valid_keys: Vec<&str> = grouped
        .units
        .iter()
        .zip(&merged)
        .filter(|(_, m)| m.problems.is_empty())
        .map(|(u, _)| u.key.as_str())
        .collect();
    let existing = target.units_by_key(&valid_keys).map_err(|e| {
        loaded.errors(vec![RecipeError::new(
            Code::Target,
            e.to_string(),
            loaded.spans.key("/target"),
        )])
    })?;

    let spec_names: Vec<std::sync::Arc<str>> = specs
        .iter()
        .map(|s| std::sync::Arc::from(s.name.as_str()))
        .collect();
    let root_names: Vec<std::sync::Arc<str>> = roots
        .iter()
        .map(|r| std::sync::Arc::from(r.written.as_str()))
        .collect();
    let mut summary = Summary::default();
    drop(valid_keys);
    // Consume the drafts and merged meta as the plan's units are built: a
    // window at a time, each window in parallel (units are independent), so
    // drafts are freed as the plan grows; the tally follows in plan order.
    let drafts = std::mem::take(&mut grouped.units);
    let total = drafts.len();
    let mut pending = drafts.into_iter().zip(merged);
    let mut units = Vec::with_capacity(total);
    let mut overridden: Vec<String> = Vec::new();
    loop {
        let window: Vec<(UnitDraft, MergedUnit)> = pending.by_ref().take(8192).collect();
        if window.is_empty() {
            break;
        }
        let built: Vec<(PlannedUnit, Option<String>)> = window
            .into_par_iter()
            .map(|(u, m)| {
                let problems = m.problems;
                // A draft's files are sorted by spec; a spec with more than
                // one file is ambiguous (a problem) and gets none.
                let files: Vec<(std::sync::Arc<str>, PlannedFile)> = u
                    .files
                    .chunk_by(|a, b| a.0 == b.0)
                    .filter_map(|run| match run {
                        [one] => Some(one),
                        _ => None,
                    })
                    .map(|(spec, f)| {
                        let s = &file_slices[f.root as usize][f.index as usize];
                        (
                            spec_names[*spec as usize].clone(),
                            PlannedFile {
                                root: root_names[f.root as usize].clone(),
                                path: s.rel.clone(),
                                size: s.size,
                                sha1: sha_of(f),
                                etag: if deferred[f.root as usize] {
                                    s.tag.as_deref().map(str::to_owned)
                                } else {
                                    None
                                },
                            },
                        )
                    })
                    .collect();
                let files = SortedMap::from_sorted(files);
                let overridden = m
                    .key_field_overridden
                    .as_ref()
                    .map(|o| format!("{}: {o}", u.key));
                let (action, conflict) = if !problems.is_empty() {
                    (Action::Invalid, None)
                } else {
                    match existing.get(&u.key).map(Vec::as_slice) {
                        None | Some([]) => (Action::Create, None),
                        Some([one]) => {
                            // A deferred file's SHA-1 is not known: its spec must match.
                            let same_files = if files.values().any(|f| f.sha1.is_none()) {
                                one.same_specs(files.keys())
                            } else {
                                one.same_files(files.checksums())
                            };
                            let same_meta = one.same_meta(m.meta.get());
                            if same_files && same_meta {
                                (Action::Unchanged, None)
                            } else {
                                let mut what = Vec::new();
                                if !same_files {
                                    what.push("files differ".to_owned());
                                }
                                if !same_meta {
                                    what.push("meta differs".to_owned());
                                }
                                (
                                    Action::Conflict,
                                    Some(format!(
                                        "target unit {} has the same key; {}",
                                        one.id,
                                        what.join(", ")
                                    )),
                                )
                            }
                        }
                        Some(many) => (
                            Action::Conflict,
                            Some(format!(
                                "the target has {} units with this key ({})",
                                many.len(),
                                many.iter()
                                    .map(|u| u.id.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                        ),
                    }
                };
                let unit = PlannedUnit {
                    key: u.key,
                    action,
                    files,
                    meta: m.meta,
                    problems,
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
    drop(pending);
    summary.units = units.len() as u64;
    if summary.conflict > 0 {
        warnings.push(Warning::new(crate::stages::WarningCode::Conflict, format!("{} unit(s) have a key the target already uses with other content; they will not be overwritten", summary.conflict)));
    }
    if !overridden.is_empty() {
        warnings.push(Warning::new(
            crate::stages::WarningCode::KeyFieldOverridden,
            format!("{} unit(s): a metadata source set `{}`, which receives the unit key; the key wins (first: {})", overridden.len(), recipe.key_field.as_deref().unwrap_or(""), overridden[0]),
        ));
    }

    // Files to upload: distinct checksums of units to create that the target lacks.
    let upload = distinct_files(units.iter().filter(|u| u.action == Action::Create));
    let wanted: Vec<&str> = upload.keys().copied().collect();
    let known = target
        .known_checksums(&wanted)
        .map_err(|e| loaded.errors(vec![RecipeError::new(Code::Target, e.to_string(), None)]))?;
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

    // Unmatched files, orphan rows.
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
    for (r, (scan, classes)) in root_scans.iter().zip(&classified).enumerate() {
        let root = &roots[r].written;
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
    for f in &grouped.no_group_key {
        add_unmatched(
            &roots[f.root as usize].written,
            &file_slices[f.root as usize][f.index as usize].rel,
            UnmatchedReason::NoGroupKey,
            None,
        );
    }
    let unmatched_summary = by_reason.finish();
    unmatched.sort();
    summary.unmatched_files = unmatched.len() as u64;
    summary.excluded_files = root_scans.iter().map(|s| s.excluded).sum();
    let files_seen: u64 = root_scans
        .iter()
        .map(|s| (s.files.len() + s.non_utf8.len()) as u64)
        .sum();
    let diagnosis = explain::diagnose(
        &units,
        &unmatched_summary,
        files_seen,
        summary.excluded_files,
    );

    // Fingerprints.
    let listings = roots
        .iter()
        .zip(&root_scans)
        .enumerate()
        .map(|(r, (root, scan))| {
            let mut h = Sha256::new();
            for (i, f) in scan.files.iter().enumerate() {
                let sha = Some(request_of[r][i])
                    .filter(|&i| i != u32::MAX)
                    .and_then(|i| hashes[i as usize].as_ref().ok())
                    .copied()
                    .unwrap_or_default();
                h.update(f.rel.as_bytes());
                h.update(b"\0");
                h.update(f.size.to_le_bytes());
                h.update(sha);
                if deferred[r] {
                    // Identity is URL + size + ETag: a new version changes the listing.
                    h.update(f.tag.as_deref().unwrap_or_default().as_bytes());
                }
                h.update(b"\n");
            }
            for bad in &scan.non_utf8 {
                h.update(format!("{bad}\0?\0\n").as_bytes());
            }
            ListingInput {
                root: root.written.clone(),
                files: (scan.files.len() + scan.non_utf8.len()) as u64,
                sha256: hex::encode(h.finalize()),
            }
        })
        .collect();
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

    warnings.sort();
    warnings.dedup();
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
        orphan_rows,
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
    let (plan, unmasked) = match masked {
        Some(masked) => (masked, Some(plan)),
        None => (plan, None),
    };
    lap(&mut stats, "diff+assemble");
    Ok(PlanOutcome {
        plan,
        unmasked,
        stats,
    })
}

/// Starts loading every spreadsheet of the recipe, each on its own thread
/// (owning what it needs, so the planner can join them whenever it must).
fn spawn_sheet_loads(
    recipe: &ResolvedRecipe,
    paths: &BTreeMap<usize, MetaFile>,
    cache_dir: &Path,
) -> Vec<(usize, std::thread::JoinHandle<LoadedSheet>)> {
    recipe
        .metadata
        .iter()
        .filter_map(|m| match &m.kind {
            MetadataKind::Sheet {
                file,
                sheet,
                is_csv,
                header_row,
                key_column,
                columns,
                delimiter,
                encoding,
            } => {
                let path = paths[&m.index].clone();
                let (delimiter, encoding) = (*delimiter, *encoding);
                let cache_file = cache_dir.join(format!("{}.meta{}.sheet", recipe.name, m.index));
                let (source, sheet, key_column, columns) = (
                    file.written.clone(),
                    sheet.clone(),
                    key_column.clone(),
                    columns.clone(),
                );
                let (header_row, is_csv) = (*header_row, *is_csv);
                let load = move || -> LoadedSheet {
                    let o = SheetOptions {
                        source: &source,
                        sheet: sheet.as_deref(),
                        header_row,
                        key_column: key_column.as_deref(),
                        columns: &columns,
                        delimiter,
                        encoding,
                    };
                    // Read once: the same bytes are parsed and fingerprinted.
                    let bytes = match path.read() {
                        Ok(b) => b,
                        Err(why) => {
                            return (Err(sheet::SheetError::Unreadable(why)), String::new());
                        }
                    };
                    let (table, digest) = sheet_cache::load_or_parse(
                        cache_file,
                        &path.display_path(),
                        &bytes,
                        is_csv,
                        &o,
                    );
                    (table, hex::encode(digest))
                };
                Some((m.index, std::thread::spawn(load)))
            }
            _ => None,
        })
        .collect()
}

/// Absolute, then beside the recipe, then under the (first) source root.
/// Where a metadata file was found: on disk, or under a remote source root.
#[derive(Clone)]
enum MetaFile {
    Local(PathBuf),
    Remote(crate::source::remote::RemoteRoot, String),
}

impl MetaFile {
    fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            MetaFile::Local(p) => {
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            }
            MetaFile::Remote(root, rel) => crate::source::remote::read_all(root, rel),
        }
    }
    /// A path for messages and for picking the format by extension.
    fn display_path(&self) -> PathBuf {
        match self {
            MetaFile::Local(p) => p.clone(),
            MetaFile::Remote(root, rel) => PathBuf::from(format!("{}/{rel}", root.url)),
        }
    }
}

fn find_metadata_file(written: &str, recipe_dir: &Path, root: Option<&Root>) -> Option<MetaFile> {
    let p = Path::new(written);
    if p.is_absolute() {
        return p.is_file().then(|| MetaFile::Local(p.to_path_buf()));
    }
    let beside = recipe_dir.join(p);
    if beside.is_file() {
        return Some(MetaFile::Local(beside));
    }
    let root = root?;
    match &root.remote {
        Some(remote) => crate::source::remote::exists(remote, written).then(|| {
            MetaFile::Remote(
                (**remote).clone(),
                written.trim_start_matches("./").to_owned(),
            )
        }),
        None => {
            let under = root.path.join(p);
            under.is_file().then_some(MetaFile::Local(under))
        }
    }
}

fn display_rel(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).map_or_else(
        |_| path.display().to_string(),
        |p| p.to_string_lossy().replace('\\', "/"),
    )
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such folder".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

fn source_missing(loaded: &LoadedRecipe, root: &Root, reason: &str) -> RecipeError {
    let e = RecipeError::new(
        Code::SourceMissing,
        format!("source `{}` cannot be read: {reason}", root.written),
        loaded.spans.value(&root.pointer),
    );
    if root.remote.is_some() {
        e.help("check the bucket or host, the `connection` settings and the credentials (the providers' usual environment variables work too)")
    } else {
        e.label(format!("resolved to {}", root.path.display()))
            .help("relative paths are relative to the recipe's folder, not the working directory")
    }
}

fn unreadable_error(loaded: &LoadedRecipe, root: &Root, paths: &[String]) -> RecipeError {
    let shown: Vec<&str> = paths.iter().take(20).map(String::as_str).collect();
    let more = if paths.len() > 20 {
        format!("\n  … and {} more", paths.len() - 20)
    } else {
        String::new()
    };
    RecipeError::new(
        Code::SourceUnreadable,
        format!(
            "{} file(s) or folder(s) under `{}` cannot be read:\n  {}{more}",
            paths.len(),
            root.written,
            shown.join("\n  ")
        ),
        loaded.spans.value(&root.pointer),
    )
    .help("fix their permissions, or drop them with `exclude`")
}

fn group_error(loaded: &LoadedRecipe, e: &GroupError, multi: bool) -> RecipeError {
    match e {
        GroupError::NoLayout {
            best,
            best_regex,
            runner_up,
        } => {
            let runner_up = runner_up
                .as_ref()
                .map(|r| format!("; next best, {r}"))
                .unwrap_or_default();
            RecipeError::new(
                Code::NoLayout,
                format!("no grouping of the files makes most units complete: best, {best}{runner_up}"),
                loaded.spans.key(if multi { "/assets" } else { "/source" }),
            )
            .help(format!("set `group_key_regex` to say which part of the path names the unit (the best guess was '{best_regex}'), or `file_rules` if files map to the wrong specs"))
        }
        GroupError::KeyCollision { key, group_keys } => RecipeError::new(
            Code::KeyCollision,
            format!(
                "groups {} all render the unit key `{key}`",
                group_keys
                    .iter()
                    .map(|g| format!("`{g}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            loaded
                .spans
                .value("/dataset_key_template")
                .or_else(|| loaded.spans.value("/group_key_regex")),
        )
        .help("make dataset_key_template include {group_key}, or capture more of the path"),
    }
}

fn sheet_help(e: &sheet::SheetError) -> String {
    match e {
        sheet::SheetError::NoSuchSheet { .. } => "set `sheet` to one of the sheet names".to_owned(),
        sheet::SheetError::NoHeaderRow { .. } => {
            "set `header_row` to the row that holds the column names".to_owned()
        }
        sheet::SheetError::DuplicateHeaders { .. } => {
            "rename one of the columns so every header is unique".to_owned()
        }
        // One column whose header holds a separator: the delimiter is wrong.
        sheet::SheetError::NoKeyColumn { headers, .. }
            if headers.len() == 1 && headers[0].contains([',', ';', '\t', '|']) =>
        {
            "the header row reads as one column: set `delimiter` to the file's separator (\",\", \";\", tab or \"|\")".to_owned()
        }
        sheet::SheetError::NoKeyColumn { .. } => {
            "set `key_column` to the header of the column that holds unit keys".to_owned()
        }
        sheet::SheetError::DuplicateKeys { .. } => {
            "each unit key may appear in one row only; remove or merge the duplicates".to_owned()
        }
        sheet::SheetError::Unreadable(_) => {
            "check that the file is a spreadsheet and is not password-protected".to_owned()
        }
        sheet::SheetError::NotUtf8 { .. } => {
            "set `encoding` to the file's encoding, e.g. `encoding: latin-1` or `encoding: windows-1252` for files saved by Excel on Windows".to_owned()
        }
    }
}
