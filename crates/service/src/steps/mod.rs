//! The three worker steps, shared by the gRPC services and therefore by the
//! embedded `stacking run`: fetch inputs (inline or from the store), compute
//! with the ML core on the blocking pool, hand results on.

mod metatrain;
mod reduce;
mod train;

use std::time::Instant;

use stacking_core::Dataset;

pub use self::metatrain::metatrain;
pub use self::reduce::reduce;
pub use self::train::train;
use crate::context::Moved;
use crate::error::StepError;
use crate::pb::stacking::StepStats;

fn stats(start: Instant, compute_us: u64, moved: Moved) -> Option<StepStats> {
    Some(StepStats {
        compute_us,
        storage_read_bytes: moved.read,
        storage_written_bytes: moved.written,
        total_us: start.elapsed().as_micros() as u64,
        queue_us: 0,
        warnings: Vec::new(),
    })
}

/// [`stats`] with the time spent waiting for a compute slot and the fits' warnings.
fn stats_with(
    start: Instant,
    compute_us: u64,
    moved: Moved,
    queue_us: u64,
    warnings: Vec<String>,
) -> Option<StepStats> {
    stats(start, compute_us, moved).map(|s| StepStats {
        queue_us,
        warnings,
        ..s
    })
}

fn parse_dataset(bytes: &[u8]) -> Result<Dataset, StepError> {
    Dataset::from_bytes(bytes).map_err(|source| StepError::Dataset {
        what: "dataset",
        source,
    })
}

fn micros_since(t: Instant) -> u64 {
    t.elapsed().as_micros() as u64
}
