//! Remote sources through opendal: `s3://`, `gs://`, `azblob://`, `sftp://`.
//!
//! A root URL names a service and a prefix; `connection` (from the recipe,
//! usually `${ENV}`) and the services' usual environment variables configure
//! it. Listing is streamed page by page; objects keep their size and a
//! fingerprint of ETag + last-modified, which keys the checksum cache.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{StreamExt, TryStreamExt};
use globset::GlobSet;
use opendal::Operator;
use sha1::{Digest, Sha1};

use super::files::FileList;
use super::junk::{JunkFilter, is_junk_path};
use super::listing_journal::{self, ListingJournal, Object, PartKey, Reached};
use super::local::SourceScan;
use super::{SourceError, SourceErrorKind};
use crate::spill::SpillArea;

/// A remote root: the operator (rooted at the prefix) and the URL as written.
#[derive(Clone)]
pub struct RemoteRoot {
    pub url: String,
    pub op: Operator,
    /// `url` + `/`: what names its objects in cache keys.
    key_prefix: String,
    /// The service's endpoint, when set: with `url`, which store a listing's
    /// journal is of.
    endpoint: Option<String>,
}

impl std::fmt::Debug for RemoteRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The operator holds credentials: never print it.
        f.debug_struct("RemoteRoot")
            .field("url", &self.url)
            .finish()
    }
}

/// Why a remote root cannot be opened: its URL or its storage's
/// configuration, before any request is made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum RemoteError {
    #[error("`{url}` is not a URL")]
    #[diagnostic(code(synup::source::not_a_url))]
    NotAUrl { url: String },
    #[error("`{url}` names no bucket or host")]
    #[diagnostic(code(synup::source::no_bucket))]
    NoBucket { url: String },
    #[error("`{scheme}://` is not a source synup reads (use s3://, gs://, azblob://, sftp://)")]
    #[diagnostic(code(synup::source::scheme))]
    Scheme { scheme: String },
    /// The service refused the settings (opendal's `ConfigInvalid`).
    #[error("{message}")]
    #[diagnostic(code(synup::source::config))]
    Config { url: String, message: String },
    #[error("the storage's configuration has no `{key}`")]
    #[diagnostic(code(synup::source::storage_config))]
    StorageKey { key: &'static str },
    #[error("storage provider `{provider}` cannot be read as a source")]
    #[diagnostic(code(synup::source::storage_provider))]
    Provider { provider: String },
    #[error(
        "sftp storages with a password are not supported (opendal's sftp uses keys); use a key, or a `sftp://` source with `connection.key`"
    )]
    #[diagnostic(code(synup::source::sftp_password))]
    SftpPassword,
}

/// The schemes synup reads from.
pub const SCHEMES: &[&str] = &["s3", "gs", "azblob", "sftp"];

/// Connection keys that are not secret (SPEC 2: everything else prints as `***`).
pub fn is_public_key(k: &str) -> bool {
    matches!(k, "endpoint" | "region" | "root")
}

/// Builds the operator for `url` (`scheme://bucket-or-host/prefix`).
pub fn open(url: &str, connection: &BTreeMap<String, String>) -> Result<RemoteRoot, RemoteError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| RemoteError::NotAUrl { url: url.into() })?;
    let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(RemoteError::NoBucket { url: url.into() });
    }
    let root = format!("/{}", prefix.trim_matches('/'));
    let mut cfg: BTreeMap<String, String> = BTreeMap::new();
    let service = match scheme {
        "s3" => {
            cfg.insert("bucket".into(), authority.into());
            "s3"
        }
        "gs" | "gcs" => {
            cfg.insert("bucket".into(), authority.into());
            "gcs"
        }
        "azblob" => {
            cfg.insert("container".into(), authority.into());
            "azblob"
        }
        "sftp" => {
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u.to_owned()), h),
                None => (None, authority),
            };
            // openssh's form, which carries the port.
            cfg.insert("endpoint".into(), format!("ssh://{hostport}"));
            if let Some(u) = user {
                cfg.insert("user".into(), u);
            }
            "sftp"
        }
        other => {
            return Err(RemoteError::Scheme {
                scheme: other.into(),
            });
        }
    };
    for (k, v) in connection {
        cfg.insert(k.clone(), v.clone());
    }
    cfg.insert("root".into(), root);
    super::credentials::fill(service, &mut cfg, &super::credentials::process_env);
    tracing::debug!(
        url,
        service,
        settings = ?cfg.keys().collect::<Vec<_>>(),
        "opening a remote root"
    );
    let endpoint = cfg.get("endpoint").cloned();
    let handle = crate::io_runtime::handle();
    let _guard = handle.enter();
    let op = Operator::via_iter(service, cfg).map_err(|e| RemoteError::Config {
        url: url.into(),
        message: short(&e),
    })?;
    let url = url.trim_end_matches('/').to_owned();
    Ok(RemoteRoot {
        key_prefix: format!("{url}/"),
        url,
        op,
        endpoint,
    })
}

