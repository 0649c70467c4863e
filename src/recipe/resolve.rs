//! From what the recipe says to what the planner uses: compiled globs and regexes,
//! the collection's specs and meta-schema validator, roots resolved against the
//! recipe's folder. Every semantic problem is collected with its span.
//!
//! Reads only the recipe's own collection and schema files; never the source tree,
//! metadata inputs or the network (that is `synup validate`'s contract).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde_json::Value as Json;

use super::error::{Code, RecipeError};
use super::load::{LoadedRecipe, did_you_mean, pointer_segment};
use super::model::{
    Backend, ChecksumMode, CollectionConfig, ColumnType, FileSpecConfig, InvalidUnits,
    MetadataSource,
};

/// A file specification of the collection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileSpec {
    pub name: String,
    pub file_type: String,
    /// Lower-case, without the leading dot.
    pub extensions: Vec<String>,
    pub is_required: bool,
    pub is_primary: bool,
}

impl FileSpec {
    /// One line for diffs: `image_1 (image, .png .jpg, required: true, primary: true)`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, .{}, required: {}, primary: {})",
            self.name,
            self.file_type,
            self.extensions.join(" ."),
            self.is_required,
            self.is_primary
        )
    }

    /// Bytes of the file name taken by the longest listed extension it ends
    /// with (SPEC 2.1: `.nii.gz` before `.gz`), or `None` when it ends with none.
    pub fn matched_extension(&self, name: &str) -> Option<usize> {
        self.extensions
            .iter()
            .filter_map(|e| crate::source::names::ends_with_extension(name, e))
            .max()
    }

    /// The file name without the extension this spec matched in it (its stem).
    pub fn stem<'a>(&self, rel: &'a str) -> &'a str {
        let name = crate::source::names::file_name(rel);
        match self.matched_extension(name) {
            Some(n) => &name[..name.len() - n],
            None => crate::source::names::stem(rel),
        }
    }
}

/// The collection a recipe uploads into, as the planner needs it.
#[derive(Debug)]
pub struct Collection {
    pub specs: Vec<FileSpec>,
    pub meta_schema: Option<MetaSchema>,
    /// Canonical JSON of specs + schema, fingerprinted by the plan.
    pub fingerprint: String,
}

#[derive(Debug)]
pub struct MetaSchema {
    pub schema: Json,
    pub validator: jsonschema::Validator,
}

impl Collection {
    /// The spec whose file is the unit's "primary" one, by precedence.
    pub fn primary_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.specs.len()).collect();
        order.sort_by_key(|&i| !self.specs[i].is_primary);
        order
    }
}

/// A folder files are discovered under.
#[derive(Debug, Clone)]
pub struct Root {
    /// As written in the recipe (what the plan prints).
    pub written: String,
    /// Resolved against the recipe's folder.
    pub path: PathBuf,
    pub recursive: bool,
    pub checksum: ChecksumMode,
    /// JSON pointer of the path value in the recipe, for errors.
    pub pointer: String,
    /// Where its files are read: the folder at `path`, or a bucket or server
    /// (`s3://`, `gs://`, `azblob://`, `sftp://`; `path` is empty then).
    pub source: std::sync::Arc<dyn crate::source::Source>,
}

impl Root {
    pub fn is_remote(&self) -> bool {
        self.source.is_remote()
    }
}

#[derive(Debug)]
pub struct FileRuleCompiled {
    pub pattern: String,
    pub matcher: GlobMatcher,
    pub spec: usize,
}

#[derive(Debug)]
pub struct Asset {
    pub spec: usize,
    pub root: Root,
    pub include: Option<GlobSet>,
}

#[derive(Debug)]
pub enum SourceMode {
    Single {
        root: Root,
        rules: Vec<FileRuleCompiled>,
    },
    Multi {
        assets: Vec<Asset>,
    },
}

impl SourceMode {
    pub fn roots(&self) -> Vec<&Root> {
        match self {
            SourceMode::Single { root, .. } => vec![root],
            SourceMode::Multi { assets } => assets.iter().map(|a| &a.root).collect(),
        }
    }

    /// What the walk of root `index` (in [`Self::roots`] order) does with junk.
    pub fn junk_filter(&self, index: usize, include_junk: bool) -> crate::source::JunkFilter<'_> {
        crate::source::JunkFilter {
            keep_all: include_junk,
            include: match self {
                SourceMode::Single { .. } => None,
                SourceMode::Multi { assets } => assets.get(index).and_then(|a| a.include.as_ref()),
            },
        }
    }
}

/// `dataset_key_template`, parsed.
#[derive(Debug, Clone)]
pub struct KeyTemplate {
    pub text: String,
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone)]
enum TemplatePart {
    Literal(String),
    Field(String),
}

impl KeyTemplate {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err("unclosed `{` in template".to_owned()),
                        }
                    }
                    if name.is_empty() {
                        return Err("empty `{}` placeholder".to_owned());
                    }
                    if !lit.is_empty() {
                        parts.push(TemplatePart::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(TemplatePart::Field(name));
                }
                '}' => {
                    return Err("unmatched `}` in template (write `}}` for a literal)".to_owned());
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(TemplatePart::Literal(lit));
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
        })
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Field(f) => Some(f.as_str()),
            TemplatePart::Literal(_) => None,
        })
    }

    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                TemplatePart::Literal(l) => out.push_str(l),
                TemplatePart::Field(f) => out.push_str(&lookup(f).unwrap_or_default()),
            }
        }
        out
    }
}

