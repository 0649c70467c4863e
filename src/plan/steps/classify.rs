//! Classify: files to specs.

use super::*;

/// Classify: which spec each file is, by `file_rules`, assets or extension.
pub(in crate::plan) fn classify(cx: &Context<'_>, board: &Board) -> StageResult {
    let specs = &cx.recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let mut errors = Vec::new();
    let classified: Vec<Vec<Classified>> = match &cx.recipe.mode {
        SourceMode::Single { rules, .. } => {
            let (c, conflicts) = stages::classify::classify_single(&scans[0].files, specs, rules);
            for conflict in conflicts {
                errors.push(
                    RecipeError::new(
                        Code::ExtensionConflict,
                        format!("extension `.{}` is claimed by specs {}, so `{}` matches more than one", conflict.extension, conflict.specs.join(" and "), conflict.example),
                        cx.loaded.spans.key("/collection"),
                    )
                    .help(format!("add `file_rules` that say which files are which, e.g. {{pattern: \"**/img/*.{}\", spec: {}}}", conflict.extension, conflict.specs[0])),
                );
            }
            vec![c]
        }
        SourceMode::Multi { assets } => assets
            .iter()
            .zip(&scans)
            .map(|(a, s)| stages::classify::classify_asset(&s.files, a, specs))
            .collect(),
    };
    board.classified.put(classified);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
