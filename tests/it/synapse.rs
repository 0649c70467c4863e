//! The `synapse` target against a real `synup serve`, and `synup serve` against
//! the official Python SDK.

use std::path::Path;

use serde_json::{Value as Json, json};

use crate::examples::pipelines;
use crate::harness::{Fixture, TWO_SPECS, nested_units, run};
use crate::server::{Serve, TOKEN, collection_of, sdk_python, seed, synup_for, to_synapse};

fn two_spec_collection(id: u64) -> Json {
    json!({"id": id, "name": "two", "file_specifications": [
        {"name": "image_1", "file_type": "image", "extensions": [".png"], "is_required": true, "is_primary": true},
        {"name": "label_1", "file_type": "document", "extensions": [".json"], "is_required": true}],
        "meta": {"data_unit_meta_schema": {"type": "object", "required": ["name"]}}})
}

/// A pattern-1 recipe over `n` units, aimed at collection 42 of `serve`.
fn nested_recipe(f: &Fixture, n: usize, upload: &str) {
    nested_units(f, "data", n);
    let recipe = format!("{TWO_SPECS}source: {{path: data}}\n{upload}");
    f.write("r.yaml", to_synapse(&recipe, 42, "  project: 7\n"));
}

/// Each unit key exactly once in the collection, and nothing else.
fn assert_units_once(serve: &Serve, n: usize) {
    let units = serve.units(42);
    let mut names: Vec<String> = units
        .iter()
        .map(|u| u["meta"]["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    let total = names.len();
    names.dedup();
    assert_eq!(total, names.len(), "a unit was created twice");
    assert_eq!(total, n, "units in the collection");
}

#[test]
fn the_official_sdk_drives_synup_serve_and_sees_synups_units() {
    let f = Fixture::new();
    let collection = collection_of(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/01-nested-folders.yaml"),
        42,
    );
    // Part size small enough that the SDK's 1.2 MB file goes multipart.
    let serve = Serve::start(
        f.path(),
        &seed(vec![collection]),
        &["--multipart-threshold", "1000000", "--part-size", "400000"],
    );
    let python = sdk_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/compat.py");
    std::fs::create_dir_all(f.join("sdk")).unwrap();
    let out = run(std::process::Command::new(&python)
        .arg(&script)
        .args([&serve.url, TOKEN])
        .arg(f.join("sdk"))
        .args(["42", "7"]));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let seen: Json = serde_json::from_str(out.stdout.trim()).expect("one JSON line");
    assert_eq!(seen["collections"], json!([42]));
    assert_eq!(seen["specs"], json!(["image_1", "label_1", "dicom_1"]));
    assert_eq!(seen["storage_provider"], "minio");
    assert_eq!(seen["uploaded"], 4);
    assert_eq!(seen["direct_ok"], true, "direct data_files/ upload");
    assert_eq!(seen["chunked_ok"], true, "chunked upload");
    assert_eq!(
        seen["verified"], 4,
        "verify_checksums knows the 4 files, not the unknown one"
    );
    assert_eq!(seen["created"].as_array().unwrap().len(), 2);
    assert_eq!(
        seen["created_again"], seen["created"],
        "identical units are reused"
    );
    assert_eq!(seen["tasks"], 2);
    assert_eq!(seen["listed"].as_array().unwrap().len(), 2);
    // The multipart file arrived whole: its bytes are in the store under its SHA-1.
    let big = std::fs::read(f.join("sdk/sdk_1.png")).unwrap();
    let sha = {
        use sha1::{Digest, Sha1};
        hex::encode(Sha1::digest(&big))
    };
    assert!(
        serve
            .units(42)
            .iter()
            .any(|u| u["files"]["image_1"]["checksum"] == sha)
    );

    // synup's own target applies the example; the SDK then lists exactly those units too.
    let (p, _) = pipelines();
    let recipe = std::fs::read_to_string(p.join("pipelines/01-nested-folders.yaml")).unwrap();
    p.write("pipelines/s.yaml", to_synapse(&recipe, 42, ""));
    let applied = run(synup_for(&serve, p.path()).args(["apply", "pipelines/s.yaml", "--yes"]));
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let list = run(std::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/list_units.py"))
        .args([&serve.url, TOKEN, "42"]));
    assert_eq!(list.code, 0, "{}", list.stderr);
    let listed: Json = serde_json::from_str(list.stdout.trim()).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "patient_001",
            "patient_002",
            "patient_003",
            "patient_004",
            "sdk_0",
            "sdk_1"
        ],
        "{listed}"
    );
    // The SDK downloaded every file URL it was given: synup's units carry all their files.
    let synup_units: Vec<&Json> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| {
            u["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("patient_"))
        })
        .collect();
    assert!(
        synup_units
            .iter()
            .all(|u| u["downloaded"].as_u64() >= Some(2)),
        "{listed}"
    );
}

