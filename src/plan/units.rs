//! The plan's units, held as the text they are written as.
//!
//! A plan is written (and hashed) with each unit as one compact JSON line, so
//! that text is what the plan keeps: about half the memory of the parsed
//! [`PlannedUnit`], and writing or hashing a plan copies bytes instead of
//! serialising a million values again. Past its share of the `--memory`
//! budget the text goes to an unnamed file under `.synup/spill/`, so a plan's
//! units cost the planner a bounded amount of memory whatever their number.
//! Readers decode a unit at a time ([`UnitList::iter`]).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::model::{Action, PlannedUnit};
use crate::spill::{MemoryBudget, SpillArea};

/// The units of a plan, in plan order; cheap to clone (shared, immutable).
#[derive(Clone, Default)]
pub struct UnitList(Arc<Stored>);

/// Lines `0..spilled` are in `file`, the rest in `memory`; every line is one
/// unit's compact JSON followed by `\n` (compact JSON has no raw newline).
#[derive(Default)]
struct Stored {
    len: usize,
    /// Units per action, in [`Action`] order.
    actions: [usize; 4],
    spilled: usize,
    file: Option<File>,
    memory: Vec<u8>,
}

/// What a listing needs of a unit.
#[derive(Debug, Deserialize)]
pub struct UnitHead {
    pub key: String,
    pub action: Action,
    #[serde(default)]
    pub conflict: Option<String>,
}

/// Builds a [`UnitList`] a unit at a time.
pub struct UnitListBuilder {
    dir: PathBuf,
    share: usize,
    len: usize,
    actions: [usize; 4],
    spilled: usize,
    file: Option<BufWriter<File>>,
    memory: Vec<u8>,
}

impl UnitListBuilder {
    /// Holds up to `1/parts` of the area's budget in memory, then spills.
    pub fn new(area: &SpillArea, parts: usize) -> Self {
        Self {
            dir: area.dir.clone(),
            share: area.budget.share(parts),
            len: 0,
            actions: [0; 4],
            spilled: 0,
            file: None,
            memory: Vec::new(),
        }
    }

    /// For a plan read from a file, which has no recipe folder: spills under
    /// the system's temporary folder.
    pub fn detached() -> Self {
        Self::new(
            &SpillArea {
                dir: std::env::temp_dir(),
                budget: MemoryBudget::DEFAULT,
            },
            4,
        )
    }

    pub fn push(&mut self, unit: &PlannedUnit) -> io::Result<()> {
        let line = serde_json::to_vec(unit)?;
        self.push_line(&line, unit.action)
    }

    /// A unit already serialised (compact JSON of a [`PlannedUnit`] with
    /// this action), e.g. by a parallel stage.
    pub fn push_line(&mut self, line: &[u8], action: Action) -> io::Result<()> {
        debug_assert!(!line.contains(&b'\n'));
        if crate::spill::outgrows(&self.memory, line.len() + 1, self.share) {
            self.spill()?;
        }
        self.memory.extend_from_slice(line);
        self.memory.push(b'\n');
        self.len += 1;
        self.actions[action as usize] += 1;
        if self.memory.len() > self.share {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let file = crate::spill::unnamed_file(&self.dir)?;
                self.file.insert(BufWriter::with_capacity(1 << 16, file))
            }
        };
        file.write_all(&self.memory)?;
        self.memory.clear();
        self.spilled = self.len;
        Ok(())
    }

    pub fn finish(self) -> io::Result<UnitList> {
        let file = match self.file {
            Some(file) => Some(file.into_inner().map_err(|e| e.into_error())?),
            None => None,
        };
        let mut memory = self.memory;
        memory.shrink_to_fit();
        Ok(UnitList(Arc::new(Stored {
            len: self.len,
            actions: self.actions,
            spilled: self.spilled,
            file,
            memory,
        })))
    }
}

impl UnitList {
    pub fn len(&self) -> usize {
        self.0.len
    }

    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// How many units have this action.
    pub fn count(&self, action: Action) -> usize {
        self.0.actions[action as usize]
    }

    /// The units, held in memory, or the first error reading them.
    pub fn try_collect(
        units: impl IntoIterator<Item = io::Result<PlannedUnit>>,
    ) -> io::Result<Self> {
        let mut failed = None;
        let list = units
            .into_iter()
            .map_while(|u| u.map_err(|e| failed = Some(e)).ok())
            .collect();
        failed.map_or(Ok(list), Err)
    }

