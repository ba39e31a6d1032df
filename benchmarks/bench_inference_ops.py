"""The inference-only operations of feature extraction, and DeepLoc's batch size, on the CPU.

ReLU by dtype: why feature extraction clamps 16-bit maps as int16.

With bfloat16 autocast the networks' maps are bfloat16, and torch's in-place ReLU on them
runs several times slower than on float32 on this CPU. :func:`bgrobust.models._ops.relu_`
clamps their bit patterns as int16 instead (the same values). This times, on one thread,
an in-place ReLU of a channels-last ``(128, 32, 64, 64)`` map (16.8 M values), the
out-of-place ReLU, the int16 clamp, and the feature extraction of each model at the demo
width with bfloat16 autocast (1,024 random crops, best of 3; DeepLoc's five crops), with ``torch.relu_`` and with the fast
path.

Max pooling: ``F.max_pool2d`` (which computes argmax indices even at inference) against
:func:`bgrobust.models._ops.max_pool_2x2` (the maximum of four strided views) on a
``(160, 16, 60, 60)`` map (DeepLoc's first pooling at 32 crops per pass), channels-last and
contiguous. Batch size: crops/s of each model's bfloat16 extraction at batch sizes 8-128,
on 1 and 2 threads (the defaults, ``bgrobust.features.EXTRACT_BATCH_SIZES``).

Run: ``.venv/bin/python benchmarks/bench_inference_ops.py``; results go to
``benchmarks/results/inference_ops.json`` with the machine.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402


def best_ms(fn, repeat: int = 15) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1e3 * min(times), 2)


def main() -> None:
    from bgrobust import features as FE
    from bgrobust import models
    from bgrobust.models import _ops

    torch.set_num_threads(1)
    out = {"benchmark": "ReLU by dtype (one thread) and bfloat16 feature extraction with torch.relu_ "
                        "against the int16 clamp", "machine": describe(), "elementwise_ms": {}, "extract_s": {}}
    for dt in (torch.float32, torch.bfloat16):
        x = torch.randn(128, 32, 64, 64).to(dt).contiguous(memory_format=torch.channels_last)
        row = {"relu_ (in place)": best_ms(lambda: torch.relu_(x)),
               "relu (new tensor)": best_ms(lambda: torch.relu(x))}
        if dt != torch.float32:
            row["int16 clamp_min_ (in place)"] = best_ms(lambda: x.view(torch.int16).clamp_min_(0))
        out["elementwise_ms"][str(dt).replace("torch.", "")] = row
    crops = np.random.default_rng(0).integers(0, 4000, size=(1024, 3, 64, 64)).astype(np.float32)
    fast = _ops.relu_
    for name in ("pifia", "pci", "deeploc"):
        m = models.build(name, width=0.25, random_state=0, **({} if name == "pci" else {"n_classes": 15}))
        row = {}
        for label, fn in (("torch.relu_", torch.relu_), ("int16 clamp", fast)):
            _ops.relu_ = fn
            try:
                FE.extract(m, crops[:64], pooling="mean", progress=False, precision="bfloat16")
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    feats = FE.extract(m, crops, pooling="mean", progress=False, precision="bfloat16")
                    times.append(time.perf_counter() - t0)
                row[label] = round(min(times), 3)
                row.setdefault("features", []).append(feats)
            finally:
                _ops.relu_ = fast
        a, b = row.pop("features")
        row["features_equal"] = bool(np.array_equal(a, b))
        row["speedup"] = round(row["torch.relu_"] / row["int16 clamp"], 2)
        out["extract_s"][name] = row
    import torch.nn.functional as F

    out["max_pool_ms"] = {}
    with torch.inference_mode():
        for dt in (torch.float32, torch.bfloat16):
            for layout in ("channels_last", "contiguous"):
                x = torch.randn(160, 16, 60, 60).to(dt)
                if layout == "channels_last":
                    x = x.contiguous(memory_format=torch.channels_last)
                out["max_pool_ms"][f"{str(dt).replace('torch.', '')} {layout}"] = {
                    "F.max_pool2d": best_ms(lambda: F.max_pool2d(x, 2, 2)),
                    "max_pool_2x2": best_ms(lambda: _ops.max_pool_2x2(x)),
                    "equal": bool(torch.equal(F.max_pool2d(x, 2, 2), _ops.max_pool_2x2(x)))}
    out["batch_size_crops_per_s"] = {}
    small = crops[:512]
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name in ("pifia", "pci", "deeploc"):
            m = models.build(name, width=0.25, random_state=0, **({} if name == "pci" else {"n_classes": 15}))
            FE.extract(m, small[:64], pooling="mean", progress=False, precision="bfloat16")
            row = {}
            for bs in (8, 16, 32, 64, 128):
                times = []
                for _ in range(2):
                    t0 = time.perf_counter()
                    FE.extract(m, small, pooling="mean", progress=False, precision="bfloat16", batch_size=bs)
                    times.append(time.perf_counter() - t0)
                row[str(bs)] = round(len(small) / min(times), 1)
            row["default"] = FE.EXTRACT_BATCH_SIZES[name]
            out["batch_size_crops_per_s"][f"{name}, {threads} thread(s)"] = row
    torch.set_num_threads(1)
    path = Path(__file__).parent / "results" / "inference_ops.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
