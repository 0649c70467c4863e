//! `synup init [DIR]`: asks, in the order SPEC section 6 gives, for what a
//! recipe needs, checking every answer at once; or, without a terminal, takes
//! every answer as a flag. Ends by writing the recipe (atomically: an
//! interrupted wizard leaves nothing) and showing its plan.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use inquire::validator::Validation;
use inquire::{Confirm, InquireError, Password, Select, Text};
use serde_json::Value as Json;
use synup::init::{
    Answers, MetadataAnswer, SourceAnswer, SpecDraft, TargetAnswer, parse_static, parse_types,
    recipe_name, render, specs_from_extensions,
};

use super::exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TargetKind {
    Local,
    Synapse,
}

#[derive(Debug, clap::Args)]
pub struct Args {
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
enum Stop {
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

type Step<T> = Result<T, Stop>;

fn fail<T>(message: &str) -> Step<T> {
    crate::console::error(message);
    Err(Stop::Failed)
}

pub fn on_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

pub fn run(args: Args) -> i32 {
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
            let saved = synup::synapse::config::resolve(None, None).is_ok();
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
        .map(|c| c.specs.iter().map(|s| s.0.clone()).collect())
        .unwrap_or_default();
    let source = ask.source(args, &spec_names)?;

    // A new local collection takes its specs from what the source holds.
    let target = match (&session, collection.as_ref()) {
        (Some(s), Some(c)) => TargetAnswer::Synapse {
            host: args
                .host
                .clone()
                .filter(|_| s.client.host() != default_host()),
            collection: c.id,
            collection_name: c.name.clone(),
            storage,
        },
        _ => {
            let specs = ask.local_specs(&source)?;
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
    };
    // Pin the layout explore detects (it treats each extension as a spec,
    // which is what a folder of units looks like before rules exist).
    let mut detected = None;
    if let SourceAnswer::Single {
        path,
        group_key_regex: regex @ None,
        ..
    } = &mut answers.source
        && let Ok(e) = explore(dir, path)
        && let Some(layout) = e.layout
    {
        detected = layout.pattern;
        *regex = layout.group_key_regex;
    }

    // 5. The detected layout and a preview, until the user accepts it.
    let draft = Draft::new(dir)?;
    if interactive {
        ask.layout(&mut answers, &draft, detected)?;
    }

    // 6. Metadata.
    if interactive && args.metadata.is_empty() {
        ask.metadata(&mut answers, &draft)?;
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
    if let Err(e) = write_atomically(recipe_path, &text) {
        return fail(&format!("cannot write {}: {e}", recipe_path.display()));
    }
    drop(draft);
    crate::console::note(&format!("wrote {}", recipe_path.display()));
    let shown = recipe_path.display().to_string();
    let Some(prepared) = super::prepare_recipe(&shown) else {
        return Ok(exit::ERROR);
    };
    let Some(outcome) = super::plan_recipe(&prepared, false) else {
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
    synup::synapse::config::resolve(None, None)
        .map(|c| c.host)
        .unwrap_or_default()
}

/// A collection as the wizard needs it.
struct CollectionInfo {
    id: u64,
    name: String,
    /// (name, extensions, required)
    specs: Vec<(String, Vec<String>, bool)>,
    required_fields: Vec<String>,
}

fn collection_info(json: &Json) -> CollectionInfo {
    let specs = json
        .get("file_specifications")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .map(|s| {
                    let exts = s
                        .get("extensions")
                        .and_then(Json::as_array)
                        .map(|e| {
                            e.iter()
                                .filter_map(Json::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default();
                    (
                        s.get("name")
                            .and_then(Json::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        exts,
                        s.get("is_required")
                            .and_then(Json::as_bool)
                            .unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let required_fields = json
        .pointer("/meta/data_unit_meta_schema/required")
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

/// A scratch recipe beside the real one, for previews; removed when dropped
/// (also when the wizard is interrupted).
struct Draft {
    file: tempfile::NamedTempFile,
}

impl Draft {
    fn new(dir: &Path) -> Step<Self> {
        match tempfile::Builder::new()
            .prefix(".synup-init-")
            .suffix(".yaml")
            .tempfile_in(dir)
        {
            Ok(file) => Ok(Self { file }),
            Err(e) => fail(&format!("cannot write in {}: {e}", dir.display())),
        }
    }

    /// Plans `answers` as they stand; errors are printed, `None` returned.
    fn plan(&self, answers: &Answers) -> Option<synup::plan::model::Plan> {
        std::fs::write(self.file.path(), render(answers)).ok()?;
        let prepared = super::prepare_recipe(&self.file.path().display().to_string())?;
        super::plan_recipe(&prepared, false).map(|o| o.plan)
    }
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".synup-init-")
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(|_| ()).map_err(|e| e.error)
}

/// `excel:FILE[:KEY]`, `csv:FILE[:KEY]`, `filename:REGEX`, `sidecar:TEMPLATE`,
/// `static:K=V,…`, `none`.
fn metadata_flag(s: &str) -> Result<Option<MetadataAnswer>, String> {
    if s == "none" {
        return Ok(None);
    }
    let (kind, rest) = s
        .split_once(':')
        .ok_or("expected excel:FILE, csv:FILE, filename:REGEX, sidecar:TEMPLATE, static:FIELD=VALUE or none")?;
    Ok(Some(match kind {
        "excel" | "csv" => {
            let (file, key) = match rest.rsplit_once(':') {
                Some((f, k)) if !k.contains('.') && !k.contains('/') => (f, Some(k.to_owned())),
                _ => (rest, None),
            };
            MetadataAnswer::Sheet {
                file: file.to_owned(),
                is_csv: kind == "csv",
                key_column: key,
                columns: Vec::new(),
            }
        }
        "filename" => {
            check_filename_regex(rest)?;
            MetadataAnswer::Filename {
                regex: rest.to_owned(),
                types: Vec::new(),
            }
        }
        "sidecar" => MetadataAnswer::Sidecar {
            template: rest.to_owned(),
        },
        "static" => MetadataAnswer::Static(parse_static(rest)?),
        other => return Err(format!("`{other}` is not a metadata kind")),
    }))
}

fn check_filename_regex(re: &str) -> Result<regex::Regex, String> {
    let r = regex::Regex::new(re).map_err(|e| format!("not a regex: {e}"))?;
    if r.capture_names().flatten().next().is_none() {
        return Err("the regex names no field: use (?P<field>…)".into());
    }
    Ok(r)
}

/// `Ok(Valid)` or `Ok(Invalid(reason))`, as inquire's validators return.
fn verdict(r: Result<(), String>) -> Result<Validation, inquire::CustomUserError> {
    Ok(match r {
        Ok(()) => Validation::Valid,
        Err(why) => Validation::Invalid(why.into()),
    })
}

struct Asker<'a> {
    interactive: bool,
    dir: &'a Path,
}

impl Asker<'_> {
    fn session(&self, host_flag: Option<&str>) -> Step<synup::synapse::Session> {
        use synup::synapse::config::{self, Origin, Secret};
        let saved = config::resolve(host_flag.map(|h| (h, Origin::Flag)), None);
        let creds = match saved {
            Ok(c) => {
                crate::console::note(&format!("using the saved login for {}", c.host));
                c
            }
            Err(_) if !self.interactive => {
                return fail(
                    "no Synapse login: run `synup login`, or set SYNAPSE_HOST and SYNAPSE_ACCESS_TOKEN",
                );
            }
            Err(_) => {
                crate::console::note("no saved Synapse login (synup login); enter one:");
                let host = match host_flag {
                    Some(h) => h.to_owned(),
                    None => Text::new("Synapse host:")
                        .with_placeholder("https://api.synapse.sh")
                        .with_validator(|h: &str| {
                            verdict(if h.starts_with("http://") || h.starts_with("https://") {
                                Ok(())
                            } else {
                                Err("a URL starting with http:// or https://".into())
                            })
                        })
                        .prompt()?,
                };
                let token = Password::new("Access token:")
                    .without_confirmation()
                    .prompt()?;
                let token = Secret::new(token);
                if Confirm::new(
                    "Save this login to ~/.synapse/config.json (as `synup login` does)?",
                )
                .with_default(true)
                .prompt()?
                {
                    match config::write_login(&host, &token) {
                        Ok(p) => crate::console::note(&format!("saved to {}", p.display())),
                        Err(e) => crate::console::report(e),
                    }
                }
                config::Credentials {
                    host,
                    host_origin: Origin::Flag,
                    token,
                    token_origin: Origin::Flag,
                }
            }
        };
        match synup::synapse::Session::new(creds, 4, 1) {
            Ok(s) => Ok(s),
            Err(e) => fail(&format!("cannot start the network runtime: {e}")),
        }
    }

    fn remote_collection(
        &self,
        s: &synup::synapse::Session,
        flag: Option<&str>,
    ) -> Step<CollectionInfo> {
        let id = match flag {
            Some(f) => match f.parse::<u64>() {
                Ok(id) => id,
                Err(_) => {
                    return fail(&format!(
                        "--data-collection {f}: a Synapse collection is named by its id"
                    ));
                }
            },
            None => pick_collection(s)?,
        };
        s.block_on(s.client.collection(id))
            .map(|j| collection_info(&j))
            .or_else(|e| fail(&e.to_string()))
    }

    fn local_collection(&self, flag: Option<&str>) -> Step<String> {
        if let Some(f) = flag {
            return Ok(f.to_owned());
        }
        let existing = local_collections(&self.dir.join(".synup/local"));
        let default = recipe_name(
            &std::fs::canonicalize(self.dir)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "upload".into()),
        );
        if !existing.is_empty() {
            let mut options = existing.clone();
            const NEW: &str = "a new collection …";
            options.push(NEW.into());
            let pick =
                Select::new("Which data collection in the local catalog?", options).prompt()?;
            if pick != NEW {
                return Ok(pick);
            }
        }
        Ok(Text::new("Name of the new local data collection:")
            .with_default(&default)
            .with_validator(|v: &str| {
                verdict(if !v.is_empty() && recipe_name(v) == v {
                    Ok(())
                } else {
                    Err("letters, digits, `.`, `_` and `-` only".into())
                })
            })
            .prompt()?)
    }

    fn storage(&self, s: &synup::synapse::Session, flag: Option<&str>) -> Step<Option<u64>> {
        let check = |id: u64| {
            s.block_on(s.client.storage(id))
                .map(|_| ())
                .map_err(|e| format!("storage {id}: {e}"))
        };
        match flag {
            Some("default") => return Ok(None),
            Some(f) => {
                let Ok(id) = f.parse::<u64>() else {
                    return fail(&format!("--storage {f}: a storage id, or `default`"));
                };
                return check(id).map(|()| Some(id)).or_else(|e| fail(&e));
            }
            None => {}
        }
        let default = s.block_on(s.client.default_storage()).ok().flatten();
        if let Some(d) = &default {
            let label = format!(
                "{} {} ({})",
                d.get("id").map(Json::to_string).unwrap_or_default(),
                d.get("name").and_then(Json::as_str).unwrap_or_default(),
                d.get("provider").and_then(Json::as_str).unwrap_or_default()
            );
            if Confirm::new(&format!("Use the default storage, {label}?"))
                .with_default(true)
                .prompt()?
            {
                return Ok(None);
            }
        }
        let id = Text::new("Storage id:")
            .with_validator(move |v: &str| {
                verdict(match v.trim().parse::<u64>() {
                    Ok(id) => check(id),
                    Err(_) => Err("a number".into()),
                })
            })
            .prompt()?;
        Ok(id.trim().parse().ok())
    }

    fn source(&self, args: &Args, spec_names: &[String]) -> Step<SourceAnswer> {
        if let Some(s) = &args.source {
            return match check_path(self.dir, s) {
                Ok(()) => Ok(single(s)),
                Err(e) => fail(&format!("--source {s}: {e}")),
            };
        }
        if !args.assets.is_empty() {
            let mut assets = Vec::new();
            for a in &args.assets {
                let Some((spec, path)) = a.split_once('=') else {
                    return fail(&format!("--asset {a}: expected SPEC=PATH"));
                };
                if let Err(e) = check_path(self.dir, path) {
                    return fail(&format!("--asset {a}: {e}"));
                }
                assets.push((spec.to_owned(), path.to_owned()));
            }
            return Ok(SourceAnswer::Multi(assets));
        }
        let modes = vec![
            "single path: one folder holds every file",
            "multi-path: one folder per file specification",
        ];
        let multi = Select::new("How are the files laid out?", modes)
            .prompt()?
            .starts_with("multi");
        let dir = self.dir.to_path_buf();
        let path_prompt = |message: &str| -> Step<String> {
            let dir = dir.clone();
            Ok(Text::new(message)
                .with_help_message(
                    "a folder (relative to the recipe), or s3://, gs://, azblob://, sftp:// URL",
                )
                .with_validator(move |p: &str| verdict(check_path(&dir, p.trim())))
                .prompt()?
                .trim()
                .to_owned())
        };
        if !multi {
            return Ok(single(&path_prompt("Source path:")?));
        }
        let mut assets = Vec::new();
        if spec_names.is_empty() {
            loop {
                let spec = Text::new("Spec name (empty when done):").prompt()?;
                if spec.trim().is_empty() {
                    if assets.is_empty() {
                        continue;
                    }
                    break;
                }
                let path = path_prompt(&format!("Folder for {}:", spec.trim()))?;
                assets.push((spec.trim().to_owned(), path));
            }
        } else {
            for spec in spec_names {
                assets.push((spec.clone(), path_prompt(&format!("Folder for {spec}:"))?));
            }
        }
        Ok(SourceAnswer::Multi(assets))
    }

    /// Specs for a new local collection, from what the source holds.
    fn local_specs(&self, source: &SourceAnswer) -> Step<Vec<SpecDraft>> {
        let specs = match source {
            SourceAnswer::Single { path, .. } => {
                let e = match explore(self.dir, path) {
                    Ok(e) => e,
                    Err(e) => return fail(&format!("cannot explore `{path}`: {e}")),
                };
                let units = e
                    .layout
                    .as_ref()
                    .map_or(e.first_level_folders, |_| e.first_level_folders.max(1));
                specs_from_extensions(&e.extensions, units)
            }
            SourceAnswer::Multi(assets) => {
                let mut out = Vec::new();
                for (i, (spec, path)) in assets.iter().enumerate() {
                    let e = match explore(self.dir, path) {
                        Ok(e) => e,
                        Err(e) => return fail(&format!("cannot explore `{path}`: {e}")),
                    };
                    let exts: Vec<String> = e
                        .extensions
                        .keys()
                        .filter(|x| !x.is_empty())
                        .map(|x| format!(".{x}"))
                        .collect();
                    let top = e
                        .extensions
                        .iter()
                        .max_by_key(|(_, n)| **n)
                        .map(|(x, _)| synup::init::file_type_of(x))
                        .unwrap_or("document");
                    out.push(SpecDraft {
                        name: spec.clone(),
                        file_type: top.to_owned(),
                        extensions: exts,
                        is_required: i == 0,
                        is_primary: i == 0,
                    });
                }
                out
            }
        };
        if specs.is_empty() {
            return fail(
                "the source holds no files with an extension to make file specifications from",
            );
        }
        if self.interactive {
            eprintln!("File specifications for the new collection:");
            for s in &specs {
                eprintln!(
                    "  {:<12} {:<9} {}{}{}",
                    s.name,
                    s.file_type,
                    s.extensions.join(" "),
                    if s.is_required { "  required" } else { "" },
                    if s.is_primary { "  primary" } else { "" }
                );
            }
        }
        Ok(specs)
    }

    /// Shows the detected layout and sample units; lets the user pin a regex
    /// and rules until the preview is right.
    fn layout(&self, answers: &mut Answers, draft: &Draft, mut detected: Option<u8>) -> Step<()> {
        loop {
            let Some(plan) = draft.plan(answers) else {
                if !Confirm::new("That did not plan. Adjust the layout?")
                    .with_default(true)
                    .prompt()?
                {
                    return Err(Stop::Failed);
                }
                self.adjust_layout(answers)?;
                detected = None;
                continue;
            };
            show_preview(&plan, detected);
            if Confirm::new("Use this layout?")
                .with_default(true)
                .prompt()?
            {
                if let SourceAnswer::Single {
                    group_key_regex, ..
                } = &mut answers.source
                    && group_key_regex.is_none()
                {
                    *group_key_regex = plan.layout.group_key_regex.clone();
                }
                return Ok(());
            }
            self.adjust_layout(answers)?;
            detected = None;
        }
    }

    fn adjust_layout(&self, answers: &mut Answers) -> Step<()> {
        let SourceAnswer::Single {
            file_rules,
            group_key_regex,
            ..
        } = &mut answers.source
        else {
            crate::console::note(
                "multi-path units group by file name stem; edit the recipe to change that",
            );
            return Err(Stop::Failed);
        };
        let re = Text::new("group_key_regex (a (?P<group_key>…) capture):")
            .with_initial_value(
                group_key_regex
                    .as_deref()
                    .unwrap_or("^(?P<group_key>[^/]+)/"),
            )
            .with_validator(|v: &str| {
                verdict(match regex::Regex::new(v) {
                    Ok(r) if r.capture_names().flatten().any(|n| n == "group_key") => Ok(()),
                    Ok(_) => Err("the regex needs a (?P<group_key>…) capture".into()),
                    Err(e) => Err(format!("not a regex: {e}")),
                })
            })
            .prompt()?;
        *group_key_regex = Some(re);
        let rules =
            Text::new("file_rules as PATTERN=SPEC, separated by `;` (empty: by extension):")
                .with_validator(|v: &str| verdict(parse_rules(v).map(|_| ())))
                .prompt()?;
        *file_rules = parse_rules(&rules).unwrap_or_default();
        Ok(())
    }

    fn metadata(&self, answers: &mut Answers, draft: &Draft) -> Step<()> {
        if !answers.required_fields.is_empty() {
            eprintln!(
                "The collection's meta schema requires: {}",
                answers.required_fields.join(", ")
            );
        }
        const SHEET: &str = "an Excel or CSV file";
        const FILENAME: &str = "a pattern in the file names";
        const SIDECAR: &str = "sidecar files beside the data (JSON or YAML)";
        const FIXED: &str = "fixed values for every unit";
        const DONE: &str = "done";
        loop {
            let first = answers.metadata.is_empty();
            let options = vec![SHEET, FILENAME, SIDECAR, FIXED, DONE];
            let message = if first {
                "Where does unit metadata come from?"
            } else {
                "Another metadata source?"
            };
            let pick = Select::new(message, options)
                .with_starting_cursor(if first { 0 } else { 4 })
                .prompt()?;
            let answer = match pick {
                SHEET => self.sheet()?,
                FILENAME => self.filename(answers, draft)?,
                SIDECAR => MetadataAnswer::Sidecar {
                    template: Text::new("Sidecar path template:")
                        .with_default("{unit_dir}/meta.json")
                        .with_help_message(
                            "{unit_dir}, {group_key} and {stem} are filled in per unit",
                        )
                        .prompt()?,
                },
                FIXED => MetadataAnswer::Static(
                    parse_static(
                        &Text::new("Values as FIELD=VALUE, separated by commas:")
                            .with_validator(|v: &str| verdict(parse_static(v).map(|_| ())))
                            .prompt()?,
                    )
                    .unwrap_or_default(),
                ),
                _ => return Ok(()),
            };
            answers.metadata.push(answer);
        }
    }

    fn sheet(&self) -> Step<MetadataAnswer> {
        let dir = self.dir.to_path_buf();
        let file = Text::new("Spreadsheet (.xlsx .xlsm .xls .ods .csv), relative to the recipe:")
            .with_validator(move |f: &str| verdict(load_sheet(&dir, f.trim(), None).map(|_| ())))
            .prompt()?
            .trim()
            .to_owned();
        let table = match load_sheet(self.dir, &file, None) {
            Ok(t) => t,
            Err(e) => return fail(&e),
        };
        eprintln!(
            "{}: {} rows; columns: {}",
            file,
            table.rows.len(),
            table.headers.join(", ")
        );
        let key =
            Select::new("Which column holds the unit key?", table.headers.clone()).prompt()?;
        let headers = table.headers.clone();
        let types =
            Text::new("Column types as COLUMN: TYPE, separated by commas (empty: as read):")
                .with_help_message("types: string, integer, number, boolean, date, datetime")
                .with_validator(move |v: &str| {
                    verdict(parse_types(v).and_then(|t| {
                        match t.iter().find(|(c, _)| !headers.contains(c)) {
                            Some((c, _)) => Err(format!("`{c}` is not a column")),
                            None => Ok(()),
                        }
                    }))
                })
                .prompt()?;
        Ok(MetadataAnswer::Sheet {
            is_csv: file.to_ascii_lowercase().ends_with(".csv"),
            file,
            key_column: Some(key),
            columns: parse_types(&types).unwrap_or_default(),
        })
    }

    fn filename(&self, answers: &Answers, draft: &Draft) -> Step<MetadataAnswer> {
        let samples: Vec<String> = draft
            .plan(answers)
            .map(|p| {
                p.units
                    .iter()
                    .take(3)
                    .filter_map(|u| u.files.values().next().map(|f| f.path.clone()))
                    .collect()
            })
            .unwrap_or_default();
        loop {
            let re = Text::new("Regex over the primary file's name, with (?P<field>…) captures:")
                .with_validator(|v: &str| verdict(check_filename_regex(v).map(|_| ())))
                .prompt()?;
            let r = check_filename_regex(&re).map_err(|_| Stop::Failed)?;
            for s in &samples {
                let name = s.rsplit('/').next().unwrap_or(s);
                let got: BTreeMap<&str, &str> = match r.captures(name) {
                    Some(c) => r
                        .capture_names()
                        .flatten()
                        .filter_map(|n| c.name(n).map(|m| (n, m.as_str())))
                        .collect(),
                    None => BTreeMap::new(),
                };
                eprintln!("  {name} → {got:?}");
            }
            if Confirm::new("Use this pattern?")
                .with_default(true)
                .prompt()?
            {
                return Ok(MetadataAnswer::Filename {
                    regex: re,
                    types: Vec::new(),
                });
            }
        }
    }
}

/// Asks which of the backend's data collections to use (or for an id, checked
/// at once); returns its id.
fn pick_collection(s: &synup::synapse::Session) -> Step<u64> {
    let fetch = |id: u64| -> Result<(), String> {
        s.block_on(s.client.collection(id))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let listed = match s.block_on(s.client.collections()) {
        Ok(l) => l,
        Err(e) => {
            return fail(&format!(
                "cannot list data collections on {}: {e}",
                s.client.host()
            ));
        }
    };
    let mut options: Vec<String> = listed
        .iter()
        .map(|c| {
            let info = collection_info(c);
            let specs: Vec<&str> = info.specs.iter().map(|s| s.0.as_str()).collect();
            format!("{}  {}  ({})", info.id, info.name, specs.join(", "))
        })
        .collect();
    const BY_ID: &str = "another id …";
    options.push(BY_ID.into());
    let pick = Select::new("Which data collection?", options).prompt()?;
    if pick != BY_ID {
        return Ok(pick
            .split_whitespace()
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or_default());
    }
    let id = Text::new("Data collection id:")
        .with_validator(move |v: &str| {
            verdict(match v.trim().parse::<u64>() {
                Ok(id) => fetch(id),
                Err(_) => Err("a number".into()),
            })
        })
        .prompt()?;
    Ok(id.trim().parse().unwrap_or_default())
}

/// On a terminal, a synapse recipe without `target.data_collection` gets it
/// asked for this run; `Err` is printed (an interrupt says nothing was changed).
pub fn ask_data_collection(s: &synup::synapse::Session, recipe: &str) -> Result<u64, ()> {
    crate::console::note(&format!(
        "{recipe} names no `target.data_collection`; pick one for this run"
    ));
    match pick_collection(s) {
        Ok(id) => {
            crate::console::note(&format!(
                "add `data_collection: {id}` under `target:` in {recipe} to skip this question"
            ));
            Ok(id)
        }
        Err(Stop::Interrupted) => {
            crate::console::error("interrupted: nothing was changed");
            Err(())
        }
        Err(Stop::Failed) => Err(()),
    }
}

/// On a terminal, `plan`/`apply` without a recipe use `synup.yaml` (or
/// `.yml`/`.toml`) in the current folder, or offer to write one with the wizard.
pub fn find_or_create_recipe(command: &str) -> Option<String> {
    for name in ["synup.yaml", "synup.yml", "synup.toml"] {
        if Path::new(name).is_file() {
            crate::console::note(&format!("using {name}"));
            return Some(name.to_owned());
        }
    }
    let create = Confirm::new(&format!(
        "`synup {command}` needs a recipe and there is none here. Write one now?"
    ))
    .with_default(true)
    .prompt();
    match create {
        Ok(true) => {}
        Ok(false) => {
            crate::console::error(&format!(
                "missing argument RECIPE: `synup {command} RECIPE`, or `synup init` to write one"
            ));
            return None;
        }
        Err(_) => {
            crate::console::error("interrupted: nothing was written");
            return None;
        }
    }
    let args = Args {
        dir: None,
        target: None,
        host: None,
        data_collection: None,
        storage: None,
        source: None,
        assets: Vec::new(),
        metadata: Vec::new(),
        name: None,
        output: "synup.yaml".into(),
        force: false,
    };
    (run(args) == exit::OK).then(|| "synup.yaml".to_owned())
}

fn single(path: &str) -> SourceAnswer {
    SourceAnswer::Single {
        path: path.to_owned(),
        file_rules: Vec::new(),
        group_key_regex: None,
    }
}

/// `a/*.png=image_1; b/*.json=label_1`.
fn parse_rules(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (p, spec) = part
            .rsplit_once('=')
            .ok_or_else(|| format!("`{part}`: expected PATTERN=SPEC"))?;
        globset::Glob::new(p.trim()).map_err(|e| format!("`{p}`: {e}"))?;
        out.push((p.trim().to_owned(), spec.trim().to_owned()));
    }
    Ok(out)
}

/// A local folder (relative to the recipe's folder) that exists, or a remote
/// URL whose scheme synup reads.
fn check_path(dir: &Path, p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("give a path".into());
    }
    if p.contains("://") {
        return synup::source::remote::open(p, &BTreeMap::new())
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let full = dir.join(shellexpand_home(p));
    match std::fs::metadata(&full) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("`{p}` is a file, not a folder")),
        Err(e) => Err(format!("`{p}` cannot be read: {e}")),
    }
}

fn shellexpand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

fn explore(dir: &Path, path: &str) -> Result<synup::explore::Exploration, String> {
    if path.contains("://") {
        synup::explore::explore_remote(path, &BTreeMap::new(), 20_000)
    } else {
        synup::explore::explore(&dir.join(shellexpand_home(path)), path, 20_000)
            .map_err(|e| e.to_string())
    }
}

fn load_sheet(
    dir: &Path,
    file: &str,
    key: Option<&str>,
) -> Result<synup::stages::metadata::sheet::SheetTable, String> {
    use synup::stages::metadata::sheet::{self, SheetOptions};
    if file.is_empty() {
        return Err("give a file".into());
    }
    let path = dir.join(shellexpand_home(file));
    let bytes = std::fs::read(&path).map_err(|e| format!("`{file}` cannot be read: {e}"))?;
    let columns = BTreeMap::new();
    let o = SheetOptions {
        source: file,
        sheet: None,
        header_row: 1,
        key_column: key,
        columns: &columns,
    };
    let table = if file.to_ascii_lowercase().ends_with(".csv") {
        sheet::load_csv(&path, &bytes, &o)
    } else {
        sheet::load_excel(&path, &bytes, &o)
    };
    table.map_err(|e| e.to_string())
}

fn local_collections(target: &Path) -> Vec<String> {
    let Ok(Some(catalog)) = synup::target::local::Catalog::open_existing(target) else {
        return Vec::new();
    };
    let Ok((_, ids)) = catalog.collection_ids(0, 1000) else {
        return Vec::new();
    };
    ids.into_iter()
        .filter_map(|id| catalog.collection_json(id).ok().flatten())
        .filter_map(|j| j.get("name").and_then(Json::as_str).map(str::to_owned))
        .collect()
}

/// The seed's names for its directory patterns.
fn pattern_name(p: u8) -> &'static str {
    match p {
        1 => "one folder per unit",
        2 => "one folder per file type, matched by file name",
        3 => "all files in one folder, matched by file name",
        4 => "nested folders, grouped by the first folder",
        _ => "one folder per spec",
    }
}

fn show_preview(plan: &synup::plan::model::Plan, detected: Option<u8>) {
    let s = &plan.summary;
    let pattern = plan.layout.pattern.or(detected);
    match (pattern, &plan.layout.group_key_regex) {
        (Some(p), Some(re)) => eprintln!(
            "Detected layout: pattern {p} ({}), group_key_regex {re}",
            pattern_name(p)
        ),
        (None, Some(re)) => eprintln!("Layout: group_key_regex {re}"),
        _ => eprintln!("Layout: units by file name stem"),
    }
    eprintln!(
        "{} units ({} invalid), {} unmatched files; for example:",
        s.units, s.invalid, s.unmatched_files
    );
    for u in plan.units.iter().take(3) {
        let files: Vec<String> = u
            .files
            .iter()
            .map(|(spec, f)| format!("{spec}={}", f.path))
            .collect();
        eprintln!("  {}: {}", u.key, files.join(", "));
        for p in u.problems.iter().take(2) {
            eprintln!("    problem: {}", p.message);
        }
    }
}
