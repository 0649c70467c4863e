//! Checksum: SHA-1 of unit files.

use super::*;

/// Checksum: SHA-1 of every unit file, from the cache where the file is
/// unchanged. Files read now are screened from the same first chunk.
pub(in crate::plan) fn checksum(cx: &Context<'_>, board: &Board) -> StageResult {
    let recipe = cx.recipe;
    let specs = &recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let screening = recipe.content_check != ContentCheck::Off;
    // Which files are hashed, a bit per listed file; a file shared by units
    // is hashed once, and is a video if the first unit that has it says so.
    let new_bits = || -> Vec<BitSet> { scans.iter().map(|s| BitSet::new(s.files.len())).collect() };
    let (mut wanted, mut video) = (new_bits(), screening.then(new_bits));
    let drafts = board.drafts.get();
    for window in drafts.windows() {
        let window = window.map_err(|e| drafts_unreadable(cx, &e))?;
        for unit in window.iter() {
            for (spec, f) in unit.files {
                let (r, i) = (f.root as usize, f.index as usize);
                if !cx.deferred(r)
                    && wanted[r].insert(i)
                    && let Some(video) = &mut video
                    && specs[*spec as usize].file_type == "video"
                {
                    video[r].insert(i);
                }
            }
        }
    }
    drop(drafts);
    let requested = Requested::new(wanted);
    let mtimes: Vec<Vec<i64>> = board.mtimes.iter().map(|m| m.take()).collect();
    let requests = Requests {
        cx,
        scans: &scans,
        mtimes: Some(&mtimes),
        requested: &requested,
    };
    let mut cache = ChecksumCache::open(cx.cache_dir.join(format!("{}.checksums", recipe.name)));
    let heads = screening.then(|| stages::screen::SeenHeads::new(requests.len()));
    let see = |i: usize, bytes: &[u8]| {
        if let Some(h) = &heads {
            h.see(i, crate::stages::file_name(&requests.get(i).rel), bytes);
        }
    };
    // Objects of a remote root are copied as they are hashed, so the apply
    // after this plan sends them without reading them again.
    let copies = (0..cx.roots.len())
        .any(|r| cx.roots[r].is_remote() && requested.in_root(r) > 0)
        .then(|| ObjectCopies::for_plan(ObjectCopies::dir_under(&cx.state_dir)));
    // Held past here by screen, merge, diff and assembly: past a share of
    // the budget they are in a file from the start (92 MiB at 4.6 million
    // files), written and read through a few cached blocks.
    let spill = crate::spill::SpillArea::under(&cx.state_dir, cx.opts.memory);
    let (hashes, hash_stats) = stages::checksum::hash_all(
        &requests,
        &mut cache,
        cx.opts.readers,
        stages::checksum::HashSideEffects {
            heads: heads
                .is_some()
                .then_some(&see as stages::checksum::HeadObserver<'_>),
            copies: copies.as_ref(),
            progress: cx.opts.hashing_progress.as_deref().map(|p| p as _),
            spill: Some((&spill.dir, spill.budget.share(8))),
        },
    );
    board.stats().hash = hash_stats;
    board.warn(cache.warning.take());
    board.warn(cache.save(&requests, &hashes));
    drop(cache);
    drop(mtimes);
    board.seen_heads.put(
        heads
            .map(stages::screen::SeenHeads::into_verdicts)
            .unwrap_or_default(),
    );
    let mut errors = Vec::new();
    for (r, root) in cx.roots.iter().enumerate() {
        let unreadable: Vec<String> = hashes
            .failures()
            .map(|(n, e)| (requested.file(n), e))
            .filter(|(f, _)| f.root as usize == r)
            .map(|(f, e)| format!("{}: {e}", scans[r].files.rel(f.index as usize)))
            .collect();
        if !unreadable.is_empty() {
            errors.push(unreadable_error(cx.loaded, root, &unreadable));
        }
    }
    if let Some(video) = video {
        board.screen_input.put(ScreenInput { video });
    }
    board.hashed.put(Hashed {
        requested,
        digests: hashes,
    });
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
