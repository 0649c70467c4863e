//! Command-line interface: clap types and one small file per command.

mod apply;
mod backend;
mod doctor;
mod explore;
mod graph;
mod init;
mod login;
mod plan;
mod ray;
mod schema;
mod serve;
mod shell;
mod status;
mod validate;

use clap::{Parser, Subcommand};
use synup::spill::{MemoryBudget, SpillArea};

impl MemoryArg {
    /// Plan options with this budget.
    pub(crate) fn options(&self) -> synup::plan::PlanOptions {
        synup::plan::PlanOptions {
            memory: self.budget,
            ..Default::default()
        }
    }
}

/// `--format` for commands whose output is text for people or JSON for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TextOrJson {
    Text,
    Json,
}

/// Exit codes (SPEC 3).
pub(crate) mod exit {
    pub(crate) const OK: i32 = 0;
    pub(crate) const ERROR: i32 = 1;
    pub(crate) const CHANGES: i32 = 2;
    pub(crate) const INVALID_UNITS: i32 = 3;
    pub(crate) const UNITS_FAILED: i32 = 4;
}

#[derive(Debug, Parser)]
#[command(name = "synup", version, about = "Declarative, resumable uploads into Synapse data collections", long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

/// Flags every command takes, before or after its name (SPEC 3).
#[derive(Debug, clap::Args)]
struct GlobalArgs {
    /// More logs on stderr: -v debug, -vv trace (`SYNUP_LOG` takes a filter instead).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No progress bars or notes; errors and warnings only (`serve`: no request log).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Colour: `auto` on a terminal unless `NO_COLOR` is set (`CLICOLOR_FORCE` forces it).
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value = "auto",
        global = true
    )]
    color: crate::console::settings::ColorWhen,
    /// Append logs to this file instead of stderr (at debug level unless -v or
    /// `SYNUP_LOG` say otherwise).
    #[arg(long, value_name = "FILE", global = true)]
    log_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask what to upload where, and write a recipe (a wizard on a terminal; flags otherwise).
    Init(init::Args),
    /// Check a recipe and the collection and schema files it names (no source access).
    Validate(validate::Args),
    /// Dry run: what apply would do, validated and deterministic; nothing is uploaded.
    Plan(plan::Args),
    /// Execute a recipe or a saved plan: upload files, register units; resumable.
    Apply(apply::Args),
    /// Show or stop the Ray jobs of a sharded apply.
    Jobs(ray::JobsArgs),
    /// What has been applied for a recipe, and when.
    Status(status::Args),
    /// The compiled stage graph of a recipe.
    Graph(graph::Args),
    /// Print the recipe JSON Schema.
    Schema,
    /// What is in a folder: extensions, depths, detected layout, sample units, suggested rules.
    Explore(explore::Args),
    /// A Synapse-compatible API over a local catalog, for rehearsals and tests.
    Serve(serve::Args),
    /// Check the Synapse config file, host, token and storage.
    Doctor(doctor::DoctorArgs),
    /// Save a host and access token to ~/.synapse/config.json (mode 0600).
    Login(login::LoginArgs),
    /// List a Synapse backend's data collections, or show one.
    Collections(backend::ListArgs),
    /// Show the default internal storage, or one by id.
    Storages(backend::ListArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(shell::CompletionsArgs),
    /// Write man pages generated from these commands into a folder.
    Man(shell::ManArgs),
}

impl Command {
    /// `--format json`: then errors are JSON too (SPEC 3).
    fn wants_json(&self) -> bool {
        let json = TextOrJson::Json;
        match self {
            Command::Plan(a) => a.format == plan::Format::Json,
            Command::Apply(a) => a.format == json || report_to_stdout(a.report.as_deref()),
            Command::Validate(a) => a.format == json,
            Command::Status(a) => a.format == json,
            Command::Jobs(a) => a.format == json,
            Command::Explore(a) => a.format == json,
            Command::Doctor(a) => a.format == json,
            Command::Collections(a) | Command::Storages(a) => a.conn.format == json,
            Command::Init(_)
            | Command::Graph(_)
            | Command::Schema
            | Command::Serve(_)
            | Command::Login(_)
            | Command::Completions(_)
            | Command::Man(_) => false,
        }
    }
}

pub(crate) fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::ERROR
            } else {
                exit::OK
            };
        }
    };
    let g = &cli.global;
    crate::console::settings::init(g.color, g.quiet);
    crate::console::install_error_hook();
    if let Err(e) = crate::console::log::init(g.verbose, g.log_file.as_deref()) {
        crate::console::error(&e);
        return exit::ERROR;
    }
    if cli.command.wants_json() {
        crate::console::settings::set_json_errors();
    }
    match cli.command {
        Command::Init(a) => init::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Graph(a) => graph::run(a),
        Command::Apply(a) => apply::run(a),
        Command::Status(a) => status::run(a),
        Command::Jobs(a) => ray::jobs(a),
        Command::Schema => schema::run(),
        Command::Explore(a) => explore::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Login(a) => login::run(a),
        Command::Collections(a) => backend::collections(a),
        Command::Storages(a) => backend::storages(a),
        Command::Completions(a) => shell::completions(a),
        Command::Man(a) => shell::man(a),
    }
}

/// Loads and resolves a recipe, reporting every problem; `None` means exit 1.
pub(crate) fn load_recipe(
    path: &str,
) -> Option<(synup::recipe::LoadedRecipe, synup::recipe::ResolvedRecipe)> {
    let loaded = match synup::recipe::load(path) {
        Ok(l) => l,
        Err(e) => {
            crate::console::report(e);
            return None;
        }
    };
    match synup::recipe::resolve::resolve(&loaded) {
        Ok(r) => Some((loaded, r)),
        Err(errors) => {
            crate::console::report(loaded.errors(errors));
            None
        }
    }
}

