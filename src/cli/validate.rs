use super::TextOrJson as Format;
use super::exit;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The recipe (YAML or TOML); default `./synup.yaml`.
    recipe: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub(super) format: Format,
}

pub(super) fn run(args: Args) -> i32 {
    let Some(path) = super::require_recipe(args.recipe, "validate") else {
        return exit::ERROR;
    };
    let Some((_, resolved)) = super::load_recipe(&path) else {
        return exit::ERROR;
    };
    let (mode, parts) = match &resolved.mode {
        synup::recipe::resolve::SourceMode::Single { rules, .. } => ("single", rules.len()),
        synup::recipe::resolve::SourceMode::Multi { assets } => ("multi", assets.len()),
    };
    match args.format {
        Format::Json => {
            let mut doc = serde_json::json!({
            "format_version": 1,
            "recipe": path,
            "name": resolved.name,
            "ok": true,
            "specs": resolved.collection.specs.len(),
            "mode": mode,
            "metadata_sources": resolved.metadata.len(),
            "warnings": resolved.warnings.iter().map(|w| serde_json::json!({
                "code": w.code.as_str(),
                "message": w.message,
            })).collect::<Vec<_>>(),
            });
            doc[if mode == "single" {
                "file_rules"
            } else {
                "assets"
            }] = parts.into();
            super::backend::print_json(&doc);
        }
        Format::Text => {
            let mode = match mode {
                "single" => format!("single-path, {parts} file rule(s)"),
                _ => format!("multi-path, {parts} asset(s)"),
            };
            crate::console::out(&format!(
                "{path}: ok ({} spec(s), {mode}, {} metadata source(s))\n",
                resolved.collection.specs.len(),
                resolved.metadata.len()
            ));
            for w in &resolved.warnings {
                crate::console::note(&format!("warning[{}]: {}", w.code.as_str(), w.message));
            }
        }
    }
    exit::OK
}
