//! Layout inference (SPEC 2.2): without a `group_key_regex`, which part of a
//! relative path names the unit.
//!
//! Every candidate is a [`KeyCut`]: a way of cutting a unit key out of a path,
//! done by hand (fast, no regex engine on a million paths) and written as the
//! regex that captures exactly the same key (tested on tricky paths), so the
//! plan can say which regex it used and `explore` can suggest it verbatim.
//! Candidates are scored on the files the classify stage matched; the one with
//! the most complete units wins. The choice is a pure function of the file list.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

use super::ends_with_extension;
use crate::spill::SpillArea;

/// Groups by the first folder (patterns 1 and 4).
pub const FIRST_FOLDER_REGEX: &str = "^(?P<group_key>[^/]+)/";
/// Groups by the file stem when every extension has one part (patterns 2, 3 and 5).
pub const STEM_REGEX: &str = r"^(?:.*/)?(?P<group_key>[^/]+?)(?:\.[^./]+)?$";

/// Characters that separate a spec token from the rest of a stem.
const SEPARATORS: &[char] = &['_', '-', '.', ' '];

/// Which part of the path a candidate keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CutKind {
    /// The folder at this level below the root (1 = first-level folder).
    Folder(usize),
    /// The file name without its extension.
    Stem,
    /// The stem without a spec-distinguishing prefix or suffix (`_flair`).
    StemWithoutToken,
    /// The whole path without the extension: one unit per file.
    Path,
}

/// A way of cutting a unit key out of a relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCut {
    pub kind: CutKind,
    /// Lower case, no dot; longest first.
    extensions: Vec<String>,
    /// Spec tokens at the start of a stem (`img_`), longest first.
    pub prefixes: Vec<String>,
    /// Spec tokens at the end of a stem (`_flair`), longest first.
    pub suffixes: Vec<String>,
}

impl KeyCut {
    pub fn new(kind: CutKind, extensions: &BTreeSet<String>) -> Self {
        let mut extensions: Vec<String> = extensions.iter().cloned().collect();
        longest_first(&mut extensions);
        Self {
            kind,
            extensions,
            prefixes: Vec::new(),
            suffixes: Vec::new(),
        }
    }

    fn with_tokens(mut self, prefixes: BTreeSet<String>, suffixes: BTreeSet<String>) -> Self {
        self.prefixes = prefixes.into_iter().collect();
        self.suffixes = suffixes.into_iter().collect();
        longest_first(&mut self.prefixes);
        longest_first(&mut self.suffixes);
        self
    }