/// The recipe argument; without one, `./synup.yaml` (or `.yml`, `.toml`)
/// when it exists, with or without a terminal (SPEC 3); else on a terminal
/// `plan` and `apply` offer the wizard. `None`: exit 1, the reason shown.
pub(crate) fn require_recipe(arg: Option<String>, command: &str) -> Option<String> {
    if arg.is_some() {
        return arg;
    }
    if let Some(name) = DEFAULT_RECIPES
        .into_iter()
        .find(|n| std::path::Path::new(n).is_file())
    {
        if crate::console::progress_wanted() {
            crate::console::note(&format!("using {name}"));
        }
        return Some(name.to_owned());
    }
    if matches!(command, "plan" | "apply") && init::on_terminal() {
        return init::create_recipe(command);
    }
    crate::console::error(&format!(
        "missing argument RECIPE: `synup {command}` needs a recipe file and there is no ./synup.yaml here, e.g. `synup {command} pipelines/01-nested-folders.yaml`"
    ));
    None
}

/// What `plan`, `apply`, `status`, `graph` and `validate` read without a RECIPE.
const DEFAULT_RECIPES: [&str; 3] = ["synup.yaml", "synup.yml", "synup.toml"];

pub(crate) use synup::prepare::Prepared;

/// Opens a session to a recipe's synapse backend; `None` means exit 1.
pub(crate) fn connect(
    target: &synup::recipe::model::TargetConfig,
    upload: &synup::recipe::model::UploadConfig,
) -> Option<synup::target::synapse::Session> {
    synup::prepare::connect(target, upload)
        .map_err(crate::console::report)
        .ok()
}

/// Writes an end report (secrets masked) atomically; the error is for
/// people. `-` is stdout, where the command has already put it (see
/// [`report_to_stdout`]).
pub(crate) fn write_report(path: &str, json: &str) -> Result<(), String> {
    if path == "-" {
        return Ok(());
    }
    synup::fs_write::write(
        std::path::Path::new(path),
        synup::fs_write::Access::Shared,
        synup::secrets::mask(json).as_bytes(),
    )
    .map_err(|e| format!("cannot write report: {e}"))
}

/// `--report -`: the JSON report is stdout, as with `--format json`.
pub(crate) fn report_to_stdout(report: Option<&str>) -> bool {
    report == Some("-")
}

/// Loads a recipe and resolves it against its target (see
/// [`synup::prepare`]); on a terminal, what the recipe leaves open is asked.
/// `None` means exit 1, the reason shown.
pub(crate) fn prepare_recipe(path: &str) -> Option<Prepared> {
    let asker = init::TerminalGaps;
    let gaps: Option<&dyn synup::prepare::Gaps> = init::on_terminal().then_some(&asker as _);
    match synup::prepare::prepare(path, gaps) {
        Ok(p) => Some(p),
        Err(synup::prepare::PrepareError::Stopped) => None,
        Err(e) => {
            crate::console::report(e);
            None
        }
    }
}

/// `--memory`: what planning may hold before it sorts on disk.
#[derive(Debug, clap::Args)]
pub(crate) struct MemoryArg {
    /// Memory for what grows with the dataset (units, listings, joins); past
    /// it, sorts spill to `.synup/spill/`. The plan does not depend on it.
    #[arg(long = "memory", value_name = "SIZE", default_value = "512MiB", value_parser = MemoryBudget::parse)]
    pub budget: MemoryBudget,
}

/// Plans a prepared recipe against its target's current state; `None` means exit 1.
/// With `progress` (a terminal), remote listings show a spinner with the count so far.
pub(crate) fn plan_recipe(
    p: &Prepared,
    progress: bool,
    mut options: synup::plan::PlanOptions,
) -> Option<synup::plan::PlanOutcome> {
    let (loaded, resolved) = (&p.loaded, &p.resolved);
    let listing = progress.then(crate::console::progress::ListingProgress::new);
    let hashing =
        progress.then(|| std::sync::Arc::new(crate::console::progress::HashingBar::new()));
    if let Some(h) = &hashing {
        options.hashing_progress = Some(h.clone());
    }
    if let Some(l) = &listing {
        let l = l.clone();
        options.listing_progress = Some(std::sync::Arc::new(move |root: &str, n: u64| {
            l.listed(root, n)
        }));
    }
    let journal = synup::apply::journal::path_for(
        &loaded.state_dir(),
        &resolved.name,
        &resolved.data_collection,
    );
    let target = match synup::apply::target::open(loaded, resolved, p.session.as_ref(), journal) {
        Ok(t) => t,
        Err(e) => {
            crate::console::report(e);
            return None;
        }
    };
    let view = match target.view(&SpillArea::under(&loaded.state_dir(), options.memory)) {
        Ok(v) => v,
        Err(e) => {
            crate::console::report(e);
            return None;
        }
    };
    let result = synup::plan::build_plan(loaded, resolved, view.as_ref(), &options);
    if let Some(l) = &listing {
        l.finish();
    }
    if let Some(h) = &hashing {
        h.finish();
    }
    if let Ok(o) = &result {
        for (root, r) in &o.stats.listings_resumed {
            crate::console::note(&format!(
                "{root}: went on with a listing begun {} min ago and interrupted ({} objects taken from its journal in .synup/cache; a finished listing is never reused)",
                r.age_secs / 60,
                r.objects
            ));
        }
    }
    match result {
        Ok(o) => Some(o),
        Err(e) => {
            crate::console::report(e);
            None
        }
    }
}
