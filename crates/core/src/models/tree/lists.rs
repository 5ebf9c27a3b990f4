//! The feature orders a node that will be split hands down to its children.

use super::sorted::SortedColumns;

/// A node's rows in each feature's sorted order (`(value, row)`, feature `f`
/// at `entries[f * len..(f + 1) * len]`), for the features whose order is
/// known (`filled`).
///
/// A node that will be split keeps the orders its scan picks out, and hands
/// each child its part of them in one pass; a child then reads its orders
/// instead of picking its rows out of all `n` (the cost of a node goes from
/// `p·n` to `p·rows in the node`). Memory: the pending nodes of a depth-first
/// growth hold disjoint rows, so one tree's lists together hold at most
/// `p·n` entries, the size of [`SortedColumns`]; a forest fills two trees'
/// roots at once ([`NodeLists::roots`]), so twice that.
pub(super) struct NodeLists {
    pub(super) len: usize,
    /// One spare entry at the end: the branch-free partition writes one
    /// entry past each feature's part.
    entries: Vec<(f32, u32)>,
    pub(super) filled: Vec<bool>,
}

impl NodeLists {
    pub(super) fn new(len: usize, p: usize) -> Self {
        Self {
            len,
            entries: vec![(0.0, 0); p * len + 1],
            filled: vec![false; p],
        }
    }

    /// The roots' lists of trees grown on the same columns, tree `t`'s root
    /// holding the rows whose `weights[t]` is not zero, filled in one pass
    /// over each column for all of them: the column is read once instead of
    /// once per tree, and the rows go straight into the lists rather than
    /// through the scan's scratch (docs/benchmarks.md has the times).
    pub(super) fn roots(data: &SortedColumns, weights: &[&[f64]]) -> Vec<Self> {
        // Each tree's membership as 0 or 1 per row, read with the row.
        let members: Vec<Vec<usize>> = weights
            .iter()
            .map(|w| {
                (0..data.n)
                    .map(|r| usize::from(w.get(r).is_some_and(|&w| w != 0.0)))
                    .collect()
            })
            .collect();
        let mut lists: Vec<Self> = members
            .iter()
            .map(|m| Self::new(m.iter().sum(), data.p))
            .collect();
        match (&mut lists[..], &members[..]) {
            ([a, b], [ma, mb]) => Self::fill_together(data, [a, b], [ma, mb]),
            _ => {
                for (lists, members) in lists.iter_mut().zip(&members) {
                    Self::fill_together(data, [lists], [members]);
                }
            }
        }
        lists
    }

    /// [`NodeLists::roots`] for `N` trees (one or two) in one pass.
    fn fill_together<const N: usize>(
        data: &SortedColumns,
        lists: [&mut Self; N],
        members: [&[usize]; N],
    ) {
        for f in 0..data.p {
            let mut at: [usize; N] = std::array::from_fn(|t| f * lists[t].len);
            for (v, r) in data.column(f) {
                for t in 0..N {
                    // Written whether or not the row is in, kept by the
                    // count (features fill in order; the last has the spare).
                    if let Some(entry) = lists[t].entries.get_mut(at[t]) {
                        *entry = (v, r);
                    }
                    at[t] += members[t].get(r as usize).copied().unwrap_or(0);
                }
            }
            for t in 0..N {
                lists[t].filled[f] = at[t] == (f + 1) * lists[t].len;
            }
        }
    }

    pub(super) fn get(&self, f: usize) -> Option<&[(f32, u32)]> {
        let range = f * self.len..(f + 1) * self.len;
        self.filled[f].then(|| &self.entries[range])
    }

    /// Keeps feature `f`'s order, when it has the node's row count.
    pub(super) fn set(&mut self, f: usize, members: &[(f32, u32)]) {
        if members.len() == self.len {
            self.entries[f * self.len..(f + 1) * self.len].copy_from_slice(members);
            self.filled[f] = true;
        }
    }

    /// The lists of the rows whose `tag` is `left_tag` and of the others,
    /// in one pass over every known feature, keeping each feature's order.
    pub(super) fn partition(&self, tag: &[u32], left_tag: u32, n_left: usize) -> (Self, Self) {
        let p = self.filled.len();
        let n_right = self.len - n_left;
        let (mut left, mut right) = (Self::new(n_left, p), Self::new(n_right, p));
        for f in (0..p).filter(|&f| self.filled[f]) {
            let (mut l, mut r) = (f * n_left, f * n_right);
            for &entry in &self.entries[f * self.len..(f + 1) * self.len] {
                // Written to both sides, kept by one: no branch to mispredict.
                left.entries[l] = entry;
                right.entries[r] = entry;
                let is_left = usize::from(tag[entry.1 as usize] == left_tag);
                l += is_left;
                r += 1 - is_left;
            }
            // A count that disagrees (it cannot) leaves the feature unknown.
            left.filled[f] = l == (f + 1) * n_left;
            right.filled[f] = r == (f + 1) * n_right;
        }
        (left, right)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Filled together or alone, each root's list of a feature is the
    /// feature's sorted column with the rows of zero weight left out.
    #[test]
    fn roots_hold_each_column_filtered_to_the_weighted_rows() {
        let ds = crate::dataset::generated(40, 9);
        let data = SortedColumns::new(ds.x().view());
        let weights: Vec<Vec<f64>> = (0..3)
            .map(|t| (0..40).map(|r| ((r * 7 + t * 3) % 4) as f64).collect())
            .collect();
        let views: Vec<&[f64]> = weights.iter().map(|w| &w[..]).collect();
        for trees in [&views[..1], &views[..2], &views[..]] {
            let lists = NodeLists::roots(&data, trees);
            assert_eq!(lists.len(), trees.len());
            for (lists, w) in lists.iter().zip(trees) {
                for f in 0..data.p {
                    let expected: Vec<(u32, u32)> = data
                        .column(f)
                        .filter(|&(_, r)| w[r as usize] != 0.0)
                        .map(|(v, r)| (v.to_bits(), r))
                        .collect();
                    let got: Vec<(u32, u32)> = lists
                        .get(f)
                        .expect("every feature filled")
                        .iter()
                        .map(|&(v, r)| (v.to_bits(), r))
                        .collect();
                    assert_eq!(got, expected, "{} trees, feature {f}", trees.len());
                }
            }
        }
    }
}
