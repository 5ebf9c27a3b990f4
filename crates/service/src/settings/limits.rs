//! What one request may use (`COMPUTE_BUDGET_S`, `MEMORY_BUDGET_MB`), how
//! long one invocation may take (`INVOCATION_TIMEOUT_S`, read by the driver
//! only), and how long a function drains on SIGTERM (`DRAIN_TIMEOUT_S`).

use std::time::Duration;

use super::{parse_positive, parse_seconds, SettingsError};
use crate::connections::ConnectionLimits;

/// What one request may use, and how long a function drains on SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// `COMPUTE_BUDGET_S`: CPU work one request may run before it is stopped
    /// with `DEADLINE_EXCEEDED`.
    pub compute_budget: Duration,
    /// `MEMORY_BUDGET_MB`: bytes of request messages a function holds at once.
    pub memory_budget_bytes: usize,
    /// `DRAIN_TIMEOUT_S`: after SIGTERM, how long in-flight requests may
    /// finish before their work is stopped and the process exits.
    pub drain_timeout: Duration,
    /// `INVOCATION_TIMEOUT_S`: the driver's budget for one SayHello when the
    /// caller sets no shorter deadline (read with the driver's settings,
    /// [`super::DriverSettings`]).
    pub invocation_timeout: Duration,
    /// Connections open at once, and how long one may wait for its first
    /// request or sit idle.
    pub connections: ConnectionLimits,
}

/// `COMPUTE_BUDGET_S` when unset.
pub const DEFAULT_COMPUTE_BUDGET: Duration = Duration::from_secs(120);
/// `MEMORY_BUDGET_MB` when unset.
pub const DEFAULT_MEMORY_BUDGET_MB: usize = 512;
/// `DRAIN_TIMEOUT_S` when unset.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// `INVOCATION_TIMEOUT_S` when unset.
pub const DEFAULT_INVOCATION_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for Limits {
    fn default() -> Self {
        Self {
            compute_budget: DEFAULT_COMPUTE_BUDGET,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_MB << 20,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            invocation_timeout: DEFAULT_INVOCATION_TIMEOUT,
            connections: ConnectionLimits::for_this_process(),
        }
    }
}

impl Limits {
    /// Reads the limits every function uses through `get`; unset ones take
    /// their defaults. The invocation budget is the driver's
    /// ([`super::DriverSettings`]).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let d = Self::default();
        let seconds = |var: &'static str, default: Duration| match get(var) {
            Some(v) => parse_seconds(var, &v),
            None => Ok(default),
        };
        Ok(Self {
            compute_budget: seconds("COMPUTE_BUDGET_S", d.compute_budget)?,
            memory_budget_bytes: match get("MEMORY_BUDGET_MB") {
                Some(v) => parse_positive("MEMORY_BUDGET_MB", &v)?.saturating_mul(1 << 20),
                None => d.memory_budget_bytes,
            },
            drain_timeout: seconds("DRAIN_TIMEOUT_S", d.drain_timeout)?,
            invocation_timeout: d.invocation_timeout,
            connections: d.connections,
        })
    }
}
