//! Reading a recipe file: text → spanned tree → interpolated → checked → [`Recipe`].
//!
//! Structural problems (unknown keys, wrong types, missing keys) are found by
//! validating the tree against the recipe's own JSON Schema, so all of them are
//! reported at once, each at its span, instead of serde's first-error-wins.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::document::{self, Node, Span, Value};
use super::error::{Code, RecipeError, RecipeErrors};
use super::interpolate::{self, InterpolationError, UsedVar};
use super::model::{Recipe, recipe_json_schema};

/// Where each value and key of a recipe is, by JSON pointer.
#[derive(Debug, Default, Clone)]
pub struct SpanIndex {
    values: HashMap<String, Span>,
    keys: HashMap<String, Span>,
}

impl SpanIndex {
    /// The span of the value at `pointer`, else of its nearest ancestor.
    pub fn value(&self, pointer: &str) -> Option<Span> {
        let mut p = pointer;
        loop {
            if let Some(s) = self.values.get(p) {
                return Some(*s);
            }
            let cut = p.rfind('/')?;
            p = &p[..cut];
        }
    }
    /// The span of the key that holds the value at `pointer`.
    pub fn key(&self, pointer: &str) -> Option<Span> {
        self.keys
            .get(pointer)
            .copied()
            .or_else(|| self.value(pointer))
    }
}

/// Escapes one JSON pointer segment.
pub fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// A recipe file as read, with everything later phases need to point back into it.
#[derive(Debug, Clone)]
pub struct LoadedRecipe {
    pub recipe: Recipe,
    /// The path as given on the command line.
    pub path: String,
    /// The folder holding the recipe: every relative path in it is relative to this.
    pub dir: PathBuf,
    pub text: String,
    pub sha256: String,
    pub spans: SpanIndex,
    /// Variables the recipe used (secret values withheld).
    pub vars: BTreeMap<String, UsedVar>,
    /// Pointers of values that are secrets.
    pub secrets: BTreeSet<String>,
}

impl LoadedRecipe {
    /// `.synup/` beside the recipe: checksum caches and apply journals.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(".synup")
    }

    pub fn errors(&self, errors: Vec<RecipeError>) -> RecipeErrors {
        RecipeErrors::new(&self.path, self.text.clone(), errors)
    }
}

/// Reads and checks the recipe at `path` with the process environment.
pub fn load(path: &str) -> Result<LoadedRecipe, RecipeErrors> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

pub fn load_with_env(
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedRecipe, RecipeErrors> {
    let file = Path::new(path);
    let text = match std::fs::read(file) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                return Err(RecipeErrors::new(
                    path,
                    String::new(),
                    vec![RecipeError::new(
                        Code::Io,
                        format!("{path} is not valid UTF-8"),
                        None,
                    )],
                ));
            }
        },
        Err(e) => {
            return Err(RecipeErrors::new(
                path,
                String::new(),
                vec![
                    RecipeError::new(Code::Io, format!("cannot read recipe {path}: {e}"), None)
                        .help("check the path; recipes are YAML (.yaml, .yml) or TOML (.toml)"),
                ],
            ));
        }
    };
    let dir = absolute_dir(file);
    parse_text(path, dir, text, env)
}

