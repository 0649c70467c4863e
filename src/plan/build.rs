//! The planner: checks that the recipe's inputs exist, compiles its
//! [`StageGraph`] and has [`super::engine`] run it. Each stage is one function
//! in [`super::steps`] that reads its inputs from the [`Board`] (the outputs of
//! the stages it depends on) and writes its own output there.
//!
//! Everything printed or hashed is sorted, so the plan does not depend on
//! listing order, thread count or which stage finished first.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use super::engine::{self, StageRun};
use super::errors::source_missing;
use super::graph::{StageGraph, StageKind};
use super::model::*;
use super::steps;
use crate::recipe::model::ChecksumMode;
use crate::recipe::resolve::{MetadataKind, ResolvedRecipe, Root};
use crate::recipe::{Code, LoadedRecipe, RecipeError, RecipeErrors};
use crate::source::SourceScan;
use crate::stages::checksum::HashStats;
use crate::stages::metadata::load::SheetFile;
use crate::stages::{Warning, WarningCode};
use crate::target::TargetView;

/// A callback told `(root, objects listed so far)`.
pub type ListingProgress = std::sync::Arc<dyn Fn(&str, u64) + Send + Sync>;

/// What draws the hash pass's progress.
pub type HashingProgress = std::sync::Arc<dyn crate::stages::checksum::HashProgress + Send>;

/// Knobs that change speed, never the plan.
#[derive(Clone)]
pub struct PlanOptions {
    /// Concurrent file readers while hashing; small files on a cold disk reward depth.
    pub readers: usize,
    pub scan_threads: usize,
    /// Told `(root, objects listed so far)` during long remote listings.
    pub listing_progress: Option<ListingProgress>,
    /// Told what the hash pass reads, as it reads it.
    pub hashing_progress: Option<HashingProgress>,
    /// What the stages that sort may hold before they spill under `.synup/`.
    pub memory: crate::spill::MemoryBudget,
    /// Plan only the units with these keys (a shard verifying its slice of a
    /// saved plan): the other units' files are listed but never read. Such a
    /// plan is partial: only its units are meant to be compared.
    pub only_units: Option<Arc<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for PlanOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanOptions")
            .field("readers", &self.readers)
            .field("scan_threads", &self.scan_threads)
            .field("memory", &self.memory)
            .field("only_units", &self.only_units.as_ref().map(|u| u.len()))
            .finish()
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            readers: 16,
            scan_threads: 8,
            listing_progress: None,
            hashing_progress: None,
            memory: crate::spill::MemoryBudget::DEFAULT,
            only_units: None,
        }
    }
}

/// What each stage took and how much was read; for `--stats` and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct PlanStats {
    pub files_scanned: u64,
    /// Local folders listed from the listing cache, and read.
    pub folders_cached: u64,
    pub folders_read: u64,
    /// Remote roots whose listing went on from an interrupted one's journal.
    pub listings_resumed: Vec<(String, crate::source::ResumedListing)>,
    pub hash: HashStats,
    /// Files whose content verdict came from the cache, and files read for it.
    pub screened_cached: u64,
    pub screened_read: u64,
    /// Every stage of the graph, in graph order: its time and the peak memory
    /// when it ended.
    pub stages: Vec<StageRun>,
}

#[derive(Debug)]
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

/// What every stage may read: the recipe, the target and where caches live.
pub(super) struct Context<'a> {
    pub loaded: &'a LoadedRecipe,
    pub recipe: &'a ResolvedRecipe,
    pub target: &'a dyn TargetView,
    pub opts: &'a PlanOptions,
    pub roots: Vec<&'a Root>,
    /// The recipe's `.synup/` (never scanned) and its cache folder.
    pub state_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// Every metadata sheet, by its index in the recipe, as found by preflight.
    pub sheet_files: BTreeMap<usize, SheetFile>,
}

impl Context<'_> {
    /// Whether root `r`'s files are identified by URL + size + ETag and hashed
    /// only during apply.
    pub(super) fn deferred(&self, r: usize) -> bool {
        self.roots[r].is_remote() && self.roots[r].checksum == ChecksumMode::Apply
    }
}

/// One stage's output, written once by that stage; read by the stages that
/// depend on it (which the engine starts only afterwards), and taken by the
/// last of them so it is freed as soon as nothing needs it.
pub(super) struct Slot<T>(RwLock<Option<T>>);

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self(RwLock::new(None))
    }
}

