//! The executor for a `synapse` target.
//!
//! Batches of `upload.batch_size` units run a few at a time. For each batch:
//! files the backend lacks get upload URLs just before use (never stored in
//! the plan), their bytes are PUT by `upload.workers` concurrent transfers
//! (multipart when the server asks), confirmed with their SHA-1, journaled;
//! then the batch's units are registered with one `POST data_units/`. A file
//! shared by several batches is uploaded once. A registration whose answer was
//! lost is settled by listing what exists, never by sending it blindly again.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use futures_util::StreamExt;
use serde_json::{Value as Json, json};
use sha1::{Digest, Sha1};

use super::deferred::Learned;
use super::events::{ApplyEvent, ApplyObserver};
use super::execute::{ApplyError, ApplySettings, CrashPoint, crash_now};
use super::journal::Record;
use super::report::{ApplyReport, ReportTarget};
use crate::plan::model::{Plan, PlannedUnit};
use crate::target::ExistingUnit;
use crate::target::synapse::client::{Origin, UploadRequest, content_type};
use crate::target::synapse::{Session, SynapseError, existing_unit, index_units, unit_key};

/// Batches in flight at once: uploads of the next overlap registration of this one.
const PIPELINE: usize = 3;
/// Files per upload-URL request (the SDK's default batch).
const PRESIGN_BATCH: usize = 200;

pub struct RemoteTarget<'a> {
    pub session: &'a Session,
    pub collection: u64,
    pub key_field: Option<&'a str>,
    pub groups: &'a [String],
    /// Folder the plan's roots are relative to (the recipe's folder).
    pub recipe_dir: &'a Path,
    pub journal: PathBuf,
    /// The recipe's roots: where planned files are read from.
    pub roots: crate::source::Roots,
}

/// A file one of the batches is uploading, or has: its SHA-1, or why not.
type FileResult = Result<String, String>;

/// State shared by the batches of one run (one task: no locks needed).
struct Shared<'a> {
    target: &'a RemoteTarget<'a>,
    settings: &'a ApplySettings,
    observer: &'a dyn ApplyObserver,
    existing: HashMap<String, Vec<ExistingUnit>>,
    /// Files the backend holds or that this run confirmed.
    known: RefCell<HashSet<String>>,
    /// Files the backend held before this run, and those already reported as present.
    preexisting: HashSet<String>,
    reported_present: RefCell<HashSet<String>>,
    /// Files some batch is uploading; others wait for the outcome.
    in_flight: RefCell<HashMap<String, Rc<tokio::sync::OnceCell<FileResult>>>>,
    confirmed: Cell<u64>,
    /// SHA-1s of files planned with `checksum: apply`, as they are learned.
    learned: RefCell<Learned>,
}

/// What a batch did, merged into the report and journal in order of completion.
#[derive(Default)]
struct BatchOutcome {
    batch_no: u64,
    records: Vec<Record>,
    created: u64,
    unchanged: u64,
    uploaded: u64,
    bytes: u64,
    already_present: u64,
    failed_units: Vec<(String, String)>,
    failed_files: Vec<(String, String)>,
    task_failures: Vec<String>,
}

pub fn execute_remote(
    plan: &Plan,
    target: &RemoteTarget<'_>,
    settings: &ApplySettings,
    observer: &dyn ApplyObserver,
) -> Result<ApplyReport, ApplyError> {
    target
        .session
        .block_on(run(plan, target, settings, observer))
}

