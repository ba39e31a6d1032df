"""bfloat16 against float32: speed of extraction and training, and how much the numbers move.

For each model this records, on this machine's CPU (``torch.set_num_threads(2)``):

* feature extraction (:func:`bgrobust.features.extract`, paper layer, max pooling) at widths
  0.25 and 1.0, crops/s in float32 and under ``precision="bfloat16"``, and the largest
  absolute feature difference as a share of the float32 features' range;
* a training step (:func:`bgrobust.train.train`, batch preparation included) at width 0.25,
  batch 64, crops/s in both precisions;
* the SVM: the paper's pairwise SVMs (:func:`bgrobust.classify.evaluate_pairs`, 30 crops per
  class) on the untrained model's features of a small synthetic screen, float32 against
  bfloat16: the largest and the mean absolute accuracy difference over the 105 pairs.

Whether bfloat16 is fast depends on the CPU: with AVX512-BF16 / AMX (recorded under
``cpu_flags``) oneDNN runs it natively; elsewhere it is emulated and slower than float32.

Run: ``OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_precision.py``; results go
to ``benchmarks/results/precision.json`` with the machine they ran on.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402
from bench_models import _best_rate, _model  # noqa: E402

from bgrobust import features as FE  # noqa: E402
from bgrobust import train as T  # noqa: E402
from bgrobust.classify import SVMProtocol, evaluate_pairs  # noqa: E402
from bgrobust.crops import CropSet  # noqa: E402
from bgrobust.dataset import open_dataset  # noqa: E402
from bgrobust.models import MODEL_NAMES  # noqa: E402

PRECISIONS = ("float32", "bfloat16")


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # pragma: no cover
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if "bf16" in f or f.startswith("amx"))


def extraction(name: str, width: float, n: int) -> dict:
    crops = np.random.default_rng(0).integers(100, 4000, (n, 3, 64, 64)).astype(np.uint16)
    model = _model(name, width)
    row = {"model": name, "width": width}
    ref = FE.extract(model, crops, progress=False)
    for precision in PRECISIONS:
        row[f"crops_per_s_{precision}"] = _best_rate(
            lambda: FE.extract(model, crops, progress=False, precision=precision), n, budget=2.0, max_reps=5)
    low = FE.extract(model, crops, progress=False, precision="bfloat16")
    row["max_abs_diff_over_range"] = float(np.abs(low - ref).max() / (ref.max() - ref.min()))
    row["speedup"] = row["crops_per_s_bfloat16"] / row["crops_per_s_float32"]
    return row


def training(name: str, steps: int = 8, batch: int = 64) -> dict:
    rng = np.random.default_rng(0)
    n = steps * batch
    strains = np.repeat([f"p{i}" for i in range(8)], n // 8)
    table = pd.DataFrame({"strain": strains, "field": np.arange(n) // 16, "valid": True, "kind": "single",
                          "localization": np.where(np.isin(strains, ["p0", "p1", "p2", "p3"]), "ER", "vacuole")})
    cs = CropSet(rng.integers(100, 4000, (n, 3, 64, 64)).astype(np.uint16), np.zeros((n, 64, 64), bool), table)
    row = {"model": name, "width": 0.25, "batch_size": batch, "steps": steps}
    for precision in PRECISIONS:
        params = T.TrainParams(epochs=1, batch_size=batch, width=0.25, max_steps=steps, precision=precision)
        T.train(name, cs, T.TrainParams(epochs=1, batch_size=batch, width=0.25, max_steps=2, precision=precision),
                progress=False)  # warm-up
        t0 = time.perf_counter()
        T.train(name, cs, params, progress=False)
        row[f"crops_per_s_{precision}"] = steps * batch / (time.perf_counter() - t0)
    row["speedup"] = row["crops_per_s_bfloat16"] / row["crops_per_s_float32"]
    return row


def svm_difference(ds, name: str) -> dict:
    crops = ds.valid_crops()
    loc = crops.table.localization.to_numpy()
    model = _model(name, 0.25)
    feats = {p: FE.extract(model, crops, progress=False, precision=p) for p in PRECISIONS}
    protocol = SVMProtocol(n_per_class=30)
    acc = {}
    for p, X in feats.items():
        names = sorted(pd.Series(loc).dropna().unique())  # multi-localized crops have none
        by_class = {c: X[loc == c] for c in names if (loc == c).sum() >= protocol.n_splits}
        acc[p] = evaluate_pairs(by_class, protocol, classes=list(by_class), n_jobs=2,
                                progress=False).set_index(["Location1", "Location2"])["Accuracy"]
    diff = (acc["bfloat16"] - acc["float32"]).abs()
    return {"model": name, "pairs": int(len(diff)), "max_abs_accuracy_diff": float(diff.max()),
            "mean_abs_accuracy_diff": float(diff.mean()), "mean_accuracy_float32": float(acc["float32"].mean())}


def main(threads: int = 2) -> dict:
    torch.set_num_threads(threads)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    rows = {"extraction": [], "training": [], "svm": []}
    for name in MODEL_NAMES:
        for width, n in ((0.25, 256), (1.0, 64)):
            rows["extraction"].append(extraction(name, width, n))
            print(rows["extraction"][-1], flush=True)
        rows["training"].append(training(name))
        print(rows["training"][-1], flush=True)
    _, ds = open_dataset("synthetic", {"fields_per_strain": 2}, {}, seed=0, n_jobs=threads, progress=False)
    for name in MODEL_NAMES:
        rows["svm"].append(svm_difference(ds, name))
        print(rows["svm"][-1], flush=True)
    return {"benchmark": "float32 vs bfloat16 autocast on the CPU: extraction and training crops/s, "
                         "feature and SVM-accuracy differences",
            "threads": threads, "cpu_flags": _cpu_flags(), "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()), "seconds": time.perf_counter() - t0,
            "machine": describe(), **rows}


if __name__ == "__main__":
    out = Path(__file__).parent / "results" / "precision.json"
    result = main()
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
