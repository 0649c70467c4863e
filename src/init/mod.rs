//! `synup init`: the answers a user gives (at prompts or as flags) and the
//! commented recipe they become. No terminal code here: the wizard that asks
//! lives in the CLI, and both it and the flag path end in [`render`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::stages::extension;

/// Where units go.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetAnswer {
    /// The embedded local catalog; `collection` is its name. `specs` are
    /// written inline (a local collection is defined by its recipe).
    Local {
        collection: String,
        specs: Vec<SpecDraft>,
    },
    /// A Synapse backend: the collection's specs come from it.
    Synapse {
        /// `None`: from `SYNAPSE_HOST` or the saved login, not written.
        host: Option<String>,
        collection: u64,
        collection_name: String,
        /// `None`: the default storage.
        storage: Option<u64>,
    },
}

/// A file specification for a new local collection.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecDraft {
    pub name: String,
    pub file_type: String,
    pub extensions: Vec<String>,
    pub is_required: bool,
    pub is_primary: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceAnswer {
    /// One root; empty `file_rules` and no regex mean "as detected".
    Single {
        path: String,
        file_rules: Vec<(String, String)>,
        group_key_regex: Option<String>,
    },
    /// One root per spec.
    Multi(Vec<(String, String)>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetadataAnswer {
    Sheet {
        file: String,
        is_csv: bool,
        key_column: Option<String>,
        columns: Vec<(String, String)>,
    },
    Filename {
        regex: String,
        types: Vec<(String, String)>,
    },
    Sidecar {
        template: String,
    },
    Static(Vec<(String, serde_json::Value)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Answers {
    pub name: String,
    pub target: TargetAnswer,
    pub source: SourceAnswer,
    pub metadata: Vec<MetadataAnswer>,
    /// Meta fields the collection's schema requires (named in a comment).
    pub required_fields: Vec<String>,
    /// Files that are not unit members (explore's suggestion), dropped by `exclude`.
    pub exclude: Vec<String>,
}

/// A YAML scalar for any string: JSON's quoting is valid YAML.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn pairs(p: &[(String, String)]) -> String {
    let inner: Vec<String> = p
        .iter()
        .map(|(k, v)| format!("{}: {}", q(k), q(v)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// The recipe, commented for the person who will edit it next.
pub fn render(a: &Answers) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# yaml-language-server: $schema=https://synup.dev/schemas/recipe.schema.json\n\
         # Written by `synup init`. Check it with `synup plan`; upload with `synup apply`."
    );
    let _ = writeln!(w, "version: 1\nname: {}\n", q(&a.name));
    match &a.target {
        TargetAnswer::Local { collection, specs } => {
            let _ = writeln!(
                w,
                "# Units go to the embedded local catalog (.synup/local beside this file).\n\
                 target:\n  backend: local\n  data_collection: {}\n",
                q(collection)
            );
            let _ = writeln!(
                w,
                "# The collection's file specifications: one file of each per data unit.\n\
                 collection:\n  file_specifications:"
            );
            for s in specs {
                let exts: Vec<String> = s.extensions.iter().map(|e| q(e)).collect();
                let _ = writeln!(
                    w,
                    "    - {{name: {}, file_type: {}, extensions: [{}], is_required: {}{}}}",
                    q(&s.name),
                    q(&s.file_type),
                    exts.join(", "),
                    s.is_required,
                    if s.is_primary {
                        ", is_primary: true"
                    } else {
                        ""
                    }
                );
            }
            out.push('\n');
        }
        TargetAnswer::Synapse {
            host,
            collection,
            collection_name,
            storage,
        } => {
            let _ = writeln!(w, "target:\n  backend: synapse");
            match host {
                Some(h) => {
                    let _ = writeln!(w, "  host: {}", q(h));
                }
                None => {
                    let _ = writeln!(
                        w,
                        "  # host and token: SYNAPSE_HOST / SYNAPSE_ACCESS_TOKEN, else ~/.synapse/config.json (synup login)"
                    );
                }
            }
            let _ = writeln!(w, "  data_collection: {collection}   # {collection_name}");
            match storage {
                Some(s) => {
                    let _ = writeln!(w, "  storage: {s}");
                }
                None => {
                    let _ = writeln!(w, "  # storage: the backend's default storage");
                }
            }
            out.push('\n');
        }
    }
    let w = &mut out;
    match &a.source {
        SourceAnswer::Single {
            path,
            file_rules,
            group_key_regex,
        } => {
            let _ = writeln!(w, "source:\n  path: {}", q(path));
            if path.contains("://") {
                let _ = writeln!(
                    w,
                    "  # connection: {{}}   # opendal's settings for this service; values usually ${{ENV}}\n  \
                     # checksum: apply   # hash while uploading instead of while planning (huge buckets)"
                );
            }
            out.push('\n');
            let w = &mut out;
            if !a.exclude.is_empty() {
                let _ = writeln!(
                    w,
                    "# Not unit members (a sheet or list beside the units):\nexclude:"
                );
                for e in &a.exclude {
                    let _ = writeln!(w, "  - {}", q(e));
                }
            }
            if file_rules.is_empty() {
                let _ = writeln!(
                    w,
                    "# Files map to specs by extension; add `file_rules` (first match wins) to override:\n\
                     # file_rules:\n#   - {{pattern: \"**/*.png\", spec: image_1}}"
                );
            } else {
                let _ = writeln!(w, "file_rules:   # first matching rule wins");
                for (pattern, spec) in file_rules {
                    let _ = writeln!(w, "  - {{pattern: {}, spec: {}}}", q(pattern), q(spec));
                }
            }
            match group_key_regex {
                Some(re) => {
                    let _ = writeln!(
                        w,
                        "# Files whose paths give the same group_key form one unit.\ngroup_key_regex: {}",
                        q(re)
                    );
                }
                None => {
                    let _ = writeln!(
                        w,
                        "# Units: the directory layout is detected (`synup plan` shows the pattern and regex);\n\
                         # set group_key_regex to pin it."
                    );
                }
            }
        }
        SourceAnswer::Multi(assets) => {
            let _ = writeln!(w, "# One folder per file specification.\nassets:");
            for (spec, path) in assets {
                let _ = writeln!(w, "  {}: {{path: {}}}", q(spec), q(path));
            }
            let _ = writeln!(
                w,
                "# Files with the same name stem (for example patient_001.png and patient_001.json) form one unit."
            );
        }
    }
    out.push('\n');
    let w = &mut out;
    if !a.required_fields.is_empty() {
        let _ = writeln!(
            w,
            "# The collection's meta schema requires: {}.",
            a.required_fields.join(", ")
        );
    }
    if a.metadata.is_empty() {
        let _ = writeln!(
            w,
            "# metadata: []   # excel, csv, filename, sidecar or static sources, applied in order"
        );
    } else {
        let _ = writeln!(
            w,
            "metadata:   # applied in order; a later source overrides earlier fields"
        );
        for m in &a.metadata {
            match m {
                MetadataAnswer::Sheet {
                    file,
                    is_csv,
                    key_column,
                    columns,
                } => {
                    let _ = writeln!(
                        w,
                        "  - {}: {}",
                        if *is_csv { "csv" } else { "excel" },
                        q(file)
                    );
                    if let Some(k) = key_column {
                        let _ = writeln!(w, "    key_column: {}   # matched to the unit key", q(k));
                    }
                    if !columns.is_empty() {
                        let _ = writeln!(w, "    columns: {}", pairs(columns));
                    }
                }
                MetadataAnswer::Filename { regex, types } => {
                    let _ = writeln!(w, "  - filename:\n      regex: {}", q(regex));
                    if !types.is_empty() {
                        let _ = writeln!(w, "      types: {}", pairs(types));
                    }
                }
                MetadataAnswer::Sidecar { template } => {
                    let _ = writeln!(w, "  - sidecar: {}", q(template));
                }
                MetadataAnswer::Static(values) => {
                    let inner: Vec<String> = values
                        .iter()
                        .map(|(k, v)| format!("{}: {}", q(k), v))
                        .collect();
                    let _ = writeln!(w, "  - static: {{{}}}", inner.join(", "));
                }
            }
        }
    }
    out
}

/// A file type for an extension, as Synapse names them.
pub fn file_type_of(ext: &str) -> &'static str {
    match ext {
        "png" | "jpg" | "jpeg" | "tif" | "tiff" | "bmp" | "gif" | "webp" => "image",
        "mp4" | "mov" | "avi" | "mkv" | "webm" => "video",
        "wav" | "mp3" | "flac" | "ogg" | "m4a" => "audio",
        "pcd" | "ply" | "las" | "laz" | "bin" => "pcd",
        "dcm" | "dicom" | "nii" | "gz" => "medical",
        "txt" | "md" => "text",
        _ => "document",
    }
}

/// Specs for a new local collection from the files a source holds: one per
/// extension (`image_1`, `image_2`, `document_1`, …), most common first; the
/// first image (else the first) is primary; a spec present for every unit is
/// required. `counts` is extension → files, `units` the number of units.
pub fn specs_from_extensions(counts: &BTreeMap<String, u64>, units: u64) -> Vec<SpecDraft> {
    let mut exts: Vec<(&String, &u64)> = counts.iter().filter(|(e, _)| !e.is_empty()).collect();
    exts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut per_type: BTreeMap<&str, u32> = BTreeMap::new();
    let mut specs: Vec<SpecDraft> = exts
        .into_iter()
        .map(|(ext, n)| {
            let t = file_type_of(ext);
            let k = per_type.entry(t).or_default();
            *k += 1;
            SpecDraft {
                name: format!("{t}_{k}"),
                file_type: t.to_owned(),
                extensions: vec![format!(".{ext}")],
                is_required: units > 0 && *n >= units,
                is_primary: false,
            }
        })
        .collect();
    let primary = specs
        .iter()
        .position(|s| s.file_type == "image")
        .unwrap_or(0);
    if let Some(s) = specs.get_mut(primary) {
        s.is_primary = true;
        s.is_required = true;
    }
    specs
}

/// Extension counts of relative paths (for [`specs_from_extensions`]).
pub fn extension_counts<'a>(rels: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in rels {
        *out.entry(extension(r)).or_default() += 1;
    }
    out
}

/// `file_rules` for the specs, from explore's suggested (pattern, guess)
/// rules: needed only where an extension belongs to more than one spec (the
/// extension fallback maps the rest). Such rules go, in order, to the specs
/// sharing that extension, preferring the spec named like the rule's guess.
pub fn propose_rules(
    suggested: &[(String, String)],
    specs: &[(String, Vec<String>)],
) -> Vec<(String, String)> {
    // The extension a rule's file-name glob ends with (`*_flair.nii.gz` → `.nii.gz`).
    let ext_of = |pattern: &str| {
        let name = pattern
            .rsplit('/')
            .next()
            .unwrap_or(pattern)
            .replace('*', "x");
        Some(extension(&name))
            .filter(|e| !e.is_empty())
            .map(|e| format!(".{e}"))
    };
    let mut taken: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (pattern, guess) in suggested {
        let Some(ext) = ext_of(pattern) else { continue };
        let owners: Vec<&str> = specs
            .iter()
            .filter(|(_, exts)| exts.iter().any(|e| e.eq_ignore_ascii_case(&ext)))
            .map(|(n, _)| n.as_str())
            .collect();
        if owners.len() < 2 {
            continue;
        }
        let free: Vec<&str> = owners
            .iter()
            .copied()
            .filter(|o| !taken.contains(o))
            .collect();
        let pick = free
            .iter()
            .copied()
            .find(|o| {
                guess.starts_with(&o.to_ascii_lowercase())
                    || o.starts_with(guess.trim_end_matches("_1"))
            })
            .or(free.first().copied());
        if let Some(spec) = pick {
            taken.push(spec);
            out.push((pattern.clone(), spec.to_owned()));
        }
    }
    out
}

/// How files map to specs, for people: the rules, else the extensions.
pub fn describe_mapping(rules: &[(String, String)], specs: &[(String, Vec<String>)]) -> String {
    if rules.is_empty() {
        let by_ext: Vec<String> = specs
            .iter()
            .map(|(n, exts)| format!("{} → {n}", exts.join(" ")))
            .collect();
        format!(
            "file_rules: none needed, by extension ({})",
            by_ext.join("; ")
        )
    } else {
        let r: Vec<String> = rules.iter().map(|(p, s)| format!("{p} → {s}")).collect();
        format!("file_rules: {}", r.join("; "))
    }
}

/// `a=1, b=x` → typed values (numbers and booleans as such, the rest strings).
pub fn parse_static(s: &str) -> Result<Vec<(String, serde_json::Value)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}`: expected FIELD=VALUE"))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(format!("`{part}`: the field name is empty"));
        }
        let value = match serde_json::from_str::<serde_json::Value>(v) {
            Ok(j @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => j,
            _ => serde_json::Value::String(v.to_owned()),
        };
        out.push((k.to_owned(), value));
    }
    if out.is_empty() {
        return Err("give at least one FIELD=VALUE".into());
    }
    Ok(out)
}

/// `age: integer, scan_date: date` → pairs, each type one the recipe knows.
pub fn parse_types(s: &str) -> Result<Vec<(String, String)>, String> {
    const TYPES: [&str; 6] = ["string", "integer", "number", "boolean", "date", "datetime"];
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, t) = part
            .split_once(':')
            .ok_or_else(|| format!("`{part}`: expected COLUMN: TYPE"))?;
        let (k, t) = (k.trim(), t.trim());
        if !TYPES.contains(&t) {
            return Err(format!(
                "`{t}` is not a type; use one of {}",
                TYPES.join(", ")
            ));
        }
        out.push((k.to_owned(), t.to_owned()));
    }
    Ok(out)
}

/// A recipe name from a folder or collection name: `[A-Za-z0-9._-]+`.
pub fn recipe_name(s: &str) -> String {
    let n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let n = n.trim_matches('-').to_owned();
    if n.is_empty() { "upload".into() } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_follow_the_extensions_and_the_first_image_is_primary() {
        let counts: BTreeMap<String, u64> = [("json", 10), ("png", 10), ("dcm", 3), ("", 1)]
            .into_iter()
            .map(|(e, n)| (e.to_owned(), n))
            .collect();
        let specs = specs_from_extensions(&counts, 10);
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["document_1", "image_1", "medical_1"]);
        assert!(specs[1].is_primary && specs[1].is_required);
        assert!(specs[0].is_required && !specs[0].is_primary);
        assert!(!specs[2].is_required);
    }

    #[test]
    fn rules_are_proposed_only_where_an_extension_is_shared() {
        let specs = vec![
            ("rgb".to_owned(), vec![".png".to_owned()]),
            ("mask".to_owned(), vec![".png".to_owned()]),
            ("label_1".to_owned(), vec![".json".to_owned()]),
        ];
        let suggested = vec![
            ("masks/*.png".to_owned(), "masks_1".to_owned()),
            ("rgb/*.png".to_owned(), "rgb_1".to_owned()),
            ("labels/*.json".to_owned(), "labels_1".to_owned()),
        ];
        assert_eq!(
            propose_rules(&suggested, &specs),
            vec![
                ("masks/*.png".to_owned(), "mask".to_owned()),
                ("rgb/*.png".to_owned(), "rgb".to_owned())
            ]
        );
        assert!(describe_mapping(&[], &specs[2..]).contains(".json → label_1"));
    }

    #[test]
    fn flags_values_parse_or_say_why_not() {
        assert_eq!(
            parse_static("site=Seoul, batch=42, ok=true").unwrap(),
            vec![
                ("site".into(), serde_json::json!("Seoul")),
                ("batch".into(), serde_json::json!(42)),
                ("ok".into(), serde_json::json!(true))
            ]
        );
        assert!(parse_static("site").unwrap_err().contains("FIELD=VALUE"));
        assert!(parse_types("age: years").unwrap_err().contains("integer"));
        assert_eq!(recipe_name("My data/2024"), "My-data-2024");
    }

    #[test]
    fn the_rendered_recipe_is_one_the_loader_accepts() {
        let a = Answers {
            name: "scans".into(),
            target: TargetAnswer::Local {
                collection: "scans".into(),
                specs: specs_from_extensions(
                    &[("png".to_owned(), 2u64), ("json".to_owned(), 2)].into(),
                    2,
                ),
            },
            exclude: vec!["survival.csv".into()],
            source: SourceAnswer::Single {
                path: "data".into(),
                file_rules: vec![("**/*.png".into(), "image_1".into())],
                group_key_regex: Some("^(?P<group_key>[^/]+)/".into()),
            },
            metadata: vec![
                MetadataAnswer::Sheet {
                    file: "meta.xlsx".into(),
                    is_csv: false,
                    key_column: Some("id".into()),
                    columns: vec![("age".into(), "integer".into())],
                },
                MetadataAnswer::Filename {
                    regex: "(?P<site>[A-Z]+)_".into(),
                    types: vec![],
                },
                MetadataAnswer::Sidecar {
                    template: "{unit_dir}/meta.json".into(),
                },
                MetadataAnswer::Static(parse_static("batch=42").unwrap()),
            ],
            required_fields: vec!["age".into()],
        };
        let text = render(&a);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("synup.yaml");
        std::fs::write(&path, &text).unwrap();
        let loaded = crate::recipe::load(path.to_str().unwrap()).expect(&text);
        assert_eq!(loaded.recipe.name, "scans");
        assert_eq!(loaded.recipe.metadata.len(), 4);
    }
}
