//! Many short strings in one allocation.
//!
//! A plan at millions of files holds millions of paths and keys until it is
//! written. As `String`s each costs 24 bytes of header plus an allocation
//! (with the allocator's rounding and bookkeeping, 32 bytes or more for a
//! 15-byte key); packed, it costs its bytes plus 8.

/// Strings one after another in one `String`, each found by where it ends.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PackedStrs {
    text: String,
    /// Where each string ends in `text` (it starts where the previous ends).
    ends: Vec<usize>,
}

impl PackedStrs {
    pub fn with_capacity(strings: usize, bytes: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(strings),
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Makes room for `strings` more strings of `bytes` in all.
    pub fn reserve(&mut self, strings: usize, bytes: usize) {
        self.text.reserve(bytes);
        self.ends.reserve(strings);
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len());
    }

    /// String `i`. Panics past the end, like a slice.
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + Clone + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Keeps the first `n` strings.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.text
                .truncate(if n == 0 { 0 } else { self.ends[n - 1] });
            self.ends.truncate(n);
        }
    }

    /// Moves every string of `other` to the end.
    pub fn append(&mut self, other: &mut PackedStrs) {
        let base = self.text.len();
        self.text.push_str(&other.text);
        self.ends.extend(other.ends.iter().map(|e| e + base));
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

    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
