//! Would-be specs for a folder with no collection yet: explore splits the files
//! into classes (by extension, then by a spec token in the name or a type
//! folder), runs the planner's own layout inference on each way of splitting,
//! and keeps the one whose units hold the files best.
//!
//! Splits considered, in order (ties go to the earlier):
//! 1. one class per extension;
//! 2. an extension spread over sibling "type folders" whose file stems mostly
//!    recur in each other (KITTI's `image_2/`, `label_2/`, `calib/`) is split
//!    by folder;
//! 3. an extension whose names end (or start) with a few tokens of balanced
//!    frequency (`_flair`, `_t1`, …; nnU-Net's `_0000`) is split by token; the
//!    files without one form a class of their own;
//! 4. 3, then 2 for the files without a token.

use std::collections::{BTreeMap, BTreeSet};

use crate::stages::layout::{self, Inference, Member, SpecShape};
use crate::stages::{extension, stem};

const SEPARATORS: &[char] = &['_', '-', '.', ' '];
/// More distinct tokens or folders than this are ids or labels, not specs.
const MOST_SPLITS: usize = 12;

/// What tells a class's files apart from the rest of their extension.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Marker {
    /// The whole extension.
    None,
    /// A name suffix after this separator (`_flair`: sep `_`, token `flair`).
    Suffix { sep: char, token: String },
    /// A name prefix before this separator (`img_`).
    Prefix { token: String, sep: char },
    /// The folder the file sits in (one of these).
    Folder(Vec<String>),
}

/// One would-be spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// Lower case, no dot (`nii.gz`).
    pub ext: String,
    pub marker: Marker,
    /// Indices into the file list, ascending.
    pub files: Vec<usize>,
    /// Some file's extension is not lower case: its glob ignores case.
    pub mixed_case: bool,
}

impl Class {
    /// The `file_rules` glob that picks this class's files (in rule order).
    pub fn glob(&self) -> String {
        let ext = glob_escape(&self.ext);
        match &self.marker {
            Marker::None => format!("**/*.{ext}"),
            Marker::Suffix { sep, token } => format!("**/*{sep}{}.{ext}", glob_escape(token)),
            Marker::Prefix { token, sep } => format!("**/{}{sep}*.{ext}", glob_escape(token)),
            Marker::Folder(folders) if folders.len() == 1 => {
                format!("**/{}/*.{ext}", glob_escape(&folders[0]))
            }
            Marker::Folder(folders) => {
                let names: Vec<String> = folders.iter().map(|f| glob_escape(f)).collect();
                format!("**/{{{}}}/*.{ext}", names.join(","))
            }
        }
    }

    /// A spec name: the token or folder, else the extension.
    pub fn name_hint(&self) -> String {
        let ext = sanitize(&self.ext);
        match &self.marker {
            Marker::None => ext,
            Marker::Suffix { token, .. } | Marker::Prefix { token, .. } => {
                let t = sanitize(token);
                if t.starts_with(|c: char| c.is_ascii_digit()) {
                    format!("{ext}_{t}")
                } else {
                    t
                }
            }
            Marker::Folder(folders) => {
                let f = sanitize(&shared_name(folders));
                if f.starts_with(|c: char| c.is_ascii_digit()) {
                    format!("{ext}_{f}")
                } else {
                    f
                }
            }
        }
    }
}

/// What folder names share (`imagesTr`, `imagesTs` → `images`), else the first.
fn shared_name(folders: &[String]) -> String {
    let first = &folders[0];
    let n = folders
        .iter()
        .skip(1)
        .fold(first.len(), |n, f| n.min(common_head(first, f)));
    let mut head = &first[..n];
    if folders.len() > 1 {
        // Drop a camel-case word cut in half (`imagesT`).
        if head.ends_with(|c: char| c.is_ascii_uppercase()) {
            head = &head[..head.len() - 1];
        }
        head = head.trim_end_matches(SEPARATORS);
    }
    if head.len() >= 3 {
        head.to_owned()
    } else {
        first.clone()
    }
}

/// `[A-Za-z0-9_]`, lower case, runs of anything else as one `_`.
pub fn sanitize(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_owned();
    if out.is_empty() {
        "file".to_owned()
    } else {
        out
    }
}

/// Escapes globset's metacharacters.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}') {
            out.push('[');
            out.push(c);
            out.push(']');
        } else {
            out.push(c);
        }
    }
    out
}

