//! Plans that explain themselves: unmatched files summarised by reason with a
//! hint each, and one line saying what most likely went wrong when a plan has
//! no valid unit. Pure functions of what the planner already decided.

use std::collections::BTreeMap;

use super::model::{Action, PlannedUnit, UnmatchedGroup};
use crate::recipe::resolve::FileSpec;
use crate::stages::UnmatchedReason;
use crate::stages::layout::plural;

/// How the recipe classifies files, as far as hints need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// Single path, `file_rules` given.
    Rules,
    /// Single path, by spec-named folder or extension.
    Extensions,
    /// One root per spec.
    Assets,
}

/// Collects unmatched files into groups.
pub struct UnmatchedSummary<'a> {
    specs: &'a [FileSpec],
    classification: Classification,
    explicit_regex: bool,
    groups: BTreeMap<(UnmatchedReason, Option<u32>), Group>,
}

#[derive(Default)]
struct Group {
    count: u64,
    /// The two smallest (root, path), for deterministic examples.
    examples: Vec<(String, String)>,
    /// File extension → count.
    extensions: BTreeMap<String, u64>,
}

impl<'a> UnmatchedSummary<'a> {
    pub fn new(
        specs: &'a [FileSpec],
        classification: Classification,
        explicit_regex: bool,
    ) -> Self {
        Self {
            specs,
            classification,
            explicit_regex,
            groups: BTreeMap::new(),
        }
    }

    /// One unmatched file; `spec` is the spec whose extensions it lacks.
    pub fn add(&mut self, reason: UnmatchedReason, spec: Option<u32>, root: &str, path: &str) {
        let g = self.groups.entry((reason, spec)).or_default();
        g.count += 1;
        *g.extensions
            .entry(crate::stages::extension(path))
            .or_default() += 1;
        let example = (root.to_owned(), path.to_owned());
        if g.examples.len() < 2 {
            g.examples.push(example);
            g.examples.sort();
        } else if example < g.examples[1] {
            g.examples[1] = example;
            g.examples.sort();
        }
    }

    /// Largest group first; ties in reason order.
    pub fn finish(self) -> Vec<UnmatchedGroup> {
        let mut out: Vec<UnmatchedGroup> = self
            .groups
            .iter()
            .map(|(&(reason, spec), g)| UnmatchedGroup {
                reason: reason.as_str().to_owned(),
                spec: spec.map(|s| self.specs[s as usize].name.clone()),
                count: g.count,
                examples: g
                    .examples
                    .iter()
                    .map(|(root, path)| shown(root, path))
                    .collect(),
                hint: self.hint(reason, spec, g),
            })
            .collect();
        out.sort_by_key(|g| std::cmp::Reverse(g.count));
        out
    }

    fn hint(&self, reason: UnmatchedReason, spec: Option<u32>, g: &Group) -> String {
        let found = dotted(g.extensions.keys().map(String::as_str));
        match reason {
            UnmatchedReason::NonUtf8Name => {
                "their names are not valid UTF-8; rename them or `exclude` them".to_owned()
            }
            UnmatchedReason::ExtensionNotAllowed => {
                let spec = &self.specs[spec.unwrap_or(0) as usize];
                format!(
                    "spec {} lists {}; these end in {found}: add the extension to the spec, or fix the rule that sends them there",
                    spec.name,
                    dotted(spec.extensions.iter().map(String::as_str))
                )
            }
            UnmatchedReason::NoRule => match self.classification {
                Classification::Rules => format!(
                    "no `file_rules` pattern matches them ({found}); add a rule, or `exclude` them if they are not data"
                ),
                Classification::Extensions => format!(
                    "no spec lists {found}; add it to a spec's `extensions`, or `exclude` them if they are not data"
                ),
                Classification::Assets => {
                    "the asset's `include` globs leave them out".to_owned()
                }
            },
            UnmatchedReason::NoGroupKey if self.explicit_regex => {
                "`group_key_regex` does not match their paths".to_owned()
            }
            UnmatchedReason::NoGroupKey => {
                "they sit outside the units the inferred layout found (a sheet or JSON beside the unit folders); `exclude` them, or set `group_key_regex`".to_owned()
            }
        }
    }
}

/// `root/path` as the plan's text shows a file.
pub fn shown(root: &str, path: &str) -> String {
    format!("{}/{path}", root.trim_end_matches('/'))
}

