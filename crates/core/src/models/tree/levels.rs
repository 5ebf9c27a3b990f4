//! Shallow trees (at most two splits deep, as the benchmark's forest) grown
//! a level at a time: the nodes of one level of up to 16 trees scanned
//! together, in one pass over each sorted column.
//!
//! Grown one at a time, every node of such a tree picks its rows out of
//! every column and scans them, so a cross-validated forest is mostly row
//! picking (docs/benchmarks.md has the profile). Here each row carries, for
//! every node of the level (a *lane*), its weight `c` (a bootstrap count)
//! and `c·y` packed in one `u32`, zero where the row is not in the node. The
//! running sums of all lanes along a sorted column are then one vector add
//! per row, with no rows picked out, and a float32 estimate of every lane's
//! proxy at every row (vector arithmetic too) shows where each lane's best
//! split can be. Only there is the exact float64 proxy computed, and it
//! alone decides, so the scans are the ones [`super::scan`] would make,
//! bit for bit. The depth-first builder ([`super::grow`]) then reads them
//! instead of scanning, drawing features in scikit-learn's order.
//!
//! What makes the packing exact: targets 0 or 1 and whole weights adding up
//! to less than 2^16. A lane counts its node's rows as it goes, and takes a
//! candidate before each of them within the range `min_samples_leaf`
//! leaves, as the usual scan does where every two neighbouring values are
//! more than `FEATURE_THRESHOLD` apart; a feature with closer values is
//! scanned the usual way, lane by lane. Every feature is scanned, so only
//! trees that draw at least half the features at each split are grown this
//! way.

use super::grow::{grow_from, impurity_of, Growth, ScansAhead, Start, TreeLimits};
use super::scan::{scan_members, split_threshold, FeatureScan, NodeSums, RowStat};
use super::sorted::SortedColumns;
use super::{Tree, EPSILON, FEATURE_THRESHOLD, TREE_LEAF};
use crate::models::FitError;
use crate::stop::Stop;

/// Nodes scanned together: 16 `u32` (or `f32`) lanes fill one AVX-512
/// register, or two AVX2 ones.
pub const LANES: usize = 16;

/// One row's part in every lane: `c << 16 | c·y`.
type Packed = [u32; LANES];

/// How far below its lane's largest estimate an estimate may fall and still
/// be checked with the exact proxy. An estimate takes five roundings of at
/// most 2^-24 from whole numbers exact in float32 (two products per term,
/// their sum, the denominator, the quotient), so it lies within 5.1·2^-24 of
/// the proxy, as does the float64 proxy, more closely; the first best row's
/// estimate is then within 10.2·2^-24 (about 2^-20.6) below the largest
/// estimate, and 2^-19 covers that and the rounding of the cut itself,
/// with room to spare. A wider slack only checks more rows: the proxy is
/// flat near its peak, and at 2^-16 a second row came near in most lanes.
const ESTIMATE_SLACK: f32 = 1.0 / 524_288.0;

/// The largest sum of `c` (and so of `c·y`) a lane's 16 bits hold.
const MAX_LANE_SUM: f64 = 65535.0;

/// Features scanned between two looks at the stop flag.
const FEATURES_PER_CHECK: usize = 32;

/// One tree to grow.
pub struct ShallowTree<'a> {
    /// Each row's weight (its bootstrap count; zero for a row left out).
    pub weight: &'a [f64],
    /// The seed of the tree's feature draws.
    pub rand_r_seed: u32,
}

/// Whether growing by levels beats growing depth first on this machine: on
/// x86-64 with AVX2 or AVX-512, where its scans run 8 or 16 lanes to an
/// instruction; the baseline build's 4 lanes lost to depth first
/// (docs/benchmarks.md has the times). [`grow_shallow`] itself runs
/// anywhere, to the same trees.
pub fn levels_pay() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether trees with these `limits` on `y` with these `weights` are
/// shallow enough, and their sums small enough, to grow by levels.
fn shallow_enough(
    data: &SortedColumns,
    y: &[f64],
    weights: &[&[f64]],
    limits: &TreeLimits,
) -> bool {
    let whole = |w: &[f64]| {
        w.len() == data.n
            && w.iter().all(|&c| c >= 0.0 && c.fract() == 0.0)
            && w.iter().sum::<f64>() <= MAX_LANE_SUM
    };
    shallow_shape(data, y, limits) && weights.iter().all(|w| whole(w))
}

