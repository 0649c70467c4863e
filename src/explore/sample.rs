//! Sampling a source too large to list whole: up to `limit` files, spread over
//! a few first-level folders picked evenly across the sorted listing (the
//! first, the last and some between), so that the sample shows the layout of
//! the whole source rather than of its first corner.

use std::path::Path;

use crate::source::remote::RemoteRoot;
use crate::source::{SourceScan, is_junk_path};

/// First-level folders a sample looks into first.
pub const FOLDERS: usize = 8;
/// Rounds of evenly spread first-level folders a local sample widens to
/// while it has room left.
const SAMPLE_ROUNDS: [usize; 4] = [FOLDERS, 64, 512, 2048];

/// What a sample covered, for the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// The cap asked for.
    pub limit: u64,
    /// First-level folders looked into, of those seen.
    pub folders_sampled: u64,
    pub folders_seen: u64,
}

/// Evenly spaced picks of `k` out of `n` (all of them when `n <= k`),
/// always including the first and the last.
pub fn spread(n: usize, k: usize) -> Vec<usize> {
    if n <= k {
        return (0..n).collect();
    }
    let mut picks: Vec<usize> = (0..k).map(|i| i * (n - 1) / (k - 1).max(1)).collect();
    picks.dedup();
    picks
}

/// Files per sampled folder (and for the root's own files), so that the
/// sample stays within `limit`.
fn share(limit: u64, folders: usize, root_files: bool) -> u64 {
    let slots = folders as u64 + u64::from(root_files);
    (limit / slots.max(1)).max(1)
}

/// A local folder: the whole scan when it holds at most `limit` files, else
/// a sample.
pub fn sample_local(root: &Path, limit: u64) -> std::io::Result<(SourceScan, Option<Sample>)> {
    if count_local(root, limit + 1)? <= limit {
        let exclude = globset::GlobSet::empty();
        let opts = crate::source::ScanOptions {
            recursive: true,
            exclude: &exclude,
            exclude_dirs: None,
            skip: None,
            threads: 8,
            listing_cache: None,
            junk: crate::source::JunkFilter::default(),
            spill: None,
        };
        return Ok((crate::source::scan_local(root, &opts)?, None));
    }
    let (files, dirs) = first_level(root)?;
    let cap = share(limit, FOLDERS.min(dirs.len().max(1)), !files.is_empty());
    let mut scan = SourceScan::default();
    for name in files.iter().take(cap as usize) {
        push_local(&mut scan, &root.join(name), name.clone());
    }
    // Folders in widening rounds of evenly spread picks, until the sample is
    // full: a few large folders fill it at once; many small unit folders
    // (a million files in 200,000 cases) are sampled by the thousand.
    let mut picked = vec![false; dirs.len()];
    let mut count = 0;
    'rounds: for round in SAMPLE_ROUNDS {
        for i in spread(dirs.len(), round) {
            if picked[i] {
                continue;
            }
            if scan.files.len() as u64 >= limit {
                break 'rounds;
            }
            picked[i] = true;
            count += 1;
            let mut taken = 0;
            walk_local(root, &dirs[i], cap, &mut taken, &mut scan);
        }
    }
    scan.files.truncate(limit as usize);
    Ok(sampled(scan, limit, count, dirs.len()))
}

/// A sample's files in path order, with what it covered.
fn sampled(
    mut scan: SourceScan,
    limit: u64,
    picked: usize,
    seen: usize,
) -> (SourceScan, Option<Sample>) {
    scan.files.sort();
    let sample = Sample {
        limit,
        folders_sampled: picked as u64,
        folders_seen: seen as u64,
    };
    (scan, Some(sample))
}

/// Files under `root`, counted up to `stop`.
fn count_local(root: &Path, stop: u64) -> std::io::Result<u64> {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)?.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => n += 1,
                Err(_) => {}
            }
            if n >= stop {
                return Ok(n);
            }
        }
    }
    Ok(n)
}

