//! The wizard's questions, one method per step, each answer checked at once.

use std::collections::BTreeMap;
use std::path::Path;

use inquire::{Confirm, Password, Select, Text};
use serde_json::Value as Json;
use synup::init::{
    Answers, MetadataAnswer, SourceAnswer, SpecDraft, parse_static, parse_types, recipe_name,
    specs_from_extensions,
};

use super::checks::*;
use super::preview::{Draft, show_preview};
use super::{Args, CollectionInfo, Step, Stop, collection_info, fail};

pub(super) struct Asker<'a> {
    pub(super) interactive: bool,
    pub(super) dir: &'a Path,
}

impl Asker<'_> {
    pub(super) fn session(&self, host_flag: Option<&str>) -> Step<synup::target::synapse::Session> {
        use synup::target::synapse::config::{self, Origin, Secret};
        let saved = config::resolve(host_flag.map(|h| (h, Origin::Flag)), None);
        let creds = match saved {
            Ok(c) => {
                crate::console::note(&format!("using the saved login for {}", c.host));
                c
            }
            Err(_) if !self.interactive => {
                return fail(
                    "no Synapse login: run `synup login`, or set SYNAPSE_HOST and SYNAPSE_ACCESS_TOKEN",
                );
            }
            Err(_) => {
                crate::console::note("no saved Synapse login (synup login); enter one:");
                let host = match host_flag {
                    Some(h) => h.to_owned(),
                    None => Text::new("Synapse host:")
                        .with_placeholder("https://api.synapse.sh")
                        .with_validator(|h: &str| {
                            verdict(if h.starts_with("http://") || h.starts_with("https://") {
                                Ok(())
                            } else {
                                Err("a URL starting with http:// or https://".into())
                            })
                        })
                        .prompt()?,
                };
                let token = Password::new("Access token:")
                    .without_confirmation()
                    .prompt()?;
                let token = Secret::new(token);
                if Confirm::new(
                    "Save this login to ~/.synapse/config.json (as `synup login` does)?",
                )
                .with_default(true)
                .prompt()?
                {
                    match config::write_login(&host, &token) {
                        Ok(p) => crate::console::note(&format!("saved to {}", p.display())),
                        Err(e) => crate::console::report(e),
                    }
                }
                config::Credentials {
                    host,
                    host_origin: Origin::Flag,
                    token,
                    token_origin: Origin::Flag,
                }
            }
        };
        Ok(synup::target::synapse::Session::new(creds, 4, 1))
    }

    pub(super) fn remote_collection(
        &self,
        s: &synup::target::synapse::Session,
        flag: Option<&str>,
    ) -> Step<CollectionInfo> {
        let id = match flag {
            Some(f) => match f.parse::<u64>() {
                Ok(id) => id,
                Err(_) => {
                    return fail(&format!(
                        "--data-collection {f}: a Synapse collection is named by its id"
                    ));
                }
            },
            None => pick_collection(s)?,
        };
        s.block_on(s.client.collection(synup::target::CollectionId(id)))
            .map(|j| collection_info(&j))
            .or_else(|e| fail(&e.to_string()))
    }

    pub(super) fn local_collection(&self, flag: Option<&str>) -> Step<String> {
        if let Some(f) = flag {
            return Ok(f.to_owned());
        }
        let existing = local_collections(&self.dir.join(".synup/local"));
        let default = recipe_name(
            &std::fs::canonicalize(self.dir)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "upload".into()),
        );
        if !existing.is_empty() {
            let mut options = existing.clone();
            const NEW: &str = "a new collection …";
            options.push(NEW.into());
            let pick =
                Select::new("Which data collection in the local catalog?", options).prompt()?;
            if pick != NEW {
                return Ok(pick);
            }
        }
        Ok(Text::new("Name of the new local data collection:")
            .with_default(&default)
            .with_validator(|v: &str| {
                verdict(if !v.is_empty() && recipe_name(v) == v {
                    Ok(())
                } else {
                    Err("letters, digits, `.`, `_` and `-` only".into())
                })
            })
            .prompt()?)
    }

    pub(super) fn storage(
        &self,
        s: &synup::target::synapse::Session,
        flag: Option<&str>,
    ) -> Step<Option<u64>> {
        let check = |id: u64| {
            s.block_on(s.client.storage(synup::target::StorageId(id)))
                .map(|_| ())
                .map_err(|e| format!("storage {id}: {e}"))
        };
        match flag {
            Some("default") => return Ok(None),
            Some(f) => {
                let Ok(id) = f.parse::<u64>() else {
                    return fail(&format!("--storage {f}: a storage id, or `default`"));
                };
                return check(id).map(|()| Some(id)).or_else(|e| fail(&e));
            }
            None => {}
        }
        if let Some(d) = s.block_on(s.client.default_storage()).ok().flatten()
            && Confirm::new(&format!("Use the default storage, {}?", storage_label(&d)))
                .with_default(true)
                .prompt()?
        {
            return Ok(None);
        }
        ask_id("Storage id:", check).map(Some)
    }

    pub(super) fn source(&self, args: &Args, spec_names: &[String]) -> Step<SourceAnswer> {
        if let Some(s) = &args.source {
            return match check_path(self.dir, s) {
                Ok(()) => Ok(single(s)),
                Err(e) => fail(&format!("--source {s}: {e}")),
            };
        }
        if !args.assets.is_empty() {
            let mut assets = Vec::new();
            for a in &args.assets {
                let Some((spec, path)) = a.split_once('=') else {
                    return fail(&format!("--asset {a}: expected SPEC=PATH"));
                };
                if let Err(e) = check_path(self.dir, path) {
                    return fail(&format!("--asset {a}: {e}"));
                }
                assets.push((spec.to_owned(), path.to_owned()));
            }
            return Ok(SourceAnswer::Multi(assets));
        }
        let modes = vec![
            "single path: one folder holds every file",
            "multi-path: one folder per file specification",
        ];
        let multi = Select::new("How are the files laid out?", modes)
            .prompt()?
            .starts_with("multi");
        let dir = self.dir.to_path_buf();
        let path_prompt = |message: &str| -> Step<String> {
            let dir = dir.clone();
            Ok(Text::new(message)
                .with_help_message(
                    "a folder (relative to the recipe), or s3://, gs://, azblob://, sftp:// URL",
                )
                .with_validator(move |p: &str| verdict(check_path(&dir, p.trim())))
                .prompt()?
                .trim()
                .to_owned())
        };
        if !multi {
            return Ok(single(&path_prompt("Source path:")?));
        }
        let mut assets = Vec::new();
        if spec_names.is_empty() {
            loop {
                let spec = Text::new("Spec name (empty when done):").prompt()?;
                if spec.trim().is_empty() {
                    if assets.is_empty() {
                        continue;
                    }
                    break;
                }
                let path = path_prompt(&format!("Folder for {}:", spec.trim()))?;
                assets.push((spec.trim().to_owned(), path));
            }
        } else {
            for spec in spec_names {
                assets.push((spec.clone(), path_prompt(&format!("Folder for {spec}:"))?));
            }
        }
        Ok(SourceAnswer::Multi(assets))
    }

    /// Specs for a new local collection, from what the source holds.
    /// `explored`: the single source's exploration.
    pub(super) fn local_specs(
        &self,
        source: &SourceAnswer,
        explored: Option<&synup::explore::Exploration>,
    ) -> Step<Vec<SpecDraft>> {
        let specs = match (source, explored) {
            (SourceAnswer::Single { path, .. }, e) => {
                let Some(e) = e else {
                    return fail(&format!("cannot explore `{path}`"));
                };
                if e.suggested_specs.is_empty() {
                    let units = e
                        .layout
                        .as_ref()
                        .map_or(e.first_level_folders, |_| e.first_level_folders.max(1));
                    specs_from_extensions(&e.extensions, units)
                } else {
                    // Explore's inference: specs told apart by token or folder.
                    e.suggested_specs
                        .iter()
                        .map(|s| SpecDraft {
                            name: s.name.clone(),
                            file_type: s.file_type.clone(),
                            extensions: s.extensions.clone(),
                            is_required: s.is_required,
                            is_primary: s.is_primary,
                        })
                        .collect()
                }
            }
            (SourceAnswer::Multi(assets), _) => {
                let mut out = Vec::new();
                for (i, (spec, path)) in assets.iter().enumerate() {
                    let e = match explore(self.dir, path) {
                        Ok(e) => e,
                        Err(e) => return fail(&format!("cannot explore `{path}`: {e}")),
                    };
                    let exts: Vec<String> = e
                        .extensions
                        .keys()
                        .filter(|x| !x.is_empty())
                        .map(|x| format!(".{x}"))
                        .collect();
                    let top = e
                        .extensions
                        .iter()
                        .max_by_key(|(_, n)| **n)
                        .map(|(x, _)| synup::init::file_type_of(x))
                        .unwrap_or("document");
                    out.push(SpecDraft {
                        name: spec.clone(),
                        file_type: top.to_owned(),
                        extensions: exts,
                        is_required: i == 0,
                        is_primary: i == 0,
                    });
                }
                out
            }
        };
        if specs.is_empty() {
            return fail(
                "the source holds no files with an extension to make file specifications from",
            );
        }
        if self.interactive {
            crate::console::note("File specifications for the new collection:");
            for s in &specs {
                crate::console::note(&format!(
                    "  {:<12} {:<9} {}{}{}",
                    s.name,
                    s.file_type,
                    s.extensions.join(" "),
                    if s.is_required { "  required" } else { "" },
                    if s.is_primary { "  primary" } else { "" }
                ));
            }
        }
        Ok(specs)
    }

    /// Shows the detected layout and sample units; lets the user pin a regex
    /// and rules until the preview is right.
    pub(super) fn layout(
        &self,
        answers: &mut Answers,
        draft: &Draft,
        mut detected: Option<u8>,
        specs: &[(String, Vec<String>)],
    ) -> Step<()> {
        loop {
            let Some(plan) = draft.plan(answers) else {
                if !Confirm::new("That did not plan. Adjust the layout?")
                    .with_default(true)
                    .prompt()?
                {
                    return Err(Stop::Failed);
                }
                self.adjust_layout(answers)?;
                detected = None;
                continue;
            };
            show_preview(&plan, detected);
            if let SourceAnswer::Single { file_rules, .. } = &answers.source {
                crate::console::note(&synup::init::describe_mapping(file_rules, specs).to_string());
            }
            if Confirm::new("Use this layout?")
                .with_default(true)
                .prompt()?
            {
                if let SourceAnswer::Single {
                    group_key_regex, ..
                } = &mut answers.source
                    && group_key_regex.is_none()
                {
                    *group_key_regex = plan.layout.group_key_regex.clone();
                }
                return Ok(());
            }
            self.adjust_layout(answers)?;
            detected = None;
        }
    }

    fn adjust_layout(&self, answers: &mut Answers) -> Step<()> {
        let SourceAnswer::Single {
            file_rules,
            group_key_regex,
            ..
        } = &mut answers.source
        else {
            crate::console::note(
                "multi-path units group by file name stem; edit the recipe to change that",
            );
            return Err(Stop::Failed);
        };
        let re = Text::new("group_key_regex (a (?P<group_key>…) capture):")
            .with_initial_value(
                group_key_regex
                    .as_deref()
                    .unwrap_or("^(?P<group_key>[^/]+)/"),
            )
            .with_validator(|v: &str| {
                verdict(match regex::Regex::new(v) {
                    Ok(r) if r.capture_names().flatten().any(|n| n == "group_key") => Ok(()),
                    Ok(_) => Err("the regex needs a (?P<group_key>…) capture".into()),
                    Err(e) => Err(format!("not a regex: {e}")),
                })
            })
            .prompt()?;
        *group_key_regex = Some(re);
        let rules =
            Text::new("file_rules as PATTERN=SPEC, separated by `;` (empty: by extension):")
                .with_validator(|v: &str| verdict(parse_rules(v).map(|_| ())))
                .prompt()?;
        *file_rules = parse_rules(&rules).unwrap_or_default();
        Ok(())
    }

    /// `found`: the sheets and class folders explore suggests, offered first.
    pub(super) fn metadata(
        &self,
        answers: &mut Answers,
        draft: &Draft,
        found: &[synup::explore::SuggestedMetadata],
    ) -> Step<()> {
        if !answers.required_fields.is_empty() {
            crate::console::note(&format!(
                "The collection's meta schema requires: {}",
                answers.required_fields.join(", ")
            ));
        }
        const SHEET: &str = "an Excel or CSV file";
        const FILENAME: &str = "a pattern in the file names";
        const SIDECAR: &str = "sidecar files beside the data (JSON or YAML)";
        const FIXED: &str = "fixed values for every unit";
        const DONE: &str = "done";
        // What explore found, as ready answers.
        let offers: Vec<(String, MetadataAnswer)> = found
            .iter()
            .map(|m| match m {
                synup::explore::SuggestedMetadata::Sheet(s) => (
                    format!(
                        "{} (column `{}` holds {} of {} unit keys)",
                        s.file, s.key_column, s.matched, s.units
                    ),
                    MetadataAnswer::Sheet {
                        file: s.file.clone(),
                        is_csv: s.is_csv,
                        key_column: Some(s.key_column.clone()),
                        columns: Vec::new(),
                    },
                ),
                synup::explore::SuggestedMetadata::Filename { regex, .. } => (
                    "the class folder above each file, as `label`".to_owned(),
                    MetadataAnswer::Filename {
                        regex: regex.clone(),
                        types: Vec::new(),
                    },
                ),
            })
            .collect();
        loop {
            let first = answers.metadata.is_empty();
            let mut options: Vec<&str> = offers
                .iter()
                .filter(|(_, a)| !answers.metadata.contains(a))
                .map(|(label, _)| label.as_str())
                .collect();
            options.extend([SHEET, FILENAME, SIDECAR, FIXED, DONE]);
            let done_at = options.len() - 1;
            let message = if first {
                "Where does unit metadata come from?"
            } else {
                "Another metadata source?"
            };
            let pick = Select::new(message, options)
                .with_starting_cursor(if first { 0 } else { done_at })
                .prompt()?;
            if let Some((_, offer)) = offers.iter().find(|(label, _)| label == pick) {
                answers.metadata.push(offer.clone());
                continue;
            }
            let answer = match pick {
                SHEET => self.sheet()?,
                FILENAME => self.filename(answers, draft)?,
                SIDECAR => MetadataAnswer::Sidecar {
                    template: Text::new("Sidecar path template:")
                        .with_default("{unit_dir}/meta.json")
                        .with_help_message(
                            "{unit_dir}, {group_key} and {stem} are filled in per unit",
                        )
                        .prompt()?,
                },
                FIXED => MetadataAnswer::Static(
                    parse_static(
                        &Text::new("Values as FIELD=VALUE, separated by commas:")
                            .with_validator(|v: &str| verdict(parse_static(v).map(|_| ())))
                            .prompt()?,
                    )
                    .unwrap_or_default(),
                ),
                _ => return Ok(()),
            };
            answers.metadata.push(answer);
        }
    }

    fn sheet(&self) -> Step<MetadataAnswer> {
        let dir = self.dir.to_path_buf();
        let file = Text::new("Spreadsheet (.xlsx .xlsm .xls .ods .csv), relative to the recipe:")
            .with_validator(move |f: &str| verdict(load_sheet(&dir, f.trim(), None).map(|_| ())))
            .prompt()?
            .trim()
            .to_owned();
        let table = match load_sheet(self.dir, &file, None) {
            Ok(t) => t,
            Err(e) => return fail(&e),
        };
        crate::console::note(&format!(
            "{}: {} rows; columns: {}",
            file,
            table.rows.len(),
            table.headers.join(", ")
        ));
        let key =
            Select::new("Which column holds the unit key?", table.headers.clone()).prompt()?;
        let headers = table.headers.clone();
        let types =
            Text::new("Column types as COLUMN: TYPE, separated by commas (empty: as read):")
                .with_help_message("types: string, integer, number, boolean, date, datetime")
                .with_validator(move |v: &str| {
                    verdict(parse_types(v).and_then(|t| {
                        match t.iter().find(|(c, _)| !headers.contains(c)) {
                            Some((c, _)) => Err(format!("`{c}` is not a column")),
                            None => Ok(()),
                        }
                    }))
                })
                .prompt()?;
        Ok(MetadataAnswer::Sheet {
            is_csv: file.to_ascii_lowercase().ends_with(".csv"),
            file,
            key_column: Some(key),
            columns: parse_types(&types).unwrap_or_default(),
        })
    }

    fn filename(&self, answers: &Answers, draft: &Draft) -> Step<MetadataAnswer> {
        let samples: Vec<String> = draft
            .plan(answers)
            .map(|p| {
                p.units
                    .iter()
                    .take(3)
                    .filter_map(|u| u.ok()?.files.values().next().map(|f| f.path.clone()))
                    .collect()
            })
            .unwrap_or_default();
        loop {
            let re = Text::new("Regex over the primary file's name, with (?P<field>…) captures:")
                .with_validator(|v: &str| verdict(check_filename_regex(v).map(|_| ())))
                .prompt()?;
            let r = check_filename_regex(&re).map_err(|_| Stop::Failed)?;
            for s in &samples {
                let name = s.rsplit('/').next().unwrap_or(s);
                let got: BTreeMap<&str, &str> = match r.captures(name) {
                    Some(c) => r
                        .capture_names()
                        .flatten()
                        .filter_map(|n| c.name(n).map(|m| (n, m.as_str())))
                        .collect(),
                    None => BTreeMap::new(),
                };
                crate::console::note(&format!("  {name} → {got:?}"));
            }
            if Confirm::new("Use this pattern?")
                .with_default(true)
                .prompt()?
            {
                return Ok(MetadataAnswer::Filename {
                    regex: re,
                    types: Vec::new(),
                });
            }
        }
    }
}

