//! What the driver knows about a run before it starts: the dataset's shape
//! for the report, and whether an inline run fits the message limit.

use bytes::Bytes;
use stacking_core::WireLayout;

use super::Driver;
use crate::error::StepError;
use crate::report::DatasetReport;

/// The number of features in a dataset's wire form (0 if its header does
/// not parse; the trainer reports that properly).
pub(super) fn n_features(dataset: &Bytes) -> usize {
    let prefix = &dataset[..dataset.len().min(WireLayout::PROBE_LEN)];
    WireLayout::from_prefix(prefix).map_or(0, |l| l.n_features)
}

impl Driver {
    /// The dataset's shape, size and provenance, for the report.
    pub(super) fn dataset_report(
        &self,
        dataset: &Bytes,
        n_samples: usize,
        n_features: usize,
    ) -> DatasetReport {
        let opts = &self.cfg.report;
        DatasetReport {
            n_samples,
            n_features,
            bytes: dataset.len(),
            source: if opts.dataset_source.is_empty() {
                "make_classification".to_string()
            } else {
                opts.dataset_source.clone()
            },
            seed: opts.seed,
            notes: opts.dataset_notes.clone(),
        }
    }

    /// Refuses up front, with `OUT_OF_RANGE`, an inline message over the limit.
    pub(super) fn check_inline_size(&self, what: &str, bytes: usize) -> Result<(), StepError> {
        // Room for the message's other fields.
        let limit = self.cfg.plan.max_message_bytes.saturating_sub(64 << 10);
        if bytes > limit {
            return Err(StepError::TooLarge(format!(
                "{what} would carry {bytes} bytes inline, over the {} MiB message limit; raise GRPC_MAX_MESSAGE_MB on every function or use TRANSFER_TYPE=S3 or ELASTICACHE",
                self.cfg.plan.max_message_bytes >> 20
            )));
        }
        Ok(())
    }

    /// Before any work: the least the inline `Reduce` and `Metatrain`
    /// requests must carry (every trainer's predictions, each KNN model's
    /// training rows, each linear model's coefficients; `Metatrain` also the
    /// dataset) against the message limit. Without it, a run too large to
    /// send failed only after all its training, with an h2 protocol error.
    pub(super) fn check_inline_plan(
        &self,
        dataset: &Bytes,
        n_samples: usize,
        n_features: usize,
    ) -> Result<(), StepError> {
        let (reduce, metatrain) = self.inline_messages(dataset, n_samples, n_features);
        for (what, at_least) in [("Reduce", reduce), ("Metatrain", metatrain)] {
            self.check_inline_size(what, at_least).map_err(|_| {
                StepError::TooLarge(format!(
                    "{} trainers inline on a {n_samples} x {n_features} dataset would send {what} at least {at_least} bytes in one message, over the {} MiB limit; raise GRPC_MAX_MESSAGE_MB on every function, use fewer trainers, or use TRANSFER_TYPE=S3 or ELASTICACHE",
                    self.cfg.plan.trainers,
                    self.cfg.plan.max_message_bytes >> 20
                ))
            })?;
        }
        Ok(())
    }

    /// The least the inline `Reduce` and `Metatrain` requests carry: every
    /// trainer's predictions and model (a KNN model holds its training
    /// rows, a linear one its coefficients), and for `Metatrain` the dataset
    /// too.
    fn inline_messages(
        &self,
        dataset: &Bytes,
        n_samples: usize,
        n_features: usize,
    ) -> (usize, usize) {
        let models: usize = (0..self.cfg.plan.trainers)
            .map(|i| {
                let spec = self.cfg.stack.model_for_trainer(i);
                usize::try_from(spec.fitted_bytes(n_samples, n_features)).unwrap_or(usize::MAX)
            })
            .sum();
        let predictions = self.cfg.plan.trainers * n_samples * 8;
        (models + predictions, dataset.len() + models + predictions)
    }

    /// What one run holds beyond the dataset, at most, for the driver's
    /// admission by bytes: inline, the trainers' replies (the `Reduce`
    /// request's payload) and the `Metatrain` request; through a store, the
    /// dataset's copies in the store's client, and the full model read back
    /// and decoded.
    pub(super) fn run_memory(&self, dataset: &Bytes, n_samples: usize, n_features: usize) -> u64 {
        if self.ctx.transfer().uses_store() {
            return 4 * dataset.len() as u64;
        }
        let (reduce, metatrain) = self.inline_messages(dataset, n_samples, n_features);
        (reduce + metatrain) as u64
    }
}
