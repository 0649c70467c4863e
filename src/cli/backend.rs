//! Commands that talk to a Synapse backend directly: `doctor`, `login`,
//! `collections`, `storages`.

use serde_json::{Value as Json, json};
use synup::target::synapse::config::{self, Origin};
use synup::target::synapse::{Secret, Session};

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
    format: Format,
}

#[derive(Debug, clap::Args)]
pub(super) struct ListArgs {
    /// One item by id; without it, the list (collections) or the default (storages).
    id: Option<u64>,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, clap::Args)]
pub(super) struct LoginArgs {
    /// API host (asked on a terminal when missing).
    #[arg(long)]
    host: Option<String>,
    /// Access token (asked on a terminal when missing; never printed).
    #[arg(long)]
    token: Option<String>,
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

fn print_json(v: &Json) {
    crate::console::out(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_default()
    ));
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

pub(super) fn login(args: LoginArgs) -> i32 {
    let on_terminal = {
        use std::io::IsTerminal;
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
    };
    let ask = |what: &str, default: Option<&str>| -> Option<String> {
        use std::io::Write;
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "{what}{}: ",
            default.map(|d| format!(" [{d}]")).unwrap_or_default()
        );
        let _ = err.flush();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok()?;
        let line = line.trim().to_owned();
        match (line.is_empty(), default) {
            (true, Some(d)) => Some(d.to_owned()),
            (true, None) => None,
            (false, _) => Some(line),
        }
    };
    let host = match args.host {
        Some(h) => h,
        None if on_terminal => ask("Synapse host", Some(config::DEFAULT_HOST)).unwrap_or_default(),
        None => {
            crate::console::error("missing --host: there is no terminal to ask on");
            return exit::ERROR;
        }
    };
    let token = match args.token {
        Some(t) => t,
        None if on_terminal => match ask("Access token", None) {
            Some(t) => t,
            None => {
                crate::console::error("no token given");
                return exit::ERROR;
            }
        },
        None => {
            crate::console::error("missing --token: there is no terminal to ask on");
            return exit::ERROR;
        }
    };
    match config::write_login(host.trim_end_matches('/'), &Secret::new(token)) {
        Ok(path) => {
            crate::console::note(&format!(
                "Saved host {host} and the access token to {} (mode 0600). `synup doctor` checks them.",
                path.display()
            ));
            exit::OK
        }
        Err(e) => {
            crate::console::report(e);
            exit::ERROR
        }
    }
}

#[derive(Debug, clap::Args)]
pub(super) struct DoctorArgs {
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub(super) fn doctor(args: DoctorArgs) -> i32 {
    use synup::target::synapse::doctor::{self, Status};
    let checks = doctor::checks();
    let failed = checks.iter().any(|c| c.status == Status::Error);
    match args.format {
        Format::Json => print_json(&json!({"format_version": 1, "ok": !failed, "checks": checks})),
        Format::Text => {
            let mut out = String::new();
            for c in &checks {
                let mark = match c.status {
                    Status::Ok => "ok  ",
                    Status::Warning => "warn",
                    Status::Error => "FAIL",
                };
                out.push_str(&format!("[{mark}] {}: {}\n", c.check, c.message));
            }
            crate::console::out(&out);
        }
    }
    if failed { exit::ERROR } else { exit::OK }
}
