//! `synup collections` and `synup storages`: what a Synapse backend offers.

use serde_json::{Value as Json, json};
use synup::target::synapse::Session;
use synup::target::synapse::config::{self, Origin};

use super::TextOrJson as Format;
use super::exit;

#[derive(Debug, clap::Args)]
pub(super) struct ConnArgs {
    /// API host (else SYNAPSE_HOST, else ~/.synapse/config.json).
    #[arg(long)]
    host: Option<String>,
    /// Access token (else SYNAPSE_ACCESS_TOKEN, else ~/.synapse/config.json).
    #[arg(long, hide_env_values = true)]
    token: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub(super) format: Format,
}

#[derive(Debug, clap::Args)]
pub(super) struct ListArgs {
    /// One item by id; without it, the list (collections) or the default (storages).
    id: Option<u64>,
    #[command(flatten)]
    pub(super) conn: ConnArgs,
}

fn session(conn: &ConnArgs) -> Option<Session> {
    let creds = match config::resolve(
        conn.host.as_deref().map(|h| (h, Origin::Flag)),
        conn.token.as_deref().map(|t| (t, Origin::Flag)),
    ) {
        Ok(c) => c,
        Err(e) => {
            crate::console::report(e);
            return None;
        }
    };
    Some(Session::new(creds, 4, 2))
}

/// A command's JSON document on stdout, `format_version` first.
pub(super) fn print_json(v: &Json) {
    crate::console::out(&synup::json::to_pretty_versioned(v));
}

pub(super) fn collections(args: ListArgs) -> i32 {
    let Some(s) = session(&args.conn) else {
        return exit::ERROR;
    };
    let result = match args.id {
        Some(id) => s
            .block_on(s.client.collection(synup::target::CollectionId(id)))
            .map(|c| vec![c]),
        None => s.block_on(s.client.collections()),
    };
    let items = match result {
        Ok(i) => i,
        Err(e) => {
            crate::console::report(e);
            return exit::ERROR;
        }
    };
    match args.conn.format {
        Format::Json => print_json(&match args.id {
            Some(_) => json!({"format_version": 1, "data_collection": items[0]}),
            None => json!({"format_version": 1, "data_collections": items}),
        }),
        Format::Text => {
            let mut out = String::new();
            for c in &items {
                let specs: Vec<String> = c
                    .get("file_specifications")
                    .and_then(Json::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|s| {
                                let name = s.get("name").and_then(Json::as_str).unwrap_or("?");
                                let req =
                                    s.get("is_required").and_then(Json::as_bool) == Some(true);
                                format!("{name}{}", if req { "*" } else { "" })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{:>6}  {}  [{}]{}\n",
                    c.get("id").map(Json::to_string).unwrap_or_default(),
                    c.get("name").and_then(Json::as_str).unwrap_or(""),
                    specs.join(", "),
                    if c.pointer("/meta/data_unit_meta_schema")
                        .is_some_and(|v| !v.is_null())
                    {
                        "  (meta schema)"
                    } else {
                        ""
                    }
                ));
            }
            if items.is_empty() {
                out.push_str("No data collections.\n");
            } else {
                out.push_str("(* = required spec)\n");
            }
            crate::console::out(&out);
        }
    }
    exit::OK
}

/// Storage configurations hold credentials: only non-secret keys are shown.
fn redact_storage(mut s: Json) -> Json {
    if let Some(conf) = s.get_mut("configuration").and_then(Json::as_object_mut) {
        for (k, v) in conf.iter_mut() {
            let public = matches!(
                k.as_str(),
                "bucket_name"
                    | "region_name"
                    | "endpoint_url"
                    | "location"
                    | "host"
                    | "port"
                    | "root_path"
                    | "base_url"
                    | "project"
                    | "share"
            );
            if !public {
                *v = json!("***");
            }
        }
    }
    s
}

pub(super) fn storages(args: ListArgs) -> i32 {
    let Some(s) = session(&args.conn) else {
        return exit::ERROR;
    };
    let result = match args.id {
        Some(id) => s
            .block_on(s.client.storage(synup::target::StorageId(id)))
            .map(Some),
        None => s.block_on(s.client.default_storage()),
    };
    let storage = match result {
        Ok(Some(st)) => redact_storage(st),
        Ok(None) => {
            crate::console::error("the backend lists no internal storage");
            return exit::ERROR;
        }
        Err(e) => {
            crate::console::report(e);
            return exit::ERROR;
        }
    };
    match args.conn.format {
        Format::Json => print_json(&json!({"format_version": 1, "storage": storage})),
        Format::Text => crate::console::out(&format!(
            "{}  {}  ({}, {}){}\n",
            storage.get("id").map(Json::to_string).unwrap_or_default(),
            storage.get("name").and_then(Json::as_str).unwrap_or(""),
            storage
                .get("provider")
                .and_then(Json::as_str)
                .unwrap_or("?"),
            storage
                .get("category")
                .and_then(Json::as_str)
                .unwrap_or("?"),
            if storage.get("is_default").and_then(Json::as_bool) == Some(true) {
                "  default"
            } else {
                ""
            },
        )),
    }
    exit::OK
}
