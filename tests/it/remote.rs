//! Remote sources against real servers on 127.0.0.1: moto for S3.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value as Json;

use crate::harness::{Fixture, TWO_SPECS, run};
use crate::server::{Serve, seed, synup_for, to_synapse};

/// A venv under target/py with `package` installed, made once (`.ci/run` makes it first).
fn venv(name: &str, package: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py");
    std::fs::create_dir_all(&root).unwrap();
    let lock = std::fs::File::create(root.join(format!(".{name}.lock"))).unwrap();
    lock.lock().unwrap();
    let venv = root.join(name);
    let marker = venv.join(".ok");
    if !marker.exists() {
        let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip")).args(["install", "-q", package]).status().is_ok_and(|s| s.success());
        assert!(ok, "could not install {package} into {}", venv.display());
        std::fs::write(&marker, "").unwrap();
    }
    venv
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

/// A moto S3 server; killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Self {
        let venv = venv("moto", "moto[server]");
        let port = free_port();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        wait_for_port(port);
        Self { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// The recipe's `connection` block for this server.
    pub fn connection(&self) -> String {
        format!(
            "{{endpoint: \"{}\", region: us-east-1, access_key_id: \"${{AWS_ACCESS_KEY_ID}}\", secret_access_key: \"${{AWS_SECRET_ACCESS_KEY}}\"}}",
            self.endpoint
        )
    }

    fn op(&self, bucket: &str) -> opendal::Operator {
        let conn = [
            ("endpoint", self.endpoint.as_str()),
            ("region", "us-east-1"),
            ("access_key_id", "test-key-id"),
            ("secret_access_key", SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        synup::source::remote::open(&format!("s3://{bucket}"), &conn).unwrap().op
    }

    pub fn create_bucket(&self, bucket: &str) {
        let op = self.op(bucket);
        // moto makes a bucket on an anonymous PUT of its URL.
        let url = format!("{}/{bucket}", self.endpoint);
        let status = synup::source::remote::RUNTIME
            .block_on(async { reqwest::Client::new().put(&url).send().await.map(|r| r.status()) })
            .unwrap();
        assert!(status.is_success(), "create bucket: {status}");
        drop(op);
    }

    pub fn put(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
        let op = self.op(bucket);
        let body = body.into();
        synup::source::remote::RUNTIME.block_on(op.write(key, body)).unwrap();
    }

    pub fn delete(&self, bucket: &str, key: &str) {
        let op = self.op(bucket);
        synup::source::remote::RUNTIME.block_on(op.delete(key)).unwrap();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SECRET: &str = "s3-secret-9f2e71";

/// `synup` with the S3 credentials in the environment, as a user would set them.
fn with_aws(mut cmd: Command) -> Command {
    cmd.env("AWS_ACCESS_KEY_ID", "test-key-id").env("AWS_SECRET_ACCESS_KEY", SECRET);
    cmd
}

fn seed_units(m: &Moto, bucket: &str, prefix: &str, n: usize) {
    for i in 0..n {
        m.put(bucket, &format!("{prefix}/p{i:03}/img.png"), format!("png {i}"));
        m.put(bucket, &format!("{prefix}/p{i:03}/lab.json"), format!("{{\"i\": {i}}}"));
    }
}

fn two_spec_collection() -> Json {
    serde_json::json!({"id": 42, "name": "two", "file_specifications": [
        {"name": "image_1", "file_type": "image", "extensions": [".png"], "is_required": true, "is_primary": true},
        {"name": "label_1", "file_type": "document", "extensions": [".json"], "is_required": true}]})
}

#[test]
fn an_s3_prefix_plans_and_applies_into_synup_serve_and_the_local_target() {
    let m = Moto::start();
    m.create_bucket("ml-data");
    seed_units(&m, "ml-data", "batch-7", 12);
    m.put("ml-data", "batch-7/p000/.DS_Store", "junk");
    m.put("ml-data", "batch-7/p001/notes.txt", "not a spec");
    let f = Fixture::new();
    let recipe = format!("{TWO_SPECS}source:\n  path: s3://ml-data/batch-7\n  connection: {}\n", m.connection());
    f.write("local.yaml", &recipe);
    let plan = run(with_aws(crate::harness::synup()).current_dir(f.path()).args(["plan", "local.yaml", "--format", "json"]));
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let p: Json = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(p["summary"]["create"], 12);
    assert_eq!(p["summary"]["excluded_files"], 1);
    assert_eq!(p["unmatched"][0]["path"], "p001/notes.txt");
    assert_eq!(p["units"][0]["files"]["image_1"]["root"], "s3://ml-data/batch-7");
    let applied = run(with_aws(crate::harness::synup()).current_dir(f.path()).args(["apply", "local.yaml", "--yes"]));
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    // A second plan reads nothing again: checksums are cached by URL, size and ETag.
    let again = run(with_aws(crate::harness::synup()).current_dir(f.path()).args(["plan", "local.yaml", "--stats"]));
    assert!(again.stderr.contains("0 hashed"), "{}", again.stderr);
    assert!(again.stdout.contains("12 unchanged"), "{}", again.stdout);

    // The same prefix into a synapse collection.
    let serve = Serve::start(f.path(), &seed(vec![two_spec_collection()]), &[]);
    f.write("syn.yaml", to_synapse(&recipe, 42, ""));
    let out = run(with_aws(synup_for(&serve, f.path())).args(["apply", "syn.yaml", "--yes"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let units = serve.units(42);
    assert_eq!(units.len(), 12);
    let u = units.iter().find(|u| u["meta"]["name"] == "p003").unwrap();
    let url = u["files"]["image_1"]["url"].as_str().unwrap().to_owned();
    let body = synup::source::remote::RUNTIME
        .block_on(async { reqwest::get(url).await?.text().await })
        .unwrap();
    assert_eq!(body, "png 3");
}

#[test]
fn s3_problems_name_the_source_and_never_the_secret() {
    let m = Moto::start();
    m.create_bucket("ml-data");
    seed_units(&m, "ml-data", "b", 3);
    let f = Fixture::new();
    let mut all = String::new();
    // A bucket that does not exist.
    f.write("nobucket.yaml", format!("{TWO_SPECS}source:\n  path: s3://no-such-bucket/x\n  connection: {}\n", m.connection()));
    let out = run(with_aws(crate::harness::synup()).current_dir(f.path()).args(["plan", "nobucket.yaml"]));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("s3://no-such-bucket/x"), "{}", out.stderr);
    all.push_str(&out.stderr);
    // An endpoint nobody listens on.
    let dead = format!("http://127.0.0.1:{}", free_port());
    f.write("dead.yaml", format!("{TWO_SPECS}source:\n  path: s3://ml-data/b\n  connection: {{endpoint: \"{dead}\", region: us-east-1}}\n"));
    let out = run(with_aws(crate::harness::synup()).current_dir(f.path()).args(["plan", "dead.yaml"]));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("source `s3://ml-data/b` cannot be read"), "{}", out.stderr);
    all.push_str(&out.stderr);
    // An object deleted between plan and apply: the saved plan is refused as stale, naming it.
    f.write("ok.yaml", format!("{TWO_SPECS}source:\n  path: s3://ml-data/b\n  connection: {}\n", m.connection()));
    let out = run(with_aws(crate::harness::synup()).current_dir(f.path()).args(["plan", "ok.yaml", "-o", "plan.json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    all.push_str(&std::fs::read_to_string(f.join("plan.json")).unwrap());
    m.delete("ml-data", "b/p001/img.png");
    let out = run(with_aws(crate::harness::synup()).current_dir(f.path()).args(["apply", "plan.json", "--yes"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("p001/img.png"), "{}", out.stderr);
    all.push_str(&out.stderr);
    assert!(!all.contains(SECRET), "the secret leaked:\n{all}");
}

#[test]
fn a_multi_path_recipe_mixes_a_local_folder_and_an_s3_prefix() {
    let m = Moto::start();
    m.create_bucket("labels");
    let f = Fixture::new();
    for i in 0..4 {
        f.write(&format!("images/case_{i}.png"), format!("img {i}"));
        m.put("labels", &format!("export/case_{i}.json"), format!("{{\"case\": {i}}}"));
    }
    f.write(
        "r.yaml",
        format!(
            "{TWO_SPECS}assets:\n  image_1: {{path: images}}\n  label_1:\n    path: s3://labels/export\n    connection: {}\n",
            m.connection()
        ),
    );
    let out = run(with_aws(crate::harness::synup()).current_dir(f.path()).args(["apply", "r.yaml", "--yes"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("4 created"), "{}", out.stdout);
}
