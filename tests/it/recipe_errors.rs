//! Bad recipes: every error has a code, a location and a hint; all are reported
//! in one run; nothing panics.

use crate::harness::{Fixture, TWO_SPECS};

fn validate(recipe_name: &str, text: &str) -> crate::harness::Output {
    let f = Fixture::new();
    f.write(recipe_name, text);
    let out = f.run(&["validate", recipe_name]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out
}

fn plan(f: &Fixture, recipe_name: &str) -> crate::harness::Output {
    let out = f.run(&["plan", recipe_name]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out
}

#[test]
fn malformed_yaml_is_a_syntax_error_with_a_location() {
    let out = validate("r.yaml", "version: 1\nname: [x\nsource: {path: .}\n");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::recipe::syntax"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("[r.yaml:"), "{}", out.stderr);
}

#[test]
fn malformed_toml_is_a_syntax_error_with_a_location() {
    let out = validate("r.toml", "version = 1\nname = \"x\nsource = 3\n");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::recipe::syntax"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("[r.toml:2:"), "{}", out.stderr);
}

#[test]
fn unknown_keys_and_wrong_types_are_reported_together() {
    let f = Fixture::new();
    f.write(
        "r.yaml",
        "version: 1\nname: x\nsoruce: {path: a}\nupload:\n  workers: many\n  batchsize: 3\n",
    );
    let out = f.run(&["validate", "r.yaml"]);
    assert_eq!(out.code, 1);
    let settings = crate::harness::settings(&f);
    settings.bind(|| insta::assert_snapshot!("unknown_keys_and_wrong_types", out.both()));
}

#[test]
fn toml_unknown_key_gets_the_same_quality() {
    let out = validate(
        "r.toml",
        "version = 1\nname = \"x\"\n[source]\npath = \"d\"\nrecursiv = true\n",
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::recipe::unknown_key"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `recursive`?"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("[r.toml:5:1]"), "{}", out.stderr);
}

#[test]
fn empty_recipe_says_what_a_recipe_needs() {
    let out = validate("r.yaml", "\n# only a comment\n");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::recipe::empty"),
        "{}",
        out.stderr
    );
}

#[test]
fn semantic_errors_point_at_their_values() {
    let text = format!(
        "{TWO_SPECS}source: {{path: data}}\nfile_rules:\n  - {{pattern: \"**/[a.png\", spec: image_1}}\n  - {{pattern: \"**/*.json\", spec: labl_1}}\ngroup_key_regex: \"^(?P<group_key>[^/]+\"\nmetadata:\n  - filename: {{regex: '\\d+_x'}}\n"
    );
    let out = validate("r.yaml", &text);
    assert_eq!(out.code, 1);
    for code in ["bad_glob", "unknown_spec", "bad_regex", "regex_no_capture"] {
        assert!(
            out.stderr.contains(&format!("synup::recipe::{code}")),
            "missing {code}:\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("did you mean `label_1`?"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("[r.yaml:9:"),
        "glob at its line:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("4 problems in recipe r.yaml"),
        "{}",
        out.stderr
    );
}

#[test]
fn source_and_assets_both_set_is_an_error() {
    let text = format!("{TWO_SPECS}source: {{path: a}}\nassets:\n  image_1: {{path: b}}\n");
    let out = validate("r.yaml", &text);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::recipe::source_and_assets"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("[r.yaml:8:1]"), "{}", out.stderr);
}

#[test]
fn unset_variable_is_named() {
    let out = validate(
        "r.yaml",
        &format!("{TWO_SPECS}source: {{path: \"${{SYNUP_TEST_UNSET_DIR}}\"}}\n"),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::recipe::env_unset"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("SYNUP_TEST_UNSET_DIR"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_source_and_source_that_is_a_file() {
    let f = Fixture::new();
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: nowhere}}\n"));
    let out = plan(&f, "r.yaml");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::recipe::source_missing"),
        "{}",
        out.stderr
    );
    f.write("file.txt", "x");
    f.write(
        "r2.yaml",
        format!("{TWO_SPECS}source: {{path: file.txt}}\n"),
    );
    let out = plan(&f, "r2.yaml");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::recipe::source_not_dir"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_metadata_file_points_at_its_key() {
    let f = Fixture::new();
    crate::harness::nested_units(&f, "data", 3);
    f.write(
        "r.yaml",
        format!("{TWO_SPECS}source: {{path: data}}\nmetadata:\n  - excel: nope.xlsx\n"),
    );
    let out = plan(&f, "r.yaml");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::recipe::metadata_file_missing"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("[r.yaml:9:12]"), "{}", out.stderr);
}

#[test]
fn invalid_meta_schema_is_reported() {
    let text = "version: 1\nname: x\ncollection:\n  file_specifications:\n    - {name: a, file_type: image, extensions: [.png]}\n  data_unit_meta_schema: {type: objekt}\nsource: {path: .}\n";
    let out = validate("r.yaml", text);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::recipe::bad_meta_schema"),
        "{}",
        out.stderr
    );
}

#[test]
fn remote_schema_ref_is_refused() {
    let text = "version: 1\nname: x\ncollection:\n  file_specifications:\n    - {name: a, file_type: image, extensions: [.png]}\n  data_unit_meta_schema: {$ref: 'https://example.com/s.json'}\nsource: {path: .}\n";
    let out = validate("r.yaml", text);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::recipe::remote_ref"),
        "{}",
        out.stderr
    );
}

#[test]
fn literal_token_never_appears_in_output() {
    let f = Fixture::new();
    crate::harness::nested_units(&f, "data", 3);
    f.write(
        "r.yaml",
        format!("{TWO_SPECS}target: {{token: s3cr3t-t0ken-value}}\nsource: {{path: data}}\n"),
    );
    let out = f.run(&["plan", "r.yaml", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stdout.contains("s3cr3t"), "token leaked into the plan");
    assert!(!out.stderr.contains("s3cr3t"), "token leaked into stderr");
    assert!(
        out.stdout.contains("literal_token"),
        "warning missing: {}",
        out.stdout
    );
}

#[test]
fn secret_variables_are_masked_in_the_plan() {
    let f = Fixture::new();
    crate::harness::nested_units(&f, "data", 3);
    f.write(
        "r.yaml",
        format!(
            "{TWO_SPECS}description: \"${{MY_API_KEY}}\"\nsource: {{path: \"${{DATA_DIR}}\"}}\n"
        ),
    );
    let out = crate::harness::run(
        crate::harness::synup()
            .current_dir(f.path())
            .args(["plan", "r.yaml", "--format", "json"])
            .env("MY_API_KEY", "hunter2-secret")
            .env("DATA_DIR", "data"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stdout.contains("hunter2"), "secret leaked");
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["inputs"]["env"]["MY_API_KEY"], "***");
    assert_eq!(plan["inputs"]["env"]["DATA_DIR"], "data");
}

#[test]
fn missing_recipe_argument_is_named() {
    let f = Fixture::new();
    let out = f.run(&["plan"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("missing argument RECIPE"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_repeated_key_is_named_in_our_words() {
    for (name, text) in [
        (
            "r.yaml",
            "version: 1\nname: a\nname: b\nsource: {path: .}\n",
        ),
        ("r.toml", "version = 1\nname = \"a\"\nname = \"b\"\n"),
    ] {
        let out = validate(name, text);
        assert_eq!(out.code, 1, "{}", out.both());
        assert!(
            out.stderr.contains("synup::recipe::duplicate_key"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains("`name` appears twice in the same mapping"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("DuplicateKeyPolicy"), "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!("[{name}:3:1]")),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_recipe_past_the_parsers_safety_budget_says_so() {
    let mut text = format!("{TWO_SPECS}source: {{path: .}}\nmetadata:\n  - static:\n");
    for i in 0..130_000 {
        text.push_str(&format!("      f{i}: v{i}\n"));
    }
    let out = validate("r.yaml", &text);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("synup::recipe::too_large"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("CSV or Excel sheet"), "{}", out.stderr);
}