/// What [`grow_shallow`] asks of the trees before their weights: at most
/// two splits deep, at least half the features drawn per split, 0/1
/// targets. A caller can check it before making any weights.
pub fn shallow_shape(data: &SortedColumns, y: &[f64], limits: &TreeLimits) -> bool {
    limits.max_depth <= 2
        && limits.max_features.saturating_mul(2) >= data.p
        && y.len() == data.n
        && y.iter().all(|&v| v == 0.0 || v == 1.0)
}

/// Grows `trees` on the columns `data` and targets `y`, the trees
/// [`super::grow`] grows one by one, their levels scanned 16 nodes at a
/// time on up to `threads` threads; `None` where they are not shallow
/// enough (see the module's documentation).
pub fn grow_shallow(
    data: &SortedColumns,
    y: &[f64],
    trees: &[ShallowTree<'_>],
    limits: &TreeLimits,
    threads: usize,
    growth: &mut Growth<'_>,
) -> Result<Option<Vec<Tree>>, FitError> {
    let weights: Vec<&[f64]> = trees.iter().map(|tree| tree.weight).collect();
    if !shallow_enough(data, y, &weights, limits) {
        return Ok(None);
    }
    let mut grown = Vec::with_capacity(trees.len());
    for batch in trees.chunks(LANES) {
        grown.extend(grow_batch(data, y, batch, limits, threads, growth)?);
    }
    Ok(Some(grown))
}

/// One node of a level: its totals, and whether it is scanned.
#[derive(Clone, Copy, Default)]
struct LaneNode {
    /// Σc, Σc·y and the rows in the node.
    c: u32,
    s: u32,
    rows: usize,
    scanned: bool,
}

impl LaneNode {
    /// The node of the rows whose `packed` is not zero, scanned when a tree
    /// at `depth` would split it.
    fn of(packed: impl Iterator<Item = u32>, depth: usize, limits: &TreeLimits) -> Self {
        let (c, s, rows) = packed.fold((0, 0, 0), |(c, s, rows), p| {
            (c + (p >> 16), s + (p & 0xFFFF), rows + usize::from(p != 0))
        });
        // With 0/1 targets Σc·y² is Σc·y, and these sums of whole numbers
        // are what the builder's float sums come to.
        let impurity = impurity_of(f64::from(c), f64::from(s), f64::from(s));
        let scanned = limits.may_split(depth, rows) && impurity > EPSILON;
        Self {
            c,
            s,
            rows,
            scanned,
        }
    }
}

/// The scans of one level's lanes: feature `f` in lane `l` at
/// `scans[f * LANES + l]`.
struct Level {
    scans: Vec<FeatureScan>,
    scanned: [bool; LANES],
}

/// One node's scans in a level, for the builder.
#[derive(Clone, Copy)]
pub(super) struct LaneScans<'a> {
    level: &'a Level,
    lane: usize,
}

impl LaneScans<'_> {
    /// Feature `f`'s scan in the node (`None` if the node was not scanned).
    pub(super) fn get(&self, f: usize) -> Option<FeatureScan> {
        let scanned = self.level.scanned.get(self.lane).copied().unwrap_or(false);
        scanned
            .then(|| self.level.scans.get(f * LANES + self.lane).copied())
            .flatten()
    }
}

