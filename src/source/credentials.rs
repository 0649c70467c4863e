//! Where a remote root's settings and credentials come from, as each cloud's
//! own CLI finds them. A recipe's `connection` always wins; then:
//!
//! - **S3**: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`;
//!   the shared `~/.aws/credentials` and `~/.aws/config` (`AWS_PROFILE` or
//!   `connection.profile`; `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`);
//!   SSO; web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, EKS);
//!   `credential_process`; container credentials (ECS); instance metadata
//!   (EC2, IMDSv2). That chain is reqsign's, which opendal runs; synup only
//!   stops switching it off. The region: `AWS_REGION`, `AWS_DEFAULT_REGION`,
//!   the profile's `region`, else `us-east-1`.
//! - **GCS**: `GOOGLE_APPLICATION_CREDENTIALS`, the application-default file
//!   `gcloud auth application-default login` writes, then the metadata server
//!   (GCE, GKE).
//! - **Azure Blob**: `AZURE_STORAGE_CONNECTION_STRING` (or
//!   `connection.connection_string`), `AZURE_STORAGE_ACCOUNT` with
//!   `AZURE_STORAGE_KEY` or `AZURE_STORAGE_SAS_TOKEN`, then Azure's chain
//!   (the Azure CLI's login, a service principal, workload identity, managed
//!   identity).
//!
//! With an `endpoint` (an emulator, MinIO, a private cloud) the lookups that
//! only make sense on the real cloud are skipped: no instance metadata for
//! S3 (it would wait for a timeout), and GCS without a key file goes
//! anonymous, as its emulators expect. Without one nothing is switched off.

use std::collections::BTreeMap;

/// Reads an environment variable; empty counts as unset. Injected so tests
/// need not touch the process environment.
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(super) fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// Fills `cfg` (the recipe's `connection` and the bucket already in it) with
/// what the environment and the user's files say for `service`.
pub(super) fn fill(service: &str, cfg: &mut BTreeMap<String, String>, env: Env<'_>) {
    match service {
        "s3" => s3(cfg, env),
        "gcs" => gcs(cfg, env),
        "azblob" => azblob(cfg, env),
        _ => {}
    }
    // What came from the environment is as secret as a `${VAR}` in the recipe.
    for (k, v) in cfg.iter() {
        if SECRET_KEYS.contains(&k.as_str()) {
            crate::secrets::register(v);
        }
    }
}

/// opendal settings whose values are credentials.
const SECRET_KEYS: [&str; 5] = [
    "secret_access_key",
    "session_token",
    "account_key",
    "sas_token",
    "credential",
];

fn default(cfg: &mut BTreeMap<String, String>, key: &str, value: Option<String>) {
    if let Some(v) = value {
        cfg.entry(key.to_owned()).or_insert(v);
    }
}

fn s3(cfg: &mut BTreeMap<String, String>, env: Env<'_>) {
    default(
        cfg,
        "endpoint",
        env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")),
    );
    default(cfg, "access_key_id", env("AWS_ACCESS_KEY_ID"));
    default(cfg, "secret_access_key", env("AWS_SECRET_ACCESS_KEY"));
    default(cfg, "session_token", env("AWS_SESSION_TOKEN"));
    let profile = cfg
        .get("profile")
        .cloned()
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned());
    let region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| profile_region(env, &profile))
        .unwrap_or_else(|| "us-east-1".to_owned());
    default(cfg, "region", Some(region));
    if let Some(endpoint) = cfg.get("endpoint").cloned() {
        default(cfg, "disable_ec2_metadata", Some("true".into()));
        if endpoint.starts_with("http://") {
            // Emulators and MinIO serve buckets as paths, not host names.
            default(cfg, "enable_virtual_host_style", Some("false".into()));
        }
    }
}

/// `region` of `profile` in the AWS config file (`[default]` or `[profile NAME]`).
fn profile_region(env: Env<'_>, profile: &str) -> Option<String> {
    let path =
        env("AWS_CONFIG_FILE").or_else(|| env("HOME").map(|h| format!("{h}/.aws/config")))?;
    let text = std::fs::read_to_string(path).ok()?;
    ini_value(&text, profile, "region")
}