async fn run(
    plan: &Plan,
    target: &RemoteTarget<'_>,
    settings: &ApplySettings,
    observer: &dyn ApplyObserver,
) -> Result<ApplyReport, ApplyError> {
    let started = Instant::now();
    let client = &target.session.client;
    let apply_id = super::new_apply_id();
    let super::Run {
        mut journal,
        mut previous,
        mut report,
        creates,
        distinct,
    } = super::begin_run(
        plan,
        &apply_id,
        &target.journal,
        ReportTarget {
            backend: "synapse".into(),
            data_collection: target.collection.to_string(),
            path: client.host().to_owned(),
        },
        observer,
    )?;

    let outcome: Result<(), ApplyError> = async {
        // What exists now: units made since the plan (or by a killed run) are
        // skipped, never duplicated; files the backend has are not sent.
        let listed = client.units(target.collection).await?;
        let existing = index_units(&listed, target.key_field);
        drop(listed);
        let wanted: Vec<&str> = distinct.keys().copied().collect();
        let known = client.verify_checksums(&wanted).await?;
        let shared = Shared {
            target,
            settings,
            observer,
            existing,
            preexisting: known.clone(),
            reported_present: RefCell::new(HashSet::new()),
            known: RefCell::new(known),
            in_flight: RefCell::new(HashMap::new()),
            confirmed: Cell::new(0),
            learned: RefCell::new(Learned::new(std::mem::take(&mut previous.learned))),
        };
        let batches = creates.chunks(settings.batch_size.max(1)).enumerate();
        let mut stream = futures_util::stream::iter(batches)
            .map(|(i, batch)| run_batch(&shared, i as u64 + 1, batch))
            .buffer_unordered(PIPELINE);
        while let Some(done) = stream.next().await {
            let done = done?;
            if settings.crash_at == Some(CrashPoint::AfterCommit(done.batch_no)) {
                crash_now();
            }
            report.units.created += done.created;
            report.units.unchanged += done.unchanged;
            report.files.uploaded += done.uploaded;
            report.files.already_present += done.already_present;
            report.bytes_uploaded += done.bytes;
            for (path, reason) in &done.failed_files {
                report.fail_file(observer, path, reason);
            }
            for (key, reason) in &done.failed_units {
                report.fail_unit(observer, key, reason);
            }
            for reason in done.task_failures {
                report.failures.push(super::report::Failure {
                    kind: "task".into(),
                    key: None,
                    path: None,
                    reason,
                });
            }
            journal.append(&done.records)?;
            journal.sync()?;
        }
        Ok(())
    }
    .await;

    report.close(started.elapsed(), outcome.is_err());
    let _ = journal.append(&[Record::End {
        apply: apply_id,
        status: report.status.clone(),
    }]);
    let _ = journal.sync();
    observer.on(&ApplyEvent::Finished);
    outcome.map(|()| report)
}

/// Where a planned file is on disk, and how it is shown.
fn locate(dir: &Path, f: &crate::plan::model::PlannedFile) -> (PathBuf, String) {
    (dir.join(&*f.root).join(&f.path), f.shown())
}

