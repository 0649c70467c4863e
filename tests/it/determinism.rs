//! The same inputs give a byte-identical plan, whatever the folder, the order
//! files were created in, or the thread count.

use crate::harness::{Fixture, TWO_SPECS};

fn build(f: &Fixture, reverse: bool) {
    let mut items: Vec<(String, String)> = Vec::new();
    for i in 0..60 {
        items.push((format!("data/ü{i:03}/img.png"), format!("png {i}")));
        items.push((format!("data/ü{i:03}/lab.json"), format!("{{\"i\": {i}}}")));
    }
    items.push(("data/ü001/extra.txt".into(), "x".into()));
    if reverse {
        items.reverse();
    }
    for (p, c) in items {
        f.write(&p, c);
    }
    f.write("meta.csv", "name,age\nü001,3\nü002,4\nzzz,5\n");
    f.write(
        "r.yaml",
        format!("{TWO_SPECS}source: {{path: data}}\nmetadata:\n  - csv: meta.csv\n"),
    );
}

#[test]
fn plan_is_byte_identical_across_folders_orders_and_threads() {
    let a = Fixture::new();
    let b = Fixture::new();
    build(&a, false);
    build(&b, true);
    let pa = a.run(&["plan", "r.yaml", "--format", "json"]);
    assert_eq!(pa.code, 0, "{}", pa.stderr);
    let pb = crate::harness::run(
        crate::harness::synup()
            .current_dir(b.path())
            .args(["plan", "r.yaml", "--format", "json"])
            .env("RAYON_NUM_THREADS", "1"),
    );
    assert_eq!(pa.stdout, pb.stdout);
    assert!(
        !pa.stdout.contains(&a.path().to_string_lossy().into_owned()),
        "no absolute machine paths"
    );
    assert!(
        pa.stdout.contains("\"ü001\""),
        "non-ASCII is written as UTF-8, not escaped"
    );
    // Units are in byte order of their keys.
    let plan: serde_json::Value = serde_json::from_str(&pa.stdout).unwrap();
    let keys: Vec<&str> = plan["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["key"].as_str().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(plan["orphan_rows"][0]["key"], "zzz");
}

#[test]
fn plan_hash_changes_with_content() {
    let a = Fixture::new();
    build(&a, false);
    let first: serde_json::Value =
        serde_json::from_str(&a.run(&["plan", "r.yaml", "--format", "json"]).stdout).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    a.write("data/ü005/img.png", "other bytes");
    let second: serde_json::Value =
        serde_json::from_str(&a.run(&["plan", "r.yaml", "--format", "json"]).stdout).unwrap();
    assert_ne!(first["plan_hash"], second["plan_hash"]);
    assert!(first["plan_hash"].as_str().unwrap().starts_with("sha256:"));
}