/// A [`SourceError`] of the kind an opendal error is, with `message`.
fn source_error(e: &opendal::Error, message: String) -> SourceError {
    let kind = match e.kind() {
        opendal::ErrorKind::NotFound => SourceErrorKind::NotFound,
        opendal::ErrorKind::PermissionDenied => SourceErrorKind::PermissionDenied,
        _ => SourceErrorKind::Unavailable,
    };
    SourceError::new(kind, message)
}

/// An opendal error without its context dump (which can name credentials' keys).
pub fn short(e: &opendal::Error) -> String {
    let kind = match e.kind() {
        opendal::ErrorKind::NotFound => "not found",
        opendal::ErrorKind::PermissionDenied => "permission denied",
        opendal::ErrorKind::ConfigInvalid => "invalid configuration",
        opendal::ErrorKind::RateLimited => "rate limited",
        _ => "",
    };
    // The cause says what really went wrong ("connection refused", "NoSuchBucket").
    let mut msg =
        crate::error_chain::with_causes(e.message().to_owned(), std::error::Error::source(e));
    if msg.contains("signing") && e.kind() == opendal::ErrorKind::ConfigInvalid
        || msg == "signing http request"
        || msg.contains("failed to load signing credential")
    {
        msg.push_str(" (no credentials found: set them in `connection`, the provider's environment variables, or its CLI's login and profile files; `-vv` logs which sources were tried)");
    }
    let msg: String = msg.chars().take(400).collect();
    if kind.is_empty() {
        msg
    } else {
        format!("{kind}: {msg}")
    }
}

/// An object's version tag: its ETag, or else its last-modified time.
fn version_tag(etag: Option<String>, modified: Option<String>) -> Option<String> {
    etag.or_else(|| modified.map(|m| format!("modified:{m}")))
}

