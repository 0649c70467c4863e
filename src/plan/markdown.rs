//! The plan as Markdown for a pull request comment (`plan --format markdown`):
//! the summary as a table, problems first (invalid units, conflicts, warnings,
//! rows no unit has), then each action's units in a collapsed table.
//! Deterministic like the text rendering, and short enough for a comment:
//! each table stops after [`ROWS`] units and says how many are left out.

use std::fmt::Write;

use super::model::{Action, Plan, PlannedUnit};
use super::render::human_bytes;

/// Rows per table and problems per list (GitHub caps a comment at 65,536
/// characters; the JSON plan has everything).
const ROWS: usize = 100;

/// Text for a table cell or a list item: HTML-escaped, `|` kept out of the
/// table's syntax, on one line (a unit key may hold anything).
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("&#124;"),
            '`' => out.push_str("&#96;"),
            '\\' => out.push_str("&#92;"),
            '*' | '_' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A key or path as code (escaped inside `<code>`, where backticks cannot
/// break out).
fn code(text: &str) -> String {
    format!("<code>{}</code>", cell(text))
}

pub fn render_markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let t = &plan.target;
    let _ = writeln!(
        out,
        "### synup plan: {} → {} collection {}\n",
        code(&plan.recipe.name),
        cell(&t.backend),
        code(&t.data_collection)
    );
    let s = &plan.summary;
    out.push_str("| create | unchanged | conflict | invalid | files to upload | to upload | unmatched files | excluded files |\n");
    out.push_str("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
        s.create,
        s.unchanged,
        s.conflict,
        s.invalid,
        s.files_to_upload,
        human_bytes(s.bytes_to_upload),
        s.unmatched_files,
        s.excluded_files
    );
    if let Some(d) = &plan.diagnosis {
        let _ = writeln!(out, "> **No valid unit:** {}\n", cell(d));
    }

    // One pass for the problems and the first units of each action.
    let mut by_action: [Vec<PlannedUnit>; 4] = Default::default();
    let mut counts = [0usize; 4];
    let read = plan.units.iter().try_for_each(|u| {
        let u = u?;
        let slot = slot(u.action);
        counts[slot] += 1;
        if by_action[slot].len() < ROWS {
            by_action[slot].push(u);
        }
        Ok::<_, std::io::Error>(())
    });
    if let Err(e) = read {
        let _ = writeln!(
            out,
            "> the plan's units cannot be read back: {}\n",
            cell(&e.to_string())
        );
    }
    problems(&mut out, plan, &by_action, &counts);

    let titles = ["to create", "unchanged", "conflicts", "invalid"];
    for (slot, title) in titles.iter().enumerate().take(2) {
        if counts[slot] == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "<details><summary>{} unit{} {title}</summary>\n",
            counts[slot],
            if counts[slot] == 1 { "" } else { "s" }
        );
        out.push_str("| unit | files | size |\n| --- | --- | ---: |\n");
        for u in &by_action[slot] {
            let bytes = u.files.values().fold(0u64, |n, f| n.saturating_add(f.size));
            let specs: Vec<String> = u.files.keys().map(cell).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                code(&u.key),
                specs.join(", "),
                human_bytes(bytes)
            );
        }
        more(&mut out, counts[slot], by_action[slot].len());
        out.push_str("\n</details>\n\n");
    }
    if !plan.unmatched_summary.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>{} unmatched file{}</summary>\n",
            plan.unmatched.len(),
            if plan.unmatched.len() == 1 { "" } else { "s" }
        );
        out.push_str("| files | reason | e.g. | hint |\n| ---: | --- | --- | --- |\n");
        for g in &plan.unmatched_summary {
            let examples: Vec<String> = g.examples.iter().map(|e| code(e)).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                g.count,
                cell(&g.reason),
                examples.join("<br>"),
                cell(&g.hint)
            );
        }
        out.push_str("\n</details>\n\n");
    }
    let _ = writeln!(
        out,
        "<sub>{} · recipe {} (sha256 {}) · layout: {}</sub>",
        code(&plan.plan_hash),
        code(&plan.recipe.path),
        cell(plan.recipe.sha256.get(..12).unwrap_or(&plan.recipe.sha256)),
        match &plan.layout.group_key_regex {
            Some(re) => code(re),
            None => "none".to_owned(),
        }
    );
    out
}

fn slot(action: Action) -> usize {
    match action {
        Action::Create => 0,
        Action::Unchanged => 1,
        Action::Conflict => 2,
        Action::Invalid => 3,
    }
}

/// "… and N more" below a table or list that stopped at [`ROWS`].
fn more(out: &mut String, total: usize, shown: usize) {
    if total > shown {
        let _ = writeln!(
            out,
            "\n… and {} more (all are in `synup plan --format json`)",
            total - shown
        );
    }
}

/// Invalid units, conflicts, warnings and orphan rows, before anything else.
fn problems(out: &mut String, plan: &Plan, by_action: &[Vec<PlannedUnit>; 4], counts: &[usize; 4]) {
    let any =
        counts[2] + counts[3] > 0 || !plan.warnings.is_empty() || !plan.orphan_rows.is_empty();
    if !any {
        return;
    }
    out.push_str("#### Problems\n\n");
    for u in &by_action[3] {
        let _ = writeln!(out, "- **invalid** {}", code(&u.key));
        for p in &u.problems {
            let _ = writeln!(out, "  - {}: {}", cell(p.reason.as_str()), cell(&p.message));
        }
    }
    more(out, counts[3], by_action[3].len());
    for u in &by_action[2] {
        let _ = writeln!(
            out,
            "- **conflict** {}: {}",
            code(&u.key),
            cell(u.conflict.as_deref().unwrap_or("differs from the target"))
        );
    }
    more(out, counts[2], by_action[2].len());
    for w in plan.warnings.iter().take(ROWS) {
        let _ = writeln!(out, "- **warning** {}: {}", code(&w.code), cell(&w.message));
    }
    more(out, plan.warnings.len(), plan.warnings.len().min(ROWS));
    if !plan.orphan_rows.is_empty() {
        let _ = writeln!(
            out,
            "- **{} metadata {} no unit**, e.g. {}",
            plan.orphan_rows.len(),
            if plan.orphan_rows.len() == 1 {
                "row matches"
            } else {
                "rows match"
            },
            plan.orphan_rows
                .iter()
                .take(3)
                .map(|r| format!("{} row {} {}", cell(&r.source), r.row, code(&r.key)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::{cell, code};

    #[test]
    fn a_hostile_key_cannot_break_the_table_or_inject_html() {
        assert_eq!(
            cell("a|b<script>`x`\n*y*"),
            "a&#124;b&lt;script&gt;&#96;x&#96; \\*y\\*"
        );
        assert_eq!(code("</code>"), "<code>&lt;/code&gt;</code>");
    }
}
