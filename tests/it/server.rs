//! Real servers for the synapse tests: `synup serve` (started as a process,
//! stopped by pid) and the official Python SDK in its own Python 3.12 venv.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value as Json, json};

pub(crate) const TOKEN: &str = "test-token-4f1d";

/// A running `synup serve`; killed on drop.
pub(crate) struct Serve {
    child: Option<Child>,
    pub url: String,
    pub port: u16,
    pub data: PathBuf,
    seed: PathBuf,
    extra: Vec<String>,
}

impl Serve {
    /// Starts on a free port with `seed` (JSON) and extra flags.
    pub(crate) fn start(dir: &Path, seed: &Json, extra: &[&str]) -> Self {
        let data = dir.join("serve-data");
        let seed_path = dir.join("serve-seed.json");
        std::fs::create_dir_all(dir).expect("serve folder");
        std::fs::write(&seed_path, seed.to_string()).expect("seed");
        let mut s = Self {
            child: None,
            url: String::new(),
            port: 0,
            data,
            seed: seed_path,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        s.spawn("127.0.0.1:0");
        s
    }

    fn spawn(&mut self, addr: &str) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_synup"))
            .args(["serve", "--addr", addr, "--token", TOKEN, "--data"])
            .arg(&self.data)
            .arg("--seed")
            .arg(&self.seed)
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("synup serve starts");
        // The first stdout line says where it listens; it is ready by then.
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        self.port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        self.url = url;
        self.child = Some(child);
    }

    /// `kill -9` the server.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data folder.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let addr = format!("127.0.0.1:{}", self.port);
        for _ in 0..50 {
            if std::net::TcpListener::bind(&addr).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.spawn(&addr);
    }

    /// A session of synup's own client against this server.
    pub(crate) fn session(&self) -> synup::target::synapse::Session {
        let creds = synup::target::synapse::Credentials {
            host: self.url.clone(),
            host_origin: synup::target::synapse::config::Origin::Flag,
            token: synup::target::synapse::Secret::new(TOKEN),
            token_origin: synup::target::synapse::config::Origin::Flag,
        };
        synup::target::synapse::Session::new(creds, 4, 3)
    }

    /// Every unit of a collection, as the API lists them.
    pub(crate) fn units(&self, collection: u64) -> Vec<Json> {
        let s = self.session();
        s.block_on(s.client.units(synup::target::CollectionId(collection)))
            .expect("list units")
    }

    /// How many faults of each kind the server injected.
    pub(crate) fn injected(&self) -> Json {
        let s = self.session();
        s.block_on(s.client.get("_admin/faults")).expect("faults")["injected"].clone()
    }

    pub(crate) fn set_faults(&self, faults: Json) {
        let s = self.session();
        s.block_on(s.client.call(
            reqwest::Method::PUT,
            "_admin/faults",
            Some(&faults),
            synup::target::synapse::client::Repeat::Safe,
        ))
        .expect("set faults");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A seed with the given collections (API shape) and project 7.
pub(crate) fn seed(collections: Vec<Json>) -> Json {
    json!({"data_collections": collections, "projects": [{"id": 7, "title": "Review"}]})
}

/// A collection in the API's shape from a recipe's own collection (inline or file).
pub(crate) fn collection_of(recipe: &Path, id: u64) -> Json {
    let loaded = synup::recipe::load(recipe.to_str().expect("utf-8 path")).expect("recipe loads");
    let resolved = synup::recipe::resolve::resolve(&loaded).expect("recipe resolves");
    let specs: Vec<Json> = resolved
        .collection
        .specs
        .iter()
        .map(|s| {
            json!({"name": s.name, "file_type": s.file_type,
                   "extensions": s.extensions.iter().map(|e| format!(".{e}")).collect::<Vec<_>>(),
                   "is_required": s.is_required, "is_primary": s.is_primary})
        })
        .collect();
    let schema = resolved
        .collection
        .meta_schema
        .as_ref()
        .map(|m| m.schema.clone());
    json!({"id": id, "name": resolved.name, "file_specifications": specs,
           "meta": {"data_unit_meta_schema": schema}})
}

/// Points a recipe at a synapse collection: its `target` block is replaced and
/// its `collection` block is kept as the pin the backend must match.
pub(crate) fn to_synapse(recipe_text: &str, collection: u64, extra_target: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in recipe_text.lines() {
        if line.starts_with("target:") {
            skipping = true;
            out.push_str(&format!(
                "target:\n  backend: synapse\n  data_collection: {collection}\n{extra_target}"
            ));
            continue;
        }
        if skipping && (line.starts_with(' ') || line.is_empty()) {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    if !recipe_text.contains("\ntarget:") && !recipe_text.starts_with("target:") {
        out.push_str(&format!(
            "target:\n  backend: synapse\n  data_collection: {collection}\n{extra_target}"
        ));
    }
    out
}

/// `synup` with the environment pointing at this server, and a HOME of its own
/// (no config file from the machine).
pub(crate) fn synup_for(serve: &Serve, dir: &Path) -> Command {
    let mut cmd = super::harness::synup();
    cmd.current_dir(dir)
        .env("SYNAPSE_HOST", &serve.url)
        .env("SYNAPSE_ACCESS_TOKEN", TOKEN)
        .env("HOME", dir);
    cmd
}

/// The Python of a venv holding `synapse-sdk==2026.2.17`, made on first use
/// (`SYNUP_SDK_PYTHON` names an existing one).
pub(crate) fn sdk_python() -> PathBuf {
    if let Some(p) = std::env::var_os("SYNUP_SDK_PYTHON") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py");
    std::fs::create_dir_all(&root).expect("target/py");
    let lock = std::fs::File::create(root.join(".lock")).expect("lock file");
    lock.lock().expect("lock");
    let venv = root.join("sdk");
    let python = venv.join("bin/python");
    let marker = venv.join(".synapse-sdk-2026.2.17");
    if !marker.exists() {
        let ok = Command::new("python3.12")
            .env("PYENV_VERSION", "3.12.1")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(&python)
                .args(["-m", "pip", "install", "-q", "synapse-sdk==2026.2.17"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok,
            "could not make the synapse-sdk venv in {} (needs python3.12 and PyPI)",
            venv.display()
        );
        std::fs::write(&marker, "").expect("marker");
    }
    python
}