/// Where a metadata source's file is named in the recipe.
#[derive(Debug, Clone)]
pub struct MetadataFileRef {
    pub written: String,
    pub pointer: String,
}

#[derive(Debug)]
pub enum MetadataKind {
    Sheet {
        file: MetadataFileRef,
        /// `None` for CSV.
        sheet: Option<String>,
        is_csv: bool,
        header_row: u32,
        key_column: Option<String>,
        columns: std::collections::BTreeMap<String, ColumnType>,
        /// csv: the separator; `None`: sniffed.
        delimiter: Option<u8>,
        /// csv: the text encoding; `None`: UTF-8.
        encoding: Option<&'static encoding_rs::Encoding>,
    },
    Filename {
        regex: Regex,
        types: std::collections::BTreeMap<String, ColumnType>,
        on: Option<usize>,
    },
    Sidecar {
        template: KeyTemplate,
        pointer: String,
    },
    Static {
        fields: serde_json::Map<String, Json>,
        pointer: String,
    },
}

#[derive(Debug)]
pub struct MetadataSpec {
    pub index: usize,
    pub kind: MetadataKind,
    pub required: bool,
}

impl MetadataSpec {
    /// A short name for the stage graph and messages.
    pub fn label(&self) -> String {
        match &self.kind {
            MetadataKind::Sheet {
                file, is_csv: true, ..
            } => format!("csv {}", file.written),
            MetadataKind::Sheet { file, .. } => format!("excel {}", file.written),
            MetadataKind::Filename { regex, .. } => format!("filename /{}/", regex.as_str()),
            MetadataKind::Sidecar { template, .. } => format!("sidecar {}", template.text),
            MetadataKind::Static { .. } => "static".to_owned(),
        }
    }
}

/// Everything the planner needs, ready to use.
#[derive(Debug)]
pub struct ResolvedRecipe {
    pub name: String,
    pub backend: Backend,
    /// local: absolute catalog folder.
    pub target_path: PathBuf,
    pub data_collection: String,
    /// A synapse target's collection id (validated: a synapse recipe without
    /// a numeric `data_collection` does not resolve).
    pub synapse_collection: Option<u64>,
    pub collection: Collection,
    pub mode: SourceMode,
    pub exclude: GlobSet,
    /// Folders an `exclude` glob drops whole: each glob ending in `/**`
    /// without that suffix, so `private/**` skips the folder `private`
    /// without reading it (it may be unreadable).
    pub exclude_dirs: GlobSet,
    /// `include_junk: true`: the junk list drops nothing.
    pub include_junk: bool,
    pub group_key_regex: Option<(Regex, String)>,
    pub key_template: KeyTemplate,
    pub key_field: Option<String>,
    pub metadata: Vec<MetadataSpec>,
    pub max_file_size: Option<u64>,
    pub invalid_units: InvalidUnits,
    pub content_check: crate::recipe::model::ContentCheck,
    /// Warnings found while resolving (e.g. a literal token).
    pub warnings: Vec<RecipeError>,
}

/// Resolves a loaded recipe without any network access (for a synapse target,
/// the collection is the recipe's pin, if any); `Err` holds every problem found.
pub fn resolve(loaded: &LoadedRecipe) -> Result<ResolvedRecipe, Vec<RecipeError>> {
    resolve_with(loaded, None)
}

