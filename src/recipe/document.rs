//! The recipe as a tree of spanned values, independent of its syntax.
//!
//! YAML (through `serde-saphyr`) and TOML (through `toml`) are both read into
//! [`Node`]s that remember where every value and every key came from. Everything
//! after parsing (interpolation, schema checks, semantic checks) works on this
//! one tree, so YAML and TOML recipes get the same error quality.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A byte range in the recipe text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn new(offset: usize, len: usize) -> Self {
        Self { offset, len }
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        (span.offset, span.len).into()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }
}

/// How a syntax crate wraps a value with its location.
trait SpanFlavor: Sized {
    type Wrapped<T: for<'de> Deserialize<'de>>: for<'de> Deserialize<'de>;
    fn unwrap<T: for<'de> Deserialize<'de>>(wrapped: Self::Wrapped<T>, text: &str) -> (T, Span);
}

struct YamlFlavor;
struct TomlFlavor;

impl SpanFlavor for YamlFlavor {
    type Wrapped<T: for<'de> Deserialize<'de>> = serde_saphyr::Spanned<T>;
    fn unwrap<T: for<'de> Deserialize<'de>>(w: Self::Wrapped<T>, _text: &str) -> (T, Span) {
        let span = w.referenced.span();
        let offset = span.byte_offset().unwrap_or(span.offset()) as usize;
        let len = span.byte_len().unwrap_or(span.len()) as usize;
        (w.value, Span::new(offset, len.max(1)))
    }
}

impl SpanFlavor for TomlFlavor {
    type Wrapped<T: for<'de> Deserialize<'de>> = toml::Spanned<T>;
    fn unwrap<T: for<'de> Deserialize<'de>>(w: Self::Wrapped<T>, _text: &str) -> (T, Span) {
        let range = w.span();
        let span = Span::new(range.start, (range.end - range.start).max(1));
        (w.into_inner(), span)
    }
}

/// A value read through flavor `F`; only a vehicle for the `Deserialize` impl.
struct Raw<F>(Value, PhantomData<F>);
/// A key read through flavor `F`.
struct RawKey<F>(String, PhantomData<F>);

impl<'de, F: SpanFlavor> Deserialize<'de> for RawKey<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| RawKey(s, PhantomData))
    }
}

impl<'de, F: SpanFlavor> Deserialize<'de> for Raw<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor::<F>(PhantomData))
    }
}

struct RawVisitor<F>(PhantomData<F>);

