//! Byte mutations for property tests of decoders: a valid input changed in
//! the ways that find decoder bugs, as a `proptest` strategy, so that a
//! failure shrinks to the smallest change of the smallest input and is kept
//! in the test's `proptest-regressions/` file.
//!
//! Every test that uses it runs a seeded, bounded sample by default
//! ([`config`]); `PROPTEST_CASES` and `PROPTEST_RNG_SEED` choose another
//! (proptest's own variables).

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// The seed of the default sample, so that a run reproduces.
pub const DEFAULT_SEED: u64 = 0x5EED;

/// One change to a valid input. Positions are taken modulo the input's
/// length (one past the end where that makes sense).
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Flip one bit at each position.
    FlipBits(Vec<(usize, u8)>),
    /// Cut the input short.
    Truncate(usize),
    /// Insert bytes at a position.
    Insert(usize, Vec<u8>),
    /// Repeat a run of the input right after itself.
    Duplicate(usize, usize),
    /// Write a boundary value over a 1-, 2-, 4- or 8-byte field.
    Overwrite(usize, usize, u64),
    /// Bytes that owe nothing to the input.
    Replace(Vec<u8>),
}

impl Mutation {
    /// The input with this change.
    pub fn apply(&self, valid: &[u8]) -> Vec<u8> {
        let mut out = valid.to_vec();
        // A position below `len` (positions are drawn from all of `usize`
        // and shrink towards the start), or 0 when there is none.
        let at = |p: &usize, len: usize| p.checked_rem(len).unwrap_or(0);
        match self {
            Self::FlipBits(flips) => {
                for (i, bit) in flips {
                    let pos = at(i, out.len());
                    if let Some(b) = out.get_mut(pos) {
                        *b ^= 1 << (bit % 8);
                    }
                }
            }
            Self::Truncate(i) => out.truncate(at(i, out.len() + 1)),
            Self::Insert(i, bytes) => {
                let pos = at(i, out.len() + 1);
                out.splice(pos..pos, bytes.iter().copied());
            }
            Self::Duplicate(i, len) => {
                let pos = at(i, out.len() + 1);
                let end = pos.saturating_add(*len).min(out.len());
                let run = out[pos..end].to_vec();
                out.splice(pos..pos, run);
            }
            Self::Overwrite(i, width, value) => {
                let pos = at(i, out.len());
                for (k, byte) in value.to_le_bytes().iter().take(*width).enumerate() {
                    if let Some(b) = out.get_mut(pos + k) {
                        *b = *byte;
                    }
                }
            }
            Self::Replace(bytes) => out.clone_from(bytes),
        }
        out
    }
}

/// Any one mutation.
pub fn mutation() -> impl Strategy<Value = Mutation> {
    let boundary = prop::sample::select(vec![
        0,
        1,
        0x7F,
        0x80,
        0xFF,
        0xFFFF,
        0xFFFF_FFFF,
        i64::MAX as u64,
        u64::MAX,
    ]);
    prop_oneof![
        prop::collection::vec((any::<usize>(), 0u8..8), 1..9).prop_map(Mutation::FlipBits),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..256).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (
            any::<usize>(),
            prop::sample::select(vec![1usize, 2, 4, 8]),
            boundary
        )
            .prop_map(|(i, w, v)| Mutation::Overwrite(i, w, v)),
        prop::collection::vec(any::<u8>(), 0..512).prop_map(Mutation::Replace),
    ]
}

/// `valid` after one to three mutations in turn.
pub fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(mutation(), 1..4).prop_map(move |changes| {
        changes
            .iter()
            .fold(valid.clone(), |bytes, change| change.apply(&bytes))
    })
}

/// proptest's configuration (its environment variables included) with a
/// fixed seed and `cases` cases unless `PROPTEST_RNG_SEED` or
/// `PROPTEST_CASES` say otherwise.
pub fn config(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(DEFAULT_SEED);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn mutations_change_inputs_and_never_panic_on_empty_ones() {
        let mut runner = TestRunner::new(config(1));
        let valid = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8'}".to_vec();
        let mut changed = 0;
        for _ in 0..500 {
            let m = mutation().new_tree(&mut runner).unwrap().current();
            changed += usize::from(m.apply(&valid) != valid);
            let _ = m.apply(&[]);
        }
        assert!(
            changed > 400,
            "only {changed} of 500 mutations changed the input"
        );
    }

    #[test]
    fn each_kind_does_what_it_says() {
        let first = 0;
        let v = b"abcdef";
        assert_eq!(Mutation::Truncate(first).apply(v), b"");
        assert_eq!(Mutation::FlipBits(vec![(first, 0)]).apply(v), b"`bcdef");
        assert_eq!(
            Mutation::Insert(first, b"xy".to_vec()).apply(v),
            b"xyabcdef"
        );
        assert_eq!(Mutation::Duplicate(first, 2).apply(v), b"ababcdef");
        assert_eq!(
            Mutation::Overwrite(first, 2, 0xFFFF).apply(v),
            b"\xff\xffcdef"
        );
        assert_eq!(Mutation::Replace(b"z".to_vec()).apply(v), b"z");
    }
}
