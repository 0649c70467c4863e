//! Checksum: SHA-1 of every unit file, read with many concurrent readers, with a
//! cache keyed by (path, size, mtime) so an unchanged tree is not read again.
//!
//! The cache is a line-oriented file that is rewritten atomically (temp + rename).
//! A record cut short by a crash at the end is dropped silently; anything else
//! that does not parse makes the cache start empty, with a warning.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha1::{Digest, Sha1};

use super::Warning;

pub type Sha1Digest = [u8; 20];

const HEADER: &str = "synup-checksums v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CacheEntry {
    size: u64,
    mtime_ns: i64,
    sha1: Sha1Digest,
}

/// In memory, entries are keyed by a digest of the path (16 bytes instead of
/// the path itself: at a million files this halves the cache's footprint).
type PathKey = [u8; 16];

fn path_key(path: &str) -> PathKey {
    let d: [u8; 20] = Sha1::digest(path.as_bytes()).into();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

#[derive(Debug)]
pub struct ChecksumCache {
    path: PathBuf,
    entries: HashMap<PathKey, CacheEntry>,
    changed: bool,
    pub warning: Option<Warning>,
}

impl ChecksumCache {
    /// Opens the cache at `path`; a missing file is an empty cache.
    pub fn open(path: PathBuf) -> Self {
        let mut cache = Self {
            path,
            entries: HashMap::new(),
            changed: false,
            warning: None,
        };
        let file = match std::fs::File::open(&cache.path) {
            Ok(f) => f,
            Err(_) => return cache,
        };
        match parse(BufReader::with_capacity(1 << 20, file)) {
            Ok(entries) => cache.entries = entries,
            Err(why) => {
                cache.changed = true;
                cache.warning = Some(Warning::new(
                    "checksum_cache_rebuilt",
                    format!(
                        "checksum cache {} is unreadable ({why}); rebuilding it",
                        cache.path.display()
                    ),
                ));
            }
        }
        cache
    }

    fn lookup(&self, path: &str, size: u64, mtime_ns: i64) -> Option<Sha1Digest> {
        self.entries
            .get(&path_key(path))
            .filter(|e| e.size == size && e.mtime_ns == mtime_ns)
            .map(|e| e.sha1)
    }

    /// Rewrites the cache with this run's files, if anything changed. Errors are
    /// returned as a warning: a cache that cannot be written costs only time.
    pub fn save(
        &mut self,
        requests: &[HashRequest<'_>],
        results: &[Result<Sha1Digest, String>],
    ) -> Option<Warning> {
        let hashed = results.iter().filter(|r| r.is_ok()).count();
        if !self.changed && hashed == self.entries.len() {
            return None;
        }
        let result = (|| -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = self.path.with_extension("tmp");
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
            writeln!(out, "{HEADER}")?;
            for (req, result) in requests.iter().zip(results) {
                if let Ok(sha1) = result {
                    let path = req.cache_key();
                    writeln!(
                        out,
                        "{} {} {} {}",
                        hex::encode(sha1),
                        req.size,
                        req.mtime_ns,
                        serde_json::to_string(&path).unwrap_or_default()
                    )?;
                }
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        result.err().map(|e| {
            Warning::new(
                "checksum_cache_unwritable",
                format!("cannot write checksum cache {}: {e}", self.path.display()),
            )
        })
    }
}

fn parse(mut reader: impl BufRead) -> Result<HashMap<PathKey, CacheEntry>, String> {
    let mut entries = HashMap::new();
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(entries);
        }
        if !line.ends_with('\n') {
            // The last record was cut by a crash: drop it.
            return Ok(entries);
        }
        let record = line.trim_end_matches('\n');
        if first {
            first = false;
            if record != HEADER {
                return Err("unknown header".to_owned());
            }
            continue;
        }
        let mut parts = record.splitn(4, ' ');
        let (Some(sha), Some(size), Some(mtime), Some(path)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed record".to_owned());
        };
        let mut sha1 = [0u8; 20];
        hex::decode_to_slice(sha, &mut sha1).map_err(|_| "malformed checksum".to_owned())?;
        let size = size.parse().map_err(|_| "malformed size".to_owned())?;
        let mtime_ns = mtime.parse().map_err(|_| "malformed mtime".to_owned())?;
        let path: String = serde_json::from_str(path).map_err(|_| "malformed path".to_owned())?;
        entries.insert(
            path_key(&path),
            CacheEntry {
                size,
                mtime_ns,
                sha1,
            },
        );
    }
}

/// A file to hash.
#[derive(Debug, Clone)]
pub struct HashRequest<'a> {
    /// A remote root: the object is streamed, and cached by URL, size and ETag.
    pub remote: Option<&'a crate::source::remote::RemoteRoot>,
    /// The root folder and the path under it (joined only while hashing, so a
    /// million requests do not hold a million absolute paths).
    pub dir: &'a Path,
    pub rel: &'a str,
    pub size: u64,
    pub mtime_ns: i64,
}

impl HashRequest<'_> {
    pub fn path(&self) -> PathBuf {
        self.dir.join(self.rel)
    }

    /// The cache's key: the absolute path, or the object's URL.
    pub fn cache_key(&self) -> String {
        match self.remote {
            Some(r) => format!("{}/{}", r.url, self.rel),
            None => self.path().to_string_lossy().into_owned(),
        }
    }

    pub fn sha1(&self) -> Result<Sha1Digest, String> {
        match self.remote {
            Some(r) => crate::source::remote::sha1_remote(r, self.rel),
            None => sha1_file(&self.path()).map_err(|e| e.to_string()),
        }
    }
}

