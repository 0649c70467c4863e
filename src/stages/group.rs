//! Group: turn classified files into units by their group key (SPEC 2.2), detecting
//! the directory layout when the recipe gives no `group_key_regex`.

use rayon::prelude::*;
use regex::Regex;
use serde::Serialize;

use super::FileRef;
use super::classify::Classified;
use super::drafts::UnitDraftsWriter;
pub use super::drafts::{Draft, Drafts, UnitDrafts};
use crate::recipe::resolve::KeyTemplate;
use crate::source::FileList;
use crate::spill::SpillArea;

use super::layout::{self as infer, KeyCut, Member, Members, SpecShape};
pub use super::layout::{FIRST_FOLDER_REGEX, STEM_REGEX};

/// The built-in group key regexes, matched by hand: on a flat folder of
/// 200,000 files the regex engine's capture search was most of grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BuiltinKey {
    FirstFolder,
    Stem,
}

impl BuiltinKey {
    fn of(regex: &str) -> Option<Self> {
        match regex {
            FIRST_FOLDER_REGEX => Some(Self::FirstFolder),
            STEM_REGEX => Some(Self::Stem),
            _ => None,
        }
    }

    /// What the regex's `group_key` captures, exactly.
    fn group_key(self, rel: &str) -> Option<&str> {
        match self {
            Self::FirstFolder => rel
                .split_once('/')
                .map(|(first, _)| first)
                .filter(|f| !f.is_empty()),
            Self::Stem => {
                let (dir, name) = match rel.rfind('/') {
                    Some(i) => rel.split_at(i + 1),
                    None => ("", rel),
                };
                // `.*` does not cross a newline, so a folder path holding one
                // cannot be skipped by `(?:.*/)?`.
                if name.is_empty() || dir.contains('\n') {
                    return None;
                }
                // The lazy key stops before the last dot when an extension
                // (at least one character, no dot) follows it.
                Some(match name.rfind('.') {
                    Some(dot) if dot > 0 && dot + 1 < name.len() => &name[..dot],
                    _ => name,
                })
            }
        }
    }
}

/// The layout the plan reports: what inference chose (with the seed's pattern
/// number when it is one of them), or the recipe's regex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub pattern: Option<u8>,
    pub group_key_regex: Option<String>,
    /// Inferred only: why this grouping, with its counts.
    pub reason: Option<String>,
    /// Inferred only: the next-best grouping and its counts.
    pub runner_up: Option<String>,
}

impl Layout {
    pub fn describe(&self) -> &'static str {
        match self.pattern {
            Some(1) => "nested folders, one per unit",
            Some(2) => "type-separated folders, matched by file stem",
            Some(3) => "flat folder, matched by file stem",
            Some(4) => "deeply nested, one top folder per unit",
            Some(5) => "multi-path, matched by file stem",
            _ if self.reason.is_some() => "inferred",
            _ => "group_key_regex from the recipe",
        }
    }
}

/// A member on its way into a unit, as the spilling sort holds it: one
/// allocation, ordered by (unit key, spec, path, file). Laid out as the key's
/// and path's lengths, spec, root and index (u32 each), the key and path
/// bytes, then 0, or 1 and the group key when a key template made the unit
/// key differ.
#[derive(PartialEq, Eq)]
struct Entry(Box<[u8]>);

impl Entry {
    const HEAD: usize = 20;

    fn new(key: &str, group_key: Option<&str>, rel: &str, spec: u32, file: FileRef) -> Self {
        let extra = 1 + group_key.map_or(0, str::len);
        let mut b = Vec::with_capacity(Self::HEAD + key.len() + rel.len() + extra);
        for n in [
            key.len() as u32,
            rel.len() as u32,
            spec,
            file.root,
            file.index,
        ] {
            b.extend_from_slice(&n.to_le_bytes());
        }
        b.extend_from_slice(key.as_bytes());
        b.extend_from_slice(rel.as_bytes());
        match group_key {
            Some(g) => {
                b.push(1);
                b.extend_from_slice(g.as_bytes());
            }
            None => b.push(0),
        }
        Self(b.into_boxed_slice())
    }

    fn field(&self, i: usize) -> u32 {
        u32::from_le_bytes(self.0[4 * i..4 * i + 4].try_into().unwrap_or_default())
    }

