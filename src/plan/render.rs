//! The plan for people: a compact, deterministic text rendering.

use std::fmt::Write;

use super::model::{Action, Plan};

/// How many `create`/`unchanged` lines to show before summarising the rest;
/// invalid and conflicting units are always listed in full.
const SHOWN_PER_ACTION: usize = 50;
/// Warnings of one code shown before the rest are counted.
const WARNINGS_PER_CODE: usize = 10;
/// Unmatched files listed one by one below their summary.
const UNMATCHED_LISTED: usize = 10;

pub fn render_text(plan: &Plan) -> String {
    render_text_in(plan, TextOptions::default())
}

/// How [`render_text_in`] renders.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    /// Colour the action markers (SGR).
    pub colors: bool,
    /// Every unit, each with its files (path, size, SHA-1) and meta.
    pub detail: bool,
}

/// An action's marker, coloured as terraform colours its own (SGR codes)
/// when `colors`.
fn marker(mark: &str, colors: bool) -> std::borrow::Cow<'_, str> {
    let sgr = match mark {
        "+" => "32",
        "~" => "33",
        "!" => "31",
        _ => "2",
    };
    if colors {
        format!("\x1b[{sgr}m{mark}\x1b[0m").into()
    } else {
        mark.into()
    }
}

/// [`render_text`], with colour and detail as `opts` says.
pub fn render_text_in(plan: &Plan, opts: TextOptions) -> String {
    let colors = opts.colors;
    let shown_per_action = if opts.detail {
        usize::MAX
    } else {
        SHOWN_PER_ACTION
    };
    let mut out = String::new();
    let t = &plan.target;
    let _ = writeln!(
        out,
        "Plan for {} → {} collection \"{}\"{}",
        plan.recipe.name,
        t.backend,
        t.data_collection,
        t.path
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default()
    );
    let l = &plan.layout;
    let layout = match (l.pattern, &l.group_key_regex, &l.reason) {
        (Some(p), Some(re), _) => format!("pattern {p} ({}), group_key_regex {re}", describe(p)),
        (None, Some(re), Some(_)) => format!("inferred, group_key_regex {re}"),
        (None, Some(re), None) => format!("group_key_regex {re} (from the recipe)"),
        _ => "no files matched".to_owned(),
    };
    let _ = writeln!(out, "Layout: {layout}");
    if let Some(reason) = &l.reason {
        let _ = writeln!(out, "  chosen: {reason}");
    }
    if let Some(runner_up) = &l.runner_up {
        let _ = writeln!(out, "  runner-up: {runner_up}");
    }

    // One pass over keys and actions: the widest key, and which units are
    // shown (the first of each common action, every rare one); only those
    // are decoded whole.
    let mut width = 0;
    let mut positions = Vec::new();
    let mut shown = [0usize; 2];
    let mut hidden = [0usize; 2];
    let listed = plan
        .units
        .heads()
        .enumerate()
        .try_for_each(|(i, head)| {
            let head = head?;
            width = width.max(head.key.chars().count().min(40));
            let slot = match head.action {
                Action::Create => Some(0),
                Action::Unchanged => Some(1),
                _ => None,
            };
            if let Some(s) = slot {
                if shown[s] >= shown_per_action {
                    hidden[s] += 1;
                    return Ok(());
                }
                shown[s] += 1;
            }
            positions.push(i);
            Ok(())
        })
        .and_then(|()| plan.units.at(&positions));
    if !plan.units.is_empty() {
        out.push('\n');
    }
    let listed = listed.unwrap_or_else(|e: std::io::Error| {
        let _ = writeln!(out, "  (the plan's units cannot be read back: {e})");
        Vec::new()
    });
    for u in &listed {
        let (mark, what) = match u.action {
            Action::Create => {
                let bytes = u.files.values().fold(0u64, |n, f| n.saturating_add(f.size));
                (
                    "+",
                    format!(
                        "{} ({} file{}, {})",
                        u.files.keys().collect::<Vec<_>>().join(", "),
                        u.files.len(),
                        if u.files.len() == 1 { "" } else { "s" },
                        human_bytes(bytes)
                    ),
                )
            }
            Action::Unchanged => ("=", "unchanged".to_owned()),
            Action::Conflict => (
                "~",
                format!(
                    "conflict: {}",
                    u.conflict.as_deref().unwrap_or("differs from the target")
                ),
            ),
            Action::Invalid => ("!", "invalid".to_owned()),
        };
        let _ = writeln!(out, "  {} {:<width$}  {what}", marker(mark, colors), u.key);
        if opts.detail {
            for (spec, f) in u.files.iter() {
                let id = match (&f.sha1, &f.etag) {
                    (Some(sha), _) => format!("sha1 {}", sha.get(..12).unwrap_or(sha)),
                    (None, Some(etag)) => format!("etag {etag}, sha1 at apply"),
                    (None, None) => "sha1 at apply".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "      {spec}: {} ({}, {id})",
                    f.shown(),
                    human_bytes(f.size)
                );
            }
            let _ = writeln!(out, "      meta: {}", u.meta.get());
        }
        for p in &u.problems {
            let source = p
                .source
                .as_ref()
                .map(|s| format!(" [{s}]"))
                .unwrap_or_default();
            let _ = writeln!(out, "      {}: {}{source}", p.reason.as_str(), p.message);
            if let Some(paths) = &p.paths {
                for path in paths {
                    let _ = writeln!(out, "        - {path}");
                }
            }
        }
    }
    for (i, word) in ["to create", "unchanged"].iter().enumerate() {
        if hidden[i] > 0 {
            let _ = writeln!(
                out,
                "  … and {} more {word} (`--detail` lists every unit)",
                hidden[i]
            );
        }
    }

    if !plan.unmatched.is_empty() {
        let _ = writeln!(out, "\nUnmatched files ({}):", plan.unmatched.len());
        // Every file when few, else two examples per reason; the JSON plan
        // always lists them all.
        let listed = plan.unmatched.len() <= UNMATCHED_LISTED;
        for g in &plan.unmatched_summary {
            let _ = writeln!(out, "  {} × {}: {}", g.count, g.reason, g.hint);
            for e in g.examples.iter().filter(|_| !listed) {
                let _ = writeln!(out, "      e.g. {e}");
            }
        }
        if listed {
            for f in &plan.unmatched {
                let _ = writeln!(
                    out,
                    "  {}  {}",
                    super::explain::shown(&f.root, &f.path),
                    f.reason
                );
            }
        } else {
            let _ = writeln!(
                out,
                "  (all {} are in `--format json`)",
                plan.unmatched.len()
            );
        }
    }
    if !plan.orphan_rows.is_empty() {
        let _ = writeln!(
            out,
            "\nMetadata rows that match no unit ({}):",
            plan.orphan_rows.len()
        );
        for r in plan.orphan_rows.iter().take(SHOWN_PER_ACTION) {
            let sheet = r
                .sheet
                .as_ref()
                .map(|s| format!("!{s}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {}{sheet} row {}  {}", r.source, r.row, r.key);
        }
        if plan.orphan_rows.len() > SHOWN_PER_ACTION {
            let _ = writeln!(
                out,
                "  … and {} more",
                plan.orphan_rows.len() - SHOWN_PER_ACTION
            );
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        // Many warnings of one kind (content screening of a large set) are
        // shown a few at a time; the JSON plan lists them all.
        for run in plan.warnings.chunk_by(|a, b| a.code == b.code) {
            for w in run.iter().take(WARNINGS_PER_CODE) {
                let _ = writeln!(out, "  warning[{}]: {}", w.code, w.message);
            }
            if run.len() > WARNINGS_PER_CODE {
                let _ = writeln!(
                    out,
                    "  … and {} more {} warnings (all are in `--format json`)",
                    run.len() - WARNINGS_PER_CODE,
                    run[0].code
                );
            }
        }
    }
    if let Some(d) = &plan.diagnosis {
        let _ = writeln!(out, "\nNo valid unit: {d}");
    }
    let s = &plan.summary;
    let _ = writeln!(
        out,
        "\nPlan: {} to create, {} unchanged, {} conflict{}, {} invalid ({} unit{}); {} file{} ({}) to upload; {} unmatched, {} excluded.",
        s.create,
        s.unchanged,
        s.conflict,
        if s.conflict == 1 { "" } else { "s" },
        s.invalid,
        s.units,
        if s.units == 1 { "" } else { "s" },
        s.files_to_upload,
        if s.files_to_upload == 1 { "" } else { "s" },
        human_bytes(s.bytes_to_upload),
        s.unmatched_files,
        s.excluded_files,
    );
    out
}

fn describe(pattern: u8) -> &'static str {
    crate::stages::group::Layout {
        pattern: Some(pattern),
        group_key_regex: None,
        reason: None,
        runner_up: None,
    }
    .describe()
}

/// `1536` → `1.50 KiB` (indicatif's binary units, as the progress bars show them).
pub fn human_bytes(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes() {
        assert_eq!(super::human_bytes(0), "0 B");
        assert_eq!(super::human_bytes(1536), "1.50 KiB");
        assert_eq!(super::human_bytes(3 * 1024 * 1024), "3.00 MiB");
    }
}
