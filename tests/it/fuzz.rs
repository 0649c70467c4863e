//! Fuzzing the two parsers that read what users (or attackers) hand synup:
//! the recipe loader and the plan decoder. Neither may panic, whatever the
//! bytes; a bad recipe is a diagnostic, a bad plan is refused.
//!
//! A small mutation fuzzer, deterministic per seed, over the corpus in
//! `tests/fuzz/{recipe,plan}/`: byte flips, insertions of tokens the formats
//! care about (`${`, anchors, brackets, huge numbers), deletions, duplicated
//! ranges and splices between corpus files. In the suite it runs a fixed
//! number of cases; `scripts/fuzz` runs it for minutes
//! (`SYNUP_FUZZ_SECONDS`). An input that panics is written to
//! `tests/fuzz/<target>/crash-<hash>` and fails the test; committed there, it
//! is a regression case that every later run replays first.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TOKENS: &[&str] = &[
    "${",
    "${X:-",
    "$${",
    "}",
    "{",
    "[",
    "]",
    ":",
    ": ",
    "- ",
    "\"",
    "'",
    "\\",
    "\n",
    "\t",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "? ",
    "---\n",
    "...\n",
    "#",
    "\0",
    "\u{feff}",
    "é",
    "\u{1b}[2J",
    "18446744073709551615",
    "-9223372036854775809",
    "1e999",
    "NaN",
    "null",
    "true",
    "[[",
    "]]",
    "=",
    "\"\"\"",
    "version: 1\n",
    "\"format_version\": 1",
    "\"plan_hash\": \"\"",
    "\"units\": [",
    "{\"key\":\"",
    "\"files\": {",
    "\"meta\": ",
    "\"sensitive\": [\"/units/0/key\"]",
    "{unit_dir}",
    "(?P<group_key>",
    "**/",
    "\u{10FFFF}",
];

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
}