/// A stable number from an object's version tag, standing in for mtime in the
/// checksum cache's key.
pub fn fingerprint(tag: Option<&str>) -> i64 {
    let d = Sha1::digest(tag.unwrap_or_default().as_bytes());
    i64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Lists every object under the root, page by page, after the junk list and
/// `exclude`; `progress` is called with the running count.
///
/// Past its share of `spill`'s budget, the listing is sorted in runs there
/// and stored, as a local one is: a bucket of millions of objects is not
/// held whole. With a `journal` path, a recursive listing journals what it
/// has listed there, and goes on from where an interrupted one stopped
/// (`source::listing_journal`).
pub fn scan_remote(
    root: &RemoteRoot,
    recursive: bool,
    exclude: &GlobSet,
    junk: JunkFilter<'_>,
    progress: &(dyn Fn(u64) + Sync),
    spill: Option<&SpillArea>,
    journal: Option<&Path>,
) -> Result<SourceScan, SourceError> {
    let mut pass = Pass::new(root, exclude, junk, progress, None, spill);
    pass.journal_at = journal;
    list_under(pass, "/", recursive).map(|l| l.scan)
}

/// [`scan_remote`], stopping after `limit` objects (explore's sample).
pub fn scan_remote_limited(
    root: &RemoteRoot,
    recursive: bool,
    exclude: &GlobSet,
    progress: &(dyn Fn(u64) + Sync),
    limit: Option<u64>,
) -> Result<SourceScan, SourceError> {
    let pass = Pass::new(root, exclude, JunkFilter::default(), progress, limit, None);
    list_under(pass, "/", recursive).map(|l| l.scan)
}

/// What one listing under a prefix found.
pub struct Listing {
    pub scan: SourceScan,
    /// Sub-"folders" seen (non-recursive listings only), as `prefix/name/`.
    pub dirs: Vec<String>,
}

/// Lists at most `limit` objects under `prefix` (`""` for the root), with the
/// folders right below it when not recursive: explore's sampler.
pub fn scan_remote_under(
    root: &RemoteRoot,
    prefix: &str,
    recursive: bool,
    limit: u64,
) -> Result<Listing, SourceError> {
    let at = if prefix.is_empty() { "/" } else { prefix };
    let exclude = GlobSet::empty();
    let pass = Pass::new(
        root,
        &exclude,
        JunkFilter::default(),
        &|_| {},
        Some(limit),
        None,
    );
    list_under(pass, at, recursive)
}

fn list_under(pass: Pass<'_>, at: &str, recursive: bool) -> Result<Listing, SourceError> {
    let mut listing = crate::io_runtime::block_on(async {
        if recursive && pass.limit.is_none() {
            pass.fanned_out(at).await
        } else {
            pass.list(at, recursive).await
        }
    })?;
    // What the listings moved to the pass's list, and what they kept (the
    // first level's), in one list; object keys are unique, so the order
    // they arrived in does not matter once sorted.
    let mut files = pass.files.into_inner().unwrap_or_else(|e| e.into_inner());
    files.append(&mut listing.scan.files);
    files
        .sort_finished(pass.spill)
        .map_err(|e| SourceError::new(SourceErrorKind::Other, e.to_string()))?;
    listing.scan.files = files;
    Ok(listing)
}

/// Objects a listing holds before it moves them to its pass's list, which
/// spills past its share: a part's list stays small however many run at once.
const MOVE_EVERY: usize = 4096;

/// Prefixes listed at once when a listing fans out.
const FAN_OUT: usize = 16;
/// The most entries (objects and folders) right below a prefix for which
/// its folders are listed one by one: about one page of a store's listing.
/// Past it (a folder per unit, say) one flat listing takes fewer requests.
const FAN_OUT_MAX: usize = 1000;
/// The most folders listed one by one; past it they are listed in
/// [`FAN_OUT`] ranges. A range's last page runs past its end (up to a page
/// of keys the next range lists too), which costs more than a request per
/// folder while folders are few: against moto, 40 folders of 500 objects
/// took 1.8x as long in ranges, 500 folders of 4 objects 0.9x.
const RANGES_PAST: usize = 4 * FAN_OUT;
/// How many single wrapper "folders" a fan-out looks through for more.
const WRAPPERS: usize = 4;

/// One listing of a root: what it filters by, and how many objects it has
/// seen across its concurrent requests.
struct Pass<'a> {
    root: &'a RemoteRoot,
    exclude: &'a GlobSet,
    junk: JunkFilter<'a>,
    progress: &'a (dyn Fn(u64) + Sync),
    limit: Option<u64>,
    seen: AtomicU64,
    /// The objects of every uncapped listing, moved here [`MOVE_EVERY`] at
    /// a time (and spilling past its share when there is a spill area).
    files: std::sync::Mutex<FileList>,
    spill: Option<&'a SpillArea>,
    /// Where a recursive listing journals its parts, if anywhere.
    journal_at: Option<&'a Path>,
}

/// How a part's listing is journaled: its number, and the key it goes on
/// after when an interrupted listing got part way through it.
#[derive(Clone, Copy)]
struct Journaled<'j> {
    journal: &'j ListingJournal,
    part: usize,
    after: Option<&'j str>,
}
impl<'a> Pass<'a> {
    fn new(
        root: &'a RemoteRoot,
        exclude: &'a GlobSet,
        junk: JunkFilter<'a>,
        progress: &'a (dyn Fn(u64) + Sync),
        limit: Option<u64>,
        spill: Option<&'a SpillArea>,
    ) -> Self {
        let mut files = FileList::default();
        if let Some(area) = spill {
            files.spill_past(area);
        }
        Pass {
            root,
            exclude,
            junk,
            progress,
            limit,
            seen: AtomicU64::new(0),
            files: std::sync::Mutex::new(files),
            spill,
            journal_at: None,
        }
    }

    /// Moves what a listing holds to the pass's list.
    fn move_files(&self, from: &mut FileList) {
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(from);
    }