async fn run_batch(
    shared: &Shared<'_>,
    batch_no: u64,
    batch: &[&PlannedUnit],
) -> Result<BatchOutcome, ApplyError> {
    let mut out = BatchOutcome {
        batch_no,
        ..BatchOutcome::default()
    };
    let observer = shared.observer;
    let mut file_errors: HashMap<String, String> = HashMap::new();

    // Files planned with `checksum: apply` are uploaded first, which tells
    // their SHA-1; then the batch goes on as if it had been planned.
    let unknown = shared.learned.borrow().unknown(batch);
    let deferred: BTreeMap<String, Upload> = unknown
        .iter()
        .map(|(id, f)| {
            let (path, shown) = locate(shared.target.recipe_dir, f);
            let upload = Upload {
                path,
                shown,
                size: f.size,
                sha1: None,
            };
            (id.clone(), upload)
        })
        .collect();
    for (id, result) in transfer(shared, deferred, &mut out).await {
        match result {
            Ok(sha) => {
                let record = shared.learned.borrow_mut().insert(unknown[&id], &sha);
                out.records.push(record);
            }
            Err(e) => {
                file_errors.insert(id, e);
            }
        }
    }
    let filled = shared.learned.borrow().fill(batch);

    let mut todo: Vec<&PlannedUnit> = Vec::with_capacity(batch.len());
    for u in filled.iter().map(|u| u.as_ref()) {
        match shared.existing.get(&u.key).and_then(|v| v.first()) {
            None => todo.push(u),
            Some(have) if have.same_files(u.files.checksums()) && have.same_meta(u.meta.get()) => {
                out.unchanged += 1;
                out.records.push(Record::Unit {
                    key: u.key.clone(),
                    id: have.id.clone(),
                });
                observer.on(&ApplyEvent::UnitUnchanged { key: &u.key });
            }
            Some(have) => out.failed_units.push((
                u.key.clone(),
                format!(
                    "conflict: the target already has unit {} with this key and other content",
                    have.id
                ),
            )),
        }
    }

    // The planned files the backend lacks.
    let mut wanted: BTreeMap<String, Upload> = BTreeMap::new();
    for u in &todo {
        for f in u.files.values() {
            let Some(sha) = &f.sha1 else { continue };
            if shared.preexisting.contains(sha)
                && shared.reported_present.borrow_mut().insert(sha.clone())
            {
                out.already_present += 1;
                observer.on(&ApplyEvent::FileStored { bytes: 0 });
            }
            if !wanted.contains_key(sha) {
                let (path, shown) = locate(shared.target.recipe_dir, f);
                let upload = Upload {
                    path,
                    shown,
                    size: f.size,
                    sha1: Some(sha.clone()),
                };
                wanted.insert(sha.clone(), upload);
            }
        }
    }
    for (sha, result) in transfer(shared, wanted, &mut out).await {
        if let Err(e) = result {
            file_errors.insert(sha, e);
        }
    }

    // Units whose files are all there are registered.
    let mut ready: Vec<&PlannedUnit> = Vec::with_capacity(todo.len());
    for u in todo {
        match super::failed_files_of(u, |id| file_errors.get(id)) {
            None => ready.push(u),
            Some(reason) => out.failed_units.push((u.key.clone(), reason)),
        }
    }
    if shared.settings.crash_at == Some(CrashPoint::BeforeCommit(batch_no)) {
        crash_now();
    }
    register(shared, &ready, &mut out).await;
    Ok(out)
}

