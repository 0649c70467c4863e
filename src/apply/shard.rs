//! Shards of a saved plan (SPEC section 7): the units to create, in plan
//! order, cut into N contiguous slices, the first `len % N` one unit longer.
//! Any scheduler can run them (Ray, Kubernetes indexed jobs, Slurm arrays);
//! each keeps its own journal.

use std::ops::Range;

use crate::plan::{Action, Plan, PlannedUnit, UnitList};

/// Shard K of N, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: a shard is K/N with 1 ≤ K ≤ N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// This shard's slice of `total` items.
    pub fn range(&self, total: usize) -> Range<usize> {
        let n = self.count as usize;
        let k = self.index as usize - 1;
        let (base, extra) = (total / n, total % n);
        let start = k * base + k.min(extra);
        let len = base + usize::from(k < extra);
        start..start + len
    }

    /// This shard's units: its slice of the plan's units to create.
    pub fn slice_units<'p>(
        &self,
        plan: &'p Plan,
    ) -> impl Iterator<Item = std::io::Result<PlannedUnit>> + 'p {
        let mine = self.range(plan.units.count(Action::Create));
        plan.units
            .with_action(Action::Create)
            .skip(mine.start)
            .take(mine.len())
    }

    /// The plan with only this shard's units to create (the plan hash kept,
    /// so reports and journals still name the plan they came from). Only
    /// those units are copied.
    pub fn slice(&self, plan: &Plan) -> std::io::Result<Plan> {
        Ok(plan.with_units(UnitList::try_collect(self.slice_units(plan))?))
    }

    /// The suffix of this shard's journal and report files.
    pub fn file_suffix(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }

    /// This shard's journal, beside the unsharded one (`….shard-K-of-N.jsonl`).
    pub fn journal_path(&self, unsharded: &std::path::Path) -> std::path::PathBuf {
        unsharded.with_extension(format!("{}.jsonl", self.file_suffix()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_contiguous_balanced_and_cover_everything() {
        let shards: Vec<Shard> = (1..=4).map(|k| format!("{k}/4").parse().unwrap()).collect();
        let ranges: Vec<Range<usize>> = shards.iter().map(|s| s.range(10)).collect();
        assert_eq!(ranges, [0..3, 3..6, 6..8, 8..10]);
        let s: Shard = "3/3".parse().unwrap();
        assert_eq!(
            s.range(2),
            2..2,
            "more shards than units: the last ones are empty"
        );
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