    /// Whether some units are in a file rather than in memory.
    pub fn spilled(&self) -> bool {
        self.0.spilled > 0
    }

    /// Each unit's compact JSON (no newline), in order.
    pub fn lines(&self) -> Lines<'_> {
        Lines {
            file: self
                .0
                .file
                .as_ref()
                .filter(|_| self.0.spilled > 0)
                .map(|f| BufReader::with_capacity(1 << 16, FileAt { file: f, offset: 0 })),
            from_file: 0,
            spilled: self.0.spilled,
            memory: &self.0.memory,
            line: Vec::new(),
        }
    }

    /// Each unit, decoded, in order.
    pub fn iter(&self) -> impl Iterator<Item = io::Result<PlannedUnit>> + '_ {
        self.decoded()
    }

    /// Each unit's key and action, in order: a unit's other fields are
    /// skipped unparsed (listing a million units decodes only what is shown).
    pub fn heads(&self) -> impl Iterator<Item = io::Result<UnitHead>> + '_ {
        self.decoded()
    }

    /// The units with this action, in order; the others are not decoded
    /// whole.
    pub fn with_action(
        &self,
        action: Action,
    ) -> impl Iterator<Item = io::Result<PlannedUnit>> + '_ {
        let mut lines = self.lines();
        std::iter::from_fn(move || {
            loop {
                let line = match lines.next_line()? {
                    Ok(line) => line,
                    Err(e) => return Some(Err(e)),
                };
                match serde_json::from_slice::<UnitHead>(line) {
                    Ok(head) if head.action != action => continue,
                    Ok(_) => return Some(serde_json::from_slice(line).map_err(io::Error::from)),
                    Err(e) => return Some(Err(e.into())),
                }
            }
        })
    }

    /// Each line decoded as `T` (the whole unit, or the part of it `T` names).
    fn decoded<T: serde::de::DeserializeOwned>(&self) -> impl Iterator<Item = io::Result<T>> + '_ {
        let mut lines = self.lines();
        std::iter::from_fn(move || {
            Some(match lines.next_line()? {
                Ok(line) => serde_json::from_slice(line).map_err(io::Error::from),
                Err(e) => Err(e),
            })
        })
    }

    /// The units at these positions (ascending), decoded.
    pub fn at(&self, positions: &[usize]) -> io::Result<Vec<PlannedUnit>> {
        let mut out = Vec::with_capacity(positions.len());
        let mut lines = self.lines();
        let mut index = 0;
        for &wanted in positions {
            loop {
                let line = lines.next_line().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "no unit at that position")
                })??;
                index += 1;
                if index - 1 == wanted {
                    out.push(serde_json::from_slice(line)?);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Changes the units in place, decoded whole (for plans known to be
    /// small, and tests).
    pub fn edit(&mut self, f: impl FnOnce(&mut Vec<PlannedUnit>)) -> io::Result<()> {
        let mut units = self.to_vec()?;
        f(&mut units);
        *self = units.into_iter().collect();
        Ok(())
    }

    /// Every unit, decoded (for plans known to be small, and tests).
    pub fn to_vec(&self) -> io::Result<Vec<PlannedUnit>> {
        self.iter().collect()
    }
}

impl FromIterator<PlannedUnit> for UnitList {
    /// In memory, however many: for units already held in memory.
    fn from_iter<I: IntoIterator<Item = PlannedUnit>>(units: I) -> Self {
        let mut stored = Stored::default();
        for unit in units {
            // A `PlannedUnit` always serialises: string keys, no failing impl.
            if serde_json::to_writer(&mut stored.memory, &unit).is_ok() {
                stored.memory.push(b'\n');
                stored.len += 1;
                stored.actions[unit.action as usize] += 1;
            }
        }
        Self(Arc::new(stored))
    }
}

impl std::fmt::Debug for UnitList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitList")
            .field("len", &self.0.len)
            .field("spilled", &self.0.spilled)
            .finish()
    }
}

/// A file read from an offset of its own, so several readers share it.
struct FileAt<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for FileAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// The units' lines: the spilled ones from the file, then the held ones.
pub struct Lines<'a> {
    file: Option<BufReader<FileAt<'a>>>,
    from_file: usize,
    spilled: usize,
    memory: &'a [u8],
    line: Vec<u8>,
}

