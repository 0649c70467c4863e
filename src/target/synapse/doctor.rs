//! `synup doctor`: is the Synapse configuration usable? The config file, the
//! credentials it and the environment give, the host, the token, the storage.

use serde::Serialize;
use serde_json::Value as Json;

use super::{Session, config};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Error,
}

/// One check: its name, its outcome, and what it found (for people).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub message: String,
}

fn check(name: &'static str, status: Status, message: String) -> Check {
    Check {
        check: name,
        status,
        message,
    }
}

/// Runs every check, in order; later ones are skipped when an earlier one
/// they need failed (no host without credentials, no storage without a token).
pub fn checks() -> Vec<Check> {
    let mut checks = Vec::new();
    let path = config::config_path();
    match config::read_config() {
        Ok(Some(conf)) => {
            checks.push(check(
                "config_file",
                Status::Ok,
                format!("{} is valid JSON", path.display()),
            ));
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(&path) {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    checks.push(check(
                        "config_permissions",
                        Status::Warning,
                        format!(
                            "{} is mode {mode:o}; run `chmod 600 {}`",
                            path.display(),
                            path.display()
                        ),
                    ));
                } else {
                    checks.push(check(
                        "config_permissions",
                        Status::Ok,
                        format!("mode {mode:o}"),
                    ));
                }
            }
            for key in ["host", "access_token"] {
                if conf
                    .get(key)
                    .and_then(Json::as_str)
                    .is_none_or(str::is_empty)
                {
                    checks.push(check("config_auth", Status::Warning, format!("`{key}` is missing from the config file (the environment may still provide it)")));
                }
            }
        }
        Ok(None) => checks.push(check(
            "config_file",
            Status::Warning,
            format!(
                "{} does not exist; run `synup login` (environment variables are used meanwhile)",
                path.display()
            ),
        )),
        Err(e) => checks.push(check("config_file", Status::Error, e.to_string())),
    }
    let creds = match config::resolve(None, None) {
        Ok(c) => {
            checks.push(check(
                "credentials",
                Status::Ok,
                format!(
                    "host {} (from {}), token from {}",
                    c.host,
                    c.host_origin.describe(),
                    c.token_origin.describe()
                ),
            ));
            Some(c)
        }
        Err(e) => {
            checks.push(check("credentials", Status::Error, e.to_string()));
            None
        }
    };
    if let Some(creds) = creds {
        let s = Session::new(creds, 2, 1);
        match s.block_on(s.client.agents()) {
            Ok(_) => {
                checks.push(check(
                    "host",
                    Status::Ok,
                    format!("{} answers", s.client.host()),
                ));
                checks.push(check("token", Status::Ok, "the token is accepted".into()));
            }
            Err(e) if e.is_auth() => {
                checks.push(check(
                    "host",
                    Status::Ok,
                    format!("{} answers", s.client.host()),
                ));
                checks.push(check(
                    "token",
                    Status::Error,
                    format!("the token is invalid or expired ({e})"),
                ));
            }
            Err(e) => checks.push(check(
                "host",
                Status::Error,
                format!("{} is not reachable: {e}", s.client.host()),
            )),
        }
        let token_ok = checks
            .iter()
            .any(|c| c.check == "token" && c.status == Status::Ok);
        if token_ok {
            match s.block_on(s.client.default_storage()) {
                Ok(Some(st)) => checks.push(check(
                    "storage",
                    Status::Ok,
                    format!(
                        "default storage {} ({})",
                        st.get("id").map(Json::to_string).unwrap_or_default(),
                        st.get("provider").and_then(Json::as_str).unwrap_or("?")
                    ),
                )),
                Ok(None) => checks.push(check(
                    "storage",
                    Status::Error,
                    "the backend lists no internal storage".into(),
                )),
                Err(e) => checks.push(check(
                    "storage",
                    Status::Error,
                    format!("storages are not reachable: {e}"),
                )),
            }
        }
    }
    checks
}
