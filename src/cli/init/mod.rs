//! `synup init [DIR]`: asks, in the order SPEC section 6 gives, for what a
//! recipe needs, checking every answer at once; or, without a terminal, takes
//! every answer as a flag. Ends by writing the recipe (atomically: an
//! interrupted wizard leaves nothing) and showing its plan.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use inquire::{Confirm, InquireError, Select};
use serde_json::Value as Json;
use synup::init::{Answers, SourceAnswer, TargetAnswer, recipe_name, render};

use super::exit;

mod ask;
mod checks;
mod gaps;
mod preview;

pub(super) use gaps::{TerminalGaps, create_recipe};

use ask::Asker;
use checks::*;
use preview::Draft;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TargetKind {
    Local,
    Synapse,
}

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Folder the recipe is written to (default: the current folder).
    dir: Option<PathBuf>,
    /// Where units go.
    #[arg(long, value_enum)]
    target: Option<TargetKind>,
    /// Synapse host (default: SYNAPSE_HOST, else the saved login).
    #[arg(long)]
    host: Option<String>,
    /// Synapse: the collection id. Local: the collection's name.
    #[arg(long)]
    data_collection: Option<String>,
    /// Synapse: a storage id, or `default`.
    #[arg(long)]
    storage: Option<String>,
    /// Single-path mode: the folder or URL holding the files.
    #[arg(long)]
    source: Option<String>,
    /// Multi-path mode: one folder or URL per spec (repeatable).
    #[arg(long = "asset", value_name = "SPEC=PATH")]
    assets: Vec<String>,
    /// Metadata source (repeatable): `excel:FILE[:KEY_COLUMN]`, `csv:FILE[:KEY_COLUMN]`,
    /// `filename:REGEX`, `sidecar:TEMPLATE`, `static:FIELD=VALUE,…`, or `none`.
    #[arg(long, value_name = "SOURCE")]
    metadata: Vec<String>,
    /// The recipe's name (default: the collection's or the folder's).
    #[arg(long)]
    name: Option<String>,
    /// The recipe's file name inside DIR.
    #[arg(short = 'o', long, default_value = "synup.yaml")]
    output: String,
    /// Replace an existing recipe file.
    #[arg(long)]
    force: bool,
}

/// Why the wizard stopped early.
pub(super) enum Stop {
    /// Ctrl-C or Esc at a prompt.
    Interrupted,
    /// Already reported.
    Failed,
}

impl From<InquireError> for Stop {
    fn from(e: InquireError) -> Self {
        match e {
            InquireError::OperationInterrupted | InquireError::OperationCanceled => {
                Stop::Interrupted
            }
            other => {
                crate::console::error(&format!("cannot ask: {other}"));
                Stop::Failed
            }
        }
    }
}

pub(super) type Step<T> = Result<T, Stop>;

pub(super) fn fail<T>(message: &str) -> Step<T> {
    crate::console::error(message);
    Err(Stop::Failed)
}

pub(super) fn on_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

pub(super) fn run(args: Args) -> i32 {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let interactive = on_terminal();
    if !interactive {
        let missing = missing_flags(&args);
        if !missing.is_empty() {
            crate::console::error(&format!(
                "synup init asks its questions on a terminal; without one, give every answer as a flag. Missing: {}",
                missing.join(", ")
            ));
            return exit::ERROR;
        }
    }
    let recipe_path = dir.join(&args.output);
    match wizard(&args, &dir, &recipe_path, interactive) {
        Ok(code) => code,
        Err(Stop::Interrupted) => {
            crate::console::error("interrupted: nothing was written");
            130
        }
        Err(Stop::Failed) => exit::ERROR,
    }
}

