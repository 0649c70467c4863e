//! Where each file of a plan's units to create is met first, found before the
//! run by an external sort: so the executor knows which batch stores a file
//! several units share, and which batches wait for it, without a set of
//! every SHA-1 it has seen (at a million units that set was most of apply's
//! memory).
//!
//! Occurrences are numbered in the order apply meets them: units to create
//! in plan order, each unit's files in its order, counting only files whose
//! SHA-1 the plan knows (a file planned with `checksum: apply` is keyed by
//! its identity and handled apart, [`super::deferred`]).

use std::io;

use crate::plan::model::PlannedFile;
use crate::source::Sha1Digest;
use crate::spill::{Record, Sorter, SpillArea, codec};

/// One bit per occurrence: whether it is its content's first, and whether a
/// first is met again later (only then can another batch wait for it).
pub(crate) struct Occurrences {
    first: Vec<u64>,
    again: Vec<u64>,
}

/// What a run will store: distinct contents and their bytes.
pub(crate) struct Distinct {
    pub files: u64,
    pub bytes: u64,
}

/// An occurrence, sorted by content, then by when apply meets it.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Occurrence {
    sha1: Sha1Digest,
    seq: u64,
    size: u64,
}

impl Record for Occurrence {
    // Ordered by every field.
    const EQUAL_IS_SAME: bool = true;

    fn weight(&self) -> usize {
        0
    }
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_bytes(out, &self.sha1);
        codec::put_u64(out, self.seq);
        codec::put_u64(out, self.size);
    }
    fn decode(input: &mut &[u8]) -> io::Result<Self> {
        Ok(Self {
            sha1: codec::get_array(input)?,
            seq: codec::get_u64(input)?,
            size: codec::get_u64(input)?,
        })
    }
}

/// The binary SHA-1 of a file the plan gives one. A plan's SHA-1s are hex
/// (a saved plan's were checked against its hash); anything else is told
/// apart by the digest of its text, so it still groups with its equals.
pub(crate) fn content_of(sha1: &str) -> Sha1Digest {
    use sha1::Digest;
    let mut d = [0u8; 20];
    match hex::decode_to_slice(sha1, &mut d) {
        Ok(()) => d,
        Err(_) => sha1::Sha1::digest(sha1.as_bytes()).into(),
    }
}

impl Occurrences {
    /// A sort, spilling under `spill`, that is told each occurrence's
    /// content and size in the order apply meets them.
    pub(crate) fn finder(spill: &SpillArea) -> Finder {
        Finder {
            sorter: spill.sorter(2),
            seq: 0,
        }
    }

    /// Whether occurrence `seq` is its content's first.
    pub(crate) fn is_first(&self, seq: u64) -> bool {
        get(&self.first, seq)
    }

    /// Whether the content first met at `seq` is met again later.
    pub(crate) fn met_again(&self, seq: u64) -> bool {
        get(&self.again, seq)
    }
}

/// Occurrences told in order, then sorted by content.
pub(crate) struct Finder {
    sorter: Sorter<Occurrence>,
    seq: u64,
}

impl Finder {
    pub(crate) fn push(&mut self, sha1: Sha1Digest, size: u64) -> io::Result<()> {
        let seq = self.seq;
        self.seq += 1;
        self.sorter.push(Occurrence { sha1, seq, size })
    }

    /// Where each content is met first and whether again, and the
    /// distinct contents with their bytes.
    pub(crate) fn finish(self) -> io::Result<(Occurrences, Distinct)> {
        let words = self.seq.div_ceil(64) as usize;
        let mut found = Occurrences {
            first: vec![0; words],
            again: vec![0; words],
        };
        let mut distinct = Distinct { files: 0, bytes: 0 };
        // The group being read: its content, first occurrence, least size.
        let mut group: Option<(Sha1Digest, u64, u64)> = None;
        for o in self.sorter.finish()? {
            let o = o?;
            match &mut group {
                Some((sha1, first, size)) if *sha1 == o.sha1 => {
                    set(&mut found.again, *first);
                    *size = (*size).min(o.size);
                }
                _ => {
                    if let Some((_, _, size)) = group {
                        distinct.bytes += size;
                    }
                    distinct.files += 1;
                    set(&mut found.first, o.seq);
                    group = Some((o.sha1, o.seq, o.size));
                }
            }
        }
        if let Some((_, _, size)) = group {
            distinct.bytes += size;
        }
        Ok((found, distinct))
    }
}