/// A read of a filled [`Slot`].
pub(super) struct Filled<'a, T>(RwLockReadGuard<'a, Option<T>>);

impl<T> Deref for Filled<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0
            .as_ref()
            .expect("a stage reads only what the stages it depends on wrote")
    }
}

impl<T> Slot<T> {
    pub(super) fn put(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(value);
    }
    pub(super) fn get(&self) -> Filled<'_, T> {
        Filled(self.0.read().unwrap_or_else(|e| e.into_inner()))
    }
    pub(super) fn take(&self) -> T {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("a stage takes only what the stages it depends on wrote")
    }
}

/// The stages' outputs. Each field is written by one stage kind.
#[derive(Default)]
pub(super) struct Board {
    pub scans: Vec<Slot<SourceScan>>,
    /// Each root's files' modification times, apart from the listing: the
    /// checksum takes them (they key its cache) and nothing needs them after.
    pub mtimes: Vec<Slot<Vec<i64>>>,
    pub sheets: Mutex<HashMap<usize, crate::stages::metadata::sheet::SheetTable>>,
    pub metadata_inputs: Mutex<Vec<MetadataInput>>,
    pub classified: Slot<Vec<Vec<crate::stages::classify::Classified>>>,
    pub drafts: Slot<crate::stages::drafts::UnitDrafts>,
    pub grouping: Slot<steps::Grouping>,
    pub hashed: Slot<steps::Hashed>,
    pub screen_input: Slot<steps::ScreenInput>,
    pub seen_heads: Slot<steps::SeenVerdicts>,
    pub screened: Slot<steps::ScreenVerdicts>,
    pub merged: Slot<crate::spill::Spool<steps::MergedUnit>>,
    pub orphan_rows: Slot<Vec<OrphanRow>>,
    pub diffed: Slot<steps::Diffed>,
    pub plan: Slot<(Plan, Option<Plan>)>,
    /// Warnings from every stage; sorted when the plan is assembled.
    pub warnings: Mutex<Vec<Warning>>,
    pub stats: Mutex<PlanStats>,
}