    fn key(&self) -> &[u8] {
        &self.0[Self::HEAD..Self::HEAD + self.field(0) as usize]
    }

    fn rel(&self) -> &[u8] {
        let from = Self::HEAD + self.field(0) as usize;
        &self.0[from..from + self.field(1) as usize]
    }

    fn spec(&self) -> u32 {
        self.field(2)
    }

    fn file(&self) -> FileRef {
        FileRef {
            root: self.field(3),
            index: self.field(4),
        }
    }

    /// The group key: what follows the path, or else the unit key.
    fn group_key(&self) -> &[u8] {
        let from = Self::HEAD + self.field(0) as usize + self.field(1) as usize;
        match &self.0[from..] {
            [1, rest @ ..] => rest,
            _ => self.key(),
        }
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key()
            .cmp(other.key())
            .then(self.spec().cmp(&other.spec()))
            .then_with(|| self.rel().cmp(other.rel()))
            .then(self.file().cmp(&other.file()))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl crate::spill::Record for Entry {
    // Ordered by key, spec, path and file; the group key follows from the file.
    const EQUAL_IS_SAME: bool = true;

    fn weight(&self) -> usize {
        self.0.len()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn decode(input: &mut &[u8]) -> std::io::Result<Self> {
        let bytes = std::mem::take(input);
        let whole = bytes.len() >= Self::HEAD && {
            let e = Entry(Box::from(&bytes[..Self::HEAD]));
            Self::HEAD + e.field(0) as usize + (e.field(1) as usize) < bytes.len()
        };
        if !whole {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a spilled group entry is cut short",
            ));
        }
        Ok(Self(Box::from(bytes)))
    }
}

/// The files classification made unit members, numbered (a bit per listed
/// file), with each member's spec: a byte a member (specs past 254 on the
/// side) where the classification of every file took 8 bytes a file (37
/// MiB at 4.6 million files, held while grouping).
pub struct MemberSpecs {
    set: super::FileSet,
    specs: Vec<u8>,
    wide: std::collections::BTreeMap<usize, u32>,
}

/// A member's spec kept in `wide`.
const WIDE: u8 = u8::MAX;

impl MemberSpecs {
    /// The members of each root's classification.
    pub fn new(classified: &[Vec<Classified>]) -> Self {
        let set = super::FileSet::new(
            classified
                .iter()
                .map(|c| {
                    let mut bits = crate::bits::BitSet::new(c.len());
                    for (i, c) in c.iter().enumerate() {
                        if let Classified::Spec(_) = c {
                            bits.insert(i);
                        }
                    }
                    bits
                })
                .collect(),
        );
        let mut specs = Vec::with_capacity(set.len());
        let mut wide = std::collections::BTreeMap::new();
        for spec in classified.iter().flatten().filter_map(|c| match c {
            Classified::Spec(spec) => Some(*spec),
            _ => None,
        }) {
            match u8::try_from(spec) {
                Ok(s) if s != WIDE => specs.push(s),
                _ => {
                    wide.insert(specs.len(), spec);
                    specs.push(WIDE);
                }
            }
        }
        Self { set, specs, wide }
    }

    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Member `n`'s spec.
    pub fn spec(&self, n: usize) -> u32 {
        match self.specs[n] {
            WIDE => self.wide[&n],
            s => u32::from(s),
        }
    }
}

/// The members as inference sees them, made from the listings when looked at.
struct Listed<'a, 'r> {
    roots: &'r [&'a FileList],
    members: &'r MemberSpecs,
}

impl<'a> Listed<'a, '_> {
    /// Member `i`, its path borrowed from (or read back from) the listing.
    fn member(&self, i: usize) -> Member<'a> {
        self.member_of(i, self.members.set.file(i))
    }

    /// Member `i`, which is file `f`.
    fn member_of(&self, i: usize, f: FileRef) -> Member<'a> {
        let list: &'a FileList = self.roots[f.root as usize];
        Member {
            spec: self.members.spec(i),
            rel: list.rel(f.index as usize),
        }
    }
}

impl Members for Listed<'_, '_> {
    fn len(&self) -> usize {
        self.members.len()
    }
    fn get(&self, i: usize) -> Member<'_> {
        self.member(i)
    }
    fn spec(&self, i: usize) -> u32 {
        self.members.spec(i)
    }
}