/// The flags a run without a terminal lacks, by name.
fn missing_flags(a: &Args) -> Vec<&'static str> {
    let mut out = Vec::new();
    match a.target {
        None => out.push("--target"),
        Some(TargetKind::Synapse) => {
            let saved = synup::target::synapse::config::resolve(None, None).is_ok();
            if a.host.is_none() && !saved {
                out.push("--host");
            }
            if a.storage.is_none() {
                out.push("--storage");
            }
        }
        Some(TargetKind::Local) => {}
    }
    if a.data_collection.is_none() {
        out.push("--data-collection");
    }
    if a.source.is_none() && a.assets.is_empty() {
        out.push("--source (or --asset SPEC=PATH)");
    }
    if a.metadata.is_empty() {
        out.push("--metadata (or --metadata none)");
    }
    out
}

fn wizard(args: &Args, dir: &Path, recipe_path: &Path, interactive: bool) -> Step<i32> {
    if recipe_path.exists() && !args.force {
        let replace = interactive
            && Confirm::new(&format!("{} exists. Replace it?", recipe_path.display()))
                .with_default(false)
                .prompt()?;
        if !replace {
            return fail(&format!(
                "{} exists; pass --force to replace it",
                recipe_path.display()
            ));
        }
    }
    if !dir.is_dir()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        return fail(&format!("cannot create {}: {e}", dir.display()));
    }
    let ask = Asker { interactive, dir };

    // 1. Target (the first question comes before any network access).
    let kind = match args.target {
        Some(k) => k,
        None => {
            let options = vec![
                "local: a catalog on this machine (.synup/local)",
                "synapse: a Synapse backend",
            ];
            let pick = Select::new("Where should the data units go?", options).prompt()?;
            if pick.starts_with("local") {
                TargetKind::Local
            } else {
                TargetKind::Synapse
            }
        }
    };
    let session = match kind {
        TargetKind::Synapse => Some(ask.session(args.host.as_deref())?),
        TargetKind::Local => None,
    };

    // 2. Data collection.
    let collection = match &session {
        Some(s) => Some(ask.remote_collection(s, args.data_collection.as_deref())?),
        None => None,
    };
    let local_name = match &session {
        Some(_) => None,
        None => Some(ask.local_collection(args.data_collection.as_deref())?),
    };

    // 3. Storage.
    let storage = match &session {
        Some(s) => ask.storage(s, args.storage.as_deref())?,
        None => None,
    };

    // 4. Source: one path, or one per spec.
    let spec_names: Vec<String> = collection
        .as_ref()
        .map(|c| c.specs.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let source = ask.source(args, &spec_names)?;
    // A single source is explored once: it gives a new local collection its
    // specs, and the layout to pin.
    let explored = match &source {
        SourceAnswer::Single { path, .. } => match explore(dir, path) {
            Ok(e) => Some(e),
            Err(e) if session.is_none() => {
                return fail(&format!("cannot explore `{path}`: {e}"));
            }
            Err(_) => None,
        },
        SourceAnswer::Multi(_) => None,
    };

    // A new local collection takes its specs from what the source holds.
    let target = match (&session, collection.as_ref()) {
        (Some(s), Some(c)) => TargetAnswer::Synapse {
            // Written only when the environment and the saved login would
            // not give the same host (a --host flag, or a login not saved).
            host: Some(s.client.host().to_owned()).filter(|h| *h != default_host()),
            collection: c.id,
            collection_name: c.name.clone(),
            storage,
        },
        _ => {
            let specs = ask.local_specs(&source, explored.as_ref())?;
            TargetAnswer::Local {
                collection: local_name.clone().unwrap_or_default(),
                specs,
            }
        }
    };
    let name = args.name.clone().unwrap_or_else(|| {
        recipe_name(match (&collection, &local_name) {
            (Some(c), _) => &c.name,
            (None, Some(n)) => n,
            _ => "upload",
        })
    });
    let required_fields = collection
        .as_ref()
        .map(|c| c.required_fields.clone())
        .unwrap_or_default();
    let mut answers = Answers {
        name,
        target,
        source,
        metadata: Vec::new(),
        required_fields,
        exclude: Vec::new(),
    };
    // Pin the layout explore infers (the planner's own inference, over the
    // specs explore tells apart by extension, name token or type folder).
    let mut detected = None;
    if let SourceAnswer::Single {
        group_key_regex: regex @ None,
        file_rules,
        ..
    } = &mut answers.source
        && let Some(layout) = explored.as_ref().and_then(|e| e.layout.clone())
    {
        detected = layout.pattern;
        *regex = layout.group_key_regex;
        answers.exclude = explored
            .as_ref()
            .map(|e| e.suggested_exclude.clone())
            .unwrap_or_default();
        let suggested: Vec<(String, String)> = explored
            .iter()
            .flat_map(|e| &e.suggested_file_rules)
            .map(|r| (r.pattern.clone(), r.spec.clone()))
            .collect();
        *file_rules = synup::init::propose_rules(
            &suggested,
            &spec_extensions(&answers.target, collection.as_ref()),
        );
    }

    // 5. The detected layout and a preview, until the user accepts it.
    let draft = Draft::new(dir)?;
    if interactive {
        let specs = spec_extensions(&answers.target, collection.as_ref());
        ask.layout(&mut answers, &draft, detected, &specs)?;
    }

    // 6. Metadata.
    if interactive && args.metadata.is_empty() {
        let found = explored
            .as_ref()
            .map(|e| e.suggested_metadata.as_slice())
            .unwrap_or_default();
        ask.metadata(&mut answers, &draft, found)?;
    } else {
        for m in &args.metadata {
            match metadata_flag(m) {
                Ok(Some(a)) => answers.metadata.push(a),
                Ok(None) => {}
                Err(e) => return fail(&format!("--metadata {m}: {e}")),
            }
        }
    }

    // 7. Write the recipe, then show what it would do.
    let text = render(&answers);
    if let Err(e) = synup::fs_write::write(
        recipe_path,
        synup::fs_write::Access::Shared,
        text.as_bytes(),
    ) {
        return fail(&format!("cannot write {}: {e}", recipe_path.display()));
    }
    drop(draft);
    crate::console::note(&format!("wrote {}", recipe_path.display()));
    let shown = recipe_path.display().to_string();
    let Some(prepared) = super::prepare_recipe(&shown) else {
        return Ok(exit::ERROR);
    };
    let Some(outcome) = super::plan_recipe(&prepared, false, Default::default()) else {
        return Ok(exit::ERROR);
    };
    let s = &outcome.plan.summary;
    crate::console::note(&format!(
        "plan: {} units ({} to create, {} unchanged, {} invalid), {} files to upload, {} unmatched files",
        s.units, s.create, s.unchanged, s.invalid, s.files_to_upload, s.unmatched_files
    ));
    crate::console::note(&format!(
        "next: `synup plan {shown}` shows every unit; `synup apply {shown}` uploads"
    ));
    Ok(exit::OK)
}

