//! The plan: a plain, serialisable value. Its JSON form is the contract of
//! SPEC 4 (`format_version: 1`); `apply` executes exactly this value.

use std::collections::BTreeMap;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;
use serde_json::value::RawValue;

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub format_version: u32,
    pub plan_hash: String,
    pub recipe: RecipeRef,
    pub target: TargetRef,
    pub layout: LayoutRef,
    pub summary: Summary,
    /// A plan with no valid unit: what most likely went wrong, in one line.
    #[serde(default)]
    pub diagnosis: Option<String>,
    pub units: super::units::UnitList,
    pub unmatched: Vec<UnmatchedFile>,
    /// The unmatched files by reason, largest group first, with a hint each.
    #[serde(default)]
    pub unmatched_summary: Vec<UnmatchedGroup>,
    pub orphan_rows: Vec<OrphanRow>,
    pub warnings: Vec<PlanWarning>,
    /// JSON pointers of the values that hold a masked secret (`***`), as
    /// Terraform marks sensitive values; apply takes the real values from the
    /// recipe and environment (SPEC 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
    /// Fingerprints of every input, for staleness checks before apply.
    pub inputs: Inputs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeRef {
    pub name: String,
    /// As given on the command line.
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    pub backend: String,
    pub data_collection: String,
    /// local: the catalog folder as written in the recipe (or the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Unmatched files sharing a reason (and, for `extension_not_allowed`, a spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnmatchedGroup {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    pub count: u64,
    /// Up to two, as `root/path`.
    pub examples: Vec<String>,
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutRef {
    pub pattern: Option<u8>,
    pub group_key_regex: Option<String>,
    /// Inferred layouts only: why this grouping, with its counts (SPEC 2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Inferred layouts only: the next-best grouping and its counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_up: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub units: u64,
    pub create: u64,
    pub unchanged: u64,
    pub conflict: u64,
    pub invalid: u64,
    pub files_to_upload: u64,
    pub bytes_to_upload: u64,
    pub unmatched_files: u64,
    pub excluded_files: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Unchanged,
    Conflict,
    Invalid,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Unchanged => "unchanged",
            Action::Conflict => "conflict",
            Action::Invalid => "invalid",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedUnit {
    pub key: String,
    pub action: Action,
    /// Specs with exactly one file.
    pub files: SortedMap<PlannedFile>,
    /// The merged meta, kept as compact JSON text: a plan holds one per unit, and
    /// a parsed map costs ~10× the memory of its text. Read back compacted,
    /// so a plan re-indented by a tool keeps its hash.
    #[serde(deserialize_with = "compact_raw")]
    pub meta: Box<RawValue>,
    pub problems: Vec<crate::stages::validate::Problem>,
    /// conflict: what differs from the target's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
}

impl PartialEq for PlannedUnit {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && self.action == other.action
            && self.files == other.files
            && self.meta.get() == other.meta.get()
            && self.problems == other.problems
            && self.conflict == other.conflict
    }
}

/// A raw JSON value with the whitespace between tokens removed: key order and
/// number spelling stay exactly as written.
fn compact_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Box<RawValue>, D::Error> {
    let raw = Box::<RawValue>::deserialize(d)?;
    let text = raw.get();
    if !text.bytes().any(|b| b.is_ascii_whitespace()) {
        return Ok(raw);
    }
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    RawValue::from_string(out).map_err(serde::de::Error::custom)
}

/// Compact JSON text of a meta object.
pub fn meta_raw(meta: &Json) -> Box<RawValue> {
    let text = serde_json::to_string(meta).unwrap_or_else(|_| "{}".to_owned());
    RawValue::from_string(text)
        .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("{} is JSON"))
}

/// A small map with sorted string keys, stored as a vector (a `BTreeMap` node
/// costs about a kilobyte even for two entries); serialised as a JSON object.
/// Keys are shared (a plan names the same few specs a million times).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SortedMap<V>(Vec<(std::sync::Arc<str>, V)>);

impl<V> SortedMap<V> {
    pub fn from_sorted(mut entries: Vec<(std::sync::Arc<str>, V)>) -> Self {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Self(entries)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> + Clone {
        self.0.iter().map(|(k, v)| (&**k, v))
    }
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| &**k)
    }
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, v)| v)
    }
}

impl SortedMap<PlannedFile> {
    /// (spec, SHA-1) pairs in spec order; a file not hashed yet has `""`.
    pub fn checksums(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(spec, f)| (&**spec, f.sha1.as_deref().unwrap_or_default()))
    }
}

