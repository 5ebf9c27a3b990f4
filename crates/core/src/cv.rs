//! scikit-learn's fold assignments: `KFold(5)` for regressors and
//! `StratifiedKFold(5)` for the classifier, both without shuffling.

use thiserror::Error;

/// Why the rows could not be split into folds.
#[derive(Debug, Error, PartialEq)]
pub enum FoldError {
    /// Fewer rows than folds.
    #[error("cannot make {n_splits} folds from {n_samples} samples")]
    TooFewSamples {
        /// Folds asked for.
        n_splits: usize,
        /// Rows available.
        n_samples: usize,
    },
    /// Fewer than two folds asked for.
    #[error("n_splits must be at least 2, got {0}")]
    TooFewSplits(usize),
    /// A class has fewer members than there are folds (stratified folds only).
    #[error("the smallest class has {members} members; StratifiedKFold needs at least {n_splits}")]
    ClassTooSmall {
        /// Rows of the smallest class.
        members: usize,
        /// Folds asked for.
        n_splits: usize,
    },
}

/// One fold: the rows it trains on and the rows it predicts.
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    /// Rows the fold's model is fitted on.
    pub train: Vec<usize>,
    /// Rows the fold's model predicts.
    pub test: Vec<usize>,
}

fn complement(n: usize, test: &[usize]) -> Vec<usize> {
    let mut in_test = vec![false; n];
    for &i in test {
        in_test[i] = true;
    }
    (0..n).filter(|&i| !in_test[i]).collect()
}

/// `KFold(n_splits)`: contiguous test blocks, the first `n % k` one row longer.
pub fn kfold(n_samples: usize, n_splits: usize) -> Result<Vec<Fold>, FoldError> {
    if n_splits < 2 {
        return Err(FoldError::TooFewSplits(n_splits));
    }
    if n_samples < n_splits {
        return Err(FoldError::TooFewSamples {
            n_splits,
            n_samples,
        });
    }
    let mut start = 0;
    Ok((0..n_splits)
        .map(|k| {
            let size = n_samples / n_splits + usize::from(k < n_samples % n_splits);
            let test: Vec<usize> = (start..start + size).collect();
            start += size;
            Fold {
                train: complement(n_samples, &test),
                test,
            }
        })
        .collect())
}

/// `StratifiedKFold(n_splits, shuffle=False)` for 0/1 labels, as scikit-learn
/// allocates it: the sorted labels are dealt round-robin to folds, and each
/// class's members take their fold numbers in index order.
pub fn stratified_kfold(y: &[f64], n_splits: usize) -> Result<Vec<Fold>, FoldError> {
    if n_splits < 2 {
        return Err(FoldError::TooFewSplits(n_splits));
    }
    let n = y.len();
    if n < n_splits {
        return Err(FoldError::TooFewSamples {
            n_splits,
            n_samples: n,
        });
    }
    // Classes are numbered by order of first appearance (scikit-learn's y_encoded).
    let first = y.first().copied().unwrap_or(0.0);
    let encoded: Vec<usize> = y.iter().map(|&v| usize::from(v != first)).collect();
    let counts = [
        encoded.iter().filter(|&&c| c == 0).count(),
        encoded.iter().filter(|&&c| c == 1).count(),
    ];
    let n_classes = counts.iter().filter(|&&c| c > 0).count();
    let smallest = counts.iter().copied().filter(|&c| c > 0).min().unwrap_or(0);
    if n_classes > 1 && smallest < n_splits {
        // scikit-learn only warns here; we refuse, because a fold without the
        // minority class cannot be scored.
        return Err(FoldError::ClassTooSmall {
            members: smallest,
            n_splits,
        });
    }
    let mut sorted = encoded.clone();
    sorted.sort_unstable();
    // allocation[fold][class] = how many of class go to fold
    let mut allocation = vec![[0usize; 2]; n_splits];
    for (fold, alloc) in allocation.iter_mut().enumerate() {
        for &c in sorted.iter().skip(fold).step_by(n_splits) {
            alloc[c] += 1;
        }
    }
    let mut test_fold = vec![0usize; n];
    for class in 0..2 {
        let folds_for_class = allocation
            .iter()
            .enumerate()
            .flat_map(|(f, alloc)| std::iter::repeat_n(f, alloc[class]));
        let members = (0..n).filter(|&i| encoded[i] == class);
        for (i, f) in members.zip(folds_for_class) {
            test_fold[i] = f;
        }
    }
    Ok((0..n_splits)
        .map(|k| {
            let test: Vec<usize> = (0..n).filter(|&i| test_fold[i] == k).collect();
            Fold {
                train: complement(n, &test),
                test,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kfold_sizes_follow_sklearn() {
        let folds = kfold(11, 5).unwrap();
        let sizes: Vec<usize> = folds.iter().map(|f| f.test.len()).collect();
        assert_eq!(sizes, vec![3, 2, 2, 2, 2]);
        assert_eq!(folds[1].test, vec![3, 4]);
        assert_eq!(folds[1].train.len(), 9);
    }

    #[test]
    fn too_few_samples_is_an_error() {
        assert_eq!(
            kfold(3, 5),
            Err(FoldError::TooFewSamples {
                n_splits: 5,
                n_samples: 3
            })
        );
        let y = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0];
        assert!(matches!(
            stratified_kfold(&y, 5),
            Err(FoldError::ClassTooSmall { members: 2, .. })
        ));
    }
}
