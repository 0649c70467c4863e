//! `synup plan` end to end: actions, problems, unmatched files, exit codes, files.

use crate::harness::{Fixture, TWO_SPECS, nested_units};

/// A tree where every unit problem and every unmatched reason occurs once.
pub(crate) fn troubled() -> Fixture {
    let f = Fixture::new();
    f.write(
        "r.yaml",
        format!(
            "{TWO_SPECS}  data_unit_meta_schema:\n    type: object\n    required: [name, age]\n    properties: {{age: {{type: integer, maximum: 120}}, seen: {{type: string, format: date}}}}\nsource: {{path: data}}\nexclude: ['**/side.yaml']\ngroup_key_regex: '^(?P<group_key>u\\d+)/'\nvalidation: {{max_file_size_mb: 1}}\nmetadata:\n  - csv: meta.csv\n    columns: {{age: integer}}\n  - sidecar: '{{unit_dir}}/side.yaml'\n    required: true\n"
        ),
    );
    f.write(
        "meta.csv",
        "name,age,seen\nu001,40,2024-01-01\nu002,abc,2024-01-01\nu003,300,2024-13-45\nu999,1,\n",
    );
    nested_units(&f, "data", 6);
    for i in 0..6 {
        f.write(&format!("data/u{i:03}/side.yaml"), "scanner: A\n");
    }
    // u000: no metadata row → meta_schema (age required)
    // u002: metadata_type; u003: meta_schema (maximum, format)
    // u004: missing label, an extra png (ambiguous), an empty file
    std::fs::remove_file(f.join("data/u004/lab.json")).unwrap();
    f.write("data/u004/img2.png", "");
    // u005: too large, no sidecar
    f.write("data/u005/img.png", vec![7u8; 1024 * 1024 + 1]);
    std::fs::remove_file(f.join("data/u005/side.yaml")).unwrap();
    f.write("data/u001/notes.txt", "no spec claims .txt");
    f.write("data/other/img.png", "no group key");
    f.write("data/u001/.DS_Store", "junk");
    f
}

#[test]
fn every_problem_is_listed_and_exit_is_3() {
    let f = troubled();
    let out = f.run(&["plan", "r.yaml", "-o", "plan.json"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        f.join("plan.json").exists(),
        "the plan is written for exit 3"
    );
    crate::harness::settings(&f).bind(|| insta::assert_snapshot!("troubled_plan_text", out.both()));
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.join("plan.json")).unwrap()).unwrap();
    crate::harness::settings(&f).bind(|| insta::assert_json_snapshot!("troubled_plan_json", plan, {".plan_hash" => "[hash]", ".inputs" => "[inputs]", ".recipe.sha256" => "[sha]"}));
}

#[test]
fn saved_plan_is_byte_identical_to_json_output() {
    let f = troubled();
    let json = f.run(&["plan", "r.yaml", "--format", "json", "-o", "p.json"]);
    assert_eq!(json.code, 3);
    let text = f.run(&["plan", "r.yaml", "-o", "p2.json"]);
    assert_eq!(
        std::fs::read_to_string(f.join("p.json")).unwrap(),
        json.stdout
    );
    assert_eq!(
        std::fs::read_to_string(f.join("p2.json")).unwrap(),
        json.stdout
    );
    assert!(text.stdout.starts_with("Plan for t"), "{}", text.stdout);
    assert!(json.stdout.ends_with("}\n") && !json.stdout.ends_with("\n\n"));
}

#[test]
fn detailed_exitcode_and_skip_policy() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    assert_eq!(f.run(&["plan", "r.yaml"]).code, 0);
    assert_eq!(f.run(&["plan", "r.yaml", "--detailed-exitcode"]).code, 2);
    std::fs::remove_file(f.join("data/u001/lab.json")).unwrap();
    assert_eq!(
        f.run(&["plan", "r.yaml", "--detailed-exitcode"]).code,
        3,
        "3 wins over 2"
    );
    f.write(
        "skip.yaml",
        format!("{TWO_SPECS}source: {{path: data}}\nvalidation: {{invalid_units: skip}}\n"),
    );
    assert_eq!(f.run(&["plan", "skip.yaml"]).code, 0);
}

#[test]
fn error_exit_writes_no_plan_file() {
    let f = Fixture::new();
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: missing}}\n"));
    let out = f.run(&["plan", "r.yaml", "-o", "p.json"]);
    assert_eq!(out.code, 1);
    assert!(!f.join("p.json").exists());
}

