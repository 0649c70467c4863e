//! Masking secrets in a plan (SPEC 2): every string value (and object key)
//! holding a registered secret is written with the secret as `***`, and its
//! JSON pointer is listed under `sensitive`, as Terraform marks sensitive
//! values. `plan_hash` is computed over the masked plan, so the secret enters
//! the hash only as the fixed placeholder.

use serde_json::Value as Json;

use super::model::Plan;
use crate::secrets;

/// The plan as people may see it, or `None` when it holds no secret. Call it
/// when a [`secrets::JsonScanner`] found one in the plan's text (the planner
/// scans while hashing): it rebuilds the plan through a JSON tree.
pub fn masked(plan: &Plan) -> Option<Plan> {
    let text = plan.to_compact_json();
    let mut value: Json = serde_json::from_str(&text).ok()?;
    let mut sensitive = Vec::new();
    mask_value(&mut value, &mut String::new(), &mut sensitive);
    if sensitive.is_empty() {
        return None;
    }
    sensitive.sort();
    sensitive.dedup();
    if let Json::Object(map) = &mut value {
        map.insert("plan_hash".into(), Json::String(String::new()));
        map.insert(
            "sensitive".into(),
            Json::Array(sensitive.into_iter().map(Json::String).collect()),
        );
    }
    // Through text: a unit's meta is kept as raw JSON text, which only a
    // deserializer reading text can produce.
    let mut masked: Plan = serde_json::from_str(&serde_json::to_string(&value).ok()?).ok()?;
    masked.plan_hash = masked.compute_hash();
    Some(masked)
}

fn mask_value(value: &mut Json, pointer: &mut String, out: &mut Vec<String>) {
    match value {
        Json::String(s) => {
            if let std::borrow::Cow::Owned(m) = secrets::mask(s) {
                *s = m;
                out.push(pointer.clone());
            }
        }
        Json::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                mask_value(item, pointer, out);
                pointer.truncate(len);
            }
        }
        Json::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut item) in entries {
                let key = match secrets::mask(&key) {
                    std::borrow::Cow::Owned(m) => {
                        out.push(format!("{pointer}/{}", segment(&m)));
                        m
                    }
                    std::borrow::Cow::Borrowed(_) => key,
                };
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&segment(&key));
                mask_value(&mut item, pointer, out);
                pointer.truncate(len);
                map.insert(key, item);
            }
        }
        _ => {}
    }
}

/// A JSON pointer segment (RFC 6901: `~` → `~0`, `/` → `~1`).
fn segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