/// The split explore settled on, with its inference.
#[derive(Debug, Clone)]
pub struct Split {
    pub classes: Vec<Class>,
    pub shapes: Vec<SpecShape>,
    pub inference: Inference,
    /// Spec of every file (`None`: no extension, not a would-be spec).
    pub spec_of: Vec<Option<u32>>,
}

impl Split {
    /// The files of every class, as inference sees them.
    pub fn members<'a>(&self, rels: &[&'a str]) -> Vec<Member<'a>> {
        members_of(&self.spec_of, rels)
    }
}

fn members_of<'a>(spec_of: &[Option<u32>], rels: &[&'a str]) -> Vec<Member<'a>> {
    spec_of
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.map(|spec| Member {
                spec,
                rel: rels[i].into(),
            })
        })
        .collect()
}

/// Tries every split and keeps the best (see the module docs).
pub fn best_split(rels: &[&str]) -> Option<Split> {
    let by_ext = by_extension(rels);
    let mut tried: Vec<Vec<Class>> = Vec::new();
    let folders = split_each(&by_ext, rels, split_by_folder);
    let tokens = split_each(&by_ext, rels, split_by_token);
    let both = split_each(&tokens, rels, |c, r| {
        if c.marker == Marker::None {
            split_by_folder(c, r)
        } else {
            None
        }
    });
    for classes in [by_ext, folders, tokens, both] {
        if !tried.contains(&classes) {
            tried.push(classes);
        }
    }
    let mut best: Option<(usize, Split)> = None;
    for (i, classes) in tried.into_iter().enumerate() {
        let Some(split) = evaluate_classes(classes, rels) else {
            continue;
        };
        let better = match &best {
            None => true,
            Some((_, b)) => rank(&split) > rank(b),
        };
        if better {
            best = Some((i, split));
        }
    }
    best.map(|(_, s)| s)
}

/// Larger is better: units of several files beat one-file units, then more
/// complete units, then fewer files left out.
fn rank(s: &Split) -> (bool, usize, std::cmp::Reverse<usize>) {
    let score = &s.inference.score;
    (
        score.in_complete > score.complete,
        score.complete,
        std::cmp::Reverse(score.left_out),
    )
}

pub fn evaluate_classes(classes: Vec<Class>, rels: &[&str]) -> Option<Split> {
    let most = classes.iter().map(|c| c.files.len()).max()?;
    // Frequent classes count as required when scoring: a spec most units have.
    let shapes: Vec<SpecShape> = classes
        .iter()
        .map(|c| SpecShape {
            required: c.files.len() * 5 >= most * 4,
            extensions: vec![c.ext.clone()],
        })
        .collect();
    let mut spec_of = vec![None; rels.len()];
    for (s, c) in classes.iter().enumerate() {
        for &f in &c.files {
            spec_of[f] = Some(s as u32);
        }
    }
    let members = members_of(&spec_of, rels);
    // Explore holds what it samples: no spill, so no spill error either.
    let inference = layout::infer(&members, &shapes, None, None).ok()??;
    Some(Split {
        classes,
        shapes,
        inference,
        spec_of,
    })
}

fn by_extension(rels: &[&str]) -> Vec<Class> {
    let mut map: BTreeMap<String, Class> = BTreeMap::new();
    for (i, rel) in rels.iter().enumerate() {
        let ext = extension(rel);
        if ext.is_empty() {
            continue;
        }
        let name = crate::stages::file_name(rel);
        let mixed = !name.ends_with(&ext);
        let c = map.entry(ext.clone()).or_insert_with(|| Class {
            ext,
            marker: Marker::None,
            files: Vec::new(),
            mixed_case: false,
        });
        c.files.push(i);
        c.mixed_case |= mixed;
    }
    map.into_values().collect()
}

fn split_each(
    classes: &[Class],
    rels: &[&str],
    split: impl Fn(&Class, &[&str]) -> Option<Vec<Class>>,
) -> Vec<Class> {
    classes
        .iter()
        .flat_map(|c| split(c, rels).unwrap_or_else(|| vec![c.clone()]))
        .collect()
}