    /// Everything under `at`. When the objects right below it and its
    /// "folders" fit in about a page (one delimited request, looking through
    /// up to [`WRAPPERS`] lone wrapper folders), its folders are listed
    /// [`FAN_OUT`] at once: one by one up to [`RANGES_PAST`] of them, past
    /// that (where the store can start a listing after a key) in ranges of
    /// folders, each listed flat from its first folder on. Otherwise `at` is
    /// listed flat, page by page, at the cost of that one request.
    async fn fanned_out(&self, at: &str) -> Result<Listing, SourceError> {
        let (mut here, mut excluded) = (at.to_owned(), 0);
        let mut wrappers = 0;
        let mut top = loop {
            let Some(mut top) = self.list_some(&here, false, Some(FAN_OUT_MAX)).await? else {
                tracing::debug!(prefix = %here, "more than {FAN_OUT_MAX} first-level entries: listing flat");
                let mut flat = Listing {
                    scan: SourceScan::default(),
                    dirs: Vec::new(),
                };
                flat.scan.excluded = excluded;
                let whole = PartKey {
                    at: &here,
                    from: None,
                    until: None,
                };
                return self.list_parts(flat, vec![whole]).await;
            };
            top.scan.excluded += excluded;
            let wrapper = top.dirs.len() == 1 && top.scan.files.is_empty();
            if !wrapper || wrappers == WRAPPERS {
                break top;
            }
            wrappers += 1;
            excluded = top.scan.excluded;
            here = top.dirs.pop().expect("one folder");
        };
        let mut dirs = std::mem::take(&mut top.dirs);
        // Each part: a prefix listed flat, within a range of keys.
        let parts: Vec<PartKey<'_>> =
            if dirs.len() > RANGES_PAST && self.root.op.info().capability().list_with_start_after {
                dirs.sort_unstable();
                // The ranges list the objects right below `at` again: the
                // first level's are let go, and no longer counted as seen.
                let own = top.scan.files.len() as u64 + (top.scan.excluded - excluded);
                self.seen.fetch_sub(own, Ordering::Relaxed);
                top.scan.files = FileList::default();
                top.scan.excluded = excluded;
                let ranges = key_ranges(&dirs, FAN_OUT);
                tracing::debug!(
                    prefix = %here,
                    folders = dirs.len(),
                    ranges = ranges.len(),
                    "listing flat in ranges of folders"
                );
                ranges
                    .into_iter()
                    .map(|r| PartKey {
                        at: &here,
                        from: r.from,
                        until: r.until,
                    })
                    .collect()
            } else {
                tracing::debug!(
                    prefix = %here,
                    folders = dirs.len(),
                    concurrency = FAN_OUT,
                    "listing folder by folder"
                );
                dirs.iter()
                    .map(|d| PartKey {
                        at: d,
                        from: None,
                        until: None,
                    })
                    .collect()
            };
        self.list_parts(top, parts).await
    }

    /// Lists `parts` [`FAN_OUT`] at once into the pass's list, beside `top`
    /// (what the first level kept). With a journal, the parts an interrupted
    /// listing of the same parts finished are taken from it, one it got part
    /// way through goes on after its last key, and the journal is removed
    /// once every part is listed.
    async fn list_parts(
        &self,
        mut top: Listing,
        parts: Vec<PartKey<'_>>,
    ) -> Result<Listing, SourceError> {
        let opened = self.resume(&parts, &mut top.scan)?;
        let (journal, reached) = match &opened {
            Some((j, r)) => (Some(j), r.reached.as_slice()),
            None => (None, &[][..]),
        };
        let todo = parts.iter().enumerate().filter_map(|(i, p)| {
            let journaled = journal.map(|journal| {
                let after = match reached.get(i) {
                    Some(Reached::After(key)) => Some(key.as_str()),
                    _ => None,
                };
                Journaled {
                    journal,
                    part: i,
                    after,
                }
            });
            let done = reached.get(i) == Some(&Reached::Done);
            let range = KeyRange {
                from: p.from,
                until: p.until,
            };
            (!done).then(|| self.list_some_in(p.at, true, None, range, journaled))
        });
        let mut listed = futures_util::stream::iter(todo).buffer_unordered(FAN_OUT);
        // Each part's objects are already in the pass's list.
        while let Some(part) = listed.next().await {
            top.scan.excluded += part?.expect("no cap").scan.excluded;
        }
        drop(listed);
        if let Some((journal, _)) = opened {
            journal.finish();
        }
        Ok(top)
    }

