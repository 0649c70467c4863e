//! Is a saved plan the plan its recipe gives? (SPEC 4, "Integrity".)
//!
//! Staleness asks whether the plan's *inputs* changed; this asks whether its
//! *content* was changed. `apply PLAN` plans the same inputs again and
//! compares: a unit injected, dropped or edited, a file moved between units, a
//! flipped `invalid`, a `plan_hash` that is not the hash of the file: each is a
//! difference, and any difference refuses the apply before it changes anything.
//!
//! What the target's state decides is not compared, because the target may
//! change between plan and apply without making the plan wrong: whether a
//! valid unit is `create`, `unchanged` or `conflict` (apply checks the target
//! again per unit), the conflict's description, the upload counts, and
//! warnings about the target or about caches. `plan_hash` covers those.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::plan::UnitListBuilder;
use crate::plan::model::{Action, Plan, PlannedUnit};
use crate::plan::units::UnitHead;

/// How many differences are named before the rest are counted.
pub const SHOWN: usize = 10;

/// Warnings that depend on the target's state or on caches, not on the inputs.
fn volatile_warning(code: &str) -> bool {
    crate::stages::WarningCode::VOLATILE
        .iter()
        .any(|c| c.as_str() == code)
}

/// Every difference between a saved plan and the plan its inputs give now,
/// described for people; empty when the saved plan may be applied.
/// `fresh` must be masked the way a written plan is (see [`crate::secrets`]).
pub fn differences(saved: &Plan, fresh: &Plan) -> Vec<String> {
    let mut out = header_differences(saved, fresh);
    field(&mut out, "diagnosis", &saved.diagnosis, &fresh.diagnosis);
    for ((name, a), (_, b)) in stable_summary(saved).into_iter().zip(stable_summary(fresh)) {
        field(&mut out, &format!("summary.{name}"), &a, &b);
    }
    field(&mut out, "sensitive", &saved.sensitive, &fresh.sensitive);
    out.extend(unit_differences(saved, fresh));
    listed(
        &mut out,
        "unmatched file",
        &saved.unmatched,
        &fresh.unmatched,
    );
    listed(
        &mut out,
        "unmatched summary",
        &saved.unmatched_summary,
        &fresh.unmatched_summary,
    );
    listed(
        &mut out,
        "orphan row",
        &saved.orphan_rows,
        &fresh.orphan_rows,
    );
    let stable = |p: &Plan| {
        p.warnings
            .iter()
            .filter(|w| !volatile_warning(&w.code))
            .cloned()
            .collect::<Vec<_>>()
    };
    listed(&mut out, "warning", &stable(saved), &stable(fresh));
    out
}

/// A shard's check: its `slice` of the `saved` plan against a fresh plan of
/// only the slice's units. The file must still hash to its `plan_hash`, and
/// the slice's units must be what the recipe gives; plan-wide fields (counts,
/// unmatched files, orphan rows) are left to a whole-plan check.
pub fn slice_differences(saved: &Plan, slice: &Plan, fresh: &Plan) -> Vec<String> {
    let mut out = header_differences(saved, fresh);
    out.extend(unit_differences(slice, fresh));
    out
}

/// What every check compares: the file still hashes to its `plan_hash`, and
/// its recipe, target and layout are the recipe's.
fn header_differences(saved: &Plan, fresh: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let recomputed = saved.compute_hash();
    if recomputed != saved.plan_hash {
        out.push(format!(
            "plan_hash is {:?} in the plan file, but the file's content hashes to {recomputed:?}",
            saved.plan_hash
        ));
    }
    field(&mut out, "recipe", &saved.recipe, &fresh.recipe);
    field(&mut out, "target", &saved.target, &fresh.target);
    field(&mut out, "layout", &saved.layout, &fresh.layout);
    out
}

/// The first [`SHOWN`] differences and a count of the rest, one per line.
pub fn describe(differences: &[String]) -> String {
    super::first_lines(differences, SHOWN)
}

