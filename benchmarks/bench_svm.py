"""Speed of the SVM grid: one model's five settings, both backends, 30 and 100 cells per class.

The five settings of one model and layer are ``base``, ``mask`` and ``same`` (105 pairs each,
:func:`bgrobust.classify.evaluate_pairs`) and ``diff`` and ``batch`` (1,365 pair-background
triplets each, :func:`bgrobust.classify.evaluate_triplets`): 3,045 classifiers of 5 fits each
under the paper's protocol.  The features are synthetic but shaped like the demo's: 64
non-negative columns (the demo's PIFiA conv8 width), ``relu`` of a random linear map of a
Gaussian with a small shift per centre class and a smaller one per background class, so the
classes overlap and accuracies spread between chance and 1.

For each ``n`` (cells per class) and backend (``"sklearn"``: ``SVC.fit``/``predict`` as the
paper's code; ``"libsvm"``: libsvm called directly) the grid runs once with ``n_jobs=1`` and
once with ``n_jobs=2``, without a cache; the accuracies of the two backends are compared
(they must be equal) and the fits that stopped at ``max_iter`` counted.  The load average is
recorded: a busy machine gives slower, not comparable numbers.

Run: ``.venv/bin/python benchmarks/bench_svm.py [--n 30 100] [--jobs 1 2]``; results go to
``benchmarks/results/svm.json`` with the machine they ran on.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from bgrobust.classify import BACKENDS, SVMProtocol, evaluate_pairs, evaluate_triplets  # noqa: E402
from bgrobust.vocabulary import CLASSES  # noqa: E402

DIM = 64


def synthetic_features(n: int, seed: int = 0) -> tuple[dict, dict]:
    """Pair features (class -> rows) and triplet features ((centre, background) -> rows)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(0, 1 / np.sqrt(DIM), (DIM, DIM))
    centre = rng.normal(0, 0.35, (len(CLASSES), DIM))
    background = rng.normal(0, 0.15, (len(CLASSES), DIM))

    def rows(i, j):
        return np.maximum(0.0, (rng.normal(0, 1, (n, DIM)) + centre[i] + (0 if j is None else background[j])) @ W)

    pairs = {c: rows(i, None) for i, c in enumerate(CLASSES)}
    triplets = {(c, b): rows(i, j) for i, c in enumerate(CLASSES) for j, b in enumerate(CLASSES)}
    return pairs, triplets


def grid(pairs, triplets, protocol, n_jobs):
    """The five settings' accuracies (one array) and the seconds they took."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        acc = [evaluate_pairs(pairs, protocol, n_jobs=n_jobs, progress=False)["Accuracy"] for _ in range(3)]
        acc += [evaluate_triplets(triplets, protocol, n_jobs=n_jobs, progress=False)["Accuracy"] for _ in range(2)]
    seconds = time.perf_counter() - t0
    stopped = sum(int(str(w.message).split(" of ")[0]) for w in caught
                  if issubclass(w.category, ConvergenceWarning) and " of " in str(w.message))
    return np.concatenate([a.to_numpy() for a in acc]), seconds, stopped


def main(ns=(30, 100), jobs=(1, 2)) -> dict:
    load_before = os.getloadavg()
    rows = []
    for n in ns:
        pairs, triplets = synthetic_features(n)
        accs = {}
        for backend in BACKENDS:
            protocol = SVMProtocol(n_per_class=n, backend=backend)
            for n_jobs in jobs:
                acc, seconds, stopped = grid(pairs, triplets, protocol, n_jobs)
                accs[backend] = acc
                row = {"n_per_class": n, "backend": backend, "n_jobs": n_jobs, "classifiers": len(acc),
                       "fits": 5 * len(acc), "seconds": seconds, "ms_per_classifier": 1e3 * seconds / len(acc),
                       "fits_stopped_at_max_iter": stopped, "mean_accuracy": float(acc.mean()),
                       "load_average": list(os.getloadavg())}
                rows.append(row)
                print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items() if k != "load_average"})
        same = bool(np.array_equal(accs["libsvm"], accs["sklearn"]))
        for r in rows:
            if r["n_per_class"] == n:
                r["accuracies_identical_across_backends"] = same
        print(f"n={n}: accuracies identical across backends: {same}")
    speedup = {}
    for n in ns:
        for n_jobs in jobs:
            t = {r["backend"]: r["seconds"] for r in rows if r["n_per_class"] == n and r["n_jobs"] == n_jobs}
            speedup[f"n{n}_jobs{n_jobs}"] = t["sklearn"] / t["libsvm"]
    result = {
        "benchmark": "SVM grid of one model's five settings (base, mask, same: 105 pairs; diff, batch: "
                     "1365 triplets), paper protocol, synthetic 64-d features, no cache",
        "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
        "machine": describe(), "rows": rows, "speedup_libsvm_over_sklearn": speedup,
    }
    out = Path(__file__).parent / "results" / "svm.json"
    out.write_text(json.dumps(result, indent=2, default=float))
    print("speedup", {k: round(v, 2) for k, v in speedup.items()}, f"-> {out}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[30, 100])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    main(tuple(args.n), tuple(args.jobs))
