//! Secret values, and masking them in everything synup writes for people
//! (SPEC 2: errors, plan text and JSON, status, reports, logs).
//!
//! The registry is process-wide on purpose: secrets are learned in a few
//! places (the recipe loader, the credentials reader) but text reaches people
//! through many (every error, every renderer, every report). A `&Secrets`
//! threaded through all of them would leak the first time one call site
//! forgot it; one registry that every sink consults cannot be forgotten.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret prints as.
pub const MASK: &str = "***";

/// Shorter secrets are masked only where they are a whole value: masking
/// every `ab` inside paths and messages would garble them.
const MIN_SUBSTRING_LEN: usize = 4;

/// Registered values, longest first (so a secret containing another is
/// masked whole), each also in its JSON-escaped form when that differs.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remembers `value` as a secret from now on.
pub fn register(value: &str) {
    let value = value.trim();
    if value.is_empty() || value == MASK {
        return;
    }
    let mut forms = vec![value.to_owned()];
    if let Ok(json) = serde_json::to_string(value) {
        let escaped = &json[1..json.len() - 1];
        if escaped != value {
            forms.push(escaped.to_owned());
        }
    }
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if !all.contains(&form) {
            all.push(form);
        }
    }
    all.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
}

/// `text` with every registered secret replaced by [`MASK`].
pub fn mask(text: &str) -> Cow<'_, str> {
    let all = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in all.iter() {
        if secret.len() < MIN_SUBSTRING_LEN {
            if out == secret.as_str() {
                out = Cow::Borrowed(MASK);
            }
        } else if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

/// Looks for registered secrets in JSON text that arrives in pieces (a plan
/// as it is hashed), so nothing has to hold the whole text to ask.
pub struct JsonScanner {
    /// Secrets as they appear in JSON text; a short one only as a whole
    /// string value, as [`mask`] treats it.
    needles: Vec<Vec<u8>>,
    /// The end of the text so far: a secret may straddle two pieces.
    tail: Vec<u8>,
    keep: usize,
    found: bool,
}

impl JsonScanner {
    pub fn new() -> Self {
        let needles: Vec<Vec<u8>> = SECRETS
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|s| {
                if s.len() < MIN_SUBSTRING_LEN {
                    format!("\"{s}\"").into_bytes()
                } else {
                    s.clone().into_bytes()
                }
            })
            .collect();
        let keep = needles.iter().map(Vec::len).max().unwrap_or(1) - 1;
        Self {
            needles,
            tail: Vec::new(),
            keep,
            found: false,
        }
    }

    pub fn feed(&mut self, piece: &[u8]) {
        if self.found || self.needles.is_empty() {
            return;
        }
        let edge = self.tail.len();
        self.tail
            .extend_from_slice(&piece[..piece.len().min(self.keep)]);
        let hit = |hay: &[u8]| {
            self.needles
                .iter()
                .any(|n| memchr::memmem::find(hay, n).is_some())
        };
        // Across the edge, then within the piece.
        self.found = (edge > 0 && hit(&self.tail)) || hit(piece);
        let end = if piece.len() >= self.keep {
            &piece[piece.len() - self.keep..]
        } else {
            &self.tail[self.tail.len().saturating_sub(self.keep)..]
        };
        self.tail = end.to_vec();
    }

    pub fn found(&self) -> bool {
        self.found
    }
}

impl Default for JsonScanner {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_inside_text_and_whole_short_values() {
        register("s3cr3t-value");
        register("ab");
        assert_eq!(mask("s3://b/s3cr3t-value/x"), "s3://b/***/x");
        assert_eq!(mask("ab"), "***");
        assert_eq!(mask("table"), "table");
        assert_eq!(mask("cab"), "cab");
        assert_eq!(mask("***"), "***");
    }

    #[test]
    fn longer_secret_masked_whole() {
        register("tok-1234");
        register("tok-1234-extra");
        assert_eq!(mask("x tok-1234-extra y"), "x *** y");
    }

    #[test]
    fn the_scanner_finds_a_secret_split_across_pieces() {
        register("split-secret-99");
        let text = br#"{"a":"x","b":"pre-split-secret-99-post"}"#;
        for cut in 0..text.len() {
            let mut s = JsonScanner::new();
            s.feed(&text[..cut]);
            s.feed(&text[cut..]);
            assert!(s.found(), "cut at {cut}");
        }
        let mut s = JsonScanner::new();
        s.feed(br#"{"a":"split-secret-9"}"#);
        assert!(!s.found());
    }

    #[test]
    fn json_escaped_form_is_masked_too() {
        register("pa\"ss\\word");
        let json = serde_json::to_string("u pa\"ss\\word").unwrap();
        assert_eq!(mask(&json), "\"u ***\"");
    }
}
