//! What a recipe file says: the raw, typed model (version 1).
//!
//! These types are the single source of the recipe's JSON Schema
//! (`synup schema`, `schemas/recipe.schema.json`), which is also what the loader
//! validates a recipe against to collect every structural error in one pass.
//! Cross-field rules (source *or* assets, one metadata kind per entry, ...) are
//! checked later, in `resolve`, where spans are at hand.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// An upload recipe: where files are, how they become data units, where they go.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "synup recipe",
    description = "A synup upload recipe (version 1)."
)]
pub struct Recipe {
    /// Recipe format version; must be 1.
    pub version: u32,
    /// Name of the upload; `[A-Za-z0-9._-]+`.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub target: TargetConfig,
    /// The collection's file specifications and meta schema (required for `local`).
    #[serde(default)]
    pub collection: Option<CollectionConfig>,
    /// Single-path mode: one root for every spec.
    #[serde(default)]
    pub source: Option<SourceConfig>,
    /// Multi-path mode: one root per spec name.
    #[serde(default)]
    pub assets: Option<BTreeMap<String, AssetConfig>>,
    /// Globs of files to drop, added to the built-in junk list.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Keep what the built-in junk list drops (`.DS_Store`, AppleDouble `._*`
    /// files, `Thumbs.db`, `.Trashes/`, …). An asset's `include` glob also
    /// brings back the junk it names.
    #[serde(default)]
    pub include_junk: bool,
    /// Single-path only: the first rule whose pattern matches a file decides its spec.
    #[serde(default)]
    pub file_rules: Vec<FileRule>,
    /// Regex searched in each relative path; the `group_key` capture groups files.
    #[serde(default)]
    pub group_key_regex: Option<String>,
    /// Template for the unit key: `{group_key}` and any named capture.
    #[serde(default)]
    pub dataset_key_template: Option<String>,
    /// Meta field that receives the unit key (default `name`); null for none.
    #[serde(default = "default_key_field", deserialize_with = "nullable")]
    #[schemars(default = "default_key_field")]
    pub key_field: Option<String>,
    /// Metadata sources, applied in order; later ones override earlier fields.
    #[serde(default)]
    pub metadata: Vec<MetadataSource>,
    #[serde(default)]
    pub validation: ValidationConfig,
    #[serde(default)]
    pub upload: UploadConfig,
}

fn default_key_field() -> Option<String> {
    Some("name".to_owned())
}

/// An explicit `null` means "none", unlike an absent key.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Local,
    Synapse,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Synapse => "synapse",
        }
    }
}

/// A data collection id (synapse) or name/id (local).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum CollectionRef {
    Id(u64),
    Name(String),
}

impl std::fmt::Display for CollectionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CollectionRef::Id(id) => write!(f, "{id}"),
            CollectionRef::Name(name) => f.write_str(name),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    #[serde(default)]
    pub backend: Backend,
    /// local: catalog folder (default `.synup/local`).
    #[serde(default)]
    pub path: Option<String>,
    /// synapse: API host (else SYNAPSE_HOST, else ~/.synapse/config.json).
    #[serde(default)]
    pub host: Option<String>,
    /// synapse: access token; use `${SYNAPSE_ACCESS_TOKEN}` rather than a literal.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub data_collection: Option<CollectionRef>,
    #[serde(default)]
    pub storage: Option<u64>,
    #[serde(default)]
    pub project: Option<u64>,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl TargetConfig {
    /// The local catalog folder as written, or the default `.synup/local`.
    pub fn path_or_default(&self) -> &str {
        self.path.as_deref().unwrap_or(".synup/local")
    }
}