/// The plan to execute: the saved plan's decisions (actions, hash, counts)
/// over the freshly planned units, which hold the real values where the saved
/// file holds `***`. Only call it when [`differences`] found none.
pub fn executable(saved: &Plan, mut fresh: Plan) -> std::io::Result<Plan> {
    // Verified: the same units in the same order (keys holding a secret are
    // `***` in the saved plan, so units are matched by position).
    let mut units = UnitListBuilder::detached();
    let (mut lines, mut decided) = (fresh.units.lines(), saved.units.heads());
    while let (Some(line), Some(decided)) = (lines.next_line(), decided.next()) {
        let (line, decided) = (line?, decided?);
        let head: UnitHead = serde_json::from_slice(line)?;
        if (head.action, &head.conflict) == (decided.action, &decided.conflict) {
            // Decided alike (most units): the fresh line as it is.
            units.push_line(line, head.action)?;
            continue;
        }
        let mut unit: PlannedUnit = serde_json::from_slice(line)?;
        unit.action = decided.action;
        unit.conflict = decided.conflict;
        units.push(&unit)?;
    }
    fresh.units = units.finish()?;
    fresh.summary = saved.summary.clone();
    fresh.plan_hash = saved.plan_hash.clone();
    fresh.warnings = saved.warnings.clone();
    Ok(fresh)
}

