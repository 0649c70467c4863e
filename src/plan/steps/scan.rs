//! Scan: list a root.

use super::*;

/// Scan: list root `r`. Unreadable folders fail the stage; loops, broken
/// links and a damaged listing cache are warnings.
pub(in crate::plan) fn scan(cx: &Context<'_>, board: &Board, r: usize) -> StageResult {
    let (recipe, root) = (cx.recipe, cx.roots[r]);
    // One listing cache per root, named by the root's path; one listing
    // journal per remote root, named by its URL.
    let root_id = Sha256::digest(root.path.as_os_str().as_encoded_bytes());
    let url_id = Sha256::digest(root.source.cache_prefix());
    let progress = |n: u64| {
        if let Some(p) = &cx.opts.listing_progress {
            p(&root.written, n);
        }
    };
    let opts = ListOptions {
        recursive: root.recursive,
        exclude: &recipe.exclude,
        exclude_dirs: Some(&recipe.exclude_dirs),
        junk: recipe.mode.junk_filter(r, recipe.include_junk),
        skip: Some(cx.state_dir.clone()),
        listing_cache: Some(cx.cache_dir.join(format!(
            "{}.{}.dirs",
            recipe.name,
            hex::encode(&root_id[..6])
        ))),
        listing_journal: root.source.is_remote().then(|| {
            cx.cache_dir.join(format!(
                "{}.{}.listing",
                recipe.name,
                hex::encode(&url_id[..6])
            ))
        }),
        spill: Some(crate::spill::SpillArea::under(
            &cx.state_dir,
            cx.opts.memory,
        )),
        threads: cx.opts.scan_threads,
        progress: &progress,
    };
    let mut scan = root
        .source
        .list(&opts)
        .map_err(|why| vec![source_missing(cx.loaded, root, &why.to_string())])?;
    let mut unreadable = Vec::new();
    let mut warnings = Vec::new();
    for issue in &scan.issues {
        let shown = |p: &str| if p.is_empty() { "." } else { p }.to_owned();
        match issue {
            ScanIssue::Unreadable { path, message } => {
                unreadable.push(format!("{}: {message}", shown(path)));
            }
            ScanIssue::SymlinkLoop { link, target } => warnings.push(Warning::new(
                WarningCode::SymlinkLoop,
                format!(
                    "{}: symlink `{link}` loops back to `{}`; not followed",
                    root.written,
                    shown(target)
                ),
            )),
            ScanIssue::BrokenSymlink { link } => warnings.push(Warning::new(
                WarningCode::BrokenSymlink,
                format!(
                    "{}: symlink `{link}` points to nothing; skipped",
                    root.written
                ),
            )),
            ScanIssue::CacheRebuilt { cache, why } => warnings.push(Warning::new(
                WarningCode::ListingCacheRebuilt,
                format!("folder-listing cache {cache} is unreadable ({why}); rebuilding it"),
            )),
            ScanIssue::JournalDamaged { journal } => warnings.push(Warning::new(
                WarningCode::ListingCacheRebuilt,
                format!(
                    "{}: listing journal {journal} is damaged (not as a crash leaves one); listed afresh",
                    root.written
                ),
            )),
        }
    }
    board.warn(warnings);
    {
        let mut stats = board.stats();
        stats.files_scanned += scan.files.len() as u64;
        stats.folders_cached += scan.folders_cached;
        stats.folders_read += scan.folders_read;
        if let Some(r) = scan.resumed {
            stats.listings_resumed.push((root.written.clone(), r));
        }
    }
    board.mtimes[r].put(scan.files.take_mtimes());
    board.scans[r].put(scan);
    if unreadable.is_empty() {
        Ok(())
    } else {
        Err(vec![unreadable_error(cx.loaded, root, &unreadable)])
    }
}
