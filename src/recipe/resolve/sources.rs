//! Where files come from: each root (local folder, URL, or a path relative
//! to the target's storage), and `source` vs `assets` with their rules.

use super::*;

impl Cx<'_> {
    pub(super) fn root(
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
                Err(e) => {
                    self.err(
                        RecipeError::new(Code::UnsupportedSource, e.to_string(), self.span(&pointer))
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
                Err(e) => {
                    self.err(
                        RecipeError::new(
                            Code::UnsupportedSource,
                            format!("`{written}` is relative to storage {} ({}): {e}", storage.id, storage.provider),
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

    pub(super) fn source_mode(&mut self, specs: &[FileSpec]) -> Option<SourceMode> {
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

    pub(super) fn spec_ref(
        &mut self,
        specs: &[FileSpec],
        name: &str,
        pointer: &str,
    ) -> Option<usize> {
        self.spec_lookup(specs, name, self.span(pointer))
    }
    pub(super) fn spec_ref_key(
        &mut self,
        specs: &[FileSpec],
        name: &str,
        pointer: &str,
    ) -> Option<usize> {
        self.spec_lookup(specs, name, self.key_span(pointer))
    }
    pub(super) fn spec_lookup(
        &mut self,
        specs: &[FileSpec],
        name: &str,
        span: Option<crate::recipe::document::Span>,
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

    pub(super) fn globset(&mut self, pointer: &str, globs: &[String]) -> Option<GlobSet> {
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
}
