//! Content screening (SPEC 2.3), the junk list (2.1) and plans that explain
//! themselves, through the CLI.

use serde_json::Value as Json;

use crate::harness::{Fixture, TWO_SPECS};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n....";

fn plan(f: &Fixture, recipe: &str) -> (i32, Json, String) {
    let out = f.run(&["plan", recipe, "--format", "json", "--stats"]);
    let json = serde_json::from_str(&out.stdout).unwrap_or(Json::Null);
    (out.code, json, out.stderr)
}

fn codes(plan: &Json) -> Vec<String> {
    plan["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{} {}",
                w["code"].as_str().unwrap(),
                w["message"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn content_screening_warns_fails_or_stays_off_and_a_warm_plan_reads_nothing() {
    let f = Fixture::new();
    f.write("data/u1/img.png", PNG)
        .write("data/u1/label.json", "{\"ok\": true}")
        .write("data/u2/img.png", b"\x7fELF\x02\x01\x01\0rest")
        .write("data/u2/label.json", "{\"link\": \"javascript:alert(1)\"}")
        .write("data/u3/img.png", b"<html>not an image</html>")
        .write(
            "data/u3/label.json",
            "{\"type\": \"service_account\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\"}",
        );
    for mode in ["warn", "fail", "off"] {
        f.write(
            &format!("{mode}.yaml"),
            format!("{TWO_SPECS}source: {{path: data}}\nvalidation: {{content: {mode}}}\n"),
        );
    }

    let (code, p, stderr) = plan(&f, "warn.yaml");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(p["summary"]["invalid"], 0);
    let warnings = codes(&p);
    assert_eq!(
        warnings,
        [
            "executable data/u2/img.png: it is an ELF executable",
            "script_injection data/u2/label.json: it contains a javascript: URL",
            "sensitive_file data/u3/label.json: it contains a private key",
            "type_mismatch data/u3/img.png: .png file without the .png signature (starts with 3C 68 74 6D)",
        ]
    );
    assert!(stderr.contains("screened: 0 cached, 6 read"), "{stderr}");
    // Warm: every verdict comes from the cache.
    let (_, again, stderr) = plan(&f, "warn.yaml");
    assert!(stderr.contains("screened: 6 cached, 0 read"), "{stderr}");
    assert_eq!(codes(&again), warnings);

    let (code, p, _) = plan(&f, "fail.yaml");
    assert_eq!(code, 3, "invalid units under `fail`");
    let problems = |key: &str| -> Vec<String> {
        p["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["key"] == key)
            .unwrap()["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["reason"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(problems("u1"), Vec::<String>::new());
    assert_eq!(problems("u2"), ["executable", "script_injection"]);
    assert_eq!(problems("u3"), ["type_mismatch", "sensitive_file"]);

    let (code, p, stderr) = plan(&f, "off.yaml");
    assert_eq!(code, 0);
    assert!(codes(&p).is_empty());
    assert!(stderr.contains("screened: 0 cached, 0 read"), "{stderr}");
}

#[test]
fn mac_and_windows_junk_is_excluded_unless_kept() {
    let f = Fixture::new();
    f.write("data/p1/img.png", PNG)
        .write("data/p1/._img.png", "resource fork")
        .write("data/p1/label.json", "{}")
        .write("data/p1/._label.json", "resource fork")
        .write("data/.DS_Store", "x")
        .write("data/Thumbs.db", "x")
        .write("data/.Trashes/501/old.png", PNG)
        .write("data/$RECYCLE.BIN/S-1/old.png", PNG);
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    let (code, p, stderr) = plan(&f, "r.yaml");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(p["summary"]["excluded_files"], 6);
    assert_eq!(p["summary"]["create"], 1);
    assert_eq!(p["unmatched"], serde_json::json!([]));

    f.write(
        "keep.yaml",
        format!("{TWO_SPECS}source: {{path: data}}\ninclude_junk: true\ngroup_key_regex: '^p1/'\n"),
    );
    let (code, p, _) = plan(&f, "keep.yaml");
    assert_eq!(code, 3, "the companions join the unit: two files per spec");
    assert_eq!(p["summary"]["excluded_files"], 0);
    let reasons: Vec<&str> = p["units"][0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["ambiguous_spec", "ambiguous_spec"]);
}

#[test]
fn a_plan_where_nothing_matches_says_why_in_one_line() {
    let f = Fixture::new();
    for i in 0..30 {
        f.write(&format!("data/case_{i:02}/case_{i:02}_flair.nii.gz"), "x");
    }
    f.write(
        "r.yaml",
        "version: 1\nname: t\ncollection:\n  file_specifications:\n    - {name: flair, file_type: medical, extensions: [.nii], is_required: true}\nsource: {path: data}\nfile_rules:\n  - {pattern: '**/*_flair.*', spec: flair}\nvalidation: {content: off}\n",
    );
    let out = f.run(&["plan", "r.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("30 × extension_not_allowed: spec flair lists .nii; these end in .nii.gz"),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout.matches("_flair.nii.gz").count(),
        2,
        "summarised with two examples, not listed 30 times:\n{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "No valid unit: no file became part of a unit; most (30 of 30) are extension_not_allowed"
        ),
        "{}",
        out.stdout
    );
    let json = f.run(&["plan", "r.yaml", "--format", "json"]);
    let p: Json = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(p["unmatched_summary"][0]["count"], 30);
    assert_eq!(p["unmatched_summary"][0]["spec"], "flair");
    assert!(
        p["diagnosis"]
            .as_str()
            .unwrap()
            .contains("extension_not_allowed")
    );

    // The same files with `.nii.gz` listed plan to 30 units keyed by folder.
    std::fs::write(
        f.join("r.yaml"),
        std::fs::read_to_string(f.join("r.yaml"))
            .unwrap()
            .replace("[.nii]", "[nii.gz]"),
    )
    .unwrap();
    let json = f.run(&["plan", "r.yaml", "--format", "json"]);
    let p: Json = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(p["summary"]["create"], 30, "{}", json.stdout);
    assert_eq!(p["units"][0]["key"], "case_00");
    assert_eq!(p["diagnosis"], Json::Null);
}
