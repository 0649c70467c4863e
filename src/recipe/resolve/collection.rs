//! The collection a recipe uploads into: from its `collection` block (local
//! target) or the backend's answer (synapse target), and its meta-schema.

use super::*;

impl Cx<'_> {
    pub(super) fn collection(&mut self, block: Option<&CollectionConfig>) -> Option<Collection> {
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
    pub(super) fn remote_collection(
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

    pub(super) fn build_collection(
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

    pub(super) fn meta_schema(&mut self, schema: Json, pointer: &str) -> Option<MetaSchema> {
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
}
