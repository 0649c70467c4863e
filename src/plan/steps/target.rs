//! Read target: what the target holds under the units' keys.

use super::*;

/// Read target: the target's units under the keys of valid units.
pub(in crate::plan) fn read_target(cx: &Context<'_>, board: &Board) -> StageResult {
    let drafts = board.drafts.get();
    let merged = board.merged.get();
    let valid_keys: Vec<&str> = drafts
        .iter()
        .zip(merged.iter())
        .filter(|(_, m)| m.problems.is_empty())
        .map(|(u, _)| u.key.as_str())
        .collect();
    let existing = cx.target.units_by_key(&valid_keys).map_err(|e| {
        vec![RecipeError::new(
            Code::Target,
            e.to_string(),
            cx.loaded.spans.key("/target"),
        )]
    })?;
    board.existing.put(existing);
    Ok(())
}
