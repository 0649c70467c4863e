//! Validate: every reason a unit cannot be uploaded (SPEC 2.3), all of them listed.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::recipe::resolve::{FileSpec, MetaSchema};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemReason {
    MissingRequired,
    AmbiguousSpec,
    TooLarge,
    EmptyFile,
    MetadataMissing,
    MetadataType,
    MetaSchema,
    /// Content screening (`validation.content: fail`).
    TypeMismatch,
    Executable,
    SensitiveFile,
    ScriptInjection,
    VariableFrameRate,
}

impl ProblemReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemReason::MissingRequired => "missing_required",
            ProblemReason::AmbiguousSpec => "ambiguous_spec",
            ProblemReason::TooLarge => "too_large",
            ProblemReason::EmptyFile => "empty_file",
            ProblemReason::MetadataMissing => "metadata_missing",
            ProblemReason::MetadataType => "metadata_type",
            ProblemReason::MetaSchema => "meta_schema",
            ProblemReason::TypeMismatch => "type_mismatch",
            ProblemReason::Executable => "executable",
            ProblemReason::SensitiveFile => "sensitive_file",
            ProblemReason::ScriptInjection => "script_injection",
            ProblemReason::VariableFrameRate => "variable_frame_rate",
        }
    }
}

/// Why a unit is invalid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Problem {
    pub reason: ProblemReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// JSON pointer into meta (meta_schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// Where the offending value came from, e.g. `meta.xlsx!Sheet1!C14`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn new(reason: ProblemReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            spec: None,
            paths: None,
            path: None,
            field: None,
            pointer: None,
            source: None,
            message: message.into(),
        }
    }
    pub fn spec(mut self, s: &str) -> Self {
        self.spec = Some(s.to_owned());
        self
    }
    pub fn field(mut self, s: &str) -> Self {
        self.field = Some(s.to_owned());
        self
    }
    pub fn source(mut self, s: &str) -> Self {
        self.source = Some(s.to_owned());
        self
    }
}

/// A unit file as validation sees it.
pub struct CheckedFile<'a> {
    pub spec: u32,
    pub rel: std::borrow::Cow<'a, str>,
    pub size: u64,
}

impl From<crate::stages::screen::Rule> for ProblemReason {
    fn from(rule: crate::stages::screen::Rule) -> Self {
        use crate::stages::screen::Rule;
        match rule {
            Rule::TypeMismatch => ProblemReason::TypeMismatch,
            Rule::Executable => ProblemReason::Executable,
            Rule::SensitiveFile => ProblemReason::SensitiveFile,
            Rule::ScriptInjection => ProblemReason::ScriptInjection,
            Rule::VariableFrameRate => ProblemReason::VariableFrameRate,
        }
    }
}

/// Checks files and meta of one unit; returns its problems, sorted.
pub fn validate_unit(
    specs: &[FileSpec],
    files: &[CheckedFile<'_>],
    max_file_size: Option<u64>,
    meta: &Json,
    provenance: impl Fn(&str) -> Option<String>,
    schema: Option<&MetaSchema>,
    mut problems: Vec<Problem>,
) -> Vec<Problem> {
    for (i, spec) in specs.iter().enumerate() {
        let mine: Vec<&CheckedFile<'_>> = files.iter().filter(|f| f.spec as usize == i).collect();
        match mine.len() {
            0 if spec.is_required => problems.push(
                Problem::new(
                    ProblemReason::MissingRequired,
                    format!("required spec `{}` has no file", spec.name),
                )
                .spec(&spec.name),
            ),
            0 | 1 => {}
            n => {
                let mut p = Problem::new(
                    ProblemReason::AmbiguousSpec,
                    format!(
                        "{n} files match spec `{}`; a unit holds one file per spec",
                        spec.name
                    ),
                )
                .spec(&spec.name);
                p.paths = Some(mine.iter().map(|f| f.rel.to_string()).collect());
                problems.push(p);
            }
        }
    }
    for f in files {
        let spec = &specs[f.spec as usize].name;
        if f.size == 0 {
            let mut p = Problem::new(
                ProblemReason::EmptyFile,
                format!(
                    "{} is empty (0 bytes); the upload API rejects empty files",
                    f.rel
                ),
            )
            .spec(spec);
            p.path = Some(f.rel.to_string());
            problems.push(p);
        }
        if let Some(max) = max_file_size
            && f.size > max
        {
            let mut p = Problem::new(
                ProblemReason::TooLarge,
                format!(
                    "{} is {} bytes, over the limit of {} MiB",
                    f.rel,
                    f.size,
                    max / 1_048_576
                ),
            )
            .spec(spec);
            p.path = Some(f.rel.to_string());
            problems.push(p);
        }
    }
    if let Some(schema) = schema {
        for err in schema.validator.iter_errors(meta) {
            let pointer = err.instance_path().as_str().to_owned();
            let top = pointer
                .split('/')
                .nth(1)
                .map(|s| s.replace("~1", "/").replace("~0", "~"));
            let mut p = Problem::new(
                ProblemReason::MetaSchema,
                format!(
                    "{}: {}",
                    if pointer.is_empty() { "meta" } else { &pointer },
                    err
                ),
            );
            p.pointer = Some(pointer.clone());
            if let Some(top) = top {
                p.source = provenance(&top);
                p.field = Some(top);
            }
            problems.push(p);
        }
    }
    problems.sort();
    problems.dedup();
    problems
}
