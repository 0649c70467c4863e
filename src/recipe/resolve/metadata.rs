//! The `metadata` list: each source (sheet, CSV, filename, sidecar, static)
//! checked and compiled.

use super::*;

impl Cx<'_> {
    pub(super) fn metadata(
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
