//! The fingerprint of a root's listing: what `apply PLAN` compares to decide
//! whether the files changed since the plan was made.

use sha2::{Digest, Sha256};

use crate::source::{Sha1Digest, SourceScan};

/// SHA-256 over every listed file's (path, size, SHA-1), then the names that
/// are not UTF-8. `sha1_of(i)` is the digest of the `i`-th file, or `None`
/// when it was not hashed (not a unit file, or deferred); `by_tag` adds each
/// object's version tag (a remote root whose files are identified by ETag).
pub fn listing_sha256(
    scan: &SourceScan,
    sha1_of: impl Fn(usize) -> Option<Sha1Digest>,
    by_tag: bool,
) -> String {
    let mut h = Sha256::new();
    for (i, f) in scan.files.iter().enumerate() {
        h.update(f.rel.as_bytes());
        h.update(b"\0");
        h.update(f.size.to_le_bytes());
        h.update(sha1_of(i).unwrap_or_default());
        if by_tag {
            // Identity is URL + size + ETag: a new version changes the listing.
            h.update(f.tag.unwrap_or_default().as_bytes());
        }
        h.update(b"\n");
    }
    for bad in &scan.non_utf8 {
        h.update(format!("{bad}\0?\0\n").as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::local::scanned_files;

    fn scan(rels: &[&str]) -> SourceScan {
        SourceScan {
            files: scanned_files(rels),
            ..SourceScan::default()
        }
    }

    #[test]
    fn any_change_of_path_content_or_name_changes_it() {
        let base = listing_sha256(&scan(&["a/x.png"]), |_| Some([1; 20]), false);
        assert_eq!(
            base,
            listing_sha256(&scan(&["a/x.png"]), |_| Some([1; 20]), false)
        );
        assert_ne!(
            base,
            listing_sha256(&scan(&["a/y.png"]), |_| Some([1; 20]), false)
        );
        assert_ne!(
            base,
            listing_sha256(&scan(&["a/x.png"]), |_| Some([2; 20]), false)
        );
        let mut odd = scan(&["a/x.png"]);
        odd.non_utf8.push("a/\u{fffd}.png".into());
        assert_ne!(base, listing_sha256(&odd, |_| Some([1; 20]), false));
    }

    #[test]
    fn a_new_object_version_changes_it_only_when_identified_by_tag() {
        let (mut a, mut b) = (scan(&["x.png"]), scan(&["x.png"]));
        a.files.set_tag(0, Some("\"e1\""));
        b.files.set_tag(0, Some("\"e2\""));
        assert_ne!(
            listing_sha256(&a, |_| None, true),
            listing_sha256(&b, |_| None, true)
        );
        assert_eq!(
            listing_sha256(&a, |_| None, false),
            listing_sha256(&b, |_| None, false)
        );
    }
}
