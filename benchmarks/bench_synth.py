"""Rendering speed of the synthetic screen (fields per second), and the segmentation pipeline.

Run: ``.venv/bin/python benchmarks/bench_synth.py``; results go to
``benchmarks/results/synth.json`` with the machine they ran on.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from bgrobust.dataset import build_dataset  # noqa: E402
from bgrobust.synth import ScreenConfig, generate_screen  # noqa: E402


def main() -> dict:
    config = ScreenConfig(proteins_per_class=2, n_multi=6, fields_per_strain=2)  # demo-sized fields
    rows = []
    for n_jobs in (1, 2):
        t0 = time.perf_counter()
        screen = generate_screen(config, n_jobs=n_jobs, progress=False)
        render = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = build_dataset(screen, n_jobs=n_jobs, progress=False)
        pipeline = time.perf_counter() - t0
        rows.append({"n_jobs": n_jobs, "fields": screen.n_fields,
                     "render_fields_per_s": screen.n_fields / render,
                     "segment_crop_fields_per_s": screen.n_fields / pipeline,
                     "cells": int(len(screen.cells)), "crops": int(ds.report["n_crops"])})
        print(rows[-1])
    result = {"benchmark": "synthetic screen rendering and dataset pipeline",
              "field_shape": list(config.field_shape), "config": asdict(config),
              "machine": describe(), "results": rows}
    out = Path(__file__).parent / "results" / "synth.json"
    out.write_text(json.dumps(result, indent=2, default=float))
    return result


if __name__ == "__main__":
    main()
