//! Checksum: SHA-1 of unit files.

use super::*;

/// Checksum: SHA-1 of every unit file, from the cache where the file is
/// unchanged. Files read now are screened from the same first chunk.
pub(in crate::plan) fn checksum(cx: &Context<'_>, board: &Board) -> StageResult {
    let recipe = cx.recipe;
    let specs = &recipe.collection.specs;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let mut request_of: Vec<Vec<u32>> = scans
        .iter()
        .map(|s| vec![u32::MAX; s.files.len()])
        .collect();
    // Room for every unit file (exact unless files are shared or deferred):
    // a doubling vector of 4.6 million files peaks at 8.4 million.
    let drafts = board.drafts.get();
    let (mut files, mut video) = (
        Vec::with_capacity(drafts.file_count()),
        Vec::with_capacity(drafts.file_count()),
    );
    for window in drafts.windows() {
        let window = window.map_err(|e| drafts_unreadable(cx, &e))?;
        for unit in window.iter() {
            for (spec, f) in unit.files {
                let slot = &mut request_of[f.root as usize][f.index as usize];
                if *slot == u32::MAX && !cx.deferred(f.root as usize) {
                    video.push(specs[*spec as usize].file_type == "video");
                    files.push(*f);
                    *slot = (files.len() - 1) as u32;
                }
            }
        }
    }
    drop(drafts);
    files.shrink_to_fit();
    video.shrink_to_fit();
    let mtimes: Vec<Vec<i64>> = board.mtimes.iter().map(|m| m.take()).collect();
    let requests = Requests {
        cx,
        scans: &scans,
        mtimes: Some(&mtimes),
        files: &files,
    };
    let mut cache = ChecksumCache::open(cx.cache_dir.join(format!("{}.checksums", recipe.name)));
    let heads = (recipe.content_check != ContentCheck::Off)
        .then(|| stages::screen::SeenHeads::new(requests.len()));
    let see = |i: usize, bytes: &[u8]| {
        if let Some(h) = &heads {
            h.see(i, crate::stages::file_name(requests.get(i).rel), bytes);
        }
    };
    // Objects of a remote root are copied as they are hashed, so the apply
    // after this plan sends them without reading them again.
    let copies = files
        .iter()
        .any(|f| cx.roots[f.root as usize].is_remote())
        .then(|| ObjectCopies::for_plan(ObjectCopies::dir_under(&cx.state_dir)));
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
        let unreadable: Vec<String> = files
            .iter()
            .zip(&hashes)
            .filter(|(f, _)| f.root as usize == r)
            .filter_map(|(f, h)| {
                h.as_ref()
                    .err()
                    .map(|e| format!("{}: {e}", scans[r].files.rel(f.index as usize)))
            })
            .collect();
        if !unreadable.is_empty() {
            errors.push(unreadable_error(cx.loaded, root, &unreadable));
        }
    }
    if recipe.content_check != ContentCheck::Off {
        board.screen_input.put(ScreenInput { files, video });
    }
    board.hashed.put(Hashed { request_of, hashes });
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
