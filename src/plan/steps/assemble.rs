//! Assemble: the plan.

use super::*;

/// Assemble: unmatched files and why, the inputs' fingerprints, the plan's
/// hash; secrets masked.
pub(in crate::plan) fn assemble(cx: &Context<'_>, board: &Board) -> StageResult {
    let (loaded, recipe) = (cx.loaded, cx.recipe);
    let specs = &recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let Diffed {
        units,
        tally,
        mut summary,
    } = board.diffed.take();
    let grouping = board.grouping.take();
    let hashed = board.hashed.get();

    let mut unmatched: Vec<UnmatchedFile> = Vec::new();
    let classification = match &recipe.mode {
        SourceMode::Single { rules, .. } if !rules.is_empty() => explain::Classification::Rules,
        SourceMode::Single { .. } => explain::Classification::Extensions,
        SourceMode::Multi { .. } => explain::Classification::Assets,
    };
    let mut by_reason =
        explain::UnmatchedSummary::new(specs, classification, recipe.group_key_regex.is_some());
    let mut add_unmatched = |root: &str, path: &str, reason: UnmatchedReason, spec: Option<u32>| {
        by_reason.add(reason, spec, root, path);
        unmatched.push(UnmatchedFile {
            root: root.to_owned(),
            path: path.to_owned(),
            reason: reason.as_str().into(),
        });
    };
    for (r, (scan, classes)) in scans.iter().zip(&grouping.unmatched).enumerate() {
        let root = &cx.roots[r].written;
        for bad in &scan.non_utf8 {
            add_unmatched(root, bad, UnmatchedReason::NonUtf8Name, None);
        }
        for &(i, c) in classes {
            if let Some(reason) = c.unmatched() {
                let spec = match c {
                    Classified::WrongExtension(s) => Some(s),
                    _ => None,
                };
                add_unmatched(root, &scan.files.rel(i as usize), reason, spec);
            }
        }
    }
    for f in &grouping.no_group_key {
        add_unmatched(
            &cx.roots[f.root as usize].written,
            &scans[f.root as usize].files.rel(f.index as usize),
            UnmatchedReason::NoGroupKey,
            None,
        );
    }
    let unmatched_summary = by_reason.finish();
    unmatched.sort();
    summary.unmatched_files = unmatched.len() as u64;
    summary.excluded_files = scans.iter().map(|s| s.excluded).sum();
    let files_seen: u64 = scans
        .iter()
        .map(|s| (s.files.len() + s.non_utf8.len()) as u64)
        .sum();
    let diagnosis = explain::diagnose(
        &tally,
        &unmatched_summary,
        files_seen,
        summary.excluded_files,
    );

    let listings = cx
        .roots
        .iter()
        .zip(&scans)
        .enumerate()
        .map(|(r, (root, scan))| ListingInput {
            root: root.written.clone(),
            files: (scan.files.len() + scan.non_utf8.len()) as u64,
            sha256: stages::fingerprint::listing_sha256(
                scan,
                |i| hashed.digest(r, i).and_then(Result::ok),
                cx.deferred(r),
            ),
        })
        .collect();
    // The last reader of the digests and listings: any that a stage could
    // not read back from their spill file was answered wrongly, so no plan
    // is made.
    let unreadable = hashed
        .digests
        .unreadable()
        .map(|why| ("the SHA-1s", why))
        .or_else(|| {
            scans
                .iter()
                .find_map(|s| s.files.unreadable())
                .map(|why| ("the listing", why))
        });
    if let Some((what, why)) = unreadable {
        let spill = crate::spill::SpillArea::under(&cx.state_dir, cx.opts.memory);
        let e = std::io::Error::other(why.to_owned());
        return Err(vec![RecipeError::new(
            Code::Target,
            spill_failed(&spill, &format!("read back {what} spilled"), &e),
            None,
        )]);
    }
    let mut metadata_inputs = std::mem::take(
        &mut *board
            .metadata_inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    metadata_inputs.sort_by(|a, b| (&a.source, &a.path).cmp(&(&b.source, &b.path)));
    let env = loaded
        .vars
        .values()
        .map(|v| {
            (
                v.name.clone(),
                v.value.clone().unwrap_or_else(|| "***".to_owned()),
            )
        })
        .collect();
    let inputs = Inputs {
        recipe_sha256: loaded.sha256.clone(),
        env,
        collection_sha256: hex::encode(Sha256::digest(recipe.collection.fingerprint.as_bytes())),
        metadata: metadata_inputs,
        listings,
    };

    let mut warnings =
        std::mem::take(&mut *board.warnings.lock().unwrap_or_else(|e| e.into_inner()));
    warnings.sort();
    warnings.dedup();
    let layout = grouping.layout;
    let mut plan = Plan {
        format_version: FORMAT_VERSION,
        plan_hash: String::new(),
        recipe: RecipeRef {
            name: recipe.name.clone(),
            path: loaded.path.clone(),
            sha256: loaded.sha256.clone(),
        },
        target: TargetRef {
            backend: recipe.backend.as_str().to_owned(),
            data_collection: recipe.data_collection.clone(),
            // The local catalog folder; a synapse target is named by its collection id.
            path: (recipe.backend == crate::recipe::model::Backend::Local)
                .then(|| loaded.recipe.target.path_or_default().to_owned()),
        },
        layout: LayoutRef {
            pattern: layout.pattern,
            group_key_regex: layout.group_key_regex,
            reason: layout.reason,
            runner_up: layout.runner_up,
        },
        summary,
        diagnosis,
        units,
        unmatched,
        unmatched_summary,
        orphan_rows: board.orphan_rows.take(),
        warnings: warnings
            .into_iter()
            .map(|w| PlanWarning {
                code: w.code.as_str().to_owned(),
                message: w.message,
            })
            .collect(),
        sensitive: Vec::new(),
        inputs,
    };
    // One pass over the plan's text both hashes it and looks for secrets.
    let mut scanner = crate::secrets::JsonScanner::new();
    plan.plan_hash = plan.compute_hash_seeing(&mut |piece| scanner.feed(piece));
    let masked = scanner
        .found()
        .then(|| crate::plan::sensitive::masked(&plan))
        .flatten();
    board.plan.put(match masked {
        Some(masked) => (masked, Some(plan)),
        None => (plan, None),
    });
    Ok(())
}
