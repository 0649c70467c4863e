//! Recipe diagnostics: every problem found in a recipe, with its span, code and hint.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode};

use super::document::Span;

/// What kind of recipe problem this is; rendered as `synup::recipe::<code>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Io,
    Syntax,
    DuplicateKey,
    TooLarge,
    Empty,
    UnknownKey,
    WrongType,
    MissingKey,
    InvalidValue,
    EnvUnset,
    UnsupportedVersion,
    InvalidName,
    SourceAndAssets,
    NoSource,
    BadRegex,
    RegexNoCapture,
    BadGlob,
    BadTemplate,
    UnknownSpec,
    DuplicateSpec,
    RuleSpec,
    RulesInMultiPath,
    MetadataKind,
    MetadataOption,
    CollectionMissing,
    CollectionFile,
    BadMetaSchema,
    RemoteRef,
    SourceMissing,
    SourceNotDir,
    UnsupportedSource,
    MetadataFileMissing,
    LiteralToken,
    // Found while planning, still located in the recipe.
    ExtensionConflict,
    NoLayout,
    KeyCollision,
    MetadataSheet,
    SourceUnreadable,
    Target,
    CollectionMismatch,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Io => "io",
            Code::Syntax => "syntax",
            Code::DuplicateKey => "duplicate_key",
            Code::TooLarge => "too_large",
            Code::Empty => "empty",
            Code::UnknownKey => "unknown_key",
            Code::WrongType => "wrong_type",
            Code::MissingKey => "missing_key",
            Code::InvalidValue => "invalid_value",
            Code::EnvUnset => "env_unset",
            Code::UnsupportedVersion => "unsupported_version",
            Code::InvalidName => "invalid_name",
            Code::SourceAndAssets => "source_and_assets",
            Code::NoSource => "no_source",
            Code::BadRegex => "bad_regex",
            Code::RegexNoCapture => "regex_no_capture",
            Code::BadGlob => "bad_glob",
            Code::BadTemplate => "bad_template",
            Code::UnknownSpec => "unknown_spec",
            Code::DuplicateSpec => "duplicate_spec",
            Code::RuleSpec => "rule_spec",
            Code::RulesInMultiPath => "rules_in_multi_path",
            Code::MetadataKind => "metadata_kind",
            Code::MetadataOption => "metadata_option",
            Code::CollectionMissing => "collection_missing",
            Code::CollectionFile => "collection_file",
            Code::BadMetaSchema => "bad_meta_schema",
            Code::RemoteRef => "remote_ref",
            Code::SourceMissing => "source_missing",
            Code::SourceNotDir => "source_not_dir",
            Code::UnsupportedSource => "unsupported_source",
            Code::MetadataFileMissing => "metadata_file_missing",
            Code::LiteralToken => "literal_token",
            Code::ExtensionConflict => "extension_conflict",
            Code::NoLayout => "no_layout",
            Code::KeyCollision => "key_collision",
            Code::MetadataSheet => "metadata_sheet",
            Code::SourceUnreadable => "source_unreadable",
            Code::Target => "target",
            Code::CollectionMismatch => "collection_mismatch",
        }
    }

    /// Problems found by reading sources and metadata are `synup::plan::*`.
    pub fn domain(self) -> &'static str {
        match self {
            Code::ExtensionConflict
            | Code::NoLayout
            | Code::KeyCollision
            | Code::MetadataSheet
            | Code::SourceUnreadable
            | Code::Target
            | Code::CollectionMismatch => "plan",
            _ => "recipe",
        }
    }
}

/// One problem in a recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeError {
    pub code: Code,
    pub message: String,
    pub span: Option<Span>,
    pub label: String,
    pub help: Option<String>,
}

impl RecipeError {
    pub fn new(code: Code, message: impl Into<String>, span: Option<Span>) -> Self {
        Self {
            code,
            message: message.into(),
            span,
            label: "here".to_owned(),
            help: None,
        }
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn code_str(&self) -> String {
        format!("synup::{}::{}", self.code.domain(), self.code.as_str())
    }
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RecipeError {}

impl Diagnostic for RecipeError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code_str()))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.label.clone()),
            span,
        ))))
    }
}

/// A recipe's problems, reported together against its text.
#[derive(Debug)]
pub struct RecipeErrors {
    pub path: String,
    pub source: NamedSource<String>,
    pub errors: Vec<RecipeError>,
}

impl RecipeErrors {
    pub fn new(path: &str, text: String, errors: Vec<RecipeError>) -> Self {
        Self {
            path: path.to_owned(),
            source: NamedSource::new(path, text),
            errors,
        }
    }

    pub fn codes(&self) -> Vec<String> {
        self.errors.iter().map(RecipeError::code_str).collect()
    }

    /// `file:line:column` of an error, for machine-readable listings.
    pub fn location(&self, error: &RecipeError) -> String {
        match error.span {
            Some(span) => {
                let text = self.source.inner();
                let before = &text[..span.offset.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("{}:{line}:{col}", self.path)
            }
            None => self.path.clone(),
        }
    }
}

impl fmt::Display for RecipeErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [one] => write!(f, "{}: {}", self.location(one), one.message),
            many => write!(f, "{} problems in recipe {}", many.len(), self.path),
        }
    }
}

impl std::error::Error for RecipeErrors {}

impl Diagnostic for RecipeErrors {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self.errors.as_slice() {
            [one] => Some(Box::new(one.code_str())),
            _ => Some(Box::new("synup::recipe::invalid")),
        }
    }
    fn severity(&self) -> Option<Severity> {
        Some(Severity::Error)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self.errors.as_slice() {
            [one] => one
                .help
                .as_ref()
                .map(|h| Box::new(h) as Box<dyn fmt::Display>),
            _ => None,
        }
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        match self.errors.as_slice() {
            [one] => one.labels(),
            _ => None,
        }
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        match self.errors.as_slice() {
            [_] => None,
            many => Some(Box::new(many.iter().map(|e| e as &dyn Diagnostic))),
        }
    }
}
