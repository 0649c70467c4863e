//! Where the host and token come from: the recipe, then `SYNAPSE_HOST` /
//! `SYNAPSE_ACCESS_TOKEN`, then `~/.synapse/config.json` (the official CLI's
//! file, which `synup login` writes the same way: merged, mode 0600).

use std::path::PathBuf;

use serde_json::{Value as Json, json};

pub const DEFAULT_HOST: &str = "https://api.synapse.sh";

/// A secret that never prints: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        let s = s.into();
        crate::secrets::register(&s);
        Self(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Where a value was found, for `doctor` and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Recipe,
    Flag,
    Env,
    ConfigFile,
    Default,
}

impl Origin {
    pub fn describe(self) -> &'static str {
        match self {
            Origin::Recipe => "the recipe",
            Origin::Flag => "the command line",
            Origin::Env => "the environment",
            Origin::ConfigFile => "~/.synapse/config.json",
            Origin::Default => "the default",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub host: String,
    pub host_origin: Origin,
    pub token: Secret,
    pub token_origin: Origin,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ConfigError {
    #[error(
        "no Synapse access token: not in the recipe, not in SYNAPSE_ACCESS_TOKEN, not in {path}"
    )]
    #[diagnostic(
        code(synup::target::synapse::no_token),
        help("run `synup login`, or export SYNAPSE_ACCESS_TOKEN")
    )]
    NoToken { path: String },
    #[error("cannot read {path}: {message}")]
    #[diagnostic(
        code(synup::target::synapse::config_file),
        help("fix or remove the file; `synup login` rewrites it")
    )]
    Unreadable { path: String, message: String },
    #[error("cannot write {path}: {message}")]
    #[diagnostic(code(synup::target::synapse::config_file))]
    Unwritable { path: String, message: String },
}

/// `~/.synapse/config.json`.
pub fn config_path() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".synapse").join("config.json")
}

/// The config file's object, or `None` when there is no file.
pub fn read_config() -> Result<Option<serde_json::Map<String, Json>>, ConfigError> {
    let path = config_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ConfigError::Unreadable {
                path: path.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    match serde_json::from_str::<Json>(&text) {
        Ok(Json::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(ConfigError::Unreadable {
            path: path.display().to_string(),
            message: "not a JSON object".into(),
        }),
        Err(e) => Err(ConfigError::Unreadable {
            path: path.display().to_string(),
            message: format!("not valid JSON: {e}"),
        }),
    }
}

/// Resolves host and token, field by field: given value, environment, config file.
pub fn resolve(
    host: Option<(&str, Origin)>,
    token: Option<(&str, Origin)>,
) -> Result<Credentials, ConfigError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let file = read_config()?;
    let from_file = |k: &str| {
        file.as_ref()
            .and_then(|m| m.get(k))
            .and_then(Json::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (host, host_origin) = match host.filter(|(h, _)| !h.is_empty()) {
        Some((h, o)) => (h.to_owned(), o),
        None => match env("SYNAPSE_HOST") {
            Some(h) => (h, Origin::Env),
            None => match from_file("host") {
                Some(h) => (h, Origin::ConfigFile),
                None => (DEFAULT_HOST.to_owned(), Origin::Default),
            },
        },
    };
    let (token, token_origin) = match token.filter(|(t, _)| !t.is_empty()) {
        Some((t, o)) => (t.to_owned(), o),
        None => match env("SYNAPSE_ACCESS_TOKEN") {
            Some(t) => (t, Origin::Env),
            None => match from_file("access_token") {
                Some(t) => (t, Origin::ConfigFile),
                None => {
                    return Err(ConfigError::NoToken {
                        path: config_path().display().to_string(),
                    });
                }
            },
        },
    };
    Ok(Credentials {
        host: host.trim_end_matches('/').to_owned(),
        host_origin,
        token: Secret::new(token),
        token_origin,
    })
}

/// Merges `host` and `access_token` into the config file (mode 0600), as
/// `synapse login` does; other keys are kept.
pub fn write_login(host: &str, token: &Secret) -> Result<PathBuf, ConfigError> {
    let path = config_path();
    let mut config = read_config()?.unwrap_or_default();
    config.insert("host".into(), json!(host));
    config.insert("access_token".into(), json!(token.expose()));
    let dir = path.parent().expect("config path has a folder");
    let text = serde_json::to_string_pretty(&Json::Object(config)).unwrap_or_default() + "\n";
    std::fs::create_dir_all(dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            crate::fs_write::write(&path, crate::fs_write::Access::Private, text.as_bytes())
                .map_err(|e| e.to_string())
        })
        .map_err(|message| ConfigError::Unwritable {
            path: path.display().to_string(),
            message,
        })?;
    Ok(path)
}
