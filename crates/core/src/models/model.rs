//! The one trait every model implements, [`Model`]: its scikit-learn name,
//! the parameters it knows and their checked values, its JSON form, how it
//! fits (and what it can share between folds), its convergence, and what
//! makes a decoded state of it consistent. The registry (in `models/mod.rs`)
//! lists the models; everything else (parsing a `{"model", "params"}`
//! object, dispatch, the stored format) works through this trait.

use ndarray::{Array1, ArrayView1, ArrayView2, Axis, CowArray, Ix1, Ix2};
use serde_json::{Map, Value};

use super::gram::RowGram;
use super::{FitError, FittedState, InvalidModel, LinearModel, Prepared};
use crate::cv::Fold;
use crate::params::{ConfigError, ParamReader};
use crate::stop::Stop;

/// Where a model may stand in the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A regressor: a level-0 model, fitted by the trainers.
    Regressor,
    /// A classifier: the level-1 (meta) model, predicting probabilities.
    Classifier,
}

/// The rows one fit is on: the rows `rows` of `x` and `y` (all of them for
/// a full fit), with what [`Model::prepare`] made once for every fold.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    /// Every row the folds were made from.
    pub x: ArrayView2<'a, f64>,
    /// Their targets.
    pub y: ArrayView1<'a, f64>,
    /// The rows of this fit, each below `x.nrows()`.
    pub rows: &'a [usize],
    /// What the model's `prepare` made (or [`Prepared::Nothing`]).
    pub prepared: &'a Prepared,
}

/// Every row of a cross-validation and its folds, for [`Model::prepare`].
#[derive(Clone, Copy)]
pub struct FoldsData<'a> {
    /// Every row the folds were made from.
    pub x: ArrayView2<'a, f64>,
    /// Their targets.
    pub y: ArrayView1<'a, f64>,
    /// The folds; every fold's train rows, then all rows, are fitted.
    pub folds: &'a [Fold],
    /// Threads the preparation may use.
    pub threads: usize,
}

impl<'a> Rows<'a> {
    /// `x` and `y` of these rows: views when they are all the rows in
    /// order (a full fit), else copies.
    pub fn selected(&self) -> (CowArray<'a, f64, Ix2>, CowArray<'a, f64, Ix1>) {
        let all =
            self.rows.len() == self.x.nrows() && self.rows.iter().enumerate().all(|(k, &i)| k == i);
        if all {
            (self.x.into(), self.y.into())
        } else {
            (
                self.x.select(Axis(0), self.rows).into(),
                self.y.select(Axis(0), self.rows).into(),
            )
        }
    }
}

impl Rows<'_> {
    /// A linear fit by `solver`: through the rows' Gram matrix when
    /// `prepare` made it (more features than rows), else on the rows
    /// themselves.
    pub fn fit_linear(&self, solver: &impl GramSolver, stop: &Stop) -> Fitted {
        let model = match self.prepared {
            Prepared::RowGram(gram) => {
                solver.fit_through_gram(gram, self.x, self.y, self.rows, stop)
            }
            _ => {
                let (x, y) = self.selected();
                solver.fit_on(x.view(), y.view(), stop)
            }
        };
        model.map(FittedState::Linear)
    }
}

/// A linear solver that can read the rows' Gram matrix instead of the rows
/// (LinearRegression, Ridge, LinearSVR).
pub trait GramSolver {
    /// The model fitted on `x` and `y`.
    fn fit_on(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        stop: &Stop,
    ) -> Result<LinearModel, FitError>;

    /// The model fitted on the rows `rows` of `x` and `y`, the rows' Gram
    /// matrix taken from `gram` (of all of `x`'s rows): the same model as
    /// [`GramSolver::fit_on`] on those rows, without a product per fold.
    fn fit_through_gram(
        &self,
        gram: &RowGram,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        rows: &[usize],
        stop: &Stop,
    ) -> Result<LinearModel, FitError>;
}

/// What a fit gives.
pub type Fitted = Result<FittedState, FitError>;

