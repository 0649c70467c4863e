//! `${VAR}` and `${VAR:-default}` substitution in recipe values.
//!
//! Substitution happens on string scalars before typing, so `workers: ${N:-32}`
//! becomes the integer 32. Keys are never interpolated. `$${` is a literal `${`.

use std::collections::BTreeMap;

use super::document::{Node, Span, Value};

/// One variable that a recipe used, as the plan fingerprints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedVar {
    pub name: String,
    /// `None` when the variable is a secret; its value never leaves this module.
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpolationError {
    Unset { name: String, span: Span },
    Unterminated { span: Span },
    BadName { name: String, span: Span },
}

/// Names that mark a variable's value as a secret.
pub fn is_secret_var(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASSWORD", "KEY"]
        .iter()
        .any(|m| upper.contains(m))
}

/// Result of interpolating a whole document.
#[derive(Debug, Default)]
pub struct Interpolation {
    pub vars: BTreeMap<String, UsedVar>,
    /// Spans of values that hold a secret variable's value.
    pub secret_spans: Vec<Span>,
    pub errors: Vec<InterpolationError>,
}

/// Replaces variables in every string value of `node`, in place.
pub fn interpolate(node: &mut Node, env: &dyn Fn(&str) -> Option<String>) -> Interpolation {
    let mut out = Interpolation::default();
    walk(node, env, &mut out);
    out
}

fn walk(node: &mut Node, env: &dyn Fn(&str) -> Option<String>, out: &mut Interpolation) {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| walk(n, env, out)),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, n)| walk(n, env, out)),
        Value::Str(s) if s.contains('$') => match expand(s, node.span, env) {
            Ok(Expanded {
                text,
                vars,
                changed,
            }) => {
                let mut secret = false;
                for (name, value) in vars {
                    let is_secret = is_secret_var(&name);
                    secret |= is_secret;
                    if is_secret {
                        crate::secrets::register(&value);
                    }
                    out.vars.insert(
                        name.clone(),
                        UsedVar {
                            name,
                            value: if is_secret { None } else { Some(value) },
                        },
                    );
                }
                if secret {
                    out.secret_spans.push(node.span);
                }
                node.value = if changed {
                    retype(text)
                } else {
                    Value::Str(text)
                };
            }
            Err(errs) => out.errors.extend(errs),
        },
        _ => {}
    }
}

struct Expanded {
    text: String,
    vars: Vec<(String, String)>,
    /// Whether any variable was substituted (then the result is re-typed).
    changed: bool,
}

fn expand(
    s: &str,
    span: Span,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Expanded, Vec<InterpolationError>> {
    let mut text = String::with_capacity(s.len());
    let mut vars = Vec::new();
    let mut errors = Vec::new();
    let mut changed = false;
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        text.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(literal_rest) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = literal_rest;
        } else if let Some(body) = after.strip_prefix("${") {
            let Some(end) = body.find('}') else {
                errors.push(InterpolationError::Unterminated { span });
                return Err(errors);
            };
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                errors.push(InterpolationError::BadName {
                    name: name.to_owned(),
                    span,
                });
            } else {
                match env(name).or_else(|| default.map(str::to_owned)) {
                    Some(value) => {
                        text.push_str(&value);
                        vars.push((name.to_owned(), value));
                        changed = true;
                    }
                    None => errors.push(InterpolationError::Unset {
                        name: name.to_owned(),
                        span,
                    }),
                }
            }
            rest = &body[end + 1..];
        } else {
            text.push('$');
            rest = &after[1..];
        }
    }
    text.push_str(rest);
    if errors.is_empty() {
        Ok(Expanded {
            text,
            vars,
            changed,
        })
    } else {
        Err(errors)
    }
}

/// Types an interpolated scalar as YAML's core schema would have typed it.
fn retype(text: String) -> Value {
    let t = text.trim();
    match t {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        "null" | "Null" | "NULL" | "~" => return Value::Null,
        _ => {}
    }
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = t.parse::<i64>()
    {
        return Value::Int(i);
    }
    if t.contains(['.', 'e', 'E'])
        && t.bytes().any(|b| b.is_ascii_digit())
        && let Ok(f) = t.parse::<f64>()
        && f.is_finite()
    {
        return Value::Float(f);
    }
    Value::Str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(s: &str) -> Node {
        Node {
            value: Value::Str(s.into()),
            span: Span::new(0, s.len()),
        }
    }
    fn env(name: &str) -> Option<String> {
        match name {
            "N" => Some("8".into()),
            "HOST" => Some("example".into()),
            "API_TOKEN" => Some("t0p".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_and_types() {
        let mut n = node("${N:-32}");
        let r = interpolate(&mut n, &env);
        assert_eq!(n.value, Value::Int(8));
        assert_eq!(r.vars["N"].value.as_deref(), Some("8"));
        let mut n = node("${MISSING:-32}");
        interpolate(&mut n, &env);
        assert_eq!(n.value, Value::Int(32));
    }

    #[test]
    fn text_around_variables_stays_text() {
        let mut n = node("https://${HOST}/api");
        interpolate(&mut n, &env);
        assert_eq!(n.value, Value::Str("https://example/api".into()));
    }

    #[test]
    fn unset_without_default_is_an_error() {
        let mut n = node("${NOPE}");
        let r = interpolate(&mut n, &env);
        assert!(
            matches!(&r.errors[..], [InterpolationError::Unset { name, .. }] if name == "NOPE")
        );
    }

    #[test]
    fn double_dollar_is_literal() {
        let mut n = node("$${HOST} costs $5");
        let r = interpolate(&mut n, &env);
        assert_eq!(n.value, Value::Str("${HOST} costs $5".into()));
        assert!(r.vars.is_empty());
    }

    #[test]
    fn secret_values_are_not_recorded() {
        let mut n = node("${API_TOKEN}");
        let r = interpolate(&mut n, &env);
        assert_eq!(r.vars["API_TOKEN"].value, None);
        assert_eq!(r.secret_spans.len(), 1);
    }

    #[test]
    fn quoted_digits_without_variables_stay_strings() {
        let mut n = node("0042");
        interpolate(&mut n, &env);
        assert_eq!(n.value, Value::Str("0042".into()));
    }
}
