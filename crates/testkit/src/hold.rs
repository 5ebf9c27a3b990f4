//! Holding a request or a chunk for a set latency, to the tenth of a
//! millisecond.
//!
//! tokio's timer counts whole milliseconds, rounds a deadline up to the next
//! one and fires from the runtime's next wake-up: a request the testkit S3
//! server held for "20 ms" took 20 ms plus 1.5 ms or so. The services bench
//! divides the time a call gains by the latency to count round trips, so
//! every round trip it counted at 20 ms carried 7% too much (a fixed 50-60
//! ms over the 38 round trips of 16 sequential trainers, which showed as
//! three round trips that were not there). The timer now takes the wait to
//! two milliseconds before the deadline, and a blocking thread's sleep
//! (`nanosleep`) the rest.

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
