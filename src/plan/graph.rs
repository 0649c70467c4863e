//! The stage graph a recipe compiles to: one scan per root, one load per
//! metadata sheet, then classify → group → (checksum → screen ∥ merge and
//! validate) → diff against the target → assemble. `synup graph` prints this graph
//! and [`super::engine`] runs it: the planner has no other schedule.

use std::fmt::Write;

use crate::recipe::resolve::{MetadataKind, ResolvedRecipe};

/// What a stage does; the planner runs each kind with its own function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    /// List a source root (its index among the recipe's roots).
    Scan(usize),
    /// Read and parse a metadata sheet (its index among the recipe's metadata).
    LoadSheet(usize),
    Classify,
    Group,
    Checksum,
    Screen,
    /// Merge each unit's metadata and validate it, one unit per task: a unit's
    /// provenance lives only while its problems are found.
    MergeValidate,
    /// Each unit's action against the target, read a window of keys at a time.
    Diff,
    /// Unmatched files, fingerprints, the plan's hash and masking.
    Assemble,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Stable id, also the DOT/mermaid node id and the name in `plan --stats`.
    pub id: String,
    pub label: String,
    pub kind: StageKind,
    pub deps: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageGraph {
    pub stages: Vec<Stage>,
}

impl StageGraph {
    pub fn compile(recipe: &ResolvedRecipe) -> Self {
        let mut stages: Vec<Stage> = Vec::new();
        let mut add = |id: String, label: String, kind: StageKind, deps: Vec<usize>| {
            stages.push(Stage {
                id,
                label,
                kind,
                deps,
            });
            stages.len() - 1
        };
        let scans: Vec<usize> = recipe
            .mode
            .roots()
            .iter()
            .enumerate()
            .map(|(i, r)| {
                add(
                    format!("scan_{i}"),
                    format!("scan {}", r.written),
                    StageKind::Scan(i),
                    vec![],
                )
            })
            .collect();
        let loads: Vec<usize> = recipe
            .metadata
            .iter()
            .filter(|m| matches!(m.kind, MetadataKind::Sheet { .. }))
            .map(|m| {
                add(
                    format!("load_metadata_{}", m.index),
                    format!("load {}", m.label()),
                    StageKind::LoadSheet(m.index),
                    vec![],
                )
            })
            .collect();
        let classify = add(
            "classify".into(),
            "classify files to specs".into(),
            StageKind::Classify,
            scans.clone(),
        );
        let group = add(
            "group".into(),
            "group files into units".into(),
            StageKind::Group,
            vec![classify],
        );
        let checksum = add(
            "checksum".into(),
            "sha1 of unit files (cached)".into(),
            StageKind::Checksum,
            vec![group],
        );
        let mut merge_deps = vec![group];
        merge_deps.extend(loads);
        if recipe.content_check != crate::recipe::model::ContentCheck::Off {
            let check = format!("{:?}", recipe.content_check).to_ascii_lowercase();
            merge_deps.push(add(
                "screen".into(),
                format!("screen content (validation.content: {check}; cached by sha1)"),
                StageKind::Screen,
                vec![checksum],
            ));
        }
        let labels: Vec<String> = recipe.metadata.iter().map(|m| m.label()).collect();
        let merge_label = if labels.is_empty() {
            "merge metadata (key field), validate units".to_owned()
        } else {
            format!("merge metadata: {}; validate units", labels.join(", "))
        };
        let merge = add(
            "merge_validate".into(),
            merge_label,
            StageKind::MergeValidate,
            merge_deps,
        );
        let diff = add(
            "diff".into(),
            format!(
                "diff against target {} ({}), read by key",
                recipe.data_collection,
                recipe.backend.as_str()
            ),
            StageKind::Diff,
            vec![merge, checksum],
        );
        let mut assemble_deps = vec![diff];
        assemble_deps.extend(scans);
        add(
            "assemble".into(),
            "assemble plan: unmatched files, fingerprints, hash".into(),
            StageKind::Assemble,
            assemble_deps,
        );
        Self { stages }
    }

    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph synup {\n  rankdir=LR;\n  node [shape=box];\n");
        for s in &self.stages {
            let _ = writeln!(out, "  {} [label=\"{}\"];", s.id, escape(&s.label));
        }
        for s in &self.stages {
            for &d in &s.deps {
                let _ = writeln!(out, "  {} -> {};", self.stages[d].id, s.id);
            }
        }
        out.push_str("}\n");
        out
    }

    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for s in &self.stages {
            let _ = writeln!(out, "  {}[\"{}\"]", s.id, s.label.replace('"', "#quot;"));
        }
        for s in &self.stages {
            for &d in &s.deps {
                let _ = writeln!(out, "  {} --> {}", self.stages[d].id, s.id);
            }
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
