//! Sharded apply: `--shard K/N` in separate processes, and the same shards as
//! jobs on a real local Ray head (through its Jobs REST API) into `synup serve`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::harness::{Fixture, TWO_SPECS, free_port, nested_units, run, venv};
use crate::server::{Serve, seed, synup_for, to_synapse};

fn collection() -> Json {
    serde_json::json!({"id": 42, "name": "two", "file_specifications": [
        {"name": "image_1", "file_type": "image", "extensions": [".png"], "is_required": true, "is_primary": true},
        {"name": "label_1", "file_type": "document", "extensions": [".json"], "is_required": true}]})
}

/// name → the unit's spec → checksum map, for comparing catalogs.
fn catalog(serve: &Serve) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for u in serve.units(42) {
        let name = u["meta"]["name"].as_str().unwrap().to_owned();
        let files = u["files"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(spec, f)| (spec.clone(), f["checksum"].as_str().unwrap().to_owned()))
            .collect();
        assert!(
            out.insert(name.clone(), files).is_none(),
            "unit {name} exists twice"
        );
    }
    out
}

/// A recipe over `n` units into collection 42, planned to `p.json`.
fn planned(f: &Fixture, serve: &Serve, n: usize) {
    nested_units(f, "data", n);
    f.write(
        "r.yaml",
        to_synapse(
            &format!("{TWO_SPECS}source: {{path: data}}\nupload: {{batch_size: 25}}\n"),
            42,
            "",
        ),
    );
    let out = run(synup_for(serve, f.path()).args(["plan", "r.yaml", "-o", "p.json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn shards_in_separate_processes_give_the_catalog_of_one_apply() {
    let f = Fixture::new();
    let whole = Serve::start(&f.join("whole"), &seed(vec![collection()]), &[]);
    planned(&f, &whole, 60);
    let out = run(synup_for(&whole, f.path()).args(["apply", "p.json", "--yes"]));
    assert_eq!(out.code, 0, "{}", out.stderr);

    let sharded = Serve::start(&f.join("sharded"), &seed(vec![collection()]), &[]);
    let children: Vec<_> = (1..=3)
        .map(|k| {
            synup_for(&sharded, f.path())
                .args(["apply", "p.json", "--yes", "--shard", &format!("{k}/3")])
                .args(["--report", &format!("s{k}.json")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let created: Vec<u64> = (1..=3)
        .map(|k| {
            let r: Json =
                serde_json::from_slice(&std::fs::read(f.join(&format!("s{k}.json"))).unwrap())
                    .unwrap();
            assert_eq!(r["shard"], format!("{k}/3"));
            r["units"]["created"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(created, [20, 20, 20], "contiguous, balanced slices");
    assert_eq!(catalog(&sharded), catalog(&whole));
    // Each shard journals on its own.
    let journals: Vec<String> = std::fs::read_dir(f.join(".synup/journal"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".shard-"))
        .collect();
    assert_eq!(journals.len(), 3, "{journals:?}");

    // Bad shard specs and a recipe instead of a plan are refused.
    for (args, says) in [
        (
            vec!["apply", "p.json", "--yes", "--shard", "4/3"],
            "1 ≤ K ≤ N",
        ),
        (
            vec!["apply", "p.json", "--yes", "--shard", "0/3"],
            "1 ≤ K ≤ N",
        ),
        (
            vec!["apply", "r.yaml", "--yes", "--shard", "1/3"],
            "saved plan",
        ),
    ] {
        let out = run(synup_for(&sharded, f.path()).args(&args));
        assert_eq!(out.code, 1, "{args:?}");
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
}

/// A Ray head on 127.0.0.1 (free ports, its own temp dir), stopped on drop.
struct RayHead {
    child: Child,
    bin: std::path::PathBuf,
    pub dashboard: String,
}

impl RayHead {
    fn start(dir: &Path) -> Self {
        let venv = venv("ray", "ray[default]");
        let bin = venv.join("bin");
        let (gcs, dash) = (free_port(), free_port());
        let child = Command::new(bin.join("ray"))
            .args([
                "start",
                "--head",
                "--block",
                "--num-cpus=2",
                "--disable-usage-stats",
            ])
            .args(["--dashboard-host=127.0.0.1", "--node-ip-address=127.0.0.1"])
            .arg(format!("--port={gcs}"))
            .arg(format!("--dashboard-port={dash}"))
            .arg(format!("--temp-dir={}", dir.display()))
            .env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ray starts");
        let dashboard = format!("http://127.0.0.1:{dash}");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let up = synup::io_runtime::block_on(async {
                reqwest::get(format!("{dashboard}/api/jobs/"))
                    .await
                    .is_ok_and(|r| r.status().is_success())
            });
            if up {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the Ray dashboard did not come up"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        Self {
            child,
            bin,
            dashboard,
        }
    }
}

impl Drop for RayHead {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `--block` stops the head's processes when it ends; make sure.
        let _ = Command::new(self.bin.join("ray"))
            .args(["stop", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn a_plan_runs_as_ray_jobs_and_a_stopped_shard_is_resubmitted_alone() {
    let f = Fixture::new();
    let ray_dir = tempfile::Builder::new()
        .prefix("ray")
        .tempdir_in("/tmp")
        .unwrap();
    let ray = RayHead::start(ray_dir.path());
    // Latency keeps shards running long enough to stop one halfway.
    let serve = Serve::start(
        &f.join("serve"),
        &seed(vec![collection()]),
        &["--fault-latency-ms", "15"],
    );
    planned(&f, &serve, 2000);
    let driver = synup_for(&serve, f.path())
        .args(["apply", "p.json", "--ray", &ray.dashboard, "--shards", "4"])
        .args(["--report", "ray-1.json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop shard 2 once its journal shows progress.
    let journal = f.join(".synup/journal/t.42.shard-2-of-4.jsonl");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"t\":\"unit\"")) {
        assert!(Instant::now() < deadline, "shard 2 made no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    let jobs = run(synup_for(&serve, f.path()).args(["jobs", "--ray", &ray.dashboard]));
    let shard2 = jobs
        .stdout
        .lines()
        .find(|l| l.contains("shard 2/4"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no shard 2 in {}", jobs.stdout))
        .to_owned();
    let stop = run(synup_for(&serve, f.path()).args(["jobs", &shard2, "--stop"]));
    assert_eq!(stop.code, 0, "{}", stop.stderr);
    let out = driver.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("shard 2/4") && stderr.contains("stopped"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(crate::server::TOKEN),
        "the token never shows"
    );
    assert!(serve.units(42).len() < 2000);

    // The same command again: only shard 2 is submitted; it resumes.
    let again = run(synup_for(&serve, f.path())
        .args(["apply", "p.json", "--ray", &ray.dashboard, "--shards", "4"])
        .args(["--report", "ray-2.json"]));
    assert_eq!(again.code, 0, "{}", again.stderr);
    let submitted: Vec<&str> = again
        .stderr
        .lines()
        .filter(|l| l.contains("submitted as"))
        .collect();
    assert_eq!(submitted.len(), 1, "{}", again.stderr);
    assert!(submitted[0].contains("shard 2/4"), "{}", again.stderr);
    let units = catalog(&serve);
    assert_eq!(units.len(), 2000, "every unit exactly once");
    let logs = run(synup_for(&serve, f.path()).args(["jobs", &shard2, "--logs"]));
    assert_eq!(logs.code, 0, "{}", logs.stderr);

    // A binary installed on the workers instead of the shipped one: the
    // units exist by now, so each shard counts them as unchanged.
    let installed = run(synup_for(&serve, f.path())
        .args(["apply", "p.json", "--ray", &ray.dashboard, "--shards", "2"])
        .args([
            "--ray-binary",
            env!("CARGO_BIN_EXE_synup"),
            "--report",
            "ray-3.json",
        ]));
    assert_eq!(installed.code, 0, "{}", installed.stderr);
    let r: Json = serde_json::from_slice(&std::fs::read(f.join("ray-3.json")).unwrap()).unwrap();
    assert_eq!(r["units"]["unchanged"], 2000, "{r}");
    assert_eq!(r["units"]["created"], 0, "{r}");
    assert_eq!(catalog(&serve).len(), 2000);
}