impl Lines<'_> {
    /// The next line, without its newline; borrowed until the next call.
    pub fn next_line(&mut self) -> Option<io::Result<&[u8]>> {
        if self.from_file < self.spilled {
            let file = self.file.as_mut()?;
            self.line.clear();
            match file.read_until(b'\n', &mut self.line) {
                Ok(0) => {
                    return Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the plan's spilled units end early",
                    )));
                }
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
            self.from_file += 1;
            let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            return Some(Ok(line));
        }
        if self.memory.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', self.memory).unwrap_or(self.memory.len());
        let (line, rest) = self.memory.split_at(end);
        self.memory = rest.get(1..).unwrap_or_default();
        Some(Ok(line))
    }
}

impl Serialize for UnitList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut seq = s.serialize_seq(Some(self.len()))?;
        let mut lines = self.lines();
        while let Some(line) = lines.next_line() {
            let line = line.map_err(S::Error::custom)?;
            let raw: &serde_json::value::RawValue =
                serde_json::from_slice(line).map_err(S::Error::custom)?;
            seq.serialize_element(raw)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for UnitList {
    /// Unit by unit into a list that spills, so a large saved plan is never
    /// held parsed.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Units;
        impl<'de> Visitor<'de> for Units {
            type Value = UnitList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of units")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UnitList, A::Error> {
                use serde::de::Error;
                let mut list = UnitListBuilder::detached();
                while let Some(unit) = seq.next_element::<PlannedUnit>()? {
                    list.push(&unit).map_err(A::Error::custom)?;
                }
                list.finish().map_err(A::Error::custom)
            }
        }
        d.deserialize_seq(Units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::SortedMap;

    fn unit(i: usize) -> PlannedUnit {
        PlannedUnit {
            key: format!("u{i:05}"),
            action: if i.is_multiple_of(3) {
                Action::Invalid
            } else {
                Action::Create
            },
            files: SortedMap::from_sorted(Vec::new()),
            meta: crate::plan::model::meta_raw(&serde_json::json!({"i": i, "text": "a\nb"})),
            problems: Vec::new(),
            conflict: None,
        }
    }

    #[test]
    fn a_spilled_list_reads_back_like_a_held_one() {
        let dir = tempfile::tempdir().unwrap();
        let area = SpillArea {
            dir: dir.path().join("spill"),
            budget: MemoryBudget::parse("16MiB").unwrap(),
        };
        let units: Vec<PlannedUnit> = (0..3000).map(unit).collect();
        // A tiny share: a spill every few units, and a tail held in memory.
        let mut builder = UnitListBuilder::new(&area, 1 << 16);
        for u in &units {
            builder.push(u).unwrap();
        }
        let spilled = builder.finish().unwrap();
        assert!(spilled.spilled());
        let held: UnitList = units.clone().into_iter().collect();
        assert!(!held.spilled());
        assert_eq!(spilled.len(), 3000);
        assert_eq!(spilled.to_vec().unwrap(), units);
        let heads: Vec<(String, Action)> = spilled
            .heads()
            .map(|h| h.map(|h| (h.key, h.action)).unwrap())
            .collect();
        assert_eq!(
            heads,
            units
                .iter()
                .map(|u| (u.key.clone(), u.action))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            spilled.at(&[0, 7, 2999]).unwrap(),
            [units[0].clone(), units[7].clone(), units[2999].clone()]
        );
        assert_eq!(held.to_vec().unwrap(), units);
        // Two readers at once share the file.
        assert!(
            spilled
                .iter()
                .zip(held.iter())
                .all(|(a, b)| a.unwrap() == b.unwrap())
        );
        assert_eq!(
            serde_json::to_string(&spilled).unwrap(),
            serde_json::to_string(&units).unwrap()
        );
        let back: UnitList = serde_json::from_str(&serde_json::to_string(&units).unwrap()).unwrap();
        assert_eq!(back.to_vec().unwrap(), units);
        // The file is unnamed: nothing is left in the folder.
        drop((spilled, back));
        assert_eq!(
            std::fs::read_dir(dir.path().join("spill")).unwrap().count(),
            0
        );
    }

    #[test]
    fn an_empty_list_writes_an_empty_array() {
        let list = UnitList::default();
        assert!(list.is_empty());
        assert_eq!(serde_json::to_string(&list).unwrap(), "[]");
        assert!(list.iter().next().is_none());
    }
}
