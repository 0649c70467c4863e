//! `synup explore` summarises a folder and proposes a recipe fragment.

use crate::harness::{Fixture, nested_units};

#[test]
fn explore_nested_folders() {
    let f = Fixture::new();
    nested_units(&f, "data", 5);
    f.write("data/u001/notes.txt", "n");
    let out = f.run(&["explore", "data"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("explore_nested_text", out.stdout);
    let json = f.run(&["explore", "data", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["files"], 11);
    assert_eq!(v["layout"]["pattern"], 1);
}

#[test]
fn explore_missing_folder_fails_cleanly() {
    let f = Fixture::new();
    let out = f.run(&["explore", "nope"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("cannot explore `nope`"),
        "{}",
        out.stderr
    );
}
