//! The stage graph a recipe compiles to: one scan per root, one load per
//! metadata source, then classify → group → (checksum → screen ∥ merge) → validate → diff.
//! `synup graph` prints this graph; the planner runs the same stages.

use std::fmt::Write;

use crate::recipe::resolve::{MetadataKind, ResolvedRecipe};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Stable id, also the DOT/mermaid node id.
    pub id: String,
    pub label: String,
    /// `cpu` (rayon) or `io` (threads/tokio).
    pub kind: &'static str,
    pub deps: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageGraph {
    pub stages: Vec<Stage>,
}

impl StageGraph {
    pub fn compile(recipe: &ResolvedRecipe) -> Self {
        let mut stages: Vec<Stage> = Vec::new();
        let mut add = |id: String, label: String, kind: &'static str, deps: Vec<usize>| {
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
                    "io",
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
                    "io",
                    vec![],
                )
            })
            .collect();
        let target = add(
            "read_target".into(),
            format!(
                "read target {} ({})",
                recipe.data_collection,
                recipe.backend.as_str()
            ),
            "io",
            vec![],
        );
        let classify = add(
            "classify".into(),
            "classify files to specs".into(),
            "cpu",
            scans,
        );
        let group = add(
            "group".into(),
            "group files into units".into(),
            "cpu",
            vec![classify],
        );
        let checksum = add(
            "checksum".into(),
            "sha1 of unit files (cached)".into(),
            "io",
            vec![group],
        );
        let mut merge_deps = vec![group];
        merge_deps.extend(loads);
        let labels: Vec<String> = recipe.metadata.iter().map(|m| m.label()).collect();
        let merge_label = if labels.is_empty() {
            "merge metadata (key field)".to_owned()
        } else {
            format!("merge metadata: {}", labels.join(", "))
        };
        let merge = add("merge_metadata".into(), merge_label, "cpu", merge_deps);
        let mut validate_deps = vec![merge];
        if recipe.content_check != crate::recipe::model::ContentCheck::Off {
            let check = format!("{:?}", recipe.content_check).to_ascii_lowercase();
            validate_deps.push(add(
                "screen".into(),
                format!("screen content (validation.content: {check}; cached by sha1)"),
                "io",
                vec![checksum],
            ));
        }
        let validate = add(
            "validate".into(),
            "validate units".into(),
            "cpu",
            validate_deps,
        );
        add(
            "diff".into(),
            "diff against target".into(),
            "cpu",
            vec![validate, checksum, target],
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
