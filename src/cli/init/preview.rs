//! What the wizard shows before it writes: a scratch recipe planned as the
//! answers stand, the detected layout and a few units.

use std::path::Path;
use std::rc::Rc;

use synup::plan::model::Plan;

use synup::init::{Answers, render};

use super::{Step, fail};

/// A scratch recipe beside the real one, for previews; removed when dropped
/// (also when the wizard is interrupted).
pub(super) struct Draft {
    file: tempfile::NamedTempFile,
    /// The last recipe text planned and its plan: answers that did not change
    /// since (metadata steps asking for sample names) are not planned again.
    last: std::cell::RefCell<Option<(String, Rc<Plan>)>>,
}

impl Draft {
    pub(super) fn new(dir: &Path) -> Step<Self> {
        match tempfile::Builder::new()
            .prefix(".synup-init-")
            .suffix(".yaml")
            .tempfile_in(dir)
        {
            Ok(file) => Ok(Self {
                file,
                last: std::cell::RefCell::new(None),
            }),
            Err(e) => fail(&format!("cannot write in {}: {e}", dir.display())),
        }
    }

    /// Plans `answers` as they stand; errors are printed, `None` returned.
    pub(super) fn plan(&self, answers: &Answers) -> Option<Rc<Plan>> {
        let text = render(answers);
        if let Some((last, plan)) = &*self.last.borrow()
            && *last == text
        {
            return Some(plan.clone());
        }
        std::fs::write(self.file.path(), &text).ok()?;
        let prepared = crate::cli::prepare_recipe(&self.file.path().display().to_string())?;
        let plan = Rc::new(crate::cli::plan_recipe(&prepared, false, Default::default())?.plan);
        *self.last.borrow_mut() = Some((text, plan.clone()));
        Some(plan)
    }
}

/// The seed's names for its directory patterns.
pub(super) fn pattern_name(p: u8) -> &'static str {
    match p {
        1 => "one folder per unit",
        2 => "one folder per file type, matched by file name",
        3 => "all files in one folder, matched by file name",
        4 => "nested folders, grouped by the first folder",
        _ => "one folder per spec",
    }
}

pub(super) fn show_preview(plan: &synup::plan::model::Plan, detected: Option<u8>) {
    let s = &plan.summary;
    let pattern = plan.layout.pattern.or(detected);
    match (pattern, &plan.layout.group_key_regex) {
        (Some(p), Some(re)) => crate::console::note(&format!(
            "Detected layout: pattern {p} ({}), group_key_regex {re}",
            pattern_name(p)
        )),
        (None, Some(re)) => crate::console::note(&format!("Layout: group_key_regex {re}")),
        _ => crate::console::note("Layout: units by file name stem"),
    }
    crate::console::note(&format!(
        "{} units ({} invalid), {} unmatched files; for example:",
        s.units, s.invalid, s.unmatched_files
    ));
    for u in plan.units.iter().take(3).flatten() {
        let files: Vec<String> = u
            .files
            .iter()
            .map(|(spec, f)| format!("{spec}={}", f.path))
            .collect();
        crate::console::note(&format!("  {}: {}", u.key, files.join(", ")));
        for p in u.problems.iter().take(2) {
            crate::console::note(&format!("    problem: {}", p.message));
        }
    }
}