    /// The group key, exactly what [`Self::regex`] captures as `group_key`.
    pub fn key<'a>(&self, rel: &'a str) -> Option<&'a str> {
        match self.kind {
            CutKind::Folder(level) => {
                let mut parts = rel.split('/');
                let mut key = None;
                for _ in 0..level {
                    key = Some(parts.next().filter(|p| !p.is_empty())?);
                }
                // A `/` must follow the key.
                parts.next()?;
                key
            }
            CutKind::Stem | CutKind::StemWithoutToken => {
                let (dir, name) = match rel.rfind('/') {
                    Some(i) => (&rel[..i], &rel[i + 1..]),
                    None => ("", rel),
                };
                // `.*` does not cross a newline, so a folder path holding one
                // cannot be skipped by `(?:.*/)?`.
                if name.is_empty() || dir.contains('\n') {
                    return None;
                }
                let rest = self
                    .prefixes
                    .iter()
                    .find(|p| name.len() > p.len() && name.starts_with(p.as_str()))
                    .map_or(name, |p| &name[p.len()..]);
                Some(self.shortest_key(rest))
            }
            CutKind::Path => {
                if rel.is_empty() || rel.contains('\n') {
                    return None;
                }
                Some(self.shortest_key(rel))
            }
        }
    }

    /// The shortest non-empty head of `rest` whose tail is an optional suffix
    /// token then an optional extension: what the lazy `[^/]+?` captures.
    fn shortest_key<'a>(&self, rest: &'a str) -> &'a str {
        let mut cut = rest.len();
        for ext_len in std::iter::once(0).chain(
            self.extensions
                .iter()
                .filter_map(|e| ends_with_extension(rest, e)),
        ) {
            let before = &rest[..rest.len() - ext_len];
            for s in std::iter::once("").chain(self.suffixes.iter().map(String::as_str)) {
                if before.len() > s.len() && before.ends_with(s) {
                    cut = cut.min(before.len() - s.len());
                }
            }
        }
        &rest[..cut]
    }

    /// The regex whose `group_key` capture is [`Self::key`].
    pub fn regex(&self) -> String {
        match self.kind {
            CutKind::Folder(1) => FIRST_FOLDER_REGEX.to_owned(),
            CutKind::Folder(level) => {
                format!("^(?:[^/]+/){{{}}}(?P<group_key>[^/]+)/", level - 1)
            }
            CutKind::Stem | CutKind::StemWithoutToken => {
                if self.prefixes.is_empty()
                    && self.suffixes.is_empty()
                    && self.extensions.iter().all(|e| !e.contains('.'))
                    && !self.extensions.is_empty()
                {
                    // Single-part extensions: the regex the seed's patterns
                    // have always reported (it drops any last suffix, which for
                    // a matched file is its spec's extension).
                    return STEM_REGEX.to_owned();
                }
                format!(
                    "^(?:.*/)?{}(?P<group_key>[^/]+?){}{}$",
                    alternatives(&self.prefixes, false),
                    alternatives(&self.suffixes, false),
                    self.extension_alternatives()
                )
            }
            CutKind::Path => format!("^(?P<group_key>.+?){}$", self.extension_alternatives()),
        }
    }

    fn extension_alternatives(&self) -> String {
        let dotted: Vec<String> = self.extensions.iter().map(|e| format!(".{e}")).collect();
        alternatives(&dotted, true)
    }

    /// For people: "first folder", "stem without _flair, _t1, …".
    pub fn describe(&self) -> String {
        match self.kind {
            CutKind::Folder(1) => "first folder".to_owned(),
            CutKind::Folder(level) => format!("folder at level {level}"),
            CutKind::Stem => "file stem".to_owned(),
            CutKind::StemWithoutToken => {
                let tokens: Vec<&str> = self
                    .prefixes
                    .iter()
                    .chain(&self.suffixes)
                    .map(String::as_str)
                    .collect();
                let shown: Vec<&str> = tokens.iter().take(4).copied().collect();
                let more = if tokens.len() > 4 { ", …" } else { "" };
                format!("file stem without {}{more}", shown.join(", "))
            }
            CutKind::Path => "whole path (one unit per file)".to_owned(),
        }
    }
}

fn longest_first(v: &mut [String]) {
    v.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
}

/// `(?:a|b)?` with every alternative escaped; ASCII case-insensitive when asked.
fn alternatives(items: &[String], case_insensitive: bool) -> String {
    if items.is_empty() {
        return String::new();
    }
    let escaped: Vec<String> = items.iter().map(|i| regex::escape(i)).collect();
    let flags = if case_insensitive { "i-u" } else { "" };
    format!("(?{flags}:{})?", escaped.join("|"))
}

/// A matched file, as inference sees it.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    pub spec: u32,
    pub rel: std::borrow::Cow<'a, str>,
}

/// The matched files, by position: a slice of them (tests), or views of the
/// listings made when looked at (grouping: a `Vec` of members cost 24 bytes
/// a file beside the listing, 110 MiB at 4.6 million files).
pub trait Members: Sync {
    fn len(&self) -> usize;
    fn get(&self, i: usize) -> Member<'_>;

    /// Member `i`'s spec alone (a view can answer it without the path,
    /// which a stored listing reads back).
    fn spec(&self, i: usize) -> u32 {
        self.get(i).spec
    }

    /// Every member's spec, in order.
    fn specs(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len()).map(move |i| self.spec(i))
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn iter(&self) -> impl Iterator<Item = Member<'_>> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    fn par_iter(&self) -> impl IndexedParallelIterator<Item = Member<'_>> + '_ {
        (0..self.len()).into_par_iter().map(move |i| self.get(i))
    }
}

impl Members for [Member<'_>] {
    fn len(&self) -> usize {
        <[Member<'_>]>::len(self)
    }
    fn get(&self, i: usize) -> Member<'_> {
        self[i].clone()
    }
}

impl Members for Vec<Member<'_>> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn get(&self, i: usize) -> Member<'_> {
        self[i].clone()
    }
}

/// What the specs look like to inference.
#[derive(Debug, Clone)]
pub struct SpecShape {
    pub required: bool,
    /// Lower case, no dot.
    pub extensions: Vec<String>,
}

