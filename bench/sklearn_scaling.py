#!/usr/bin/env python3
"""scikit-learn's time for one point of the scaling curve (`cargo bench -p
stacking --bench scaling`): the benchmark's stack (cross_val_predict(cv=5)
plus a fit on all rows for each trainer's model, then the LogisticRegression
meta model) on make_classification data of the given shape, once, wall clock,
scikit-learn's default threading, as a Python user of the original would run it.
Prints one JSON object: {"versions": {...}, "wall_s": seconds}.
"""
import argparse
import json
import time
import warnings

import numpy as np
import sklearn
from sklearn.datasets import make_classification

from sklearn_reference import stack


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-samples", type=int, required=True)
    ap.add_argument("--n-features", type=int, default=1024)
    ap.add_argument("--trainers", type=int, default=4)
    a = ap.parse_args()
    X, y = make_classification(n_samples=a.n_samples, n_features=a.n_features, n_redundant=0,
                               n_clusters_per_class=2, weights=[0.9, 0.1], flip_y=0.1, random_state=42)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        stack(a.trainers, X, y)
        wall = time.perf_counter() - t0
    print(json.dumps({"versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
                      "wall_s": wall}))


if __name__ == "__main__":
    main()