fn absolute_dir(file: &Path) -> PathBuf {
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// Parses recipe text; `path` decides the syntax (`.toml` is TOML, anything else YAML).
pub fn parse_text(
    path: &str,
    dir: PathBuf,
    text: String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedRecipe, RecipeErrors> {
    let fail = |errors: Vec<RecipeError>| RecipeErrors::new(path, text.clone(), errors);
    let is_toml = Path::new(path)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let parsed = if is_toml {
        document::parse_toml(&text)
    } else {
        document::parse_yaml(&text)
    };
    let mut root = match parsed {
        Ok(node) => node,
        Err(e) => {
            let syntax = if is_toml { "TOML" } else { "YAML" };
            // The error shows lines around it; a recipe that does not parse
            // cannot say which values are secrets, so values under keys that
            // name one are masked before anything is printed.
            register_secret_looking_values(&text);
            let error = match (&e.duplicate_key, &e.budget) {
                (_, Some(what)) => RecipeError::new(
                    Code::TooLarge,
                    format!("the recipe exceeds the YAML parser's safety budget for {}", what.to_lowercase()),
                    Some(e.span),
                )
                .label("the budget runs out here")
                .help("a recipe holds at most 250,000 values, lists and mappings; keep tables out of it: per-unit fields belong in a CSV or Excel sheet (`metadata: - csv: …`), long rule lists in fewer globs"),
                (Some(key), _) => RecipeError::new(
                    Code::DuplicateKey,
                    format!("`{key}` appears twice in the same mapping"),
                    Some(e.span),
                )
                .label("repeated here")
                .help(format!(
                    "keep one `{key}`: a {syntax} mapping cannot hold a key twice, and neither value would win"
                )),
                (None, None) => RecipeError::new(
                    Code::Syntax,
                    format!("invalid {syntax}: {}", e.message),
                    Some(e.span),
                )
                .help(format!("fix the {syntax} syntax at this position")),
            };
            return Err(fail(vec![error]));
        }
    };
    match root.value {
        Value::Null => {
            return Err(fail(vec![
                RecipeError::new(Code::Empty, "the recipe is empty", None)
                    .help("start from `synup init`, or see pipelines/ for examples; a recipe needs at least `version: 1`, `name` and a `source`"),
            ]));
        }
        Value::Map(_) => {}
        ref other => {
            return Err(fail(vec![
                RecipeError::new(
                    Code::WrongType,
                    format!(
                        "a recipe must be a mapping of keys, found a {}",
                        other.type_name()
                    ),
                    Some(root.span),
                )
                .help("write `key: value` pairs, starting with `version: 1`"),
            ]));
        }
    }

    let interp = interpolate::interpolate(&mut root, env);
    let mut errors: Vec<RecipeError> = interp.errors.iter().map(interpolation_error).collect();

    let mut spans = SpanIndex::default();
    let mut secret_spans: BTreeSet<(usize, usize)> = interp
        .secret_spans
        .iter()
        .map(|s| (s.offset, s.len))
        .collect();
    let mut secrets = BTreeSet::new();
    let json = to_json(
        &root,
        String::new(),
        &mut spans,
        &mut secret_spans,
        &mut secrets,
    );
    mark_structural_secrets(&json, &mut secrets);
    for pointer in &secrets {
        if let Some(Json::String(value)) = json.pointer(pointer) {
            crate::secrets::register(value);
        }
    }

    errors.extend(schema_errors(&json, &spans));
    if !errors.is_empty() {
        sort_errors(&mut errors);
        return Err(fail(errors));
    }
    let recipe: Recipe = match serde_json::from_value(json) {
        Ok(r) => r,
        Err(e) => {
            return Err(fail(vec![RecipeError::new(
                Code::InvalidValue,
                e.to_string(),
                None,
            )]));
        }
    };
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    Ok(LoadedRecipe {
        recipe,
        path: path.to_owned(),
        dir,
        text,
        sha256,
        spans,
        vars: interp.vars,
        secrets,
    })
}

pub fn sort_errors(errors: &mut [RecipeError]) {
    errors.sort_by_key(|e| e.span.map_or((usize::MAX, 0), |s| (s.offset, s.len)));
}

/// Registers, as secrets, the values of lines such as `token: …` or
/// `secret_access_key = "…"` (keys that name a credential), for a recipe
/// whose structure is unknown because it does not parse.
fn register_secret_looking_values(text: &str) {
    let re = regex::Regex::new(
        r#"(?im)(?:^|[\s{,])"?([a-z_]*(?:token|secret|password|access_key|account_key|credential)[a-z_]*)"?\s*[:=]\s*["']?([^"'\s#,}]+)"#,
    )
    .expect("a valid regex");
    for caps in re.captures_iter(text) {
        let value = &caps[2];
        if !value.contains("${") {
            crate::secrets::register(value);
        }
    }
}

fn interpolation_error(e: &InterpolationError) -> RecipeError {
    match e {
        InterpolationError::Unset { name, span } => RecipeError::new(
            Code::EnvUnset,
            format!("environment variable `{name}` is not set"),
            Some(*span),
        )
        .label(format!("uses ${{{name}}}"))
        .help(format!("set {name}, or give a default: ${{{name}:-value}}")),
        InterpolationError::Unterminated { span } => RecipeError::new(
            Code::InvalidValue,
            "unterminated `${` in value",
            Some(*span),
        )
        .help("close it with `}`, or write `$${` for a literal `${`"),
        InterpolationError::BadName { name, span } => RecipeError::new(
            Code::InvalidValue,
            format!("`{name}` is not a variable name"),
            Some(*span),
        )
        .help("variable names are letters, digits and `_`, e.g. ${DATA_DIR}"),
    }
}

fn to_json(
    node: &Node,
    pointer: String,
    spans: &mut SpanIndex,
    secret_spans: &mut BTreeSet<(usize, usize)>,
    secrets: &mut BTreeSet<String>,
) -> Json {
    spans.values.insert(pointer.clone(), node.span);
    if secret_spans.contains(&(node.span.offset, node.span.len)) {
        secrets.insert(pointer.clone());
    }
    match &node.value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.clone()),
        Value::Seq(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| to_json(n, format!("{pointer}/{i}"), spans, secret_spans, secrets))
                .collect(),
        ),
        Value::Map(entries) => {
            let mut map = serde_json::Map::new();
            for (key, value) in entries {
                let child = format!("{pointer}/{}", pointer_segment(&key.name));
                spans.keys.insert(child.clone(), key.span);
                map.insert(
                    key.name.clone(),
                    to_json(value, child, spans, secret_spans, secrets),
                );
            }
            Json::Object(map)
        }
    }
}