#[test]
fn second_plan_reads_no_file_content() {
    let f = Fixture::new();
    nested_units(&f, "data", 20);
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    let first = f.run(&["plan", "r.yaml", "--stats", "--format", "json"]);
    assert!(
        first.stderr.contains("0 cached, 40 hashed"),
        "{}",
        first.stderr
    );
    let second = f.run(&["plan", "r.yaml", "--stats", "--format", "json"]);
    assert!(
        second.stderr.contains("40 cached, 0 hashed (0 bytes read)"),
        "{}",
        second.stderr
    );
    assert_eq!(first.stdout, second.stdout);
    // Changing one file re-reads exactly that file.
    std::thread::sleep(std::time::Duration::from_millis(20));
    f.write("data/u003/img.png", "changed");
    let third = f.run(&["plan", "r.yaml", "--stats", "--format", "json"]);
    assert!(
        third.stderr.contains("39 cached, 1 hashed"),
        "{}",
        third.stderr
    );
    assert_ne!(first.stdout, third.stdout);
}

#[test]
fn settled_folders_are_listed_from_the_cache_and_changes_are_read() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    let stats = |out: &crate::harness::Output| {
        let line = out
            .stderr
            .lines()
            .find(|l| l.starts_with("stats:"))
            .unwrap_or("");
        line.split("; ").nth(1).unwrap_or("").to_owned()
    };
    // A folder changed in the last two seconds is read but not cached.
    let racy = f.run(&["plan", "r.yaml", "--stats", "--format", "json"]);
    assert_eq!(stats(&racy), "folders: 0 cached, 4 read");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let first = f.run(&["plan", "r.yaml", "--stats", "--format", "json"]);
    assert_eq!(stats(&first), "folders: 0 cached, 4 read");
    let second = f.run(&["plan", "r.yaml", "--stats", "--format", "json"]);
    assert_eq!(
        stats(&second),
        "folders: 4 cached, 0 read",
        "{}",
        second.stderr
    );
    assert_eq!(first.stdout, second.stdout);

    // A new unit changes `data` (read again) and adds a folder; the rest are cached.
    f.write("data/u007/img.png", "png 7");
    f.write("data/u007/lab.json", "{}");
    let third = f.run(&["plan", "r.yaml", "--stats", "--format", "json"]);
    assert_eq!(stats(&third), "folders: 3 cached, 2 read");
    let plan: serde_json::Value = serde_json::from_str(&third.stdout).unwrap();
    assert_eq!(plan["units"].as_array().unwrap().len(), 4);

    // A damaged cache is rebuilt, with a warning.
    let dirs = std::fs::read_dir(f.join(".synup/cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "dirs"))
        .expect("the listing cache");
    std::fs::write(&dirs, "garbage").unwrap();
    let fourth = f.run(&["plan", "r.yaml", "--format", "json"]);
    assert_eq!(fourth.code, 0, "{}", fourth.stderr);
    assert!(
        fourth.stdout.contains("listing_cache_rebuilt"),
        "{}",
        fourth.stdout
    );
    let plan4: serde_json::Value = serde_json::from_str(&fourth.stdout).unwrap();
    assert_eq!(plan4["units"], plan["units"]);
}

#[test]
fn corrupt_checksum_cache_is_rebuilt_with_a_warning() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    assert_eq!(f.run(&["plan", "r.yaml"]).code, 0);
    f.write(
        ".synup/cache/t.checksums",
        "garbage\x00\x01\nnot a record\n",
    );
    let out = f.run(&["plan", "r.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("checksum_cache_rebuilt"),
        "{}",
        out.stdout
    );
    let again = f.run(&["plan", "r.yaml"]);
    assert!(!again.stdout.contains("checksum_cache_rebuilt"));
}

/// A byte of a cached SHA-1 changed on disk (or by hand) is caught by the
/// record's own check: the file is read again, and apply never meets a
/// digest its bytes do not have (it used to fail that unit on every run
/// until the cache was deleted).
#[test]
fn a_damaged_checksum_record_is_read_again_not_trusted() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    assert_eq!(f.run(&["plan", "r.yaml"]).code, 0);
    let cache = f.join(".synup/cache/t.checksums");
    let mut bytes = std::fs::read(&cache).unwrap();
    // The last byte of the first record's SHA-1 (header 19, fields 52).
    bytes[19 + 51] ^= 0x40;
    std::fs::write(&cache, &bytes).unwrap();
    let out = f.run(&["plan", "r.yaml", "-o", "plan.json", "--stats"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("5 cached, 1 hashed") || out.stdout.contains("5 cached, 1 hashed"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let applied = f.run(&["apply", "plan.json", "--yes"]);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    assert!(applied.stdout.contains("3 created, 0 unchanged, 0 failed"));
}

#[test]
fn paths_are_relative_to_the_recipe_not_the_working_directory() {
    let f = Fixture::new();
    nested_units(&f, "proj/data", 3);
    f.write(
        "proj/r.yaml",
        format!("{TWO_SPECS}source: {{path: data}}\n"),
    );
    let out = f.run(&["plan", "proj/r.yaml", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["recipe"]["path"], "proj/r.yaml");
    assert_eq!(plan["summary"]["create"], 3);
    assert!(
        f.join("proj/.synup/cache").exists(),
        ".synup/ is created beside the recipe"
    );
}

#[test]
fn shared_extension_without_rules_asks_for_file_rules() {
    let f = Fixture::new();
    f.write("data/u1/a.png", "a").write("data/u1/b.png", "b");
    f.write("r.yaml", "version: 1\nname: t\ncollection:\n  file_specifications:\n    - {name: image_1, file_type: image, extensions: [.png]}\n    - {name: mask_1, file_type: image, extensions: [png]}\nsource: {path: data}\n");
    let out = f.run(&["plan", "r.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::plan::extension_conflict"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("file_rules"), "{}", out.stderr);
}

#[test]
fn an_unclear_layout_asks_for_a_group_key_regex_with_the_best_two_groupings() {
    let f = Fixture::new();
    f.write("data/a/x.png", "a")
        .write("data/a/y.png", "b")
        .write("data/b/x.png", "c")
        .write("data/b/y.png", "d")
        .write("data/c/z.json", "e");
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    let out = f.run(&["plan", "r.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::plan::no_layout"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("group_key_regex"), "{}", out.stderr);
    assert!(
        out.stderr.contains("best, first folder: 0 complete"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("next best,"), "{}", out.stderr);
}

#[test]
fn two_groups_rendering_one_key_is_an_error() {
    let f = Fixture::new();
    f.write("data/s1/p1/a.png", "a")
        .write("data/s1/p2/a.png", "b");
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\ngroup_key_regex: '^(?P<site>[^/]+)/(?P<group_key>[^/]+)/'\ndataset_key_template: '{{site}}'\n"));
    let out = f.run(&["plan", "r.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("synup::plan::key_collision"),
        "{}",
        out.stderr
    );
}

#[test]
fn unreadable_files_are_a_clear_error() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    let secret = f.join("data/u001/img.png");
    set_mode(&secret, 0o000);
    let out = run_unprivileged(&f, &["plan", "r.yaml"]);
    set_mode(&secret, 0o644);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("synup::plan::source_unreadable"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("u001/img.png"), "{}", out.stderr);
}

#[test]
fn unreadable_folder_is_a_clear_error() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    f.write("r.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    let dir = f.join("data/u000");
    set_mode(&dir, 0o000);
    let out = run_unprivileged(&f, &["plan", "r.yaml"]);
    set_mode(&dir, 0o755);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("synup::plan::source_unreadable"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("u000"), "{}", out.stderr);
}

use crate::harness::chmod as set_mode;

/// Root reads everything, so permission tests drop to `nobody` when run as root.
fn run_unprivileged(f: &Fixture, args: &[&str]) -> crate::harness::Output {
    if !crate::harness::is_root() {
        return f.run(args);
    }
    // nobody must be able to enter the fixture and write `.synup/` beside the recipe.
    set_mode(f.path(), 0o777);
    for entry in ["data", "data/u001"] {
        set_mode(&f.join(entry), 0o755);
    }
    crate::harness::as_nobody(f, args)
}

#[test]
fn an_excluded_unreadable_folder_is_skipped_as_the_error_suggests() {
    for glob in ["u000/**", "**/u000", "u000"] {
        let f = Fixture::new();
        nested_units(&f, "data", 3);
        f.write(
            "r.yaml",
            format!("{TWO_SPECS}source: {{path: data}}\nexclude: [\"{glob}\"]\n"),
        );
        let dir = f.join("data/u000");
        set_mode(&dir, 0o000);
        let out = run_unprivileged(&f, &["plan", "r.yaml"]);
        set_mode(&dir, 0o755);
        assert_eq!(out.code, 0, "{glob}: {}", out.both());
        assert!(out.stdout.contains("2 to create"), "{glob}: {}", out.stdout);
    }
}