fn grow_batch(
    data: &SortedColumns,
    y: &[f64],
    batch: &[ShallowTree<'_>],
    limits: &TreeLimits,
    threads: usize,
    growth: &mut Growth<'_>,
) -> Result<Vec<Tree>, FitError> {
    let n = data.n;
    let packed: Vec<Vec<u32>> = batch
        .iter()
        .map(|tree| {
            tree.weight
                .iter()
                .zip(y)
                .map(|(&w, &y)| {
                    let c = w as u32;
                    (c << 16) | if y == 1.0 { c } else { 0 }
                })
                .collect()
        })
        .collect();
    // The roots: lane `t` is tree `t`'s.
    let mut nodes = [LaneNode::default(); LANES];
    let mut stats = vec![[0u32; LANES]; n];
    for (lane, tree) in packed.iter().enumerate() {
        nodes[lane] = LaneNode::of(tree.iter().copied(), 0, limits);
        for (row, &p) in stats.iter_mut().zip(tree) {
            row[lane] = p;
        }
    }
    let msl = limits.min_samples_leaf;
    let roots = scan_level(data, (&stats, &nodes, msl), threads, growth.stop)?;
    // Each root's split, as the builder chooses it from the scans.
    let root_limits = TreeLimits {
        max_depth: limits.max_depth.min(1),
        ..*limits
    };
    let mut sides: Vec<Option<Vec<bool>>> = Vec::with_capacity(batch.len());
    for (lane, tree) in batch.iter().enumerate() {
        let ahead = ScansAhead {
            root: Some(LaneScans {
                level: &roots,
                lane,
            }),
            ..ScansAhead::default()
        };
        let mut budget = Growth {
            node_budget: 3,
            stop: growth.stop,
        };
        let root = grow_from(
            data,
            (y, tree.weight),
            Start::Ahead(ahead),
            &root_limits,
            tree.rand_r_seed,
            &mut budget,
        )?;
        let split = root.children_left.first().is_some_and(|&l| l != TREE_LEAF);
        let rule = root.feature.first().zip(root.threshold.first());
        sides.push(rule.filter(|_| split).map(|(&feature, &threshold)| {
            // Whether each row goes left, compared as the builder does.
            let mut left = vec![false; n];
            for (v, r) in data.column(feature as usize) {
                if let Some(side) = left.get_mut(r as usize) {
                    *side = f64::from(v) <= threshold;
                }
            }
            left
        }));
    }
    // The roots' children: lanes `2k` and `2k + 1` are the left and right
    // child of the group's `k`-th tree, eight trees a group.
    let mut children = Vec::new();
    if limits.max_depth >= 2 {
        for (group, trees) in packed.chunks(LANES / 2).enumerate() {
            let mut nodes = [LaneNode::default(); LANES];
            let mut stats = vec![[0u32; LANES]; n];
            for (k, tree) in trees.iter().enumerate() {
                let Some(Some(left)) = sides.get(group * LANES / 2 + k) else {
                    continue;
                };
                for (side, lane) in [(true, 2 * k), (false, 2 * k + 1)] {
                    let part = tree
                        .iter()
                        .zip(left)
                        .map(|(&p, &l)| if l == side { p } else { 0 });
                    nodes[lane] = LaneNode::of(part.clone(), 1, limits);
                    for (row, p) in stats.iter_mut().zip(part) {
                        row[lane] = p;
                    }
                }
            }
            children.push(scan_level(
                data,
                (&stats, &nodes, msl),
                threads,
                growth.stop,
            )?);
        }
    }
    let mut grown = Vec::with_capacity(batch.len());
    for (t, tree) in batch.iter().enumerate() {
        let group = children.get(t / (LANES / 2));
        let lane = 2 * (t % (LANES / 2));
        let ahead = ScansAhead {
            root: Some(LaneScans {
                level: &roots,
                lane: t,
            }),
            left: group.map(|level| LaneScans { level, lane }),
            right: group.map(|level| LaneScans {
                level,
                lane: lane + 1,
            }),
        };
        grown.push(grow_from(
            data,
            (y, tree.weight),
            Start::Ahead(ahead),
            limits,
            tree.rand_r_seed,
            growth,
        )?);
    }
    Ok(grown)
}

/// Every feature's scan in every scanned lane of a level whose rows carry
/// `stats`, each side of a split holding at least `msl` rows, the features
/// split over up to `threads` threads.
fn scan_level(
    data: &SortedColumns,
    (stats, nodes, msl): (&[Packed], &[LaneNode; LANES], usize),
    threads: usize,
    stop: &Stop,
) -> Result<Level, FitError> {
    let p = data.p;
    let idle = FeatureScan {
        constant: false,
        best: None,
    };
    let mut scans = vec![idle; p * LANES];
    if nodes.iter().any(|node| node.scanned) && p > 0 {
        let per_thread = p.div_ceil(threads.clamp(1, p));
        let parts = scans
            .chunks_mut(per_thread * LANES)
            .enumerate()
            .map(|(k, out)| (k * per_thread, out));
        crate::parallel::on_parts(parts, |(first, out)| {
            let mut scratch = Scratch::default();
            for (k, out) in out.chunks_mut(LANES).enumerate() {
                if k % FEATURES_PER_CHECK == 0 && stop.check().is_err() {
                    return;
                }
                let f = first + k;
                let level = (stats, nodes, msl);
                if data.distinct(f) {
                    scan_distinct(data, f, level, &mut scratch, out);
                } else {
                    scan_lane_by_lane(data, f, level, &mut scratch, out);
                }
            }
        });
    }
    stop.check()?;
    Ok(Level {
        scans,
        scanned: nodes.map(|node| node.scanned),
    })
}

/// Per thread: the running sums and estimates of every lane at every row of
/// a column, and a lane's rows and row stats for the usual scan.
#[derive(Default)]
struct Scratch {
    sums: Vec<Packed>,
    estimates: Vec<[f32; LANES]>,
    members: Vec<(f32, u32)>,
    row_stats: Vec<RowStat>,
}

/// What the estimate reads of the lanes: their totals, and how many of the
/// node's rows a candidate may have on its left, so as to leave at least
/// `min_samples_leaf` on each side (none for a lane not scanned).
struct Totals {
    c: [f32; LANES],
    s: [f32; LANES],
    fewest: [i32; LANES],
    most: [i32; LANES],
}

/// Feature `f`, whose values are all more than `FEATURE_THRESHOLD` apart,
/// in every scanned lane: the first best split of each, as
/// [`super::scan::scan_whole_distinct`] finds it on the node's rows alone.
fn scan_distinct(
    data: &SortedColumns,
    f: usize,
    level: (&[Packed], &[LaneNode; LANES], usize),
    scratch: &mut Scratch,
    out: &mut [FeatureScan],
) {
    let column = (data.column_rows(f), data.column_values(f));
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { scan_distinct_avx512(column, level, scratch, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { scan_distinct_avx2(column, level, scratch, out) };
        }
    }
    scan_distinct_here(column, level, scratch, out)
}

/// [`scan_distinct_here`] compiled for AVX-512.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scan_distinct_avx512(
    column: (&[u32], &[f32]),
    level: (&[Packed], &[LaneNode; LANES], usize),
    scratch: &mut Scratch,
    out: &mut [FeatureScan],
) {
    scan_distinct_here(column, level, scratch, out)
}

