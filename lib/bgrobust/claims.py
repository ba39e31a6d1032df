"""The paper's claims about the five experiments, restated as tests on per-class numbers.

Each claim of sections 4.1-4.4 compares two experiments. Its evidence here is the
paired per-class difference (the same 15 classes in both experiments), summarised by
its mean and an interval of 3 standard errors over classes (the paper's "± 3 SE"
convention); a claim *holds* on a screen when the interval lies on the claimed side.

Claim 4.1 ("same-localization swaps do not degrade accuracy": ``|same - base| < 0.02``,
:data:`bgrobust.published.SAME_VS_BASE_MAX_DIFF`) is a claim of *no* difference, so it is
decided as an equivalence test (:func:`equivalence`): it holds when the whole interval lies
inside ``(-margin, margin)``, fails when the whole interval lies outside, and is "not shown"
otherwise. The paper read it off the point estimate; that reading stays available as
``close_rule="point"``. :func:`across_seeds` puts several seeds' verdicts together, with the
spread between seeds beside the within-run interval.

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

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .published import SAME_VS_BASE_MAX_DIFF
from .tables import per_class

#: How the "close" claim (4.1) is decided: on the interval (equivalence) or the point estimate.
CLOSE_RULES = ("interval", "point")

#: (section, statement, higher experiment, lower experiment, kind, threshold)
#: kind "greater": the claim is higher > lower; "close": |higher - lower| < threshold.
CLAIMS: tuple[tuple[str, str, str, str, str, float | None], ...] = (
    ("4.1", f"same-localization swaps do not degrade accuracy (|same - baseline| < {SAME_VS_BASE_MAX_DIFF}, "
            "PIFiA and PCI)",
     "same", "base", "close", SAME_VS_BASE_MAX_DIFF),
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


def equivalence(d: Mapping, margin: float = SAME_VS_BASE_MAX_DIFF) -> tuple[bool, str]:
    """Interval-inside-margin equivalence test of a paired difference.

    Equivalent when the interval ``[low, high]`` lies inside ``(-margin, margin)``; not
    equivalent when it lies wholly outside (``low >= margin`` or ``high <= -margin``);
    otherwise not shown either way. With the ``mean ± 3 SE`` interval this is stricter than
    the usual two one-sided tests at 5 % (a 90 % interval, ± 1.645 SE).

    Parameters
    ----------
    d : mapping
        ``low`` and ``high`` (:func:`paired_difference`).
    margin : float > 0
        The equivalence margin (the paper's 0.02).

    Returns
    -------
    (bool, str)
        Whether equivalence is shown, and the verdict in words.

    Examples
    --------
    >>> equivalence({"low": -0.01, "high": 0.015})
    (True, 'holds (interval inside ±0.02)')
    >>> equivalence({"low": 0.005, "high": 0.04})[1]
    'not shown (interval crosses ±0.02)'
    >>> equivalence({"low": 0.03, "high": 0.05})[1]
    'fails (interval outside ±0.02)'
    """
    if not (isinstance(margin, (int, float)) and not isinstance(margin, bool) and margin > 0):
        raise ValueError(f"equivalence: margin must be a positive number, got {margin!r}")
    low, high = float(d["low"]), float(d["high"])
    if low > high:
        raise ValueError(f"equivalence: low {low} > high {high}")
    if -margin < low and high < margin:
        return True, f"holds (interval inside ±{margin:g})"
    if low >= margin or high <= -margin:
        return False, f"fails (interval outside ±{margin:g})"
    return False, f"not shown (interval crosses ±{margin:g})"


def evaluate_claims(results: Mapping[str, Mapping[str, pd.DataFrame]], aggregation: str = "all",
                    models_for_close: tuple[str, ...] = ("pifia", "pci"), *, close_rule: str = "interval",
                    margin: float = SAME_VS_BASE_MAX_DIFF) -> pd.DataFrame:
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
    close_rule : {"interval", "point"}
        How claim 4.1 is decided: ``"interval"`` (default) by :func:`equivalence` of its
        interval with ``margin``; ``"point"`` by ``|mean| < margin``, the paper's reading of
        its own numbers.
    margin : float
        The equivalence margin of claim 4.1 (the paper's 0.02).

    Returns
    -------
    DataFrame
        One row per (claim, model): section, claim, model, difference (higher - lower),
        low, high, n_classes, holds (bool) and verdict (text).
    """
    if close_rule not in CLOSE_RULES:
        raise ValueError(f"evaluate_claims: close_rule must be one of {CLOSE_RULES}, got {close_rule!r}")
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
            elif close_rule == "interval":
                holds, verdict = equivalence(d, margin)
            else:
                holds = abs(d["mean"]) < margin
                verdict = f"holds (|difference| < {margin:g})" if holds else f"fails (|difference| >= {margin:g})"
            if kind == "close":
                if model not in models_for_close:
                    verdict += "; not claimed for this model"
            rows.append({"section": section, "claim": text, "model": model, "difference": d["mean"],
                         "low": d["low"], "high": d["high"], "n_classes": d["n"], "holds": bool(holds),
                         "verdict": verdict})
    return pd.DataFrame(rows)


def across_seeds(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Several seeds' claim tables side by side: between-seed spread beside the within-run interval.

    Parameters
    ----------
    tables : sequence of DataFrame
        One :func:`evaluate_claims` table per seed (screen, training and sampling all
        reseeded); at least two.

    Returns
    -------
    DataFrame
        One row per (section, model): ``n_seeds``; ``mean`` (mean difference over seeds),
        ``between_seed_sd`` (its standard deviation over seeds), ``min`` and ``max``;
        ``within_run_halfwidth`` (the mean over seeds of half the within-run interval,
        ``(high - low) / 2``) and their ratio ``sd_over_halfwidth``; ``n_holds`` (seeds where
        the claim holds) and ``verdict``: "holds in every seed", "holds in no seed" (not shown or
        reversed: see the per-seed verdicts) or
        "holds in k of n seeds".

    Examples
    --------
    >>> import pandas as pd
    >>> def t(diff, low, high, holds):
    ...     return pd.DataFrame({"section": ["4.2"], "model": ["pci"], "difference": [diff],
    ...                          "low": [low], "high": [high], "holds": [holds]})
    >>> out = across_seeds([t(0.03, 0.01, 0.05, True), t(0.13, 0.1, 0.16, True), t(0.0, -0.02, 0.02, False)])
    >>> row = out.loc[("4.2", "pci")]
    >>> int(row["n_seeds"]), int(row["n_holds"]), row["verdict"]
    (3, 2, 'holds in 2 of 3 seeds')
    >>> round(float(row["between_seed_sd"]), 4), round(float(row["within_run_halfwidth"]), 4)
    (0.0681, 0.0233)
    """
    tables = list(tables)
    if len(tables) < 2:
        raise ValueError(f"across_seeds: need the claim tables of >= 2 seeds, got {len(tables)}")
    need = ["section", "model", "difference", "low", "high", "holds"]
    for i, t in enumerate(tables):
        if not isinstance(t, pd.DataFrame):
            raise TypeError(f"across_seeds: tables[{i}] must be a DataFrame, got {type(t).__name__}")
        missing = [c for c in need if c not in t.columns]
        if missing:
            raise ValueError(f"across_seeds: tables[{i}] lacks column(s) {missing}")
        if t.duplicated(["section", "model"]).any():
            raise ValueError(f"across_seeds: tables[{i}] has repeated (section, model) rows")
    long = pd.concat([t[need].assign(seed=i) for i, t in enumerate(tables)], ignore_index=True)
    long["halfwidth"] = (long["high"] - long["low"]) / 2
    g = long.groupby(["section", "model"], sort=False)
    out = pd.DataFrame({
        "n_seeds": g["seed"].nunique(),
        "mean": g["difference"].mean(),
        "between_seed_sd": g["difference"].std(ddof=1),
        "min": g["difference"].min(),
        "max": g["difference"].max(),
        "within_run_halfwidth": g["halfwidth"].mean(),
        "n_holds": g["holds"].sum().astype(int),
    })
    out["sd_over_halfwidth"] = out["between_seed_sd"] / out["within_run_halfwidth"]
    out["verdict"] = [("holds in every seed" if h == n else "holds in no seed" if h == 0
                       else f"holds in {h} of {n} seeds") for h, n in zip(out["n_holds"], out["n_seeds"])]
    return out


def format_across_seeds(table: pd.DataFrame, titles: Mapping[str, str] | None = None, digits: int = 3) -> pd.DataFrame:
    """:func:`across_seeds` (with its ``claim`` column) as the chapters print it.

    Columns: section, claim, model (``titles`` maps keys to display names), the mean
    difference over seeds with its range, the between-seed SD beside the mean within-run
    half-width (3 SE), and the verdict over the seeds.

    Examples
    --------
    >>> t = pd.DataFrame({"section": ["4.2"], "claim": ["same > diff"], "model": ["pci"], "n_seeds": [3],
    ...                   "mean": [0.05], "between_seed_sd": [0.02], "min": [0.03], "max": [0.07],
    ...                   "within_run_halfwidth": [0.01], "n_holds": [3], "verdict": ["holds in every seed"]})
    >>> format_across_seeds(t, {"pci": "PCI"}).iloc[0].tolist()
    ['4.2', 'same > diff', 'PCI', '+0.050 [+0.030, +0.070]', '0.020', '0.010', 'holds in every seed']
    """
    need = ["section", "claim", "model", "mean", "min", "max", "between_seed_sd", "within_run_halfwidth", "verdict"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"format_across_seeds: missing column(s) {missing}")
    titles = dict(titles or {})
    f = f"{{:+.{digits}f}}"
    return pd.DataFrame({
        "section": table["section"], "claim": table["claim"],
        "model": [titles.get(m, m) for m in table["model"]],
        "difference over seeds [min, max]": [f"{f.format(m)} [{f.format(a)}, {f.format(b)}]"
                                             for m, a, b in zip(table["mean"], table["min"], table["max"])],
        "between-seed SD": [f"{v:.{digits}f}" for v in table["between_seed_sd"]],
        "within-run ± 3 SE": [f"{v:.{digits}f}" for v in table["within_run_halfwidth"]],
        "verdict": table["verdict"],
    }).reset_index(drop=True)
