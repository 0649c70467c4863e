//! `synup init`: the wizard driven through a pseudo-terminal against
//! `synup serve`, its flag form, and each error it gives without a terminal.

use std::path::Path;
use std::time::Duration;

use expectrl::Expect;
use expectrl::session::OsSession as Session;
use rust_xlsxwriter::Workbook;
use serde_json::{Value as Json, json};

use crate::harness::{Fixture, nested_units, run};
use crate::server::{Serve, seed, synup_for};

const DOWN: &str = "\x1b[B";
const BACKSPACE: &str = "\x7f";

/// A collection whose meta schema requires an integer `age`.
fn collection_with_schema() -> Json {
    json!({"id": 42, "name": "ct-scans", "file_specifications": [
        {"name": "image_1", "file_type": "image", "extensions": [".png"], "is_required": true, "is_primary": true},
        {"name": "label_1", "file_type": "document", "extensions": [".json"], "is_required": true}],
        "meta": {"data_unit_meta_schema": {"type": "object", "required": ["age"],
            "properties": {"age": {"type": "integer", "minimum": 0}}}}})
}

fn excel(path: &Path, n: usize) {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "unit").unwrap();
    ws.write_string(0, 1, "age").unwrap();
    for i in 0..n {
        ws.write_string(i as u32 + 1, 0, format!("u{i:03}"))
            .unwrap();
        ws.write_number(i as u32 + 1, 1, 40.0 + i as f64).unwrap();
    }
    wb.save(path).unwrap();
}

/// The wizard in a pseudo-terminal, the way a person meets it.
fn wizard(cmd: std::process::Command) -> Session {
    let mut p = Session::spawn(cmd).expect("a pty");
    p.set_expect_timeout(Some(Duration::from_secs(60)));
    p
}

fn step(p: &mut Session, prompt: &str, keys: &str) {
    if let Err(e) = p.expect(prompt) {
        panic!("waiting for `{prompt}`: {e}");
    }
    std::thread::sleep(Duration::from_millis(150));
    p.send(keys).unwrap();
}

fn exit_code(p: &mut Session) -> i32 {
    use expectrl::process::unix::WaitStatus;
    let _ = p.expect(expectrl::Eof);
    match p.get_process().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("synup did not exit: {other:?}"),
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".synup-init-") || n == "synup.yaml")
        .collect()
}

#[test]
fn the_wizard_guides_a_user_to_a_recipe_whose_plan_is_valid() {
    let f = Fixture::new();
    nested_units(&f, "data", 4);
    excel(&f.join("meta.xlsx"), 4);
    let serve = Serve::start(f.path(), &seed(vec![collection_with_schema()]), &[]);
    let mut cmd = synup_for(&serve, f.path());
    cmd.arg("init").env("TERM", "xterm").env_remove("NO_COLOR");
    let mut p = wizard(cmd);
    step(
        &mut p,
        "Where should the data units go?",
        &format!("{DOWN}\r"),
    );
    step(&mut p, "Which data collection?", "\r");
    step(&mut p, "Use the default storage", "\r");
    step(&mut p, "How are the files laid out?", "\r");
    // A mistyped path is refused with the reason, then corrected.
    step(&mut p, "Source path:", "dta\r");
    step(
        &mut p,
        "cannot be read",
        &format!("{BACKSPACE}{BACKSPACE}{BACKSPACE}data\r"),
    );
    step(&mut p, "Detected layout: pattern 1", "");
    step(&mut p, "file_rules: none needed, by extension", "");
    step(&mut p, "Use this layout?", "\r");
    step(&mut p, "requires: age", "");
    step(&mut p, "Where does unit metadata come from?", "\r");
    step(&mut p, "Spreadsheet", "meta.xlsx\r");
    step(&mut p, "4 rows; columns: unit, age", "");
    step(&mut p, "Which column holds the unit key?", "\r");
    step(&mut p, "Column types", "age: integer\r");
    step(&mut p, "Another metadata source?", "\r");
    step(
        &mut p,
        "plan: 4 units (4 to create, 0 unchanged, 0 invalid)",
        "",
    );
    assert_eq!(exit_code(&mut p), 0);

    let recipe = std::fs::read_to_string(f.join("synup.yaml")).unwrap();
    assert!(recipe.contains("data_collection: 42"), "{recipe}");
    assert!(recipe.contains("key_column: \"unit\""), "{recipe}");
    assert!(
        leftovers(f.path()) == ["synup.yaml"],
        "{:?}",
        leftovers(f.path())
    );
    let out = run(synup_for(&serve, f.path()).args(["plan", "synup.yaml", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: Json = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["summary"]["invalid"], 0);
    assert_eq!(plan["summary"]["create"], 4);
    assert_eq!(plan["units"][2]["meta"]["age"], 42);
}

#[test]
fn an_interrupt_at_a_prompt_leaves_nothing_written() {
    let f = Fixture::new();
    nested_units(&f, "data", 2);
    let mut cmd = crate::harness::synup();
    cmd.current_dir(f.path())
        .args(["init", "--target", "local", "--data-collection", "c"])
        .env("TERM", "xterm");
    let mut p = wizard(cmd);
    step(&mut p, "How are the files laid out?", "\r");
    step(&mut p, "Source path:", "data\r");
    step(&mut p, "Use this layout?", "\x03");
    step(&mut p, "interrupted: nothing was written", "");
    assert_eq!(exit_code(&mut p), 130);
    assert!(leftovers(f.path()).is_empty(), "{:?}", leftovers(f.path()));
}

#[test]
fn without_a_terminal_every_answer_is_a_flag_and_each_gap_is_named() {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    let init = |args: &[&str]| {
        let mut cmd = crate::harness::synup();
        cmd.current_dir(f.path())
            .env("HOME", f.path())
            .env_remove("SYNAPSE_HOST")
            .env_remove("SYNAPSE_ACCESS_TOKEN")
            .arg("init")
            .args(args);
        run(&mut cmd)
    };
    let out = init(&[]);
    assert_eq!(out.code, 1);
    for flag in ["--target", "--data-collection", "--source", "--metadata"] {
        assert!(out.stderr.contains(flag), "{flag}: {}", out.stderr);
    }
    let out = init(&[
        "--target",
        "synapse",
        "--data-collection",
        "42",
        "--source",
        "data",
        "--metadata",
        "none",
    ]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("--host") && out.stderr.contains("--storage"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("--source"), "{}", out.stderr);

    let local = ["--target", "local", "--data-collection", "scans"];
    let out = init(&[&local[..], &["--source", "nowhere", "--metadata", "none"]].concat());
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("--source nowhere") && out.stderr.contains("cannot be read"),
        "{}",
        out.stderr
    );
    let out = init(
        &[
            &local[..],
            &["--source", "data", "--metadata", "static:site"],
        ]
        .concat(),
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("FIELD=VALUE"), "{}", out.stderr);
    let out = init(&[&local[..], &["--source", "data", "--metadata", "yaml:x"]].concat());
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("`yaml` is not a metadata kind"),
        "{}",
        out.stderr
    );
    assert!(leftovers(f.path()).is_empty(), "{:?}", leftovers(f.path()));

    let ok = [
        &local[..],
        &["--source", "data", "--metadata", "static:site=Seoul"],
    ]
    .concat();
    let out = init(&ok);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("3 to create"), "{}", out.stderr);
    let out = init(&ok);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    let out = f.run(&["plan", "synup.yaml", "--format", "json"]);
    let plan: Json = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["units"][0]["meta"]["site"], "Seoul");
}

