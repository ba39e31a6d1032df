"""Feature extraction at the demo width, before and after batch-norm folding, per batch size.

For each model at width 0.25 (the demo profile's) this times
:func:`bgrobust.features.extract` at the paper layer (max pooling, preprocessing and DeepLoc's
five crops included) on random uint16 crops, with batch-norm folding off (the code before
issue 17: channels-last copy only) and on (:func:`bgrobust.models.fold.fold_batchnorm`), at
batch sizes 32, 64 and 128, and records crops/s (best of several calls after a warm-up), the
largest absolute difference between the folded and unfolded features, and the load average
(numbers from a busy machine are not comparable).  Threads: ``torch.set_num_threads(2)``.

Run: ``OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_extract.py``; results go to
``benchmarks/results/extract.json`` with the machine they ran on.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402
from bench_models import _best_rate, _model  # noqa: E402

from bgrobust import features as FE  # noqa: E402
from bgrobust.models import MODEL_NAMES, get_spec  # noqa: E402

WIDTH = 0.25


def _unfolded(model, layers=(), fold_bn=True, _orig=FE._inference_copy):
    return _orig(model, layers, False)


def main(threads: int = 2, n: int = 256, batch_sizes=(32, 64, 128)) -> dict:
    torch.set_num_threads(threads)
    load_before = os.getloadavg()
    crops = np.random.default_rng(0).integers(0, 4000, (n, 3, 64, 64)).astype(np.uint16)
    rows = []
    original = FE._inference_copy
    for name in MODEL_NAMES:
        model = _model(name, WIDTH)
        layer = get_spec(name).paper_layer
        for fold in (False, True):
            FE._inference_copy = original if fold else _unfolded
            try:
                ref = FE.extract(model, crops[:32], progress=False)
                for bs in batch_sizes:
                    rate = _best_rate(lambda: FE.extract(model, crops, batch_size=bs, progress=False), n,
                                      budget=1.0, max_reps=5)
                    rows.append({"model": name, "width": WIDTH, "layer": layer, "fold_bn": fold,
                                 "batch_size": bs, "crops_per_s": rate, "load_average": list(os.getloadavg())})
                    print(rows[-1])
            finally:
                FE._inference_copy = original
            if fold:
                FE._inference_copy = _unfolded
                try:
                    unfolded = FE.extract(model, crops[:32], progress=False)
                finally:
                    FE._inference_copy = original
                diff = float(np.abs(ref - unfolded).max())
                for r in rows:
                    if r["model"] == name:
                        r["max_abs_diff_folded_vs_unfolded"] = diff
    best = {}
    for name in MODEL_NAMES:
        for fold in (False, True):
            r = max((r for r in rows if r["model"] == name and r["fold_bn"] == fold), key=lambda r: r["crops_per_s"])
            best[f"{name}_{'folded' if fold else 'unfolded'}"] = {"crops_per_s": r["crops_per_s"],
                                                                   "batch_size": r["batch_size"]}
    result = {"benchmark": f"features.extract at width {WIDTH}, paper layer, max pooling, CPU; batch-norm "
                           f"folding off (before) and on (after)",
              "threads": threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "n_crops": n,
              "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
              "machine": describe(), "rows": rows, "best": best}
    out = Path(__file__).parent / "results" / "extract.json"
    out.write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps(best, indent=1), f"-> {out}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    main(parser.parse_args().threads)