/// The files of a unit that count as occurrences, in the order they are met.
pub(crate) fn counted<'u>(
    files: impl Iterator<Item = &'u PlannedFile>,
) -> impl Iterator<Item = (&'u PlannedFile, &'u str)> {
    files.filter_map(|f| Some((f, f.sha1.as_deref()?)))
}

fn set(bits: &mut [u64], i: u64) {
    bits[(i / 64) as usize] |= 1 << (i % 64);
}

fn get(bits: &[u64], i: u64) -> bool {
    bits.get((i / 64) as usize)
        .is_some_and(|w| w & (1 << (i % 64)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(
        spill: &SpillArea,
        files: impl IntoIterator<Item = (Sha1Digest, u64)>,
    ) -> (Occurrences, Distinct) {
        let mut finder = Occurrences::finder(spill);
        for (sha1, size) in files {
            finder.push(sha1, size).unwrap();
        }
        finder.finish().unwrap()
    }

    fn area(dir: &std::path::Path, budget: &str) -> SpillArea {
        SpillArea {
            dir: dir.join("spill"),
            budget: crate::spill::MemoryBudget::parse(budget).unwrap(),
        }
    }

    /// Contents a, b, a, c, b, a: firsts at 0, 1 and 3; a and b are met
    /// again, c is not; three distinct contents, their sizes summed once.
    #[test]
    fn firsts_and_repeats_are_marked_in_the_order_met() {
        let dir = tempfile::tempdir().unwrap();
        let d = |b: u8| [b; 20];
        let files = [
            (d(1), 5),
            (d(2), 7),
            (d(1), 5),
            (d(3), 11),
            (d(2), 7),
            (d(1), 5),
        ];
        let (o, distinct) = found(&area(dir.path(), "512MiB"), files);
        let firsts: Vec<bool> = (0..6).map(|i| o.is_first(i)).collect();
        assert_eq!(firsts, [true, true, false, true, false, false]);
        let again: Vec<bool> = [0, 1, 3].map(|i| o.met_again(i)).to_vec();
        assert_eq!(again, [true, true, false]);
        assert_eq!((distinct.files, distinct.bytes), (3, 23));
        assert!(!o.is_first(6) && !o.met_again(64 * 5), "past the end");
    }

    /// Past its share of the budget (600,000 occurrences weigh 24 MB) the
    /// sort spills, and finds the same.
    #[test]
    fn a_spilled_sort_finds_the_same_firsts() {
        let dir = tempfile::tempdir().unwrap();
        let n = 600_000u64;
        let files = (0..n).map(|i| {
            let mut d = [0u8; 20];
            d[..8].copy_from_slice(&(i % 1000).to_le_bytes());
            (d, 1)
        });
        let (o, distinct) = found(&area(dir.path(), "16MiB"), files);
        assert_eq!(distinct.files, 1000);
        assert!((0..n).all(|i| o.is_first(i) == (i < 1000)));
        assert!((0..1000).all(|i| o.met_again(i)));
    }

    #[test]
    fn hex_sha1s_are_their_bytes_and_other_text_is_told_apart() {
        let hex = "a9993e364706816aba3e25717850c26c9cd0d89d";
        assert_eq!(hex::encode(content_of(hex)), hex);
        assert_ne!(content_of("x"), content_of("y"));
        assert_eq!(content_of("x"), content_of("x"));
    }
}
