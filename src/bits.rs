//! Sets of positions at one bit each, and the same frozen with a rank index
//! so that the n-th member and a member's number are found without a table
//! of every member (4 or 8 bytes each, hundreds of MiB at millions of files).

/// A set of positions in `0..len`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitSet {
    words: Vec<u64>,
    len: usize,
}

impl BitSet {
    /// An empty set of positions in `0..len`.
    pub fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Adds `i`; whether it was new. Panics past `len`, like a slice.
    pub fn insert(&mut self, i: usize) -> bool {
        assert!(i < self.len, "bit {i} of {}", self.len);
        let (w, bit) = (i / 64, 1u64 << (i % 64));
        let new = self.words[w] & bit == 0;
        self.words[w] |= bit;
        new
    }

    pub fn contains(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// The set with its rank index, fixed from now on.
    pub fn into_ranked(self) -> RankedBits {
        let mut before = Vec::with_capacity(self.words.len());
        let mut sampled = Vec::new();
        let mut ones = 0usize;
        for (w, word) in self.words.iter().enumerate() {
            before.push(ones);
            let next = ones + word.count_ones() as usize;
            // The word of every SAMPLE-th member.
            while sampled.len() * SAMPLE < next {
                sampled.push(w);
            }
            ones = next;
        }
        RankedBits {
            set: self,
            before,
            sampled,
            ones,
        }
    }
}

/// A fixed [`BitSet`] whose members are numbered in order: `rank` gives a
/// member's number, `select` the member of a number. Costs a `usize` per 64
/// positions on top of the bits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RankedBits {
    set: BitSet,
    /// Members before each word.
    before: Vec<usize>,
    /// The word holding member `k * SAMPLE`, for each k: where `select`
    /// starts looking (a search of every word's count was a cache miss a
    /// step, the most of grouping's time).
    sampled: Vec<usize>,
    ones: usize,
}

/// Members between the samples of [`RankedBits::sampled`].
const SAMPLE: usize = 256;

impl RankedBits {
    /// How many members.
    pub fn count(&self) -> usize {
        self.ones
    }

    pub fn contains(&self, i: usize) -> bool {
        self.set.contains(i)
    }

    /// The number of member `i` (how many members come before it), or
    /// `None` when `i` is not one.
    pub fn rank(&self, i: usize) -> Option<usize> {
        if !self.contains(i) {
            return None;
        }
        let below = self.set.words[i / 64] & ((1u64 << (i % 64)) - 1);
        Some(self.before[i / 64] + below.count_ones() as usize)
    }

    /// Member number `n` (from 0). Panics when there are not that many.
    pub fn select(&self, n: usize) -> usize {
        assert!(n < self.ones, "member {n} of {}", self.ones);
        // The last word with at most n members before it holds member n;
        // it lies between the words of the samples around n.
        let from = self.sampled[n / SAMPLE];
        let to = self
            .sampled
            .get(n / SAMPLE + 1)
            .map_or(self.before.len(), |&w| w + 1);
        let w = from + self.before[from..to].partition_point(|&b| b <= n) - 1;
        let (mut word, mut k, mut at) = (self.set.words[w], n - self.before[w], w * 64);
        // Whole bytes first, then bit by bit within the byte.
        loop {
            let in_byte = (word & 0xff).count_ones() as usize;
            if k < in_byte {
                break;
            }
            k -= in_byte;
            word >>= 8;
            at += 8;
        }
        for _ in 0..k {
            word &= word - 1;
        }
        at + word.trailing_zeros() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_and_select_number_the_members_in_order_across_words() {
        let members = [0, 1, 63, 64, 65, 127, 128, 200, 1000, 1023];
        let mut set = BitSet::new(1024);
        for &m in &members {
            assert!(set.insert(m));
        }
        assert!(!set.insert(64), "already a member");
        let ranked = set.into_ranked();
        assert_eq!(ranked.count(), members.len());
        for (n, &m) in members.iter().enumerate() {
            assert_eq!(ranked.rank(m), Some(n));
            assert_eq!(ranked.select(n), m);
        }
        for i in (0..1024).filter(|i| !members.contains(i)) {
            assert_eq!(ranked.rank(i), None, "{i}");
            assert!(!ranked.contains(i));
        }
        assert!(!ranked.contains(5000), "past the end is not a member");
    }

    /// Dense runs, long gaps and empty words across many samples: select
    /// is the inverse of rank everywhere.
    #[test]
    fn select_across_samples_matches_the_members_in_order() {
        let len = 64 * 400;
        let mut set = BitSet::new(len);
        let members: Vec<usize> = (0..len)
            .filter(|i| i % 7 == 0 || (5_000..9_000).contains(i) || i % 1_000 == 999)
            .filter(|i| !(12_000..20_000).contains(i))
            .collect();
        for &m in &members {
            set.insert(m);
        }
        let ranked = set.into_ranked();
        assert!(ranked.count() > 4 * SAMPLE);
        for (n, &m) in members.iter().enumerate() {
            assert_eq!(ranked.select(n), m, "member {n}");
            assert_eq!(ranked.rank(m), Some(n));
        }
    }

    #[test]
    fn an_empty_set_and_a_full_one() {
        let empty = BitSet::new(0).into_ranked();
        assert_eq!((empty.count(), empty.rank(0)), (0, None));
        let mut full = BitSet::new(130);
        (0..130).for_each(|i| {
            full.insert(i);
        });
        let full = full.into_ranked();
        assert!((0..130).all(|i| full.rank(i) == Some(i) && full.select(i) == i));
    }

    #[test]
    #[should_panic(expected = "member 1 of 1")]
    fn selecting_past_the_members_panics() {
        let mut set = BitSet::new(10);
        set.insert(3);
        set.into_ranked().select(1);
    }
}