/// How the group key is cut: by an inferred candidate, or the recipe's regex.
enum KeyCutter {
    Cut(KeyCut),
    Regex(Regex),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    /// No candidate grouping makes most units complete.
    NoLayout {
        best: String,
        best_regex: String,
        runner_up: Option<String>,
    },
    /// Different group keys render one unit key.
    KeyCollision {
        key: String,
        group_keys: Vec<String>,
    },
}

#[derive(Default)]
pub struct Grouped {
    pub layout: Option<Layout>,
    /// Sorted by key (byte order).
    pub units: UnitDrafts,
    pub no_group_key: Vec<FileRef>,
    pub errors: Vec<GroupError>,
}

/// A path's group key (a slice of it) and unit key (when they differ):
/// the signature every key cutter has, whatever path it is given.
fn path_cutter<F>(f: F) -> F
where
    F: for<'p> Fn(&'p str) -> Option<(&'p str, Option<String>)> + Sync,
{
    f
}

/// Groups the members of every root into units, keeping those whose key
/// `keep` says yes to (a shard plans its own slice). Fails only when a
/// spill to `spill` does.
#[allow(clippy::too_many_arguments)]
pub fn group<'a>(
    roots: &[&'a FileList],
    members: &MemberSpecs,
    explicit: Option<&(Regex, String)>,
    template: &KeyTemplate,
    specs: &[SpecShape],
    primary: Option<usize>,
    multi_path: bool,
    spill: &SpillArea,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> std::io::Result<Grouped> {
    let mut out = Grouped::default();
    // Members as inference sees them: numbered by a bit per listed file (a
    // `FileRef` per member was 37 MiB at 4.6 million files).
    let set = &members.set;
    let members = Listed { roots, members };

    let (cutter, layout) = match explicit {
        Some((re, text)) => (
            KeyCutter::Regex(re.clone()),
            Layout {
                pattern: None,
                group_key_regex: Some(text.clone()),
                reason: None,
                runner_up: None,
            },
        ),
        None => {
            let Some(inference) = infer::infer(&members, specs, primary, Some(spill))? else {
                return Ok(out);
            };
            if !inference.is_convincing() {
                out.errors.push(GroupError::NoLayout {
                    best: inference.reason(),
                    best_regex: inference.chosen.regex(),
                    runner_up: inference.runner_up_text(),
                });
                return Ok(out);
            }
            let layout = Layout {
                pattern: infer::seed_pattern(&inference.chosen, &members, multi_path),
                group_key_regex: Some(inference.chosen.regex()),
                reason: Some(inference.reason()),
                runner_up: inference.runner_up_text(),
            };
            (KeyCutter::Cut(inference.chosen), layout)
        }
    };
    out.layout = Some(layout);
    let regex = match &cutter {
        KeyCutter::Regex(re) => Some(re),
        KeyCutter::Cut(_) => None,
    };
    let names: Vec<&str> = regex
        .map(|r| r.capture_names().flatten().collect())
        .unwrap_or_default();
    let builtin = regex.and_then(|r| BuiltinKey::of(r.as_str()));
    let plain = template.text == "{group_key}";
    // Cuts one path's group key, and its unit key when the template makes it
    // differ (the group key is a slice of the path, allocated only then).
    let cut_key = path_cutter(|rel| {
        // The built-in regexes capture only `group_key`: cut it directly.
        if let Some(b) = builtin {
            let group_key = b.group_key(rel)?;
            let key = (!plain).then(|| {
                template.render(|field| (field == "group_key").then(|| group_key.to_owned()))
            });
            return Some((group_key, key));
        }
        let regex = match &cutter {
            KeyCutter::Cut(cut) => {
                let group_key = cut.key(rel)?;
                let key = (!plain).then(|| {
                    template.render(|field| (field == "group_key").then(|| group_key.to_owned()))
                });
                return Some((group_key, key));
            }
            KeyCutter::Regex(re) => re,
        };
        let caps = regex.captures(rel)?;
        let group_key = caps
            .name("group_key")
            .or_else(|| caps.get(1))
            .or_else(|| caps.get(0))?
            .as_str();
        if plain {
            return Some((group_key, None));
        }
        let key = template.render(|field| {
            if field == "group_key" {
                Some(group_key.to_owned())
            } else if names.contains(&field) {
                caps.name(field).map(|m| m.as_str().to_owned())
            } else {
                None
            }
        });
        Some((group_key, Some(key)))
    });
    // Sort the members by (unit key, spec, path) and cut runs of one key into
    // units: no map of a million small entries is ever built. The sort
    // spills past its share of the budget, and the units go to a shelf a
    // window at a time, so neither is held whole. Entries are made in
    // parallel a batch at a time and pushed in order.
    let mut sorter = spill.sorter::<Entry>(4);
    for batch in (0..members.len()).step_by(1 << 16) {
        let made: Vec<Result<Entry, FileRef>> = (batch..(batch + (1 << 16)).min(members.len()))
            .into_par_iter()
            .map(|i| {
                let file = set.file(i);
                let m = members.member_of(i, file);
                match cut_key(&m.rel) {
                    Some((group_key, Some(key))) => {
                        Ok(Entry::new(&key, Some(group_key), &m.rel, m.spec, file))
                    }
                    Some((group_key, None)) => {
                        Ok(Entry::new(group_key, None, &m.rel, m.spec, file))
                    }
                    None => Err(file),
                }
            })
            .collect();
        for entry in made {
            match entry {
                Ok(entry) => sorter.push(entry)?,
                Err(file) => out.no_group_key.push(file),
            }
        }
    }
    let mut units = UnitDraftsWriter::new(spill.shelf(8));
    let mut run: Vec<Entry> = Vec::new();
    let mut flush = |run: &mut Vec<Entry>, out: &mut Grouped| -> std::io::Result<()> {
        let Some(first) = run.first() else {
            return Ok(());
        };
        // Keys were `str`s when the entries were made: borrowed, never copied.
        let text = |b| String::from_utf8_lossy(b);
        if run.iter().any(|e| e.group_key() != first.group_key()) {
            let group_keys: std::collections::BTreeSet<String> = run
                .iter()
                .map(|e| text(e.group_key()).into_owned())
                .collect();
            out.errors.push(GroupError::KeyCollision {
                key: text(first.key()).into_owned(),
                group_keys: group_keys.into_iter().collect(),
            });
        } else {
            let (key, group_key) = (text(first.key()), text(first.group_key()));
            if keep(&key) {
                units.push(&key, &group_key, run.iter().map(|e| (e.spec(), e.file())))?;
            }
        }
        run.clear();
        Ok(())
    };
    for entry in sorter.finish()? {
        let entry = entry?;
        if run.first().is_some_and(|first| first.key() != entry.key()) {
            flush(&mut run, &mut out)?;
        }
        run.push(entry);
    }
    flush(&mut run, &mut out)?;
    out.units = units.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_keys_are_cut_exactly_as_their_regexes_capture() {
        let paths = crate::stages::layout::tests::TRICKY;
        for (builtin, text) in [
            (BuiltinKey::FirstFolder, FIRST_FOLDER_REGEX),
            (BuiltinKey::Stem, STEM_REGEX),
        ] {
            assert_eq!(BuiltinKey::of(text), Some(builtin));
            let re = Regex::new(text).unwrap();
            for &p in paths {
                let want = re
                    .captures(p)
                    .and_then(|c| c.name("group_key"))
                    .map(|m| m.as_str());
                assert_eq!(builtin.group_key(p), want, "{text} on {p:?}");
            }
        }
        assert_eq!(BuiltinKey::of("^(?P<group_key>[^/]+)"), None);
    }

    use crate::source::local::scanned_files as files;
    fn test_spill() -> SpillArea {
        SpillArea::under(
            &std::env::temp_dir().join("synup-group-tests"),
            Default::default(),
        )
    }
    fn tmpl() -> KeyTemplate {
        KeyTemplate::parse("{group_key}").unwrap()
    }
    /// Classified by extension: png → spec 0, json → spec 1.
    /// Members are the files classified to a spec, numbered across roots;
    /// specs past a byte are kept whole.
    #[test]
    fn member_specs_number_the_members_and_keep_wide_specs() {
        let m = MemberSpecs::new(&[
            vec![
                Classified::Spec(3),
                Classified::Unmatched(crate::stages::UnmatchedReason::NoRule),
                Classified::Spec(255),
            ],
            vec![],
            vec![Classified::WrongExtension(1), Classified::Spec(70_000)],
        ]);
        assert_eq!(m.len(), 3);
        assert_eq!(
            (0..3).map(|n| m.spec(n)).collect::<Vec<_>>(),
            [3, 255, 70_000]
        );
        assert_eq!(m.set.file(1), FileRef { root: 0, index: 2 });
        assert_eq!(m.set.file(2), FileRef { root: 2, index: 1 });
    }

    fn by_ext(f: &FileList) -> Vec<Classified> {
        f.iter()
            .map(|f| Classified::Spec(u32::from(f.rel.ends_with(".json"))))
            .collect()
    }
    fn two_specs(label_required: bool) -> Vec<SpecShape> {
        vec![
            SpecShape {
                required: true,
                extensions: vec!["png".into()],
            },
            SpecShape {
                required: label_required,
                extensions: vec!["json".into()],
            },
        ]
    }
    fn one_spec() -> Vec<SpecShape> {
        two_specs(false)[..1].to_vec()
    }
    fn infer_group(paths: &[&str], label_required: bool) -> Grouped {
        let f = files(paths);
        let c = by_ext(&f);
        group(
            &[&f],
            &MemberSpecs::new(&[c]),
            None,
            &tmpl(),
            &two_specs(label_required),
            None,
            false,
            &test_spill(),
            &|_| true,
        )
        .unwrap()
    }
    fn all(spec: u32, n: usize) -> Vec<Classified> {
        vec![Classified::Spec(spec); n]
    }

    #[test]
    fn nested_folders_are_pattern_1() {
        let g = infer_group(&["p1/a.png", "p1/a.json", "p2/a.png", "p3/b.png"], false);
        let layout = g.layout.unwrap();
        assert_eq!(layout.pattern, Some(1));
        assert_eq!(
            layout.reason.as_deref(),
            Some("first folder: 3 complete units")
        );
        assert_eq!(
            g.units.gather().iter().map(|u| u.key).collect::<Vec<_>>(),
            ["p1", "p2", "p3"]
        );
    }

    #[test]
    fn type_folders_are_pattern_2_and_group_by_stem() {
        let g = infer_group(
            &["images/001.png", "labels/001.json", "images/002.png"],
            false,
        );
        assert_eq!(g.layout.unwrap().pattern, Some(2));
        assert_eq!(g.units.gather().get(0).key, "001");
        assert_eq!(g.units.gather().get(0).files.len(), 2);
    }

    #[test]
    fn flat_is_pattern_3_and_deep_is_pattern_4() {
        let g = infer_group(&["s1.png", "s1.json"], true);
        assert_eq!(g.layout.unwrap().pattern, Some(3));
        let g = infer_group(
            &[
                "p1/img/a.png",
                "p1/json/a.json",
                "p2/img/a.png",
                "p2/json/a.json",
            ],
            true,
        );
        assert_eq!(g.layout.unwrap().pattern, Some(4));
    }

    #[test]
    fn a_lone_file_beside_unit_folders_is_set_aside() {
        let g = infer_group(
            &[
                "info.json",
                "p1/a.png",
                "p1/a.json",
                "p2/b.png",
                "p2/b.json",
            ],
            true,
        );
        let layout = g.layout.unwrap();
        assert_eq!(layout.pattern, None);
        assert_eq!(layout.group_key_regex.as_deref(), Some(FIRST_FOLDER_REGEX));
        assert_eq!(g.units.len(), 2);
        assert_eq!(g.no_group_key, [FileRef { root: 0, index: 0 }]);
    }

    #[test]
    fn nothing_fits_asks_for_a_regex() {
        let f = files(&["a/x.png", "a/y.png", "b/x.png", "b/y.png", "c/z.json"]);
        let g = group(
            &[&f],
            &MemberSpecs::new(&[by_ext(&f)]),
            None,
            &tmpl(),
            &two_specs(true),
            None,
            false,
            &test_spill(),
            &|_| true,
        )
        .unwrap();
        let Some(GroupError::NoLayout {
            best, runner_up, ..
        }) = g.errors.first()
        else {
            panic!("{:?}", g.errors);
        };
        assert_eq!(
            best,
            "first folder: 0 complete units, 2 units with up to 2 files of one spec, 1 unit missing a required spec"
        );
        assert!(runner_up.is_some());
    }

    #[test]
    fn template_uses_named_captures_and_collisions_are_errors() {
        let re = Regex::new(r"^(?P<site>[^/]+)/(?P<group_key>[^/]+)/").unwrap();
        let f = files(&["s1/p1/a.png", "s2/p1/a.png"]);
        let t = KeyTemplate::parse("{site}-{group_key}").unwrap();
        let g = group(
            &[&f],
            &MemberSpecs::new(&[all(0, 2)]),
            Some(&(re.clone(), "x".into())),
            &t,
            &one_spec(),
            None,
            false,
            &test_spill(),
            &|_| true,
        )
        .unwrap();
        assert_eq!(
            g.units.gather().iter().map(|u| u.key).collect::<Vec<_>>(),
            ["s1-p1", "s2-p1"]
        );
        let re2 = Regex::new(r"^(?P<site>[^/]+)/(?P<group_key>[^/]+)/").unwrap();
        let t2 = KeyTemplate::parse("{site}").unwrap();
        let f2 = files(&["s1/p1/a.png", "s1/p2/a.png"]);
        let g = group(
            &[&f2],
            &MemberSpecs::new(&[all(0, 2)]),
            Some(&(re2, "x".into())),
            &t2,
            &one_spec(),
            None,
            false,
            &test_spill(),
            &|_| true,
        )
        .unwrap();
        assert!(matches!(&g.errors[0], GroupError::KeyCollision { key, .. } if key == "s1"));
    }

    #[test]
    fn a_sort_spilled_to_disk_groups_exactly_as_one_held() {
        // Two roots (paths compared across roots), ambiguous specs, a key
        // template (group keys carried) and a shard's filter.
        let a = files(&[
            "x/p1/a.png",
            "x/p1/b.png",
            "x/p2/a.png",
            "y/p1/a.png",
            "z/q/c.png",
        ]);
        let b = files(&["a/p1/a.png", "x/p3/a.png"]);
        let re = Regex::new(r"^(?P<site>[^/]+)/(?P<group_key>[^/]+)/").unwrap();
        let t = KeyTemplate::parse("k-{group_key}").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let run = |budget: usize| {
            let spill = SpillArea {
                dir: dir.path().join("spill"),
                budget: crate::spill::MemoryBudget { bytes: budget },
            };
            let g = group(
                &[&a, &b],
                &MemberSpecs::new(&[all(0, 5), all(0, 2)]),
                Some(&(re.clone(), "x".into())),
                &t,
                &one_spec(),
                None,
                true,
                &spill,
                &|key| key != "k-q",
            )
            .unwrap();
            (
                g.units.spilled(),
                g.units.gather(),
                g.errors,
                g.no_group_key,
            )
        };
        let (held_spilled, held, held_errors, held_none) = run(512 << 20);
        // One byte of budget: every entry is a run of its own, merged.
        let (spilled, on_disk, errors, none) = run(1);
        assert!(!held_spilled && spilled);
        assert_eq!(on_disk, held);
        assert_eq!((errors, none), (held_errors.clone(), held_none));
        assert!(held_errors.is_empty());
        let units: Vec<_> = held
            .iter()
            .map(|u| (u.key, u.group_key, u.files.len()))
            .collect();
        assert_eq!(
            units,
            [("k-p1", "p1", 4), ("k-p2", "p2", 1), ("k-p3", "p3", 1)]
        );
        // By path across roots: `a/p1/a.png` of the second root comes first.
        let first: Vec<_> = held
            .get(0)
            .files
            .iter()
            .map(|(_, f)| (f.root, f.index))
            .collect();
        assert_eq!(first, [(1, 0), (0, 0), (0, 1), (0, 3)]);
    }

    #[test]
    fn no_match_is_no_group_key() {
        let re = Regex::new(r"^patient_(\d+)/").unwrap();
        let f = files(&["patient_1/a.png", "other/b.png"]);
        let g = group(
            &[&f],
            &MemberSpecs::new(&[all(0, 2)]),
            Some(&(re, "x".into())),
            &tmpl(),
            &one_spec(),
            None,
            false,
            &test_spill(),
            &|_| true,
        )
        .unwrap();
        assert_eq!(g.units.gather().get(0).key, "1");
        assert_eq!(g.no_group_key, [FileRef { root: 0, index: 1 }]);
    }
}
