//! Command-line interface: clap types and one small file per command.

mod apply;
mod explore;
mod graph;
mod plan;
mod schema;
mod serve;
mod status;
mod validate;

use clap::{Parser, Subcommand};

/// `--format` for commands whose output is text for people or JSON for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextOrJson {
    Text,
    Json,
}

/// Exit codes (SPEC 3).
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const CHANGES: i32 = 2;
    pub const INVALID_UNITS: i32 = 3;
    pub const UNITS_FAILED: i32 = 4;
}

#[derive(Debug, Parser)]
#[command(name = "synup", version, about = "Declarative, resumable uploads into Synapse data collections", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a recipe and the collection and schema files it names (no source access).
    Validate(validate::Args),
    /// Dry run: what apply would do, validated and deterministic; nothing is uploaded.
    Plan(plan::Args),
    /// Execute a recipe or a saved plan: upload files, register units; resumable.
    Apply(apply::Args),
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
}

pub fn run() -> i32 {
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
    match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Graph(a) => graph::run(a),
        Command::Apply(a) => apply::run(a),
        Command::Status(a) => status::run(a),
        Command::Schema => schema::run(),
        Command::Explore(a) => explore::run(a),
        Command::Serve(a) => serve::run(a),
    }
}

/// Loads and resolves a recipe, reporting every problem; `None` means exit 1.
pub fn load_recipe(
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

/// The recipe argument, or exit 1 naming it.
pub fn require_recipe(arg: Option<String>, command: &str) -> Option<String> {
    if arg.is_none() {
        crate::console::error(&format!(
            "missing argument RECIPE: `synup {command}` needs a recipe file, e.g. `synup {command} pipelines/01-nested-folders.yaml`"
        ));
    }
    arg
}

/// Plans a resolved recipe against its target's current state; `None` means exit 1.
pub fn plan_recipe(
    loaded: &synup::recipe::LoadedRecipe,
    resolved: &synup::recipe::ResolvedRecipe,
) -> Option<synup::plan::PlanOutcome> {
    let view = match synup::target::local::LocalView::open(
        &resolved.target_path,
        &resolved.data_collection,
        &resolved.collection.specs,
    ) {
        Ok(v) => v,
        Err(e) => {
            crate::console::report(e);
            return None;
        }
    };
    match synup::plan::build_plan(
        loaded,
        resolved,
        &view,
        &synup::plan::PlanOptions::default(),
    ) {
        Ok(o) => Some(o),
        Err(e) => {
            crate::console::report(e);
            None
        }
    }
}
