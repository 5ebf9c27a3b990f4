//! The feature orders a node that will be split hands down to its children.

/// A node's rows in each feature's sorted order (`(value, row)`, feature `f`
/// at `entries[f * len..(f + 1) * len]`), for the features whose order is
/// known (`filled`).
///
/// A node that will be split keeps the orders its scan picks out, and hands
/// each child its part of them in one pass; a child then reads its orders
/// instead of picking its rows out of all `n` (the cost of a node goes from
/// `p·n` to `p·rows in the node`). Memory: the pending nodes of a depth-first
/// growth hold disjoint rows, so all lists together hold at most `p·n`
/// entries, the size of [`SortedColumns`].
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