/// [`scan_distinct_here`] compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_distinct_avx2(
    column: (&[u32], &[f32]),
    level: (&[Packed], &[LaneNode; LANES], usize),
    scratch: &mut Scratch,
    out: &mut [FeatureScan],
) {
    scan_distinct_here(column, level, scratch, out)
}

/// [`scan_distinct`] on the column's `rows` and `values`, inlined into each
/// build: its loops run lane by lane over fixed arrays, which the compiler
/// turns into vector instructions. The builds give the same results: the
/// float32 arithmetic is the same in any width, and only the exact proxy
/// decides.
#[inline(always)]
fn scan_distinct_here(
    (rows, values): (&[u32], &[f32]),
    (stats, nodes, msl): (&[Packed], &[LaneNode; LANES], usize),
    scratch: &mut Scratch,
    out: &mut [FeatureScan],
) {
    let msl = msl.max(1);
    // Counts of rows, below 2^16 (the sums of their weights are).
    let range = nodes.map(|node| match node.rows.checked_sub(msl) {
        Some(most) if node.scanned && most >= msl => (msl as i32, most as i32),
        _ => (i32::MAX, 0),
    });
    let totals = Totals {
        c: nodes.map(|node| node.c as f32),
        s: nodes.map(|node| node.s as f32),
        fewest: range.map(|(fewest, _)| fewest),
        most: range.map(|(_, most)| most),
    };
    scratch.sums.resize(rows.len(), [0; LANES]);
    scratch.estimates.resize(rows.len(), [0.0; LANES]);
    let peaks = estimate(rows, stats, &totals, scratch);
    // The exact proxy decides between the rows whose estimates come near
    // their lane's largest, in row order: the first strict maximum wins, as
    // in the usual scan. Mostly the largest stands alone, and only its row
    // is near; else every row is looked at for the lanes with a runner-up.
    let exact = |i: usize, l: usize| {
        let sums = scratch.sums.get(i).map_or(0, |s| s[l]);
        let (sw, swy) = (f64::from(nodes[l].c), f64::from(nodes[l].s));
        let sl = f64::from(sums & 0xFFFF);
        let wl = f64::from(sums >> 16);
        let sr = swy - sl;
        sl * sl / wl + sr * sr / (sw - wl)
    };
    let mut best: [Option<(f64, usize)>; LANES] = [None; LANES];
    let mut crowded = [f32::INFINITY; LANES];
    for (l, peak) in peaks.iter().enumerate() {
        if peak.largest < 0.0 {
            continue;
        }
        let cut = peak.largest - peak.largest * ESTIMATE_SLACK;
        if peak.runner_up < cut {
            best[l] = Some((exact(peak.at as usize, l), peak.at as usize));
        } else {
            crowded[l] = cut;
        }
    }
    for (l, &cut) in crowded.iter().enumerate() {
        if cut.is_infinite() {
            continue;
        }
        for (i, row) in scratch.estimates.iter().enumerate() {
            if row[l] >= cut {
                let proxy = exact(i, l);
                if best[l].is_none_or(|(bar, _)| proxy > bar) {
                    best[l] = Some((proxy, i));
                }
            }
        }
    }
    for (l, scan) in out.iter_mut().enumerate() {
        let in_node = |r: &u32| stats.get(*r as usize).is_some_and(|s| s[l] != 0);
        // The candidate before the node's row `i` lies between it and the
        // node's last row before it (there is one: the left side holds
        // at least one row).
        let threshold = best[l].and_then(|(proxy, i)| {
            let prev = rows.get(..i)?.iter().rposition(in_node)?;
            let (prev, next) = (values.get(prev)?, values.get(i)?);
            Some((proxy, split_threshold(f64::from(*prev), f64::from(*next))))
        });
        *scan = FeatureScan {
            constant: false,
            best: threshold,
        };
    }
}