#[test]
fn plan_on_a_terminal_asks_for_what_the_recipe_leaves_out() {
    let f = Fixture::new();
    nested_units(&f, "data", 2);
    let serve = Serve::start(f.path(), &seed(vec![collection_with_schema()]), &[]);
    f.write(
        "synup.yaml",
        "version: 1\nname: gaps\ntarget: {backend: synapse}\nsource: {path: data}\nmetadata: [{static: {age: 3}}]\n",
    );
    // Without a terminal, the gap is an error naming the recipe key, with
    // ./synup.yaml read by default; a missing recipe names the argument.
    for args in [&["plan", "synup.yaml"][..], &["plan"]] {
        let out = run(synup_for(&serve, f.path()).args(args));
        assert_eq!(out.code, 1);
        assert!(out.stderr.contains("data_collection"), "{}", out.stderr);
    }
    let empty = Fixture::new();
    let out = run(synup_for(&serve, empty.path()).arg("plan"));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("missing argument RECIPE"),
        "{}",
        out.stderr
    );

    // On a terminal: the recipe in the folder is found, the collection asked for.
    let mut cmd = synup_for(&serve, f.path());
    cmd.arg("plan").env("TERM", "xterm");
    let mut p = wizard(cmd);
    step(&mut p, "using synup.yaml", "");
    step(&mut p, "Which data collection?", "\r");
    step(&mut p, "add `data_collection: 42`", "");
    step(&mut p, "2 to create", "");
    assert_eq!(exit_code(&mut p), 0);
}

/// `apply` on a terminal asks before changing anything: no (the default)
/// applies nothing, yes applies.
#[test]
fn apply_on_a_terminal_asks_and_the_default_is_no() {
    let f = Fixture::new();
    nested_units(&f, "data", 2);
    f.write(
        "r.yaml",
        format!("{}source: {{path: data}}\n", crate::harness::TWO_SPECS),
    );
    let apply = || {
        let mut cmd = crate::harness::synup();
        cmd.current_dir(f.path()).args(["apply", "r.yaml"]);
        wizard(cmd)
    };
    let mut p = apply();
    step(&mut p, "Apply 2 unit(s) to local collection", "\r");
    assert_eq!(exit_code(&mut p), 0);
    assert_eq!(f.run(&["plan", "r.yaml"]).stdout.matches("  + ").count(), 2);
    let mut p = apply();
    step(&mut p, "Apply 2 unit(s) to local collection", "y\r");
    assert_eq!(exit_code(&mut p), 0);
    assert!(f.run(&["plan", "r.yaml"]).stdout.contains("2 unchanged"));
}