/// Asks which of the backend's data collections to use (or for an id, checked
/// at once); returns its id.
pub(super) fn pick_collection(s: &synup::target::synapse::Session) -> Step<u64> {
    let fetch = |id: u64| -> Result<(), String> {
        s.block_on(s.client.collection(synup::target::CollectionId(id)))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let listed = match s.block_on(s.client.collections()) {
        Ok(l) => l,
        Err(e) => {
            return fail(&format!(
                "cannot list data collections on {}: {e}",
                s.client.host()
            ));
        }
    };
    let mut options: Vec<String> = listed
        .iter()
        .map(|c| {
            let info = collection_info(c);
            let specs: Vec<&str> = info.specs.iter().map(|s| s.name.as_str()).collect();
            format!("{}  {}  ({})", info.id, info.name, specs.join(", "))
        })
        .collect();
    const BY_ID: &str = "another id …";
    options.push(BY_ID.into());
    let pick = Select::new("Which data collection?", options).prompt()?;
    if pick != BY_ID {
        return Ok(leading_id(&pick));
    }
    ask_id("Data collection id:", fetch)
}

/// Asks for an id, checking it at once with `check`.
fn ask_id<'a>(
    message: &'a str,
    check: impl Fn(u64) -> Result<(), String> + Clone + 'a,
) -> Step<u64> {
    let id = Text::new(message)
        .with_validator(move |v: &str| {
            verdict(match v.trim().parse::<u64>() {
                Ok(id) => check(id),
                Err(_) => Err("a number".into()),
            })
        })
        .prompt()?;
    Ok(id.trim().parse().unwrap_or_default())
}

/// The id a picked `"ID  name  (…)"` option starts with.
pub(super) fn leading_id(pick: &str) -> u64 {
    pick.split_whitespace()
        .next()
        .and_then(|i| i.parse().ok())
        .unwrap_or_default()
}

/// `ID  name  (provider)`, as storages are offered.
pub(super) fn storage_label(st: &Json) -> String {
    format!(
        "{}  {}  ({})",
        st.get("id").map(Json::to_string).unwrap_or_default(),
        st.get("name").and_then(Json::as_str).unwrap_or_default(),
        st.get("provider")
            .and_then(Json::as_str)
            .unwrap_or_default()
    )
}
