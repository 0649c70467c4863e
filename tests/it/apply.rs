//! `synup apply` on the local target: idempotent, resumable after a kill at any
//! point, safe under concurrency and faults.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Fixture, TWO_SPECS, nested_units, synup};

fn recipe(f: &Fixture, extra: &str) {
    f.write(
        "r.yaml",
        format!(
            "{TWO_SPECS}source: {{path: data}}\nupload: {{batch_size: 3, workers: 4}}\n{extra}"
        ),
    );
}

fn sqlite_count(f: &Fixture, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(f.join(".synup/local/catalog.sqlite")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The catalog's invariants: one row per key, every referenced file in the store.
fn check_invariants(f: &Fixture) -> i64 {
    let db = f.join(".synup/local/catalog.sqlite");
    if !db.exists() {
        return 0;
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let dupes: i64 = conn.query_row("SELECT COUNT(*) FROM (SELECT key FROM data_units GROUP BY data_collection_id, key HAVING COUNT(*) > 1)", [], |r| r.get(0)).unwrap();
    assert_eq!(dupes, 0, "duplicate units");
    let mut stmt = conn.prepare("SELECT DISTINCT f.store_path, f.checksum FROM unit_files u JOIN files f ON f.checksum = u.checksum").unwrap();
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (p, sha) in rows {
        let bytes = std::fs::read(f.join(".synup/local").join(&p))
            .unwrap_or_else(|_| panic!("unit points at missing file {p}"));
        use sha1::Digest;
        assert_eq!(
            hex::encode(sha1::Sha1::digest(&bytes)),
            sha,
            "store file {p} holds other bytes"
        );
    }
    let orphans: i64 = conn.query_row("SELECT COUNT(*) FROM unit_files u LEFT JOIN data_units d ON d.id = u.data_unit_id WHERE d.id IS NULL", [], |r| r.get(0)).unwrap();
    assert_eq!(orphans, 0);
    conn.query_row("SELECT COUNT(*) FROM data_units", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn quick_start_applies_then_changes_nothing() {
    let f = Fixture::new();
    nested_units(&f, "data", 7);
    recipe(&f, "");
    let out = f.run(&["apply", "r.yaml", "--yes", "--report", "report.json"]);
    assert_eq!(out.code, 0, "{}", out.both());
    assert!(out.stdout.contains("7 created"), "{}", out.stdout);
    assert_eq!(check_invariants(&f), 7);
    assert_eq!(sqlite_count(&f, "SELECT COUNT(*) FROM files"), 14);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["units"]["created"], 7);
    assert_eq!(report["files"]["uploaded"], 14);
    assert!(report["throughput"]["files_per_second"].as_f64().unwrap() > 0.0);

    let again = f.run(&["apply", "r.yaml", "--yes"]);
    assert_eq!(again.code, 0, "{}", again.both());
    assert!(
        again.stderr.contains("Nothing to apply"),
        "{}",
        again.stderr
    );
    assert_eq!(f.run(&["plan", "r.yaml", "--detailed-exitcode"]).code, 0);
    let plan = f.run(&["plan", "r.yaml", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(v["summary"]["unchanged"], 7);
    assert_eq!(v["summary"]["files_to_upload"], 0);

    let status = f.run(&["status", "r.yaml"]);
    assert_eq!(status.code, 0, "{}", status.both());
    assert!(
        status.stdout.contains("Units in the collection: 7"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("succeeded"), "{}", status.stdout);
}

#[test]
fn apply_needs_yes_without_a_terminal() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    recipe(&f, "");
    let out = f.run(&["apply", "r.yaml"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert!(
        !f.join(".synup/local/catalog.sqlite").exists(),
        "nothing changed"
    );
}

#[test]
fn saved_plan_applies_and_a_stale_one_is_refused() {
    let f = Fixture::new();
    nested_units(&f, "data", 4);
    recipe(&f, "");
    assert_eq!(f.run(&["plan", "r.yaml", "-o", "p.json"]).code, 0);
    std::thread::sleep(std::time::Duration::from_millis(20));
    f.write("data/u002/img.png", "different and longer");
    let out = f.run(&["apply", "p.json", "--yes"]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr
            .contains("changed: data/u002/img.png (size 5 → 20)"),
        "{}",
        out.stderr
    );
    assert!(
        !f.join(".synup/local/catalog.sqlite").exists(),
        "nothing applied"
    );

    assert_eq!(f.run(&["plan", "r.yaml", "-o", "p.json"]).code, 0);
    let ok = f.run(&["apply", "p.json", "--yes"]);
    assert_eq!(ok.code, 0, "{}", ok.both());
    assert_eq!(check_invariants(&f), 4);
    // Units that appeared since the plan are skipped, not duplicated.
    let twice = f.run(&["apply", "p.json", "--yes"]);
    assert_eq!(twice.code, 0, "{}", twice.both());
    assert!(
        twice.stdout.contains("0 created, 4 unchanged"),
        "{}",
        twice.stdout
    );
    assert_eq!(check_invariants(&f), 4);
}

#[test]
fn plan_recipe_missing_is_named() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    recipe(&f, "");
    assert_eq!(f.run(&["plan", "r.yaml", "-o", "p.json"]).code, 0);
    std::fs::rename(f.join("r.yaml"), f.join("moved.yaml")).unwrap();
    let out = f.run(&["apply", "p.json", "--yes"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("`r.yaml` is not there"),
        "{}",
        out.stderr
    );
}

#[test]
fn conflicts_are_reported_never_overwritten() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    recipe(&f, "metadata:\n  - static: {v: 2}\n");
    assert_eq!(f.run(&["plan", "r.yaml", "-o", "p.json"]).code, 0);
    recipe(&f, "metadata:\n  - static: {v: 1}\n");
    assert_eq!(f.run(&["apply", "r.yaml", "--yes"]).code, 0);
    recipe(&f, "metadata:\n  - static: {v: 2}\n");
    // The saved plan said create; the target now has these keys with v=1.
    let out = f.run(&["apply", "p.json", "--yes", "--report", "rep.json"]);
    assert_eq!(out.code, 4, "{}", out.both());
    let rep: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.join("rep.json")).unwrap()).unwrap();
    assert_eq!(rep["units"]["failed"], 3);
    assert!(
        rep["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("conflict")
    );
    // A fresh plan shows them as conflicts (a warning), and apply leaves them.
    let plan = f.run(&["plan", "r.yaml", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(v["summary"]["conflict"], 3);
    assert_eq!(f.run(&["apply", "r.yaml", "--yes"]).code, 0);
    assert_eq!(
        sqlite_count(
            &f,
            "SELECT COUNT(*) FROM data_units WHERE json_extract(meta, '$.v') = 1"
        ),
        3
    );
}

#[test]
fn invalid_units_fail_or_skip() {
    let f = Fixture::new();
    nested_units(&f, "data", 4);
    std::fs::remove_file(f.join("data/u001/lab.json")).unwrap();
    recipe(&f, "");
    let out = f.run(&["apply", "r.yaml", "--yes"]);
    assert_eq!(out.code, 3, "{}", out.both());
    assert!(!f.join(".synup/local/catalog.sqlite").exists());
    recipe(&f, "validation: {invalid_units: skip}\n");
    let out = f.run(&["apply", "r.yaml", "--yes"]);
    assert_eq!(out.code, 0, "{}", out.both());
    assert!(
        out.stdout.contains("1 invalid unit(s) were left out"),
        "{}",
        out.stdout
    );
    assert_eq!(check_invariants(&f), 3);
}

#[test]
fn changed_collection_specs_are_an_error() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    recipe(&f, "");
    assert_eq!(f.run(&["apply", "r.yaml", "--yes"]).code, 0);
    let text = std::fs::read_to_string(f.join("r.yaml")).unwrap().replace(
        "extensions: [.json], is_required: true",
        "extensions: [.json, .txt], is_required: true",
    );
    f.write("r.yaml", text);
    let out = f.run(&["plan", "r.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::target::spec_mismatch") && out.stderr.contains("+ label_1"),
        "{}",
        out.stderr
    );
}

#[test]
fn tasks_are_created_for_a_project() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    f.write(
        "r.yaml",
        format!("{TWO_SPECS}target: {{project: 7}}\nsource: {{path: data}}\n"),
    );
    assert_eq!(f.run(&["apply", "r.yaml", "--yes"]).code, 0);
    assert_eq!(
        sqlite_count(&f, "SELECT COUNT(*) FROM tasks WHERE project_id = 7"),
        3
    );
}

/// Kill the process at many points; every time the catalog holds, and the next
/// run finishes with every unit exactly once.
#[test]
fn crash_at_any_point_then_resume() {
    let points = [
        "files:1",
        "files:4",
        "files:9",
        "before_commit:1",
        "before_commit:3",
        "after_commit:1",
        "after_commit:2",
        "after_commit:3",
    ];
    for point in points {
        let f = Fixture::new();
        nested_units(&f, "data", 10);
        f.write("data/u003/img.png", "png 1"); // shared content: stored once
        recipe(&f, "");
        let killed = crate::harness::run(
            synup()
                .current_dir(f.path())
                .args(["apply", "r.yaml", "--yes"])
                .env("SYNUP_CRASH_AT", point),
        );
        assert_eq!(
            killed.code,
            -1,
            "{point}: the process was killed: {}",
            killed.both()
        );
        let partial = check_invariants(&f);
        assert!(partial < 10, "{point}");
        let resumed = f.run(&["apply", "r.yaml", "--yes"]);
        assert_eq!(resumed.code, 0, "{point}: {}", resumed.both());
        assert_eq!(check_invariants(&f), 10, "{point}");
        let done = f.run(&["apply", "r.yaml", "--yes"]);
        assert!(
            done.stderr.contains("Nothing to apply"),
            "{point}: {}",
            done.both()
        );
        // No file was copied twice: the store holds each checksum once.
        let stored = std::fs::read_dir(f.join(".synup/local/objects"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name() != "tmp")
            .map(|e| std::fs::read_dir(e.path()).unwrap().count())
            .sum::<usize>();
        assert_eq!(
            stored as i64,
            sqlite_count(&f, "SELECT COUNT(*) FROM files"),
            "{point}"
        );
    }
}

/// A real `kill -9` from outside, timed by watching the journal grow.
#[test]
fn external_kill_then_resume() {
    for after_records in [3usize, 12, 30] {
        let f = Fixture::new();
        nested_units(&f, "data", 60);
        recipe(&f, "");
        let text = std::fs::read_to_string(f.join("r.yaml"))
            .unwrap()
            .replace("batch_size: 3, workers: 4", "batch_size: 2, workers: 1");
        f.write("r.yaml", text);
        let mut child = synup()
            .current_dir(f.path())
            .args(["apply", "r.yaml", "--yes", "--quiet"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let journal = f.join(".synup/journal/t.t.jsonl");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let lines = std::fs::read_to_string(&journal)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            if lines >= after_records || std::time::Instant::now() > deadline {
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // Child::kill sends SIGKILL on Unix: what `kill -9` sends.
        let _ = child.kill();
        let _ = child.wait();
        check_invariants(&f);
        let resumed = f.run(&["apply", "r.yaml", "--yes"]);
        assert!(resumed.code == 0, "{}", resumed.both());
        assert_eq!(check_invariants(&f), 60);
    }
}

#[test]
fn concurrent_applies_serialise() {
    let f = Fixture::new();
    nested_units(&f, "data", 40);
    recipe(&f, "");
    let spawn = || {
        synup()
            .current_dir(f.path())
            .args(["apply", "r.yaml", "--yes"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(check_invariants(&f), 40);
    let created: u64 = [&a, &b]
        .iter()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout);
            s.split(" created")
                .next()
                .and_then(|p| p.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(
        created, 40,
        "each unit created by exactly one of the two runs"
    );
}

#[test]
fn corrupt_journal_and_catalog_are_explained() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    recipe(&f, "");
    assert_eq!(f.run(&["apply", "r.yaml", "--yes"]).code, 0);
    nested_units(&f, "data", 5);
    let journal = f.join(".synup/journal/t.t.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(1, "{not json");
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let out = f.run(&["apply", "r.yaml", "--yes"]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("synup::apply::journal_corrupt") && out.stderr.contains("line 2"),
        "{}",
        out.stderr
    );

    std::fs::remove_file(&journal).unwrap();
    let db = f.join(".synup/local/catalog.sqlite");
    let _ = std::fs::remove_file(f.join(".synup/local/catalog.sqlite-wal"));
    let _ = std::fs::remove_file(f.join(".synup/local/catalog.sqlite-shm"));
    std::fs::write(&db, vec![0x42u8; 8192]).unwrap();
    let out = f.run(&["plan", "r.yaml"]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(out.stderr.contains("catalog.sqlite"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"));
}

/// A source file that disappears after planning fails its unit; the rest go on.
#[test]
fn file_gone_during_apply_fails_only_its_unit() {
    let f = Fixture::new();
    nested_units(&f, "data", 5);
    recipe(&f, "");
    let loaded = synup::recipe::load(f.join("r.yaml").to_str().unwrap()).unwrap();
    let resolved = synup::recipe::resolve::resolve(&loaded).unwrap();
    let plan = synup::plan::build_plan(
        &loaded,
        &resolved,
        &synup::target::EmptyTarget,
        &Default::default(),
    )
    .unwrap()
    .plan;
    std::fs::remove_file(f.join("data/u002/img.png")).unwrap();
    let target = synup::apply::local::LocalTarget {
        recipe_dir: &loaded.dir,
        target_dir: &resolved.target_path,
        collection: &resolved.data_collection,
        specs: &resolved.collection.specs,
        meta_schema: None,
        journal: f.join(".synup/journal/x.jsonl"),
        roots: Default::default(),
    };
    let settings = synup::apply::ApplySettings {
        workers: 2,
        batch_size: 2,
        retries: 0,
        project: None,
        crash_at: None,
        memory: Default::default(),
    };
    let report = target
        .apply(&plan, &settings, &synup::apply::Silent)
        .unwrap();
    assert_eq!(report.units.created, 4);
    assert_eq!(report.units.failed, 1);
    assert_eq!(
        report
            .failures
            .iter()
            .filter(|x| x.kind == "unit")
            .map(|x| x.key.clone().unwrap())
            .collect::<Vec<_>>(),
        ["u002"]
    );
    assert_eq!(check_invariants(&f), 4);
}

#[test]
fn read_only_store_mid_apply_is_resumable() {
    if !crate::harness::root_only("drops to `nobody` with setpriv") {
        return;
    }
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    recipe(&f, "");
    assert_eq!(f.run(&["apply", "r.yaml", "--yes"]).code, 0);
    nested_units(&f, "data", 6);
    // nobody may write the catalog and journal, but not the store's objects.
    chmod_r(f.path(), 0o777);
    chmod_r(&f.join(".synup/local/objects"), 0o555);
    let out = crate::harness::as_nobody(&f, &["apply", "r.yaml", "--yes"]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("cannot write to the target"),
        "{}",
        out.stderr
    );
    assert_eq!(check_invariants(&f), 3, "nothing half-written");
    chmod_r(&f.join(".synup/local/objects"), 0o777);
    let resumed = crate::harness::as_nobody(&f, &["apply", "r.yaml", "--yes"]);
    assert_eq!(resumed.code, 0, "{}", resumed.both());
    assert_eq!(check_invariants(&f), 6);
}

#[test]
fn full_disk_mid_apply_is_resumable() {
    if !crate::harness::root_only("mounts a small tmpfs") {
        return;
    }
    let f = Fixture::new();
    for i in 0..12 {
        f.write(&format!("data/u{i:02}/img.png"), vec![i as u8; 40 * 1024]);
        f.write(&format!("data/u{i:02}/lab.json"), format!("{{\"i\": {i}}}"));
    }
    recipe(&f, "");
    let text = std::fs::read_to_string(f.join("r.yaml")).unwrap() + "target: {path: disk}\n";
    f.write("r.yaml", text);
    std::fs::create_dir_all(f.join("disk")).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(f.join("disk"))
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: this machine does not allow mounting a tmpfs");
        return;
    }
    // Unmounted however the test ends: a failed assertion must not leave a
    // mount behind that the fixture's folder cannot be removed from.
    let _mount = Unmount(f.join("disk"));
    let out = f.run(&["apply", "r.yaml", "--yes"]);
    let remount = Command::new("mount")
        .args(["-o", "remount,size=8m"])
        .arg(f.join("disk"))
        .status();
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("No space left") || out.stderr.contains("full"),
        "{}",
        out.stderr
    );
    assert!(remount.is_ok_and(|s| s.success()));
    let resumed = f.run(&["apply", "r.yaml", "--yes"]);
    let conn = rusqlite::Connection::open(f.join("disk/catalog.sqlite")).unwrap();
    let units: i64 = conn
        .query_row("SELECT COUNT(*) FROM data_units", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    assert_eq!(resumed.code, 0, "{}", resumed.both());
    assert_eq!(units, 12);
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn chmod_r(p: &Path, mode: u32) {
    let _ = Command::new("chmod")
        .args(["-R", &format!("{mode:o}")])
        .arg(p)
        .status();
}

#[test]
fn status_tells_a_killed_apply_from_a_running_one() {
    let f = Fixture::new();
    nested_units(&f, "data", 6);
    recipe(&f, "");
    let killed = crate::harness::run(
        synup()
            .current_dir(f.path())
            .args(["apply", "r.yaml", "--yes"])
            .env("SYNUP_CRASH_AT", "after_commit:1"),
    );
    assert_eq!(killed.code, -1, "{}", killed.both());
    let status = f.run(&["status", "r.yaml"]);
    assert!(status.stdout.contains("interrupted"), "{}", status.stdout);
    assert!(!status.stdout.contains("running"), "{}", status.stdout);
    // While an apply holds the target, its row stays `running`.
    let lock = match synup::target::local::TargetLock::try_acquire(&f.join(".synup/local")).unwrap()
    {
        synup::target::local::LockWait::Acquired(l) => l,
        synup::target::local::LockWait::Busy(_) => panic!("nobody else holds it"),
    };
    let json = f.run(&["status", "r.yaml", "--format", "json"]);
    assert!(
        json.stdout.contains("\"status\": \"running\""),
        "{}",
        json.stdout
    );
    drop(lock);
}
