//! Every recipe in `pipelines/` plans cleanly, and the all-metadata example
//! takes each field from the source that should win.

use std::path::{Path, PathBuf};

use crate::harness::Fixture;

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == ".synup" {
            continue;
        }
        let dest = to.join(&name);
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

pub(crate) fn pipelines() -> (Fixture, Vec<String>) {
    let f = Fixture::new();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    copy_dir(&src, &f.join("pipelines"));
    let mut recipes: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".toml"))
        .collect();
    recipes.sort();
    (f, recipes)
}

#[test]
fn every_example_plans_cleanly() {
    let (f, recipes) = pipelines();
    assert!(recipes.len() >= 7, "{recipes:?}");
    let mut patterns = std::collections::BTreeSet::new();
    for r in &recipes {
        let path = format!("pipelines/{r}");
        let v = f.run(&["validate", &path]);
        assert_eq!(v.code, 0, "{r}: {}", v.stderr);
        let out = f.run(&["plan", &path, "--format", "json"]);
        assert_eq!(out.code, 0, "{r}: {}", out.stderr);
        let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(plan["summary"]["invalid"], 0, "{r}");
        assert!(plan["summary"]["create"].as_u64().unwrap() > 0, "{r}");
        if let Some(p) = plan["layout"]["pattern"].as_u64() {
            patterns.insert(p);
        }
        let g = f.run(&["graph", &path]);
        assert_eq!(g.code, 0, "{r}");
    }
    assert_eq!(
        patterns.into_iter().collect::<Vec<_>>(),
        [1, 2, 3, 5],
        "pattern 4 uses an explicit regex"
    );
}

#[test]
fn nested_example_text_plan() {
    let (f, _) = pipelines();
    let out = f.run(&["plan", "pipelines/01-nested-folders.yaml"]);
    insta::assert_snapshot!("example_01_text", out.both());
}

#[test]
fn all_metadata_example_merges_in_order() {
    let (f, _) = pipelines();
    let out = f.run(&["plan", "pipelines/07-all-metadata.yaml", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let p1 = &plan["units"][0];
    assert_eq!(p1["key"], "P001");
    let meta = &p1["meta"];
    assert_eq!(meta["age"], 45, "excel integer");
    assert_eq!(meta["scan_date"], "2024-03-01", "excel date cell");
    assert_eq!(meta["site_code"], "0042", "csv keeps leading zeros");
    assert_eq!(meta["sex"], "male", "filename capture");
    assert_eq!(meta["age_from_name"], 45, "typed capture");
    assert_eq!(meta["scanner"], "CT-1", "sidecar yaml");
    assert_eq!(meta["slice_mm"], 2.5);
    assert_eq!(meta["site"], "Seoul", "static");
    assert_eq!(meta["name"], "P001", "key field");
    let orphans: Vec<&str> = plan["orphan_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    // Recipe order of sources, then sheet order.
    assert_eq!(orphans, ["P004", "P999"]);
    let g = f.run(&["graph", "pipelines/07-all-metadata.yaml", "--format", "dot"]);
    insta::assert_snapshot!("example_07_graph_dot", g.stdout);
}

/// Every pipeline's plan, text and JSON, pinned: a change in what any example
/// plans shows up in review as a snapshot diff.
#[test]
fn every_example_plan_is_pinned() {
    let (f, recipes) = pipelines();
    for r in &recipes {
        let path = format!("pipelines/{r}");
        let stem = r.split('.').next().unwrap().replace('-', "_");
        let text = f.run(&["plan", &path]);
        assert_eq!(text.code, 0, "{r}: {}", text.stderr);
        insta::assert_snapshot!(format!("pipeline_{stem}_text"), text.stdout);
        let json = f.run(&["plan", &path, "--format", "json"]);
        assert_eq!(json.code, 0, "{r}: {}", json.stderr);
        insta::assert_snapshot!(format!("pipeline_{stem}_json"), json.stdout);
    }
}
