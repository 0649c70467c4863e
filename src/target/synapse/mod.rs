//! The `synapse` target: credentials, a wire-compatible client, and the view of
//! a collection the planner diffs against.

pub mod client;
pub mod collection;
pub mod config;
pub mod doctor;
pub mod retry;

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

pub use client::{Client, SynapseError};
pub use config::{Credentials, Secret};

use crate::target::{ExistingUnit, KeyedUnit, SortedUnits, TargetError, TargetView};

/// A client and its credentials; sync callers block on the shared I/O
/// runtime ([`crate::io_runtime`]).
pub struct Session {
    pub client: Client,
    pub creds: Credentials,
}

impl Session {
    pub fn new(creds: Credentials, workers: usize, retries: u32) -> Self {
        let client = {
            let _guard = crate::io_runtime::handle().enter();
            Client::new(&creds, workers, retries)
        };
        Self { client, creds }
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        crate::io_runtime::block_on(f)
    }
}

/// A unit as the backend lists it, in the diff's terms.
pub fn existing_unit(u: &Json) -> ExistingUnit {
    let mut files: Vec<(String, String)> = u
        .get("files")
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(spec, f)| {
                    f.get("checksum")
                        .and_then(Json::as_str)
                        .map(|c| (spec.clone(), c.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    ExistingUnit {
        id: u.get("id").map(|i| i.to_string()).unwrap_or_default(),
        files,
        meta_json: u
            .get("meta")
            .map_or_else(|| "{}".to_owned(), Json::to_string),
    }
}

/// The unit key a backend unit carries in `meta[key_field]`.
pub fn unit_key(u: &Json, key_field: &str) -> Option<String> {
    match u.get("meta")?.get(key_field)? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What the planner sees of a synapse collection: its units (listed once,
/// page by page, into a sort that spills under `.synup/` past its budget) and
/// the files the backend holds (`verify_checksums`).
pub struct SynapseView<'a> {
    session: &'a Session,
    units: std::sync::Mutex<SortedUnits>,
}

impl<'a> SynapseView<'a> {
    pub fn open(
        session: &'a Session,
        collection: crate::target::CollectionId,
        key_field: Option<&str>,
        spill: &crate::spill::SpillArea,
    ) -> Result<Self, SynapseError> {
        let units =
            session.block_on(sorted_units(&session.client, collection, key_field, spill))?;
        Ok(Self {
            session,
            units: std::sync::Mutex::new(units),
        })
    }
}

/// A collection's units with a key (`meta[key_field]`), listed page by page
/// into a sort that spills under `.synup/` past half the budget: a collection
/// of millions is never held whole. Without a key field nothing is listed.
pub async fn sorted_units(
    client: &Client,
    collection: crate::target::CollectionId,
    key_field: Option<&str>,
    spill: &crate::spill::SpillArea,
) -> Result<SortedUnits, SynapseError> {
    let mut sorter = spill.sorter::<KeyedUnit>(2);
    let spill_error = |source: std::io::Error| SynapseError::Spill {
        dir: spill.dir.display().to_string(),
        source,
    };
    let mut seq = 0;
    if let Some(field) = key_field {
        let path = format!("data_units/?data_collection={collection}&page_size=1000");
        client
            .each_page(&path, |page| {
                for u in &page {
                    if let Some(key) = unit_key(u, field) {
                        sorter
                            .push(KeyedUnit {
                                key,
                                seq,
                                unit: existing_unit(u),
                            })
                            .map_err(spill_error)?;
                        seq += 1;
                    }
                }
                Ok(())
            })
            .await?;
    }
    Ok(SortedUnits::new(
        sorter.finish_to_run().map_err(spill_error)?,
    ))
}

fn target_error(host: &str, e: SynapseError) -> TargetError {
    TargetError::Unreadable {
        path: host.to_owned(),
        message: e.to_string(),
    }
}

impl TargetView for SynapseView<'_> {
    fn units_by_key(
        &self,
        keys: &[&str],
    ) -> Result<HashMap<String, Vec<ExistingUnit>>, TargetError> {
        self.units
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(keys)
            .map_err(|e| TargetError::Unreadable {
                path: self.session.client.host().to_owned(),
                message: format!("cannot read the spilled units back: {e}"),
            })
    }
    fn known_checksums(&self, sha1s: &[&str]) -> Result<HashSet<String>, TargetError> {
        self.session
            .block_on(self.session.client.verify_checksums(sha1s))
            .map_err(|e| target_error(self.session.client.host(), e))
    }
}