/// How well one candidate groups the files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Score {
    pub units: usize,
    /// Every required spec present, at most one file per spec.
    pub complete: usize,
    /// Units with two or more files of one spec.
    pub ambiguous: usize,
    /// The most files of one spec in one unit.
    pub most_per_spec: usize,
    /// Files the key cannot be cut from.
    pub no_key: usize,
    /// Files not in a complete unit (no key included).
    pub left_out: usize,
    /// Files in complete units.
    pub in_complete: usize,
    /// Units of one file whose folder holds other such units (class folders).
    pub single_file_units: usize,
}

impl Score {
    /// "50 complete units", "1 unit with up to 50 files of one spec", …
    pub fn summary(&self) -> String {
        let mut parts = vec![plural(self.complete, "complete unit")];
        if self.ambiguous > 0 {
            parts.push(format!(
                "{} with up to {} files of one spec",
                plural(self.ambiguous, "unit"),
                self.most_per_spec
            ));
        }
        let incomplete = self.units - self.complete - self.ambiguous;
        if incomplete > 0 {
            parts.push(format!(
                "{} missing a required spec",
                plural(incomplete, "unit")
            ));
        }
        if self.no_key > 0 {
            parts.push(format!("{} outside any unit", plural(self.no_key, "file")));
        }
        parts.join(", ")
    }
}

pub fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The outcome of inference.
#[derive(Debug, Clone)]
pub struct Inference {
    pub chosen: KeyCut,
    pub score: Score,
    pub runner_up: Option<(KeyCut, Score)>,
    /// One unit per file, in folders that each hold several units: the folder
    /// looks like a class label (number of such folders).
    pub class_folders: Option<usize>,
}

impl Inference {
    /// One sentence with the counts.
    pub fn reason(&self) -> String {
        let mut out = format!("{}: {}", self.chosen.describe(), self.score.summary());
        if let Some(n) = self.class_folders {
            out.push_str(&format!(
                "; one file per unit in {n} class folders (the folder can be kept as metadata: `filename: {{regex: '(?P<label>[^/]+)/[^/]+$'}}`)"
            ));
        }
        out
    }

    pub fn runner_up_text(&self) -> Option<String> {
        self.runner_up
            .as_ref()
            .map(|(cut, score)| format!("{}: {}", cut.describe(), score.summary()))
    }

    /// Most units are neither complete nor free of ambiguity: no candidate fits.
    pub fn is_convincing(&self) -> bool {
        self.score.units > 0 && self.score.complete * 2 >= self.score.units
    }
}

/// The first candidates, in the order ties are broken: folders from the top,
/// then the stem. [`infer`] adds the stem without spec tokens when it needs
/// more, and the whole path only when stems collide (it can only split
/// stem units).
pub fn candidates(members: &(impl Members + ?Sized), specs: &[SpecShape]) -> Vec<KeyCut> {
    let extensions: BTreeSet<String> = specs
        .iter()
        .flat_map(|s| s.extensions.iter().cloned())
        .collect();
    let deepest = members
        .iter()
        .map(|m| m.rel.matches('/').count())
        .max()
        .unwrap_or(0);
    let mut out: Vec<KeyCut> = (1..=deepest)
        .map(|level| KeyCut::new(CutKind::Folder(level), &extensions))
        .collect();
    out.push(KeyCut::new(CutKind::Stem, &extensions));
    out
}

/// The stem without spec tokens, if the specs' names have any.
fn token_candidate(
    members: &(impl Members + ?Sized),
    specs: &[SpecShape],
    stem: &KeyCut,
) -> Option<KeyCut> {
    let (prefixes, suffixes) = spec_tokens(members, specs.len(), stem);
    (!prefixes.is_empty() || !suffixes.is_empty()).then(|| {
        KeyCut {
            kind: CutKind::StemWithoutToken,
            ..stem.clone()
        }
        .with_tokens(prefixes, suffixes)
    })
}

