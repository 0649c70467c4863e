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

#[test]
fn a_large_folder_is_sampled_across_its_folders_and_says_so() {
    let f = Fixture::new();
    nested_units(&f, "data", 60);
    let out = f.run(&["explore", "data", "--sample", "40"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("(sampled: more than 40 files here")
            && out.stdout.contains(" of 60 first-level folders"),
        "{}",
        out.stdout
    );
    let json = f.run(&["explore", "data", "--sample", "40", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["sampled"]["folders_seen"], 60);
    assert!(v["files"].as_u64().unwrap() <= 40);
    assert_eq!(v["layout"]["pattern"], 1, "the sample shows the layout");
    assert!(
        v["sample_units"].to_string().contains("u059"),
        "the last folder is among those sampled: {}",
        v["sample_units"]
    );
}