impl Board {
    pub(super) fn warn(&self, more: impl IntoIterator<Item = Warning>) {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(more);
    }
    pub(super) fn stats(&self) -> std::sync::MutexGuard<'_, PlanStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Builds the plan for a resolved recipe against a target's current state.
pub fn build_plan(
    loaded: &LoadedRecipe,
    recipe: &ResolvedRecipe,
    target: &dyn TargetView,
    opts: &PlanOptions,
) -> Result<PlanOutcome, RecipeErrors> {
    let state_dir = loaded.state_dir();
    let mut cx = Context {
        loaded,
        recipe,
        target,
        opts,
        roots: recipe.mode.roots(),
        cache_dir: state_dir.join("cache"),
        state_dir,
        sheet_files: BTreeMap::new(),
    };
    let board = Board {
        scans: cx.roots.iter().map(|_| Slot::default()).collect(),
        mtimes: cx.roots.iter().map(|_| Slot::default()).collect(),
        ..Board::default()
    };
    preflight(&mut cx, &board).map_err(|e| loaded.errors(e))?;

    let graph = StageGraph::compile(recipe);
    let ran = engine::execute(&graph, &|i| run_stage(graph.stages[i].kind, &cx, &board));
    let mut stats = std::mem::take(&mut *board.stats());
    stats.stages = ran.runs;
    if !ran.errors.is_empty() {
        let errors = ran.errors.into_iter().flat_map(|(_, e)| e).collect();
        return Err(loaded.errors(errors));
    }
    let (plan, unmasked) = board.plan.take();
    Ok(PlanOutcome {
        plan,
        unmasked,
        stats,
    })
}

/// Runs one stage: the graph's kinds, each by its own function.
fn run_stage(kind: StageKind, cx: &Context<'_>, board: &Board) -> Result<(), Vec<RecipeError>> {
    match kind {
        StageKind::Scan(r) => steps::scan(cx, board, r),
        StageKind::LoadSheet(m) => steps::load_sheet(cx, board, m),
        StageKind::Classify => steps::classify(cx, board),
        StageKind::Group => steps::group(cx, board),
        StageKind::Checksum => steps::checksum(cx, board),
        StageKind::Screen => steps::screen(cx, board),
        StageKind::MergeValidate => steps::merge_validate(cx, board),
        StageKind::Diff => steps::diff(cx, board),
        StageKind::Assemble => steps::assemble(cx, board),
    }
}

/// Before anything is read: local roots are folders and every metadata
/// sheet exists; `checksum: apply` is explained where it applies.
fn preflight(cx: &mut Context<'_>, board: &Board) -> Result<(), Vec<RecipeError>> {
    let (loaded, recipe) = (cx.loaded, cx.recipe);
    let mut errors: Vec<RecipeError> = Vec::new();
    board.warn(
        recipe
            .warnings
            .iter()
            .map(|w| Warning::new(WarningCode::Recipe(w.code), w.message.clone())),
    );
    for root in &cx.roots {
        let Some(dir) = root.source.local_path() else {
            if root.checksum == ChecksumMode::Apply {
                board.warn([Warning::new(WarningCode::ChecksumDeferred, format!("`checksum: apply`: files under `{}` are identified by URL + size + ETag and not read while planning; their SHA-1 is computed while they are uploaded, and files the target already holds are recognised then (dedupe happens during apply). A unit the target already has under the same key is `unchanged` when its specs and meta are the same: its file content is not compared", root.written))]);
            }
            continue; // reached while scanning: its errors name the URL there
        };
        match std::fs::metadata(dir) {
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
            board.warn([Warning::new(WarningCode::ChecksumApplyLocal, format!("`checksum: apply` has no effect on the local source `{}`: local files are hashed while planning", root.written))]);
        }
    }
    let first_root = cx.roots.first().map(|r| &r.source);
    for m in &recipe.metadata {
        if let MetadataKind::Sheet { file, .. } = &m.kind {
            match SheetFile::find(&file.written, &loaded.dir, first_root) {
                Some(found) => {
                    cx.sheet_files.insert(m.index, found);
                }
                None => errors.push(
                    RecipeError::new(Code::MetadataFileMissing, format!("metadata file `{}` does not exist", file.written), loaded.spans.value(&file.pointer))
                        .help("it is looked for as an absolute path, then beside the recipe, then under the source root"),
                ),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such folder".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// The root a file belongs to, as the plan names it; for the screen's messages.
pub(super) fn root_written<'a>(cx: &Context<'a>, source: &dyn crate::source::Source) -> &'a str {
    cx.roots
        .iter()
        .find(|r| {
            std::ptr::addr_eq(
                Arc::as_ptr(&r.source),
                source as *const dyn crate::source::Source,
            )
        })
        .map_or("", |r| r.written.as_str())
}

/// The planner end to end on a small tree, against an in-memory target.
#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::path::Path;

    use super::*;
    use crate::plan::engine::StageState;
    use crate::target::{ExistingUnit, TargetError};

    /// A target that holds what the test says, and counts what it is asked.
    #[derive(Default)]
    struct FakeTarget {
        units: HashMap<String, Vec<ExistingUnit>>,
        checksums: HashSet<String>,
        asked: Mutex<Vec<String>>,
    }

    impl TargetView for FakeTarget {
        fn units_by_key(
            &self,
            keys: &[&str],
        ) -> Result<HashMap<String, Vec<ExistingUnit>>, TargetError> {
            self.asked
                .lock()
                .unwrap()
                .extend(keys.iter().map(|k| (*k).to_owned()));
            Ok(keys
                .iter()
                .filter_map(|k| self.units.get(*k).map(|u| ((*k).to_owned(), u.clone())))
                .collect())
        }
        fn known_checksums(&self, sha1s: &[&str]) -> Result<HashSet<String>, TargetError> {
            Ok(sha1s
                .iter()
                .filter(|s| self.checksums.contains(**s))
                .map(|s| (*s).to_owned())
                .collect())
        }
    }

    const COLLECTION: &str = r#"{"name": "ct", "file_specifications": [
        {"name": "image", "file_type": "image", "extensions": [".png"], "is_required": true, "is_primary": true},
        {"name": "label", "file_type": "document", "extensions": [".json"], "is_required": true}]}"#;

