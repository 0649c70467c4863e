use synup::target::local::{Catalog, CatalogError};

use super::exit;

use super::TextOrJson as Format;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    recipe: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub(super) fn run(args: Args) -> i32 {
    let Some(path) = super::require_recipe(args.recipe, "status") else {
        return exit::ERROR;
    };
    let Some((loaded, resolved)) = super::load_recipe(&path) else {
        return exit::ERROR;
    };
    let journal = loaded.state_dir().join("journal");
    if loaded.recipe.target.backend == synup::recipe::model::Backend::Synapse {
        return synapse_status(&loaded, &resolved, args.format);
    }
    let result = (|| -> Result<serde_json::Value, CatalogError> {
        let Some(catalog) = Catalog::open_existing(&resolved.target_path)? else {
            return Ok(
                serde_json::json!({"format_version": 1, "recipe": resolved.name, "target": resolved.target_path.display().to_string(), "data_collection": resolved.data_collection, "exists": false, "units": 0, "applies": []}),
            );
        };
        let id = catalog.find_collection(&resolved.data_collection)?;
        let units = match id {
            Some(id) => catalog.count_units(id)?,
            None => 0,
        };
        let mut applies = catalog.applies(&resolved.name, 10)?;
        // "running" is what the apply wrote when it started; only the OS lock
        // it holds while alive tells a running apply from a killed one.
        if applies.iter().any(|a| a.status == "running")
            && !synup::target::local::TargetLock::is_held(&resolved.target_path).unwrap_or(true)
        {
            for a in applies.iter_mut().filter(|a| a.status == "running") {
                a.status = "interrupted".to_owned();
            }
        }
        let missing = catalog.missing_store_files()?;
        Ok(serde_json::json!({
            "format_version": 1,
            "recipe": resolved.name,
            "target": loaded.recipe.target.path_or_default(),
            "data_collection": resolved.data_collection,
            "exists": id.is_some(),
            "units": units,
            "missing_files": missing.len(),
            "journal": journal.display().to_string(),
            "applies": applies,
        }))
    })();
    let status = match result {
        Ok(s) => s,
        Err(e) => {
            crate::console::report(e);
            return exit::ERROR;
        }
    };
    match args.format {
        Format::Json => crate::console::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        )),
        Format::Text => crate::console::out(&render(&status)),
    }
    exit::OK
}

/// For a synapse target: what the journal recorded and what the collection holds now.
fn synapse_status(
    loaded: &synup::recipe::LoadedRecipe,
    resolved: &synup::recipe::ResolvedRecipe,
    format: Format,
) -> i32 {
    let path = synup::apply::journal::path_for(
        &loaded.state_dir(),
        &resolved.name,
        &resolved.data_collection,
    );
    let journal = match synup::apply::journal::read(&path) {
        Ok((state, _)) => state,
        Err(e) => {
            crate::console::report(e);
            return exit::ERROR;
        }
    };
    let Some(session) = super::connect(&loaded.recipe.target, &loaded.recipe.upload) else {
        return exit::ERROR;
    };
    let Some(id) = resolved.synapse_collection else {
        crate::console::error("a synapse target needs a numeric `data_collection`");
        return exit::ERROR;
    };
    let page = match session.block_on(
        session
            .client
            .get(&format!("data_units/?data_collection={id}&page_size=1")),
    ) {
        Ok(p) => p,
        Err(e) => {
            crate::console::report(e);
            return exit::ERROR;
        }
    };
    let status = serde_json::json!({
        "format_version": 1,
        "recipe": resolved.name,
        "target": session.client.host(),
        "backend": "synapse",
        "data_collection": resolved.data_collection,
        "units": page.get("count").cloned().unwrap_or(serde_json::Value::Null),
        "journal": path.display().to_string(),
        "journaled_units": journal.units.len(),
        "journaled_files": journal.files.len(),
    });
    match format {
        Format::Json => crate::console::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        )),
        Format::Text => crate::console::out(&format!(
            "{} → synapse collection {} on {}\nUnits in the collection: {}\nThis recipe's journal ({}): {} unit(s) and {} file(s) applied.\n",
            resolved.name,
            resolved.data_collection,
            session.client.host(),
            status["units"],
            path.display(),
            journal.units.len(),
            journal.files.len(),
        )),
    }
    exit::OK
}

fn render(s: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} → local collection \"{}\" ({})",
        s["recipe"].as_str().unwrap_or(""),
        s["data_collection"].as_str().unwrap_or(""),
        s["target"].as_str().unwrap_or("")
    );
    if s["exists"] != true {
        let _ = writeln!(
            out,
            "Nothing applied yet: the collection does not exist in the target."
        );
        return out;
    }
    let _ = writeln!(out, "Units in the collection: {}", s["units"]);
    if s["missing_files"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(
            out,
            "WARNING: {} file(s) referenced by units are missing from the store",
            s["missing_files"]
        );
    }
    let applies = s["applies"].as_array().cloned().unwrap_or_default();
    if applies.is_empty() {
        let _ = writeln!(out, "No apply of this recipe is recorded.");
    } else {
        let _ = writeln!(out, "Applies of this recipe (newest first):");
        for a in applies {
            let _ = writeln!(
                out,
                "  {}  {:<9}  {} created, {} unchanged, {} failed; {} file(s), {} bytes  (plan {})",
                a["started_at"].as_str().unwrap_or(""),
                a["status"].as_str().unwrap_or(""),
                a["created_units"],
                a["skipped_units"],
                a["failed_units"],
                a["uploaded_files"],
                a["uploaded_bytes"],
                a["plan_hash"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(19)
                    .collect::<String>(),
            );
            if a["status"] == "interrupted" {
                let _ = writeln!(
                    out,
                    "    interrupted: the process ended without finishing (killed or crashed); `synup apply` again finishes the work"
                );
            }
        }
    }
    out
}
