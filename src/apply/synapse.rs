//! The `synapse` target's side of apply.
//!
//! Files the backend lacks get upload URLs just before use (never stored in
//! the plan), their bytes are PUT by `upload.workers` concurrent transfers
//! (multipart when the server asks) and confirmed with their SHA-1; a batch's
//! units are registered with one `POST data_units/`. Three batches are in
//! flight, so the uploads of the next overlap the registration of this one.
//! A registration whose answer was lost is settled by listing what exists,
//! never by sending it blindly again.

use std::collections::HashMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};
use sha1::{Digest, Sha1};

use super::events::ApplyObserver;
use super::execute::{
    ApplyError, ApplySettings, Outgoing, Registered, Stored, Tally, Writer, execute,
};
use super::report::{ApplyReport, ReportTarget};
use crate::plan::model::{Plan, PlannedUnit};
use crate::target::SortedUnits;
use crate::target::synapse::client::{Origin, UploadRequest, content_type};
use crate::target::synapse::{Session, SynapseError, existing_unit, sorted_units, unit_key};
use crate::target::{ExistingUnit, ProjectId, UnitId};

/// Batches in flight at once: uploads of the next overlap registration of this one.
const PIPELINE: usize = 3;
/// Files per upload-URL request (the SDK's default batch).
const PRESIGN_BATCH: usize = 200;

/// A Synapse data collection, as apply writes into it.
pub struct SynapseTarget<'a> {
    pub session: &'a Session,
    pub collection: crate::target::CollectionId,
    pub key_field: Option<&'a str>,
    pub groups: &'a [String],
    /// Folder the plan's roots are relative to (the recipe's folder).
    pub recipe_dir: &'a Path,
    pub journal: PathBuf,
    /// The recipe's roots: where planned files are read from.
    pub roots: crate::source::Roots,
}

impl SynapseTarget<'_> {
    pub fn apply(
        &self,
        plan: &Plan,
        settings: &ApplySettings,
        observer: &dyn ApplyObserver,
    ) -> Result<ApplyReport, ApplyError> {
        let apply_id = super::new_apply_id();
        let spill =
            crate::spill::SpillArea::under(&self.recipe_dir.join(".synup"), settings.memory);
        let writer = SynapseWriter {
            target: self,
            retries: settings.retries,
            spill: spill.clone(),
            existing: None,
        };
        self.session.block_on(execute(
            plan,
            writer,
            &apply_id,
            &self.journal,
            settings,
            observer,
            &spill,
        ))
    }
}

/// One apply into a collection.
struct SynapseWriter<'a> {
    target: &'a SynapseTarget<'a>,
    retries: u32,
    spill: crate::spill::SpillArea,
    /// The collection's units by key, listed when the run starts (sorted,
    /// spilled past the budget).
    existing: Option<std::sync::Mutex<SortedUnits>>,
}

impl Writer for SynapseWriter<'_> {
    fn describe(&self) -> ReportTarget {
        ReportTarget {
            backend: "synapse".into(),
            data_collection: self.target.collection.to_string(),
            path: self.target.session.client.host().to_owned(),
        }
    }

    fn pipeline(&self) -> usize {
        PIPELINE
    }

    async fn prepare(&mut self) -> Result<(), ApplyError> {
        // What exists now: units made since the plan (or by a killed run) are
        // skipped, never duplicated.
        let t = self.target;
        let units = sorted_units(&t.session.client, t.collection, t.key_field, &self.spill).await?;
        self.existing = Some(std::sync::Mutex::new(units));
        Ok(())
    }

    async fn holds(&self, sha1s: &[&str]) -> Result<HashSet<String>, ApplyError> {
        Ok(self.target.session.client.verify_checksums(sha1s).await?)
    }

    async fn existing(
        &self,
        units: &[&PlannedUnit],
    ) -> Result<HashMap<String, ExistingUnit>, ApplyError> {
        let Some(existing) = &self.existing else {
            return Ok(HashMap::new());
        };
        let keys: Vec<&str> = units.iter().map(|u| u.key.as_str()).collect();
        let found = existing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(&keys)
            .map_err(|source| SynapseError::Spill {
                dir: self.spill.dir.display().to_string(),
                source,
            })?;
        Ok(super::execute::first_per_key(found))
    }

    async fn store(
        &self,
        files: &[Outgoing<'_>],
        tally: &Tally,
    ) -> Result<Vec<Result<Stored, String>>, ApplyError> {
        let mut results = Vec::with_capacity(files.len());
        for chunk in files.chunks(PRESIGN_BATCH) {
            results.extend(self.upload_chunk(chunk, tally).await);
        }
        Ok(results)
    }

    async fn register(
        &self,
        units: &[&PlannedUnit],
        project: Option<ProjectId>,
    ) -> Result<(Vec<Registered>, Vec<String>), ApplyError> {
        let outcomes = self.register_units(units).await;
        let created: Vec<UnitId> = outcomes
            .iter()
            .filter_map(|o| match o {
                Registered::Created(id) => id.parse().ok().map(UnitId),
                _ => None,
            })
            .collect();
        let mut task_failures = Vec::new();
        if let (Some(project), false) = (project, created.is_empty())
            && let Err(e) = self
                .target
                .session
                .client
                .create_tasks(project, &created)
                .await
        {
            task_failures.push(format!(
                "tasks for {} unit(s) in project {project}: {e}",
                created.len()
            ));
        }
        Ok((outcomes, task_failures))
    }

    fn finish(&self, _report: &ApplyReport) {}
}

