//! The one retry policy of every request this workspace retries: the
//! driver's calls to the other functions, Redis commands, and a run's
//! cleanup. Exponential backoff with jitter (`backon`): every delay is drawn
//! between the step's base and twice it, so that calls which fail together
//! (1,024 concurrent trainers losing one connection) do not retry together.
//! Only idempotent requests are retried, and each policy bounds both the
//! attempts and the time.
//!
//! The S3 client keeps object_store's own policy (also jittered), set in
//! [`crate::s3`].

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// How one kind of request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The first delay's base; each next base doubles, up to `max_delay`.
    pub first_delay: Duration,
    /// The largest base delay.
    pub max_delay: Duration,
    /// Retries at most (attempts are one more).
    pub max_retries: usize,
    /// No retry starts later than this after the first attempt.
    pub window: Duration,
}

/// The driver's `Train`, `Reduce` and `Metatrain` calls after a transport
/// failure (they write only under their run's keys, so a repeat is
/// harmless): 0.1 s doubling to 2 s, 7 retries within 10 s.
pub const STAGE_CALL: Policy = Policy {
    first_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(2),
    max_retries: 7,
    window: Duration::from_secs(10),
};

/// A Redis command that failed on the connection (every command here is
/// idempotent: `SET` of the same bytes, `GET`, `DEL`, `SCAN`): 50 ms, then
/// 100 ms, within 2 s.
pub const REDIS_COMMAND: Policy = Policy {
    first_delay: Duration::from_millis(50),
    max_delay: Duration::from_millis(500),
    max_retries: 2,
    window: Duration::from_secs(2),
};

/// A run's cleanup the store refused (a storage outage at the end of a
/// run): 1 s doubling to 60 s, until the store answers, for at most 15
/// minutes. Deletes are idempotent. After that, `stacking gc` (and Redis's
/// expiry) remain.
pub const CLEANUP: Policy = Policy {
    first_delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(60),
    max_retries: 40,
    window: Duration::from_secs(15 * 60),
};

impl Policy {
    /// The delays before each retry, jittered; it ends when the retries or
    /// the window are spent.
    pub fn delays(&self) -> Delays {
        Delays {
            inner: ExponentialBuilder::new()
                .with_min_delay(self.first_delay)
                .with_max_delay(self.max_delay)
                .with_max_times(self.max_retries)
                .with_total_delay(Some(self.window))
                .with_jitter()
                .build(),
        }
    }
}

/// The delays of one retried request ([`Policy::delays`]).
#[derive(Debug)]
pub struct Delays {
    inner: backon::ExponentialBackoff,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.inner.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests that fail at the same instant draw different delays: the
    /// retries of 1,000 callers of one failed connection are spread over
    /// the whole jitter range instead of arriving together.
    #[test]
    fn retries_of_a_shared_failure_are_spread_out() {
        for policy in [STAGE_CALL, REDIS_COMMAND, CLEANUP] {
            let first: Vec<Duration> = (0..1000).map(|_| policy.delays().next().unwrap()).collect();
            let base = policy.first_delay;
            assert!(
                first.iter().all(|d| *d >= base && *d < base * 2),
                "{first:?}"
            );
            // Ten equal slices of [base, 2 base): every slice gets callers.
            let mut slices = [0usize; 10];
            for d in &first {
                let at = (d.as_secs_f64() - base.as_secs_f64()) / base.as_secs_f64();
                slices[((at * 10.0) as usize).min(9)] += 1;
            }
            assert!(slices.iter().all(|&n| n >= 50), "{policy:?}: {slices:?}");
        }
    }

    #[test]
    fn delays_double_to_their_cap_and_stop_within_the_window() {
        let delays: Vec<Duration> = STAGE_CALL.delays().collect();
        assert!(delays.len() <= STAGE_CALL.max_retries);
        assert!(delays.iter().sum::<Duration>() <= STAGE_CALL.window);
        for pair in delays.windows(2) {
            // Bases double: each delay is below twice the next one's cap.
            assert!(pair[1] < STAGE_CALL.max_delay * 2, "{delays:?}");
        }
        let cleanup: Vec<Duration> = CLEANUP.delays().collect();
        assert!(cleanup.iter().sum::<Duration>() <= CLEANUP.window);
        assert!(
            cleanup.iter().sum::<Duration>() >= CLEANUP.window / 2,
            "{cleanup:?}"
        );
    }
}