impl<V: Serialize> Serialize for SortedMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SortedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = SortedMap<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = access.next_entry::<String, V>()? {
                    entries.push((k.into(), v));
                }
                Ok(SortedMap::from_sorted(entries))
            }
        }
        d.deserialize_map(V2(std::marker::PhantomData))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedFile {
    /// The root as written in the recipe; shared by every file under it.
    pub root: std::sync::Arc<str>,
    pub path: String,
    pub size: u64,
    /// `null` for a file under a `checksum: apply` source: its SHA-1 is learned
    /// while it is uploaded.
    pub sha1: Option<String>,
    /// The object's version tag (ETag, or last-modified), set when `sha1` is
    /// deferred: the file's identity is then root + path + size + etag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl PlannedFile {
    /// `root/path`, as reports and errors name the file.
    pub fn shown(&self) -> String {
        format!("{}/{}", self.root.trim_end_matches('/'), self.path)
    }

    /// What identifies the content: the SHA-1, or for a deferred file its
    /// shown path, size and version tag.
    pub fn identity(&self) -> String {
        match &self.sha1 {
            Some(sha) => sha.clone(),
            None => Self::identity_of(&self.shown(), self.size, self.etag.as_deref()),
        }
    }

    /// A deferred file's identity (never a valid SHA-1: it holds NULs).
    pub fn identity_of(shown: &str, size: u64, etag: Option<&str>) -> String {
        format!("{shown}\0{size}\0{}", etag.unwrap_or_default())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnmatchedFile {
    pub root: String,
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrphanRow {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    pub row: u32,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanWarning {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub recipe_sha256: String,
    /// Variables the recipe used; secrets as `***`.
    pub env: BTreeMap<String, String>,
    pub collection_sha256: String,
    pub metadata: Vec<MetadataInput>,
    pub listings: Vec<ListingInput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataInput {
    /// As written in the recipe.
    pub source: String,
    /// The file used, relative to the recipe's folder when it is inside it.
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListingInput {
    pub root: String,
    pub files: u64,
    /// SHA-256 over (relative path, size, SHA-1) of every discovered file.
    pub sha256: String,
}

impl Plan {
    /// Streams the JSON form (UTF-8, no `\u` escapes for non-ASCII, one
    /// trailing newline) to `w` (a plan can be hundreds of MB; it is never
    /// held as one string when written to a file or stdout).
    pub fn write_json(&self, mut w: impl std::io::Write) -> std::io::Result<()> {
        self.write_form(&mut w, true, &self.plan_hash)?;
        w.write_all(b"\n")
    }

    /// The compact JSON form (what `plan_hash` is computed over, with the hash).
    pub fn to_compact_json(&self) -> String {
        let mut out = Vec::new();
        let _ = self.write_form(&mut out, false, &self.plan_hash);
        String::from_utf8(out).unwrap_or_default()
    }

    /// `sha256:` over the compact JSON form with an empty `plan_hash`.
    pub fn compute_hash(&self) -> String {
        self.compute_hash_seeing(&mut |_| {})
    }

    /// This plan with other units: every other field copied, the plan's own
    /// units never (a shard's slice of a million-unit plan copies its slice).
    pub fn with_units(&self, units: super::units::UnitList) -> Plan {
        let Plan {
            format_version,
            plan_hash,
            recipe,
            target,
            layout,
            summary,
            diagnosis,
            units: _,
            unmatched,
            unmatched_summary,
            orphan_rows,
            warnings,
            sensitive,
            inputs,
        } = self;
        Plan {
            format_version: *format_version,
            plan_hash: plan_hash.clone(),
            recipe: recipe.clone(),
            target: target.clone(),
            layout: layout.clone(),
            summary: summary.clone(),
            diagnosis: diagnosis.clone(),
            units,
            unmatched: unmatched.clone(),
            unmatched_summary: unmatched_summary.clone(),
            orphan_rows: orphan_rows.clone(),
            warnings: warnings.clone(),
            sensitive: sensitive.clone(),
            inputs: inputs.clone(),
        }
    }

    /// [`Self::compute_hash`], showing the hashed text to `see` piece by
    /// piece on the way (the planner looks for secrets in the same pass).
    pub fn compute_hash_seeing(&self, see: &mut dyn FnMut(&[u8])) -> String {
        use sha2::Digest;
        struct Seeing<'a> {
            hasher: sha2::Sha256,
            see: &'a mut dyn FnMut(&[u8]),
        }
        impl std::io::Write for Seeing<'_> {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.hasher.update(buf);
                (self.see)(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut w = std::io::BufWriter::with_capacity(
            1 << 16,
            Seeing {
                hasher: sha2::Sha256::new(),
                see,
            },
        );
        let _ = self.write_form(&mut w, false, "");
        let hasher = match w.into_inner() {
            Ok(s) => s.hasher,
            Err(_) => sha2::Sha256::new(),
        };
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }

    /// Writes the plan as JSON. Compact, it is exactly what `serde_json` writes
    /// for the derived `Serialize` (the form `plan_hash` is computed over).
    /// Pretty, it is indented like `serde_json`'s pretty form except that each
    /// unit, unmatched file and orphan row is one compact line: a plan of a
    /// hundred thousand units stays half the size, and diffs line by line.
    /// Records are rendered in parallel a window at a time, which bounds the
    /// memory it takes.
    fn write_form(
        &self,
        w: &mut impl std::io::Write,
        pretty: bool,
        plan_hash: &str,
    ) -> std::io::Result<()> {
        let (open, next, colon) = if pretty {
            ("{\n  ", ",\n  ", ": ")
        } else {
            ("{", ",", ":")
        };
        let mut first = true;
        let mut field = |w: &mut dyn std::io::Write, name: &str| -> std::io::Result<()> {
            w.write_all(if first { open } else { next }.as_bytes())?;
            first = false;
            serde_json::to_writer(&mut *w, name)?;
            w.write_all(colon.as_bytes())
        };
        macro_rules! value {
            ($name:ident) => {
                field(w, stringify!($name))?;
                write_value(w, &self.$name, pretty)?;
            };
        }
        macro_rules! rows {
            ($name:ident) => {
                field(w, stringify!($name))?;
                write_rows(w, &self.$name, pretty)?;
            };
        }
        value!(format_version);
        field(w, "plan_hash")?;
        write_value(w, plan_hash, pretty)?;
        value!(recipe);
        value!(target);
        value!(layout);
        value!(summary);
        value!(diagnosis);
        field(w, "units")?;
        write_unit_rows(w, &self.units, pretty)?;
        rows!(unmatched);
        value!(unmatched_summary);
        rows!(orphan_rows);
        value!(warnings);
        if !self.sensitive.is_empty() {
            value!(sensitive);
        }
        value!(inputs);
        w.write_all(if pretty { &b"\n}"[..] } else { &b"}"[..] })
    }

    /// Whether `text` looks like a saved plan (for `apply ARG`).
    pub fn looks_like_plan(text: impl std::io::Read) -> bool {
        // Only the two markers are read; the rest (possibly hundreds of MB of
        // units) is skipped without building a JSON tree.
        #[derive(Deserialize)]
        struct Markers {
            format_version: Option<serde::de::IgnoredAny>,
            plan_hash: Option<serde::de::IgnoredAny>,
        }
        serde_json::from_reader::<_, Markers>(text)
            .is_ok_and(|m| m.format_version.is_some() && m.plan_hash.is_some())
    }
}

/// A top-level field's value as `serde_json` writes it; pretty output is
/// indented one level by re-indenting each line (every newline in pretty JSON
/// is structural: newlines inside strings are escaped).
fn write_value<T: Serialize + ?Sized>(
    w: &mut (impl std::io::Write + ?Sized),
    value: &T,
    pretty: bool,
) -> std::io::Result<()> {
    if !pretty {
        return serde_json::to_writer(w, value).map_err(Into::into);
    }
    let text = serde_json::to_vec_pretty(value)?;
    let mut lines = text.split(|&b| b == b'\n');
    if let Some(line) = lines.next() {
        w.write_all(line)?;
    }
    for line in lines {
        w.write_all(b"\n  ")?;
        w.write_all(line)?;
    }
    Ok(())
}

/// The units' array: their lines as held (pretty: one per line).
fn write_unit_rows(
    w: &mut (impl std::io::Write + ?Sized),
    units: &super::units::UnitList,
    pretty: bool,
) -> std::io::Result<()> {
    if units.is_empty() {
        return w.write_all(b"[]");
    }
    w.write_all(b"[")?;
    let mut lines = units.lines();
    let mut first = true;
    while let Some(line) = lines.next_line() {
        if !first {
            w.write_all(b",")?;
        }
        first = false;
        if pretty {
            w.write_all(b"\n    ")?;
        }
        w.write_all(line?)?;
    }
    w.write_all(if pretty { &b"\n  ]"[..] } else { &b"]"[..] })
}

/// An array of records, each compact (pretty: one per line), rendered in
/// parallel windows.
fn write_rows<T: Serialize + Sync>(
    w: &mut (impl std::io::Write + ?Sized),
    rows: &[T],
    pretty: bool,
) -> std::io::Result<()> {
    use rayon::prelude::*;
    if rows.is_empty() {
        return w.write_all(b"[]");
    }
    w.write_all(b"[")?;
    for (i, window) in rows.chunks(4096).enumerate() {
        let rendered: Vec<Vec<u8>> = window
            .par_iter()
            .map(|row| serde_json::to_vec(row))
            .collect::<Result<_, _>>()?;
        for (j, row) in rendered.iter().enumerate() {
            if i > 0 || j > 0 {
                w.write_all(b",")?;
            }
            if pretty {
                w.write_all(b"\n    ")?;
            }
            w.write_all(row)?;
        }
    }
    w.write_all(if pretty { &b"\n  ]"[..] } else { &b"]"[..] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "compact_raw")]
        meta: Box<RawValue>,
    }

    #[test]
    fn meta_read_back_is_compacted_without_reordering() {
        let h: Holder = serde_json::from_str(
            "{\"meta\": {\n  \"z\": 1.50,\n  \"a\": \"x \\\" y\\\\\",\n  \"b\": [1, 2]\n}}",
        )
        .unwrap();
        assert_eq!(h.meta.get(), r#"{"z":1.50,"a":"x \" y\\","b":[1,2]}"#);
    }
}
