//! From what the recipe says to what the planner uses: compiled globs and regexes,
//! the collection's specs and meta-schema validator, roots resolved against the
//! recipe's folder. Every semantic problem is collected with its span.
//!
//! Reads only the recipe's own collection and schema files; never the source tree,
//! metadata inputs or the network (that is `synup validate`'s contract).

mod collection;
mod metadata;
mod sources;

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
    pub synapse_collection: Option<crate::target::CollectionId>,
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
            (Backend::Synapse, Some(super::model::CollectionRef::Id(id))) => {
                Some(crate::target::CollectionId(*id))
            }
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
    pub id: crate::target::StorageId,
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
    fn span(&self, pointer: &str) -> Option<crate::recipe::document::Span> {
        self.loaded.spans.value(pointer)
    }
    fn key_span(&self, pointer: &str) -> Option<crate::recipe::document::Span> {
        self.loaded.spans.key(pointer)
    }
    fn err(&mut self, e: RecipeError) {
        self.errors.push(e);
    }
    fn warn(&mut self, e: RecipeError) {
        self.warnings.push(e);
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

fn glob_error(e: &globset::Error, span: Option<crate::recipe::document::Span>) -> RecipeError {
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

/// Semantic errors: each found with its code and the place in the recipe it
/// is about, all of them in one pass.
#[cfg(test)]
mod tests {
    use super::*;

    const COLLECTION: &str = r#"{"name": "ct", "file_specifications": [
        {"name": "image", "file_type": "image", "extensions": [".png"], "is_required": true, "is_primary": true},
        {"name": "label", "file_type": "document", "extensions": [".json"], "is_required": false}]}"#;

    /// `(code, line:column)` of every error resolving `body` (after a fixed
    /// head of 4 lines) finds.
    fn errors_of(body: &str) -> Vec<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("collection.json"), COLLECTION).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let path = dir.path().join("r.yaml");
        std::fs::write(
            &path,
            format!("version: 1\nname: t\ntarget: {{backend: local}}\ncollection: {{file: collection.json}}\n{body}"),
        )
        .unwrap();
        let loaded = crate::recipe::load(path.to_str().unwrap()).unwrap();
        let errors = match resolve(&loaded) {
            Ok(_) => return Vec::new(),
            Err(errors) => loaded.errors(errors),
        };
        let prefix = format!("{}:", path.display());
        errors
            .errors
            .iter()
            .map(|e| {
                let at = errors.location(e);
                (e.code_str(), at.trim_start_matches(&prefix).to_owned())
            })
            .collect()
    }

    fn code(c: &str) -> String {
        format!("synup::recipe::{c}")
    }

    #[test]
    fn a_good_recipe_resolves() {
        assert_eq!(errors_of("source: {path: data}\n"), []);
    }

    #[test]
    fn a_rule_naming_no_spec_and_a_bad_regex_are_both_reported() {
        let found = errors_of(
            "source: {path: data}\nfile_rules:\n  - {pattern: \"**/*.png\", spec: imgae}\ngroup_key_regex: \"(unclosed\"\n",
        );
        let codes: Vec<&str> = found.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            codes,
            [code("unknown_spec").as_str(), code("bad_regex").as_str()],
            "{found:?}"
        );
        // At the spec's name in the rule, and at the regex's text.
        assert_eq!(found[0].1, "7:33");
        assert_eq!(found[1].1, "8:18");
    }

    #[test]
    fn a_glob_that_does_not_compile_points_at_its_value() {
        let found = errors_of("source: {path: data}\nexclude: [\"a[\"]\n");
        assert_eq!(found, [(code("bad_glob"), "6:11".to_owned())]);
    }

    #[test]
    fn source_and_assets_together_are_refused_at_the_second() {
        let found = errors_of("source: {path: data}\nassets:\n  image: {path: data}\n");
        assert_eq!(
            found.first().map(|(c, _)| c.clone()),
            Some(code("source_and_assets")),
            "{found:?}"
        );
    }
}