impl SynapseWriter<'_> {
    /// Uploads up to [`PRESIGN_BATCH`] files: URLs requested just before
    /// use, bytes PUT concurrently, then confirmed. A file's SHA-1 the plan
    /// deferred is learned from the bytes as they go.
    async fn upload_chunk(
        &self,
        chunk: &[Outgoing<'_>],
        tally: &Tally,
    ) -> Vec<Result<Stored, String>> {
        let client = &self.target.session.client;
        let located: Vec<(PathBuf, String)> = chunk
            .iter()
            .map(|o| {
                (
                    self.target
                        .recipe_dir
                        .join(&*o.file.root)
                        .join(&o.file.path),
                    o.file.shown(),
                )
            })
            .collect();
        let names: Vec<String> = located
            .iter()
            .map(|(path, _)| {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "file".into())
            })
            .collect();
        let requests: Vec<UploadRequest<'_>> = chunk
            .iter()
            .zip(&names)
            .map(|(o, name)| UploadRequest {
                filename: name,
                size: o.file.size,
                content_type: content_type(name),
            })
            .collect();
        let urls = match client.presign(&requests).await {
            Ok(u) => u,
            Err(e) => return chunk.iter().map(|_| Err(e.to_string())).collect(),
        };
        // PUT every file of the chunk concurrently (the client's gate bounds it).
        let roots = &self.target.roots;
        let puts = chunk.iter().zip(&urls).zip(&names).zip(&located).map(
            |(((o, entry), name), (path, shown))| async move {
                let origin = match roots.remote_of(shown) {
                    Some((root, rel)) => Origin::Remote(root, rel),
                    None => Origin::Local(path),
                };
                let size = o.file.size;
                let ct = content_type(name);
                // An object the plan kept a copy of is sent from the copy,
                // hashed on the way: a damaged copy is dropped and the
                // object itself sent again to the same URL.
                let copy = match (origin, o.sha1) {
                    (Origin::Remote(..), Some(sha)) => roots.copy_of(sha, size),
                    _ => None,
                };
                if let (Some(copy), Some(sha)) = (&copy, o.sha1) {
                    let mut check = Sha1::new();
                    let r = put_one(
                        client,
                        entry,
                        Origin::Local(copy),
                        size,
                        ct,
                        Some(&mut check),
                    )
                    .await;
                    // A failed PUT is the target's problem, not the copy's:
                    // the copy stays for the next run.
                    if r.is_err() || hex::encode(check.finalize()) == sha {
                        tracing::debug!(file = %shown, "sent from the plan's copy");
                        return (sha.to_owned(), entry.get("file_key").cloned(), r);
                    }
                    tracing::debug!(file = %shown, "object copy damaged, sending the object");
                    roots.forget_copy(sha);
                }
                let mut hasher = o.sha1.is_none().then(Sha1::new);
                let r = put_one(client, entry, origin, size, ct, hasher.as_mut()).await;
                let sha = o
                    .sha1
                    .map(str::to_owned)
                    .or_else(|| hasher.map(|h| hex::encode(h.finalize())))
                    .unwrap_or_default();
                (sha, entry.get("file_key").cloned(), r)
            },
        );
        let put_results = futures_util::future::join_all(puts).await;
        let mut results: Vec<Result<Stored, String>> = Vec::with_capacity(chunk.len());
        let mut to_confirm = Vec::new();
        // Index in `results` and SHA-1 of each file awaiting confirmation.
        let mut pending: Vec<(usize, String)> = Vec::new();
        for ((sha, key, r), o) in put_results.into_iter().zip(chunk) {
            match (r, key) {
                (Ok(multipart), Some(file_key)) => {
                    let mut item =
                        json!({"file_key": file_key, "checksum": sha, "size": o.file.size});
                    if let Some(mp) = multipart {
                        item["multipart"] = mp;
                    }
                    to_confirm.push(item);
                    pending.push((results.len(), sha));
                    results.push(Err(String::new()));
                }
                (Ok(_), None) => results.push(Err("the upload URL answer had no file_key".into())),
                (Err(e), _) => results.push(Err(e.to_string())),
            }
        }
        if to_confirm.is_empty() {
            return results;
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
                for (i, sha) in pending {
                    results[i] = match by_key.get(&sha) {
                        Some(r) if r.get("success").and_then(Json::as_bool) == Some(true) => {
                            tally.file_stored();
                            roots.forget_copy(&sha);
                            Ok(Stored {
                                sha1: sha,
                                written: Some(chunk[i].file.size),
                            })
                        }
                        Some(r) => Err(format!(
                            "confirm refused: {}",
                            r.get("error")
                                .and_then(Json::as_str)
                                .unwrap_or("no reason given")
                        )),
                        None => Err("confirm answered nothing for this file".into()),
                    };
                }
            }
            Err(e) => {
                let reason = format!("confirm failed: {e}");
                for (i, _) in pending {
                    results[i] = Err(reason.clone());
                }
            }
        }
        results
    }

    /// The unit as `POST data_units/` takes it.
    fn unit_payload(&self, u: &PlannedUnit) -> Json {
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
            json!({"data_collection": self.target.collection, "files": files, "meta": meta});
        if !self.target.groups.is_empty() {
            payload["groups"] = json!(self.target.groups);
        }
        payload
    }

    /// Registers units; a lost answer is settled by listing, a refused batch
    /// is retried unit by unit so one bad unit does not fail the others.
    async fn register_units(&self, units: &[&PlannedUnit]) -> Vec<Registered> {
        let client = &self.target.session.client;
        let mut outcome: HashMap<&str, Registered> = HashMap::new();
        let mut remaining: Vec<&PlannedUnit> = units.to_vec();
        let mut lookups = 0u32;
        while !remaining.is_empty() {
            let payloads: Vec<Json> = remaining.iter().map(|u| self.unit_payload(u)).collect();
            match client.create_units(&payloads).await {
                Ok(answer) => {
                    for (u, a) in remaining.iter().zip(&answer) {
                        let id = a.get("id").cloned().unwrap_or(Json::Null).to_string();
                        let done = if a.get("created").and_then(Json::as_bool) == Some(false) {
                            Registered::Unchanged(id)
                        } else {
                            Registered::Created(id)
                        };
                        outcome.insert(&u.key, done);
                    }
                    for u in remaining.iter().skip(answer.len()) {
                        outcome.insert(
                            &u.key,
                            Registered::Failed("the backend's answer left this unit out".into()),
                        );
                    }
                    remaining.clear();
                }
                Err(SynapseError::MaybeProcessed { message, .. }) => {
                    // Find out what the lost request did before sending anything again.
                    lookups += 1;
                    if lookups > self.retries.max(1) {
                        for u in remaining.drain(..) {
                            let reason = format!("registration answer lost repeatedly: {message}");
                            outcome.insert(&u.key, Registered::Failed(reason));
                        }
                        break;
                    }
                    tokio::time::sleep(crate::target::synapse::retry::backoff(lookups)).await;
                    let listed = match client.units(self.target.collection).await {
                        Ok(l) => l,
                        Err(e) => {
                            for u in remaining.drain(..) {
                                let reason = format!(
                                    "registration answer lost ({message}) and the lookup failed: {e}"
                                );
                                outcome.insert(&u.key, Registered::Failed(reason));
                            }
                            break;
                        }
                    };
                    let found = find_existing(&listed, self.target.key_field, &remaining);
                    let mut still = Vec::new();
                    for u in remaining {
                        match found.get(u.key.as_str()) {
                            Some(have)
                                if have.same_files(u.files.checksums())
                                    && have.same_meta(u.meta.get()) =>
                            {
                                outcome.insert(&u.key, Registered::Created(have.id.clone()));
                            }
                            Some(have) => {
                                let reason = format!(
                                    "conflict: the target has unit {} with this key and other content",
                                    have.id
                                );
                                outcome.insert(&u.key, Registered::Failed(reason));
                            }
                            None => still.push(u),
                        }
                    }
                    remaining = still;
                }
                Err(e) if e.status() == Some(400) && remaining.len() > 1 => {
                    // One bad unit refuses the whole request: register one by one.
                    for u in std::mem::take(&mut remaining) {
                        let mut single = Box::pin(self.register_units(&[u])).await;
                        if let Some(done) = single.pop() {
                            outcome.insert(&u.key, done);
                        }
                    }
                }
                Err(e) => {
                    let reason = format!("registration failed: {e}");
                    for u in remaining.drain(..) {
                        outcome.insert(&u.key, Registered::Failed(reason.clone()));
                    }
                }
            }
        }
        units
            .iter()
            .map(|u| {
                outcome
                    .remove(u.key.as_str())
                    .unwrap_or_else(|| Registered::Failed("registration was not attempted".into()))
            })
            .collect()
    }
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
