//! Holding a request or a chunk for a set latency, to well under a
//! millisecond.
//!
//! tokio's timer counts whole milliseconds, rounds a deadline up to the next
//! one and fires from the runtime's next wake-up, so a hold by the timer
//! alone lasts longer than asked. The services bench divides the time a call
//! gains by the latency to count round trips, and that excess, paid on every
//! request one after another, showed as round trips that were not there
//! (measured in docs/benchmarks.md, "Store round trips"). The timer takes the
//! wait to two milliseconds before the deadline, and a blocking thread's
//! sleep (`nanosleep`) the rest.

use std::time::Duration;

use tokio::time::Instant;

/// What the runtime's timer leaves to the blocking sleep: more than the
/// timer's rounding and lateness together.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// Returns at `deadline` (or at once if it has passed), to well under a
/// millisecond.
pub async fn until(deadline: Instant) {
    if let Some(coarse) = deadline.checked_sub(TIMER_SLACK) {
        tokio::time::sleep_until(coarse).await;
    }
    let rest = deadline.saturating_duration_since(Instant::now());
    if !rest.is_zero() {
        // A failed join (the runtime shutting down) only ends the hold early.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Never early, whatever is left for the blocking sleep.
    #[tokio::test]
    async fn a_hold_lasts_at_least_until_its_deadline() {
        for ms in [0, 1, 3, 20] {
            let start = Instant::now();
            let deadline = start + Duration::from_millis(ms);
            until(deadline).await;
            assert!(Instant::now() >= deadline, "{ms} ms");
        }
    }
}
