"""glibc's heap trimming against the kernels' allocation defaults of the runner.

By default glibc returns the free top of its heap to the operating system once more than
twice the last freed mmap size (at most 64 MiB) is free, and serves larger blocks with fresh
mmaps; a training step or an extraction batch then faults in the pages of its activations
again, every time.  The runner (:data:`bgrobust.runbook.KERNEL_ENV_DEFAULTS`) starts its
kernels with ``MALLOC_MMAP_THRESHOLD_`` (32 MiB, glibc's largest) and
``MALLOC_TRIM_THRESHOLD_`` (16 GiB: no trimming) instead.  This times, in fresh processes
with and without those two variables, the work that dominates the demo book:

* ``train_<model>``: bf16 (``precision="auto"``) training steps of each model at the demo
  width, batch 64, one torch thread (as a replicate seed's worker runs them);
* ``extract_<model>``: :func:`bgrobust.features.extract` of random crops at the paper layer
  with mean pooling (DeepLoc's five crops included), two threads;

and records the wall time, the system time, the minor page faults and the peak RSS of each
process, best of ``--repeats`` alternating runs.

Run: ``.venv/bin/python benchmarks/bench_malloc.py``; results go to
``benchmarks/results/malloc.json`` with the machine (and its load average).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

WIDTH = 0.25
ALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _train(name: str, steps: int) -> float:
    import torch

    torch.set_num_threads(1)
    from bgrobust.devices import autocast, check_precision
    from bgrobust.models import build

    kwargs = {"pci": {}, "pifia": {"n_classes": 90}, "deeploc": {"n_classes": 15}}[name]
    model = build(name, width=WIDTH, random_state=0, **kwargs).train().to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    shape = {"pci": (2, 64, 64), "pifia": (1, 64, 64), "deeploc": (2, 60, 60)}[name]
    x = torch.rand(64, *shape, generator=g).contiguous(memory_format=torch.channels_last)
    args = (x, torch.rand(64, 1, 64, 64, generator=g).contiguous(memory_format=torch.channels_last)) \
        if name == "pci" else (x,)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    precision = check_precision("auto", None)

    def step():
        with autocast(torch.device("cpu"), precision):
            out = model(*args)
        out = out[0] if isinstance(out, tuple) else out
        loss = (out.float() ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - t0


def _extract(name: str, n: int) -> float:
    import numpy as np
    import torch

    torch.set_num_threads(2)
    from bgrobust import features as FE
    from bgrobust.models import build

    crops = np.random.default_rng(0).integers(100, 3000, (n, 3, 64, 64)).astype(np.uint16)
    model = build(name, width=WIDTH, random_state=0).eval()
    FE.extract(model, crops[:64], None, "mean", precision="auto", progress=False)  # warm-up
    t0 = time.perf_counter()
    FE.extract(model, crops, None, "mean", precision="auto", progress=False)
    return time.perf_counter() - t0


def _child(task: str, name: str, size: int) -> None:
    seconds = (_train if task == "train" else _extract)(name, size)
    use = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "system_s": use.ru_stime, "minor_faults": use.ru_minflt,
                      "peak_rss_mb": use.ru_maxrss / 1024}))


def _run(task: str, name: str, size: int, defaults: bool) -> dict:
    env = dict(os.environ)
    for key in ALLOC_ENV:
        env.pop(key, None)
    if defaults:
        from bgrobust.runbook import KERNEL_ENV_DEFAULTS

        env.update({k: KERNEL_ENV_DEFAULTS[k] for k in ALLOC_ENV})
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    out = subprocess.run([sys.executable, __file__, "--child", task, name, str(size)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(repeats: int = 3, steps: int = 12, n_crops: int = 3000) -> dict:
    rows = []
    for task, size in (("train", steps), ("extract", n_crops)):
        for name in ("pifia", "pci", "deeploc"):
            runs = {False: [], True: []}
            for _ in range(repeats):
                for defaults in (False, True):
                    runs[defaults].append(_run(task, name, size, defaults))
            best = {d: min(r, key=lambda x: x["seconds"]) for d, r in runs.items()}
            row = {"work": f"{task}_{name}", "size": size, "unit": "steps" if task == "train" else "crops"}
            for d, label in ((False, "glibc_default"), (True, "runner_defaults")):
                row[label] = {k: round(v, 3) for k, v in best[d].items()}
            row["speedup"] = round(best[False]["seconds"] / best[True]["seconds"], 2)
            rows.append(row)
            print(row, flush=True)
    return {"benchmark": "glibc heap trimming (default) against the runner's MALLOC_MMAP_THRESHOLD_ / "
                         "MALLOC_TRIM_THRESHOLD_ defaults, fresh process per run, best of repeats",
            "env": {k: __import__("bgrobust.runbook", fromlist=["x"]).KERNEL_ENV_DEFAULTS[k] for k in ALLOC_ENV},
            "repeats": repeats, "load_average": os.getloadavg(), "machine": describe(), "rows": rows}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "malloc.json"))
    args = parser.parse_args()
    result = main(args.repeats)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("written", args.out)