fn mutate(rng: &mut fastrand::Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(0..=out.len());
        match rng.u8(0..6) {
            0 if !out.is_empty() => {
                let i = rng.usize(0..out.len());
                out[i] ^= 1 << rng.u8(0..8);
            }
            1 => {
                let t = TOKENS[rng.usize(0..TOKENS.len())].as_bytes();
                out.splice(at..at, t.iter().copied());
            }
            2 if at < out.len() => {
                let end = (at + rng.usize(1..64)).min(out.len());
                out.drain(at..end);
            }
            3 if at < out.len() => {
                let end = (at + rng.usize(1..256)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            4 if !other.is_empty() => {
                let from = rng.usize(0..other.len());
                let end = (from + rng.usize(1..512)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                let n = rng.usize(1..8);
                out.splice(at..at, (0..n).map(|_| rng.u8(..)));
            }
        }
    }
    out
}

/// Every parse step a recipe goes through before planning, and the
/// rendering of its errors.
fn load_recipe(bytes: &[u8], dir: &Path, toml: bool) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let name = if toml { "r.toml" } else { "r.yaml" };
    let env = |name: &str| (name == "X").then(|| "x".to_owned());
    match synup::recipe::load::parse_text(name, dir.to_path_buf(), text, &env) {
        Ok(loaded) => {
            if let Err(errors) = synup::recipe::resolve::resolve(&loaded) {
                let _ = format!("{:?}", miette::Report::new(loaded.errors(errors)));
            }
        }
        Err(errors) => {
            let _ = format!("{:?}", miette::Report::new(errors));
        }
    }
}

/// What `apply PLAN` does with a file before it trusts it.
fn decode_plan(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if !synup::plan::Plan::looks_like_plan(text.as_bytes()) {
        return;
    }
    if let Ok(plan) = serde_json::from_str::<synup::plan::Plan>(text) {
        let _ = plan.compute_hash();
        let _ = synup::apply::integrity::differences(&plan, &plan);
        let _ = synup::apply::staleness::changed_inputs(&plan, &plan);
        let _ = synup::plan::render::render_text(&plan);
        let _ = synup::apply::shard::Shard { index: 1, count: 2 }.slice(&plan);
    }
}

/// `run(input, scratch folder, the corpus file the input came from)`.
fn fuzz(target: &str, cases: usize, run: impl Fn(&[u8], &Path, &Path)) {
    let seconds: u64 = std::env::var("SYNUP_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let seed: u64 = std::env::var("SYNUP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let files = corpus(target);
    let dir = tempfile::tempdir().unwrap();
    // Replay the corpus (and every committed crash) first.
    for (path, bytes) in &files {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| run(bytes, dir.path(), path)));
        assert!(result.is_ok(), "{} panics", path.display());
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut n = 0usize;
    // The panic hook would print every caught panic; a crash is reported below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut crash = None;
    while n < cases || Instant::now() < deadline {
        let (from, base) = &files[rng.usize(0..files.len())];
        let (_, other) = &files[rng.usize(0..files.len())];
        let input = mutate(&mut rng, base, other);
        if std::panic::catch_unwind(AssertUnwindSafe(|| run(&input, dir.path(), from))).is_err() {
            crash = Some(input);
            break;
        }
        n += 1;
    }
    std::panic::set_hook(hook);
    if let Some(input) = crash {
        use sha2::Digest;
        let name = format!("crash-{}", &hex::encode(sha2::Sha256::digest(&input))[..16]);
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz")
            .join(target)
            .join(name);
        std::fs::write(&path, &input).unwrap();
        panic!(
            "{target}: a mutated input panics after {n} cases; saved as {} (commit it as a regression case)",
            path.display()
        );
    }
    eprintln!("fuzz {target}: {n} cases, seed {seed}");
}

#[test]
fn the_recipe_loader_never_panics() {
    fuzz("recipe", 3000, |bytes, dir, from| {
        let toml = from.extension().is_some_and(|e| e == "toml");
        load_recipe(bytes, dir, toml);
    });
}

#[test]
fn the_plan_decoder_never_panics() {
    fuzz("plan", 3000, |bytes, _, _| decode_plan(bytes));
}

/// Replaces one value somewhere in `v` (a random walk down from the root)
/// with another of a surprising kind or size.
fn mutate_json(rng: &mut fastrand::Rng, v: &mut serde_json::Value) {
    use serde_json::{Value, json};
    // Chooses the place first (a JSON pointer), then changes it.
    let mut pointer = String::new();
    let mut here = &*v;
    loop {
        let (segment, next) = match here {
            Value::Object(m) if !m.is_empty() && rng.bool() => {
                let (k, n) = m.iter().nth(rng.usize(0..m.len())).unwrap();
                (k.replace('~', "~0").replace('/', "~1"), n)
            }
            Value::Array(a) if !a.is_empty() && rng.bool() => {
                let i = rng.usize(0..a.len());
                (i.to_string(), &a[i])
            }
            _ => break,
        };
        pointer.push('/');
        pointer.push_str(&segment);
        here = next;
    }
    let Some(at) = v.pointer_mut(&pointer) else {
        return;
    };
    *at = match rng.u8(0..10) {
        0 => json!(u64::MAX),
        1 => json!(-1),
        2 => json!(""),
        3 => json!("***"),
        4 => json!(null),
        5 => json!([]),
        6 => json!({}),
        7 => json!("\u{1b}[2J../../etc/passwd"),
        8 => match at.clone() {
            Value::Array(mut a) => {
                let extra = a.clone();
                a.extend(extra);
                Value::Array(a)
            }
            other => json!([other]),
        },
        _ => json!(1.5e300),
    };
}

#[test]
fn plan_checks_never_panic_on_well_formed_but_edited_plans() {
    let seconds: u64 = std::env::var("SYNUP_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let plans: Vec<serde_json::Value> = corpus("plan")
        .iter()
        .filter_map(|(_, b)| serde_json::from_slice(b).ok())
        .collect();
    let seed: u64 = std::env::var("SYNUP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut n = 0;
    while n < 2000 || Instant::now() < deadline {
        let mut v = plans[rng.usize(0..plans.len())].clone();
        for _ in 0..rng.usize(1..4) {
            mutate_json(&mut rng, &mut v);
        }
        let text = v.to_string();
        let ok = std::panic::catch_unwind(AssertUnwindSafe(|| decode_plan(text.as_bytes())));
        assert!(ok.is_ok(), "panics on:\n{text}");
        n += 1;
    }
}
