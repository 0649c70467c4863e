//! JSON comparison shared by the recipe resolver, the planner's diff and
//! the target's views.

use serde_json::Value as Json;

/// JSON equality as the diff needs it: key order ignored, numbers by value.
pub fn json_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// A command's JSON document, pretty-printed with `format_version` first
/// (serde_json's maps sort their keys; every other key keeps that order, so
/// all commands print one key order).
pub fn to_pretty_versioned(doc: &Json) -> String {
    let Json::Object(map) = doc else {
        return serde_json::to_string_pretty(doc).unwrap_or_default() + "\n";
    };
    let Some(version) = map.get("format_version") else {
        return serde_json::to_string_pretty(doc).unwrap_or_default() + "\n";
    };
    let mut rest = map.clone();
    rest.remove("format_version");
    let body = serde_json::to_string_pretty(&Json::Object(rest)).unwrap_or_default();
    let first = format!("{{\n  \"format_version\": {version}");
    match body.strip_prefix("{\n") {
        Some(fields) => format!("{first},\n{fields}\n"),
        None => format!("{first}\n}}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value_and_keys_by_set() {
        assert!(json_equal(
            &json!({"a": 1, "b": [1.0]}),
            &json!({"b": [1], "a": 1.0})
        ));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": "1"})));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": null})));
    }

    #[test]
    fn format_version_comes_first_and_the_rest_stays_sorted() {
        let doc = json!({"b": [1], "format_version": 1, "a": {"z": 1, "y": 2}});
        let text = to_pretty_versioned(&doc);
        assert!(
            text.starts_with("{\n  \"format_version\": 1,\n  \"a\""),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Json>(&text).unwrap(), doc);
        assert_eq!(
            to_pretty_versioned(&json!({"format_version": 1})),
            "{\n  \"format_version\": 1\n}\n"
        );
    }
}