/// The tokens that tell specs apart in file names: for each spec, the longest
/// prefix and suffix all its stems share, cut at a separator (`_flair`,
/// `_gtFine_labelIds`, `img_`). A part every spec's suffix starts with
/// (Cityscapes' `_000019`) is left in the key.
pub fn spec_tokens(
    members: &(impl Members + ?Sized),
    spec_count: usize,
    stem: &KeyCut,
) -> (BTreeSet<String>, BTreeSet<String>) {
    // Per spec: a reference stem and how many bytes every stem shares with
    // it at the start and at the end, and how many stems there are. Folded
    // in parallel, copying only each fold's reference stems.
    type Common = Vec<Option<(String, usize, usize, usize)>>;
    let merge = |mut a: Common, b: Common| -> Common {
        for (x, y) in a.iter_mut().zip(b) {
            *x = match (x.take(), y) {
                (None, y) => y,
                (x, None) => x,
                (Some((r, p, q, n)), Some((r2, p2, q2, n2))) => {
                    let p = p.min(p2).min(common_prefix_bytes(&r, &r2));
                    let q = q.min(q2).min(common_suffix_bytes(&r, &r2));
                    Some((r, p, q, n + n2))
                }
            };
        }
        a
    };
    let common: Common = members
        .par_iter()
        .fold(
            || vec![None; spec_count],
            |mut acc: Common, m| {
                if let Some(s) = stem.key(&m.rel) {
                    match &mut acc[m.spec as usize] {
                        slot @ None => *slot = Some((s.to_owned(), s.len(), s.len(), 1)),
                        Some((r, p, q, n)) => {
                            *p = (*p).min(common_prefix_bytes(r, s));
                            *q = (*q).min(common_suffix_bytes(r, s));
                            *n += 1;
                        }
                    }
                }
                acc
            },
        )
        .reduce(|| vec![None; spec_count], merge);
    let common = common.into_iter().map(|c| {
        c.map(|(r, p, q, n)| {
            // Back to character boundaries.
            let mut p = p;
            while !r.is_char_boundary(p) {
                p -= 1;
            }
            let mut start = r.len() - q;
            while !r.is_char_boundary(start) {
                start += 1;
            }
            (r[..p].to_owned(), r[start..].to_owned(), n)
        })
    });
    let mut prefixes: Vec<String> = Vec::new();
    let mut suffixes: Vec<String> = Vec::new();
    let mut counted = 0;
    for (prefix, suffix, n) in common.flatten() {
        if n < 2 {
            continue;
        }
        counted += 1;
        // A prefix token ends with a separator; a suffix token starts with one.
        if let Some(i) = prefix.rfind(SEPARATORS) {
            prefixes.push(prefix[..=i].to_owned());
        }
        if let Some(i) = suffix.find(SEPARATORS) {
            suffixes.push(suffix[i..].to_owned());
        }
    }
    // Tokens tell specs apart: with one spec there is nothing to tell apart.
    if counted < 2 {
        return (BTreeSet::new(), BTreeSet::new());
    }
    if suffixes.len() >= 2 {
        // Give back what every suffix token starts with, up to a separator
        // (Cityscapes' frame number `_000019` belongs to the key).
        let shared = suffixes.iter().skip(1).fold(suffixes[0].len(), |n, s| {
            n.min(common_prefix(&suffixes[0], s))
        });
        if let Some(i) = suffixes[0][..shared].rfind(SEPARATORS).filter(|&i| i > 0) {
            suffixes = suffixes.iter().map(|s| s[i..].to_owned()).collect();
        }
    }
    (
        distinct_tokens(prefixes, counted),
        distinct_tokens(suffixes, counted),
    )
}

/// Tokens longer than a separator, unless one token is all there is.
fn distinct_tokens(tokens: Vec<String>, counted: usize) -> BTreeSet<String> {
    // One token that several specs share tells nothing apart (ISIC's `ISIC_`);
    // one that a single spec has does (`img_` beside bare names).
    let same = tokens.iter().all(|t| *t == tokens[0]);
    if same && (tokens.len() >= 2 || counted == 1) {
        return BTreeSet::new();
    }
    tokens.into_iter().filter(|t| t.len() > 1).collect()
}

