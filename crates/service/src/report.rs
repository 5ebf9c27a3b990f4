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
    pub run_id: String,
    pub transfer: String,
    pub concurrent: bool,
    pub dataset: DatasetReport,
    /// The level-1 model with its parameters (`{"model", "params"}`).
    pub meta_model: serde_json::Value,
    pub trainers: Vec<TrainerReport>,
    /// Every fit whose solver stopped at `max_iter` (scikit-learn's
    /// ConvergenceWarning), level 0 then level 1.
    pub warnings: Vec<String>,
    pub ensemble_auc: f64,
    /// `roc_auc(hard predictions, y)`: the original's swapped-argument value, for comparison only.
    pub auc_as_reported_by_original: Option<f64>,
    pub stages_ms: Stages,
    /// Compute time reported by the functions (sum over the trainers when sequential).
    pub compute_ms: f64,
    pub bytes: ByteCounts,
}

/// The dataset a run trained on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DatasetReport {
    pub n_samples: usize,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerReport {
    pub id: usize,
    pub model: String,
    /// The model's parameters, as sent to the trainer.
    pub params: serde_json::Value,
    pub oof_auc: f64,
    pub rpc_ms: f64,
    pub server_ms: f64,
    /// Waiting inside the trainer for a compute slot (`MAX_SERVER_THREADS`).
    pub queue_ms: f64,
    pub compute_ms: f64,
    /// The fits whose solver stopped at `max_iter`.
    pub warnings: Vec<String>,
    /// Start of the call, relative to the start of the run.
    pub start_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stages {
    pub upload: f64,
    pub train: f64,
    pub reduce: f64,
    pub metatrain: f64,
    pub readback: f64,
    pub cleanup: f64,
    pub total: f64,
    pub reduce_compute: f64,
    pub metatrain_compute: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ByteCounts {
    pub inline_sent: u64,
    pub inline_received: u64,
    pub storage_read: u64,
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
    Training { trainers: usize },
    /// Trainer `id` (fitting `model`) answered.
    TrainerDone { id: usize, model: String },
    /// A later stage starts: "reduce", "metatrain", "read back".
    Stage(&'static str),
}

/// The results of one run, as stored: the full model (MessagePack) and the
/// meta model's out-of-fold probabilities (`.npy`).
#[derive(Debug, Clone)]
pub struct RunArtifacts {
    pub run_id: String,
    pub model_full: Bytes,
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
