"""Peak memory of building the dataset and one model's features, at two screen sizes.

Issue 16 asks that the peak resident memory grow by at most 20% while the work grows 4x. This
benchmark measures where the code stands: for ``fields_per_strain`` 1 and 4 (4x the fields,
crops and features of the same 90 + 15 strains), a fresh child process with an empty run folder
builds the synthetic screen and its dataset (:func:`bgrobust.dataset.open_dataset`: rendering,
segmentation, cropping, the GFP filter) and extracts PIFiA's features of every valid crop at
width 0.25 (:func:`bgrobust.features.extract`), the valid crops read from the dataset's files a
batch at a time (``ds.valid_crops(lazy=True)``). Each size runs under its own wrapper process,
whose ``resource.getrusage(RUSAGE_CHILDREN)`` gives the peak RSS of that process tree (the child
and the joblib workers it waited for); the wall time comes from the parent; the crops' array
size is recorded beside it; ``history`` in the result keeps the earlier measurements.

Run: ``.venv/bin/python benchmarks/bench_memory.py``; results go to
``benchmarks/results/memory.json`` with the machine they ran on.
"""
from __future__ import annotations

import json
import os
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
valid = ds.valid_crops(lazy=True)   # read from the dataset's files a batch at a time
feats = extract(models.build("pifia", width=0.25, random_state=0), valid, progress=False)
print(json.dumps({"crops": int(len(ds.crops.images)), "valid_crops": int(len(valid.images)),
                  "crops_mb": ds.crops.images.nbytes / 2**20, "features_shape": list(feats.shape)}))
"""


#: Runs CHILD in its own process and reports the peak RSS of that process tree (the largest of
#: the child and the joblib workers it waited for), so each screen size is measured on its own.
WRAP = r"""
import json, resource, subprocess, sys
out = subprocess.run([sys.executable, "-c", sys.argv[1], sys.argv[2]], capture_output=True, text=True, check=True)
print(json.dumps({"peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  **json.loads(out.stdout.strip().splitlines()[-1])}))
"""


def run(fields: int) -> dict:
    with tempfile.TemporaryDirectory() as runs:
        env = {**os.environ, "BGROBUST_RUNS": runs}
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", WRAP, CHILD, str(fields)], env=env, capture_output=True,
                             text=True, check=True)
        seconds = time.perf_counter() - t0
    result = json.loads(out.stdout.strip().splitlines()[-1])
    row = {"fields_per_strain": fields, "seconds": seconds, "peak_rss_mb": result.pop("peak_kb") / 1024, **result}
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
            "note": "screen and dataset written into their cache entries field by field; the valid crops read "
                    "from the dataset's .npy files a batch at a time (Dataset.valid_crops(lazy=True), "
                    "bgrobust._npy.Rows: os.preadv, never mapped) and streamed through the network",
            "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
            "machine": describe()}


if __name__ == "__main__":
    result = main()
    out = Path(__file__).parent / "results" / "memory.json"
    if out.exists():   # keep the earlier measurements
        old = json.loads(out.read_text())
        history = old.pop("history", [])
        result["history"] = [{k: v for k, v in old.items() if k not in ("benchmark",)}, *history]
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}: work x{result['work_ratio']:.2f}, peak RSS x{result['peak_rss_ratio']:.2f}")