/// Type folders: 2..=12 parent folders, at least two of them "recurring"
/// (most of their stems recur in another folder: KITTI's `image_2/` and
/// `label_2/`). A folder whose stems do not recur (a test split such as
/// `imagesTs/`) joins the recurring folder whose name it shares most of
/// (`imagesTr/`), else stays a class of its own.
fn split_by_folder(class: &Class, rels: &[&str]) -> Option<Vec<Class>> {
    let mut folders: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &f in &class.files {
        let parent = rels[f].rsplit_once('/').map(|(d, _)| d)?;
        let name = parent.rsplit('/').next().unwrap_or(parent);
        folders.entry(name).or_default().push(f);
    }
    if folders.len() < 2 || folders.len() > MOST_SPLITS {
        return None;
    }
    let stems: Vec<BTreeSet<&str>> = folders
        .values()
        .map(|fs| fs.iter().map(|&f| stem(rels[f])).collect())
        .collect();
    let recurring: Vec<bool> = stems
        .iter()
        .enumerate()
        .map(|(i, own)| {
            let shared = own
                .iter()
                .filter(|s| {
                    stems
                        .iter()
                        .enumerate()
                        .any(|(j, o)| j != i && o.contains(*s))
                })
                .count();
            shared * 2 >= own.len()
        })
        .collect();
    if recurring.iter().filter(|r| **r).count() < 2 {
        return None;
    }
    // Type folders hold many units each; unit folders (`p001/img.png`,
    // `p002/img.png`) outnumber the files in each.
    let mut sizes: Vec<usize> = stems.iter().map(BTreeSet::len).collect();
    sizes.sort_unstable();
    if sizes[sizes.len() / 2] <= stems.len() {
        return None;
    }
    let names: Vec<&str> = folders.keys().copied().collect();
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let home = if recurring[i] {
            i
        } else {
            (0..names.len())
                .filter(|&j| recurring[j])
                .map(|j| (common_head(name, names[j]), j))
                .filter(|(n, _)| *n >= 3)
                .max_by_key(|(n, j)| (*n, std::cmp::Reverse(*j)))
                .map_or(i, |(_, j)| j)
        };
        groups.entry(home).or_default().push(i);
    }
    let mut files_of: Vec<Vec<usize>> = folders.into_values().collect();
    Some(
        groups
            .into_values()
            .map(|members| {
                let mut files: Vec<usize> = members
                    .iter()
                    .flat_map(|&i| std::mem::take(&mut files_of[i]))
                    .collect();
                files.sort_unstable();
                Class {
                    ext: class.ext.clone(),
                    marker: Marker::Folder(members.iter().map(|&i| names[i].to_owned()).collect()),
                    files,
                    mixed_case: class.mixed_case,
                }
            })
            .collect(),
    )
}

/// Bytes every stem shares at its end (`suffix`) or start, cut so that the
/// shared part begins (or ends) with a separator and leaves a non-empty rest.
fn shared_end(stems: &[&str], suffix: bool) -> usize {
    let first = stems[0];
    let mut n = first.len();
    for s in &stems[1..] {
        let common = if suffix {
            first
                .chars()
                .rev()
                .zip(s.chars().rev())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a.len_utf8())
                .sum()
        } else {
            common_head(first, s)
        };
        n = n.min(common);
    }
    if suffix {
        let tail = &first[first.len() - n..];
        tail.find(SEPARATORS).map_or(0, |i| n - i)
    } else {
        first[..n].rfind(SEPARATORS).map_or(0, |i| i + 1)
    }
    .min(
        stems
            .iter()
            .map(|s| s.len())
            .min()
            .unwrap_or(0)
            .saturating_sub(1),
    )
}

/// Bytes two names start with in common.
fn common_head(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i)
}

/// Name tokens: 2..=12 suffix (else prefix) tokens, each on two or more
/// files, the rarest at least half as common as the commonest, together on at
/// least half the class's files.
fn split_by_token(class: &Class, rels: &[&str]) -> Option<Vec<Class>> {
    split_by_token_at(class, rels, true).or_else(|| split_by_token_at(class, rels, false))
}