/// Resolves a loaded recipe; for a synapse target, `remote` is the collection
/// the backend returned, which the recipe's `collection` block must match.
pub fn resolve_with(
    loaded: &LoadedRecipe,
    remote: Option<&RemoteCollection>,
) -> Result<ResolvedRecipe, Vec<RecipeError>> {
    let mut cx = Cx {
        loaded,
        errors: Vec::new(),
        warnings: Vec::new(),
        storage: remote.and_then(|r| r.storage.as_ref()),
    };
    let r = &loaded.recipe;

    if r.version != 1 {
        cx.err(
            RecipeError::new(
                Code::UnsupportedVersion,
                format!("recipe version {} is not supported", r.version),
                cx.span("/version"),
            )
            .help("this synup reads `version: 1`"),
        );
    }
    if r.name.is_empty()
        || !r
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        cx.err(
            RecipeError::new(
                Code::InvalidName,
                format!("`{}` is not a valid recipe name", r.name),
                cx.span("/name"),
            )
            .help("use letters, digits, `.`, `_` and `-` only, e.g. ct-batch-42"),
        );
    }
    if r.target.backend == Backend::Synapse
        && !matches!(
            r.target.data_collection,
            Some(super::model::CollectionRef::Id(_))
        )
    {
        cx.err(
            RecipeError::new(
                Code::InvalidValue,
                "a synapse target needs `data_collection`: the collection's numeric id",
                cx.span("/target/data_collection").or(cx.span("/target")),
            )
            .help("add e.g. `data_collection: 42` under `target` (`synup collections` lists them)"),
        );
    }
    let literal_token = cx
        .span("/target/token")
        .and_then(|s| loaded.text.get(s.offset..s.offset + s.len))
        .is_some_and(|t| !t.contains("${"));
    if r.target.token.is_some() && literal_token {
        cx.warn(
            RecipeError::new(
                Code::LiteralToken,
                "a literal token is written in the recipe",
                cx.span("/target/token"),
            )
            .help("use `token: ${SYNAPSE_ACCESS_TOKEN}` so the secret stays out of git"),
        );
    }

    let collection = match (r.target.backend, remote) {
        (Backend::Local, _) => cx.collection(r.collection.as_ref()),
        (Backend::Synapse, Some(remote)) => cx.remote_collection(remote, r.collection.as_ref()),
        // Offline (validate): the pin if there is one; the backend is asked at plan.
        (Backend::Synapse, None) => match &r.collection {
            Some(block) => cx.collection(Some(block)),
            None => Some(Collection {
                specs: Vec::new(),
                meta_schema: None,
                fingerprint: String::new(),
            }),
        },
    };
    let specs = collection
        .as_ref()
        .map(|c| c.specs.clone())
        .unwrap_or_default();

    let mode = cx.source_mode(&specs);
    let exclude = cx.globset("/exclude", &r.exclude);
    let exclude_dirs = {
        let mut b = GlobSetBuilder::new();
        for g in &r.exclude {
            if let Some(dir) = g.strip_suffix("/**")
                && let Ok(glob) = GlobBuilder::new(dir).literal_separator(true).build()
            {
                b.add(glob);
            }
        }
        b.build().unwrap_or_else(|_| GlobSet::empty())
    };

    let group_key_regex = r
        .group_key_regex
        .as_ref()
        .and_then(|re| match Regex::new(re) {
            Ok(compiled) => Some((compiled, re.clone())),
            Err(e) => {
                cx.err(
                    RecipeError::new(
                        Code::BadRegex,
                        format!("group_key_regex does not compile: {}", regex_message(&e)),
                        cx.span("/group_key_regex"),
                    )
                    .help("group_key_regex uses Rust regex syntax, e.g. ^(?P<group_key>[^/]+)/"),
                );
                None
            }
        });
    let template_text = r
        .dataset_key_template
        .clone()
        .unwrap_or_else(|| "{group_key}".to_owned());
    let key_template = match KeyTemplate::parse(&template_text) {
        Ok(t) => {
            let captures: BTreeSet<String> = group_key_regex
                .as_ref()
                .map(|(re, _)| re.capture_names().flatten().map(str::to_owned).collect())
                .unwrap_or_default();
            for field in t.fields() {
                if field != "group_key" && !captures.contains(field) {
                    cx.err(
                        RecipeError::new(Code::BadTemplate, format!("`{{{field}}}` is not `{{group_key}}` or a named capture of group_key_regex"), cx.span("/dataset_key_template"))
                            .help(if captures.is_empty() {
                                "without group_key_regex only {group_key} is available".to_owned()
                            } else {
                                format!("available: {{group_key}}, {}", captures.iter().map(|c| format!("{{{c}}}")).collect::<Vec<_>>().join(", "))
                            }),
                    );
                }
            }
            t
        }
        Err(msg) => {
            cx.err(RecipeError::new(
                Code::BadTemplate,
                format!("dataset_key_template: {msg}"),
                cx.span("/dataset_key_template"),
            ));
            KeyTemplate::parse("{group_key}").expect("default template parses")
        }
    };

    let metadata = r
        .metadata
        .iter()
        .enumerate()
        .filter_map(|(i, m)| cx.metadata(i, m, &specs))
        .collect();

    let target_path = loaded.dir.join(r.target.path_or_default());
    let data_collection = r
        .target
        .data_collection
        .as_ref()
        .map_or_else(|| r.name.clone(), ToString::to_string);

    if !cx.errors.is_empty() {
        super::load::sort_errors(&mut cx.errors);
        return Err(cx.errors);
    }
    Ok(ResolvedRecipe {
        name: r.name.clone(),
        backend: r.target.backend,
        target_path,
        data_collection,
        synapse_collection: match (&r.target.backend, &r.target.data_collection) {
            (Backend::Synapse, Some(super::model::CollectionRef::Id(id))) => Some(*id),
            _ => None,
        },
        collection: collection.expect("no errors means a collection"),
        mode: mode.expect("no errors means a source"),
        exclude: exclude.expect("no errors means globs compiled"),
        exclude_dirs,
        include_junk: r.include_junk,
        group_key_regex,
        key_template,
        key_field: r.key_field.clone(),
        metadata,
        max_file_size: (r.validation.max_file_size_mb > 0)
            .then(|| r.validation.max_file_size_mb.saturating_mul(1_048_576)),
        invalid_units: r.validation.invalid_units,
        content_check: r.validation.content,
        warnings: cx.warnings,
    })
}

/// `file_specifications` and `meta.data_unit_meta_schema` of a collection in
/// the API's shape (a collection file, or what the backend returns).
pub fn api_collection(json: &Json) -> Result<(Vec<FileSpecConfig>, Option<Json>), String> {
    let specs = json
        .get("file_specifications")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .map(|s| {
                    let mut s = s.clone();
                    if let Some(obj) = s.as_object_mut() {
                        obj.retain(|k, _| {
                            matches!(
                                k.as_str(),
                                "name" | "file_type" | "extensions" | "is_required" | "is_primary"
                            )
                        });
                        for key in ["is_required", "is_primary", "extensions", "file_type"] {
                            if obj.get(key).is_some_and(Json::is_null) {
                                obj.remove(key);
                            }
                        }
                        obj.entry("file_type")
                            .or_insert_with(|| Json::String("data".into()));
                        obj.entry("extensions")
                            .or_insert_with(|| Json::Array(vec![]));
                    }
                    serde_json::from_value(s)
                })
                .collect::<Result<Vec<FileSpecConfig>, _>>()
        })
        .unwrap_or_else(|| Ok(vec![]))
        .map_err(|e| format!("bad file_specifications: {e}"))?;
    let schema = json
        .pointer("/meta/data_unit_meta_schema")
        .filter(|v| !v.is_null())
        .cloned();
    Ok((specs, schema))
}

