"""The paper's claims about the five experiments, restated as tests on per-class numbers.

Each claim of sections 4.1-4.4 compares two experiments. Its evidence here is the
paired per-class difference (the same 15 classes in both experiments), summarised by
its mean and an interval of 3 standard errors over classes (the paper's "± 3 SE"
convention); a claim *holds* on a screen when the interval lies on the claimed side.

Examples
--------
>>> import pandas as pd
>>> pc = pd.DataFrame({"same": [0.9, 0.92, 0.95], "diff": [0.8, 0.85, 0.83]},
...                   index=["actin", "ER", "Golgi"])
>>> d = paired_difference(pc, "same", "diff")
>>> round(d["mean"], 3), d["n"]
(0.097, 3)
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .tables import per_class

#: (section, statement, higher experiment, lower experiment, kind, threshold)
#: kind "greater": the claim is higher > lower; "close": |higher - lower| < threshold.
CLAIMS: tuple[tuple[str, str, str, str, str, float | None], ...] = (
    ("4.1", "same-localization swaps do not degrade accuracy (|same - baseline| < 0.02, PIFiA and PCI)",
     "same", "base", "close", 0.02),
    ("4.2", "different-localization swaps degrade accuracy (same > diff)", "same", "diff", "greater", None),
    ("4.3", "the drop is explained by cells, not background (cell-free > diff)", "batch", "diff", "greater", None),
    ("4.4", "same-localization neighbours help (same > masked)", "same", "mask", "greater", None),
)


def paired_difference(per_class_table: pd.DataFrame, higher: str, lower: str) -> dict:
    """Mean and 3 SE of ``higher - lower`` over the classes present in both columns.

    Parameters
    ----------
    per_class_table : DataFrame
        Index class, one column per experiment (:func:`bgrobust.tables.per_class`).
    higher, lower : str
        Column names.

    Returns
    -------
    dict
        ``mean``, ``three_se``, ``low``, ``high`` (mean -/+ 3 SE) and ``n`` (classes).
    """
    for col in (higher, lower):
        if col not in per_class_table.columns:
            raise KeyError(f"paired_difference: no column {col!r}; have {list(per_class_table.columns)}")
    d = (per_class_table[higher] - per_class_table[lower]).dropna().to_numpy(float)
    if len(d) < 2:
        raise ValueError(f"paired_difference: {len(d)} class(es) with both {higher!r} and {lower!r}; need >= 2")
    three_se = 3 * d.std(ddof=1) / np.sqrt(len(d))
    mean = float(d.mean())
    return {"mean": mean, "three_se": float(three_se), "low": mean - three_se, "high": mean + three_se,
            "n": int(len(d))}


def evaluate_claims(results: Mapping[str, Mapping[str, pd.DataFrame]], aggregation: str = "all",
                    models_for_close: tuple[str, ...] = ("pifia", "pci")) -> pd.DataFrame:
    """Every claim of sections 4.1-4.4 for every model, with its interval and verdict.

    Parameters
    ----------
    results : mapping
        ``{model: {experiment: DataFrame}}`` per-pair results.
    aggregation : {"all", "paper"}
        How per-class values are built (:func:`bgrobust.tables.per_class`); "all" uses every
        pair and triplet, so all 15 classes take part.
    models_for_close : tuple of str
        The models the "close" claim (4.1) is made for in the paper; other models are
        reported but marked as not claimed.

    Returns
    -------
    DataFrame
        One row per (claim, model): section, claim, model, difference (higher - lower),
        low, high, n_classes, holds (bool) and verdict (text).
    """
    rows = []
    for model, res in results.items():
        pc = per_class(res, aggregation)
        for section, text, higher, lower, kind, threshold in CLAIMS:
            if higher not in pc or lower not in pc:
                continue
            d = paired_difference(pc, higher, lower)
            if kind == "greater":
                holds = d["low"] > 0
                verdict = ("holds" if holds else
                           "reversed" if d["high"] < 0 else "not shown (interval includes 0)")
            else:
                holds = abs(d["mean"]) < threshold
                verdict = f"holds (|difference| < {threshold})" if holds else f"fails (|difference| >= {threshold})"
                if model not in models_for_close:
                    verdict += "; not claimed for this model"
            rows.append({"section": section, "claim": text, "model": model, "difference": d["mean"],
                         "low": d["low"], "high": d["high"], "n_classes": d["n"], "holds": bool(holds),
                         "verdict": verdict})
    return pd.DataFrame(rows)