    /// `u1`, `u2` complete, `u3` without its label; a recipe over them.
    fn tree(dir: &Path, extra: &str) -> String {
        for u in ["u1", "u2", "u3"] {
            std::fs::create_dir_all(dir.join("data").join(u)).unwrap();
            std::fs::write(dir.join(format!("data/{u}/scan.png")), format!("png {u}")).unwrap();
            if u != "u3" {
                std::fs::write(dir.join(format!("data/{u}/scan.json")), "{}").unwrap();
            }
        }
        std::fs::write(dir.join("collection.json"), COLLECTION).unwrap();
        let recipe = dir.join("recipe.yaml");
        std::fs::write(
            &recipe,
            format!(
                "version: 1\nname: t\ntarget: {{backend: local}}\ncollection: {{file: collection.json}}\nsource: {{path: data}}\nvalidation: {{invalid_units: skip}}\n{extra}"
            ),
        )
        .unwrap();
        recipe.to_string_lossy().into_owned()
    }

    fn plan_with(recipe: &str, target: &FakeTarget) -> Result<PlanOutcome, RecipeErrors> {
        let loaded = crate::recipe::load(recipe).unwrap();
        let resolved = crate::recipe::resolve::resolve(&loaded).unwrap();
        build_plan(&loaded, &resolved, target, &PlanOptions::default())
    }

    fn sha1_hex(bytes: &[u8]) -> String {
        use sha1::Digest;
        hex::encode(sha1::Sha1::digest(bytes))
    }

