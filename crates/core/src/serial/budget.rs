//! A memory budget for decoding untrusted model bytes.
//!
//! MessagePack writes a small integer in one byte, and we hold it in eight;
//! an array of them decodes into up to 8x its input (and a list of shared
//! models into 16x: an index and a pointer). A crafted 80 MB `order` array
//! once decoded into a 1.32 GiB peak. Every sequence in the model format is
//! therefore read through [`vec()`], which charges each element's size against
//! a budget proportional to the input's size, set by [`with_budget`] around
//! one decode. Outside a decode (encoding, tests building models) nothing is
//! charged.

use std::cell::Cell;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

/// Decoded bytes allowed per input byte. Real models stay under 3x (a tree
/// node is about 24 bytes of MessagePack and 48 bytes in memory; float
/// arrays and `.npy` bytes shrink or stay the same).
pub const AMPLIFICATION: usize = 4;
/// Decoded bytes always allowed, whatever the input's size.
pub const SLACK: usize = 1 << 20;

thread_local! {
    static REMAINING: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Runs `decode` with a budget of `AMPLIFICATION x input_len + SLACK`
/// bytes for the sequences it decodes on this thread.
pub fn with_budget<T>(input_len: usize, decode: impl FnOnce() -> T) -> T {
    let budget = input_len
        .saturating_mul(AMPLIFICATION)
        .saturating_add(SLACK);
    let outer = REMAINING.with(|r| r.replace(Some(budget)));
    let out = decode();
    REMAINING.with(|r| r.set(outer));
    out
}

/// Takes `bytes` off the budget; false once it is spent.
fn charge(bytes: usize) -> bool {
    REMAINING.with(|r| match r.get() {
        None => true,
        Some(left) => match left.checked_sub(bytes) {
            Some(rest) => {
                r.set(Some(rest));
                true
            }
            None => false,
        },
    })
}

/// `deserialize_with` for a `Vec<T>` read under the budget.
pub fn vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Budgeted<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Budgeted<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            loop {
                if !charge(std::mem::size_of::<T>()) {
                    return Err(serde::de::Error::custom(format!(
                        "decoding would take more than {AMPLIFICATION}x the input's size in memory"
                    )));
                }
                match seq.next_element()? {
                    Some(item) => out.push(item),
                    None => return Ok(out),
                }
            }
        }
    }

    d.deserialize_seq(Budgeted(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Numbers {
        #[serde(deserialize_with = "vec")]
        n: Vec<u64>,
    }

    #[test]
    fn small_integers_are_refused_past_the_budget() {
        // 400k one-byte integers: 3.2 MB decoded from 0.4 MB, over 4x + 1 MiB.
        let bytes = rmp_serde::to_vec_named(&serde_json::json!({"n": vec![1u8; 400_000]}))
            .unwrap_or_default();
        let refused = with_budget(bytes.len(), || rmp_serde::from_slice::<Numbers>(&bytes));
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("4x the input"), "{message}");
        // The same bytes decode without a budget, and a smaller array within it.
        assert!(rmp_serde::from_slice::<Numbers>(&bytes).is_ok());
        let small =
            rmp_serde::to_vec_named(&serde_json::json!({"n": vec![1u8; 1000]})).unwrap_or_default();
        let decoded = with_budget(small.len(), || rmp_serde::from_slice::<Numbers>(&small));
        assert_eq!(decoded.map(|d| d.n.len()).ok(), Some(1000));
    }
}
