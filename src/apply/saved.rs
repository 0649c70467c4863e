//! A plan saved with `synup plan -o`: reading it back, and deciding whether
//! it may run (its inputs unchanged, its content what its recipe gives).

use std::path::Path;

use super::{integrity, staleness};
use crate::plan::model::FORMAT_VERSION;
use crate::plan::{Plan, PlanOutcome};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SavedPlanError {
    #[error("cannot read {path}: {source}")]
    #[diagnostic(code(synup::apply::unreadable))]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} is a plan of format_version {found}; this synup reads version {FORMAT_VERSION}"
    )]
    #[diagnostic(code(synup::apply::plan_version))]
    Version { path: String, found: u32 },
    #[error(
        "{path} looks like a plan but does not parse: {message}; nothing was applied. Make the plan again with `synup plan RECIPE -o FILE`."
    )]
    #[diagnostic(code(synup::apply::plan_syntax))]
    Syntax { path: String, message: String },
    #[error(
        "the plan's recipe `{recipe}` is not there (paths in a plan are relative to the working directory it was made in)"
    )]
    #[diagnostic(code(synup::apply::recipe_missing))]
    RecipeMissing { recipe: String },
    #[error(
        "the plan {path} is stale: {} input(s) changed since it was made; nothing was applied.\n{}\nrun `synup plan` again to make a new plan.",
        changes.len(),
        staleness::describe(changes)
    )]
    #[diagnostic(code(synup::apply::stale))]
    Stale { path: String, changes: Vec<String> },
    #[error(
        "the plan {path} is not the plan its recipe gives ({} difference(s)); nothing was applied.\n{}\na saved plan must not be edited: change the recipe, its metadata or the data instead, then run `synup plan -o {path}` again.",
        differences.len(),
        integrity::describe(differences)
    )]
    #[diagnostic(code(synup::apply::edited))]
    Edited {
        path: String,
        differences: Vec<String>,
    },
    /// The plan's units went to a spill file (`--memory`) that cannot be read back.
    #[error("cannot read the plan's units back from their spill file: {source}")]
    #[diagnostic(
        code(synup::apply::units_unreadable),
        help(
            "the spill folder is `.synup/spill/` (or the temporary folder for a saved plan); check the disk, or raise --memory"
        )
    )]
    Units { source: std::io::Error },
}

/// The plan saved at `path`, or `None` when the file is not a plan (a recipe:
/// JSON with `format_version` and `plan_hash` is a plan, SPEC 3).
/// Parsed from the file as it is read: its units go to a list that spills,
/// so a saved plan of a million units (about 470 MB of JSON) is never held
/// whole, neither as text nor parsed.
pub fn read(path: &str) -> Result<Option<Plan>, SavedPlanError> {
    use std::io::BufRead;
    let io = |source| SavedPlanError::Read {
        path: path.to_owned(),
        source,
    };
    let open = || {
        std::fs::File::open(path)
            .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
            .map_err(io)
    };
    let mut reader = open()?;
    // A plan is a JSON object; a recipe in YAML or TOML is told apart by its
    // first bytes, without parsing anything.
    let head = reader.fill_buf().map_err(io)?;
    if head.trim_ascii_start().first() != Some(&b'{') {
        return Ok(None);
    }
    let begins_as_plan = begins_like_a_plan(head);
    match serde_json::from_reader::<_, Plan>(reader) {
        Ok(p) if p.format_version == FORMAT_VERSION => {
            if !Path::new(&p.recipe.path).is_file() {
                return Err(SavedPlanError::RecipeMissing {
                    recipe: p.recipe.path,
                });
            }
            Ok(Some(p))
        }
        Ok(p) => Err(SavedPlanError::Version {
            path: path.to_owned(),
            found: p.format_version,
        }),
        Err(e) if e.is_io() => Err(io(e.into())),
        // Not a plan we can read: a plan damaged, cut or edited out of
        // shape, or not a plan at all (a JSON recipe), told apart by how it
        // begins or, past that, by a second look for the plan's markers.
        Err(e) if begins_as_plan || Plan::looks_like_plan(open()?) => Err(SavedPlanError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        }),
        Err(_) => Ok(None),
    }
}

/// Whether `head` starts as synup writes a plan (`{`, then `"format_version"`
/// and `"plan_hash"` among its first lines): a plan cut short by a full disk
/// or a failed copy is named as a damaged plan, not read as a recipe.
fn begins_like_a_plan(head: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&head[..head.len().min(512)]);
    let body = head.trim_start().strip_prefix('{').map(str::trim_start);
    body.is_some_and(|b| b.starts_with("\"format_version\"") && b.contains("\"plan_hash\""))
}

/// The plan to execute for `saved` (read from `path`), given a fresh plan of
/// the same recipe: refused when an input changed or the file was edited.
pub fn verify(path: &str, saved: &Plan, fresh: PlanOutcome) -> Result<Plan, SavedPlanError> {
    let changes = staleness::changed_inputs(saved, &fresh.plan);
    if !changes.is_empty() {
        return Err(SavedPlanError::Stale {
            path: path.to_owned(),
            changes,
        });
    }
    let differences = integrity::differences(saved, &fresh.plan);
    if !differences.is_empty() {
        return Err(SavedPlanError::Edited {
            path: path.to_owned(),
            differences,
        });
    }
    integrity::executable(saved, fresh.into_executable())
        .map_err(|source| SavedPlanError::Units { source })
}

/// A shard's check of its slice of `saved`, given a fresh plan of only the
/// slice's units: the slice's inputs unchanged (recipe, environment,
/// collection, metadata, and each of its files), its units what the recipe
/// gives, and the file still hashing to its `plan_hash`. The rest of the plan
/// is the other shards' to verify.
pub fn verify_slice(
    path: &str,
    saved: &Plan,
    slice: Plan,
    fresh: PlanOutcome,
) -> Result<Plan, SavedPlanError> {
    let changes = staleness::changed_inputs_of_slice(&slice, &fresh.plan);
    if !changes.is_empty() {
        return Err(SavedPlanError::Stale {
            path: path.to_owned(),
            changes,
        });
    }
    let differences = integrity::slice_differences(saved, &slice, &fresh.plan);
    if !differences.is_empty() {
        return Err(SavedPlanError::Edited {
            path: path.to_owned(),
            differences,
        });
    }
    integrity::executable(&slice, fresh.into_executable())
        .map_err(|source| SavedPlanError::Units { source })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_plan_cut_short_is_still_known_as_a_plan() {
        let plan = "{\n  \"format_version\": 1,\n  \"plan_hash\": \"sha256:ab\",\n  \"recipe\": {";
        assert!(super::begins_like_a_plan(plan.as_bytes()));
        assert!(!super::begins_like_a_plan(b"version: 1\nname: plan_hash\n"));
        assert!(!super::begins_like_a_plan(
            b"{\"version\": 1, \"plan_hash\": 2}"
        ));
    }
}
