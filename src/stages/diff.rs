//! Diff: what to do with one valid unit, given what the target holds under
//! its key.

use std::collections::BTreeMap;

use crate::target::ExistingUnit;

/// The decision for a valid unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The target has no unit with this key.
    Create,
    /// The target's unit has the same files and meta.
    Unchanged,
    /// The target holds other content under this key (the reason says what).
    Conflict(String),
}

/// One of the unit's files as the diff compares it: its spec, and its SHA-1
/// in hex (`None` when deferred to apply, for a remote source).
pub type FileCheck<'a> = (&'a str, Option<&'a str>);

/// Decides a valid unit's fate. `files` is sorted by spec (an iterator, so
/// the planner's hot loop allocates nothing for it); `meta_json` is the unit's
/// merged meta.
pub fn decide<'a>(
    existing: Option<&[ExistingUnit]>,
    files: impl Iterator<Item = FileCheck<'a>> + Clone,
    meta_json: &str,
) -> Verdict {
    match existing {
        None | Some([]) => Verdict::Create,
        Some([one]) => {
            // A deferred file's SHA-1 is not known: its spec must match.
            let same_files = if files.clone().any(|(_, sha)| sha.is_none()) {
                one.same_specs(files.clone().map(|(spec, _)| spec))
            } else {
                one.same_files(
                    files
                        .clone()
                        .map(|(spec, sha)| (spec, sha.unwrap_or_default())),
                )
            };
            let same_meta = one.same_meta(meta_json);
            if same_files && same_meta {
                return Verdict::Unchanged;
            }
            let mut what = Vec::new();
            if !same_files {
                what.push(format!("files differ: {}", files_diff(one, files)));
            }
            if !same_meta {
                what.push(format!("meta differs: {}", meta_diff(one, meta_json)));
            }
            Verdict::Conflict(format!(
                "target unit {} has the same key; {}",
                one.id,
                what.join("; ")
            ))
        }
        Some(many) => Verdict::Conflict(format!(
            "the target has {} units with this key ({})",
            many.len(),
            many.iter()
                .map(|u| u.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Which specs differ and how: `image_1 (a1b2c3d here, 9f8e7d6 in the
/// target), label_1 only here`. SHA-1s are shortened as git shortens them; a
/// deferred SHA-1 (not known yet) differs only by its spec.
fn files_diff<'a>(theirs: &ExistingUnit, mine: impl Iterator<Item = FileCheck<'a>>) -> String {
    let short = |sha: &str| sha.chars().take(7).collect::<String>();
    let theirs = theirs
        .files
        .iter()
        .map(|(spec, sha)| (spec.as_str(), Some(sha.as_str())))
        .collect();
    differences(&mine.collect(), &theirs, |m, t| match (m, t) {
        (Some(m), Some(t)) if m != t => Some((short(m), short(t))),
        _ => None,
    })
}

/// Which meta keys differ: `age (40 here, 41 in the target), site only
/// here`. Values are shown short; the plan and the target hold them whole.
fn meta_diff(theirs: &ExistingUnit, mine: &str) -> String {
    use serde_json::Value as Json;
    let parse = |text: &str| match serde_json::from_str::<Json>(text) {
        Ok(Json::Object(map)) => Some(map),
        _ => None,
    };
    let (Some(mine), Some(theirs)) = (parse(mine), parse(&theirs.meta_json)) else {
        return "not both objects".to_owned();
    };
    let shown = |v: &Json| {
        let text = v.to_string();
        match text.char_indices().nth(40) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    };
    fn by_name(m: &serde_json::Map<String, Json>) -> BTreeMap<&str, &Json> {
        m.iter().map(|(k, v)| (k.as_str(), v)).collect()
    }
    differences(&by_name(&mine), &by_name(&theirs), |m, t| {
        (!crate::json::json_equal(m, t)).then(|| (shown(m), shown(t)))
    })
}

/// Every name whose values differ, in name order: `name (a here, b in the
/// target)` when `differ` shows the two values, or `name only here` / `name
/// only in the target`.
fn differences<V>(
    mine: &BTreeMap<&str, V>,
    theirs: &BTreeMap<&str, V>,
    differ: impl Fn(&V, &V) -> Option<(String, String)>,
) -> String {
    let mut names: Vec<&str> = mine.keys().chain(theirs.keys()).copied().collect();
    names.sort_unstable();
    names.dedup();
    let parts: Vec<String> = names
        .into_iter()
        .filter_map(|name| match (mine.get(name), theirs.get(name)) {
            (Some(_), None) => Some(format!("{name} only here")),
            (None, Some(_)) => Some(format!("{name} only in the target")),
            (Some(m), Some(t)) => {
                differ(m, t).map(|(m, t)| format!("{name} ({m} here, {t} in the target)"))
            }
            (None, None) => None,
        })
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(id: &str, files: &[(&str, &str)], meta: &str) -> ExistingUnit {
        ExistingUnit {
            id: id.to_owned(),
            files: files
                .iter()
                .map(|(s, h)| ((*s).to_owned(), (*h).to_owned()))
                .collect(),
            meta_json: meta.to_owned(),
        }
    }

    #[test]
    fn a_key_the_target_lacks_is_created() {
        assert_eq!(
            decide(None, [("image", Some("aa"))].iter().copied(), "{}"),
            Verdict::Create
        );
        assert_eq!(
            decide(Some(&[]), [("image", Some("aa"))].iter().copied(), "{}"),
            Verdict::Create
        );
    }

    #[test]
    fn same_files_and_meta_by_value_is_unchanged() {
        let theirs = [unit(
            "7",
            &[("image", "aa"), ("label", "bb")],
            r#"{"a":1,"b":2}"#,
        )];
        let mine = [("image", Some("aa")), ("label", Some("bb"))];
        assert_eq!(
            decide(Some(&theirs), mine.iter().copied(), r#"{"b":2.0,"a":1}"#),
            Verdict::Unchanged
        );
    }

    #[test]
    fn a_conflict_says_what_differs() {
        let theirs = [unit("7", &[("image", "aa")], r#"{"a":1}"#)];
        assert_eq!(
            decide(
                Some(&theirs),
                [("image", Some("ff"))].iter().copied(),
                r#"{"a":1}"#
            ),
            Verdict::Conflict(
                "target unit 7 has the same key; files differ: image (ff here, aa in the target)"
                    .into()
            )
        );
        assert_eq!(
            decide(
                Some(&theirs),
                [("image", Some("ff"))].iter().copied(),
                r#"{"a":2,"b":"new"}"#
            ),
            Verdict::Conflict(
                "target unit 7 has the same key; files differ: image (ff here, aa in the target); \
                 meta differs: a (2 here, 1 in the target), b only here"
                    .into()
            )
        );
        let long = format!(r#"{{"a":1,"note":"{}"}}"#, "x".repeat(100));
        let Verdict::Conflict(why) = decide(
            Some(&[unit("7", &[("image", "aa"), ("mask", "cc")], &long)]),
            [("image", Some("aa"))].iter().copied(),
            r#"{"a":1.0}"#,
        ) else {
            panic!("a conflict")
        };
        assert_eq!(
            why,
            "target unit 7 has the same key; files differ: mask only in the target; \
             meta differs: note only in the target"
        );
        // One spec more on our side is a difference too.
        assert!(matches!(
            decide(
                Some(&theirs),
                [("image", Some("aa")), ("label", Some("bb"))].into_iter(),
                r#"{"a":1}"#
            ),
            Verdict::Conflict(_)
        ));
    }

    #[test]
    fn deferred_files_compare_by_spec_only() {
        let theirs = [unit("7", &[("image", "aa")], "{}")];
        assert_eq!(
            decide(Some(&theirs), [("image", None)].iter().copied(), "{}"),
            Verdict::Unchanged
        );
        assert!(matches!(
            decide(Some(&theirs), [("label", None)].iter().copied(), "{}"),
            Verdict::Conflict(_)
        ));
    }

    #[test]
    fn several_target_units_under_one_key_are_a_conflict() {
        let theirs = [unit("7", &[], "{}"), unit("9", &[], "{}")];
        assert_eq!(
            decide(Some(&theirs), [].iter().copied(), "{}"),
            Verdict::Conflict("the target has 2 units with this key (7, 9)".into())
        );
    }
}