    /// Opens the pass's journal for `parts`, moving the objects it takes
    /// from an interrupted listing to the pass's list (after the junk list
    /// and `exclude`, counting what they drop in `scan`, where what was
    /// taken and a damaged journal are also told).
    fn resume(
        &self,
        parts: &[PartKey<'_>],
        scan: &mut SourceScan,
    ) -> Result<Option<(ListingJournal, listing_journal::Resumed)>, SourceError> {
        let Some(path) = self.journal_at.filter(|_| !parts.is_empty()) else {
            return Ok(None);
        };
        let identity = format!(
            "{}\n{}",
            self.root.url,
            self.root.endpoint.as_deref().unwrap_or_default()
        );
        let go_on = self.root.op.info().capability().list_with_start_after;
        let mut taken = SourceScan::default();
        let opened = ListingJournal::open(
            path,
            &identity,
            parts,
            listing_journal::now(),
            go_on,
            &mut |o: Object<'_>| {
                let kept = self.keeps(o.rel);
                self.take(o, kept, &mut taken);
                if taken.files.len() >= MOVE_EVERY {
                    self.move_files(&mut taken.files);
                }
            },
        )
        .map_err(|e| {
            SourceError::new(
                SourceErrorKind::Other,
                format!("{}: {e}; run again to list it afresh", path.display()),
            )
        })?;
        self.move_files(&mut taken.files);
        scan.excluded += taken.excluded;
        if opened.as_ref().is_some_and(|(_, r)| r.damaged) {
            scan.issues.push(super::ScanIssue::JournalDamaged {
                journal: path.display().to_string(),
            });
        }
        if let Some((_, r)) = &opened
            && r.objects > 0
        {
            scan.resumed = Some(super::ResumedListing {
                objects: r.objects,
                age_secs: r.age_secs,
            });
            tracing::info!(
                url = %self.root.url,
                objects = r.objects,
                parts_done = r.reached.iter().filter(|r| **r == Reached::Done).count(),
                parts_begun = r.reached.iter().filter(|r| matches!(r, Reached::After(_))).count(),
                parts = r.reached.len(),
                minutes_ago = r.age_secs / 60,
                "going on with an interrupted listing"
            );
        }
        Ok(opened)
    }

    /// Whether neither the junk list nor `exclude` drops the object `rel`.
    fn keeps(&self, rel: &str) -> bool {
        !(self.junk.drops(rel, is_junk_path(rel)) || self.exclude.is_match(rel))
    }

    /// Counts an object as seen, and keeps it in `scan` if it is `kept`
    /// ([`Self::keeps`]), or counts it as excluded.
    fn take(&self, o: Object<'_>, kept: bool, scan: &mut SourceScan) {
        let seen = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if seen.is_multiple_of(1000) {
            (self.progress)(seen);
        }
        if kept {
            scan.files.push(o.rel, o.size, fingerprint(o.tag), o.tag);
        } else {
            scan.excluded += 1;
        }
    }

    /// The objects under `at` (all of them, or those right below it with its
    /// "folders"), in the store's order.
    async fn list(&self, at: &str, recursive: bool) -> Result<Listing, SourceError> {
        let listing = self.list_some(at, recursive, None).await?;
        Ok(listing.expect("no cap"))
    }

    /// [`Self::list`], or `None` as soon as more than `cap` entries are seen
    /// (they are then not counted as seen).
    async fn list_some(
        &self,
        at: &str,
        recursive: bool,
        cap: Option<usize>,
    ) -> Result<Option<Listing>, SourceError> {
        self.list_some_in(at, recursive, cap, KeyRange::default(), None)
            .await
    }

    /// [`Self::list_some`] of the objects in `range` only, journaled as
    /// part of a listing when `journaled` says so.
    async fn list_some_in(
        &self,
        at: &str,
        recursive: bool,
        cap: Option<usize>,
        range: KeyRange<'_>,
        journaled: Option<Journaled<'_>>,
    ) -> Result<Option<Listing>, SourceError> {
        // The caller says which source; the message says why.
        let fail = |e: opendal::Error| source_error(&e, short(&e));
        let root = self.root;
        let mut lister = root.op.lister_with(at).recursive(recursive);
        let after = journaled.and_then(|j| j.after);
        if let Some(from) = after.or(range.from) {
            // Exclusive on every store (opendal drops GCS's inclusive start
            // key). Keys up to where a part got are skipped below all the
            // same: a store that ignored it would list them twice.
            lister = lister.start_after(from);
        }
        let mut log = journaled.map(|j| j.journal.part(j.part, after));
        let mut lister = lister.await.map_err(fail)?;
        let mut scan = SourceScan::default();
        let mut dirs = Vec::new();
        let mut counted = 0;
        while let Some(entry) = lister.try_next().await.map_err(fail)? {
            if cap.is_some_and(|cap| dirs.len() + counted as usize > cap) {
                self.seen.fetch_sub(counted, Ordering::Relaxed);
                return Ok(None);
            }
            let rel = entry.path().trim_start_matches('/');
            // Past where an interrupted listing of this part got to.
            if after.is_some_and(|after| rel <= after) {
                continue;
            }
            let meta = entry.metadata();
            if !meta.is_file() {
                if !recursive && !rel.is_empty() && rel != at.trim_start_matches('/') {
                    dirs.push(rel.to_owned());
                }
                continue;
            }
            if rel.is_empty() || rel.ends_with('/') {
                continue;
            }
            // Keys come in order: past the range, the next one lists them.
            if range.until.is_some_and(|until| rel >= until) {
                break;
            }
            // A store that ignores where to start lists from the first key:
            // what comes before the range is the previous range's.
            if range.from.is_some_and(|from| rel < from) {
                continue;
            }
            counted += 1;
            if self
                .limit
                .is_some_and(|l| self.seen.load(Ordering::Relaxed) >= l)
            {
                break;
            }
            let mut size = meta.content_length();
            let (mut etag, mut modified) = (
                meta.etag().map(str::to_owned),
                meta.last_modified().map(|t| t.to_string()),
            );
            let kept = self.keeps(rel);
            if size == 0 && etag.is_none() && kept {
                // Some services list names only: ask for the rest. (An
                // object dropped here is journaled as listed; the plan that
                // keeps it after `exclude` changed shows its listed size,
                // and apply's fresh listing finds that plan stale.)
                if let Ok(m) = root.op.stat(entry.path()).await {
                    size = m.content_length();
                    etag = m.etag().map(str::to_owned);
                    modified = m.last_modified().map(|t| t.to_string());
                }
            }
            let tag = version_tag(etag, modified);
            let object = Object {
                rel,
                size,
                tag: tag.as_deref(),
            };
            if let Some(log) = &mut log {
                log.push(&object);
            }
            self.take(object, kept, &mut scan);
            if cap.is_none() && scan.files.len() >= MOVE_EVERY {
                self.move_files(&mut scan.files);
            }
        }
        if let Some(log) = log {
            log.done();
        }
        // A capped listing (a first level) keeps its objects: it may yet be
        // given up for a flat one.
        if cap.is_none() {
            self.move_files(&mut scan.files);
        }
        Ok(Some(Listing { scan, dirs }))
    }
}

