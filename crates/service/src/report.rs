//! What one invocation did: returned as JSON in `HelloReply.report_json`
//! and summarised in `HelloReply.message`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::pb::stacking::StepStats;

/// What one run did, returned as JSON in `HelloReply.report_json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The `stacking` version that ran it.
    pub version: String,
    /// When the run started, RFC 3339 in UTC.
    pub started_at: String,
    /// The run id scoping its keys.
    pub run_id: String,
    /// `INLINE`, `S3` or `ELASTICACHE`.
    pub transfer: String,
    /// Whether the trainers ran at once.
    pub concurrent: bool,
    /// The dataset's shape, size and provenance.
    pub dataset: DatasetReport,
    /// The level-1 model with its parameters (`{"model", "params"}`).
    pub meta_model: serde_json::Value,
    /// The trainers, in id order.
    pub trainers: Vec<TrainerReport>,
    /// Every fit whose solver stopped at `max_iter` (scikit-learn's
    /// ConvergenceWarning), level 0 then level 1.
    pub warnings: Vec<String>,
    /// The ensemble's out-of-fold ROC AUC.
    pub ensemble_auc: f64,
    /// `roc_auc(hard predictions, y)`: the original's swapped-argument value, for comparison only.
    pub auc_as_reported_by_original: Option<f64>,
    /// Time per stage, in milliseconds.
    pub stages_ms: Stages,
    /// Compute time reported by the functions (sum over the trainers when sequential).
    pub compute_ms: f64,
    /// Bytes moved inline and through the store.
    pub bytes: ByteCounts,
}

/// The dataset a run trained on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DatasetReport {
    /// Rows.
    pub n_samples: usize,
    /// Columns.
    pub n_features: usize,
    /// Its wire form (`X.npy` then `y.npy`), in bytes.
    pub bytes: usize,
    /// "make_classification" or the user's files.
    pub source: String,
    /// The generator's seed (scikit-learn's `random_state`), when generated.
    pub seed: Option<u32>,
    /// What loading changed: dtype conversions, label mapping.
    pub notes: Vec<String>,
}

/// One trainer's part of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerReport {
    /// The trainer's index.
    pub id: usize,
    /// The model it fitted.
    pub model: String,
    /// The model's parameters, as sent to the trainer.
    pub params: serde_json::Value,
    /// Its out-of-fold ROC AUC.
    pub oof_auc: f64,
    /// The `Train` call as the driver timed it, in milliseconds.
    pub rpc_ms: f64,
    /// The trainer's own time, in milliseconds.
    pub server_ms: f64,
    /// Waiting inside the trainer for a compute slot (`MAX_SERVER_THREADS`).
    pub queue_ms: f64,
    /// Fitting, in milliseconds.
    pub compute_ms: f64,
    /// The fits whose solver stopped at `max_iter`.
    pub warnings: Vec<String>,
    /// Start of the call, relative to the start of the run.
    pub start_ms: f64,
}

/// Time per stage of a run, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stages {
    /// Storing or attaching the dataset.
    pub upload: f64,
    /// All `Train` calls.
    pub train: f64,
    /// The `Reduce` call.
    pub reduce: f64,
    /// The `Metatrain` call.
    pub metatrain: f64,
    /// Reading the full model back.
    pub readback: f64,
    /// Always 0: the run's objects are deleted after the answer, off the
    /// caller's critical path (the field keeps reports in their shape).
    pub cleanup: f64,
    /// The whole run.
    pub total: f64,
    /// The reducer's own compute.
    pub reduce_compute: f64,
    /// The metatrainer's own compute.
    pub metatrain_compute: f64,
}

/// Bytes a run moved.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ByteCounts {
    /// Sent inside requests.
    pub inline_sent: u64,
    /// Received inside replies.
    pub inline_received: u64,
    /// Read from the store, by every function.
    pub storage_read: u64,
    /// Written to the store, by every function.
    pub storage_written: u64,
}

impl ByteCounts {
    pub(crate) fn add_stats(&mut self, s: &Option<StepStats>) {
        if let Some(s) = s {
            self.storage_read += s.storage_read_bytes;
            self.storage_written += s.storage_written_bytes;
        }
    }
}

/// Where a driver reports beyond its reply: how its dataset was made, progress
/// as trainers finish, and each run's results (for `stacking run`).
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// How the dataset was made: "make_classification" or the user's files.
    pub dataset_source: String,
    /// The generator's seed, when generated.
    pub seed: Option<u32>,
    /// What loading the user's data changed.
    pub dataset_notes: Vec<String>,
    /// Receives an event as each stage starts and each trainer finishes.
    pub progress: Option<tokio::sync::mpsc::UnboundedSender<Progress>>,
    /// Receives each successful run's full model and meta predictions.
    pub artifacts: Option<ArtifactSink>,
}

/// What a driver tells a watching terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Training starts: this many trainers.
    Training {
        /// Trainers to be called.
        trainers: usize,
    },
    /// Trainer `id` (fitting `model`) answered.
    TrainerDone {
        /// The trainer's index.
        id: usize,
        /// The model it fitted.
        model: String,
    },
    /// A later stage starts: "reduce", "metatrain", "read back".
    Stage(&'static str),
}

/// The results of one run, as stored: the full model (MessagePack) and the
/// meta model's out-of-fold probabilities (`.npy`).
#[derive(Debug, Clone)]
pub struct RunArtifacts {
    /// The run's id.
    pub run_id: String,
    /// The encoded two-layer model.
    pub model_full: Bytes,
    /// The meta predictions as `.npy`.
    pub meta_predictions: Bytes,
}

/// Collects [`RunArtifacts`], one per successful run.
pub type ArtifactSink = Arc<Mutex<Vec<RunArtifacts>>>;

impl RunReport {
    /// The documented one-line summary in `HelloReply.message`.
    pub fn summary(&self) -> String {
        format!(
            "run={} trainers={} auc={:.6} ms={:.1}",
            self.run_id,
            self.trainers.len(),
            self.ensemble_auc,
            self.stages_ms.total
        )
    }
}
