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
                    let mut threshold = prev / 2.0 + v / 2.0;
                    if threshold == v || threshold.is_infinite() {
                        threshold = prev;
                    }
                    best = Some((proxy, threshold));
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

pub(super) struct FeatureScan {
    pub(super) first: f64,
    pub(super) last: f64,
    pub(super) best: Option<(f64, f64)>,
}