impl<'de, F: SpanFlavor> Visitor<'de> for RawVisitor<F> {
    type Value = Raw<F>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Raw(Value::Null, PhantomData))
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Raw(Value::Null, PhantomData))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Raw(Value::Bool(v), PhantomData))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Raw(Value::Int(v), PhantomData))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Raw(
            i64::try_from(v).map_or(Value::Float(v as f64), Value::Int),
            PhantomData,
        ))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Raw(Value::Float(v), PhantomData))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Raw(Value::Str(v.to_owned()), PhantomData))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Raw(Value::Str(v), PhantomData))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<F::Wrapped<Raw<F>>>()? {
            let (Raw(value, _), span) = F::unwrap(item, "");
            items.push(Node { value, span });
        }
        Ok(Raw(Value::Seq(items), PhantomData))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(Key, Node)> = Vec::new();
        // A set, not a scan of `entries`: a mapping of 100,000 keys (a big
        // `static` block) must load in linear time.
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<F::Wrapped<RawKey<F>>>()? {
            let (RawKey(name, _), key_span) = F::unwrap(key, "");
            let value = map.next_value::<F::Wrapped<Raw<F>>>()?;
            let (Raw(value, _), span) = F::unwrap(value, "");
            if !seen.insert(name.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{name}`")));
            }
            entries.push((
                Key {
                    name,
                    span: key_span,
                },
                Node { value, span },
            ));
        }
        Ok(Raw(Value::Map(entries), PhantomData))
    }
}

/// A syntax error, with the location the parser reported.
#[derive(Debug)]
pub struct SyntaxError {
    pub message: String,
    pub span: Span,
    /// The key, when the error is a key repeated in one mapping (the parsers
    /// word this in their own terms, naming options synup does not expose).
    pub duplicate_key: Option<String>,
    /// The parser's safety budget that the document exceeded (serde-saphyr's
    /// defaults: 250,000 nodes, 1,000,000 events, …), e.g. `Nodes`.
    pub budget: Option<String>,
}

/// Parses YAML text into a spanned tree. An empty document is `Value::Null`.
pub fn parse_yaml(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(Node {
            value: Value::Null,
            span: Span::new(0, 0),
        });
    }
    match serde_saphyr::from_str::<serde_saphyr::Spanned<Raw<YamlFlavor>>>(text) {
        Ok(w) => {
            let (Raw(value, _), span) = YamlFlavor::unwrap(w, text);
            Ok(Node { value, span })
        }
        Err(err) => {
            let span = err
                .location()
                .map(|loc| offset_of(text, loc.line() as usize, loc.column() as usize))
                .unwrap_or_default();
            let message = first_line(&err.to_string());
            let duplicate_key = message
                .split_once("duplicate mapping key: ")
                .map(|(_, rest)| {
                    rest.rsplit_once(", set DuplicateKeyPolicy")
                        .map_or(rest, |(key, _)| key)
                        .to_owned()
                });
            let budget = message.split_once("budget breached: ").map(|(_, rest)| {
                rest.split([' ', '{', '('])
                    .next()
                    .unwrap_or(rest)
                    .to_owned()
            });
            Err(SyntaxError {
                message,
                span,
                duplicate_key,
                budget,
            })
        }
    }
}

/// Parses TOML text into a spanned tree.
pub fn parse_toml(text: &str) -> Result<Node, SyntaxError> {
    match toml::from_str::<toml::Spanned<Raw<TomlFlavor>>>(text) {
        Ok(w) => {
            let (Raw(value, _), span) = TomlFlavor::unwrap(w, text);
            Ok(Node { value, span })
        }
        Err(err) => {
            let span = err
                .span()
                .map(|r| Span::new(r.start, (r.end - r.start).max(1)))
                .unwrap_or_default();
            let message = err.message().trim().to_owned();
            let duplicate_key = message.starts_with("duplicate key").then(|| {
                text.get(span.offset..span.offset + span.len)
                    .unwrap_or_default()
                    .trim()
                    .trim_matches('"')
                    .to_owned()
            });
            Err(SyntaxError {
                message,
                span,
                duplicate_key,
                budget: None,
            })
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_owned()
}

/// Byte offset of a 1-based line and column (columns count characters).
pub fn offset_of(text: &str, line: usize, column: usize) -> Span {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let col = l
                .char_indices()
                .nth(column.saturating_sub(1))
                .map_or(l.trim_end_matches('\n').len(), |(b, _)| b);
            return Span::new(offset + col, 1);
        }
        offset += l.len();
    }
    Span::new(text.len(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_spans_point_at_values_and_keys() {
        let text = "version: 1\nname: demo\nsource:\n  path: ./data\n";
        let node = parse_yaml(text).unwrap();
        let Value::Map(entries) = node.value else {
            panic!("map")
        };
        let (key, value) = &entries[1];
        assert_eq!(&text[key.span.offset..key.span.offset + 4], "name");
        assert_eq!(&text[value.span.offset..value.span.offset + 4], "demo");
        let Value::Map(src) = &entries[2].1.value else {
            panic!("map")
        };
        assert_eq!(&text[src[0].1.span.offset..][..6], "./data");
    }

    #[test]
    fn toml_spans_point_at_values_and_keys() {
        let text = "version = 1\nname = \"demo\"\n[source]\npath = \"./data\"\n";
        let node = parse_toml(text).unwrap();
        let Value::Map(entries) = node.value else {
            panic!("map")
        };
        let (key, value) = entries.iter().find(|(k, _)| k.name == "name").unwrap();
        assert_eq!(&text[key.span.offset..key.span.offset + 4], "name");
        assert!(text[value.span.offset..].starts_with("\"demo\""));
    }

    #[test]
    fn yaml_scalars_are_typed_plain_and_quoted() {
        let node = parse_yaml("a: 32\nb: '32'\nc: true\nd: ~\ne: 1.5\n").unwrap();
        let Value::Map(e) = node.value else { panic!() };
        assert_eq!(e[0].1.value, Value::Int(32));
        assert_eq!(e[1].1.value, Value::Str("32".into()));
        assert_eq!(e[2].1.value, Value::Bool(true));
        assert_eq!(e[3].1.value, Value::Null);
        assert_eq!(e[4].1.value, Value::Float(1.5));
    }

    #[test]
    fn yaml_syntax_error_has_a_location() {
        let err = parse_yaml("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.span.offset > 0, "{err:?}");
    }

    #[test]
    fn yaml_duplicate_keys_are_errors() {
        assert!(parse_yaml("a: 1\na: 2\n").is_err());
    }
}
