//! The planner's errors: a failing stage's findings as recipe diagnostics,
//! with the span of the recipe value they are about and a hint.

use crate::recipe::resolve::Root;
use crate::recipe::{Code, LoadedRecipe, RecipeError};
use crate::stages::group::GroupError;
use crate::stages::metadata::sheet;

pub(super) fn source_missing(loaded: &LoadedRecipe, root: &Root, reason: &str) -> RecipeError {
    let e = RecipeError::new(
        Code::SourceMissing,
        format!("source `{}` cannot be read: {reason}", root.written),
        loaded.spans.value(&root.pointer),
    );
    if root.is_remote() {
        e.help("check the bucket or host, the `connection` settings and the credentials (the providers' usual environment variables, profiles and logins work too)")
    } else {
        e.label(format!("resolved to {}", root.path.display()))
            .help("relative paths are relative to the recipe's folder, not the working directory")
    }
}

pub(super) fn unreadable_error(
    loaded: &LoadedRecipe,
    root: &Root,
    paths: &[String],
) -> RecipeError {
    let shown: Vec<&str> = paths.iter().take(20).map(String::as_str).collect();
    let more = if paths.len() > 20 {
        format!("\n  … and {} more", paths.len() - 20)
    } else {
        String::new()
    };
    RecipeError::new(
        Code::SourceUnreadable,
        format!(
            "{} file(s) or folder(s) under `{}` cannot be read:\n  {}{more}",
            paths.len(),
            root.written,
            shown.join("\n  ")
        ),
        loaded.spans.value(&root.pointer),
    )
    .help("fix their permissions, or drop them with `exclude`")
}

pub(super) fn group_error(loaded: &LoadedRecipe, e: &GroupError, multi: bool) -> RecipeError {
    match e {
        GroupError::NoLayout {
            best,
            best_regex,
            runner_up,
        } => {
            let runner_up = runner_up
                .as_ref()
                .map(|r| format!("; next best, {r}"))
                .unwrap_or_default();
            RecipeError::new(
                Code::NoLayout,
                format!("no grouping of the files makes most units complete: best, {best}{runner_up}"),
                loaded.spans.key(if multi { "/assets" } else { "/source" }),
            )
            .help(format!("set `group_key_regex` to say which part of the path names the unit (the best guess was '{best_regex}'), or `file_rules` if files map to the wrong specs"))
        }
        GroupError::KeyCollision { key, group_keys } => RecipeError::new(
            Code::KeyCollision,
            format!(
                "groups {} all render the unit key `{key}`",
                group_keys
                    .iter()
                    .map(|g| format!("`{g}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            loaded
                .spans
                .value("/dataset_key_template")
                .or_else(|| loaded.spans.value("/group_key_regex")),
        )
        .help("make dataset_key_template include {group_key}, or capture more of the path"),
    }
}

/// What to do about a spill that failed.
pub(super) const SPILL_HINT: &str =
    "free disk space under the recipe's .synup/ folder, or raise --memory";

pub(super) fn sheet_help(e: &sheet::SheetError) -> String {
    match e {
        sheet::SheetError::NoSuchSheet { .. } => "set `sheet` to one of the sheet names".to_owned(),
        sheet::SheetError::NoHeaderRow { .. } => {
            "set `header_row` to the row that holds the column names".to_owned()
        }
        sheet::SheetError::DuplicateHeaders { .. } => {
            "rename one of the columns so every header is unique".to_owned()
        }
        // One column whose header holds a separator: the delimiter is wrong.
        sheet::SheetError::NoKeyColumn { headers, .. }
            if headers.len() == 1 && headers[0].contains([',', ';', '\t', '|']) =>
        {
            "the header row reads as one column: set `delimiter` to the file's separator (\",\", \";\", tab or \"|\")".to_owned()
        }
        sheet::SheetError::NoKeyColumn { .. } => {
            "set `key_column` to the header of the column that holds unit keys".to_owned()
        }
        sheet::SheetError::DuplicateKeys { .. } => {
            "each unit key may appear in one row only; remove or merge the duplicates".to_owned()
        }
        sheet::SheetError::Spill(_) => SPILL_HINT.to_owned(),
        sheet::SheetError::Unreadable(_) => {
            "check that the file is a spreadsheet and is not password-protected".to_owned()
        }
        sheet::SheetError::NotUtf8 { .. } => {
            "set `encoding` to the file's encoding, e.g. `encoding: latin-1` or `encoding: windows-1252` for files saved by Excel on Windows".to_owned()
        }
    }
}
