//! What every command shares (SPEC 3): the default recipe, `-v`/`SYNUP_LOG`/
//! `--log-file`, `--color`, `--format json` with JSON errors, markdown plans,
//! completions and man pages.

use crate::harness::{Fixture, TWO_SPECS, nested_units, run, synup};

fn two_units() -> Fixture {
    let f = Fixture::new();
    f.write("synup.yaml", format!("{TWO_SPECS}source: {{path: data}}\n"));
    nested_units(&f, "data", 2);
    f
}

/// A JSON document on stdout whose first key is `format_version`.
fn versioned(stdout: &str) -> serde_json::Value {
    let trimmed = stdout.trim_start();
    assert!(
        trimmed.starts_with("{\"format_version\":1")
            || trimmed.starts_with("{\n  \"format_version\": 1"),
        "format_version first: {stdout}"
    );
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn without_a_recipe_argument_synup_yaml_is_used_with_no_terminal() {
    let f = two_units();
    for args in [
        vec!["plan", "--format", "json"],
        vec!["validate"],
        vec!["graph"],
        vec!["status"],
    ] {
        let out = f.run(&args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    }
    let plan = versioned(&f.run(&["plan", "--format", "json"]).stdout);
    assert_eq!(plan["recipe"]["path"], "synup.yaml");
    assert_eq!(plan["summary"]["create"], 2);

    let empty = Fixture::new();
    let out = empty.run(&["plan"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no ./synup.yaml here"),
        "{}",
        out.stderr
    );
}

#[test]
fn errors_are_json_on_stdout_under_format_json() {
    let f = Fixture::new();
    f.write(
        "bad.yaml",
        format!("{TWO_SPECS}source: {{path: data}}\nbatch: 3\n"),
    );
    for args in [
        vec!["validate", "bad.yaml", "--format", "json"],
        vec!["plan", "bad.yaml", "--format", "json"],
        vec!["apply", "bad.yaml", "--yes", "--format", "json"],
    ] {
        let out = f.run(&args);
        assert_eq!(out.code, 1, "{args:?}");
        let doc = versioned(&out.stdout);
        let error = &doc["error"];
        assert!(
            error["message"].as_str().unwrap().contains("batch"),
            "{args:?}: {doc}"
        );
        assert!(error["labels"].is_array(), "miette's labels: {doc}");
    }
    // A missing file, a one-line error: still JSON.
    let out = f.run(&["status", "missing.yaml", "--format", "json"]);
    assert_eq!(out.code, 1);
    assert!(
        versioned(&out.stdout)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing.yaml")
    );
}

#[test]
fn validate_and_apply_report_as_json() {
    let f = two_units();
    let out = f.run(&["validate", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = versioned(&out.stdout);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["specs"], 2);
    assert_eq!(doc["mode"], "single");

    let out = f.run(&["apply", "--yes", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = versioned(&out.stdout);
    assert_eq!(report["units"]["created"], 2, "{report}");
    assert!(
        out.stderr.contains("Apply succeeded"),
        "the text report for people: {}",
        out.stderr
    );
    // Nothing left to do: still one JSON report, and a note that says why.
    let out = f.run(&["apply", "--yes", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(versioned(&out.stdout)["units"]["created"], 0);
    assert!(out.stderr.contains("Nothing to apply"), "{}", out.stderr);
    // `--report -` is stdout, not a file named `-`.
    let out = f.run(&["apply", "--yes", "--report", "-"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(versioned(&out.stdout)["units"]["created"], 0);
    assert!(!f.join("-").exists());
}

#[test]
fn verbose_logs_stages_and_log_file_and_synup_log_choose_where_and_what() {
    let f = two_units();
    let quiet = f.run(&["plan"]);
    assert!(
        !quiet.stderr.contains("DEBUG"),
        "no logs by default: {}",
        quiet.stderr
    );

    let out = f.run(&["plan", "-v"]);
    assert_eq!(out.code, 0);
    assert!(out.stderr.contains("stage finished"), "{}", out.stderr);
    assert!(out.stderr.contains("stage=group"), "{}", out.stderr);
    // Flags go before or after the command.
    let out = f.run(&["-v", "plan"]);
    assert!(out.stderr.contains("stage finished"), "{}", out.stderr);

    let out = run(synup()
        .current_dir(f.path())
        .env("SYNUP_LOG", "synup::plan::engine=debug")
        .args(["plan", "--log-file", "synup.log"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        !out.stderr.contains("stage finished"),
        "logs go to the file: {}",
        out.stderr
    );
    let log = std::fs::read_to_string(f.join("synup.log")).unwrap();
    assert!(
        log.contains("stage started") && log.contains("stage=checksum"),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "no colour in a file");

    let out = run(synup()
        .current_dir(f.path())
        .env("SYNUP_LOG", "synup=[")
        .args(["plan"]));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("SYNUP_LOG"), "{}", out.stderr);
}

#[test]
fn retries_are_logged_with_their_cause_and_never_the_token() {
    // A port nothing listens on: every attempt fails to connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = "tok-9f8e7d6c5b4a39281706";
    let f = Fixture::new();
    let out = run(synup().current_dir(f.path()).args([
        "collections",
        "--host",
        &format!("http://127.0.0.1:{port}"),
        "--token",
        token,
        "-vv",
    ]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("retrying after a transport error"),
        "{}",
        out.stderr
    );
    // The cause, not just "error sending request".
    assert!(
        out.stderr.to_lowercase().contains("connect"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(token) && !out.stdout.contains(token));
}

#[test]
fn color_follows_the_flag_then_no_color_then_clicolor_force() {
    let f = two_units();
    let sgr = "\x1b[32m+";
    let plan = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = synup();
        cmd.current_dir(f.path())
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(cmd.args(args)).stdout
    };
    assert!(!plan(&["plan"], &[]).contains('\x1b'), "not a terminal");
    assert!(plan(&["plan", "--color", "always"], &[("NO_COLOR", "1")]).contains(sgr));
    assert!(plan(&["plan"], &[("CLICOLOR_FORCE", "1")]).contains(sgr));
    assert!(!plan(&["plan"], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).contains('\x1b'));
    assert!(!plan(&["plan", "--color", "never"], &[("CLICOLOR_FORCE", "1")]).contains('\x1b'));
    // JSON is never coloured.
    assert!(!plan(&["plan", "--format", "json", "--color", "always"], &[]).contains('\x1b'));
}

#[test]
fn a_markdown_plan_puts_problems_first() {
    let f = crate::cli_plan::troubled();
    let out = f.run(&["plan", "r.yaml", "--format", "markdown"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let md = &out.stdout;
    let problems = md.find("#### Problems").expect("a problems section");
    let creates = md.find("to create</summary>").expect("a create table");
    assert!(problems < creates);
    crate::harness::settings(&f).bind(|| {
        let mut s = insta::Settings::clone_current();
        s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[hash]");
        s.add_filter(r"\(sha256 [0-9a-f]{12}\)", "(sha256 [sha])");
        s.bind(|| insta::assert_snapshot!("troubled_plan_markdown", md));
    });
}

#[test]
fn completions_for_every_shell_and_man_pages_for_every_command() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(synup().args(["completions", shell]));
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(
            out.stdout.contains("synup") && out.stdout.contains("plan"),
            "{shell}"
        );
    }
    let f = Fixture::new();
    let out = f.run(&["man", "pages"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for page in [
        "synup.1",
        "synup-plan.1",
        "synup-apply.1",
        "synup-completions.1",
    ] {
        let roff = std::fs::read_to_string(f.join("pages").join(page)).unwrap();
        assert!(roff.contains(".TH"), "{page}");
    }
    let plan = std::fs::read_to_string(f.join("pages/synup-plan.1")).unwrap();
    assert!(plan.contains("detailed\\-exitcode"), "{plan}");
}

#[test]
fn shards_without_a_dashboard_ask_for_ray_address() {
    let f = two_units();
    assert_eq!(f.run(&["plan", "-o", "plan.json"]).code, 0);
    let out = run(synup()
        .current_dir(f.path())
        .env_remove("RAY_ADDRESS")
        .args(["apply", "plan.json", "--shards", "2", "--yes"]));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("RAY_ADDRESS"), "{}", out.stderr);
    let out = run(synup()
        .current_dir(f.path())
        .env("RAY_ADDRESS", "ray://head:10001")
        .args(["apply", "plan.json", "--shards", "2", "--yes"]));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not a dashboard URL"), "{}", out.stderr);
}

#[test]
fn detail_shows_each_units_files_and_meta_and_a_conflict_says_what_differs() {
    let f = two_units();
    let out = f.run(&["plan", "--detail"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("image_1: data/u000/img.png"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("meta: {"), "{}", out.stdout);
    assert_eq!(f.run(&["apply", "--yes"]).code, 0);
    // The same key with other content: which spec's checksum, which meta key.
    f.write("data/u001/img.png", "changed");
    f.write(
        "synup.yaml",
        format!("{TWO_SPECS}source: {{path: data}}\nmetadata: [{{static: {{site: Seoul}}}}]\n"),
    );
    let out = f.run(&["plan"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("u001") && l.contains("conflict"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(line.contains("files differ: image_1 ("), "{line}");
    assert!(
        line.contains("here,") && line.contains("in the target)"),
        "{line}"
    );
    assert!(line.contains("meta differs: site only here"), "{line}");
    // Nothing to apply, and the note does not claim every unit is there.
    let out = f.run(&["apply", "--yes"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("2 conflict(s)") && !out.stderr.contains("every unit"),
        "{}",
        out.stderr
    );
}
