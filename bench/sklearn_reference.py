#!/usr/bin/env python3
"""scikit-learn reference timings for the stacking benchmark's ML core.

Times exactly what `cargo bench -p stacking-core` times, on the same data:
cross_val_predict(cv=5) plus a fit on all rows for each model, and the 4- and
16-trainer stacks with the LogisticRegression meta model. Single thread
(threadpoolctl), process CPU time, median of --repeats runs after a warm-up.
Prints one JSON object: {"versions": {...}, "cpu_median_s": {name: seconds}}.
"""
import argparse
import json
import pathlib
import statistics
import sys
import time
import warnings

import numpy as np
import sklearn
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from threadpoolctl import threadpool_limits

# The models and parameters of the parity fixtures, one list for both: a
# model added to the fixtures is timed here too.
FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "crates/core/tests/fixtures/sklearn-reference"
sys.path.insert(0, str(FIXTURES))
from gen_sklearn_reference import LEVEL0 as FIXTURE_MODELS  # noqa: E402

LEVEL0 = {name: (lambda cls=cls, params=params: cls(**params)) for name, cls, params in FIXTURE_MODELS}
STACK = ["LinearSVR", "Lasso", "RandomForestRegressor", "KNeighborsRegressor"]


def level0(name, X, y):
    oof = cross_val_predict(LEVEL0[name](), X, y, cv=5)
    LEVEL0[name]().fit(X, y)
    return oof


def stack(n_trainers, X, y):
    oofs = [level0(STACK[i % len(STACK)], X, y) for i in range(n_trainers)]
    meta = np.transpose(np.array(oofs))
    cross_val_predict(LogisticRegression(), meta, y, cv=5, method="predict_proba")
    LogisticRegression().fit(meta, y)


def cpu_median(fn, repeats):
    fn()
    runs = []
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        runs.append(time.process_time() - c0)
    return statistics.median(runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--n-samples", type=int, default=300)
    ap.add_argument("--n-features", type=int, default=1024)
    a = ap.parse_args()
    X, y = make_classification(n_samples=a.n_samples, n_features=a.n_features, n_redundant=0,
                               n_clusters_per_class=2, weights=[0.9, 0.1], flip_y=0.1, random_state=42)
    out = {}
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        for name in LEVEL0:
            out[name] = cpu_median(lambda: level0(name, X, y), a.repeats)
        out["stack_4"] = cpu_median(lambda: stack(4, X, y), a.repeats)
        out["stack_16"] = cpu_median(lambda: stack(16, X, y), max(3, a.repeats // 2))
    print(json.dumps({"versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
                      "cpu_median_s": out}))


if __name__ == "__main__":
    main()
