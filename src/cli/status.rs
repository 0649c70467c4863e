use std::fmt::Write;

use synup::apply::status::{LocalStatus, Status, SynapseStatus};

use super::TextOrJson as Format;
use super::exit;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    recipe: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub(super) format: Format,
}

pub(super) fn run(args: Args) -> i32 {
    let Some(path) = super::require_recipe(args.recipe, "status") else {
        return exit::ERROR;
    };
    let Some((loaded, resolved)) = super::load_recipe(&path) else {
        return exit::ERROR;
    };
    let session = match loaded.recipe.target.backend {
        synup::recipe::model::Backend::Synapse => {
            match super::connect(&loaded.recipe.target, &loaded.recipe.upload) {
                Some(s) => Some(s),
                None => return exit::ERROR,
            }
        }
        synup::recipe::model::Backend::Local => None,
    };
    let status = match synup::apply::status::status(&loaded, &resolved, session.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            crate::console::report(e);
            return exit::ERROR;
        }
    };
    match args.format {
        Format::Json => super::backend::print_json(&status.to_json()),
        Format::Text => crate::console::out(&match &status {
            Status::Local(s) => render_local(s),
            Status::Synapse(s) => render_synapse(s),
        }),
    }
    exit::OK
}

fn render_synapse(s: &SynapseStatus) -> String {
    format!(
        "{} → synapse collection {} on {}\nUnits in the collection: {}\nThis recipe's journal ({}): {} unit(s) and {} file(s) applied.\n",
        s.recipe,
        s.data_collection,
        s.host,
        s.units,
        s.journal,
        s.journaled_units,
        s.journaled_files,
    )
}

fn render_local(s: &LocalStatus) -> String {
    let mut out = format!(
        "{} → local collection \"{}\" ({})\n",
        s.recipe, s.data_collection, s.target
    );
    let Some(c) = &s.contents else {
        out.push_str("Nothing applied yet: the collection does not exist in the target.\n");
        return out;
    };
    let _ = writeln!(out, "Units in the collection: {}", c.units);
    if c.missing_files > 0 {
        let _ = writeln!(
            out,
            "WARNING: {} file(s) referenced by units are missing from the store",
            c.missing_files
        );
    }
    if c.applies.is_empty() {
        out.push_str("No apply of this recipe is recorded.\n");
        return out;
    }
    out.push_str("Applies of this recipe (newest first):\n");
    for a in &c.applies {
        let _ = writeln!(
            out,
            "  {}  {:<9}  {} created, {} unchanged, {} failed; {} file(s), {} bytes  (plan {})",
            a.started_at,
            a.status,
            a.created_units,
            a.skipped_units,
            a.failed_units,
            a.uploaded_files,
            a.uploaded_bytes,
            a.plan_hash.chars().take(19).collect::<String>(),
        );
        if a.status == "interrupted" {
            out.push_str("    interrupted: the process ended without finishing (killed or crashed); `synup apply` again finishes the work\n");
        }
    }
    out
}