/// Inline collection (`file_specifications`, `data_unit_meta_schema`) or `{file: PATH}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionConfig {
    /// A JSON file in the API's data-collection shape.
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub file_specifications: Option<Vec<FileSpecConfig>>,
    /// An inline JSON Schema object, or `{file: PATH}`.
    #[serde(default)]
    pub data_unit_meta_schema: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpecConfig {
    pub name: String,
    pub file_type: String,
    pub extensions: Vec<String>,
    #[serde(default)]
    pub is_required: bool,
    #[serde(default)]
    pub is_primary: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumMode {
    /// Hash every file while planning (default).
    #[default]
    Plan,
    /// Defer hashing to apply; identity is URL + size + ETag in the plan.
    Apply,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Local path, s3://, gs://, azblob://, sftp:// or storage-relative.
    pub path: String,
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub recursive: bool,
    #[serde(default)]
    pub checksum: ChecksumMode,
    /// Remote only: opendal configuration keys for the service.
    #[serde(default)]
    pub connection: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetConfig {
    pub path: String,
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub recursive: bool,
    /// Globs narrowing which files under the root belong to this spec.
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub checksum: ChecksumMode,
    #[serde(default)]
    pub connection: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRule {
    /// Glob matched against the whole relative path.
    pub pattern: String,
    #[serde(default)]
    pub spec: Option<String>,
    /// Alias of `spec`, as the SDK's upload plugin spells it.
    #[serde(default)]
    pub spec_name: Option<String>,
    #[serde(default)]
    pub case_insensitive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Integer,
    Number,
    Boolean,
    Date,
    Datetime,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Integer => "integer",
            ColumnType::Number => "number",
            ColumnType::Boolean => "boolean",
            ColumnType::Date => "date",
            ColumnType::Datetime => "datetime",
        }
    }
}

/// One metadata source: exactly one of `excel`, `csv`, `filename`, `sidecar`, `static`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataSource {
    /// A spreadsheet: .xlsx .xlsm .xls .ods.
    #[serde(default)]
    pub excel: Option<String>,
    #[serde(default)]
    pub csv: Option<String>,
    #[serde(default)]
    pub filename: Option<FilenameSource>,
    /// Per-unit JSON or YAML file, e.g. `{unit_dir}/meta.json`.
    #[serde(default)]
    pub sidecar: Option<String>,
    /// Fixed fields for every unit.
    #[serde(default, rename = "static")]
    pub static_fields: Option<serde_json::Map<String, serde_json::Value>>,
    /// excel: sheet name (default: the first sheet).
    #[serde(default)]
    pub sheet: Option<String>,
    /// excel/csv: 1-based header row (default 1).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub header_row: Option<u32>,
    /// excel/csv: column holding the unit key (default: the first column).
    #[serde(default)]
    pub key_column: Option<String>,
    /// excel/csv: types of named columns; does not limit which columns are imported.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnType>,
    /// csv: the field separator, one character (`,` `;` `|` or a tab, written
    /// `"\t"` or `tab`); default: sniffed from the header line.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// csv: the text encoding, any WHATWG label (`utf-8`, `latin-1`,
    /// `windows-1252`, `shift_jis`, …); default utf-8 (a BOM is allowed).
    #[serde(default)]
    pub encoding: Option<String>,
    /// A unit without an entry in this source is invalid.
    #[serde(default)]
    pub required: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilenameSource {
    /// Regex searched in the relative path; named captures become fields.
    pub regex: String,
    #[serde(default)]
    pub types: BTreeMap<String, ColumnType>,
    /// `primary` (default) or a spec name.
    #[serde(default)]
    pub on: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvalidUnits {
    /// apply refuses while any unit is invalid.
    #[default]
    Fail,
    /// apply uploads the valid units and reports the rest.
    Skip,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// MiB; 0 disables the limit.
    #[serde(default = "default_max_mb")]
    #[schemars(default = "default_max_mb")]
    pub max_file_size_mb: u64,
    #[serde(default)]
    pub invalid_units: InvalidUnits,
    /// Content screening as the official SDK's upload does it (SPEC 2.3):
    /// `warn` makes plan warnings, `fail` makes the unit invalid, `off` reads nothing.
    #[serde(default)]
    pub content: ContentCheck,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentCheck {
    /// A plan warning naming the file and the rule.
    #[default]
    Warn,
    /// A unit problem: the unit is invalid.
    Fail,
    /// No file is read for screening.
    Off,
}

impl JsonSchema for ContentCheck {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ContentCheck".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`warn` (plan warnings), `fail` (invalid units) or `off` (nothing read); a bare YAML `off` (read as false) means `off`.",
            "enum": ["warn", "fail", "off", false]
        })
    }
}

/// `warn`, `fail` or `off`; YAML 1.1 reads a bare `off` as `false`, which is
/// taken as `off` too.
impl<'de> Deserialize<'de> for ContentCheck {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ContentCheck;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`warn`, `fail` or `off`")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ContentCheck, E> {
                match v {
                    false => Ok(ContentCheck::Off),
                    true => Err(E::invalid_value(serde::de::Unexpected::Bool(v), &self)),
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ContentCheck, E> {
                match v {
                    "warn" => Ok(ContentCheck::Warn),
                    "fail" => Ok(ContentCheck::Fail),
                    "off" => Ok(ContentCheck::Off),
                    _ => Err(E::unknown_variant(v, &["warn", "fail", "off"])),
                }
            }
        }
        d.deserialize_any(V)
    }
}

fn default_max_mb() -> u64 {
    50
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            max_file_size_mb: default_max_mb(),
            invalid_units: InvalidUnits::Fail,
            content: ContentCheck::Warn,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    /// Concurrent transfers.
    #[serde(default = "default_workers")]
    #[schemars(default = "default_workers", range(min = 1, max = 1024))]
    pub workers: u32,
    /// Units per registration request.
    #[serde(default = "default_batch")]
    #[schemars(default = "default_batch", range(min = 1, max = 1000))]
    pub batch_size: u32,
    /// Retries per request.
    #[serde(default = "default_retries")]
    #[schemars(default = "default_retries", range(max = 100))]
    pub retries: u32,
}

fn default_workers() -> u32 {
    32
}
fn default_batch() -> u32 {
    100
}
fn default_retries() -> u32 {
    5
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            workers: default_workers(),
            batch_size: default_batch(),
            retries: default_retries(),
        }
    }
}

/// The recipe JSON Schema, as committed in `schemas/recipe.schema.json`.
pub fn recipe_json_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    let schema = generator.into_root_schema_for::<Recipe>();
    let mut value = serde_json::to_value(schema).unwrap_or(serde_json::Value::Null);
    collapse_optional_refs(&mut value);
    value
}

/// `Option<Struct>` becomes `anyOf: [{$ref}, {type: null}]`, and a validator
/// reports a typo inside such a block only as "not valid under any schema".
/// An optional key is simply omitted, so the schema names the struct directly
/// and every problem inside it is reported where it is.
fn collapse_optional_refs(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let replacement = map
                .get("anyOf")
                .and_then(Value::as_array)
                .and_then(|branches| {
                    let is_null = |b: &Value| b.get("type") == Some(&Value::from("null"));
                    match branches.as_slice() {
                        [a, b] if is_null(b) && a.get("$ref").is_some() => Some(a.clone()),
                        [a, b] if is_null(a) && b.get("$ref").is_some() => Some(b.clone()),
                        _ => None,
                    }
                });
            if let Some(Value::Object(branch)) = replacement {
                map.remove("anyOf");
                for (k, val) in branch {
                    map.insert(k, val);
                }
            }
            map.values_mut().for_each(collapse_optional_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(collapse_optional_refs),
        _ => {}
    }
}