    #[test]
    fn every_stage_runs_and_the_target_decides_each_valid_unit() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = tree(dir.path(), "");
        let (png1, json) = (sha1_hex(b"png u1"), sha1_hex(b"{}"));
        // The unit as this recipe makes it (its meta carries the key field).
        let fresh = plan_with(&recipe, &FakeTarget::default()).unwrap().plan;
        let same = ExistingUnit {
            id: "7".into(),
            files: vec![("image".into(), png1), ("label".into(), json.clone())],
            meta_json: fresh.units.to_vec().unwrap()[0].meta.get().to_owned(),
        };
        let other = ExistingUnit {
            files: vec![
                ("image".into(), "ff".repeat(20)),
                ("label".into(), json.clone()),
            ],
            ..same.clone()
        };
        let target = FakeTarget {
            units: HashMap::from([
                ("u1".to_owned(), vec![same]),
                ("u2".to_owned(), vec![other]),
            ]),
            checksums: HashSet::from([json]),
            ..FakeTarget::default()
        };
        let outcome = plan_with(&recipe, &target).unwrap();
        let units = outcome.plan.units.to_vec().unwrap();
        let actions: Vec<(&str, Action)> =
            units.iter().map(|u| (u.key.as_str(), u.action)).collect();
        assert_eq!(
            actions,
            [
                ("u1", Action::Unchanged),
                ("u2", Action::Conflict),
                ("u3", Action::Invalid)
            ]
        );
        // Only valid units are looked up in the target.
        let mut asked = target.asked.lock().unwrap().clone();
        asked.sort();
        assert_eq!(asked, ["u1", "u2"]);
        // The stats name every node of the graph, and all of them ran.
        let loaded = crate::recipe::load(&recipe).unwrap();
        let graph = StageGraph::compile(&crate::recipe::resolve::resolve(&loaded).unwrap());
        let ids: Vec<&str> = outcome.stats.stages.iter().map(|s| s.id.as_str()).collect();
        let expected: Vec<&str> = graph.stages.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, expected);
        assert!(
            outcome
                .stats
                .stages
                .iter()
                .all(|s| s.state == StageState::Done)
        );
    }

    #[test]
    fn files_the_target_holds_are_not_counted_to_upload() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = tree(dir.path(), "");
        let empty = plan_with(&recipe, &FakeTarget::default()).unwrap();
        // Two distinct PNGs and one JSON shared by both units.
        assert_eq!(empty.plan.summary.files_to_upload, 3);
        let holds_json = FakeTarget {
            checksums: HashSet::from([sha1_hex(b"{}")]),
            ..FakeTarget::default()
        };
        let plan = plan_with(&recipe, &holds_json).unwrap().plan;
        assert_eq!(plan.summary.create, 2);
        assert_eq!(plan.summary.files_to_upload, 2);
    }

    #[test]
    fn failures_of_independent_stages_are_reported_together_with_code_and_place() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = tree(
            dir.path(),
            "metadata:\n  - {csv: a.csv, key_column: unit}\n  - {csv: b.csv, key_column: unit}\n",
        );
        // Two sheets, each loaded by its own stage: one without the key column,
        // one with a key given twice. The second is slower to fail.
        std::fs::write(dir.path().join("a.csv"), "name,age\nu1,3\n").unwrap();
        let mut rows = String::from("unit,age\n");
        for i in 0..50_000 {
            rows.push_str(&format!("x{i},{i}\n"));
        }
        rows.push_str("x7,1\n");
        std::fs::write(dir.path().join("b.csv"), rows).unwrap();
        let errors = plan_with(&recipe, &FakeTarget::default()).unwrap_err();
        let found: Vec<(String, String)> = errors
            .errors
            .iter()
            .map(|e| (e.code_str(), errors.location(e)))
            .collect();
        let at = |line: u32| {
            (
                "synup::plan::metadata_sheet".to_owned(),
                format!("{recipe}:{line}:11"),
            )
        };
        // Graph order, whichever ended first.
        assert_eq!(found, [at(8), at(9)]);
    }

    #[test]
    fn a_second_plan_screens_every_file_from_the_cache() {
        // Screening goes a chunk of two files at a time in unit tests: the
        // cache's positions must carry across chunks.
        let dir = tempfile::tempdir().unwrap();
        let recipe = tree(dir.path(), "");
        let first = plan_with(&recipe, &FakeTarget::default()).unwrap();
        assert_eq!(
            (first.stats.screened_read, first.stats.screened_cached),
            (5, 0)
        );
        let second = plan_with(&recipe, &FakeTarget::default()).unwrap();
        assert_eq!(
            (second.stats.screened_read, second.stats.screened_cached),
            (0, 5)
        );
        assert_eq!(second.plan.plan_hash, first.plan.plan_hash);
    }

    #[test]
    fn the_plan_does_not_depend_on_the_memory_budget() {
        let dir = tempfile::tempdir().unwrap();
        // A sheet with a row for two of the units, a row no unit has, and
        // keys out of order: its rows spill and are joined from the run file.
        std::fs::write(
            dir.path().join("meta.csv"),
            "id,site,age\nu9,Busan,40\nu2,Seoul,31\n u1 ,Seoul,30\nu0,Daegu,20\n",
        )
        .unwrap();
        let recipe = tree(
            dir.path(),
            "metadata: [{csv: meta.csv, key_column: id, columns: {age: integer}}]\n",
        );
        let known = FakeTarget {
            checksums: [sha1_hex(b"{}")].into_iter().collect(),
            ..FakeTarget::default()
        };
        let loaded = crate::recipe::load(&recipe).unwrap();
        let resolved = crate::recipe::resolve::resolve(&loaded).unwrap();
        let with = |bytes: usize| {
            let opts = PlanOptions {
                memory: crate::spill::MemoryBudget { bytes },
                ..PlanOptions::default()
            };
            build_plan(&loaded, &resolved, &known, &opts).unwrap().plan
        };
        // A budget of a few bytes: every file to upload goes through a run on
        // disk, every unit through the plan's spill file and every sheet row
        // through a run (parsed first, then from the sheet cache).
        let tight = with(4);
        let roomy = with(512 << 20);
        let cached = with(4);
        assert_eq!(cached.plan_hash, tight.plan_hash);
        assert_eq!(
            roomy
                .orphan_rows
                .iter()
                .map(|r| (r.row, r.key.as_str()))
                .collect::<Vec<_>>(),
            [(2, "u9"), (5, "u0")]
        );
        let meta = |p: &Plan| {
            p.units
                .iter()
                .map(|u| u.unwrap().meta.get().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(meta(&tight), meta(&roomy));
        assert!(
            meta(&roomy)[0].contains(r#""site":"Seoul""#),
            "{:?}",
            meta(&roomy)
        );
        assert!(tight.units.spilled() && !roomy.units.spilled());
        assert_eq!(tight.plan_hash, roomy.plan_hash);
        assert_eq!(tight.summary, roomy.summary);
        let written = |p: &Plan| {
            let mut out = Vec::new();
            p.write_json(&mut out).unwrap();
            out
        };
        assert_eq!(written(&tight), written(&roomy));
        assert_eq!(tight.units.to_vec().unwrap(), roomy.units.to_vec().unwrap());
        assert_eq!(
            (roomy.summary.files_to_upload, roomy.summary.create),
            (2, 2)
        );
        // Runs are unnamed files: the spill folder is left empty.
        let spill = dir.path().join(".synup/spill");
        assert!(spill.is_dir(), "the tight plan spilled");
        assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
    }
}