/// A value from an AWS-style INI file: `key` in the section of `profile`.
fn ini_value(text: &str, profile: &str, key: &str) -> Option<String> {
    let wanted = |section: &str| {
        let s = section.trim();
        s == profile && profile == "default"
            || s.strip_prefix("profile")
                .is_some_and(|rest| rest.starts_with(char::is_whitespace) && rest.trim() == profile)
    };
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = wanted(section);
            continue;
        }
        if inside
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        }
    }
    None
}

fn gcs(cfg: &mut BTreeMap<String, String>, env: Env<'_>) {
    default(
        cfg,
        "endpoint",
        env("STORAGE_EMULATOR_HOST").map(|h| {
            if h.contains("://") {
                h
            } else {
                format!("http://{h}")
            }
        }),
    );
    default(
        cfg,
        "credential_path",
        env("GOOGLE_APPLICATION_CREDENTIALS"),
    );
    let keyed = cfg.contains_key("credential_path") || cfg.contains_key("credential");
    if cfg.contains_key("endpoint") && !keyed {
        // An emulator: no credentials to look for, none to send.
        default(cfg, "skip_signature", Some("true".into()));
        default(cfg, "disable_vm_metadata", Some("true".into()));
        default(cfg, "disable_config_load", Some("true".into()));
    }
}

fn azblob(cfg: &mut BTreeMap<String, String>, env: Env<'_>) {
    let connection_string = cfg
        .remove("connection_string")
        .or_else(|| env("AZURE_STORAGE_CONNECTION_STRING"));
    if let Some(cs) = connection_string {
        let parsed = parse_connection_string(&cs);
        // A string for another account than the recipe names is not used.
        let other_account = parsed.iter().any(|(k, v)| {
            *k == "account_name" && cfg.get("account_name").is_some_and(|mine| mine != v)
        });
        if !other_account {
            for (k, v) in parsed {
                default(cfg, k, Some(v));
            }
        }
    }
    default(cfg, "account_name", env("AZURE_STORAGE_ACCOUNT"));
    default(cfg, "account_key", env("AZURE_STORAGE_KEY"));
    default(cfg, "sas_token", env("AZURE_STORAGE_SAS_TOKEN"));
    default(cfg, "endpoint", env("AZURE_STORAGE_ENDPOINT"));
    if !cfg.contains_key("endpoint")
        && let Some(account) = cfg.get("account_name").cloned()
    {
        default(
            cfg,
            "endpoint",
            Some(format!("https://{account}.blob.core.windows.net")),
        );
    }
}

