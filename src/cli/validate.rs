use super::exit;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The recipe (YAML or TOML).
    recipe: String,
}

pub(super) fn run(args: Args) -> i32 {
    let Some((_, resolved)) = super::load_recipe(&args.recipe) else {
        return exit::ERROR;
    };
    let mode = match &resolved.mode {
        synup::recipe::resolve::SourceMode::Single { rules, .. } => {
            format!("single-path, {} file rule(s)", rules.len())
        }
        synup::recipe::resolve::SourceMode::Multi { assets } => {
            format!("multi-path, {} asset(s)", assets.len())
        }
    };
    crate::console::out(&format!(
        "{}: ok ({} spec(s), {mode}, {} metadata source(s))\n",
        args.recipe,
        resolved.collection.specs.len(),
        resolved.metadata.len()
    ));
    for w in &resolved.warnings {
        crate::console::note(&format!("warning[{}]: {}", w.code.as_str(), w.message));
    }
    exit::OK
}
