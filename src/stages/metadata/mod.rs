//! Metadata: load each source (a stage per source), then merge them into every
//! unit's meta in recipe order (SPEC 2.4).

pub mod convert;
pub mod load;
pub mod rows;
pub mod sheet;
pub mod sheet_cache;

use std::borrow::Cow;

use serde_json::{Map, Value as Json};

use self::convert::{Cell, convert};
use self::sheet::SheetTable;
use super::validate::{Problem, ProblemReason};
use crate::recipe::resolve::{KeyTemplate, MetadataKind, MetadataSpec};

/// A metadata source ready for merging: spreadsheets are loaded, the rest are rules.
pub struct PreparedSource<'a> {
    pub spec: &'a MetadataSpec,
    pub table: Option<SheetTable>,
    /// How the plan names this source in provenance (`extra.csv`, `recipe.yaml!metadata[2]`).
    pub label: String,
}

/// One file of a unit, as the merge sees it.
pub struct UnitFile<'a> {
    pub spec: u32,
    pub rel: std::borrow::Cow<'a, str>,
    /// Its root (sidecars are read beside the file).
    pub source: &'a dyn crate::source::Source,
}

/// What merging gave one unit.
#[derive(Debug, Default)]
pub struct MergedMeta<'a> {
    pub meta: Map<String, Json>,
    pub provenance: Provenance<'a>,
    pub problems: Vec<Problem>,
    /// A source set `key_field` to something other than the unit key.
    pub key_field_overridden: Option<String>,
}

/// Where each field's value came from. Kept unrendered: only a field that a
/// problem names is ever spelled out, and most units have no problem.
#[derive(Debug, Default)]
pub struct Provenance<'a>(Vec<(Cow<'a, str>, Origin<'a>)>);

impl<'a> Provenance<'a> {
    fn set(&mut self, field: Cow<'a, str>, origin: Origin<'a>) {
        self.0.push((field, origin));
    }

    /// The origin of the field's current value (the last source that set it).
    pub fn get(&self, field: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(f, _)| f == field)
            .map(|(_, o)| o.to_string())
    }
}

/// One field's origin: a sheet cell (`meta.xlsx!Sheet1!C14`), a file name
/// (`filename:a/b.png`), or a source's label.
#[derive(Debug)]
enum Origin<'a> {
    Cell {
        table: &'a SheetTable,
        header: u32,
        row: u32,
    },
    Filename(&'a str),
    Label(Cow<'a, str>),
}

impl std::fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Cell { table, header, row } => f.write_str(&table.provenance(*header, *row)),
            Origin::Filename(rel) => write!(f, "filename:{rel}"),
            Origin::Label(label) => f.write_str(label),
        }
    }
}

pub struct MergeInput<'a> {
    pub key: &'a str,
    pub group_key: &'a str,
    /// Sorted by spec then path.
    pub files: &'a [UnitFile<'a>],
    /// Spec indices in primary-precedence order.
    pub primary_order: &'a [usize],
    /// The collection's specs: a sidecar's `{stem}` drops the primary spec's extension.
    pub specs: &'a [crate::recipe::resolve::FileSpec],
    pub key_field: Option<&'a str>,
    /// The row each sheet source joined to this unit, by the source's
    /// position in `sources` (`None`: no row, or not a sheet).
    pub rows: &'a [Option<&'a sheet::Row>],
}

