"""Two single-threaded processes against one two-threaded one: is running seeds side by side worth it?

Chapter 4's replicate seeds (:func:`bgrobust.replicates.run_replicates`) run in worker
processes with ``cores // parallel`` torch threads each. That pays only if one thread per
process does more than half of what two threads do in one process. For each model at the
demo width this times :func:`bgrobust.features.extract` (paper layer, mean pooling, DeepLoc's
five crops) on random crops three ways, and a short training of each model:

* ``one_process_2_threads``: one process, ``torch.set_num_threads(2)``;
* ``one_process_1_thread``: one process, one thread;
* ``two_processes_1_thread``: two processes at once, one thread each (the summed rate).

Run: ``.venv/bin/python benchmarks/bench_threads.py``; results go to
``benchmarks/results/threads.json`` with the machine (and its load average: numbers from a
busy machine are not comparable).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

WIDTH = 0.25
N_CROPS = 768


def _rate(name: str, threads: int, barrier=None) -> float:
    import torch

    torch.set_num_threads(threads)
    from bgrobust import features as FE
    from bgrobust.models import build

    crops = np.random.default_rng(0).integers(0, 4000, size=(N_CROPS, 3, 64, 64)).astype(np.uint16)
    model = build(name, width=WIDTH, random_state=0).eval()
    FE.extract(model, crops[:64], None, "mean", progress=False)  # warm-up
    if barrier is not None:
        barrier.wait()
    t0 = time.perf_counter()
    FE.extract(model, crops, None, "mean", progress=False)
    return N_CROPS / (time.perf_counter() - t0)


def _child(name, barrier, queue):
    queue.put(_rate(name, 1, barrier))


def _two_processes(name: str) -> float:
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(name, barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    rates = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return float(sum(rates))


def main() -> dict:
    from bgrobust.models import MODEL_NAMES

    rows, load_before = [], os.getloadavg()
    for name in MODEL_NAMES:
        two = _rate(name, 2)
        one = _rate(name, 1)
        both = _two_processes(name)
        rows.append({"model": name, "width": WIDTH, "n_crops": N_CROPS,
                     "one_process_2_threads_crops_per_s": round(two, 1),
                     "one_process_1_thread_crops_per_s": round(one, 1),
                     "two_processes_1_thread_crops_per_s": round(both, 1),
                     "gain_of_two_processes": round(both / two, 2), "load_average": os.getloadavg()})
        print(rows[-1], flush=True)
    out = {"benchmark": "feature extraction: two single-threaded processes vs one two-threaded process",
           "load_average_before": load_before, "load_average_after": os.getloadavg(),
           "machine": describe(), "rows": rows}
    path = Path(__file__).parent / "results" / "threads.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