/// A model: checked hyper-parameters (the implementing type) and how they
/// fit. Parameters are built only by [`Model::parse`] (or
/// [`Model::DEFAULT`]), so every value is within its documented bound.
pub trait Model: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// The scikit-learn class name.
    const NAME: &'static str;
    /// Every parameter name accepted: scikit-learn's, including those
    /// [`Model::parse`] ignores or refuses with a reason.
    const KNOWN: &'static [&'static str];
    /// Level 0 or level 1.
    const ROLE: Role;
    /// scikit-learn's defaults.
    const DEFAULT: Self;

    /// Reads and checks the parameters; an absent one takes its default.
    fn parse(r: &ParamReader<'_>) -> Result<Self, ConfigError>;

    /// Every parameter, defaults filled in, in scikit-learn's names.
    fn to_json(&self) -> Value;

    /// Fits on `data` (checked: non-empty, `y` as long as `x`), the same
    /// model as on `data.selected()`, using `data.prepared` where it helps;
    /// ends early with [`FitError::Stopped`] once `stop` is set.
    fn fit(&self, data: &Rows<'_>, stop: &Stop) -> Fitted;

    /// What the folds' fits can share, computed once on all of `data` (on
    /// up to `data.threads` threads, the same result for any count); may
    /// stop short once `stop` is set, each fit then checking it.
    fn prepare(&self, _data: &FoldsData<'_>, _stop: &Stop) -> Prepared {
        Prepared::Nothing
    }

    /// The predictions for the fold's `test` rows of a model fitted on its
    /// train rows (`data.rows`), read off `data.prepared` without fitting;
    /// `None` where the model must be fitted first.
    fn predict_fold(&self, _data: &Rows<'_>, _test: &[usize], _stop: &Stop) -> Prediction {
        Ok(None)
    }

    /// The iteration cap of an iterative solver: a fit that used it all did
    /// not converge (scikit-learn's `ConvergenceWarning`).
    fn max_iter(&self) -> Option<usize> {
        None
    }

    /// Whether `state`, decoded from bytes, is one this model makes on
    /// `n_features` features: a crafted state must never index out of
    /// bounds or loop while predicting. By default, a linear model's.
    fn check_state(&self, state: &FittedState, n_features: usize) -> Result<(), InvalidModel> {
        state.linear(Self::NAME, n_features).map(drop)
    }

    /// Bytes a fit on `n` rows and `p` columns holds beyond its input.
    fn fit_memory_bytes(&self, n: usize, p: usize) -> u64 {
        (n as u64).saturating_mul(p as u64).saturating_mul(16)
    }

    /// Bytes of the fitted model on `n` rows and `p` columns, at least: what
    /// the driver counts before an inline run.
    fn fitted_bytes(&self, _n: usize, p: usize) -> u64 {
        8 * p as u64
    }
}

/// What [`Model::predict_fold`] gives.
pub type Prediction = Result<Option<Array1<f64>>, FitError>;

/// Reads `M`'s parameters from a JSON `params` object.
pub fn parse<M: Model>(params: &Map<String, Value>) -> Result<M, ConfigError> {
    M::parse(&ParamReader::new(M::NAME, params, M::KNOWN)?)
}

/// The object-safe face of [`Model`], through which the registry's
/// `ModelSpec` dispatches; every [`Model`] is one.
pub trait DynModel: Send + Sync + std::fmt::Debug {
    /// [`Model::NAME`].
    fn name(&self) -> &'static str;
    /// [`Model::ROLE`].
    fn role(&self) -> Role;
    /// [`Model::to_json`].
    fn params_json(&self) -> Value;
    /// [`Model::fit`].
    fn fit_state(&self, data: &Rows<'_>, stop: &Stop) -> Fitted;
    /// [`Model::prepare`].
    fn prepare_folds(&self, data: &FoldsData<'_>, stop: &Stop) -> Prepared;
    /// [`Model::predict_fold`].
    fn predict_prepared_fold(&self, data: &Rows<'_>, test: &[usize], stop: &Stop) -> Prediction;
    /// [`Model::max_iter`].
    fn iteration_cap(&self) -> Option<usize>;
    /// [`Model::check_state`].
    fn check_fitted(&self, state: &FittedState, n_features: usize) -> Result<(), InvalidModel>;
    /// [`Model::fit_memory_bytes`].
    fn memory_of_fit(&self, n: usize, p: usize) -> u64;
    /// [`Model::fitted_bytes`].
    fn size_of_fitted(&self, n: usize, p: usize) -> u64;
}

impl<M: Model> DynModel for M {
    fn name(&self) -> &'static str {
        M::NAME
    }

    fn role(&self) -> Role {
        M::ROLE
    }

    fn params_json(&self) -> Value {
        self.to_json()
    }

    fn fit_state(&self, data: &Rows<'_>, stop: &Stop) -> Fitted {
        self.fit(data, stop)
    }

    fn prepare_folds(&self, data: &FoldsData<'_>, stop: &Stop) -> Prepared {
        self.prepare(data, stop)
    }

    fn predict_prepared_fold(&self, data: &Rows<'_>, test: &[usize], stop: &Stop) -> Prediction {
        self.predict_fold(data, test, stop)
    }

    fn iteration_cap(&self) -> Option<usize> {
        self.max_iter()
    }

    fn check_fitted(&self, state: &FittedState, n_features: usize) -> Result<(), InvalidModel> {
        self.check_state(state, n_features)
    }

    fn memory_of_fit(&self, n: usize, p: usize) -> u64 {
        self.fit_memory_bytes(n, p)
    }

    fn size_of_fitted(&self, n: usize, p: usize) -> u64 {
        self.fitted_bytes(n, p)
    }
}
