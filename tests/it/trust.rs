//! Trust (SPEC 2, 3, 4): a saved plan is applied exactly as made or not at
//! all, secrets never print, files are written safely, stdout failures count.

use synup::plan::Plan;

use crate::harness::{Fixture, Output, TWO_SPECS, nested_units, synup};

fn recipe(f: &Fixture, extra: &str) {
    f.write(
        "r.yaml",
        format!(
            "{TWO_SPECS}source: {{path: data}}\nmetadata:\n  - static: {{site: Seoul}}\n{extra}"
        ),
    );
}

fn saved(f: &Fixture) -> Plan {
    serde_json::from_str(&std::fs::read_to_string(f.join("p.json")).unwrap()).unwrap()
}

fn save(f: &Fixture, plan: &Plan, rehash: bool) {
    let mut plan = plan.clone();
    if rehash {
        plan.plan_hash = plan.compute_hash();
    }
    let mut bytes = Vec::new();
    plan.write_json(&mut bytes).unwrap();
    std::fs::write(f.join("p.json"), bytes).unwrap();
}

/// Applies the edited plan: refused, nothing applied, the message names `what`.
fn refused(f: &Fixture, what: &str) -> Output {
    let out = f.run(&["apply", "p.json", "--yes"]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("is not the plan its recipe gives"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(what),
        "wanted `{what}`:\n{}",
        out.stderr
    );
    assert!(
        !f.join(".synup/local/catalog.sqlite").exists(),
        "nothing may be applied"
    );
    out
}

fn planned() -> Fixture {
    let f = Fixture::new();
    nested_units(&f, "data", 3);
    f.write("data/u002/notes.txt", "not a spec");
    recipe(&f, "");
    let out = f.run(&["plan", "r.yaml", "-o", "p.json"]);
    assert_eq!(out.code, 0, "{}", out.both());
    f
}

/// A plan cut short (a full disk, a failed copy) is named as a damaged
/// plan, not read as a recipe with a YAML error; nothing is applied.
#[test]
fn a_plan_cut_short_is_refused_as_a_plan() {
    let f = planned();
    let bytes = std::fs::read(f.join("p.json")).unwrap();
    std::fs::write(f.join("p.json"), &bytes[..bytes.len() / 2]).unwrap();
    let out = f.run(&["apply", "p.json", "--yes"]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr
            .contains("p.json looks like a plan but does not parse")
            && out.stderr.contains("synup plan RECIPE -o FILE"),
        "{}",
        out.stderr
    );
    assert!(!f.join(".synup/local/catalog.sqlite").exists());
}

#[test]
fn an_edited_plan_is_refused_whether_or_not_its_hash_is_recomputed() {
    let f = planned();
    let original = saved(&f);
    type Edit = fn(&mut Plan);
    let edits: [(&str, Edit, &str); 6] = [
        (
            "meta",
            |p| {
                p.units
                    .edit(|u| {
                        u[0].meta = serde_json::value::RawValue::from_string(
                            r#"{"site":"Busan","name":"u000"}"#.into(),
                        )
                        .unwrap();
                    })
                    .unwrap();
            },
            r#"unit u000: meta.site is "Busan" in the plan file, "Seoul" from the recipe"#,
        ),
        (
            "injected meta field",
            |p| {
                p.units
                    .edit(|u| {
                        u[1].meta = serde_json::value::RawValue::from_string(
                            r#"{"site":"Seoul","injected":true}"#.into(),
                        )
                        .unwrap();
                    })
                    .unwrap();
            },
            "unit u001: meta.injected is true in the plan file, but the recipe gives no such field",
        ),
        (
            "swapped files",
            |p| {
                p.units
                    .edit(|u| {
                        let a = u[0].files.get("image_1").unwrap().clone();
                        let b = u[1].files.get("image_1").unwrap().clone();
                        for f in u[0].files.values_mut() {
                            if f.path == a.path {
                                *f = b.clone();
                            }
                        }
                        for f in u[1].files.values_mut() {
                            if f.path == b.path {
                                *f = a.clone();
                            }
                        }
                    })
                    .unwrap();
            },
            "unit u000: files.image_1 is data/u001/img.png",
        ),
        (
            "injected unit",
            |p| {
                p.units
                    .edit(|u| {
                        let mut injected = u[2].clone();
                        injected.key = "u999".into();
                        u.push(injected);
                    })
                    .unwrap();
                p.summary.units += 1;
                p.summary.create += 1;
            },
            "unit u999: is in the plan file, but the recipe gives no such unit",
        ),
        (
            "unmatched file attached",
            |p| {
                p.units
                    .edit(|u| {
                        let mut f = u[2].files.get("label_1").unwrap().clone();
                        f.path = "u002/notes.txt".into();
                        for v in u[2].files.values_mut() {
                            if v.path.ends_with(".json") {
                                *v = f.clone();
                            }
                        }
                    })
                    .unwrap();
            },
            "unit u002: files.label_1 is data/u002/notes.txt",
        ),
        (
            "invalid flipped",
            |p| {
                p.units
                    .edit(|u| {
                        u[0].action = synup::plan::Action::Invalid;
                    })
                    .unwrap();
                p.summary.invalid = 1;
                p.summary.create -= 1;
            },
            "unit u000: action is invalid in the plan file, create from the recipe",
        ),
    ];
    for (name, edit, message) in edits {
        for rehash in [false, true] {
            let mut plan = original.clone();
            edit(&mut plan);
            save(&f, &plan, rehash);
            let out = refused(&f, message);
            assert_eq!(
                out.stderr.contains("plan_hash is"),
                !rehash,
                "{name}: {}",
                out.stderr
            );
        }
    }
    // Any value written into plan_hash.
    let mut plan = original.clone();
    plan.plan_hash = "sha256:0000".into();
    save(&f, &plan, false);
    refused(&f, r#"plan_hash is "sha256:0000" in the plan file"#);
    // A field the plan format does not have.
    let text = std::fs::read_to_string(f.join("p.json")).unwrap().replacen(
        "\"format_version\": 1,",
        "\"format_version\": 1, \"run\": \"rm -rf /\",",
        1,
    );
    std::fs::write(f.join("p.json"), text).unwrap();
    let out = f.run(&["apply", "p.json", "--yes"]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(out.stderr.contains("unknown field `run`"), "{}", out.stderr);

    // The plan as written applies.
    save(&f, &original, false);
    let out = f.run(&["apply", "p.json", "--yes"]);
    assert_eq!(out.code, 0, "{}", out.both());
}

#[test]
fn a_shard_verifies_its_own_slice_and_only_that() {
    // Three units to create: shard 1/2 holds u000 and u001, shard 2/2 u002.
    let f = planned();
    let original = saved(&f);
    let mut plan = original.clone();
    plan.units
        .edit(|u| {
            u[2].meta = serde_json::value::RawValue::from_string(r#"{"site":"X"}"#.into()).unwrap()
        })
        .unwrap();
    save(&f, &plan, true);
    let out = f.run(&["apply", "p.json", "--yes", "--shard", "2/2"]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("unit u002: meta.site"),
        "{}",
        out.stderr
    );
    // An edit in its own slice is refused too, even with the hash recomputed.
    let mut plan = original.clone();
    plan.units
        .edit(|u| {
            u[0].meta = serde_json::value::RawValue::from_string(r#"{"site":"X"}"#.into()).unwrap()
        })
        .unwrap();
    save(&f, &plan, true);
    let out = f.run(&["apply", "p.json", "--yes", "--shard", "1/2"]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("unit u000: meta.site"),
        "{}",
        out.stderr
    );

    // A file of shard 2's slice changes: shard 1 neither reads nor minds it
    // and applies; shard 2 finds its input stale.
    save(&f, &original, false);
    f.write("data/u002/img.png", "changed since the plan");
    let out = f.run(&["apply", "p.json", "--yes", "--shard", "1/2"]);
    assert_eq!(out.code, 0, "{}", out.both());
    let out = f.run(&["apply", "p.json", "--yes", "--shard", "2/2"]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("is stale") && out.stderr.contains("changed: data/u002/img.png"),
        "{}",
        out.stderr
    );
    // The whole plan, applied at once, is stale too.
    let out = f.run(&["apply", "p.json", "--yes"]);
    assert_eq!(out.code, 1, "{}", out.both());
}

const SECRET: &str = "s3cr3t-Value-42";

#[test]
fn a_secret_never_prints_and_apply_still_works() {
    let f = Fixture::new();
    // The secret is part of a folder name, a unit key, a meta value, the
    // collection name and a metadata path.
    for i in 0..2 {
        f.write(
            &format!("data/{SECRET}/u{i}_{SECRET}/img.png"),
            format!("png {i}"),
        );
        f.write(&format!("data/{SECRET}/u{i}_{SECRET}/lab.json"), "{}");
    }
    f.write(
        &format!("{SECRET}.csv"),
        format!("id,extra\nu0_{SECRET},1\n"),
    );
    f.write(
        "r.yaml",
        format!(
            "{TWO_SPECS}target:\n  data_collection: coll-${{MY_API_TOKEN}}\nsource:\n  path: data/${{MY_API_TOKEN}}\nmetadata:\n  - static:\n      label: ${{MY_API_TOKEN}}\n  - csv: ${{MY_API_TOKEN}}.csv\n    key_column: id\n"
        ),
    );
    let run = |args: &[&str]| {
        crate::harness::run(
            synup()
                .current_dir(f.path())
                .env("MY_API_TOKEN", SECRET)
                .args(args),
        )
    };
    let mut outputs = vec![];
    let plan = run(&["plan", "r.yaml", "-o", "p.json"]);
    assert_eq!(plan.code, 0, "{}", plan.both());
    outputs.push(plan.both());
    let json = run(&["plan", "r.yaml", "--format", "json"]);
    outputs.push(json.both());
    let written = std::fs::read_to_string(f.join("p.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&written).unwrap();
    let sensitive: Vec<&str> = value["sensitive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(sensitive.contains(&"/units/0/key"), "{sensitive:?}");
    assert!(sensitive.contains(&"/units/0/meta/label"), "{sensitive:?}");
    assert!(
        sensitive.contains(&"/target/data_collection"),
        "{sensitive:?}"
    );
    assert_eq!(value["units"][0]["meta"]["label"], "***");
    outputs.push(written);
    let apply = run(&["apply", "p.json", "--yes", "--report", "rep.json"]);
    assert_eq!(apply.code, 0, "{}", apply.both());
    outputs.push(apply.both());
    outputs.push(std::fs::read_to_string(f.join("rep.json")).unwrap());
    outputs.push(run(&["status", "r.yaml"]).both());
    outputs.push(run(&["graph", "r.yaml"]).both());
    // An error about a path holding the secret.
    std::fs::remove_file(f.join(&format!("{SECRET}.csv"))).unwrap();
    let err = run(&["plan", "r.yaml"]);
    assert_eq!(err.code, 1, "{}", err.both());
    outputs.push(err.both());
    for out in &outputs {
        assert!(!out.contains(SECRET), "the secret leaked:\n{out}");
    }
    // Applied with the real values.
    let conn = rusqlite::Connection::open(f.join(".synup/local/catalog.sqlite")).unwrap();
    let key: String = conn
        .query_row("SELECT key FROM data_units ORDER BY key LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(key, format!("u0_{SECRET}"));
}

#[test]
fn plan_files_are_written_through_symlinks_and_never_over_devices() {
    let f = planned();
    std::fs::create_dir(f.join("plans")).unwrap();
    std::os::unix::fs::symlink("plans/real.json", f.join("link.json")).unwrap();
    let out = f.run(&["plan", "r.yaml", "-o", "link.json"]);
    assert_eq!(out.code, 0, "{}", out.both());
    assert!(
        std::fs::symlink_metadata(f.join("link.json"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link stays a link"
    );
    let written = std::fs::read_to_string(f.join("plans/real.json")).unwrap();
    assert!(written.contains("\"plan_hash\""));

    for target in ["/dev/null", "plans"] {
        let out = f.run(&["plan", "r.yaml", "-o", target]);
        assert_eq!(out.code, 1, "{}", out.both());
        assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    }
    // No temporary file is left anywhere.
    let mut names: Vec<String> = std::fs::read_dir(f.path())
        .unwrap()
        .chain(std::fs::read_dir(f.join("plans")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    names.sort();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn a_full_stdout_is_an_error_and_a_closed_pipe_is_not() {
    let f = planned();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = crate::harness::run(
        synup()
            .current_dir(f.path())
            .args(["plan", "r.yaml"])
            .stdout(full),
    );
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("cannot write to standard output"),
        "{}",
        out.stderr
    );
    // `synup plan --format json | head -c1`: the reader goes away early.
    let mut child = synup()
        .current_dir(f.path())
        .args(["plan", "r.yaml", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait_with_output().unwrap();
    assert_eq!(status.status.code(), Some(0));
    assert!(status.stderr.is_empty(), "{:?}", status.stderr);
}

#[test]
fn an_unwritable_report_is_found_before_anything_is_applied() {
    let f = planned();
    let out = f.run(&[
        "apply",
        "r.yaml",
        "--yes",
        "--report",
        "no/such/dir/rep.json",
    ]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(out.stderr.contains("rep.json"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was applied"), "{}", out.stderr);
    assert!(!f.join(".synup/local/catalog.sqlite").exists());
}

#[test]
fn terminal_escapes_in_file_names_are_shown_escaped() {
    let f = Fixture::new();
    nested_units(&f, "data", 1);
    f.write("data/u000/\x1b]0;owned\x07\x1b[2J.txt", "x");
    recipe(&f, "");
    let out = f.run(&["plan", "r.yaml"]);
    assert_eq!(out.code, 0, "{}", out.both());
    assert!(!out.stdout.contains('\x1b'), "{:?}", out.stdout);
    assert!(
        out.stdout.contains("\\x1b]0;owned\\x07\\x1b[2J.txt"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_plan_re_indented_by_a_tool_still_applies() {
    let f = planned();
    // Python keeps key order; `indent` spreads every value over lines.
    let status = std::process::Command::new("python3")
        .current_dir(f.path())
        .args([
            "-c",
            "import json; p = json.load(open('p.json')); json.dump(p, open('p.json', 'w'), indent=3, ensure_ascii=False)",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(f.join("p.json")).unwrap();
    assert!(text.contains("\"site\": \"Seoul\""), "{text}");
    let out = f.run(&["apply", "p.json", "--yes"]);
    assert_eq!(out.code, 0, "{}", out.both());
}

#[test]
fn a_recipe_that_does_not_parse_does_not_show_its_token() {
    let f = Fixture::new();
    f.write(
        "r.yaml",
        "version: 1\nname: x\ntarget:\n  backend: synapse\n  token: sk-live-0123456789\n  data_collection: [42\n",
    );
    let out = f.run(&["validate", "r.yaml"]);
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("synup::recipe::syntax"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("token: ***"), "{}", out.stderr);
    assert!(!out.stderr.contains("sk-live-0123456789"), "{}", out.stderr);
}
