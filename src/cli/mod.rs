//! Command-line interface: clap types and one small file per command.

mod explore;
mod graph;
mod plan;
mod schema;
mod validate;

use clap::{Parser, Subcommand};

/// Exit codes (SPEC 3).
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const CHANGES: i32 = 2;
    pub const INVALID_UNITS: i32 = 3;
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
    /// The compiled stage graph of a recipe.
    Graph(graph::Args),
    /// Print the recipe JSON Schema.
    Schema,
    /// What is in a folder: extensions, depths, detected layout, sample units, suggested rules.
    Explore(explore::Args),
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
        Command::Schema => schema::run(),
        Command::Explore(a) => explore::run(a),
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