/// The root's file names and folder names, sorted, junk left out.
fn first_level(root: &Path) -> std::io::Result<(Vec<String>, Vec<String>)> {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(root)?.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let is_dir = std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir());
        let probe = if is_dir {
            format!("{name}/x")
        } else {
            name.clone()
        };
        if is_junk_path(&probe) {
            continue;
        }
        if is_dir {
            dirs.push(name)
        } else {
            files.push(name)
        }
    }
    files.sort();
    dirs.sort();
    Ok((files, dirs))
}

fn walk_local(root: &Path, rel_dir: &str, cap: u64, taken: &mut u64, scan: &mut SourceScan) {
    let Ok(entries) = std::fs::read_dir(root.join(rel_dir)) else {
        return;
    };
    let mut names: Vec<(String, bool)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            Some((name, e.file_type().ok()?.is_dir()))
        })
        .collect();
    names.sort();
    for (name, is_dir) in names {
        if *taken >= cap {
            return;
        }
        let rel = format!("{rel_dir}/{name}");
        if is_dir {
            if !is_junk_path(&format!("{rel}/x")) {
                walk_local(root, &rel, cap, taken, scan);
            }
        } else if is_junk_path(&rel) {
            scan.excluded += 1;
        } else {
            push_local(scan, &root.join(&rel), rel);
            *taken += 1;
        }
    }
}

fn push_local(scan: &mut SourceScan, path: &Path, rel: String) {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    scan.files.push(&rel, size, 0, None);
}

/// A remote prefix: the whole listing when it holds at most `limit` objects,
/// else a sample spread over its first-level "folders".
pub fn sample_remote(
    root: &RemoteRoot,
    limit: u64,
) -> Result<(SourceScan, Option<Sample>), crate::source::SourceError> {
    use crate::source::remote::{scan_remote_limited, scan_remote_under};
    let exclude = globset::GlobSet::empty();
    let whole = scan_remote_limited(root, true, &exclude, &|_| {}, Some(limit + 1))?;
    if (whole.files.len() as u64 + whole.excluded) <= limit {
        return Ok((whole, None));
    }
    drop(whole);
    let top = scan_remote_under(root, "", false, limit)?;
    let mut dirs: Vec<String> = top.dirs;
    dirs.sort();
    let picks = spread(dirs.len(), FOLDERS.min(limit as usize));
    let cap = share(limit, picks.len(), !top.scan.files.is_empty());
    let mut scan = SourceScan::default();
    scan.files = top.scan.files;
    scan.files.truncate(cap as usize);
    for &i in &picks {
        let part = scan_remote_under(root, &dirs[i], true, cap)?;
        let mut part = part.scan;
        scan.files.append(&mut part.files);
        scan.excluded += part.excluded;
    }
    Ok(sampled(scan, limit, picks.len(), dirs.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_spread_from_first_to_last() {
        assert_eq!(spread(3, 8), [0, 1, 2]);
        assert_eq!(spread(100, 5), [0, 24, 49, 74, 99]);
        assert_eq!(spread(0, 8), Vec::<usize>::new());
    }

    #[test]
    fn a_large_folder_is_sampled_across_its_folders() {
        let dir = tempfile::tempdir().unwrap();
        for u in 0..40 {
            for f in ["img.png", "lab.json"] {
                let p = dir.path().join(format!("u{u:02}"));
                std::fs::create_dir_all(&p).unwrap();
                std::fs::write(p.join(f), "x").unwrap();
            }
        }
        let (scan, sample) = sample_local(dir.path(), 30).unwrap();
        let sample = sample.expect("sampled");
        assert_eq!(sample.folders_seen, 40);
        assert!((8..40).contains(&sample.folders_sampled), "{sample:?}");
        assert_eq!(
            scan.files.len(),
            30,
            "small folders: the sample widens until full"
        );
        assert!(
            scan.files.iter().any(|f| f.rel.starts_with("u39/")),
            "the last folder is in"
        );
        let (all, none) = sample_local(dir.path(), 1000).unwrap();
        assert!(none.is_none());
        assert_eq!(all.files.len(), 80);
    }
}
