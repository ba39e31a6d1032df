"""How far the synthetic screen is from real yeast crops (not a speed benchmark: a calibration record).

Builds the default (demo) screen and dataset (reusing the run folder's cache) and
compares its valid crops with the 300 real WT2 crops of the Paired Cell Inpainting toy
set in ``../shared/data/pci-toy-subset`` (class by class, via
:func:`bgrobust.synth.realism.real_vs_synthetic`), on the held-out half of the real
crops (the half the calibration never looked at) and on the calibration half.

Run: ``.venv/bin/python benchmarks/bench_realism.py``; results go to
``benchmarks/results/realism.json`` with the machine.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

#: The project's real third-party data beside the checkout (``$BGROBUST_SHARED_DATA`` overrides).
SHARED_DATA = Path(os.environ.get("BGROBUST_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

from bgrobust.dataset import load_or_build  # noqa: E402
from bgrobust.io import gene_to_orf, huh_labels, read_huh_table, read_pci_crops  # noqa: E402
from bgrobust.synth import ScreenConfig, load_or_generate  # noqa: E402
from bgrobust.synth.realism import holdout_split, real_vs_synthetic  # noqa: E402


def main() -> dict:
    t0 = time.perf_counter()
    config = ScreenConfig()
    screen = load_or_generate(config, n_jobs=2, progress=False)
    ds = load_or_build(screen, n_jobs=2, progress=False)
    valid = ds.valid_crops()
    crops, table = read_pci_crops(SHARED_DATA / "pci-toy-subset")
    orf = table["gene"].map(gene_to_orf(SHARED_DATA / "yeastgfp" / "Sce.csv.xz")).str.upper()
    labels = huh_labels(read_huh_table(SHARED_DATA / "yeastgfp" / "allOrfData.txt")).set_index("orf")
    classes = orf.map(labels["localizations"])
    synth = valid.images[:, [0, 2]]
    out = {}
    held = holdout_split(table["gene"])
    for part, keep in (("held_out", held), ("calibration", ~held)):
        summary, reports = real_vs_synthetic(crops[keep], classes[keep].tolist(), table["gene"][keep], synth,
                                             valid.table, screen.strains, held_out=False)
        rows = {}
        for cls, report in reports.items():
            st = report.statistics
            name = " + ".join(cls)
            real_area = float(st.loc["area", ("real", "median")])
            syn_area = float(st.loc["area", ("synthetic", "median")])
            k = st.loc["gfp_kurt_in"]
            rows[name] = {
                "accuracy": {r["features"]: [round(float(r["accuracy"]), 3), round(float(r["se"]), 3)]
                             for _, r in summary[summary.classes == name].iterrows()},
                "n_real": int(summary[summary.classes == name].n_real.iloc[0]),
                "n_synthetic": int(summary[summary.classes == name].n_synthetic.iloc[0]),
                "area_median": {"real": real_area, "synthetic": syn_area,
                                "relative_difference": round(syn_area / real_area - 1, 3)},
                "gfp_kurtosis": {"real_median": float(k[("real", "median")]),
                                 "real_p10_p90": [float(k[("real", "p10")]), float(k[("real", "p90")])],
                                 "synthetic_median": float(k[("synthetic", "median")])},
                "medians": {s: [float(st.loc[s, ("real", "median")]), float(st.loc[s, ("synthetic", "median")])]
                            for s in st.index},
            }
        out[part] = rows
        print(part, json.dumps({k: v["accuracy"] for k, v in rows.items()}))
    q = ds.segmentation_quality
    f1 = 2 * q.n_matched.sum() / (q.n_true.sum() + q.n_pred.sum())
    result = {"benchmark": "realism of the synthetic screen against real WT2 crops (PCI toy subset)",
              "command": ".venv/bin/python benchmarks/bench_realism.py",
              "config": asdict(config), "segmentation_object_f1": round(float(f1), 4),
              "n_valid_crops": int(ds.report["n_valid"]), "seconds": round(time.perf_counter() - t0, 1),
              "machine": describe(), "results": out}
    path = Path(__file__).parent / "results" / "realism.json"
    path.write_text(json.dumps(result, indent=2, default=float))
    return result


if __name__ == "__main__":
    main()
