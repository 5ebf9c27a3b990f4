//! What one invocation did: returned as JSON in `HelloReply.report_json`
//! and summarised in `HelloReply.message`.

use serde::{Deserialize, Serialize};

use crate::pb::stacking::StepStats;

/// What one run did, returned as JSON in `HelloReply.report_json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub transfer: String,
    pub concurrent: bool,
    pub trainers: Vec<TrainerReport>,
    pub ensemble_auc: f64,
    /// `roc_auc(hard predictions, y)`: the original's swapped-argument value, for comparison only.
    pub auc_as_reported_by_original: Option<f64>,
    pub stages_ms: Stages,
    /// Compute time reported by the functions (sum over the trainers when sequential).
    pub compute_ms: f64,
    pub bytes: ByteCounts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerReport {
    pub id: String,
    pub model: String,
    pub oof_auc: f64,
    pub rpc_ms: f64,
    pub server_ms: f64,
    pub compute_ms: f64,
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