/// Keys from `from` (a folder's prefix; from the first key when `None`) up
/// to `until` (the next range's `from`; to the last key when `None`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct KeyRange<'a> {
    from: Option<&'a str>,
    until: Option<&'a str>,
}

/// Up to `most` ranges that together hold every key: split at sorted
/// `folders` so each range has about as many folders. The first range also
/// holds the keys before the first folder, each range the keys between its
/// last folder and the next range.
fn key_ranges(folders: &[String], most: usize) -> Vec<KeyRange<'_>> {
    let n = most.clamp(1, folders.len().max(1));
    let starts: Vec<&str> = (1..n)
        .map(|g| folders[g * folders.len() / n].as_str())
        .collect();
    (0..n)
        .map(|g| KeyRange {
            from: g.checked_sub(1).map(|i| starts[i]),
            until: starts.get(g).copied(),
        })
        .collect()
}

/// Lists the first page under the root, within `timeout`: whether the source
/// can be read at all (the wizard checks a path with it as it is typed).
pub fn probe(root: &RemoteRoot, timeout: std::time::Duration) -> Result<(), SourceError> {
    let fail = |e: opendal::Error| {
        source_error(&e, format!("`{}` cannot be read: {}", root.url, short(&e)))
    };
    crate::io_runtime::block_on(async {
        let first = async {
            let mut lister = root.op.lister_with("/").await.map_err(fail)?;
            lister.try_next().await.map_err(fail)?;
            Ok(())
        };
        match tokio::time::timeout(timeout, first).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::new(
                SourceErrorKind::Unavailable,
                format!(
                    "`{}` did not answer within {} s",
                    root.url,
                    timeout.as_secs()
                ),
            )),
        }
    })
}

/// SHA-1 of a remote object, streamed; `keeper` copies the bytes as they go.
pub fn sha1_remote(
    root: &RemoteRoot,
    rel: &str,
    mut keeper: Option<super::object_copies::Keeper<'_>>,
) -> Result<super::Sha1Digest, SourceError> {
    let fail = |e: opendal::Error| source_error(&e, format!("{}/{rel}: {}", root.url, short(&e)));
    crate::io_runtime::block_on(async {
        let reader = root.op.reader(rel).await.map_err(fail)?;
        let mut stream = reader.into_bytes_stream(..).await.map_err(fail)?;
        let mut h = Sha1::new();
        let mut read = 0u64;
        while let Some(chunk) = stream.try_next().await.map_err(|e| {
            SourceError::new(
                SourceErrorKind::Unavailable,
                format!("{}/{rel}: {e}", root.url),
            )
        })? {
            h.update(&chunk);
            if let Some(k) = &mut keeper {
                k.write(&chunk);
            }
            read += chunk.len() as u64;
        }
        let digest: super::Sha1Digest = h.finalize().into();
        if let Some(k) = keeper {
            k.keep(&hex::encode(digest), read);
        }
        Ok(digest)
    })
}

