//! Random number streams that reproduce numpy's and scikit-learn's bit for bit.
//!
//! Why not `rand`: the dataset generator, the random forest's bootstrap and its
//! feature order all come from numpy's legacy `RandomState` (MT19937) and from
//! scikit-learn's own `rand_r`. Reproducing those streams exactly makes our
//! default dataset equal to scikit-learn's `make_classification` output and our
//! forests equal to scikit-learn's, on every platform (the streams use only
//! integer arithmetic, and the one transcendental call goes through `libm`).

use rand_mt::Mt;

/// numpy's legacy `np.random.RandomState(seed)`.
pub struct NumpyRandomState {
    mt: Mt,
    cached_gauss: Option<f64>,
}

impl NumpyRandomState {
    /// `RandomState(seed)` for an integer seed (numpy's `init_genrand`).
    pub fn new(seed: u32) -> Self {
        Self {
            mt: Mt::new(seed),
            cached_gauss: None,
        }
    }

    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    /// `random_sample()`: 53-bit uniform double in [0, 1).
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `standard_normal()`: legacy polar Box-Muller, which caches its second
    /// value. One draw at a time: the reference the batched fill is tested
    /// against.
    #[cfg(test)]
    pub fn standard_normal(&mut self) -> f64 {
        if let Some(g) = self.cached_gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.uniform() - 1.0;
            let x2 = 2.0 * self.uniform() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 >= 1.0 || r2 == 0.0 {
                continue;
            }
            let f = polar_factor(r2);
            self.cached_gauss = Some(f * x1);
            return f * x2;
        }
    }

    /// `standard_normal(size=out.len())` in order: exactly the values of
    /// `out.len()` calls to `standard_normal`, leaving the same state.
    ///
    /// Why batched: the uniform draws must come one after another from the
    /// MT stream, but the polar transform of an accepted pair (a log, a
    /// division, a square root) is independent of the others, and it is most
    /// of the time spent generating a dataset, which the driver does before
    /// it reports SERVING. It runs on up to `threads`
    /// threads.
    pub fn fill_standard_normal(&mut self, out: &mut [f64], threads: usize) {
        let rest = match self.cached_gauss.take() {
            Some(g) if !out.is_empty() => {
                out[0] = g;
                &mut out[1..]
            }
            cached => {
                self.cached_gauss = cached;
                out
            }
        };
        // Accepted pairs go straight into `out` (x2 then x1, the order the
        // values are returned in), their squared radii beside them; the
        // transform then scales each pair in place.
        let mut radii: Vec<f64> = Vec::with_capacity(rest.len().div_ceil(2));
        let mut odd_x1 = None;
        for two in rest.chunks_mut(2) {
            let (x1, x2, r2) = loop {
                let x1 = 2.0 * self.uniform() - 1.0;
                let x2 = 2.0 * self.uniform() - 1.0;
                let r2 = x1 * x1 + x2 * x2;
                if r2 < 1.0 && r2 != 0.0 {
                    break (x1, x2, r2);
                }
            };
            two[0] = x2;
            match two.get_mut(1) {
                Some(second) => *second = x1,
                None => odd_x1 = Some(x1),
            }
            radii.push(r2);
        }
        if let (Some(x1), Some(r2)) = (odd_x1, radii.last()) {
            // The last pair's second value waits in the cache, as one call would leave it.
            self.cached_gauss = Some(polar_factor(*r2) * x1);
        }
        let per_thread = radii.len().div_ceil(threads.max(1)).max(4096);
        let scale = |out: &mut [f64], radii: &[f64]| {
            for (two, r2) in out.chunks_mut(2).zip(radii) {
                let f = polar_factor(*r2);
                for v in two {
                    *v *= f;
                }
            }
        };
        // The calling thread takes a part too: one thread fewer to start (none
        // for a small fill), which a driver's cold start waits on.
        crate::parallel::on_parts(
            rest.chunks_mut(2 * per_thread)
                .zip(radii.chunks(per_thread)),
            |(out, radii)| scale(out, radii),
        );
    }

    /// A value in `0..=max` by numpy's masked rejection sampling on 32-bit draws
    /// (`random_interval`, and `randint` for ranges below 2^32).
    pub fn bounded_u32(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        mask |= mask >> 1;
        mask |= mask >> 2;
        mask |= mask >> 4;
        mask |= mask >> 8;
        mask |= mask >> 16;
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `randint(low, high)` with `high - low <= 2^32`.
    pub fn randint(&mut self, low: i64, high: i64) -> i64 {
        debug_assert!(high > low && high - low <= 1 << 32);
        let range = (high - low - 1) as u32;
        low + i64::from(self.bounded_u32(range))
    }

    /// In-place `shuffle` of a 1-d sequence (legacy Fisher-Yates from the end).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.bounded_u32(i as u32) as usize;
            items.swap(i, j);
        }
    }
}

/// The polar method's scale for an accepted pair with squared radius `r2`.
fn polar_factor(r2: f64) -> f64 {
    (-2.0 * libm::log(r2) / r2).sqrt()
}

/// scikit-learn's tree-module generator (`our_rand_r`, an xorshift).
pub struct SklearnRandR {
    state: u32,
}

/// `RAND_R_MAX` in scikit-learn's `_utils.pxd`.
pub const RAND_R_MAX: u32 = 0x7FFF_FFFF;

impl SklearnRandR {
    pub fn new(seed: u32) -> Self {
        Self { state: seed }
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.state == 0 {
            self.state = 1;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        self.state % (RAND_R_MAX.wrapping_add(1))
    }

    /// `rand_int(low, high)`: a value in `low..high`.
    pub fn rand_int(&mut self, low: usize, high: usize) -> usize {
        low + (self.next_u32() as usize) % (high - low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_reference_first_outputs() {
        // Reference values of MT19937 init_genrand(5489), the canonical test vector.
        let mut rs = NumpyRandomState::new(5489);
        assert_eq!(rs.next_u32(), 3_499_211_612);
        assert_eq!(rs.next_u32(), 581_869_302);
    }

    #[test]
    fn numpy_random_sample_seed_42() {
        // np.random.RandomState(42).random_sample() == 0.3745401188473625
        let mut rs = NumpyRandomState::new(42);
        assert_eq!(rs.uniform(), 0.374_540_118_847_362_5);
    }

    #[test]
    fn batched_normals_equal_one_at_a_time_and_leave_the_same_state() {
        for (cached_first, len, threads) in [
            (false, 10_001, 2),
            (true, 9_000, 3),
            (true, 0, 2),
            (false, 1, 1),
            (true, 7, 4),
        ] {
            let mut one = NumpyRandomState::new(7);
            let mut batch = NumpyRandomState::new(7);
            if cached_first {
                one.standard_normal();
                batch.standard_normal();
            }
            let expected: Vec<f64> = (0..len).map(|_| one.standard_normal()).collect();
            let mut got = vec![0.0; len];
            batch.fill_standard_normal(&mut got, threads);
            assert_eq!(got, expected, "{cached_first} {len} {threads}");
            assert_eq!(batch.standard_normal(), one.standard_normal());
            assert_eq!(batch.uniform(), one.uniform());
        }
    }

    #[test]
    fn numpy_standard_normal_seed_42() {
        // np.random.RandomState(42).standard_normal(2) == [0.49671415, -0.1382643]
        let mut rs = NumpyRandomState::new(42);
        assert!((rs.standard_normal() - 0.496_714_153_011_233).abs() < 1e-15);
        assert!((rs.standard_normal() + 0.138_264_301_171_185).abs() < 1e-15);
    }
}