fn default_host() -> String {
    synup::target::synapse::config::resolve(None, None)
        .map(|c| c.host)
        .unwrap_or_default()
}

/// Each spec's name and extensions, from the backend's collection or the
/// new local one.
fn spec_extensions(
    target: &TargetAnswer,
    collection: Option<&CollectionInfo>,
) -> Vec<(String, Vec<String>)> {
    match (target, collection) {
        (TargetAnswer::Local { specs, .. }, _) => specs
            .iter()
            .map(|s| (s.name.clone(), s.extensions.clone()))
            .collect(),
        (_, Some(c)) => c
            .specs
            .iter()
            .map(|s| (s.name.clone(), s.extensions.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

/// A collection as the wizard needs it.
pub(super) struct CollectionInfo {
    id: u64,
    name: String,
    specs: Vec<synup::recipe::model::FileSpecConfig>,
    required_fields: Vec<String>,
}

/// The backend's collection JSON, read as a recipe reads it.
pub(super) fn collection_info(json: &Json) -> CollectionInfo {
    let (specs, schema) = synup::recipe::resolve::api_collection(json).unwrap_or_default();
    let required_fields = schema
        .as_ref()
        .and_then(|s| s.get("required"))
        .and_then(Json::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    CollectionInfo {
        id: json.get("id").and_then(Json::as_u64).unwrap_or_default(),
        name: json
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
        specs,
        required_fields,
    }
}