/// A blocking reader over a remote object (for the local store's copy).
pub fn open_read(root: &RemoteRoot, rel: &str) -> std::io::Result<impl std::io::Read + use<>> {
    let op = root.op.clone();
    let rel = rel.to_owned();
    let stream = crate::io_runtime::block_on(async move {
        let reader = op.reader(&rel).await?;
        reader.into_bytes_stream(..).await
    })
    .map_err(std::io::Error::other)?;
    let stream = stream.map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    Ok(tokio_util::io::SyncIoBridge::new_with_handle(
        reader,
        crate::io_runtime::handle().clone(),
    ))
}

/// A stream of `len` bytes from `offset` of a remote object (for uploads).
pub async fn byte_stream(
    root: &RemoteRoot,
    rel: &str,
    offset: u64,
    len: u64,
) -> Result<
    impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + use<>,
    SourceError,
> {
    let fail = |e: opendal::Error| source_error(&e, format!("{}/{rel}: {}", root.url, short(&e)));
    let reader = root.op.reader(rel).await.map_err(fail)?;
    let stream = reader
        .into_bytes_stream(offset..offset + len)
        .await
        .map_err(fail)?;
    Ok(stream.map_err(std::io::Error::other))
}

/// Whether an object exists under the root.
pub fn exists(root: &RemoteRoot, rel: &str) -> bool {
    crate::io_runtime::block_on(root.op.stat(rel.trim_start_matches("./")))
        .is_ok_and(|m| m.is_file())
}

/// Where a storage-relative path lives: a remote root, or a local folder
/// (a `file_system` storage).
pub enum StorageRoot {
    Remote(RemoteRoot),
    Local(std::path::PathBuf),
}

/// Maps a Synapse storage's provider configuration (the SDK's keys, reference
/// section 2.3) and a path relative to the storage root to where it is read.
pub fn storage_root(
    provider: &str,
    config: &serde_json::Value,
    path: &str,
) -> Result<StorageRoot, RemoteError> {
    let get = |k: &str| {
        config
            .get(k)
            .and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
    };
    let need = |key: &'static str| get(key).ok_or(RemoteError::StorageKey { key });
    let path = path.trim_start_matches('/');
    let mut conn = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            conn.insert(k.to_owned(), v);
        }
    };
    let url = match provider.to_ascii_lowercase().as_str() {
        "amazon_s3" | "s3" | "minio" | "digital_ocean" => {
            put("endpoint", get("endpoint_url"));
            put("region", get("region_name").or(Some("us-east-1".into())));
            put("access_key_id", get("access_key"));
            put("secret_access_key", get("secret_key"));
            format!("s3://{}/{path}", need("bucket_name")?)
        }
        "gcp" | "gcs" | "gs" => {
            match config.get("credentials") {
                Some(serde_json::Value::String(p)) => put("credential_path", Some(p.clone())),
                Some(obj @ serde_json::Value::Object(_)) => {
                    use base64_engine::encode;
                    put("credential", Some(encode(obj.to_string().as_bytes())));
                }
                _ => {}
            }
            put("endpoint", get("endpoint"));
            format!("gs://{}/{path}", need("bucket_name")?)
        }
        "azure" => {
            put("account_name", get("account_name"));
            put("account_key", get("account_key"));
            put("endpoint", get("endpoint"));
            let container = get("container_name").or_else(|| get("container"));
            format!(
                "azblob://{}/{path}",
                container.ok_or(RemoteError::StorageKey {
                    key: "container_name"
                })?
            )
        }
        "sftp" => {
            if get("private_key").is_none() && get("password").is_some() {
                return Err(RemoteError::SftpPassword);
            }
            put("key", get("private_key"));
            let user = get("username").map(|u| format!("{u}@")).unwrap_or_default();
            let port = get("port").unwrap_or_else(|| "22".into());
            let root = get("root_path").unwrap_or_else(|| "/".into());
            let full: Vec<&str> = [root.trim_matches('/'), path]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            format!("sftp://{user}{}:{port}/{}", need("host")?, full.join("/"))
        }
        "file_system" | "local" => {
            let location = need("location")?;
            return Ok(StorageRoot::Local(
                std::path::Path::new(&location).join(path),
            ));
        }
        other => {
            return Err(RemoteError::Provider {
                provider: other.into(),
            });
        }
    };
    open(&url, &conn).map(StorageRoot::Remote)
}