/// Merges every source into one unit's meta.
pub fn merge<'a>(sources: &'a [PreparedSource<'a>], unit: &MergeInput<'a>) -> MergedMeta<'a> {
    let mut out = MergedMeta::default();
    let primary = unit
        .primary_order
        .iter()
        .find_map(|&s| unit.files.iter().find(|f| f.spec as usize == s));
    for (i, source) in sources.iter().enumerate() {
        let found = match &source.spec.kind {
            MetadataKind::Sheet { .. } => {
                let table = source
                    .table
                    .as_ref()
                    .expect("sheets are loaded before merging");
                match unit.rows.get(i).copied().flatten() {
                    Some(row) => {
                        for (h, cell) in &row.cells {
                            let origin = Origin::Cell {
                                table,
                                header: *h,
                                row: row.row,
                            };
                            set(
                                &mut out,
                                &table.headers[*h as usize],
                                convert(cell, table.types[*h as usize]),
                                origin,
                            );
                        }
                        true
                    }
                    None => false,
                }
            }
            MetadataKind::Filename { regex, types, on } => {
                let file = match on {
                    Some(spec) => unit.files.iter().find(|f| f.spec as usize == *spec),
                    None => primary,
                };
                match file.and_then(|f| regex.captures(&f.rel).map(|c| (f, c))) {
                    Some((f, caps)) => {
                        for name in regex.capture_names().flatten() {
                            if let Some(m) = caps.name(name) {
                                let value = convert(
                                    &Cell::Text(m.as_str().to_owned()),
                                    types.get(name).copied(),
                                );
                                set(&mut out, name, value, Origin::Filename(&f.rel));
                            }
                        }
                        true
                    }
                    None => false,
                }
            }
            MetadataKind::Sidecar { template, .. } => match primary {
                Some(p) => sidecar(&mut out, template, p, unit),
                None => false,
            },
            MetadataKind::Static { fields, .. } => {
                for (k, v) in fields {
                    set(
                        &mut out,
                        k,
                        Ok(v.clone()),
                        Origin::Label(Cow::Borrowed(&source.label)),
                    );
                }
                true
            }
        };
        if !found && source.spec.required {
            out.problems.push(Problem::new(
                ProblemReason::MetadataMissing,
                format!("no entry for `{}` in {}", unit.key, source.label),
            ));
        }
    }
    if let Some(field) = unit.key_field {
        if let Some(prev) = out.meta.get(field)
            && prev.as_str() != Some(unit.key)
        {
            out.key_field_overridden = Some(format!(
                "{} set `{field}` to {prev}",
                out.provenance
                    .get(field)
                    .unwrap_or_else(|| "a source".to_owned())
            ));
        }
        out.meta
            .insert(field.to_owned(), Json::String(unit.key.to_owned()));
        out.provenance.set(
            Cow::Borrowed(field),
            Origin::Label(Cow::Borrowed("unit key")),
        );
    }
    out
}

fn set<'a>(
    out: &mut MergedMeta<'a>,
    field: &'a str,
    value: Result<Json, String>,
    origin: Origin<'a>,
) {
    match value {
        Ok(v) => {
            out.meta.insert(field.to_owned(), v);
            out.provenance.set(Cow::Borrowed(field), origin);
        }
        Err(message) => {
            out.problems.push(
                Problem::new(ProblemReason::MetadataType, format!("{field}: {message}"))
                    .field(field)
                    .source(&origin.to_string()),
            );
        }
    }
}

fn sidecar(
    out: &mut MergedMeta<'_>,
    template: &KeyTemplate,
    primary: &UnitFile<'_>,
    unit: &MergeInput<'_>,
) -> bool {
    let unit_dir = primary.rel.rsplit_once('/').map_or(".", |(d, _)| d);
    let stem = match unit.specs.get(primary.spec as usize) {
        Some(spec) => spec.stem(&primary.rel),
        None => super::stem(&primary.rel),
    };
    let rel = template.render(|f| match f {
        "unit_dir" => Some(unit_dir.to_owned()),
        "group_key" => Some(unit.group_key.to_owned()),
        "key" => Some(unit.key.to_owned()),
        "stem" => Some(stem.to_owned()),
        _ => None,
    });
    let rel = rel.strip_prefix("./").unwrap_or(&rel).to_owned();
    let read = primary.source.read_if_exists(&rel).and_then(|b| match b {
        None => Ok(None),
        Some(b) => String::from_utf8(b).map(Some).map_err(|_| {
            crate::source::SourceError::new(
                crate::source::SourceErrorKind::Other,
                "stream did not contain valid UTF-8",
            )
        }),
    });
    let text = match read {
        Ok(Some(t)) => t,
        Ok(None) => return false,
        Err(e) => {
            out.problems.push(
                Problem::new(
                    ProblemReason::MetadataType,
                    format!("cannot read sidecar {rel}: {e}"),
                )
                .source(&rel),
            );
            return true;
        }
    };
    let is_json = rel.to_ascii_lowercase().ends_with(".json");
    let parsed: Result<Json, String> = if is_json {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_saphyr::from_str(&text)
            .map_err(|e| e.to_string().lines().next().unwrap_or("").to_owned())
    };
    match parsed {
        Ok(Json::Object(map)) => {
            for (k, v) in map {
                out.meta.insert(k.clone(), v);
                out.provenance
                    .set(Cow::Owned(k), Origin::Label(Cow::Owned(rel.clone())));
            }
        }
        Ok(other) => out.problems.push(
            Problem::new(
                ProblemReason::MetadataType,
                format!(
                    "sidecar {rel} holds {}, not an object of fields",
                    kind(&other)
                ),
            )
            .source(&rel),
        ),
        Err(e) => out.problems.push(
            Problem::new(
                ProblemReason::MetadataType,
                format!("sidecar {rel} does not parse: {e}"),
            )
            .source(&rel),
        ),
    }
    true
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
        Json::Null => "null",
        _ => "a scalar",
    }
}
