//! One feature's split search in a node: scikit-learn's proxy improvement
//! at every candidate position, the first best kept.

use super::FEATURE_THRESHOLD;

/// The scan proper over a node's members in one feature's order: the first
/// best split that beats `floor` (its proxy and threshold), and the last
/// value.
///
/// `WHOLE`: the weights are whole numbers, so the left weight is the integer
/// count `cl` exactly, and `pairs[cl] = [1 / cl, 1 / (C - cl)]` (`C` the
/// node's count) gives the estimate that spares most divisions. Otherwise
/// every candidate is divided out.
pub(super) fn scan_members<const WHOLE: bool>(
    members: &[(f32, u32)],
    stats: &[RowStat],
    pairs: &[[f64; 2]],
    node: &NodeSums,
    msl: usize,
    floor: f64,
) -> (Option<(f64, f64)>, f64) {
    let (sw, swy) = (node.sw, node.swy);
    // Candidate positions (rows on the left) run from `lo` to `lo + span`.
    let lo = msl.max(1);
    let span = node.n.saturating_sub(msl).checked_sub(lo);
    let (mut sl, mut wl_sum, mut cl) = (0.0, 0.0, 0u32);
    let mut prev = f64::NAN;
    let mut best: Option<(f64, f64)> = None;
    let mut bar = floor;
    let mut bar_slack = floor * (1.0 - ESTIMATE_SLACK);
    for (count, &(v, r)) in members.iter().enumerate() {
        let v = f64::from(v);
        // `prev` is NaN at the first row, which is never a candidate.
        if v > prev + FEATURE_THRESHOLD && span.is_some_and(|s| count.wrapping_sub(lo) <= s) {
            let sr = swy - sl;
            let estimate = match pairs.get(cl as usize) {
                Some([il, ir]) if WHOLE => sl * sl * il + sr * sr * ir,
                _ => f64::INFINITY,
            };
            if estimate >= bar_slack {
                let wl = if WHOLE { f64::from(cl) } else { wl_sum };
                let proxy = sl * sl / wl + sr * sr / (sw - wl);
                if proxy > bar {
                    best = Some((proxy, split_threshold(prev, v)));
                    bar = proxy;
                    bar_slack = proxy * (1.0 - ESTIMATE_SLACK);
                }
            }
        }
        if let Some(row) = stats.get(r as usize) {
            sl += row.wy;
            if WHOLE {
                cl = cl.wrapping_add(row.count);
            } else {
                wl_sum += row.w;
            }
        }
        prev = v;
    }
    (best, prev)
}

/// [`scan_members::<true>`] for a feature whose values are all distinct
/// (`SortedColumns::distinct`): every position in the range
/// `min_samples_leaf` allows is a candidate, so the loop compares no values,
/// and rows before the range are only added up. The same result in fewer
/// instructions per row.
#[inline(never)]
pub(super) fn scan_whole_distinct(
    members: &[(f32, u32)],
    stats: &[RowStat],
    pairs: &[[f64; 2]],
    node: &NodeSums,
    msl: usize,
    floor: f64,
) -> (Option<(f64, f64)>, f64) {
    let last = members.last().map_or(f64::NAN, |&(v, _)| f64::from(v));
    // Candidate positions (rows on the left): `lo..=hi`.
    let lo = msl.max(1);
    let hi = node
        .n
        .saturating_sub(msl)
        .min(members.len().saturating_sub(1));
    if hi < lo {
        return (None, last);
    }
    let (sw, swy) = (node.sw, node.swy);
    let (mut sl, mut cl) = (0.0, 0u32);
    for &(_, r) in &members[..lo] {
        if let Some(row) = stats.get(r as usize) {
            sl += row.wy;
            cl = cl.wrapping_add(row.count);
        }
    }
    let mut best: Option<(f64, f64)> = None;
    let mut bar = floor;
    let mut bar_slack = floor * (1.0 - ESTIMATE_SLACK);
    for (i, &(_, r)) in members[lo..=hi].iter().enumerate() {
        let sr = swy - sl;
        let estimate = match pairs.get(cl as usize) {
            Some([il, ir]) => sl * sl * il + sr * sr * ir,
            None => f64::INFINITY,
        };
        if estimate >= bar_slack {
            let wl = f64::from(cl);
            let proxy = sl * sl / wl + sr * sr / (sw - wl);
            if proxy > bar {
                // `lo + i` is at least 1 and at most `hi`.
                let prev = f64::from(members[lo + i - 1].0);
                let v = f64::from(members[lo + i].0);
                best = Some((proxy, split_threshold(prev, v)));
                bar = proxy;
                bar_slack = proxy * (1.0 - ESTIMATE_SLACK);
            }
        }
        if let Some(row) = stats.get(r as usize) {
            sl += row.wy;
            cl = cl.wrapping_add(row.count);
        }
    }
    (best, last)
}