/// A lane's largest estimate, the row of its first occurrence, and the
/// largest of the estimates at the other rows.
struct Peak {
    largest: f32,
    at: u32,
    runner_up: f32,
}

/// Fills `scratch.sums` with every lane's running sums before each row of
/// the column `rows`, and `scratch.estimates` with the float32 proxy there:
/// a candidate before each of the node's rows, as in the usual scan, where
/// its left side holds an allowed number of the node's rows (`-1` at the
/// other rows). Returns each lane's peak.
#[inline(always)]
fn estimate(
    rows: &[u32],
    stats: &[Packed],
    totals: &Totals,
    scratch: &mut Scratch,
) -> [Peak; LANES] {
    let mut sums = [0u32; LANES];
    // The node's rows so far, lane by lane.
    let mut seen = [0i32; LANES];
    let mut largest = [-1.0f32; LANES];
    let mut at = [0u32; LANES];
    let mut runner_up = [-1.0f32; LANES];
    let out = scratch.sums.iter_mut().zip(scratch.estimates.iter_mut());
    for (i, (&r, (sums_out, estimates))) in rows.iter().zip(out).enumerate() {
        *sums_out = sums;
        let i = i as u32;
        let add = stats.get(r as usize).copied().unwrap_or([0; LANES]);
        for l in 0..LANES {
            // Both halves are below 2^16: exact as float32.
            let cl = (sums[l] >> 16) as i32 as f32;
            let sl = (sums[l] & 0xFFFF) as i32 as f32;
            let (cr, sr) = (totals.c[l] - cl, totals.s[l] - sl);
            // sl²/cl + sr²/cr with one division.
            let e = (sl * (cr * sl) + sr * (sr * cl)) / (cl * cr);
            let candidate =
                (add[l] != 0) & (seen[l] >= totals.fewest[l]) & (seen[l] <= totals.most[l]);
            let e = if candidate { e } else { -1.0 };
            estimates[l] = e;
            let lower = if e < largest[l] { e } else { largest[l] };
            runner_up[l] = if lower > runner_up[l] {
                lower
            } else {
                runner_up[l]
            };
            at[l] = if e > largest[l] { i } else { at[l] };
            largest[l] = if e > largest[l] { e } else { largest[l] };
            sums[l] = sums[l].wrapping_add(add[l]);
            seen[l] += i32::from(add[l] != 0);
        }
    }
    std::array::from_fn(|l| Peak {
        largest: largest[l],
        at: at[l],
        runner_up: runner_up[l],
    })
}