/// The summary's counts that do not depend on the target's state.
fn stable_summary(plan: &Plan) -> [(&'static str, u64); 5] {
    let s = &plan.summary;
    [
        ("units", s.units),
        ("invalid", s.invalid),
        (
            "create + unchanged + conflict",
            s.create
                .saturating_add(s.unchanged)
                .saturating_add(s.conflict),
        ),
        ("unmatched_files", s.unmatched_files),
        ("excluded_files", s.excluded_files),
    ]
}

fn unit_differences(saved: &Plan, fresh: &Plan) -> Vec<String> {
    let unreadable = |e: std::io::Error| vec![format!("the plan's units cannot be read back: {e}")];
    // The usual case, a unit at a time: the same keys in the same order (the
    // fresh plan's keys are distinct, so the saved ones are too).
    if saved.units.len() == fresh.units.len() {
        let mut out = Vec::new();
        let mut aligned = true;
        let (mut a, mut b) = (saved.units.lines(), fresh.units.lines());
        while let (Some(s), Some(f)) = (a.next_line(), b.next_line()) {
            let (s, f) = match (s, f) {
                // The same text: the same unit (most units, most of the time).
                (Ok(s), Ok(f)) if s == f => continue,
                (Ok(s), Ok(f)) => (
                    serde_json::from_slice::<PlannedUnit>(s),
                    serde_json::from_slice::<PlannedUnit>(f),
                ),
                (Err(e), _) | (_, Err(e)) => return unreadable(e),
            };
            match (s, f) {
                (Ok(s), Ok(f)) if s.key == f.key => unit_difference(&s, &f, &mut out),
                (Err(e), _) | (_, Err(e)) => return unreadable(e.into()),
                _ => {
                    aligned = false;
                    break;
                }
            }
        }
        if aligned {
            return out;
        }
    }
    match (saved.units.to_vec(), fresh.units.to_vec()) {
        (Ok(s), Ok(f)) => unit_differences_by_key(&s, &f),
        (Err(e), _) | (_, Err(e)) => unreadable(e),
    }
}

/// Units matched by key: what was injected, dropped, repeated or reordered.
fn unit_differences_by_key(saved: &[PlannedUnit], fresh: &[PlannedUnit]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeMap::new();
    for u in saved {
        if seen.insert(u.key.as_str(), ()).is_some() {
            out.push(format!(
                "unit {}: appears twice in the plan file",
                one_line(&u.key)
            ));
        }
    }
    let fresh_units: BTreeMap<&str, &PlannedUnit> =
        fresh.iter().map(|u| (u.key.as_str(), u)).collect();
    for u in saved {
        match fresh_units.get(u.key.as_str()) {
            None => out.push(format!(
                "unit {}: is in the plan file, but the recipe gives no such unit",
                one_line(&u.key)
            )),
            Some(f) => unit_difference(u, f, &mut out),
        }
    }
    for u in fresh {
        if !seen.contains_key(u.key.as_str()) {
            out.push(format!(
                "unit {}: the recipe gives it, but it is missing from the plan file",
                one_line(&u.key)
            ));
        }
    }
    if out.is_empty()
        && !saved
            .iter()
            .map(|u| &u.key)
            .eq(fresh.iter().map(|u| &u.key))
    {
        out.push("units are not in the order the recipe's plan gives".to_owned());
    }
    out
}

/// A unit key as one line of a message: an edited plan may hold keys with
/// line breaks, which would otherwise split (or forge) lines of the refusal.
fn one_line(key: &str) -> std::borrow::Cow<'_, str> {
    let breaks = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !key.contains(breaks) {
        return key.into();
    }
    key.chars()
        .map(|c| {
            if breaks(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

fn unit_difference(saved: &PlannedUnit, fresh: &PlannedUnit, out: &mut Vec<String>) {
    let key = one_line(&saved.key);
    let invalid = |a: Action| a == Action::Invalid;
    if invalid(saved.action) != invalid(fresh.action) {
        out.push(format!(
            "unit {key}: action is {} in the plan file, {} from the recipe",
            saved.action.as_str(),
            fresh.action.as_str()
        ));
    }
    let specs: Vec<&str> = saved
        .files
        .keys()
        .chain(fresh.files.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for spec in specs {
        let describe = |f: Option<&crate::plan::model::PlannedFile>| match f {
            None => "absent".to_owned(),
            Some(f) => format!(
                "{} ({} bytes, sha1 {})",
                f.shown(),
                f.size,
                f.sha1
                    .as_deref()
                    .or(f.etag.as_deref())
                    .unwrap_or("deferred")
            ),
        };
        let (a, b) = (saved.files.get(spec), fresh.files.get(spec));
        if a != b {
            out.push(format!(
                "unit {key}: files.{spec} is {} in the plan file, {} from the recipe",
                describe(a),
                describe(b)
            ));
        }
    }
    // Both are compact text; only a unit whose text differs is parsed.
    if saved.meta.get() != fresh.meta.get() {
        let parse = |m: &serde_json::value::RawValue| -> Json {
            serde_json::from_str(m.get()).unwrap_or(Json::Null)
        };
        json_difference(
            &format!("unit {key}: meta"),
            &parse(&saved.meta),
            &parse(&fresh.meta),
            out,
        );
    }
    if saved.problems != fresh.problems {
        let reasons = |u: &PlannedUnit| {
            let r: Vec<&str> = u.problems.iter().map(|p| p.reason.as_str()).collect();
            if r.is_empty() {
                "none".to_owned()
            } else {
                r.join(", ")
            }
        };
        out.push(format!(
            "unit {key}: problems are [{}] in the plan file, [{}] from the recipe",
            reasons(saved),
            reasons(fresh)
        ));
    }
}

/// Names each field where two JSON values differ, by dotted path.
fn json_difference(path: &str, a: &Json, b: &Json, out: &mut Vec<String>) {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            for (k, va) in x {
                let child = format!("{path}.{k}");
                match y.get(k) {
                    Some(vb) => json_difference(&child, va, vb, out),
                    None => out.push(format!(
                        "{child} is {va} in the plan file, but the recipe gives no such field"
                    )),
                }
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    out.push(format!(
                        "{path}.{k} is missing from the plan file, {vb} from the recipe"
                    ));
                }
            }
        }
        // Numbers compare by value (1 and 1.0 are the same meta).
        (Json::Number(x), Json::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a != b => out.push(format!(
            "{path} is {a} in the plan file, {b} from the recipe"
        )),
        _ => {}
    }
}

/// Differences between two lists of records: the first few records in
/// either that the other lacks.
fn listed<T: serde::Serialize + PartialEq>(
    out: &mut Vec<String>,
    what: &str,
    saved: &[T],
    fresh: &[T],
) {
    use std::collections::BTreeSet;
    if saved == fresh {
        return;
    }
    let rows = |l: &[T]| l.iter().map(|r| compact(r)).collect::<Vec<String>>();
    let (saved, fresh) = (rows(saved), rows(fresh));
    let (a, b): (BTreeSet<&String>, BTreeSet<&String>) =
        (saved.iter().collect(), fresh.iter().collect());
    for r in a.difference(&b).take(SHOWN) {
        out.push(format!(
            "{what} {r} is in the plan file, but not in the recipe's plan"
        ));
    }
    for r in b.difference(&a).take(SHOWN) {
        out.push(format!(
            "{what} {r} is in the recipe's plan, but missing from the plan file"
        ));
    }
    if a == b {
        out.push(format!(
            "the {what}s are repeated or reordered in the plan file"
        ));
    }
}

fn compact<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A top-level field that differs, shown as compact JSON.
fn field<T: serde::Serialize>(out: &mut Vec<String>, name: &str, saved: &T, fresh: &T) {
    let (a, b) = (compact(saved), compact(fresh));
    if a != b {
        out.push(format!(
            "{name} is {a} in the plan file, {b} from the recipe"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diff(a: Json, b: Json) -> Vec<String> {
        let mut out = Vec::new();
        json_difference("unit k: meta", &a, &b, &mut out);
        out
    }

    #[test]
    fn meta_differences_are_named_by_field() {
        assert_eq!(
            diff(
                json!({"site": "X", "age": 1}),
                json!({"site": "Seoul", "age": 1.0})
            ),
            [r#"unit k: meta.site is "X" in the plan file, "Seoul" from the recipe"#]
        );
        assert_eq!(
            diff(json!({"a": {"b": true}}), json!({"a": {}, "c": 2})),
            [
                "unit k: meta.a.b is true in the plan file, but the recipe gives no such field",
                "unit k: meta.c is missing from the plan file, 2 from the recipe",
            ]
        );
        assert!(diff(json!({"n": [1, 2]}), json!({"n": [1, 2]})).is_empty());
    }

    #[test]
    fn an_injected_key_stays_on_one_line_of_the_refusal() {
        let unit = |key: &str| PlannedUnit {
            key: key.into(),
            action: Action::Create,
            files: crate::plan::model::SortedMap::from_sorted(Vec::new()),
            meta: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            problems: Vec::new(),
            conflict: None,
        };
        let saved = [unit("a"), unit("b\nunit c: forged\u{2028}x")];
        let out = unit_differences_by_key(&saved, &[unit("a")]);
        assert_eq!(
            out,
            [
                r"unit b\nunit c: forged\u{2028}x: is in the plan file, but the recipe gives no such unit"
            ]
        );
        assert_eq!(one_line("plain ü key"), "plain ü key");
    }

    #[test]
    fn listed_records_name_what_only_one_side_has() {
        let mut out = Vec::new();
        listed(&mut out, "orphan row", &["a", "b"], &["b", "c"]);
        assert_eq!(
            out,
            [
                r#"orphan row "a" is in the plan file, but not in the recipe's plan"#,
                r#"orphan row "c" is in the recipe's plan, but missing from the plan file"#,
            ]
        );
        out.clear();
        listed(&mut out, "warning", &["a", "a"], &["a"]);
        assert_eq!(
            out,
            ["the warnings are repeated or reordered in the plan file"]
        );
    }

    #[test]
    fn only_target_state_may_differ_between_valid_actions() {
        assert!(!volatile_warning("key_field_overridden"));
        assert!(volatile_warning("conflict"));
        assert!(volatile_warning("listing_cache_rebuilt"));
        assert!(volatile_warning("screen_cache_unwritable"));
    }
}