/// Secrets by position: `target.token` and connection values other than
/// `endpoint`, `region` and `root`.
fn mark_structural_secrets(json: &Json, secrets: &mut BTreeSet<String>) {
    if json.pointer("/target/token").is_some() {
        secrets.insert("/target/token".to_owned());
    }
    let mut mark = |base: String, conn: Option<&Json>| {
        if let Some(Json::Object(c)) = conn {
            for k in c.keys() {
                if !matches!(k.as_str(), "endpoint" | "region" | "root") {
                    secrets.insert(format!("{base}/connection/{}", pointer_segment(k)));
                }
            }
        }
    };
    mark("/source".to_owned(), json.pointer("/source/connection"));
    if let Some(Json::Object(assets)) = json.get("assets") {
        for (name, asset) in assets {
            mark(
                format!("/assets/{}", pointer_segment(name)),
                asset.get("connection"),
            );
        }
    }
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(&recipe_json_schema()).expect("the recipe schema is valid")
    })
}

fn schema_errors(json: &Json, spans: &SpanIndex) -> Vec<RecipeError> {
    let schema = recipe_json_schema();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for err in validator().iter_errors(json) {
        let pointer = err.instance_path().as_str().to_owned();
        let here = describe_path(&pointer);
        let e = match err.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for key in unexpected {
                    let child = format!("{pointer}/{}", pointer_segment(key));
                    let known = known_keys(&schema, &pointer);
                    let mut e = RecipeError::new(
                        Code::UnknownKey,
                        format!("unknown key `{key}`{}", in_place(&here)),
                        spans.key(&child),
                    )
                    .label("not a recipe key");
                    e = match did_you_mean(key, &known) {
                        Some(s) => e.help(format!("did you mean `{s}`?")),
                        None if !known.is_empty() => {
                            e.help(format!("allowed keys here: {}", known.join(", ")))
                        }
                        None => e,
                    };
                    if seen.insert((child, "unknown")) {
                        out.push(e);
                    }
                }
                continue;
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                RecipeError::new(
                    Code::MissingKey,
                    format!("missing required key `{name}`{}", in_place(&here)),
                    if pointer.is_empty() {
                        None
                    } else {
                        spans.key(&pointer)
                    },
                )
                .help(format!("add `{name}:`"))
            }
            ValidationErrorKind::Type { .. } => {
                let expected = expected_type(&schema, &pointer);
                let found = type_of(err.instance());
                RecipeError::new(
                    Code::WrongType,
                    format!("{here} must be {expected}, found {found}"),
                    spans.value(&pointer),
                )
                .label(format!("expected {expected}"))
            }
            ValidationErrorKind::Enum { options } => {
                let allowed: Vec<String> = options
                    .as_array()
                    .map(|a| a.iter().map(|v| v.to_string()).collect())
                    .unwrap_or_default();
                RecipeError::new(
                    Code::InvalidValue,
                    format!("{here} must be one of {}", allowed.join(", ")),
                    spans.value(&pointer),
                )
                .label("not an allowed value")
            }
            ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
                let expected = expected_type(&schema, &pointer);
                RecipeError::new(
                    Code::WrongType,
                    format!(
                        "{here} must be {expected}, found {}",
                        type_of(err.instance())
                    ),
                    spans.value(&pointer),
                )
            }
            _ => RecipeError::new(
                Code::InvalidValue,
                format!("{here}: {}", err.to_string().trim()),
                spans.value(&pointer),
            ),
        };
        if seen.insert((pointer, "other")) {
            out.push(e);
        }
    }
    out
}