/// Counts for the plan's progress and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HashStats {
    pub cached: u64,
    pub hashed: u64,
    pub bytes_read: u64,
}

/// Hashes every request: cache lookups first (on the global pool), then the
/// misses with `readers` concurrent readers. A warm run starts no extra threads.
pub fn hash_all(
    requests: &[HashRequest<'_>],
    cache: &mut ChecksumCache,
    readers: usize,
) -> (Vec<Result<Sha1Digest, String>>, HashStats) {
    let cache_ref = &*cache;
    // One result vector: cache hits are final, misses hold a placeholder error
    // until they are read.
    let mut results: Vec<Result<Sha1Digest, String>> = requests
        .par_iter()
        .map(|r| {
            cache_ref
                .lookup(&r.cache_key(), r.size, r.mtime_ns)
                .ok_or_else(String::new)
        })
        .collect();
    let misses: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    let mut stats = HashStats {
        cached: (requests.len() - misses.len()) as u64,
        ..HashStats::default()
    };
    if !misses.is_empty() {
        let work = || {
            misses
                .par_iter()
                .map(|&i| requests[i].sha1())
                .collect::<Vec<_>>()
        };
        let hashed = match rayon::ThreadPoolBuilder::new()
            .num_threads(readers.max(1))
            .build()
        {
            Ok(pool) => pool.install(work),
            Err(_) => work(),
        };
        for (i, result) in misses.into_iter().zip(hashed) {
            if result.is_ok() {
                stats.hashed += 1;
                stats.bytes_read += requests[i].size;
            }
            results[i] = result;
        }
        cache.changed = true;
    }
    (results, stats)
}

/// SHA-1 of a file's bytes, streamed in 256 KiB chunks.
pub fn sha1_file(path: &Path) -> std::io::Result<Sha1Digest> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            hex::encode(sha1_file(&p).unwrap()),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn cache_round_trip_skips_unchanged_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let cache_path = dir.path().join("cache");
        let req = [HashRequest {
            remote: None,
            dir: dir.path(),
            rel: "f",
            size: 3,
            mtime_ns: 7,
        }];
        let mut cache = ChecksumCache::open(cache_path.clone());
        let (r, stats) = hash_all(&req, &mut cache, 2);
        assert_eq!(stats.hashed, 1);
        assert!(cache.save(&req, &r).is_none());
        let mut cache = ChecksumCache::open(cache_path.clone());
        let (r, stats) = hash_all(&req, &mut cache, 2);
        assert_eq!((stats.cached, stats.hashed), (1, 0));
        assert_eq!(
            hex::encode(r[0].as_ref().unwrap()),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        // A different mtime means the file is read again.
        let req2 = [HashRequest {
            remote: None,
            dir: dir.path(),
            rel: "f",
            size: 3,
            mtime_ns: 8,
        }];
        let (_, stats) = hash_all(&req2, &mut cache, 2);
        assert_eq!(stats.hashed, 1);
    }

    #[test]
    fn torn_last_record_is_dropped_silently() {
        let dir = tempfile::tempdir().unwrap();
        let cache_path = dir.path().join("cache");
        let good = format!(
            "{HEADER}\n{} 3 7 \"/x\"\n",
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        std::fs::write(&cache_path, format!("{good}a9993e36470681")).unwrap();
        let cache = ChecksumCache::open(cache_path);
        assert!(cache.warning.is_none());
        assert_eq!(cache.entries.len(), 1);
    }

    #[test]
    fn garbage_cache_is_rebuilt_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let cache_path = dir.path().join("cache");
        std::fs::write(&cache_path, "\u{0}\u{1}garbage\nmore\n").unwrap();
        let cache = ChecksumCache::open(cache_path);
        assert_eq!(
            cache.warning.as_ref().unwrap().code,
            "checksum_cache_rebuilt"
        );
        assert!(cache.entries.is_empty());
    }
}