mod base64_engine {
    /// Standard base64 with padding (the GCS credential form).
    pub(super) fn encode(bytes: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for c in bytes.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

impl super::Source for RemoteRoot {
    fn list(&self, opts: &super::ListOptions<'_>) -> Result<SourceScan, SourceError> {
        scan_remote(
            self,
            opts.recursive,
            opts.exclude,
            opts.junk,
            opts.progress,
            opts.spill.as_ref(),
            opts.listing_journal.as_deref(),
        )
    }
    fn exists(&self, rel: &str) -> bool {
        exists(self, rel)
    }
    fn read(&self, rel: &str) -> Result<Vec<u8>, SourceError> {
        crate::io_runtime::block_on(self.op.read(rel))
            .map(|b| b.to_vec())
            .map_err(|e| source_error(&e, short(&e)))
    }
    fn read_if_exists(&self, rel: &str) -> Result<Option<Vec<u8>>, SourceError> {
        match crate::io_runtime::block_on(self.op.read(rel)) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(source_error(&e, short(&e))),
        }
    }
    fn sha1(
        &self,
        rel: &str,
        _head: &mut dyn FnMut(&[u8]),
    ) -> Result<super::Sha1Digest, SourceError> {
        // Remote objects are not screened: only the digest is wanted.
        sha1_remote(self, rel, None)
    }
    fn sha1_keeping(
        &self,
        rel: &str,
        size: u64,
        copies: &super::ObjectCopies,
    ) -> Result<super::Sha1Digest, SourceError> {
        sha1_remote(self, rel, copies.keeper(size))
    }
    fn open(&self, rel: &str) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(open_read(self, rel)?))
    }
    fn describe(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url)
    }
    fn cache_prefix(&self) -> &[u8] {
        self.key_prefix.as_bytes()
    }
    fn local_path(&self) -> Option<&std::path::Path> {
        None
    }
    fn remote(&self) -> Option<&RemoteRoot> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key below the prefix (objects beside the folders, before,
    /// between and after them, deep ones) is in exactly one range, whether
    /// the store starts after a folder's prefix or at it; no more ranges
    /// than asked, nor than folders.
    #[test]
    fn key_ranges_split_at_folders_and_hold_every_key_once() {
        let folders: Vec<String> = (0..40).map(|i| format!("w/p{i:03}/")).collect();
        let mut keys: Vec<String> = folders
            .iter()
            .flat_map(|f| [format!("{f}a.png"), format!("{f}deep/b.json")])
            .collect();
        keys.extend(["w/README.txt", "w/p000", "w/p005.txt", "w/zzz"].map(String::from));
        keys.extend(["w/p003/", "w/p039/"].map(String::from));
        for most in [1, 3, 16, 64] {
            let ranges = key_ranges(&folders, most);
            assert_eq!(ranges.len(), most.min(40));
            assert_eq!((ranges[0].from, ranges.last().unwrap().until), (None, None));
            for key in keys.iter().filter(|k| !k.ends_with('/')) {
                let holding = ranges
                    .iter()
                    .filter(|r| {
                        r.from.is_none_or(|f| key.as_str() > f)
                            && r.until.is_none_or(|u| key.as_str() < u)
                    })
                    .count();
                assert_eq!(holding, 1, "{key} in {most} ranges");
            }
        }
        assert_eq!(key_ranges(&["x/".to_owned()], 16).len(), 1);
    }

    #[test]
    fn storage_configurations_map_to_sources() {
        let s3 = serde_json::json!({"bucket_name": "b", "access_key": "k", "secret_key": "s", "endpoint_url": "http://127.0.0.1:9"});
        match storage_root("amazon_s3", &s3, "/data/x").unwrap() {
            StorageRoot::Remote(r) => assert_eq!(r.url, "s3://b/data/x"),
            StorageRoot::Local(_) => panic!("s3 is remote"),
        }
        match storage_root(
            "file_system",
            &serde_json::json!({"location": "/mnt"}),
            "data",
        )
        .unwrap()
        {
            StorageRoot::Local(p) => assert_eq!(p, std::path::Path::new("/mnt/data")),
            StorageRoot::Remote(_) => panic!("file_system is local"),
        }
        let e = storage_root("amazon_s3", &serde_json::json!({}), "x")
            .err()
            .unwrap();
        assert_eq!(e, RemoteError::StorageKey { key: "bucket_name" });
        assert_eq!(base64_engine::encode(b"ab"), "YWI=");
        assert_eq!(base64_engine::encode(b"abc"), "YWJj");
    }
}