#[test]
fn every_example_applies_to_a_synapse_target_and_replans_to_nothing() {
    let (f, recipes) = pipelines();
    let mut collections = Vec::new();
    for (i, r) in recipes.iter().enumerate() {
        collections.push(collection_of(
            &f.join(&format!("pipelines/{r}")),
            100 + i as u64,
        ));
    }
    let serve = Serve::start(f.path(), &seed(collections), &[]);
    for (i, r) in recipes.iter().enumerate() {
        let id = 100 + i as u64;
        let text = std::fs::read_to_string(f.join(&format!("pipelines/{r}"))).unwrap();
        let (name, rewritten) = if r.ends_with(".toml") {
            let mut out = String::new();
            let mut skipping = false;
            for line in text.lines() {
                if line.starts_with('[') {
                    skipping = line == "[target]";
                    if skipping {
                        out.push_str(&format!(
                            "[target]\nbackend = \"synapse\"\ndata_collection = {id}\n"
                        ));
                        continue;
                    }
                }
                if !skipping {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            (format!("s-{r}"), out)
        } else {
            (format!("s-{r}"), to_synapse(&text, id, ""))
        };
        f.write(&format!("pipelines/{name}"), rewritten);
        let path = format!("pipelines/{name}");
        let plan = run(synup_for(&serve, f.path()).args(["plan", &path, "--format", "json"]));
        assert_eq!(plan.code, 0, "{r}: {}", plan.stderr);
        let plan: Json = serde_json::from_str(&plan.stdout).unwrap();
        assert_eq!(plan["target"]["backend"], "synapse", "{r}");
        let planned = plan["summary"]["create"].as_u64().unwrap();
        let applied = run(synup_for(&serve, f.path()).args(["apply", &path, "--yes"]));
        assert_eq!(
            applied.code, 0,
            "{r}: {}\n{}",
            applied.stdout, applied.stderr
        );
        assert_eq!(serve.units(id).len() as u64, planned, "{r}");
        let again = run(synup_for(&serve, f.path()).args([
            "plan",
            &path,
            "--format",
            "json",
            "--detailed-exitcode",
        ]));
        assert_eq!(
            again.code, 0,
            "{r}: a second plan creates nothing: {}",
            again.stderr
        );
        let again: Json = serde_json::from_str(&again.stdout).unwrap();
        assert_eq!(again["summary"]["unchanged"].as_u64(), Some(planned), "{r}");
    }
}

#[test]
fn a_pinned_collection_must_match_the_backend() {
    let f = Fixture::new();
    let mut backend = two_spec_collection(42);
    backend["file_specifications"][1]["is_required"] = json!(false);
    let serve = Serve::start(f.path(), &seed(vec![backend]), &[]);
    nested_units(&f, "data", 3);
    f.write(
        "r.yaml",
        to_synapse(&format!("{TWO_SPECS}source: {{path: data}}\n"), 42, ""),
    );
    let out = run(synup_for(&serve, f.path()).args(["plan", "r.yaml"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("synup::plan::collection_mismatch"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("backend: label_1 (document, .json, required: false"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("recipe:  label_1 (document, .json, required: true"),
        "{}",
        out.stderr
    );
    // A storage that does not exist is named.
    f.write(
        "r3.yaml",
        to_synapse(
            "version: 1\nname: t\nsource: {path: data}\n",
            42,
            "  storage: 99\n",
        ),
    );
    let out = run(synup_for(&serve, f.path()).args(["plan", "r3.yaml"]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("target.storage 99 is not usable"),
        "{}",
        out.stderr
    );
    // Without the pin, the backend's collection is used as is.
    f.write(
        "r2.yaml",
        to_synapse("version: 1\nname: t\nsource: {path: data}\n", 42, ""),
    );
    let out = run(synup_for(&serve, f.path()).args(["plan", "r2.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn serve_refuses_bad_units_whole_and_checks_tokens() {
    let f = Fixture::new();
    let serve = Serve::start(f.path(), &seed(vec![two_spec_collection(42)]), &[]);
    let s = serve.session();
    let post = |body: Json| {
        s.block_on(s.client.call(
            reqwest::Method::POST,
            "data_units/",
            Some(&body),
            synup::target::synapse::client::Repeat::Safe,
        ))
    };
    let unknown = "0".repeat(40);
    let e = post(json!([{"data_collection": 42, "files": {"image_1": {"checksum": unknown, "path": "a.png"}, "label_1": {"checksum": unknown, "path": "a.json"}}, "meta": {"name": "a"}}]))
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("no data file with checksum"), "{e}");
    let e = post(json!([{"data_collection": 42, "files": {"nope": {"checksum": unknown, "path": "a"}}, "meta": {}}])).unwrap_err();
    assert!(e.to_string().contains("is not a file specification"), "{e}");
    assert!(
        e.to_string()
            .contains("required file specification `image_1` is missing"),
        "{e}"
    );
    assert!(
        e.to_string().contains("\"name\" is a required property"),
        "{e}"
    );
    assert!(serve.units(42).is_empty(), "nothing half-created");

    // Wrong or missing token: 401 on every endpoint.
    let bad = synup::target::synapse::Session::new(
        synup::target::synapse::Credentials {
            host: serve.url.clone(),
            host_origin: synup::target::synapse::config::Origin::Flag,
            token: synup::target::synapse::Secret::new("wrong"),
            token_origin: synup::target::synapse::config::Origin::Flag,
        },
        1,
        0,
    );
    for path in ["data_collections/", "storages/", "data_units/", "agents/"] {
        let e = bad.block_on(bad.client.get(path)).unwrap_err();
        assert_eq!(e.status(), Some(401), "{path}");
    }
}

#[test]
fn apply_survives_errors_latency_drops_429s_and_lost_answers_creating_each_unit_once() {
    let f = Fixture::new();
    let serve = Serve::start(
        f.path(),
        &seed(vec![two_spec_collection(42)]),
        &[
            "--fault-error-rate",
            "0.1",
            "--fault-latency-ms",
            "20",
            "--fault-drop-rate",
            "0.05",
            "--fault-rate-limit",
            "0.03",
            "--fault-retry-after",
            "1",
            "--fault-lost-response",
            "0.1",
        ],
    );
    nested_recipe(
        &f,
        2000,
        "upload: {workers: 16, batch_size: 100, retries: 10}\n",
    );
    let out = run(synup_for(&serve, f.path()).args([
        "apply",
        "r.yaml",
        "--yes",
        "--report",
        "report.json",
    ]));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let injected = serve.injected();
    for kind in ["errors", "rate_limited", "dropped", "lost"] {
        assert!(
            injected[kind].as_u64() > Some(0),
            "no {kind} fault was injected: {injected}"
        );
    }
    serve.set_faults(json!({}));
    assert_units_once(&serve, 2000);
    let report: Json =
        serde_json::from_str(&std::fs::read_to_string(f.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["units"]["failed"], 0);
    assert_eq!(
        report["units"]["created"].as_u64().unwrap()
            + report["units"]["unchanged"].as_u64().unwrap(),
        2000
    );
    // Every unit got its task, once.
    let again = run(synup_for(&serve, f.path()).args(["plan", "r.yaml", "--detailed-exitcode"]));
    assert_eq!(again.code, 0, "{}", again.stderr);
}

#[test]
fn a_killed_apply_reruns_to_completion_without_duplicates() {
    for crash in ["files:7", "before_commit:2", "after_commit:2"] {
        let f = Fixture::new();
        let serve = Serve::start(f.path(), &seed(vec![two_spec_collection(42)]), &[]);
        nested_recipe(&f, 60, "upload: {batch_size: 10}\n");
        let out = run(synup_for(&serve, f.path())
            .env("SYNUP_CRASH_AT", crash)
            .args(["apply", "r.yaml", "--yes"]));
        assert_eq!(
            out.code, -1,
            "{crash}: killed by its own SIGKILL: {}",
            out.stderr
        );
        assert!(serve.units(42).len() < 60, "{crash}");
        let out = run(synup_for(&serve, f.path()).args([
            "apply",
            "r.yaml",
            "--yes",
            "--report",
            "report.json",
        ]));
        assert_eq!(out.code, 0, "{crash}: {}", out.stderr);
        assert_units_once(&serve, 60);
        // Files confirmed before the kill are not sent again.
        let report: Json =
            serde_json::from_str(&std::fs::read_to_string(f.join("report.json")).unwrap()).unwrap();
        if crash == "files:7" {
            assert!(
                report["files"]["already_present"].as_u64() >= Some(7),
                "{crash}: {report}"
            );
            assert_eq!(
                report["files"]["uploaded"].as_u64().unwrap()
                    + report["files"]["already_present"].as_u64().unwrap(),
                120,
                "{crash}: {report}"
            );
        }
        let out = run(synup_for(&serve, f.path()).args(["apply", "r.yaml", "--yes"]));
        assert_eq!(out.code, 0);
        assert!(
            out.stderr.contains("Nothing to apply"),
            "{crash}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_server_restart_mid_apply_is_survived_without_duplicates() {
    let f = Fixture::new();
    let mut serve = Serve::start(
        f.path(),
        &seed(vec![two_spec_collection(42)]),
        &["--fault-latency-ms", "15"],
    );
    nested_recipe(
        &f,
        300,
        "upload: {batch_size: 20, workers: 8, retries: 10}\n",
    );
    let mut child = synup_for(&serve, f.path())
        .args(["apply", "r.yaml", "--yes", "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Restart the server once some units exist.
    let started = std::time::Instant::now();
    while serve.units(42).len() < 40 && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    serve.restart();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    // Retries ride out the restart; if they did not, a re-run finishes the work.
    if !status.success() {
        let out = run(synup_for(&serve, f.path()).args(["apply", "r.yaml", "--yes"]));
        assert_eq!(out.code, 0, "{stderr}\n{}", out.stderr);
    }
    assert_units_once(&serve, 300);
}

#[test]
fn the_token_never_appears_in_output_plans_reports_or_journals() {
    let f = Fixture::new();
    let serve = Serve::start(f.path(), &seed(vec![two_spec_collection(42)]), &[]);
    nested_recipe(&f, 3, "");
    let mut all = String::new();
    for args in [
        vec!["plan", "r.yaml", "-o", "plan.json"],
        vec!["apply", "plan.json", "--yes", "--report", "report.json"],
        vec!["status", "r.yaml"],
        vec!["doctor"],
        vec!["collections"],
        vec!["storages", "--format", "json"],
    ] {
        let out = run(synup_for(&serve, f.path()).args(&args));
        all.push_str(&out.stdout);
        all.push_str(&out.stderr);
    }
    // A wrong host still fails without echoing the token.
    let out = run(synup_for(&serve, f.path())
        .env("SYNAPSE_HOST", "http://127.0.0.1:9")
        .args(["plan", "r.yaml"]));
    assert_eq!(out.code, 1);
    all.push_str(&out.stderr);
    for file in ["plan.json", "report.json"] {
        all.push_str(&std::fs::read_to_string(f.join(file)).unwrap());
    }
    for e in std::fs::read_dir(f.join(".synup/journal")).unwrap() {
        all.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    assert!(all.contains("Apply succeeded"), "{all}");
    assert!(!all.contains(TOKEN), "the token leaked:\n{all}");
}

#[test]
fn login_writes_the_official_config_file_privately() {
    let f = Fixture::new();
    f.write(".synapse/config.json", r#"{"agent": {"id": 7}}"#);
    let out = run(crate::harness::synup()
        .current_dir(f.path())
        .env("HOME", f.path())
        .args([
            "login",
            "--host",
            "http://example.test",
            "--token",
            "tok-123",
        ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("tok-123") && !out.stdout.contains("tok-123"));
    let conf: Json =
        serde_json::from_str(&std::fs::read_to_string(f.join(".synapse/config.json")).unwrap())
            .unwrap();
    assert_eq!(
        conf,
        json!({"agent": {"id": 7}, "host": "http://example.test", "access_token": "tok-123"})
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(f.join(".synapse/config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn synup_sends_large_files_in_parts_and_status_reports_the_collection() {
    let f = Fixture::new();
    let serve = Serve::start(
        f.path(),
        &seed(vec![two_spec_collection(42)]),
        &["--multipart-threshold", "2500000", "--part-size", "1200000"],
    );
    nested_units(&f, "data", 3);
    // 3 parts of up to 1.2 MB: above 1 MiB, so each is streamed from the file by range.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    f.write("data/u001/img.png", &big);
    f.write(
        "r.yaml",
        to_synapse(&format!("{TWO_SPECS}source: {{path: data}}\n"), 42, ""),
    );
    let out = run(synup_for(&serve, f.path()).args(["apply", "r.yaml", "--yes"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sha = {
        use sha1::{Digest, Sha1};
        hex::encode(Sha1::digest(&big))
    };
    let units = serve.units(42);
    let unit = units
        .iter()
        .find(|u| u["meta"]["name"] == "u001")
        .expect("u001");
    assert_eq!(unit["files"]["image_1"]["checksum"], sha.as_str());
    assert_eq!(unit["files"]["image_1"]["size"], 3_000_000);
    // The bytes served back are the bytes sent, part by part.
    let url = unit["files"]["image_1"]["url"].as_str().unwrap().to_owned();
    let s = serve.session();
    let got = s
        .block_on(async { reqwest::get(url).await?.bytes().await })
        .unwrap();
    assert_eq!(got.as_ref(), big.as_slice());

    let out = run(synup_for(&serve, f.path()).args(["status", "r.yaml", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status: Json = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status["backend"], "synapse");
    assert_eq!(status["units"], 3);
    assert_eq!(status["journaled_units"], 3);
}
