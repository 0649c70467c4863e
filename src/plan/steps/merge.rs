//! Merge and validate: each unit's metadata and problems.

use super::*;

/// Merge and validate: each unit's metadata from every source, then its
/// problems, in one task per unit (its provenance map lives only that long).
/// Also finds the sheet rows no unit matched.
pub(in crate::plan) fn merge_validate(cx: &Context<'_>, board: &Board) -> StageResult {
    let (loaded, recipe) = (cx.loaded, cx.recipe);
    let specs = &recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let drafts = board.drafts.get();
    let mut sheets = std::mem::take(&mut *board.sheets.lock().unwrap_or_else(|e| e.into_inner()));
    let prepared: Vec<PreparedSource<'_>> = recipe
        .metadata
        .iter()
        .map(|m| PreparedSource {
            spec: m,
            table: sheets.remove(&m.index),
            label: match &m.kind {
                MetadataKind::Sheet { file, .. } => file.written.clone(),
                MetadataKind::Static { pointer, .. } => format!(
                    "{}:{}",
                    loaded.path,
                    describe_path(pointer).trim_matches('`')
                ),
                _ => m.label(),
            },
        })
        .collect();
    let primary_order = recipe.collection.primary_order();
    // Content findings fail a unit only under `validation.content: fail`
    // (then this stage runs after the screen).
    let screened = (recipe.content_check == ContentCheck::Fail)
        .then(|| (board.screened.get(), board.hashed.get()));
    // Sheets are joined a window of units at a time: a spilled sheet is read
    // forward to the window's keys, once; a held one is looked up by each unit.
    // Merged units wait for the diff in a spool, spilling past an eighth of
    // the budget.
    let spill = crate::spill::SpillArea::under(&cx.state_dir, cx.opts.memory);
    let mut merged = spill.spool::<MergedUnit>(8);
    for window in drafts.windows() {
        let window = window.map_err(|e| drafts_unreadable(cx, &e))?;
        let window: Vec<Draft<'_>> = window.iter().collect();
        let keys: Vec<&str> = window.iter().map(|u| u.key).collect();
        let joined = prepared
            .iter()
            .map(|p| p.table.as_ref().map(|t| t.rows.window(&keys)).transpose())
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| rows_unreadable(cx, &spill, &e))?;
        let window_merged: Vec<MergedUnit> = window
            .par_iter()
            .map(|u| {
                let key = normalize_key(u.key);
                let rows: Vec<Option<&stages::metadata::sheet::Row>> = joined
                    .iter()
                    .map(|j| j.as_ref().and_then(|rows| rows.row(&key)))
                    .collect();
                // Each file looked at once (a stored listing reads it back).
                let listed: Vec<_> = u
                    .files
                    .iter()
                    .map(|(_, f)| scans[f.root as usize].files.get(f.index as usize))
                    .collect();
                let files: Vec<UnitFile<'_>> = u
                    .files
                    .iter()
                    .zip(&listed)
                    .map(|((spec, f), s)| UnitFile {
                        spec: *spec,
                        rel: std::borrow::Cow::Borrowed(&s.rel),
                        source: &*cx.roots[f.root as usize].source,
                    })
                    .collect();
                let m = stages::metadata::merge(
                    &prepared,
                    &MergeInput {
                        key: u.key,
                        group_key: u.group_key,
                        files: &files,
                        primary_order: &primary_order,
                        specs,
                        key_field: recipe.key_field.as_deref(),
                        rows: &rows,
                    },
                );
                let checked: Vec<CheckedFile<'_>> = u
                    .files
                    .iter()
                    .zip(&listed)
                    .map(|((spec, _), s)| CheckedFile {
                        spec: *spec,
                        rel: std::borrow::Cow::Borrowed(&s.rel),
                        size: s.size,
                    })
                    .collect();
                // Moved, not cloned: the schema validates the same value that is written.
                let meta = serde_json::Value::Object(m.meta);
                let mut found = m.problems;
                if let Some((verdicts, hashed)) = &screened {
                    for (spec, f) in u.files {
                        let verdict = hashed
                            .requested
                            .number_of(f.root as usize, f.index as usize)
                            .and_then(|i| verdicts.finding_of.get(i))
                            .copied()
                            .unwrap_or(stages::screen::CLEAN);
                        if let Some(finding) = verdicts.findings.get(verdict as usize) {
                            let rel = scans[f.root as usize].files.rel(f.index as usize);
                            let mut p = stages::validate::Problem::new(
                                finding.rule.into(),
                                format!("{rel}: {}", finding.detail),
                            )
                            .spec(&specs[*spec as usize].name);
                            p.path = Some(rel.into_owned());
                            found.push(p);
                        }
                    }
                }
                let problems = stages::validate::validate_unit(
                    specs,
                    &checked,
                    recipe.max_file_size,
                    &meta,
                    |field| m.provenance.get(field),
                    recipe.collection.meta_schema.as_ref(),
                    found,
                );
                MergedUnit {
                    meta: meta_raw(&meta),
                    problems,
                    key_field_overridden: m.key_field_overridden,
                }
            })
            .collect();
        for m in window_merged {
            merged
                .push(m)
                .map_err(|e| merged_spill_failed(&spill, &e))?;
        }
    }
    drop(screened);
    let mut orphan_rows: Vec<OrphanRow> = Vec::new();
    for t in prepared.iter().filter_map(|p| p.table.as_ref()) {
        let unmatched = t
            .rows
            .unmatched()
            .map_err(|e| rows_unreadable(cx, &spill, &e))?;
        orphan_rows.extend(unmatched.into_iter().map(|row| OrphanRow {
            source: t.source.clone(),
            sheet: t.sheet.clone(),
            row: row.row,
            key: row.key,
        }));
    }
    board.merged.put(merged);
    board.orphan_rows.put(orphan_rows);
    Ok(())
}

/// Merged units that could not be spilled.
fn merged_spill_failed(spill: &crate::spill::SpillArea, e: &std::io::Error) -> Vec<RecipeError> {
    vec![RecipeError::new(
        Code::Target,
        spill_failed(spill, "keep the merged units", e),
        None,
    )]
}

/// A spilled sheet's rows that could not be read back.
fn rows_unreadable(
    cx: &Context<'_>,
    spill: &crate::spill::SpillArea,
    e: &std::io::Error,
) -> Vec<RecipeError> {
    vec![RecipeError::new(
        Code::MetadataSheet,
        spill_failed(spill, "read back the sheet rows spilled", e),
        cx.loaded.spans.key("/metadata"),
    )]
}
