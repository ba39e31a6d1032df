"""Peak memory of building the dataset and one model's features, at two screen sizes.

Issue 16 asks that the peak resident memory grow by at most 20% while the work grows 4x. This
benchmark measures where the code stands: for ``fields_per_strain`` 1 and 4 (4x the fields,
crops and features of the same 90 + 15 strains), a fresh child process with an empty run folder
builds the synthetic screen and its dataset (:func:`bgrobust.dataset.open_dataset`: rendering,
segmentation, cropping, the GFP filter) and extracts PIFiA's features of every valid crop at
width 0.25 (:func:`bgrobust.features.extract`). Each child's peak RSS comes from
``resource.getrusage(RUSAGE_CHILDREN)``, its wall time from the parent; the crops' array size is
recorded beside it; ``history`` in the result keeps the earlier measurements (before the screen
and the dataset were streamed into their cache entries).

Run: ``.venv/bin/python benchmarks/bench_memory.py``; results go to
``benchmarks/results/memory.json`` with the machine they ran on.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

CHILD = r"""
import json, sys, numpy as np, torch
torch.set_num_threads(2)
from bgrobust.dataset import open_dataset
from bgrobust.features import extract
from bgrobust import models
_, ds = open_dataset("synthetic", {"fields_per_strain": int(sys.argv[1])}, {}, seed=0, n_jobs=2, progress=False)
valid = ds.valid_crops()
feats = extract(models.build("pifia", width=0.25, random_state=0), valid, progress=False)
print(json.dumps({"crops": int(len(ds.crops.images)), "valid_crops": int(len(valid.images)),
                  "crops_mb": ds.crops.images.nbytes / 2**20, "features_shape": list(feats.shape)}))
"""


def run(fields: int) -> dict:
    with tempfile.TemporaryDirectory() as runs:
        env = {**os.environ, "BGROBUST_RUNS": runs}
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, str(fields)], env=env, capture_output=True,
                             text=True, check=True)
        seconds = time.perf_counter() - t0
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kb <= before:  # ru_maxrss is the largest child so far; run the sizes smallest first
        raise RuntimeError("peak RSS did not exceed the previous child's; run the screen sizes in increasing order")
    row = {"fields_per_strain": fields, "seconds": seconds, "peak_rss_mb": peak_kb / 1024,
           **json.loads(out.stdout.strip().splitlines()[-1])}
    print(row, flush=True)
    return row


def main(sizes=(1, 4)) -> dict:
    load_before = os.getloadavg()
    rows = [run(f) for f in sorted(sizes)]
    small, large = rows[0], rows[-1]
    return {"benchmark": "peak RSS of open_dataset + PIFiA features of every valid crop (width 0.25), "
                         "fresh process and run folder per screen size",
            "rows": rows, "work_ratio": large["crops"] / small["crops"],
            "peak_rss_ratio": large["peak_rss_mb"] / small["peak_rss_mb"],
            "issue_16_target": "peak_rss_ratio <= 1.2 at work_ratio ~4",
            "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
            "machine": describe()}


if __name__ == "__main__":
    result = main()
    out = Path(__file__).parent / "results" / "memory.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}: work x{result['work_ratio']:.2f}, peak RSS x{result['peak_rss_ratio']:.2f}")
