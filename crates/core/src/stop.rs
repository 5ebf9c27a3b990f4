//! Cooperative cancellation of a fit.
//!
//! The core has no clock and no I/O, so it cannot know that a caller went
//! away or that a budget ran out; whoever runs the fit can. It hands the fit
//! a [`Stop`] and sets it from outside. Every solver loop (an epoch, a tree,
//! a node, a block of neighbour queries, a fold) checks it, so a set flag
//! ends the work within one such step, and every parameter that scales a
//! step is bounded, so no step can run long.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use thiserror::Error;

/// Why work was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StopReason {
    /// Whoever waited for the work went away.
    #[error("the caller went away or its deadline passed")]
    Cancelled,
    /// The work ran past its compute budget.
    #[error("the compute budget for one request ran out")]
    BudgetExceeded,
    /// The process is shutting down.
    #[error("the function is shutting down")]
    ShuttingDown,
}

impl StopReason {
    fn code(self) -> u8 {
        match self {
            StopReason::Cancelled => 1,
            StopReason::BudgetExceeded => 2,
            StopReason::ShuttingDown => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(StopReason::Cancelled),
            2 => Some(StopReason::BudgetExceeded),
            3 => Some(StopReason::ShuttingDown),
            _ => None,
        }
    }
}

/// A shared flag a running fit polls. Clones share the flag. The first
/// reason set wins, so the error says what happened first.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicU8>);

impl Stop {
    /// A flag nobody sets: for callers that never cancel.
    pub fn never() -> Self {
        Self::default()
    }

    /// Asks the work to stop; a reason already set is kept.
    pub fn request(&self, reason: StopReason) {
        let _ = self
            .0
            .compare_exchange(0, reason.code(), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The reason, once stopping was requested.
    pub fn reason(&self) -> Option<StopReason> {
        StopReason::from_code(self.0.load(Ordering::Relaxed))
    }

    /// `Err(reason)` once stopping was requested: `?` it in a loop.
    pub fn check(&self) -> Result<(), StopReason> {
        match self.reason() {
            None => Ok(()),
            Some(reason) => Err(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins_and_clones_share_it() {
        let stop = Stop::never();
        let seen_by_worker = stop.clone();
        assert_eq!(seen_by_worker.check(), Ok(()));
        stop.request(StopReason::BudgetExceeded);
        stop.request(StopReason::Cancelled);
        assert_eq!(seen_by_worker.check(), Err(StopReason::BudgetExceeded));
    }
}
