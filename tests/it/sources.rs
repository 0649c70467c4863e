//! Walking local sources: junk, exclude, hidden files, symlinks, odd names.

use crate::harness::{Fixture, TWO_SPECS, nested_units};

fn plan_json(f: &Fixture) -> serde_json::Value {
    let out = f.run(&["plan", "r.yaml", "--format", "json"]);
    assert!(out.code == 0 || out.code == 3, "{}", out.both());
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn junk_and_excludes_are_counted_hidden_files_are_not_dropped() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    f.write("data/u000/.DS_Store", "j")
        .write("data/@eaDir/x.png", "j")
        .write("data/u001/.cache/a.png", "x");
    f.write("data/u001/.hidden.json", "{}")
        .write("data/.gitignore", "*\n");
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\nexclude: ['**/.cache']\nvalidation: {{invalid_units: skip}}\n"));
    let plan = plan_json(&f);
    assert_eq!(plan["summary"]["excluded_files"], 3);
    // .gitignore is not honoured: the hidden json joins u001 (ambiguous label).
    assert_eq!(plan["units"][1]["action"], "invalid");
    let unmatched: Vec<String> = plan["unmatched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            format!(
                "{}:{}",
                u["path"].as_str().unwrap(),
                u["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(unmatched, [".gitignore:no_rule"]);
}

#[cfg(unix)]
#[test]
fn symlink_loop_is_a_warning_and_linked_files_are_followed() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    f.write("elsewhere/u009/img.png", "p")
        .write("elsewhere/u009/lab.json", "{}");
    std::os::unix::fs::symlink("..", f.join("data/u000/loop")).unwrap();
    std::os::unix::fs::symlink(f.join("elsewhere/u009"), f.join("data/u009")).unwrap();
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    let plan = plan_json(&f);
    assert_eq!(plan["summary"]["create"], 4, "{plan}");
    let warnings = plan["warnings"].to_string();
    assert!(
        warnings.contains("symlink_loop") && warnings.contains("u000/loop"),
        "{warnings}"
    );
}

#[cfg(unix)]
#[test]
fn non_utf8_names_are_reported_not_fatal() {
    use std::os::unix::ffi::OsStrExt;
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    std::fs::write(
        f.join("data/u000")
            .join(std::ffi::OsStr::from_bytes(b"bad\xffname.png")),
        "x",
    )
    .unwrap();
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    let plan = plan_json(&f);
    assert_eq!(plan["unmatched"][0]["reason"], "non_utf8_name");
    assert_eq!(plan["unmatched"][0]["path"], "u000/bad\u{fffd}name.png");
    assert_eq!(plan["summary"]["create"], 3);
}

#[cfg(unix)]
#[test]
fn broken_symlink_is_a_warning() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    std::os::unix::fs::symlink(f.join("gone.png"), f.join("data/u000/dangling.png")).unwrap();
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    let plan = plan_json(&f);
    assert!(
        plan["warnings"].to_string().contains("broken_symlink"),
        "{}",
        plan["warnings"]
    );
    assert_eq!(plan["summary"]["create"], 3);
}

#[test]
fn multi_path_include_narrows_an_asset() {
    let f = Fixture::new();
    f.write("imgs/a.png", "a")
        .write("imgs/b.png", "b")
        .write("labs/a.json", "{}")
        .write("labs/b.json", "{}")
        .write("labs/skip-c.json", "{}");
    f.write("r.yaml", format!("{TWO_SPECS}assets:\n  image_1: {{path: imgs}}\n  label_1: {{path: labs, include: ['[ab].json']}}\n"));
    let plan = plan_json(&f);
    assert_eq!(plan["layout"]["pattern"], 5);
    assert_eq!(plan["summary"]["create"], 2);
    assert_eq!(plan["unmatched"][0]["path"], "skip-c.json");
    assert_eq!(plan["unmatched"][0]["root"], "labs");
}