fn in_place(here: &str) -> String {
    if here == "the recipe" {
        String::new()
    } else {
        format!(" in {here}")
    }
}

/// `/metadata/0/excel` → `metadata[0].excel`.
pub fn describe_path(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the recipe".to_owned();
    }
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.bytes().all(|b| b.is_ascii_digit()) && !seg.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    format!("`{out}`")
}

fn type_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

/// The schema node describing the instance at `pointer` (following `$ref`s and
/// the non-null branch of optional values).
fn schema_at<'a>(root: &'a Json, pointer: &str) -> Option<&'a Json> {
    let mut node = resolve(root, root)?;
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        node = resolve(root, node)?;
        let next = if let Some(p) = node.get("properties").and_then(|p| p.get(&seg)) {
            Some(p)
        } else if let Some(items) = node.get("items") {
            Some(items)
        } else {
            node.get("additionalProperties").filter(|a| a.is_object())
        };
        node = next?;
    }
    resolve(root, node)
}

fn resolve<'a>(root: &'a Json, mut node: &'a Json) -> Option<&'a Json> {
    for _ in 0..16 {
        if let Some(r) = node.get("$ref").and_then(Json::as_str) {
            node = root.pointer(r.strip_prefix('#')?)?;
        } else if let Some(branches) = node.get("anyOf").and_then(Json::as_array) {
            let non_null: Vec<&Json> = branches
                .iter()
                .filter(|b| b.get("type") != Some(&Json::from("null")))
                .collect();
            match non_null.as_slice() {
                [one] => node = one,
                _ => return Some(node),
            }
        } else {
            return Some(node);
        }
    }
    Some(node)
}

