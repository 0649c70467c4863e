//! What `plan` and `apply` ask on a terminal instead of failing: a recipe
//! when none is given, a data collection or a storage the recipe leaves out.

use inquire::{Confirm, Select};

use super::ask::{leading_id, pick_collection, storage_label};
use super::{Args, Stop, run};
use crate::cli::exit;

/// On a terminal, a synapse recipe without `target.data_collection` gets it
/// asked for this run; `Err` is printed (an interrupt says nothing was changed).
fn ask_data_collection(s: &synup::target::synapse::Session, recipe: &str) -> Result<u64, ()> {
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

/// A terminal's answers for what a recipe leaves open.
pub(crate) struct TerminalGaps;

impl synup::prepare::Gaps for TerminalGaps {
    fn data_collection(
        &self,
        session: &synup::target::synapse::Session,
        recipe: &str,
    ) -> Option<synup::target::CollectionId> {
        ask_data_collection(session, recipe)
            .ok()
            .map(synup::target::CollectionId)
    }
    fn storage(
        &self,
        session: &synup::target::synapse::Session,
        recipe: &str,
    ) -> Option<synup::target::StorageId> {
        ask_storage(session, recipe)
            .ok()
            .map(synup::target::StorageId)
    }
}

/// On a terminal, a recipe with storage-relative paths on a backend without a
/// default storage gets one asked for this run.
fn ask_storage(s: &synup::target::synapse::Session, recipe: &str) -> Result<u64, ()> {
    crate::console::note(&format!(
        "{recipe} reads storage-relative paths, names no `target.storage`, and the backend has no default storage"
    ));
    let listed = match s.block_on(s.client.storages()) {
        Ok(l) => l,
        Err(e) => {
            crate::console::error(&format!("cannot list storages on {}: {e}", s.client.host()));
            return Err(());
        }
    };
    let options: Vec<String> = listed.iter().map(storage_label).collect();
    if options.is_empty() {
        crate::console::error(&format!("{} lists no storages", s.client.host()));
        return Err(());
    }
    match Select::new("Which storage holds those paths?", options).prompt() {
        Ok(pick) => {
            let id = leading_id(&pick);
            crate::console::note(&format!(
                "add `storage: {id}` under `target:` in {recipe} to skip this question"
            ));
            Ok(id)
        }
        Err(_) => {
            crate::console::error("interrupted: nothing was changed");
            Err(())
        }
    }
}

/// On a terminal, `plan`/`apply` without a recipe use `synup.yaml` (or
/// `.yml`/`.toml`) in the current folder, or offer to write one with the wizard.
pub(crate) fn create_recipe(command: &str) -> Option<String> {
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
