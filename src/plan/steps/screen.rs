//! Screen: file content.

use super::*;

/// Screen: one content verdict per hashed file, from the cache when its
/// content and name were seen before.
pub(in crate::plan) fn screen(cx: &Context<'_>, board: &Board) -> StageResult {
    let recipe = cx.recipe;
    let scans: Vec<_> = board.scans.iter().map(|s| s.get()).collect();
    let hashed = board.hashed.get();
    let input = board.screen_input.take();
    // The screen keys its cache by content and name, never by time.
    let requests = Requests {
        cx,
        scans: &scans,
        mtimes: None,
        requested: &hashed.requested,
    };
    let video = |n: usize| {
        let f = hashed.requested.file(n);
        input.video[f.root as usize].contains(f.index as usize)
    };
    let screened = stages::screen::screen_requests(
        &requests,
        &hashed.digests,
        video,
        board.seen_heads.take(),
        cx.cache_dir.join(format!("{}.screen", recipe.name)),
        recipe.content_check == ContentCheck::Warn,
        |r| explain::shown(root_written(cx, r.source), &r.rel),
    );
    {
        let mut stats = board.stats();
        stats.screened_read = screened.read;
        stats.screened_cached = screened.cached;
    }
    board.warn(screened.warnings);
    board.screened.put(ScreenVerdicts {
        findings: screened.findings,
        finding_of: screened.finding_of,
    });
    Ok(())
}