/// Gets `files` (by SHA-1, or by identity when the SHA-1 is to be learned)
/// to the backend: those it holds are skipped, those another batch is
/// uploading are waited for, the rest are uploaded here. Returns each file's
/// outcome.
async fn transfer(
    shared: &Shared<'_>,
    mut files: BTreeMap<String, Upload>,
    out: &mut BatchOutcome,
) -> Vec<(String, FileResult)> {
    let mut results = Vec::with_capacity(files.len());
    let mut waits: Vec<(String, Rc<tokio::sync::OnceCell<FileResult>>)> = Vec::new();
    {
        let known = shared.known.borrow();
        let mut in_flight = shared.in_flight.borrow_mut();
        files.retain(|id, _| {
            if known.contains(id) {
                results.push((id.clone(), Ok(id.clone())));
                return false;
            }
            if let Some(cell) = in_flight.get(id) {
                waits.push((id.clone(), cell.clone()));
                return false;
            }
            in_flight.insert(id.clone(), Rc::new(tokio::sync::OnceCell::new()));
            true
        });
    }
    for (id, result) in upload_files(shared, &files, out).await {
        if let Ok(sha) = &result {
            shared.known.borrow_mut().insert(sha.clone());
        }
        let cell = shared.in_flight.borrow().get(&id).cloned();
        if let Some(cell) = cell {
            let _ = cell.set(result.clone());
        }
        results.push((id, result));
    }
    for (id, cell) in waits {
        // Another batch owns it; its outcome is ours.
        let result = loop {
            if let Some(r) = cell.get() {
                break r.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        results.push((id, result));
    }
    results
}

/// A file to upload: where it is, how it is shown, and its SHA-1 unless it is
/// to be learned while it is sent.
struct Upload {
    path: PathBuf,
    shown: String,
    size: u64,
    sha1: Option<String>,
}

/// Uploads files: URLs requested just before use, bytes PUT concurrently,
/// then confirmed. Returns each file's outcome (its SHA-1) by the key it was
/// given.
async fn upload_files(
    shared: &Shared<'_>,
    files: &BTreeMap<String, Upload>,
    out: &mut BatchOutcome,
) -> Vec<(String, FileResult)> {
    let client = &shared.target.session.client;
    let mut results = Vec::with_capacity(files.len());
    let entries: Vec<(&String, &Upload)> = files.iter().collect();
    for chunk in entries.chunks(PRESIGN_BATCH) {
        let names: Vec<String> = chunk
            .iter()
            .map(|(_, u)| {
                u.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "file".into())
            })
            .collect();
        let requests: Vec<UploadRequest<'_>> = chunk
            .iter()
            .zip(&names)
            .map(|((_, u), name)| UploadRequest {
                filename: name,
                size: u.size,
                content_type: content_type(name),
            })
            .collect();
        let urls = match client.presign(&requests).await {
            Ok(u) => u,
            Err(e) => {
                let reason = e.to_string();
                for (id, u) in chunk {
                    out.failed_files.push((u.shown.clone(), reason.clone()));
                    results.push(((*id).clone(), Err(reason.clone())));
                }
                continue;
            }
        };
        // PUT every file of the chunk concurrently (the client's gate bounds it).
        let roots = &shared.target.roots;
        let puts = chunk
            .iter()
            .zip(&urls)
            .zip(&names)
            .map(|(((id, u), entry), name)| async move {
                let origin = match roots.remote_of(&u.shown) {
                    Some((root, rel)) => Origin::Remote(root, rel),
                    None => Origin::Local(&u.path),
                };
                let mut hasher = u.sha1.is_none().then(Sha1::new);
                let r = put_one(
                    client,
                    entry,
                    origin,
                    u.size,
                    content_type(name),
                    hasher.as_mut(),
                )
                .await;
                let sha = u
                    .sha1
                    .clone()
                    .or_else(|| hasher.map(|h| hex::encode(h.finalize())))
                    .unwrap_or_default();
                ((*id).clone(), sha, u, entry.get("file_key").cloned(), r)
            });
        let put_results = futures_util::future::join_all(puts).await;
        let mut to_confirm = Vec::new();
        let mut pending: Vec<(String, String, &Upload)> = Vec::new();
        for (id, sha, u, key, r) in put_results {
            match (r, key) {
                (Ok(multipart), Some(file_key)) => {
                    let mut item = json!({"file_key": file_key, "checksum": sha, "size": u.size});
                    if let Some(mp) = multipart {
                        item["multipart"] = mp;
                    }
                    to_confirm.push(item);
                    pending.push((id, sha, u));
                }
                (Ok(_), None) => {
                    let reason = "the upload URL answer had no file_key".to_owned();
                    out.failed_files.push((u.shown.clone(), reason.clone()));
                    results.push((id, Err(reason)));
                }
                (Err(e), _) => {
                    let reason = e.to_string();
                    out.failed_files.push((u.shown.clone(), reason.clone()));
                    results.push((id, Err(reason)));
                }
            }
        }
        if to_confirm.is_empty() {
            continue;
        }
        match client.confirm(to_confirm).await {
            Ok(confirmed) => {
                let by_key: HashMap<String, &Json> = confirmed
                    .iter()
                    .filter_map(|r| {
                        r.get("checksum")
                            .and_then(Json::as_str)
                            .map(|c| (c.to_owned(), r))
                    })
                    .collect();
                for (id, sha, u) in pending {
                    match by_key.get(&sha) {
                        Some(r) if r.get("success").and_then(Json::as_bool) == Some(true) => {
                            out.uploaded += 1;
                            out.bytes += u.size;
                            out.records.push(Record::File { sha1: sha.clone() });
                            shared
                                .observer
                                .on(&ApplyEvent::FileStored { bytes: u.size });
                            let n = shared.confirmed.get() + 1;
                            shared.confirmed.set(n);
                            if shared.settings.crash_at == Some(CrashPoint::AfterFiles(n)) {
                                crash_now();
                            }
                            results.push((id, Ok(sha)));
                        }
                        Some(r) => {
                            let reason = format!(
                                "confirm refused: {}",
                                r.get("error")
                                    .and_then(Json::as_str)
                                    .unwrap_or("no reason given")
                            );
                            out.failed_files.push((u.shown.clone(), reason.clone()));
                            results.push((id, Err(reason)));
                        }
                        None => {
                            let reason = "confirm answered nothing for this file".to_owned();
                            out.failed_files.push((u.shown.clone(), reason.clone()));
                            results.push((id, Err(reason)));
                        }
                    }
                }
            }
            Err(e) => {
                let reason = format!("confirm failed: {e}");
                for (id, _, u) in pending {
                    out.failed_files.push((u.shown.clone(), reason.clone()));
                    results.push((id, Err(reason.clone())));
                }
            }
        }
    }
    results
}

/// PUTs one file to its URL(s); for multipart, returns the confirm's
/// `multipart` object (upload id and part ETags).
async fn put_one(
    client: &crate::target::synapse::Client,
    entry: &Json,
    origin: Origin<'_>,
    size: u64,
    ct: Option<&'static str>,
    mut hasher: Option<&mut Sha1>,
) -> Result<Option<Json>, SynapseError> {
    if let Some(url) = entry.get("presigned_url").and_then(Json::as_str) {
        client.put(url, origin, 0, size, ct, hasher).await?;
        return Ok(None);
    }
    let mp = entry
        .get("multipart")
        .filter(|m| m.is_object())
        .ok_or_else(|| SynapseError::Protocol {
            path: "data_files/presigned_upload/upload/".into(),
            message: "an entry has neither presigned_url nor multipart".into(),
        })?;
    let part_size = mp
        .get("part_size")
        .and_then(Json::as_u64)
        .unwrap_or(size)
        .max(1);
    let parts = mp
        .get("parts")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let mut etags = Vec::with_capacity(parts.len());
    for p in &parts {
        let n = p.get("part_number").and_then(Json::as_u64).unwrap_or(1);
        let url = p
            .get("presigned_url")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let offset = (n - 1) * part_size;
        let len = part_size.min(size.saturating_sub(offset));
        // Parts go in order, so a file's SHA-1 can be learned across them.
        let etag = client
            .put(url, origin, offset, len, None, hasher.as_deref_mut())
            .await?;
        etags.push(json!({"part_number": n, "etag": etag}));
    }
    Ok(Some(
        json!({"upload_id": mp.get("upload_id").cloned().unwrap_or(Json::Null), "parts": etags}),
    ))
}

/// The unit as `POST data_units/` takes it.
fn unit_payload(shared: &Shared<'_>, u: &PlannedUnit) -> Json {
    let files: serde_json::Map<String, Json> = u
        .files
        .iter()
        .map(|(spec, f)| {
            (
                spec.to_owned(),
                json!({"checksum": f.sha1, "path": f.shown()}),
            )
        })
        .collect();
    let meta: Json = serde_json::from_str(u.meta.get()).unwrap_or_else(|_| json!({}));
    let mut payload =
        json!({"data_collection": shared.target.collection, "files": files, "meta": meta});
    if !shared.target.groups.is_empty() {
        payload["groups"] = json!(shared.target.groups);
    }
    payload
}

/// Registers units; a lost answer is settled by listing, a refused batch is
/// retried unit by unit so one bad unit does not fail the others.
async fn register(shared: &Shared<'_>, ready: &[&PlannedUnit], out: &mut BatchOutcome) {
    let client = &shared.target.session.client;
    let mut remaining: Vec<&PlannedUnit> = ready.to_vec();
    let mut lookups = 0u32;
    let mut created_ids: Vec<i64> = Vec::new();
    while !remaining.is_empty() {
        let payloads: Vec<Json> = remaining.iter().map(|u| unit_payload(shared, u)).collect();
        match client.create_units(&payloads).await {
            Ok(answer) => {
                for (u, a) in remaining.iter().zip(&answer) {
                    let id = a.get("id").cloned().unwrap_or(Json::Null);
                    if a.get("created").and_then(Json::as_bool) == Some(false) {
                        out.unchanged += 1;
                        shared
                            .observer
                            .on(&ApplyEvent::UnitUnchanged { key: &u.key });
                    } else {
                        out.created += 1;
                        shared.observer.on(&ApplyEvent::UnitCreated { key: &u.key });
                        created_ids.extend(id.as_i64());
                    }
                    out.records.push(Record::Unit {
                        key: u.key.clone(),
                        id: id.to_string(),
                    });
                }
                for u in remaining.iter().skip(answer.len()) {
                    out.failed_units.push((
                        u.key.clone(),
                        "the backend's answer left this unit out".into(),
                    ));
                }
                remaining.clear();
            }
            Err(SynapseError::MaybeProcessed { message, .. }) => {
                // Find out what the lost request did before sending anything again.
                lookups += 1;
                if lookups > shared.settings.retries.max(1) {
                    for u in remaining.drain(..) {
                        out.failed_units.push((
                            u.key.clone(),
                            format!("registration answer lost repeatedly: {message}"),
                        ));
                    }
                    break;
                }
                tokio::time::sleep(crate::target::synapse::retry::backoff(lookups)).await;
                let listed = match client.units(shared.target.collection).await {
                    Ok(l) => l,
                    Err(e) => {
                        for u in remaining.drain(..) {
                            out.failed_units.push((u.key.clone(), format!("registration answer lost ({message}) and the lookup failed: {e}")));
                        }
                        break;
                    }
                };
                let found = find_existing(&listed, shared.target.key_field, &remaining);
                let mut still = Vec::new();
                for u in remaining {
                    match found.get(u.key.as_str()) {
                        Some(have)
                            if have.same_files(u.files.checksums())
                                && have.same_meta(u.meta.get()) =>
                        {
                            out.created += 1;
                            shared.observer.on(&ApplyEvent::UnitCreated { key: &u.key });
                            created_ids.extend(have.id.parse::<i64>().ok());
                            out.records.push(Record::Unit {
                                key: u.key.clone(),
                                id: have.id.clone(),
                            });
                        }
                        Some(have) => out.failed_units.push((
                            u.key.clone(),
                            format!(
                                "conflict: the target has unit {} with this key and other content",
                                have.id
                            ),
                        )),
                        None => still.push(u),
                    }
                }
                remaining = still;
            }
            Err(e) if e.status() == Some(400) && remaining.len() > 1 => {
                // One bad unit refuses the whole request: register one by one.
                let singles: Vec<&PlannedUnit> = std::mem::take(&mut remaining);
                for u in singles {
                    let mut sub = BatchOutcome::default();
                    Box::pin(register(shared, &[u], &mut sub)).await;
                    out.created += sub.created;
                    out.unchanged += sub.unchanged;
                    out.records.extend(sub.records);
                    out.failed_units.extend(sub.failed_units);
                    out.task_failures.extend(sub.task_failures);
                }
                return;
            }
            Err(e) => {
                let reason = format!("registration failed: {e}");
                for u in remaining.drain(..) {
                    out.failed_units.push((u.key.clone(), reason.clone()));
                }
            }
        }
    }
    if let (Some(project), false) = (shared.settings.project, created_ids.is_empty())
        && let Err(e) = client.create_tasks(project as u64, &created_ids).await
    {
        out.task_failures.push(format!(
            "tasks for {} unit(s) in project {project}: {e}",
            created_ids.len()
        ));
    }
}

/// Existing units matching these planned units: by key, or (without a key
/// field) by the same files.
fn find_existing<'u>(
    listed: &[Json],
    key_field: Option<&str>,
    units: &[&'u PlannedUnit],
) -> HashMap<&'u str, ExistingUnit> {
    let mut out = HashMap::new();
    match key_field {
        Some(field) => {
            let wanted: HashMap<&str, &str> = units
                .iter()
                .map(|u| (u.key.as_str(), u.key.as_str()))
                .collect();
            for l in listed {
                if let Some(k) = unit_key(l, field)
                    && let Some(key) = wanted.get(k.as_str())
                {
                    out.insert(*key, existing_unit(l));
                }
            }
        }
        None => {
            let existing: Vec<ExistingUnit> = listed.iter().map(existing_unit).collect();
            for u in units {
                if let Some(e) = existing
                    .iter()
                    .find(|e| e.same_files(u.files.checksums()) && e.same_meta(u.meta.get()))
                {
                    out.insert(u.key.as_str(), e.clone());
                }
            }
        }
    }
    out
}
