//! Many short strings in one allocation.
//!
//! A plan at millions of files holds millions of paths and keys until it is
//! written. As `String`s each costs 24 bytes of header plus an allocation
//! (with the allocator's rounding and bookkeeping, 32 bytes or more for a
//! 15-byte key); packed, it costs its bytes plus 4.

/// Strings one after another in one `String`, each found by where it ends.
///
/// Ends are kept as 4 bytes, relative to the start of their block of
/// [`BLOCK`] strings (at 4.6 million paths, 8-byte ends were 37 MiB). An end
/// a block cannot reach in 4 bytes (strings averaging over a megabyte) is
/// kept whole on the side.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PackedStrs {
    text: String,
    /// Where each string ends, from the start of its block in `text`
    /// ([`FAR`]: in `far`).
    ends: Vec<u32>,
    /// Where each block starts in `text`.
    starts: Vec<usize>,
    /// Ends a block could not hold, by string.
    far: std::collections::BTreeMap<usize, usize>,
}

/// The capacity of a `Vec` of `len` in `capacity` after `more` are added:
/// as it is, or grown to twice it or to what is needed.
pub(crate) fn grown(len: usize, capacity: usize, more: usize) -> usize {
    let needed = len + more;
    if needed <= capacity {
        capacity
    } else {
        needed.max(capacity * 2)
    }
}

/// Strings in a block.
const BLOCK: usize = 4096;
/// An end kept in `far`.
const FAR: u32 = u32::MAX;

impl PackedStrs {
    pub fn with_capacity(strings: usize, bytes: usize) -> Self {
        let mut p = Self::default();
        p.reserve(strings, bytes);
        p
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Makes room for `strings` more strings of `bytes` in all.
    pub fn reserve(&mut self, strings: usize, bytes: usize) {
        self.text.reserve(bytes);
        self.ends.reserve(strings);
        self.starts.reserve(strings.div_ceil(BLOCK));
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The strings' bytes in all.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// The bytes allocated for the strings and their ends.
    pub fn allocated(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * 4 + self.starts.capacity() * 8
    }

    /// What [`Self::allocated`] would be after adding `strings` strings of
    /// `bytes` in all (a `Vec` that has no room doubles).
    pub fn allocated_after(&self, strings: usize, bytes: usize) -> usize {
        let blocks = (self.len() + strings).div_ceil(BLOCK);
        grown(self.text.len(), self.text.capacity(), bytes)
            + grown(self.ends.len(), self.ends.capacity(), strings) * 4
            + grown(
                self.starts.len(),
                self.starts.capacity(),
                blocks.saturating_sub(self.starts.len()),
            ) * 8
    }

    /// Empties the strings, keeping what is allocated for the next ones.
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
        self.starts.clear();
        self.far.clear();
    }

    pub fn push(&mut self, s: &str) {
        let start = self.text.len();
        self.text.push_str(s);
        self.record(start, self.text.len());
    }

    /// Records the next string as `text[start..end]`.
    fn record(&mut self, start: usize, end: usize) {
        let i = self.ends.len();
        if i.is_multiple_of(BLOCK) {
            self.starts.push(start);
        }
        match u32::try_from(end - self.starts[i / BLOCK]) {
            Ok(rel) if rel != FAR => self.ends.push(rel),
            _ => {
                self.ends.push(FAR);
                self.far.insert(i, end);
            }
        }
    }

    /// Where string `i` ends in `text`.
    fn end(&self, i: usize) -> usize {
        match self.ends[i] {
            FAR => self.far[&i],
            rel => self.starts[i / BLOCK] + rel as usize,
        }
    }

    /// Where string `i` starts in `text`.
    fn start(&self, i: usize) -> usize {
        if i.is_multiple_of(BLOCK) {
            self.starts[i / BLOCK]
        } else {
            self.end(i - 1)
        }
    }

    /// String `i`. Panics past the end, like a slice.
    pub fn get(&self, i: usize) -> &str {
        let end = self.end(i);
        &self.text[self.start(i)..end]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + Clone + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Keeps the first `n` strings.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.text.truncate(if n == 0 { 0 } else { self.end(n - 1) });
            self.ends.truncate(n);
            self.starts.truncate(n.div_ceil(BLOCK));
            self.far.split_off(&n);
        }
    }

    /// Moves every string of `other` to the end.
    pub fn append(&mut self, other: &mut PackedStrs) {
        self.text.reserve(other.text.len());
        self.ends.reserve(other.len());
        for s in other.iter() {
            self.push(s);
        }
        *other = PackedStrs::default();
    }