/// A data collection as a synapse backend returned it.
#[derive(Debug, Clone)]
pub struct RemoteCollection {
    /// Where it came from, for messages (`data collection 42 on https://…`).
    pub origin: String,
    pub json: Json,
    /// The target's storage, when storage-relative paths need it.
    pub storage: Option<StorageInfo>,
}

/// A Synapse storage's provider and configuration (from its session).
#[derive(Clone)]
pub struct StorageInfo {
    pub id: u64,
    pub provider: String,
    pub configuration: Json,
}

impl std::fmt::Debug for StorageInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration holds credentials.
        f.debug_struct("StorageInfo")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .finish()
    }
}

/// A path that, on a synapse target, may be relative to the storage's root:
/// no scheme, not absolute, not explicitly relative to the recipe (`./`, `../`, `~`).
pub fn looks_storage_relative(written: &str) -> bool {
    !(written.contains("://")
        || written.starts_with('/')
        || written.starts_with("./")
        || written.starts_with("../")
        || written.starts_with('~')
        || written == "."
        || written == "..")
}

struct Cx<'a> {
    loaded: &'a LoadedRecipe,
    errors: Vec<RecipeError>,
    warnings: Vec<RecipeError>,
    /// A synapse target's storage, for storage-relative paths.
    storage: Option<&'a StorageInfo>,
}

