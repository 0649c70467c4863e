//! Abandoned uploads are deleted (SPEC 5): a presigned PUT that is never
//! confirmed, or a chunked upload that is never finished, would otherwise
//! hold its bytes on disk forever. Anything in `uploads/` or `chunked/` not
//! written for the upload TTL is removed; the sweep runs at start and then
//! periodically, off the request path.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::AppState;

/// Sweeps now and then every `ttl / 4` (between 1 s and 10 min), forever.
pub(super) async fn sweep_forever(state: Arc<AppState>, ttl: Duration) {
    let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        let state2 = state.clone();
        let _ =
            tokio::task::spawn_blocking(move || sweep(&state2.dir, ttl, SystemTime::now())).await;
        tokio::time::sleep(every).await;
    }
}

/// Removes what was last written before `now - ttl`; returns how many entries.
pub(super) fn sweep(data: &Path, ttl: Duration, now: SystemTime) -> usize {
    let Some(cutoff) = now.checked_sub(ttl) else {
        return 0;
    };
    let mut removed = 0;
    for sub in ["uploads", "chunked"] {
        let Ok(entries) = std::fs::read_dir(data.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if stale && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_older_than_the_ttl_go() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["uploads", "chunked", "files"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            std::fs::write(dir.path().join(sub).join("x"), "x").unwrap();
        }
        let ttl = Duration::from_secs(3600);
        assert_eq!(sweep(dir.path(), ttl, SystemTime::now()), 0);
        let later = SystemTime::now() + Duration::from_secs(7200);
        assert_eq!(sweep(dir.path(), ttl, later), 2);
        assert!(dir.path().join("files/x").exists(), "stored files stay");
    }
}