    /// The strings at `order`'s positions, in that order, in exactly the room
    /// they need.
    pub fn permuted(&self, order: &[u32]) -> PackedStrs {
        let bytes = order.iter().map(|&i| self.get(i as usize).len()).sum();
        let mut out = PackedStrs::with_capacity(order.len(), bytes);
        for &i in order {
            out.push(self.get(i as usize));
        }
        out
    }

    /// Puts the strings in `order`, as [`Self::permuted`] does, through
    /// `file` (empty, read and written from its start): the new text is
    /// written there and read back once the old one is freed, so the two are
    /// never held at once (107 MiB more at 4.6 million paths). `Ok(false)`:
    /// the file could not be written, and nothing has changed (the caller can
    /// reorder in memory). An error: the file could not be read back, the
    /// strings are gone and the caller must give up the list.
    pub fn permute_through(
        &mut self,
        order: &[u32],
        file: &mut std::fs::File,
    ) -> std::io::Result<bool> {
        use std::io::{Read, Seek, Write};
        let mut out = PackedStrs::default();
        out.ends.reserve_exact(order.len());
        out.starts.reserve_exact(order.len().div_ceil(BLOCK));
        let mut written = 0;
        let wrote = (|| {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut *file);
            for &i in order {
                let s = self.get(i as usize);
                w.write_all(s.as_bytes())?;
                out.record(written, written + s.len());
                written += s.len();
            }
            w.flush()
        })();
        if wrote.is_err() {
            return Ok(false);
        }
        self.text = String::new();
        file.rewind()?;
        let mut text = String::with_capacity(written);
        file.take(written as u64).read_to_string(&mut text)?;
        if text.len() != written {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the reordered paths came back short",
            ));
        }
        out.text = text;
        *self = out;
        Ok(true)
    }

    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.starts.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permutation_through_a_file_equals_one_in_memory() {
        let mut p = PackedStrs::default();
        let strings: Vec<String> = (0..10_000)
            .map(|i| format!("s{}", i * 7919 % 10_007))
            .collect();
        for s in &strings {
            p.push(s);
        }
        p.push("");
        let order: Vec<u32> = (0..p.len() as u32).rev().collect();
        let in_memory = p.permuted(&order);
        let mut file = tempfile::tempfile().unwrap();
        // A file that cannot be written (opened to read): nothing changes.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ro"), "").unwrap();
        let mut read_only = std::fs::File::open(dir.path().join("ro")).unwrap();
        let before = p.clone();
        assert!(!p.permute_through(&order, &mut read_only).unwrap());
        assert_eq!(p, before);
        assert!(p.permute_through(&order, &mut file).unwrap());
        assert_eq!(p, in_memory);
        assert_eq!(p.get(0), "");
        assert_eq!(p.get(1), strings[9_999]);
    }

    #[test]
    fn strings_come_back_as_pushed_including_empty_ones() {
        let mut p = PackedStrs::default();
        for s in ["a", "", "ccc", "é"] {
            p.push(s);
        }
        assert_eq!(p.iter().collect::<Vec<_>>(), ["a", "", "ccc", "é"]);
        let mut q = PackedStrs::default();
        q.push("z");
        p.append(&mut q);
        assert!(q.is_empty());
        assert_eq!(p.get(4), "z");
        assert_eq!(p.permuted(&[4, 2]).iter().collect::<Vec<_>>(), ["z", "ccc"]);
        p.truncate(2);
        assert_eq!(p.iter().collect::<Vec<_>>(), ["a", ""]);
        p.truncate(0);
        assert!(p.is_empty() && p.text.is_empty());
    }

    #[test]
    fn blocks_and_far_ends_read_back_across_truncate_and_permute() {
        let mut p = PackedStrs::default();
        let strings: Vec<String> = (0..3 * BLOCK + 5).map(|i| format!("s{i}")).collect();
        for s in &strings {
            p.push(s);
        }
        assert!(p.iter().eq(strings.iter().map(String::as_str)));
        // An end past 4 GiB of its block is kept on the side; forced here by
        // a block start far behind.
        let mut far = PackedStrs::default();
        far.push("a");
        far.ends[0] = FAR;
        far.far.insert(0, 1);
        far.push("bc");
        assert_eq!(far.iter().collect::<Vec<_>>(), ["a", "bc"]);
        p.truncate(BLOCK + 1);
        assert_eq!(p.len(), BLOCK + 1);
        assert_eq!(p.get(BLOCK), strings[BLOCK]);
        p.push("next");
        assert_eq!(p.get(BLOCK + 1), "next");
        let order: Vec<u32> = (0..p.len() as u32).rev().collect();
        let back = p.permuted(&order);
        assert_eq!(back.get(0), "next");
        assert_eq!(back.get(back.len() - 1), "s0");
    }
}