fn split_by_token_at(class: &Class, rels: &[&str], suffix: bool) -> Option<Vec<Class>> {
    let token_of = |f: usize| -> Option<(char, &str)> {
        let s = stem(rels[f]);
        if suffix {
            let i = s.rfind(SEPARATORS).filter(|&i| i > 0)?;
            let sep = s[i..].chars().next()?;
            Some((sep, &s[i + sep.len_utf8()..])).filter(|(_, t)| !t.is_empty())
        } else {
            let i = s.find(SEPARATORS)?;
            let sep = s[i..].chars().next()?;
            Some((sep, &s[..i])).filter(|(_, t)| !t.is_empty() && i + sep.len_utf8() < s.len())
        }
    };
    let mut counts: BTreeMap<(char, &str), usize> = BTreeMap::new();
    for &f in &class.files {
        if let Some(t) = token_of(f) {
            *counts.entry(t).or_default() += 1;
        }
    }
    counts.retain(|_, n| *n >= 2);
    if counts.len() < 2 || counts.len() > MOST_SPLITS {
        return None;
    }
    let most = *counts.values().max()?;
    let least = *counts.values().min()?;
    let covered: usize = counts.values().sum();
    if least * 2 < most || covered * 2 < class.files.len() {
        return None;
    }
    let mut split: BTreeMap<Option<(char, &str)>, Vec<usize>> = BTreeMap::new();
    for &f in &class.files {
        let t = token_of(f).filter(|t| counts.contains_key(t));
        split.entry(t).or_default().push(f);
    }
    // Spec tokens cross with the units: most names without their token come
    // with every token (BraTS' five modalities per case). Cities or classes
    // as prefixes do not (`aachen_000002` has no `bochum_000002`).
    // A class's whole token is what all its names share at that end, cut at
    // a separator (`_gtFine_color`, not just `color`).
    let rests: Vec<BTreeSet<String>> = split
        .iter()
        .filter(|(t, _)| t.is_some())
        .map(|(_, files)| {
            let stems: Vec<&str> = files.iter().map(|&f| stem(rels[f])).collect();
            let cut = shared_end(&stems, suffix);
            stems
                .iter()
                .map(|s| {
                    if suffix {
                        s[..s.len() - cut].to_owned()
                    } else {
                        s[cut..].to_owned()
                    }
                })
                .collect()
        })
        .collect();
    for (i, own) in rests.iter().enumerate() {
        let everywhere = own
            .iter()
            .filter(|r| {
                rests
                    .iter()
                    .enumerate()
                    .all(|(j, o)| j == i || o.contains(*r))
            })
            .count();
        if everywhere * 5 < own.len() * 4 {
            return None;
        }
    }
    Some(
        split
            .into_iter()
            .map(|(t, files)| Class {
                ext: class.ext.clone(),
                marker: match t {
                    None => Marker::None,
                    Some((sep, token)) if suffix => Marker::Suffix {
                        sep,
                        token: token.to_owned(),
                    },
                    Some((sep, token)) => Marker::Prefix {
                        token: token.to_owned(),
                        sep,
                    },
                },
                files,
                mixed_case: class.mixed_case,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(split: &Split) -> Vec<String> {
        split.classes.iter().map(Class::name_hint).collect()
    }

    #[test]
    fn nifti_modalities_are_split_by_their_suffix() {
        let mut rels = vec!["survival_info.csv".to_owned()];
        for c in 0..5 {
            for m in ["flair", "t1", "t1ce", "t2", "seg"] {
                rels.push(format!("BraTS2021_0000{c}/BraTS2021_0000{c}_{m}.nii.gz"));
            }
        }
        let rels: Vec<&str> = rels.iter().map(String::as_str).collect();
        let split = best_split(&rels).unwrap();
        assert_eq!(names(&split), ["csv", "flair", "seg", "t1", "t1ce", "t2"]);
        assert_eq!(split.inference.chosen.regex(), "^(?P<group_key>[^/]+)/");
        assert_eq!(split.inference.score.complete, 5);
    }

    #[test]
    fn type_folders_are_split_by_folder() {
        let mut rels = Vec::new();
        for i in 0..4 {
            rels.push(format!("training/image_2/00000{i}.png"));
            rels.push(format!("training/label_2/00000{i}.txt"));
            rels.push(format!("training/calib/00000{i}.txt"));
        }
        let rels: Vec<&str> = rels.iter().map(String::as_str).collect();
        let split = best_split(&rels).unwrap();
        assert_eq!(names(&split), ["png", "calib", "label_2"]);
        assert_eq!(split.inference.score.complete, 4);
        assert_eq!(split.classes[1].glob(), "**/calib/*.txt");
    }

    #[test]
    fn numbered_photos_are_not_modalities() {
        let mut rels = Vec::new();
        for breed in ["Abyssinian", "Bombay", "beagle"] {
            for i in 1..=4 {
                rels.push(format!("images/{breed}_{i}.jpg"));
                rels.push(format!("annotations/trimaps/{breed}_{i}.png"));
            }
        }
        let rels: Vec<&str> = rels.iter().map(String::as_str).collect();
        let split = best_split(&rels).unwrap();
        assert_eq!(names(&split), ["jpg", "png"]);
        assert_eq!(split.inference.score.complete, 12);
    }

    #[test]
    fn globs_escape_metacharacters() {
        assert_eq!(glob_escape("a[1]*"), "a[[]1[]][*]");
        assert_eq!(sanitize("gtFine_labelIds"), "gtfine_labelids");
        assert_eq!(sanitize("nii.gz"), "nii_gz");
    }
}
