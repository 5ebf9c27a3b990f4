//! ROC AUC, with ties scored the way scikit-learn's trapezoidal ROC scores them.

use thiserror::Error;

/// Why a score could not be computed.
#[derive(Debug, Error, PartialEq)]
pub enum MetricError {
    /// Labels and scores differ in number.
    #[error("labels and scores differ in length ({labels} vs {scores})")]
    LengthMismatch {
        /// Labels given.
        labels: usize,
        /// Scores given.
        scores: usize,
    },
    /// The labels hold one class only, so ROC AUC is undefined.
    #[error("ROC AUC is undefined when only one class is present in the labels")]
    OneClass,
    /// A score is NaN or infinite.
    #[error("score {index} is {value}; scores must be finite")]
    NonFinite {
        /// Position of the score.
        index: usize,
        /// The score.
        value: f64,
    },
}

/// `roc_auc_score(y_true, y_score)` for 0/1 labels.
///
/// Computed as the Mann-Whitney statistic with mid-ranks for tied scores, which
/// equals the area under scikit-learn's trapezoidal ROC curve (a tie between a
/// positive and a negative counts one half).
pub fn roc_auc(y_true: &[f64], y_score: &[f64]) -> Result<f64, MetricError> {
    if y_true.len() != y_score.len() {
        return Err(MetricError::LengthMismatch {
            labels: y_true.len(),
            scores: y_score.len(),
        });
    }
    if let Some((index, &value)) = y_score.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(MetricError::NonFinite { index, value });
    }
    let n_pos = y_true.iter().filter(|&&v| v > 0.5).count();
    let n_neg = y_true.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(MetricError::OneClass);
    }
    let mut order: Vec<usize> = (0..y_score.len()).collect();
    order.sort_by(|&a, &b| y_score[a].total_cmp(&y_score[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && y_score[order[j + 1]] == y_score[order[i]] {
            j += 1;
        }
        // ranks are 1-based; the tied block i..=j shares the mean rank
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        let positives = order[i..=j].iter().filter(|&&k| y_true[k] > 0.5).count();
        rank_sum_pos += mid_rank * positives as f64;
        i = j + 1;
    }
    let (p, q) = (n_pos as f64, n_neg as f64);
    Ok((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sklearn_doc_example() {
        // sklearn: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        let auc = roc_auc(&[0.0, 0.0, 1.0, 1.0], &[0.1, 0.4, 0.35, 0.8]).unwrap();
        assert!((auc - 0.75).abs() < 1e-15);
    }

    #[test]
    fn ties_count_half() {
        // every score tied: AUC is exactly 0.5
        let auc = roc_auc(&[0.0, 1.0, 0.0, 1.0], &[1.0; 4]).unwrap();
        assert_eq!(auc, 0.5);
        // sklearn: roc_auc_score([0,1,1,0,1], [0.2,0.2,0.9,0.5,0.5]) == 2/3
        let auc = roc_auc(&[0.0, 1.0, 1.0, 0.0, 1.0], &[0.2, 0.2, 0.9, 0.5, 0.5]).unwrap();
        assert!((auc - 2.0 / 3.0).abs() < 1e-15, "{auc}");
    }

    #[test]
    fn errors() {
        assert_eq!(
            roc_auc(&[1.0, 1.0], &[0.1, 0.2]),
            Err(MetricError::OneClass)
        );
        assert!(matches!(
            roc_auc(&[0.0, 1.0], &[0.1]),
            Err(MetricError::LengthMismatch { .. })
        ));
        assert!(matches!(
            roc_auc(&[0.0, 1.0], &[0.1, f64::NAN]),
            Err(MetricError::NonFinite { index: 1, .. })
        ));
    }
}
