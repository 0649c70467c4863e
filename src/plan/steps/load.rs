//! Load: a metadata sheet.

use super::*;

/// Load: read and parse metadata sheet `index` (through its cache).
pub(in crate::plan) fn load_sheet(cx: &Context<'_>, board: &Board, index: usize) -> StageResult {
    let Some(spec) = cx.recipe.metadata.iter().find(|m| m.index == index) else {
        return Ok(());
    };
    let (MetadataKind::Sheet { file, .. }, Some(found)) = (&spec.kind, cx.sheet_files.get(&index))
    else {
        return Ok(());
    };
    let cache_file = cx
        .cache_dir
        .join(format!("{}.meta{index}.sheet", cx.recipe.name));
    let spill = crate::spill::SpillArea::under(&cx.state_dir, cx.opts.memory);
    let (table, sha256) = stages::metadata::load::load(&spec.kind, found, cache_file, Some(&spill));
    board
        .metadata_inputs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(MetadataInput {
            source: file.written.clone(),
            path: display_rel(&found.describe(), &cx.loaded.dir),
            sha256,
        });
    match table {
        Ok(t) => {
            board.warn(t.warnings.iter().cloned());
            board
                .sheets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(index, t);
            Ok(())
        }
        Err(e) => Err(vec![
            RecipeError::new(
                Code::MetadataSheet,
                format!("{}: {e}", file.written),
                cx.loaded.spans.value(&file.pointer),
            )
            .help(sheet_help(&e)),
        ]),
    }
}

/// `path` relative to `base` when it is inside it (a URL stays whole).
fn display_rel(path: &str, base: &std::path::Path) -> String {
    let p = std::path::Path::new(path);
    p.strip_prefix(base).map_or_else(
        |_| path.to_owned(),
        |p| p.to_string_lossy().replace('\\', "/"),
    )
}