fn common_prefix_bytes(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

fn common_suffix_bytes(a: &str, b: &str) -> usize {
    a.bytes()
        .rev()
        .zip(b.bytes().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

fn common_prefix(a: &str, b: &str) -> usize {
    let mut n = 0;
    for ((i, x), y) in a.char_indices().zip(b.chars()) {
        if x != y {
            return i;
        }
        n = i + x.len_utf8();
    }
    n
}

/// A fixed-key hash (the same on every machine and run).
fn key_hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// A member as scoring sees it: its key's hash, its spec and its folder's
/// hash (0: the root). Only which files share a key matters, never the
/// keys' order; two keys (or folders) sharing a 64-bit hash would at worst
/// blur one count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Keyed {
    key: u64,
    spec: u32,
    folder: u64,
}

impl crate::spill::Record for Keyed {
    // Ordered by every field.
    const EQUAL_IS_SAME: bool = true;

    fn weight(&self) -> usize {
        0
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.key.to_le_bytes());
        out.extend_from_slice(&self.spec.to_le_bytes());
        out.extend_from_slice(&self.folder.to_le_bytes());
    }
    fn decode(input: &mut &[u8]) -> std::io::Result<Self> {
        use crate::spill::codec::get_array;
        Ok(Self {
            key: u64::from_le_bytes(get_array(input)?),
            spec: u32::from_le_bytes(get_array(input)?),
            folder: u64::from_le_bytes(get_array(input)?),
        })
    }
}

/// Members keyed a batch at a time (in parallel).
const SCORE_BATCH: usize = 1 << 16;

/// Scores one candidate. The members, keyed, are sorted to cut them into
/// units: held at 24 bytes a member, or past a share of `spill`'s budget
/// (when given) in sorted runs on disk (at 4.6 million files, 110 MiB held).
pub fn score(
    cut: &KeyCut,
    members: &(impl Members + ?Sized),
    required: &[bool],
    spill: Option<&SpillArea>,
) -> std::io::Result<Score> {
    let mut sorter = match spill {
        Some(area) => area.sorter::<Keyed>(4),
        None => crate::spill::Sorter::new(std::path::PathBuf::new(), usize::MAX),
    };
    let mut s = Score::default();
    for batch in (0..members.len()).step_by(SCORE_BATCH) {
        let made: Vec<Option<Keyed>> = (batch..(batch + SCORE_BATCH).min(members.len()))
            .into_par_iter()
            .map(|i| {
                let m = members.get(i);
                let key = key_hash(cut.key(&m.rel)?);
                let folder = m.rel.rsplit_once('/').map_or(0, |(d, _)| key_hash(d) | 1);
                Some(Keyed {
                    key,
                    spec: m.spec,
                    folder,
                })
            })
            .collect();
        for k in made {
            match k {
                Some(k) => sorter.push(k)?,
                None => s.no_key += 1,
            }
        }
    }
    // Single-file units by folder (folders, not files: as many as a
    // dataset has classes).
    let mut single_in: BTreeMap<u64, usize> = BTreeMap::new();
    let mut present = vec![false; required.len()];
    let mut unit: Vec<Keyed> = Vec::new();
    let mut count = |unit: &[Keyed], s: &mut Score| {
        s.units += 1;
        present.iter_mut().for_each(|p| *p = false);
        let mut most = 0;
        for run in unit.chunk_by(|a, b| a.spec == b.spec) {
            most = most.max(run.len());
            if let Some(p) = present.get_mut(run[0].spec as usize) {
                *p = true;
            }
        }
        s.most_per_spec = s.most_per_spec.max(most);
        if most > 1 {
            s.ambiguous += 1;
        } else if required.iter().zip(&present).all(|(r, p)| !r || *p) {
            s.complete += 1;
            s.in_complete += unit.len();
            if let [one] = unit {
                *single_in.entry(one.folder).or_default() += 1;
            }
        }
    };
    for k in sorter.finish()? {
        let k = k?;
        if unit.last().is_some_and(|u| u.key != k.key) {
            count(&unit, &mut s);
            unit.clear();
        }
        unit.push(k);
    }
    if !unit.is_empty() {
        count(&unit, &mut s);
    }
    s.left_out = members.len() - s.in_complete;
    // Single-file units that share their folder (not the root) with another.
    s.single_file_units = single_in
        .iter()
        .filter(|(folder, n)| **n > 1 && **folder != 0)
        .map(|(_, n)| n)
        .sum();
    Ok(s)
}

/// The specs that count as required when scoring: the required ones that
/// have any file at all (a spec nobody has cannot make any grouping better);
/// with none, the primary spec, else the first, stands in.
pub fn scoring_requirements(
    members: &(impl Members + ?Sized),
    specs: &[SpecShape],
    primary: Option<usize>,
) -> Vec<bool> {
    let mut present = vec![false; specs.len()];
    for spec in members.specs() {
        present[spec as usize] = true;
    }
    let mut required: Vec<bool> = specs
        .iter()
        .zip(&present)
        .map(|(s, p)| s.required && *p)
        .collect();
    if !required.iter().any(|r| *r) {
        let stand_in = primary
            .filter(|&p| present.get(p) == Some(&true))
            .or_else(|| present.iter().position(|p| *p));
        if let Some(i) = stand_in {
            required[i] = true;
        }
    }
    required
}

/// Picks the candidate with the most complete units; ties go to fewer files
/// left out, then to the earlier candidate. `None` without members.
/// Scoring sorts through `spill` past its share (an error: a spill failed).
pub fn infer(
    members: &(impl Members + ?Sized),
    specs: &[SpecShape],
    primary: Option<usize>,
    spill: Option<&SpillArea>,
) -> std::io::Result<Option<Inference>> {
    if members.is_empty() {
        return Ok(None);
    }
    let required = scoring_requirements(members, specs, primary);
    // No grouping has more complete units than the rarest required spec has
    // files, nor leaves out fewer than none: a candidate reaching both is the
    // best, and only one more is scored, for the runner-up.
    let mut per_spec = vec![0usize; specs.len()];
    for spec in members.specs() {
        per_spec[spec as usize] += 1;
    }
    let bound = per_spec
        .iter()
        .zip(&required)
        .filter(|(_, r)| **r)
        .map(|(n, _)| *n)
        .min()
        .unwrap_or(members.len());
    let mut cuts = candidates(members, specs);
    let mut scored: Vec<(usize, KeyCut, Score)> = Vec::new();
    let optimal = |s: &Score| s.complete == bound && s.left_out == 0;
    let mut tokens_tried = false;
    let mut i = 0;
    loop {
        let done = scored.len() >= 2 && scored.iter().any(|(_, _, s)| optimal(s));
        if done {
            break;
        }
        if i == cuts.len() {
            // Out of candidates: the stem without spec tokens, once.
            if tokens_tried {
                break;
            }
            tokens_tried = true;
            let Some(stem) = cuts.iter().find(|c| c.kind == CutKind::Stem) else {
                break;
            };
            match token_candidate(members, specs, stem) {
                Some(cut) => cuts.push(cut),
                None => continue,
            }
        }
        let cut = cuts[i].clone();
        let s = score(&cut, members, &required, spill)?;
        if cut.kind == CutKind::Stem && s.ambiguous > 0 {
            // Stems collide (a clip name in every class folder): one unit
            // per file, tried after the tokens.
            tokens_tried = true;
            if let Some(t) = token_candidate(members, specs, &cut) {
                cuts.push(t);
            }
            cuts.push(KeyCut {
                kind: CutKind::Path,
                ..cut.clone()
            });
        }
        scored.push((i, cut, s));
        i += 1;
    }
    scored.sort_by(|a, b| {
        b.2.complete
            .cmp(&a.2.complete)
            .then(a.2.left_out.cmp(&b.2.left_out))
            .then(a.0.cmp(&b.0))
    });
    let mut it = scored.into_iter();
    let Some((_, chosen, score)) = it.next() else {
        return Ok(None);
    };
    // The runner-up is the best other candidate that scores differently,
    // else the next one.
    let rest: Vec<(usize, KeyCut, Score)> = it.collect();
    let runner_up = rest
        .iter()
        .find(|(_, _, s)| *s != score)
        .or(rest.first())
        .map(|(_, cut, s)| (cut.clone(), s.clone()));
    let class_folders = class_folders(&chosen, &score, members);
    Ok(Some(Inference {
        chosen,
        score,
        runner_up,
        class_folders,
    }))
}

/// One file per unit, most of them in folders holding several: image
/// classification's `train/<class>/<file>` (the folder is a label).
fn class_folders(cut: &KeyCut, score: &Score, members: &(impl Members + ?Sized)) -> Option<usize> {
    if matches!(cut.kind, CutKind::Folder(_)) || score.complete == 0 {
        return None;
    }
    if score.single_file_units * 10 < score.complete * 9 {
        return None;
    }
    let mut folders: BTreeSet<String> = BTreeSet::new();
    for m in members.iter() {
        if let Some((d, _)) = m.rel.rsplit_once('/')
            && !folders.contains(d)
        {
            folders.insert(d.to_owned());
        }
    }
    (folders.len() >= 2 && folders.len() < score.complete).then_some(folders.len())
}

/// The seed's pattern number for a chosen candidate (SPEC 2.2).
pub fn seed_pattern(
    cut: &KeyCut,
    members: &(impl Members + ?Sized),
    multi_path: bool,
) -> Option<u8> {
    let mut depths = BTreeSet::new();
    for m in members.iter() {
        depths.insert(m.rel.matches('/').count() + 1);
    }
    let stem = matches!(cut.kind, CutKind::Stem | CutKind::StemWithoutToken);
    if multi_path {
        return stem.then_some(5);
    }
    let plain_stem = cut.kind == CutKind::Stem;
    match (
        cut.kind,
        depths.iter().copied().collect::<Vec<_>>().as_slice(),
    ) {
        (_, [1]) if plain_stem => Some(3),
        (_, [2]) if plain_stem => Some(2),
        (CutKind::Folder(1), [2]) => Some(1),
        (CutKind::Folder(1), ds) if ds.iter().all(|&d| d >= 3) => Some(4),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn exts(e: &[&str]) -> BTreeSet<String> {
        e.iter().map(|s| s.to_string()).collect()
    }

    /// Paths that trip key cutters up: dots, hidden files, newlines (which
    /// `.*` does not cross), empty segments, non-ASCII.
    pub(crate) const TRICKY: &[&str] = &[
        "a.png",
        "a",
        "a.",
        ".a",
        "..a",
        "a..b",
        "a.b.c",
        ".a.b",
        "d/a.png",
        "d/e/a.tar.gz",
        "d/e/A.NII.GZ",
        "d/e/.nii.gz",
        "d/e/x_flair.nii.gz",
        "d/e/x_flair",
        "d/e/_flair.nii.gz",
        "d/e/img_x_flair.png",
        "d/e/img_.png",
        "img_/a.png",
        "d/.hidden",
        "d/",
        "/a.png",
        "//a",
        "d//a.b",
        "a/b",
        "a/b/c/d/e.png",
        "/",
        "",
        "é/ü.ñ",
        "é/ü_flair.nii.gz",
        "x.y/z",
        "x.y/z.",
        "a\nb/c.png",
        "a/b\nc.png",
        "a\n.png",
        "d/a.p\nng",
        "\n/a",
        "a.b/",
        "d/a b.json",
        "a\u{1F600}.png",
        "a\u{1F600}_flair.png",
    ];

    #[test]
    fn keys_are_cut_exactly_as_their_regexes_capture() {
        let e = exts(&["png", "nii.gz", "gz", "json"]);
        let mut cuts = vec![
            KeyCut::new(CutKind::Folder(1), &e),
            KeyCut::new(CutKind::Folder(2), &e),
            KeyCut::new(CutKind::Folder(3), &e),
            KeyCut::new(CutKind::Stem, &e),
            KeyCut::new(CutKind::Stem, &exts(&["png", "json"])),
            KeyCut::new(CutKind::Path, &e),
        ];
        cuts.push(
            KeyCut::new(CutKind::StemWithoutToken, &e)
                .with_tokens(exts(&["img_"]), exts(&["_flair", "_t1", "_x_flair"])),
        );
        for cut in &cuts {
            let text = cut.regex();
            let re = regex::Regex::new(&text).unwrap();
            for p in TRICKY {
                // The seed's stem regex drops any last suffix: it equals the
                // cut on the files it is used for, those with a listed extension.
                let name = crate::stages::file_name(p);
                if text == STEM_REGEX
                    && !cut
                        .extensions
                        .iter()
                        .any(|e| ends_with_extension(name, e).is_some())
                {
                    continue;
                }
                let want = re
                    .captures(p)
                    .and_then(|c| c.name("group_key"))
                    .map(|m| m.as_str());
                assert_eq!(cut.key(p), want, "{text} on {p:?}");
            }
        }
    }

    fn members<'a>(files: &[(&'a str, u32)]) -> Vec<Member<'a>> {
        files
            .iter()
            .map(|&(rel, spec)| Member {
                spec,
                rel: rel.into(),
            })
            .collect()
    }

    fn shapes(n: usize, ext: &[&str]) -> Vec<SpecShape> {
        (0..n)
            .map(|_| SpecShape {
                required: true,
                extensions: ext.iter().map(|e| e.to_string()).collect(),
            })
            .collect()
    }

    #[test]
    fn nifti_cases_group_by_folder_and_tokens_are_found() {
        let mut files = Vec::new();
        let names: Vec<String> = (0..4)
            .flat_map(|c| {
                ["flair", "t1", "t1ce", "t2", "seg"]
                    .iter()
                    .map(move |m| format!("BraTS2021_0000{c}/BraTS2021_0000{c}_{m}.nii.gz"))
            })
            .collect();
        for (i, n) in names.iter().enumerate() {
            files.push((n.as_str(), (i % 5) as u32));
        }
        let m = members(&files);
        let inf = infer(&m, &shapes(5, &["nii.gz"]), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(inf.chosen.kind, CutKind::Folder(1));
        assert_eq!(inf.score.complete, 4);
        assert_eq!(inf.reason(), "first folder: 4 complete units");
        let stem = KeyCut::new(CutKind::Stem, &exts(&["nii.gz"]));
        let (p, s) = spec_tokens(&m, 5, &stem);
        assert!(p.is_empty());
        assert_eq!(s, exts(&["_flair", "_t1", "_t1ce", "_t2", "_seg"]));
    }

    #[test]
    fn a_wrapper_folder_is_seen_through() {
        let files = [
            ("training/image_2/000000.png", 0),
            ("training/label_2/000000.txt", 1),
            ("training/image_2/000001.png", 0),
            ("training/label_2/000001.txt", 1),
            ("training/image_2/000002.png", 0),
            ("training/label_2/000002.txt", 1),
        ];
        let m = members(&files);
        let mut specs = shapes(2, &["png"]);
        specs[1].extensions = vec!["txt".into()];
        let inf = infer(&m, &specs, None, None).unwrap().unwrap();
        assert_eq!(inf.chosen.kind, CutKind::Stem);
        assert_eq!(inf.score.complete, 3);
        let runner = inf.runner_up_text().unwrap();
        assert_eq!(
            runner,
            "first folder: 0 complete units, 1 unit with up to 3 files of one spec"
        );
    }

    #[test]
    fn cityscapes_suffixes_keep_the_shared_frame_number() {
        let files = [
            (
                "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png",
                0,
            ),
            (
                "leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png",
                0,
            ),
            (
                "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png",
                1,
            ),
            (
                "gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png",
                1,
            ),
        ];
        let m = members(&files);
        let inf = infer(&m, &shapes(2, &["png"]), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(inf.chosen.kind, CutKind::StemWithoutToken);
        assert_eq!(inf.chosen.suffixes, ["_gtFine_labelIds", "_leftImg8bit"]);
        assert_eq!(inf.chosen.key(files[0].0), Some("aachen_000000_000019"));
    }

    #[test]
    fn class_folders_are_recognised() {
        let files = [
            ("train/n01/n01_1.JPEG", 0),
            ("train/n01/n01_2.JPEG", 0),
            ("train/n02/n02_1.JPEG", 0),
            ("train/n02/n02_7.JPEG", 0),
        ];
        let m = members(&files);
        let inf = infer(&m, &shapes(1, &["jpeg"]), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(inf.chosen.kind, CutKind::Stem);
        assert_eq!(inf.class_folders, Some(2));
        assert_eq!(inf.chosen.key(files[0].0), Some("n01_1"));
    }

    #[test]
    fn seed_patterns_keep_their_numbers() {
        let e = exts(&["png"]);
        let m = members(&[("p1/a.png", 0)]);
        assert_eq!(
            seed_pattern(&KeyCut::new(CutKind::Folder(1), &e), &m, false),
            Some(1)
        );
        let m = members(&[("p1/img/a.png", 0)]);
        assert_eq!(
            seed_pattern(&KeyCut::new(CutKind::Folder(1), &e), &m, false),
            Some(4)
        );
        let m = members(&[("a.png", 0)]);
        assert_eq!(
            seed_pattern(&KeyCut::new(CutKind::Stem, &e), &m, false),
            Some(3)
        );
        let m = members(&[("img/a.png", 0)]);
        assert_eq!(
            seed_pattern(&KeyCut::new(CutKind::Stem, &e), &m, false),
            Some(2)
        );
        assert_eq!(
            seed_pattern(&KeyCut::new(CutKind::Stem, &e), &m, true),
            Some(5)
        );
        let m = members(&[("w/img/a.png", 0)]);
        assert_eq!(
            seed_pattern(&KeyCut::new(CutKind::Stem, &e), &m, false),
            None
        );
    }
}