fn dotted<'s>(exts: impl Iterator<Item = &'s str>) -> String {
    let all: Vec<String> = exts
        .map(|e| {
            if e.is_empty() {
                "no extension".to_owned()
            } else {
                format!(".{e}")
            }
        })
        .collect();
    let shown: Vec<&str> = all.iter().take(5).map(String::as_str).collect();
    let more = if all.len() > 5 { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

/// What [`diagnose`] needs of a plan's units, counted as they are made.
#[derive(Debug, Default)]
pub struct UnitTally {
    pub units: usize,
    pub valid: usize,
    /// Per problem reason, the invalid units that have it.
    pub reasons: BTreeMap<&'static str, usize>,
}

impl UnitTally {
    /// Another tally's counts added to this one.
    pub fn merge(&mut self, other: UnitTally) {
        self.units += other.units;
        self.valid += other.valid;
        for (reason, n) in other.reasons {
            *self.reasons.entry(reason).or_default() += n;
        }
    }

    pub fn add(&mut self, unit: &PlannedUnit) {
        self.units += 1;
        if unit.action != Action::Invalid {
            self.valid += 1;
            return;
        }
        let mut seen: Vec<&'static str> = unit.problems.iter().map(|p| p.reason.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        for r in seen {
            *self.reasons.entry(r).or_default() += 1;
        }
    }
}

/// One line for a plan without a single valid unit, else `None`.
pub fn diagnose(
    units: &UnitTally,
    groups: &[UnmatchedGroup],
    files_seen: u64,
    excluded: u64,
) -> Option<String> {
    if units.valid > 0 {
        return None;
    }
    if files_seen == 0 {
        return Some(if excluded > 0 {
            format!(
                "no file to plan: all {} in the source are junk or excluded",
                plural(excluded as usize, "file")
            )
        } else {
            "no file to plan: the source is empty".to_owned()
        });
    }
    if units.units == 0 {
        let top = groups.first()?;
        return Some(format!(
            "no file became part of a unit; most ({} of {files_seen}) are {}: {}",
            top.count, top.reason, top.hint
        ));
    }
    let reasons = &units.reasons;
    let (reason, n) = reasons
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(r, n)| (*r, *n))?;
    let hint = match reason {
        "missing_required" => {
            ": check that every required spec's files are in the source, and that `file_rules` send them to it"
        }
        "ambiguous_spec" => {
            ": the units hold several files of one spec; set `group_key_regex` so each unit gets one, or `file_rules` to split the specs"
        }
        "too_large" => ": raise `validation.max_file_size_mb`",
        "metadata_missing" => {
            ": the required metadata source has no entry for these keys; compare its key column with the unit keys"
        }
        "meta_schema" => ": the merged meta does not satisfy the collection's schema",
        _ => "",
    };
    Some(format!(
        "every unit is invalid; most often {reason} ({} of {}){hint}",
        n, units.units
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, exts: &[&str]) -> FileSpec {
        FileSpec {
            name: name.into(),
            file_type: "image".into(),
            extensions: exts.iter().map(|e| e.to_string()).collect(),
            is_required: true,
            is_primary: false,
        }
    }

    #[test]
    fn unmatched_files_are_grouped_with_two_examples_and_a_hint() {
        let specs = [spec("flair", &["nii"])];
        let mut s = UnmatchedSummary::new(&specs, Classification::Rules, false);
        for p in ["c/b_flair.nii.gz", "c/a_flair.nii.gz", "a/c_flair.nii.gz"] {
            s.add(UnmatchedReason::ExtensionNotAllowed, Some(0), "./data", p);
        }
        s.add(UnmatchedReason::NoRule, None, "./data", "survival.csv");
        let groups = s.finish();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].count, 3);
        assert_eq!(
            groups[0].examples,
            ["./data/a/c_flair.nii.gz", "./data/c/a_flair.nii.gz"]
        );
        assert_eq!(
            groups[0].hint,
            "spec flair lists .nii; these end in .nii.gz: add the extension to the spec, or fix the rule that sends them there"
        );
        let d = diagnose(&UnitTally::default(), &groups, 4, 0).unwrap();
        assert!(d.starts_with("no file became part of a unit; most (3 of 4) are extension_not_allowed: spec flair lists .nii"), "{d}");
    }
}