/// Azurite's well-known account (`UseDevelopmentStorage=true`).
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An Azure Storage connection string as opendal settings: the account, its
/// key or SAS token, and the blob endpoint (given, or built from the
/// protocol, account and suffix).
fn parse_connection_string(cs: &str) -> Vec<(&'static str, String)> {
    let mut parts: BTreeMap<String, String> = BTreeMap::new();
    for part in cs.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((k, v)) = part.split_once('=') {
            parts.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let get = |k: &str| parts.get(k).cloned().filter(|v| !v.is_empty());
    if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return vec![
            ("account_name", DEV_ACCOUNT.to_owned()),
            ("account_key", DEV_KEY.to_owned()),
            ("endpoint", format!("http://127.0.0.1:10000/{DEV_ACCOUNT}")),
        ];
    }
    let mut out = Vec::new();
    let account = get("accountname");
    let endpoint = get("blobendpoint").or_else(|| {
        let account = account.as_ref()?;
        let protocol = get("defaultendpointsprotocol").unwrap_or_else(|| "https".into());
        let suffix = get("endpointsuffix").unwrap_or_else(|| "core.windows.net".into());
        Some(format!("{protocol}://{account}.blob.{suffix}"))
    });
    if let Some(a) = account {
        out.push(("account_name", a));
    }
    if let Some(k) = get("accountkey") {
        out.push(("account_key", k));
    }
    if let Some(s) = get("sharedaccesssignature") {
        out.push(("sas_token", s));
    }
    if let Some(e) = endpoint {
        out.push(("endpoint", e.trim_end_matches('/').to_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(
        service: &str,
        conn: &[(&str, &str)],
        vars: &[(&str, &str)],
    ) -> BTreeMap<String, String> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = move |k: &str| vars.get(k).cloned();
        let mut cfg = conn
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        fill(service, &mut cfg, &env);
        cfg
    }

    #[test]
    fn s3_leaves_the_credential_chain_on_and_skips_instance_metadata_only_for_an_endpoint() {
        let cloud = filled("s3", &[], &[("AWS_PROFILE", "prod")]);
        assert!(!cloud.contains_key("disable_config_load"));
        assert!(!cloud.contains_key("disable_ec2_metadata"));
        assert_eq!(cloud["region"], "us-east-1");
        let emulator = filled("s3", &[("endpoint", "http://127.0.0.1:9000")], &[]);
        assert_eq!(emulator["disable_ec2_metadata"], "true");
        assert_eq!(emulator["enable_virtual_host_style"], "false");
        assert!(!emulator.contains_key("disable_config_load"));
    }

    #[test]
    fn the_region_comes_from_the_environment_then_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-1\n\n[profile prod]\n# comment\nregion=ap-northeast-2\n[profile other]\nregion = us-west-2\n",
        )
        .unwrap();
        let file = config.to_str().unwrap();
        assert_eq!(
            filled("s3", &[], &[("AWS_CONFIG_FILE", file)])["region"],
            "eu-west-1"
        );
        assert_eq!(
            filled(
                "s3",
                &[],
                &[("AWS_CONFIG_FILE", file), ("AWS_PROFILE", "prod")]
            )["region"],
            "ap-northeast-2"
        );
        assert_eq!(
            filled("s3", &[("profile", "other")], &[("AWS_CONFIG_FILE", file)])["region"],
            "us-west-2"
        );
        assert_eq!(
            filled(
                "s3",
                &[],
                &[
                    ("AWS_CONFIG_FILE", file),
                    ("AWS_DEFAULT_REGION", "sa-east-1")
                ]
            )["region"],
            "sa-east-1"
        );
        assert_eq!(
            filled("s3", &[("region", "me-south-1")], &[("AWS_REGION", "x")])["region"],
            "me-south-1"
        );
    }

    #[test]
    fn gcs_is_anonymous_only_against_an_emulator_without_a_key() {
        let cloud = filled("gcs", &[], &[]);
        assert!(!cloud.contains_key("skip_signature"));
        assert!(!cloud.contains_key("disable_vm_metadata"));
        assert!(!cloud.contains_key("disable_config_load"));
        let emulator = filled("gcs", &[], &[("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")]);
        assert_eq!(emulator["endpoint"], "http://127.0.0.1:4443");
        assert_eq!(emulator["skip_signature"], "true");
        let keyed = filled(
            "gcs",
            &[],
            &[
                ("STORAGE_EMULATOR_HOST", "127.0.0.1:4443"),
                ("GOOGLE_APPLICATION_CREDENTIALS", "/k.json"),
            ],
        );
        assert_eq!(keyed["credential_path"], "/k.json");
        assert!(!keyed.contains_key("skip_signature"));
    }

    #[test]
    fn azure_connection_strings_give_account_key_and_endpoint() {
        let cfg = filled(
            "azblob",
            &[],
            &[(
                "AZURE_STORAGE_CONNECTION_STRING",
                "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/acct/;",
            )],
        );
        assert_eq!(cfg["account_name"], "acct");
        assert_eq!(cfg["account_key"], "a2V5");
        assert_eq!(cfg["endpoint"], "http://127.0.0.1:10000/acct");
        let built = filled(
            "azblob",
            &[(
                "connection_string",
                "AccountName=prod;SharedAccessSignature=sv=1&sig=x",
            )],
            &[],
        );
        assert_eq!(built["endpoint"], "https://prod.blob.core.windows.net");
        assert_eq!(built["sas_token"], "sv=1&sig=x");
        assert!(!built.contains_key("connection_string"));
        let dev = filled(
            "azblob",
            &[("connection_string", "UseDevelopmentStorage=true")],
            &[],
        );
        assert_eq!(dev["account_name"], DEV_ACCOUNT);
        // The recipe's own settings win over the connection string.
        let mine = filled(
            "azblob",
            &[("account_name", "mine")],
            &[(
                "AZURE_STORAGE_CONNECTION_STRING",
                "AccountName=theirs;AccountKey=k",
            )],
        );
        assert_eq!(mine["account_name"], "mine");
        assert_eq!(mine["endpoint"], "https://mine.blob.core.windows.net");
    }
}
