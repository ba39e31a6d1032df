"""Speed of the three models on the CPU: feature extraction and training, crops per second.

Measures, with ``torch.set_num_threads(2)`` (the demo profile's setting; ``--threads`` to change):

* the machine's convolution peak: one large 3x3 ``conv2d`` (256 -> 256 channels, 32x32 maps),
  GFLOP/s, in the default and the channels-last memory layout;
* inference: :func:`bgrobust.features.extract` at the paper's layer (max pooling) on random
  uint16 crops, preprocessing and DeepLoc's five crops included, widths 1.0 (batch 32) and 0.25
  (batches 64 and 256), with the
  forward GFLOP per crop and the GFLOP/s this achieves;
* training: one optimizer step of :mod:`bgrobust.train` (batch preparation, augmentation,
  forward, backward, Adam) at width 0.25 (batch 64) and 1.0 (batch 16), crops per second.

Each number is the best of several timed repetitions after a warm-up. The load average before
and after is recorded: numbers from a busy machine are not comparable. On a shared machine run
it with ``OMP_WAIT_POLICY=PASSIVE`` (recorded in the results): with the default (spinning)
OpenMP wait policy, two threads competing with other processes for two cores ran 5-8x slower
than one thread in our measurements.

Run: ``.venv/bin/python benchmarks/bench_models.py``; results go to
``benchmarks/results/models.json`` with the machine they ran on. Takes about 1-2 minutes on an
idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from bgrobust import features as FE  # noqa: E402
from bgrobust import train as T  # noqa: E402
from bgrobust.crops import CropSet  # noqa: E402
from bgrobust.models import MODEL_NAMES, build, get_spec  # noqa: E402

BUDGET_S = 1.5  # timed seconds per measurement (after the warm-up)


def _best_rate(fn, items: int, budget: float = BUDGET_S, min_reps: int = 2, max_reps: int = 20) -> float:
    """Items per second of the fastest of several calls of ``fn`` (after one warm-up call)."""
    fn()
    times, spent = [], 0.0
    while len(times) < min_reps or (spent < budget and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return items / min(times)


def conv_peak() -> dict:
    """GFLOP/s of one big 3x3 convolution (forward), default and channels-last layout."""
    x = torch.randn(16, 256, 32, 32)
    w = torch.randn(256, 256, 3, 3)
    flop = 2 * 16 * 256 * 32 * 32 * 256 * 9
    out = {"shape": "N16 C256->256 32x32 k3", "gflop_per_call": flop / 1e9}
    with torch.inference_mode():
        out["gflops"] = _best_rate(lambda: F.conv2d(x, w, padding=1), flop) / 1e9
        xc, wc = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
        out["gflops_channels_last"] = _best_rate(lambda: F.conv2d(xc, wc, padding=1), flop) / 1e9
    return out


def forward_gflop(model: nn.Module, x: torch.Tensor, fn) -> float:
    """GFLOP (2 x multiply-adds of the Conv2d / Linear layers) per input of ``fn(model, x)``."""
    total = [0]

    def hook(module, args, output):
        if isinstance(module, nn.Conv2d):
            k = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total[0] += 2 * output.numel() * k
        elif isinstance(module, nn.Linear):
            total[0] += 2 * output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.inference_mode():
            fn(model, x)
    finally:
        for h in handles:
            h.remove()
    return total[0] / x.shape[0] / 1e9


def _model(name: str, width: float) -> nn.Module:
    kwargs = {} if name == "pci" else {"n_classes": 75}
    return build(name, width=width, random_state=0, **kwargs)


def inference(name: str, width: float, batch_size: int, crops: np.ndarray) -> dict:
    model = _model(name, width)
    spec = get_spec(name)
    rate = _best_rate(lambda: FE.extract(model, crops, batch_size=batch_size, progress=False), len(crops))
    x = torch.zeros(2, len(spec.input_channels), spec.input_size, spec.input_size)
    per_input = forward_gflop(model.eval(), x, lambda m, z: m.features(z, spec.paper_layer))
    gflop = per_input * (5 if spec.five_crop_test else 1)
    return {"model": name, "width": width, "batch_size": batch_size, "layer": spec.paper_layer,
            "crops_per_s": rate, "gflop_per_crop": gflop, "gflops": rate * gflop}


def training(name: str, width: float, batch_size: int, crops: CropSet) -> dict:
    params = T.TrainParams.for_model(name, width=width, batch_size=batch_size)
    data = T.training_data(name, crops)
    model = T._build(name, params, len(data.classes) or None, torch.Generator().manual_seed(0))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=params.lr, betas=params.betas, eps=params.adam_eps)
    g = torch.Generator().manual_seed(0)
    idx = np.arange(batch_size)
    partners = T._partners(data, idx, params.pair_scope, g) if name == "pci" else None

    def step():
        loss, _ = T._batch_loss(name, model, params, crops.images, data, idx, partners, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rate = _best_rate(step, batch_size, min_reps=2, max_reps=4)
    spec = get_spec(name)
    size = spec.input_size
    x = torch.zeros(2, len(spec.input_channels), size, size)
    if name == "pci":
        fwd = forward_gflop(model.eval(), x, lambda m, z: m(z, z[:, 1:]))
    else:
        fwd = forward_gflop(model.eval(), x, lambda m, z: m(z))
    return {"model": name, "width": width, "batch_size": batch_size, "crops_per_s": rate,
            "gflop_per_crop_fwd": fwd, "gflops_approx": rate * 3 * fwd}


def _synthetic_cropset(n: int = 256, seed: int = 0) -> CropSet:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 4000, size=(n, 3, 64, 64)).astype(np.uint16)
    strains = np.repeat([f"S{i:02d}" for i in range(n // 8)], 8)
    table = pd.DataFrame({"strain": strains, "field": np.arange(n) // 4, "valid": True, "kind": "single",
                          "localization": np.resize(["ER", "vacuole", "nucleus", "actin"], n)})
    return CropSet(images, np.zeros((n, 64, 64), bool), table)


def main(threads: int = 2) -> dict:
    torch.set_num_threads(threads)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    peak = conv_peak()
    print("conv peak", {k: round(v, 1) if isinstance(v, float) else v for k, v in peak.items()})
    cs = _synthetic_cropset()
    infer_rows, train_rows = [], []
    for name in MODEL_NAMES:
        # width 1.0: one batch of 32 crops per call (DeepLoc needs ~2 s for it); width 0.25: 256
        # crops in batches of 64 and 256
        for width, n, batch_size in ((1.0, 32, 32), (0.25, 256, 64), (0.25, 256, 256)):
            row = inference(name, width, batch_size, cs.images[:n])
            infer_rows.append(row)
            print("inference", {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})
        for width, batch_size in ((0.25, 64), (1.0, 16)):
            row = training(name, width, batch_size, cs)
            train_rows.append(row)
            print("training", {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})
    result = {
        "benchmark": "model inference (features.extract) and training steps (bgrobust.train), CPU",
        "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        # glibc's heap trimming (the runner's kernel defaults keep the heap: bench_malloc.py)
        "malloc_env": {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")},
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "seconds": time.perf_counter() - t_start,
        "machine": describe(),
        "conv_peak": peak,
        "inference": infer_rows,
        "training": train_rows,
        "notes": "inference = crops/s of features.extract at the paper layer (max pooling), incl. "
                 "preprocessing and DeepLoc's five 60x60 crops (gflop_per_crop counts all five); "
                 "training = one optimizer step incl. batch preparation and augmentation; gflops_approx "
                 "assumes backward = 2x forward. Best of several repetitions after a warm-up.",
    }
    out = Path(__file__).parent / "results" / "models.json"
    out.write_text(json.dumps(result, indent=2, default=float))
    print(f"wrote {out} in {result['seconds']:.0f} s")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    main(parser.parse_args().threads)