/// Feature `f` in every scanned lane the usual way: the node's rows picked
/// out of the column and scanned by [`scan_members`] (for a feature with
/// values closer than `FEATURE_THRESHOLD`).
fn scan_lane_by_lane(
    data: &SortedColumns,
    f: usize,
    (stats, nodes, msl): (&[Packed], &[LaneNode; LANES], usize),
    scratch: &mut Scratch,
    out: &mut [FeatureScan],
) {
    for (l, (node, scan)) in nodes.iter().zip(out.iter_mut()).enumerate() {
        if !node.scanned {
            continue;
        }
        scratch.row_stats.clear();
        scratch.row_stats.extend(stats.iter().map(|s| {
            let (c, cy) = (s[l] >> 16, s[l] & 0xFFFF);
            RowStat {
                wy: f64::from(cy),
                w: f64::from(c),
                count: c,
            }
        }));
        scratch.members.clear();
        scratch.members.extend(
            data.column(f)
                .filter(|&(_, r)| stats.get(r as usize).is_some_and(|s| s[l] != 0)),
        );
        let sums = NodeSums {
            tag: 0,
            n: node.rows,
            sw: f64::from(node.c),
            swy: f64::from(node.s),
        };
        let members = &scratch.members;
        let (best, last) = scan_members::<false>(
            members,
            &scratch.row_stats,
            &[],
            &sums,
            msl,
            f64::NEG_INFINITY,
        );
        let first = members.first().map_or(f64::NAN, |&(v, _)| f64::from(v));
        *scan = FeatureScan {
            constant: last <= first + FEATURE_THRESHOLD,
            best,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::scan::scan_whole_distinct;
    use super::*;

    /// A small generator of the tests' numbers (64-bit LCG, high bits).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, k: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % k
        }
    }

    /// In every lane, a level's scan finds what the usual scan of distinct
    /// values finds on the node's rows alone, bit for bit: random nodes of
    /// random weights and 0/1 targets over hundreds of columns, for several
    /// `min_samples_leaf`. Small counts make many candidates' proxies equal
    /// or nearly so, where the float32 estimates cannot order them and the
    /// exact proxy must decide.
    #[test]
    fn every_lane_of_a_level_scan_is_the_usual_scan() {
        // A prime count of rows, so that every multiplier below shuffles them.
        let (n, p) = (71, 300);
        let mut rng = Lcg(7);
        let x = ndarray::Array2::from_shape_fn((n, p), |(r, f)| {
            // Distinct in every column: a row's place in a shuffled order.
            ((r * (f % (n - 1) + 1) + f) % n) as f64 * 0.5 + f as f64
        });
        let data = SortedColumns::new(x.view());
        assert!((0..p).all(|f| data.distinct(f)));
        let y: Vec<u32> = (0..n).map(|_| rng.below(2) as u32).collect();
        let mut lanes_checked = 0;
        for msl in [1, 2, 3, 7] {
            let limits = TreeLimits {
                max_depth: 2,
                min_samples_split: 2,
                min_samples_leaf: msl,
                max_features: p,
            };
            let mut stats = vec![[0u32; LANES]; n];
            let mut nodes = [LaneNode::default(); LANES];
            for (lane, node) in nodes.iter_mut().enumerate() {
                // Lanes of sparse and of dense nodes.
                let empty = 1 + lane as u64 % 3;
                for (row, &y) in stats.iter_mut().zip(&y) {
                    let c = rng.below(3 + empty).saturating_sub(empty) as u32;
                    row[lane] = (c << 16) | (c * y);
                }
                *node = LaneNode::of(stats.iter().map(|s| s[lane]), 0, &limits);
            }
            let level = scan_level(&data, (&stats, &nodes, msl), 1, &Stop::never()).unwrap();
            // Every build of the distinct scan this CPU runs gives the scans
            // the dispatched one gave.
            let mut scratch = Scratch::default();
            for f in 0..p {
                let column = (data.column_rows(f), data.column_values(f));
                let dispatched = &level.scans[f * LANES..(f + 1) * LANES];
                let mut here = [FeatureScan {
                    constant: true,
                    best: None,
                }; LANES];
                scan_distinct_here(column, (&stats, &nodes, msl), &mut scratch, &mut here);
                assert_eq!(dispatched, here, "baseline build, msl {msl}, feature {f}");
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    let mut avx2 = here;
                    // SAFETY: the CPU has AVX2, checked just above.
                    unsafe {
                        scan_distinct_avx2(column, (&stats, &nodes, msl), &mut scratch, &mut avx2)
                    };
                    assert_eq!(dispatched, avx2, "AVX2 build, msl {msl}, feature {f}");
                }
            }
            for (lane, node) in nodes.iter().enumerate().filter(|(_, n)| n.scanned) {
                let row_stats: Vec<RowStat> = stats
                    .iter()
                    .map(|s| RowStat {
                        wy: f64::from(s[lane] & 0xFFFF),
                        w: f64::from(s[lane] >> 16),
                        count: s[lane] >> 16,
                    })
                    .collect();
                let total = node.c as usize;
                let pairs: Vec<[f64; 2]> = (0..=total)
                    .map(|c| [1.0 / c as f64, 1.0 / (total - c) as f64])
                    .collect();
                let sums = NodeSums {
                    tag: 0,
                    n: node.rows,
                    sw: f64::from(node.c),
                    swy: f64::from(node.s),
                };
                for f in 0..p {
                    let members: Vec<(f32, u32)> = data
                        .column(f)
                        .filter(|&(_, r)| stats[r as usize][lane] != 0)
                        .collect();
                    let (usual, _) = scan_whole_distinct(
                        &members,
                        &row_stats,
                        &pairs,
                        &sums,
                        msl,
                        f64::NEG_INFINITY,
                    );
                    let ours = LaneScans {
                        level: &level,
                        lane,
                    }
                    .get(f)
                    .unwrap();
                    let bits = |b: Option<(f64, f64)>| b.map(|(p, t)| (p.to_bits(), t.to_bits()));
                    assert_eq!(
                        bits(ours.best),
                        bits(usual),
                        "msl {msl}, lane {lane}, feature {f}"
                    );
                    assert!(!ours.constant);
                }
                lanes_checked += 1;
            }
        }
        assert!(lanes_checked >= 40, "{lanes_checked} lanes");
    }
}