impl Cx<'_> {
    fn span(&self, pointer: &str) -> Option<super::document::Span> {
        self.loaded.spans.value(pointer)
    }
    fn key_span(&self, pointer: &str) -> Option<super::document::Span> {
        self.loaded.spans.key(pointer)
    }
    fn err(&mut self, e: RecipeError) {
        self.errors.push(e);
    }
    fn warn(&mut self, e: RecipeError) {
        self.warnings.push(e);
    }

    fn collection(&mut self, block: Option<&CollectionConfig>) -> Option<Collection> {
        let Some(block) = block else {
            self.err(
                RecipeError::new(Code::CollectionMissing, "the local target needs a `collection` block", None)
                    .help("add `collection: {file_specifications: [...]}` or `collection: {file: collection.json}`"),
            );
            return None;
        };
        let (specs, schema_value, schema_pointer): (Vec<FileSpecConfig>, Option<Json>, String) =
            match (&block.file, &block.file_specifications) {
                (Some(_), Some(_)) => {
                    self.err(
                        RecipeError::new(
                            Code::CollectionFile,
                            "`collection` has both `file` and `file_specifications`",
                            self.key_span("/collection/file_specifications"),
                        )
                        .help("keep one: an inline collection, or `file:` naming a JSON file"),
                    );
                    return None;
                }
                (Some(file), None) => {
                    let path = self.loaded.dir.join(file);
                    let text = match std::fs::read_to_string(&path) {
                        Ok(t) => t,
                        Err(e) => {
                            self.err(RecipeError::new(
                                Code::CollectionFile,
                                format!("cannot read collection file {}: {e}", path.display()),
                                self.span("/collection/file"),
                            ));
                            return None;
                        }
                    };
                    let json: Json = match serde_json::from_str(&text) {
                        Ok(j) => j,
                        Err(e) => {
                            self.err(RecipeError::new(
                                Code::CollectionFile,
                                format!("collection file {file} is not valid JSON: {e}"),
                                self.span("/collection/file"),
                            ));
                            return None;
                        }
                    };
                    let (specs, schema) = match api_collection(&json) {
                        Ok(v) => v,
                        Err(e) => {
                            self.err(RecipeError::new(
                                Code::CollectionFile,
                                format!("collection file {file}: {e}"),
                                self.span("/collection/file"),
                            ));
                            return None;
                        }
                    };
                    (specs, schema, "/collection/file".to_owned())
                }
                (None, Some(specs)) => (
                    specs.clone(),
                    block.data_unit_meta_schema.clone().map(Json::Object),
                    "/collection/data_unit_meta_schema".to_owned(),
                ),
                (None, None) => {
                    self.err(
                        RecipeError::new(
                            Code::CollectionMissing,
                            "`collection` names no file specifications",
                            self.span("/collection"),
                        )
                        .help("add `file_specifications: [...]` or `file: collection.json`"),
                    );
                    return None;
                }
            };
        self.build_collection(&specs, schema_value, &schema_pointer)
    }

    /// The backend's collection; a `collection` block in the recipe pins it.
    fn remote_collection(
        &mut self,
        remote: &RemoteCollection,
        block: Option<&CollectionConfig>,
    ) -> Option<Collection> {
        let (specs, schema) = match api_collection(&remote.json) {
            Ok(v) => v,
            Err(e) => {
                self.err(RecipeError::new(
                    Code::CollectionFile,
                    format!("{}: {e}", remote.origin),
                    self.span("/target/data_collection"),
                ));
                return None;
            }
        };
        let theirs = self.build_collection(&specs, schema, "/target/data_collection")?;
        let Some(block) = block else {
            return Some(theirs);
        };
        let before = self.errors.len();
        let mine = self.collection(Some(block));
        if self.errors.len() > before {
            return None;
        }
        let mine = mine?;
        let mut diff = Vec::new();
        for s in &theirs.specs {
            if !mine.specs.contains(s) {
                diff.push(format!("  backend: {}", s.describe()));
            }
        }
        for s in &mine.specs {
            if !theirs.specs.contains(s) {
                diff.push(format!("  recipe:  {}", s.describe()));
            }
        }
        let schema_of = |c: &Collection| c.meta_schema.as_ref().map(|m| m.schema.clone());
        if let (Some(mine_schema), theirs_schema) = (schema_of(&mine), schema_of(&theirs))
            && theirs_schema
                .as_ref()
                .is_none_or(|t| !crate::json::json_equal(t, &mine_schema))
        {
            diff.push(format!(
                "  data_unit_meta_schema differs: backend has {}",
                theirs_schema.map_or("none".to_owned(), |t| t.to_string())
            ));
        }
        if !diff.is_empty() {
            self.err(
                RecipeError::new(
                    Code::CollectionMismatch,
                    format!(
                        "the recipe's `collection` block does not match {}:\n{}",
                        remote.origin,
                        diff.join("\n")
                    ),
                    self.key_span("/collection"),
                )
                .help("the backend's collection is the truth: update the block, or remove it to use the backend's as is"),
            );
            return None;
        }
        Some(theirs)
    }

    fn build_collection(
        &mut self,
        specs: &[FileSpecConfig],
        schema_value: Option<Json>,
        schema_pointer: &str,
    ) -> Option<Collection> {
        if specs.is_empty() {
            self.err(RecipeError::new(
                Code::CollectionMissing,
                "the collection has no file specifications",
                self.span("/collection"),
            ));
            return None;
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            if !seen.insert(s.name.clone()) {
                self.err(RecipeError::new(
                    Code::DuplicateSpec,
                    format!("file specification `{}` is defined twice", s.name),
                    self.span(&format!("/collection/file_specifications/{i}/name")),
                ));
            }
            out.push(FileSpec {
                name: s.name.clone(),
                file_type: s.file_type.clone(),
                extensions: s
                    .extensions
                    .iter()
                    .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                    .collect(),
                is_required: s.is_required,
                is_primary: s.is_primary,
            });
        }
        if out.iter().filter(|s| s.is_primary).count() > 1 {
            self.err(
                RecipeError::new(
                    Code::InvalidValue,
                    "more than one file specification is `is_primary`",
                    self.span("/collection"),
                )
                .help("mark exactly one spec as primary"),
            );
        }

        let meta_schema = schema_value.and_then(|schema| self.meta_schema(schema, schema_pointer));
        let fingerprint = serde_json::to_string(&serde_json::json!({
            "file_specifications": out,
            "data_unit_meta_schema": meta_schema.as_ref().map(|m| &m.schema),
        }))
        .unwrap_or_default();
        Some(Collection {
            specs: out,
            meta_schema,
            fingerprint,
        })
    }

    fn meta_schema(&mut self, schema: Json, pointer: &str) -> Option<MetaSchema> {
        // `{file: PATH}` names a JSON (or YAML) schema file.
        let (schema, pointer) = match schema.as_object() {
            Some(obj) if obj.len() == 1 && obj.get("file").is_some_and(Json::is_string) => {
                let file = obj["file"].as_str().unwrap_or_default();
                let path = self.loaded.dir.join(file);
                let p = format!("{pointer}/file");
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        self.err(RecipeError::new(
                            Code::BadMetaSchema,
                            format!("cannot read meta schema {}: {e}", path.display()),
                            self.span(&p),
                        ));
                        return None;
                    }
                };
                match serde_json::from_str::<Json>(&text) {
                    Ok(j) => (j, p),
                    Err(e) => {
                        self.err(RecipeError::new(
                            Code::BadMetaSchema,
                            format!("meta schema {file} is not valid JSON: {e}"),
                            self.span(&p),
                        ));
                        return None;
                    }
                }
            }
            _ => (schema, pointer.to_owned()),
        };
        let mut remote = Vec::new();
        find_remote_refs(&schema, &mut remote);
        if let Some(r) = remote.first() {
            self.err(
                RecipeError::new(Code::RemoteRef, format!("the meta schema references `{r}`, which synup does not fetch"), self.span(&pointer))
                    .help("inline the referenced schema under `$defs` and use a local `#/$defs/...` reference"),
            );
            return None;
        }
        if let Err(e) = jsonschema::meta::validate(&schema) {
            self.err(
                RecipeError::new(
                    Code::BadMetaSchema,
                    format!(
                        "the meta schema is not a valid JSON Schema: {e} (at {})",
                        e.instance_path().as_str()
                    ),
                    self.span(&pointer),
                )
                .help(
                    "fix the schema; it is read as Draft 2020-12 unless it names another `$schema`",
                ),
            );
            return None;
        }
        match jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
        {
            Ok(validator) => Some(MetaSchema { schema, validator }),
            Err(e) => {
                self.err(RecipeError::new(
                    Code::BadMetaSchema,
                    format!("the meta schema does not compile: {e}"),
                    self.span(&pointer),
                ));
                None
            }
        }
    }

    fn root(
        &mut self,
        written: &str,
        recursive: bool,
        checksum: ChecksumMode,
        pointer: String,
        connection: &std::collections::BTreeMap<String, String>,
    ) -> Option<Root> {
        if written.contains("://") {
            return match crate::source::remote::open(written, connection) {
                Ok(remote) => Some(Root {
                    written: written.to_owned(),
                    path: PathBuf::new(),
                    recursive,
                    checksum,
                    pointer,
                    source: std::sync::Arc::new(remote),
                }),
                Err(message) => {
                    self.err(
                        RecipeError::new(Code::UnsupportedSource, message, self.span(&pointer))
                            .help("sources are local folders, s3://bucket/prefix, gs://bucket/prefix, azblob://container/prefix or sftp://[user@]host[:port]/path"),
                    );
                    None
                }
            };
        }
        // On a synapse target, a relative path that is not here locally is
        // relative to the storage's root (as the SDK resolves it).
        if let Some(storage) = self.storage
            && looks_storage_relative(written)
            && !self.loaded.dir.join(written).exists()
        {
            use crate::source::remote::{StorageRoot, storage_root};
            return match storage_root(&storage.provider, &storage.configuration, written) {
                Ok(StorageRoot::Remote(remote)) => Some(Root {
                    written: written.to_owned(),
                    path: PathBuf::new(),
                    recursive,
                    checksum,
                    pointer,
                    source: std::sync::Arc::new(remote),
                }),
                Ok(StorageRoot::Local(path)) => Some(Root {
                    written: written.to_owned(),
                    source: std::sync::Arc::new(crate::source::LocalSource::new(path.clone())),
                    path,
                    recursive,
                    checksum,
                    pointer,
                }),
                Err(message) => {
                    self.err(
                        RecipeError::new(
                            Code::UnsupportedSource,
                            format!("`{written}` is relative to storage {} ({}): {message}", storage.id, storage.provider),
                            self.span(&pointer),
                        )
                        .help("use a local path (`./data`), a URL (`s3://…`), or another `target.storage`"),
                    );
                    None
                }
            };
        }
        let path = self.loaded.dir.join(expand_home(written));
        Some(Root {
            written: written.to_owned(),
            source: std::sync::Arc::new(crate::source::LocalSource::new(path.clone())),
            path,
            recursive,
            checksum,
            pointer,
        })
    }

    fn source_mode(&mut self, specs: &[FileSpec]) -> Option<SourceMode> {
        let r = &self.loaded.recipe;
        match (&r.source, &r.assets) {
            (Some(_), Some(_)) => {
                self.err(
                    RecipeError::new(Code::SourceAndAssets, "`source` and `assets` are both set", self.key_span("/assets"))
                        .label("second source definition")
                        .help("use `source` for one root (single-path) or `assets` for one root per spec (multi-path), not both"),
                );
                None
            }
            (None, None) => {
                self.err(
                    RecipeError::new(Code::NoSource, "the recipe has no `source` or `assets`", None)
                        .help("add `source: {path: ./data}`, or `assets: {SPEC: {path: ...}}` for multi-path"),
                );
                None
            }
            (Some(source), None) => {
                let root = self.root(
                    &source.path,
                    source.recursive,
                    source.checksum,
                    "/source/path".to_owned(),
                    &source.connection,
                );
                let mut rules = Vec::new();
                for (i, rule) in r.file_rules.iter().enumerate() {
                    let base = format!("/file_rules/{i}");
                    let spec_name = match (&rule.spec, &rule.spec_name) {
                        (Some(s), None) | (None, Some(s)) => s.clone(),
                        (Some(_), Some(_)) => {
                            self.err(
                                RecipeError::new(
                                    Code::RuleSpec,
                                    "a file rule sets both `spec` and `spec_name`",
                                    self.span(&base),
                                )
                                .help("`spec_name` is an alias of `spec`: keep one"),
                            );
                            continue;
                        }
                        (None, None) => {
                            self.err(
                                RecipeError::new(
                                    Code::RuleSpec,
                                    "a file rule needs `spec`",
                                    self.span(&base),
                                )
                                .help("add `spec: <file specification name>`"),
                            );
                            continue;
                        }
                    };
                    let spec_ptr = if rule.spec.is_some() {
                        format!("{base}/spec")
                    } else {
                        format!("{base}/spec_name")
                    };
                    let spec = self.spec_ref(specs, &spec_name, &spec_ptr);
                    let glob = GlobBuilder::new(&rule.pattern)
                        .literal_separator(true)
                        .case_insensitive(rule.case_insensitive)
                        .build();
                    match (glob, spec) {
                        (Ok(g), Some(spec)) => rules.push(FileRuleCompiled {
                            pattern: rule.pattern.clone(),
                            matcher: g.compile_matcher(),
                            spec,
                        }),
                        (Err(e), _) => {
                            self.err(glob_error(&e, self.span(&format!("{base}/pattern"))))
                        }
                        _ => {}
                    }
                }
                Some(SourceMode::Single { root: root?, rules })
            }
            (None, Some(assets)) => {
                if !r.file_rules.is_empty() {
                    self.err(
                        RecipeError::new(Code::RulesInMultiPath, "`file_rules` apply to single-path mode only", self.key_span("/file_rules"))
                            .help("in multi-path mode each asset is one spec; narrow it with the asset's `include` globs"),
                    );
                }
                let mut out = Vec::new();
                for (name, asset) in assets {
                    let base = format!("/assets/{}", pointer_segment(name));
                    let spec = self.spec_ref_key(specs, name, &base);
                    let include = if asset.include.is_empty() {
                        None
                    } else {
                        self.globset(&format!("{base}/include"), &asset.include)
                    };
                    let root = self.root(
                        &asset.path,
                        asset.recursive,
                        asset.checksum,
                        format!("{base}/path"),
                        &asset.connection,
                    );
                    if let (Some(spec), Some(root)) = (spec, root) {
                        out.push(Asset {
                            spec,
                            root,
                            include,
                        });
                    }
                }
                // Collection order, so "the first asset" is well defined.
                out.sort_by_key(|a| a.spec);
                Some(SourceMode::Multi { assets: out })
            }
        }
    }

    fn spec_ref(&mut self, specs: &[FileSpec], name: &str, pointer: &str) -> Option<usize> {
        self.spec_lookup(specs, name, self.span(pointer))
    }
    fn spec_ref_key(&mut self, specs: &[FileSpec], name: &str, pointer: &str) -> Option<usize> {
        self.spec_lookup(specs, name, self.key_span(pointer))
    }
    fn spec_lookup(
        &mut self,
        specs: &[FileSpec],
        name: &str,
        span: Option<super::document::Span>,
    ) -> Option<usize> {
        if specs.is_empty() {
            return None; // the collection error already says why
        }
        if let Some(i) = specs.iter().position(|s| s.name == name) {
            return Some(i);
        }
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let help = match did_you_mean(name, &names) {
            Some(s) => format!("did you mean `{s}`? specs: {}", names.join(", ")),
            None => format!("the collection's specs are: {}", names.join(", ")),
        };
        self.err(
            RecipeError::new(
                Code::UnknownSpec,
                format!("`{name}` is not a file specification of the collection"),
                span,
            )
            .label("unknown spec")
            .help(help),
        );
        None
    }

    fn globset(&mut self, pointer: &str, globs: &[String]) -> Option<GlobSet> {
        let mut builder = GlobSetBuilder::new();
        let mut ok = true;
        for (i, g) in globs.iter().enumerate() {
            match GlobBuilder::new(g).literal_separator(true).build() {
                Ok(glob) => {
                    builder.add(glob);
                }
                Err(e) => {
                    ok = false;
                    self.err(glob_error(&e, self.span(&format!("{pointer}/{i}"))));
                }
            }
        }
        if !ok {
            return None;
        }
        builder.build().ok().or_else(|| Some(GlobSet::empty()))
    }

    fn metadata(
        &mut self,
        i: usize,
        m: &MetadataSource,
        specs: &[FileSpec],
    ) -> Option<MetadataSpec> {
        let base = format!("/metadata/{i}");
        let kinds: Vec<&str> = [
            m.excel.as_ref().map(|_| "excel"),
            m.csv.as_ref().map(|_| "csv"),
            m.filename.as_ref().map(|_| "filename"),
            m.sidecar.as_ref().map(|_| "sidecar"),
            m.static_fields.as_ref().map(|_| "static"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let kind = match kinds.as_slice() {
            [one] => *one,
            [] => {
                self.err(RecipeError::new(
                    Code::MetadataKind,
                    "a metadata entry needs one of `excel`, `csv`, `filename`, `sidecar`, `static`",
                    self.span(&base),
                ));
                return None;
            }
            many => {
                self.err(
                    RecipeError::new(
                        Code::MetadataKind,
                        format!(
                            "a metadata entry has {} kinds ({}); each entry is one source",
                            many.len(),
                            many.join(", ")
                        ),
                        self.span(&base),
                    )
                    .help("split it into one list entry per source"),
                );
                return None;
            }
        };
        let is_sheet = matches!(kind, "excel" | "csv");
        let bad_option = |cx: &mut Self, key: &str, present: bool, allowed: &str| {
            if present {
                cx.err(
                    RecipeError::new(
                        Code::MetadataOption,
                        format!("`{key}` does not apply to a {kind} source"),
                        cx.key_span(&format!("{base}/{key}")),
                    )
                    .help(format!("`{key}` is for {allowed} sources")),
                );
            }
        };
        bad_option(self, "sheet", m.sheet.is_some() && kind != "excel", "excel");
        bad_option(
            self,
            "header_row",
            m.header_row.is_some() && !is_sheet,
            "excel and csv",
        );
        bad_option(
            self,
            "key_column",
            m.key_column.is_some() && !is_sheet,
            "excel and csv",
        );
        bad_option(
            self,
            "columns",
            !m.columns.is_empty() && !is_sheet,
            "excel and csv",
        );
        bad_option(
            self,
            "delimiter",
            m.delimiter.is_some() && kind != "csv",
            "csv",
        );
        bad_option(
            self,
            "encoding",
            m.encoding.is_some() && kind != "csv",
            "csv",
        );
        let delimiter = m.delimiter.as_deref().and_then(|d| {
            let byte = match d {
                "tab" | "\\t" => Some(b'\t'),
                _ if d.len() == 1 && d.is_ascii() && !d.contains(['"', '\n', '\r']) => {
                    Some(d.as_bytes()[0])
                }
                _ => None,
            };
            if byte.is_none() {
                self.err(
                    RecipeError::new(
                        Code::MetadataOption,
                        format!("`{d}` is not a CSV delimiter"),
                        self.span(&format!("{base}/delimiter")),
                    )
                    .help("give one ASCII character such as \",\", \";\" or \"|\", or `tab`; leave it out to sniff it from the header line"),
                );
            }
            byte
        });
        let encoding = m.encoding.as_deref().and_then(|label| {
            // WHATWG labels, plus the spellings people write (`latin-1`, `utf_8`).
            let label = label.trim();
            let found = [
                label.to_owned(),
                label.replace('_', "-"),
                label.replace(['-', '_'], ""),
            ]
            .iter()
            .find_map(|l| encoding_rs::Encoding::for_label(l.as_bytes()));
            if found.is_none() {
                self.err(
                    RecipeError::new(
                        Code::MetadataOption,
                        format!("`{label}` is not a text encoding synup knows"),
                        self.span(&format!("{base}/encoding")),
                    )
                    .help("use a WHATWG encoding label: utf-8, latin-1, windows-1252, iso-8859-15, shift_jis, gbk, euc-kr, …"),
                );
            }
            found
        });
        let required = m.required.unwrap_or(false);
        let kind = match kind {
            "excel" | "csv" => {
                let written = m
                    .excel
                    .clone()
                    .or_else(|| m.csv.clone())
                    .unwrap_or_default();
                let pointer = format!("{base}/{kind}");
                if kind == "excel" {
                    let ext = Path::new(&written)
                        .extension()
                        .and_then(|e| e.to_str())
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    if !matches!(ext.as_str(), "xlsx" | "xlsm" | "xls" | "ods") {
                        self.err(
                            RecipeError::new(Code::MetadataOption, format!("`{written}` is not a spreadsheet synup reads"), self.span(&pointer))
                                .help("excel sources are .xlsx, .xlsm, .xls or .ods; use `csv:` for CSV files"),
                        );
                    }
                }
                MetadataKind::Sheet {
                    file: MetadataFileRef { written, pointer },
                    sheet: m.sheet.clone(),
                    is_csv: kind == "csv",
                    header_row: m.header_row.unwrap_or(1).max(1),
                    key_column: m.key_column.clone(),
                    columns: m.columns.clone(),
                    delimiter,
                    encoding,
                }
            }
            "filename" => {
                let f = m.filename.as_ref()?;
                let pointer = format!("{base}/filename/regex");
                let regex = match Regex::new(&f.regex) {
                    Ok(re) => re,
                    Err(e) => {
                        self.err(RecipeError::new(
                            Code::BadRegex,
                            format!("filename regex does not compile: {}", regex_message(&e)),
                            self.span(&pointer),
                        ));
                        return None;
                    }
                };
                let names: BTreeSet<&str> = regex.capture_names().flatten().collect();
                if names.is_empty() {
                    self.err(
                        RecipeError::new(
                            Code::RegexNoCapture,
                            "the filename regex has no named capture, so it would add no field",
                            self.span(&pointer),
                        )
                        .help(
                            "name the parts to extract, e.g. (?P<patient_id>P\\d+)_(?P<age>\\d+)",
                        ),
                    );
                }
                for t in f.types.keys() {
                    if !names.contains(t.as_str()) {
                        self.err(RecipeError::new(
                            Code::MetadataOption,
                            format!(
                                "`types` names `{t}`, which is not a named capture of the regex"
                            ),
                            self.key_span(&format!("{base}/filename/types/{}", pointer_segment(t))),
                        ));
                    }
                }
                let on = match f.on.as_deref() {
                    None | Some("primary") => None,
                    Some(spec) => {
                        Some(self.spec_ref(specs, spec, &format!("{base}/filename/on"))?)
                    }
                };
                MetadataKind::Filename {
                    regex,
                    types: f.types.clone(),
                    on,
                }
            }
            "sidecar" => {
                let template = m.sidecar.clone().unwrap_or_default();
                let pointer = format!("{base}/sidecar");
                let parsed = match KeyTemplate::parse(&template) {
                    Ok(t) => {
                        for f in t.fields() {
                            if !matches!(f, "unit_dir" | "group_key" | "key" | "stem") {
                                self.err(
                                    RecipeError::new(
                                        Code::BadTemplate,
                                        format!("`{{{f}}}` is not a sidecar placeholder"),
                                        self.span(&pointer),
                                    )
                                    .help("placeholders: {unit_dir}, {group_key}, {key}, {stem}"),
                                );
                            }
                        }
                        Some(t)
                    }
                    Err(msg) => {
                        self.err(RecipeError::new(
                            Code::BadTemplate,
                            format!("sidecar: {msg}"),
                            self.span(&pointer),
                        ));
                        None
                    }
                };
                let ext = Path::new(&template)
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if !matches!(ext.as_str(), "json" | "yaml" | "yml") {
                    self.err(
                        RecipeError::new(
                            Code::MetadataOption,
                            "sidecar files are JSON or YAML",
                            self.span(&pointer),
                        )
                        .help("name a .json, .yaml or .yml file"),
                    );
                }
                MetadataKind::Sidecar {
                    template: parsed?,
                    pointer,
                }
            }
            _ => MetadataKind::Static {
                fields: m.static_fields.clone().unwrap_or_default(),
                pointer: format!("{base}/static"),
            },
        };
        Some(MetadataSpec {
            index: i,
            kind,
            required,
        })
    }
}

fn expand_home(path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    PathBuf::from(path)
}

fn regex_message(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s.lines().last().unwrap_or(s).trim().to_owned(),
        other => other.to_string(),
    }
}

fn glob_error(e: &globset::Error, span: Option<super::document::Span>) -> RecipeError {
    RecipeError::new(
        Code::BadGlob,
        format!(
            "glob `{}` does not compile: {}",
            e.glob().unwrap_or("?"),
            e.kind()
        ),
        span,
    )
    .help("globs use `*`, `?`, `[...]`, `{a,b}` and `**/`; `*` does not cross `/`")
}

fn find_remote_refs(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::Object(map) => {
            for (k, v) in map {
                if k == "$ref" || k == "$dynamicRef" {
                    if let Some(r) = v.as_str()
                        && !r.starts_with('#')
                    {
                        out.push(r.to_owned());
                    }
                } else {
                    find_remote_refs(v, out);
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|i| find_remote_refs(i, out)),
        _ => {}
    }
}