fn known_keys(root: &Json, pointer: &str) -> Vec<String> {
    schema_at(root, pointer)
        .and_then(|s| s.get("properties"))
        .and_then(Json::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn expected_type(root: &Json, pointer: &str) -> String {
    let Some(node) = schema_at(root, pointer) else {
        return "another type".to_owned();
    };
    let describe = |t: &Json| match t.as_str() {
        Some("object") => "a mapping".to_owned(),
        Some("array") => "a list".to_owned(),
        Some("integer") => "an integer".to_owned(),
        Some("string") => "a string".to_owned(),
        Some("boolean") => "a boolean".to_owned(),
        Some("number") => "a number".to_owned(),
        Some(other) => other.to_owned(),
        None => "a value".to_owned(),
    };
    if let Some(branches) = node.get("anyOf").and_then(Json::as_array) {
        let names: Vec<String> = branches
            .iter()
            .filter_map(|b| resolve(root, b))
            .filter_map(|b| b.get("type"))
            .filter(|t| t.as_str() != Some("null"))
            .map(describe)
            .collect();
        return names.join(" or ");
    }
    match node.get("type") {
        Some(Json::Array(types)) => types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .map(describe)
            .collect::<Vec<_>>()
            .join(" or "),
        Some(t) => describe(t),
        None if node.get("enum").is_some() => "one of the allowed values".to_owned(),
        None => "another type".to_owned(),
    }
}

/// The closest known name, if it is close enough to be a typo.
pub fn did_you_mean(word: &str, candidates: &[impl AsRef<str>]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c.as_ref()), c.as_ref()))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, text: &str) -> Result<LoadedRecipe, RecipeErrors> {
        parse_text(name, PathBuf::from("/tmp"), text.to_owned(), &|v| {
            (v == "WORKERS").then(|| "8".to_owned())
        })
    }

    fn at<'a>(text: &'a str, e: &RecipeError) -> &'a str {
        let s = e.span.expect("span");
        &text[s.offset..]
    }

    #[test]
    fn minimal_recipe_loads_with_defaults() {
        let r = parse("r.yaml", "version: 1\nname: x\nsource: {path: ./data}\n").unwrap();
        assert_eq!(r.recipe.key_field.as_deref(), Some("name"));
        assert_eq!(r.recipe.upload.workers, 32);
        assert!(r.recipe.source.unwrap().recursive);
    }

    #[test]
    fn key_field_null_means_none() {
        let r = parse("r.yaml", "version: 1\nname: x\nkey_field: null\n").unwrap();
        assert_eq!(r.recipe.key_field, None);
    }

    #[test]
    fn interpolated_integer_is_typed() {
        let r = parse(
            "r.yaml",
            "version: 1\nname: x\nupload: {workers: '${WORKERS:-32}'}\n",
        )
        .unwrap();
        assert_eq!(r.recipe.upload.workers, 8);
    }

    #[test]
    fn all_structural_errors_are_collected_with_spans() {
        let text =
            "version: 1\nname: x\nsoruce: {path: a}\nupload:\n  workers: many\n  batchsize: 3\n";
        let errs = parse("r.yaml", text).unwrap_err();
        let codes = errs.codes();
        assert_eq!(
            codes,
            [
                "synup::recipe::unknown_key",
                "synup::recipe::wrong_type",
                "synup::recipe::unknown_key"
            ]
        );
        assert!(at(text, &errs.errors[0]).starts_with("soruce"));
        assert_eq!(
            errs.errors[0].help.as_deref(),
            Some("did you mean `source`?")
        );
        assert!(at(text, &errs.errors[1]).starts_with("many"));
        assert!(at(text, &errs.errors[2]).starts_with("batchsize"));
        assert_eq!(
            errs.errors[2].help.as_deref(),
            Some("did you mean `batch_size`?")
        );
        assert_eq!(errs.location(&errs.errors[1]), "r.yaml:5:12");
    }

    #[test]
    fn toml_errors_have_the_same_quality() {
        let text = "version = 1\nname = \"x\"\n[upload]\nworkers = \"many\"\n";
        let errs = parse("r.toml", text).unwrap_err();
        assert_eq!(errs.codes(), ["synup::recipe::wrong_type"]);
        assert!(at(text, &errs.errors[0]).starts_with("\"many\""));
    }

    #[test]
    fn missing_required_keys_are_named() {
        let errs = parse("r.yaml", "name: x\n").unwrap_err();
        assert_eq!(errs.codes(), ["synup::recipe::missing_key"]);
        assert!(errs.errors[0].message.contains("`version`"));
    }

    #[test]
    fn empty_recipe_is_an_error() {
        let errs = parse("r.yaml", "# nothing\n").unwrap_err();
        assert_eq!(errs.codes(), ["synup::recipe::empty"]);
    }

    #[test]
    fn unset_variable_is_reported_at_its_value() {
        let text = "version: 1\nname: ${NAME_UNSET}\n";
        let errs = parse("r.yaml", text).unwrap_err();
        assert_eq!(errs.codes(), ["synup::recipe::env_unset"]);
        assert!(at(text, &errs.errors[0]).starts_with("${NAME_UNSET}"));
    }

    #[test]
    fn enum_values_are_checked() {
        let text = "version: 1\nname: x\ntarget: {backend: s3}\n";
        let errs = parse("r.yaml", text).unwrap_err();
        assert_eq!(errs.codes(), ["synup::recipe::invalid_value"]);
        assert!(
            errs.errors[0].message.contains("\"local\""),
            "{}",
            errs.errors[0].message
        );
    }

    #[test]
    fn malformed_yaml_points_at_the_problem() {
        let errs = parse("r.yaml", "version: 1\nname: [x\n").unwrap_err();
        assert_eq!(errs.codes(), ["synup::recipe::syntax"]);
        assert!(errs.errors[0].span.is_some());
    }

    #[test]
    fn secrets_are_tracked_by_pointer() {
        let r = parse(
            "r.yaml",
            "version: 1\nname: x\ntarget: {token: abc}\nsource: {path: s3://b, connection: {region: eu, secret_access_key: k}}\n",
        )
        .unwrap();
        assert!(r.secrets.contains("/target/token"));
        assert!(r.secrets.contains("/source/connection/secret_access_key"));
        assert!(!r.secrets.contains("/source/connection/region"));
    }
}

#[cfg(test)]
mod secret_lines_tests {
    #[test]
    fn a_recipe_that_does_not_parse_still_masks_credential_values() {
        super::register_secret_looking_values(
            "target:\n  token: sk-live-123456\nsource: {path: s3://b, connection: {secret_access_key: \"AKIAxyz987\"}}\n  key_column: patient_id\n  token: ${T}\n",
        );
        assert_eq!(crate::secrets::mask("sk-live-123456"), "***");
        assert_eq!(crate::secrets::mask("AKIAxyz987"), "***");
        assert_eq!(crate::secrets::mask("patient_id"), "patient_id");
    }
}
