//! Diff: each unit's action.

use super::*;

/// Diff: each unit's action against the target, consuming the drafts and
/// merged meta a window at a time (each window in parallel), so they are
/// freed as the plan's units grow; then which files the target lacks.
pub(in crate::plan) fn diff(cx: &Context<'_>, board: &Board) -> StageResult {
    let recipe = cx.recipe;
    let specs = &recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let hashed = board.hashed.get();
    let existing = board.existing.take();
    let spec_names: Vec<Arc<str>> = specs.iter().map(|s| Arc::from(s.name.as_str())).collect();
    let root_names: Vec<Arc<str>> = cx
        .roots
        .iter()
        .map(|r| Arc::from(r.written.as_str()))
        .collect();
    let drafts = board.drafts.take();
    let merged = board.merged.take();
    let mut summary = Summary::default();
    let mut units = Vec::with_capacity(drafts.len());
    let mut overridden: Vec<String> = Vec::new();
    let mut pending = drafts.into_iter().zip(merged);
    loop {
        let window: Vec<(UnitDraft, MergedUnit)> = pending.by_ref().take(8192).collect();
        if window.is_empty() {
            break;
        }
        let built: Vec<(PlannedUnit, Option<String>)> = window
            .into_par_iter()
            .map(|(u, m)| {
                // A draft's files are sorted by spec; a spec with more than
                // one file is ambiguous (a problem) and gets none.
                let files: Vec<(Arc<str>, PlannedFile)> = u
                    .files
                    .chunk_by(|a, b| a.0 == b.0)
                    .filter_map(|run| match run {
                        [one] => Some(one),
                        _ => None,
                    })
                    .map(|(spec, f)| {
                        let (r, i) = (f.root as usize, f.index as usize);
                        let s = &scans[r].files[i];
                        let sha1 = hashed
                            .digest(r, i)
                            .map(|h| h.as_ref().map(stages::checksum::hex).unwrap_or_default());
                        let etag = if cx.deferred(r) {
                            s.tag.as_deref().map(str::to_owned)
                        } else {
                            None
                        };
                        let file = PlannedFile {
                            root: root_names[r].clone(),
                            path: s.rel.clone(),
                            size: s.size,
                            sha1,
                            etag,
                        };
                        (spec_names[*spec as usize].clone(), file)
                    })
                    .collect();
                let files = SortedMap::from_sorted(files);
                let overridden = m
                    .key_field_overridden
                    .as_ref()
                    .map(|o| format!("{}: {o}", u.key));
                let (action, conflict) = if !m.problems.is_empty() {
                    (Action::Invalid, None)
                } else {
                    let checks = files.iter().map(|(spec, f)| (spec, f.sha1.as_deref()));
                    match stages::diff::decide(
                        existing.get(&u.key).map(Vec::as_slice),
                        checks,
                        m.meta.get(),
                    ) {
                        Verdict::Create => (Action::Create, None),
                        Verdict::Unchanged => (Action::Unchanged, None),
                        Verdict::Conflict(why) => (Action::Conflict, Some(why)),
                    }
                };
                let unit = PlannedUnit {
                    key: u.key,
                    action,
                    files,
                    meta: m.meta,
                    problems: m.problems,
                    conflict,
                };
                (unit, overridden)
            })
            .collect();
        for (unit, o) in built {
            match unit.action {
                Action::Create => summary.create += 1,
                Action::Unchanged => summary.unchanged += 1,
                Action::Conflict => summary.conflict += 1,
                Action::Invalid => summary.invalid += 1,
            }
            overridden.extend(o);
            units.push(unit);
        }
    }
    drop(existing);
    summary.units = units.len() as u64;
    if summary.conflict > 0 {
        board.warn([Warning::new(WarningCode::Conflict, format!("{} unit(s) have a key the target already uses with other content; they will not be overwritten", summary.conflict))]);
    }
    if !overridden.is_empty() {
        board.warn([Warning::new(
            WarningCode::KeyFieldOverridden,
            format!("{} unit(s): a metadata source set `{}`, which receives the unit key; the key wins (first: {})", overridden.len(), recipe.key_field.as_deref().unwrap_or(""), overridden[0]),
        )]);
    }

    // Files to upload: distinct checksums of units to create that the target lacks.
    let upload = distinct_files(units.iter().filter(|u| u.action == Action::Create));
    let wanted: Vec<&str> = upload.keys().copied().collect();
    let known = cx
        .target
        .known_checksums(&wanted)
        .map_err(|e| vec![RecipeError::new(Code::Target, e.to_string(), None)])?;
    for (sha, size) in &upload {
        if !known.contains(*sha) {
            summary.files_to_upload += 1;
            summary.bytes_to_upload += size;
        }
    }
    // Deferred files count as to upload: whether the target has them is
    // learned from their SHA-1, during apply.
    for size in deferred_files(units.iter().filter(|u| u.action == Action::Create)).values() {
        summary.files_to_upload += 1;
        summary.bytes_to_upload += size;
    }
    drop(upload);
    board.diffed.put(Diffed { units, summary });
    Ok(())
}
