//! Group: files into units.

use super::*;

/// Group: files into units by the layout (inferred or `group_key_regex`).
pub(in crate::plan) fn group(cx: &Context<'_>, board: &Board) -> StageResult {
    let recipe = cx.recipe;
    let specs = &recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let files: Vec<&crate::source::FileList> = scans.iter().map(|s| &s.files).collect();
    let multi = matches!(recipe.mode, SourceMode::Multi { .. });
    let shapes: Vec<SpecShape> = specs
        .iter()
        .map(|s| SpecShape {
            required: s.is_required,
            extensions: s.extensions.clone(),
        })
        .collect();
    // Classification is kept past here only as each member's spec and the
    // files it left out.
    let classified = board.classified.take();
    let members = stages::group::MemberSpecs::new(&classified);
    let unmatched: Vec<Vec<(u32, stages::classify::Classified)>> = classified
        .into_iter()
        .map(|classes| {
            (0..)
                .zip(classes)
                .filter(|(_, c)| c.unmatched().is_some())
                .collect()
        })
        .collect();
    let spill = crate::spill::SpillArea::under(&cx.state_dir, cx.opts.memory);
    let keep = |key: &str| {
        cx.opts
            .only_units
            .as_ref()
            .is_none_or(|only| only.contains(key))
    };
    let grouped = stages::group::group(
        &files,
        &members,
        recipe.group_key_regex.as_ref(),
        &recipe.key_template,
        &shapes,
        specs.iter().position(|s| s.is_primary),
        multi,
        &spill,
        &keep,
    )
    .map_err(|e| {
        vec![RecipeError::new(
            Code::Target,
            spill_failed(&spill, "sort the files into units", &e),
            None,
        )]
    })?;
    if !grouped.errors.is_empty() {
        return Err(grouped
            .errors
            .iter()
            .map(|e| group_error(cx.loaded, e, multi))
            .collect());
    }
    board.grouping.put(Grouping {
        layout: grouped.layout.unwrap_or(Layout {
            pattern: None,
            group_key_regex: None,
            reason: None,
            runner_up: None,
        }),
        no_group_key: grouped.no_group_key,
        unmatched,
    });
    board.drafts.put(grouped.units);
    Ok(())
}