/// scikit-learn's threshold between neighbouring values `prev < v`: their
/// midpoint, or `prev` where the midpoint rounds up to `v` or overflows.
pub(super) fn split_threshold(prev: f64, v: f64) -> f64 {
    let threshold = prev / 2.0 + v / 2.0;
    if threshold == v || threshold.is_infinite() {
        prev
    } else {
        threshold
    }
}

/// How far below the exact proxy its reciprocal-table estimate can fall:
/// each of the two terms is a product with one extra rounding of the
/// reciprocal and one of the product, so both are within `3 ε` relative and
/// so is their sum of non-negative terms; `16 ε` leaves room to spare.
pub(super) const ESTIMATE_SLACK: f64 = 16.0 * f64::EPSILON;

/// `1 / c` for every whole `c` up to the weights' total, when every weight
/// is a whole number (bootstrap counts, or ones) and the total small enough
/// for a table (at most four entries per row); `None` otherwise.
pub(super) fn reciprocal_table(weight: &[f64]) -> Option<Vec<f64>> {
    let limit = (weight.len() as f64).max(1.0) * 4.0;
    let whole = |w: f64| w >= 0.0 && w.fract() == 0.0 && w <= limit;
    if !weight.iter().all(|&w| whole(w)) {
        return None;
    }
    let total: f64 = weight.iter().sum();
    (total <= limit).then(|| (0..=total as usize).map(|c| 1.0 / c as f64).collect())
}

/// What a scan needs to know of the node being split.
pub(super) struct NodeSums {
    pub(super) tag: u32,
    /// Rows in the node.
    pub(super) n: usize,
    /// Σw and Σw·y over them.
    pub(super) sw: f64,
    pub(super) swy: f64,
}

/// One row's part in the scan's sums: `w·y`, `w`, and `w` as a whole number
/// (zero unless every weight is whole).
pub(super) struct RowStat {
    pub(super) wy: f64,
    pub(super) w: f64,
    pub(super) count: u32,
}

/// What one feature's scan in a node found: whether the feature is constant
/// there (its values within `FEATURE_THRESHOLD`), and the first best split
/// (its proxy and threshold).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct FeatureScan {
    pub(super) constant: bool,
    pub(super) best: Option<(f64, f64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On distinct values, the scan without value comparisons finds what the
    /// general scan finds, bit for bit: every `min_samples_leaf`, floors
    /// below, between and above the node's proxies, targets of 0/1 and real.
    #[test]
    fn the_distinct_scan_is_the_general_scan_bit_for_bit() {
        let n = 97;
        let members: Vec<(f32, u32)> = (0..n)
            .map(|i| ((i as f32) * 0.37 - 11.0, ((i * 31) % n) as u32))
            .collect();
        // The rows first and last in the feature's order, whose outlying
        // targets put the best split at either end of the range.
        let (first, last) = (members[0].1 as usize, members[n - 1].1 as usize);
        for targets in 0..4 {
            let stats: Vec<RowStat> = (0..n)
                .map(|r| {
                    let w = ((r * 7) % 4 + 1) as f64;
                    let y = match targets {
                        0 => (r % 3 == 0) as u8 as f64,
                        1 => ((r * 13) % 17) as f64 * 0.31 - 2.0,
                        2 if r == last => 100.0,
                        3 if r == first => -100.0,
                        _ => (r % 5) as f64 * 0.01,
                    };
                    RowStat {
                        wy: w * y,
                        w,
                        count: w as u32,
                    }
                })
                .collect();
            let (sw, swy) = stats
                .iter()
                .fold((0.0, 0.0), |(a, b), s| (a + s.w, b + s.wy));
            let total = sw as usize;
            let pairs: Vec<[f64; 2]> = (0..=total)
                .map(|c| [1.0 / c as f64, 1.0 / (total - c) as f64])
                .collect();
            let node = NodeSums { tag: 0, n, sw, swy };
            let best_anywhere =
                scan_members::<true>(&members, &stats, &pairs, &node, 1, f64::NEG_INFINITY)
                    .0
                    .map_or(0.0, |(proxy, _)| proxy);
            for msl in [1, 2, 3, 5, 48, 49] {
                for floor in [
                    f64::NEG_INFINITY,
                    best_anywhere * 0.999,
                    best_anywhere,
                    best_anywhere * 2.0,
                ] {
                    let general = scan_members::<true>(&members, &stats, &pairs, &node, msl, floor);
                    let distinct = scan_whole_distinct(&members, &stats, &pairs, &node, msl, floor);
                    let bits = |(best, last): (Option<(f64, f64)>, f64)| {
                        (
                            best.map(|(p, t)| (p.to_bits(), t.to_bits())),
                            last.to_bits(),
                        )
                    };
                    assert_eq!(
                        bits(general),
                        bits(distinct),
                        "msl {msl}, floor {floor}, targets {targets}"
                    );
                }
            }
            assert!(best_anywhere > 0.0);
        }
    }
}
