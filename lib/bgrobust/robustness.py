"""Test any feature extractor for background robustness with the paper's five experiments.

:func:`robustness_report` takes a callable or a ``torch.nn.Module`` that maps crops to
feature vectors, runs the five settings of the paper on a screen (the synthetic default or
a dataset you built), and returns the Table 1 row, the per-class accuracies (Fig. 2) and a
verdict, without touching the library's internals.

Examples
--------
>>> import numpy as np
>>> def mean_intensity(crops):                  # (N, 3, 64, 64) -> (N, 3)
...     return crops.mean(axis=(2, 3))
>>> # report = robustness_report(mean_intensity, profile="ci")
>>> # report.table, report.verdict, report.scatter()
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .classify import SVMProtocol
from .constraints import Instance, Integer, Optional, ParameterError, check_value
from .extractors import Extractor, as_extractor, minmax_per_channel
from .tables import fold_difference
from .vocabulary import CHANNELS, CLASSES, EXPERIMENT_TITLES, OTHER_CLASS, check_classes


@dataclass
class RobustnessReport:
    """What :func:`robustness_report` found for one extractor.

    Attributes
    ----------
    name : str
    results : dict
        Per-pair SVM results per experiment (the paper's CSV layout).
    table : DataFrame
        One row per experiment: ``experiment``, ``mean``, ``three_se`` (``"all"``
        aggregation: every pair or triplet, all classes), and the paper's aggregation.
    per_class : DataFrame
        Per-class accuracy per experiment (Fig. 2).
    claims : DataFrame
        The paper's claims 4.1-4.4 on this extractor (:mod:`bgrobust.claims`).
    drop : dict
        Same-localization minus different-localization swap accuracy: mean, low, high.
    verdict : str
    seconds : float
    bg_gap : dict
        The BG-gap (:mod:`bgrobust.challenge`): ``same`` and ``lower`` (the mean accuracies of
        the same-localization swap and of the swap it is compared with), ``gap`` (their
        difference, ``drop["mean"]``) with ``low`` and ``high`` (the interval of ``drop``),
        ``share`` (the gap as a share of the headroom above chance,
        ``(same - lower) / (same - 0.5)``, :func:`bgrobust.tables.headroom_share`) with
        ``share_low`` and ``share_high`` (the interval divided by the same headroom) and
        ``interval`` (how the interval was made).  :attr:`summary` says it in one line.
    """

    name: str
    results: dict
    table: pd.DataFrame
    per_class: pd.DataFrame
    claims: pd.DataFrame
    drop: dict
    verdict: str
    seconds: float = float("nan")
    meta: dict = field(default_factory=dict)
    bg_gap: dict = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """The one-line BG-gap summary: the gap, its interval and its share of the headroom, and the verdict."""
        return _gap_line(self.name, self.bg_gap)

    def to_frame(self) -> pd.DataFrame:
        """The report as one tidy table: a row per experiment, with the extractor's name.

        Columns: ``extractor``, then :attr:`table`'s (``experiment``, ``mean``, ``three_se``, ...),
        then the drop (``drop``, ``drop_low``, ``drop_high``), the BG-gap's headroom share and
        the verdict, repeated on every row so that several reports concatenate into one table.
        """
        out = self.table.copy()
        out.insert(0, "extractor", self.name)
        out["drop"], out["drop_low"], out["drop_high"] = (self.drop.get(k, np.nan) for k in ("mean", "low", "high"))
        out["bg_gap_share"] = self.bg_gap.get("share", np.nan)
        out["verdict"] = self.verdict
        return out

    def save(self, folder) -> Path:
        """Write the report into ``folder`` (replaced as a whole, atomically); :meth:`load` reads it back.

        Layout: ``results/results_<experiment>.csv`` (the paper's per-pair CSVs,
        :func:`bgrobust.tables.write_results`), ``table.csv``, ``per_class.csv``,
        ``claims.csv`` and ``report.json`` (name, drop, verdict, BG-gap, seconds, meta).
        """
        import json

        from .cache import atomic_dir
        from .tables import write_results

        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            write_results(self.results, tmp / "results")
            self.table.to_csv(tmp / "table.csv", index=False)
            self.per_class.to_csv(tmp / "per_class.csv")
            self.claims.to_csv(tmp / "claims.csv", index=False)
            (tmp / "report.json").write_text(json.dumps(
                {"name": self.name, "drop": self.drop, "verdict": self.verdict, "seconds": self.seconds,
                 "bg_gap": self.bg_gap, "meta": self.meta}, indent=2, default=_jsonable) + "\n")
        return folder

    @classmethod
    def load(cls, folder) -> "RobustnessReport":
        """A report written by :meth:`save`."""
        import json

        from .tables import read_paper_results

        folder = Path(folder)
        need = ["report.json", "table.csv", "per_class.csv", "claims.csv", "results"]
        missing = [n for n in need if not (folder / n).exists()]
        if missing:
            raise FileNotFoundError(f"RobustnessReport.load: {folder} lacks {missing} (not written by "
                                    f"RobustnessReport.save?)")
        try:
            info = json.loads((folder / "report.json").read_text())
        except ValueError as exc:
            raise ValueError(f"RobustnessReport.load: {folder / 'report.json'} is not valid JSON: {exc}") from None
        for key in ("name", "drop", "verdict"):
            if key not in info:
                raise ValueError(f"RobustnessReport.load: {folder / 'report.json'} has no field {key!r}")
        results = read_paper_results(folder / "results")
        results = next(iter(results.values())) if len(results) == 1 else results
        per_class = pd.read_csv(folder / "per_class.csv", index_col=0)
        per_class.columns.name = "experiment"
        return cls(info["name"], results, pd.read_csv(folder / "table.csv"), per_class,
                   pd.read_csv(folder / "claims.csv"), info["drop"], info["verdict"],
                   float(info.get("seconds", float("nan"))), info.get("meta", {}), info.get("bg_gap", {}))

    def scatter(self, ax=None):
        """Fig. 2 for this extractor: per-class accuracy, original against modified background."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.2, 4.2))
        pc = self.per_class
        styles = {"same": ("o", "same-loc swap"), "diff": ("x", "diff-loc swap"), "mask": ("s", "masked"),
                  "batch": ("^", "cell-free swap")}
        for exp, (marker, label) in styles.items():
            if exp in pc:
                ax.scatter(pc["base"], pc[exp], marker=marker, s=20, label=label)
        lo = np.nanmin(pc.to_numpy())
        ax.plot([0, 1], [0, 1], "k-", lw=0.8)
        ax.set_xlim(max(0, lo - 0.03), 1); ax.set_ylim(max(0, lo - 0.03), 1)
        ax.set_xlabel("accuracy, original background")
        ax.set_ylabel("accuracy, modified background")
        ax.set_title(self.name, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        return ax.figure


def _jsonable(value):
    """JSON for numpy scalars and arrays in a report's fields."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _settings_for_proteins(dataset, classes, settings) -> tuple[list[str], dict[str, str]]:
    """Drop the same-localization swap when a class has fewer than two proteins (it pastes across proteins)."""
    t = dataset.crops.table
    single = t[t["kind"].eq("single") & t["valid"].astype(bool)]
    few = [c for c in classes if single.loc[single["localization"].eq(c), "strain"].nunique() < 2]
    if "same" in settings and few:
        return [x for x in settings if x != "same"], {
            "same": f"skipped {EXPERIMENT_TITLES['same']!r}: class(es) {few} have fewer than two proteins"}
    return list(settings), {}


def _summary_table(res, few: bool) -> pd.DataFrame:
    """One row per experiment: mean and 3 SE over all pairs (and the paper's aggregation where defined)."""
    from .tables import table1

    name = res.names[0]
    if few:   # too few classes for an interval over classes: mean over pairs, 3 SE from the folds
        rows = []
        for exp, df in res.results[name].items():
            if exp in ("diff", "batch"):   # their rows on the pair's own backgrounds are in "other"
                continue
            se = float(np.sqrt((df["StdDev"] ** 2 / res.protocol.n_splits).mean() / len(df)))
            rows.append({"experiment": exp, "mean": float(df["Accuracy"].mean()), "three_se": 3 * se,
                         "n_pairs": len(df), "interval": "folds"})
        order = {e: i for i, e in enumerate(("base", "same", OTHER_CLASS, "mask"))}
        return pd.DataFrame(rows).sort_values("experiment", key=lambda e: e.map(order)).reset_index(drop=True)
    t_all = table1(res.results, aggregation="all").drop(columns="model")
    t_paper = table1(res.results, aggregation="paper").drop(columns="model")
    return t_all.merge(t_paper, on="experiment", suffixes=("", "_paper"))


def _verdict(name: str, drop: dict, lower: str = "diff") -> str:
    what = "other-class background" if lower == OTHER_CLASS else "diff-loc swap"
    text = f"same-loc swap minus {what} accuracy {drop['mean']:+.3f} [{drop['low']:+.3f}, {drop['high']:+.3f}]"
    if drop["low"] > 0:
        return f"{name} reads the background: {text} (3 SE interval above 0)."
    if drop["high"] < 0:
        return f"{name} is helped by different backgrounds: {text} (interval below 0)."
    return f"{name}: no background effect shown: {text} (interval includes 0)."


def _bg_gap(same: float, lower: float, drop: dict, lower_name: str, interval: str) -> dict:
    """The BG-gap of :class:`RobustnessReport`: the drop, its interval and its share of the headroom."""
    from .tables import headroom_share

    room = same - 0.5
    scale = (lambda v: v / room) if room > 0 else (lambda v: float("nan"))
    return {"same": same, "lower": lower, "lower_name": lower_name, "gap": drop["mean"], "low": drop["low"],
            "high": drop["high"], "share": headroom_share(same, same - drop["mean"]), "share_low": scale(drop["low"]),
            "share_high": scale(drop["high"]), "interval": interval}


def _gap_line(name: str, gap: dict) -> str:
    if not gap or not np.isfinite(gap.get("gap", np.nan)):
        return f"{name}: BG-gap not measured (no same-loc and {gap.get('lower_name', 'diff-loc')} swap results)."
    what = "reads the background" if gap["low"] > 0 else (
        "is helped by different backgrounds" if gap["high"] < 0 else "no background effect shown")
    share = (f"{gap['share']:.0%} of the headroom above chance [{gap['share_low']:.0%}, {gap['share_high']:.0%}]"
             if np.isfinite(gap["share"]) else "no headroom above chance")
    return (f"{name}: BG-gap {gap['gap']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}] ({gap['interval']}), "
            f"{share}; same-loc swap {gap['same']:.3f}, {gap['lower_name']} {gap['lower']:.3f}: {what}.")


def _check_arguments(n_cells, classes, channels, random_state, n_jobs, protocol, sets) -> None:
    """Fail before any work, naming the argument, on values :func:`robustness_report` cannot use."""

    where = "robustness_report"
    check_value(n_cells, Optional(Integer(1)), f"{where}: n_cells")
    if classes is not None:
        if isinstance(classes, str) or not isinstance(classes, (Sequence, np.ndarray)):
            raise ParameterError(f"{where}: classes must be a sequence of class names, got {classes!r}")
        if len(classes) < 2:
            raise ParameterError(f"{where}: classes must name at least 2 classes (pairs are compared), "
                                 f"got {list(classes)!r}")
        check_classes(classes, where=f"{where}: classes")
        if len(set(classes)) != len(classes):
            raise ParameterError(f"{where}: classes has duplicates: {list(classes)}")
        if sets is not None:
            missing = [c for c in classes if c not in set(sets.sets["centre_class"])]
            if missing:
                raise ParameterError(f"{where}: classes {missing} have no sets in the given settings "
                                     f"(generated for {sorted(set(sets.sets['centre_class']))})")
    if isinstance(channels, str) or not isinstance(channels, Sequence) or not channels:
        raise ParameterError(f"{where}: channels must be a non-empty sequence of channel names from {CHANNELS}, "
                             f"got {channels!r}")
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ParameterError(f"{where}: unknown channel(s) {unknown}; channels must be names from {CHANNELS}")
    if len(set(channels)) != len(channels):
        raise ParameterError(f"{where}: channels has duplicates: {tuple(channels)}")
    check_value(random_state, Integer(0), f"{where}: random_state")
    check_value(n_jobs, Integer(), f"{where}: n_jobs")
    check_value(protocol, Optional(Instance(SVMProtocol)), f"{where}: protocol")


def robustness_report(extractor, dataset=None, *, profile: str = "demo", sets=None, n_cells: int | None = None,
                      classes: Sequence[str] | None = None, protocol: SVMProtocol | None = None,
                      channels: Sequence[str] = CHANNELS, preprocess: Callable | None = minmax_per_channel,
                      name: str | None = None, random_state: int = 0, n_jobs: int = 1,
                      progress: bool = True, device=None, cache_dir=None) -> RobustnessReport:
    """Run the paper's five background experiments on any feature extractor.

    Parameters
    ----------
    extractor : anything :func:`bgrobust.extractors.as_extractor` adapts
        A callable or a ``torch.nn.Module`` (fed ``channels`` after ``preprocess``), a
        bgrobust model (read with its own preprocessing at its paper layer), precomputed
        features (a DataFrame, ``.parquet`` or ``.h5ad`` keyed by
        :func:`bgrobust.experiments.setting_crop_ids`), or an
        :class:`~bgrobust.extractors.Extractor`.
    dataset : bgrobust.dataset.Dataset, optional
        The crops to build the settings from (a synthetic screen, a manifest, or
        :func:`bgrobust.dataset.from_crops`); default: the profile's synthetic screen.
    profile : str
        Parameter profile (:mod:`bgrobust.profiles`: ``ci``, ``demo``, ``paper``, or a YAML path)
        for the screen, the number of crops per set and the classes when ``dataset``,
        ``n_cells`` or ``classes`` are not given; chapter 4's overrides apply.
    sets : bgrobust.settings.SettingSets, optional
        Pre-generated settings (then ``dataset`` and ``n_cells`` are not used).
    n_cells : int, optional
        Crops per set and per class in the SVMs.
    classes : sequence of str, optional
    protocol : SVMProtocol, optional
        Default: the paper's protocol with ``n_per_class = n_cells``.
    channels, preprocess
        What a callable or a Module sees (:class:`~bgrobust.extractors.ModuleFeatures`).
    name : str, optional
        Display name.
    device : None, str or torch.device
        Where a Module runs (``"auto"``: a CUDA GPU when present).
    cache_dir : path, optional
        SVM result cache.

    Returns
    -------
    RobustnessReport

    Raises
    ------
    ValueError
        Before any work, when ``n_cells`` is not a positive integer, ``classes`` is empty,
        names fewer than 2 or unknown classes, or ``channels`` names an unknown channel
        (an explicit value is never replaced by the profile's).
    """
    import time

    from .claims import paired_difference
    from .experiments import run_experiments
    from .settings import generate_settings

    start = time.perf_counter()
    _check_arguments(n_cells, classes, channels, random_state, n_jobs, protocol, sets)
    cfg = {}
    if sets is None and (dataset is None or n_cells is None or classes is None):
        from .profiles import load_profile

        cfg = load_profile(profile).parameters("04_five_experiments")
    if classes is None:
        present = None if sets is None else set(sets.sets["centre_class"])
        if dataset is not None and sets is None:
            t = dataset.crops.table
            present = set(t.loc[t["kind"].eq("single") & t["valid"], "localization"])
        wanted = cfg.get("classes") if dataset is None and sets is None else None
        classes = list(wanted or [c for c in CLASSES if present is None or c in present])
    classes = list(classes)
    few = len(classes) < 3   # no third class for a different-localization background
    skipped: dict[str, str] = {}
    if sets is None:
        if dataset is None:
            from .dataset import open_dataset

            _, dataset = open_dataset("synthetic", cfg.get("screen") or {}, cfg.get("dataset") or {},
                                      seed=cfg.get("seed", 0), n_jobs=n_jobs, progress=progress)
        if n_cells is None:
            n_cells = int((cfg.get("settings") or {}).get("n_cells", 40))
        settings, skipped = dataset.runnable_settings()
        settings, more = _settings_for_proteins(dataset, classes, settings)
        skipped.update(more)
        design = {"swap_backgrounds": "all", "shared_backgrounds": True} if few else {}
        sets = generate_settings(dataset, n_cells, classes=classes, settings=settings, random_state=random_state,
                                 progress=progress, **design)
    n_cells = int(sets.sets["n"].max() if n_cells is None else n_cells)
    protocol = protocol or SVMProtocol(n_per_class=n_cells)
    if isinstance(extractor, Extractor) or not (callable(extractor) or hasattr(extractor, "forward")):
        run = as_extractor(extractor, name=name)
    else:
        run = as_extractor(extractor, name=name, channels=channels, preprocess=preprocess, device=device)
    res = run_experiments(sets, {run.name: run}, protocol, classes=classes, backgrounds="all" if few else "valid",
                          n_jobs=n_jobs, progress=progress, cache_dir=cache_dir)
    results = res.results[run.name]
    for key, why in res.skipped.items():
        skipped.setdefault(key, why)
    lower = OTHER_CLASS if few else "diff"
    table = _summary_table(res, few)
    per_class = res.per_class(run.name, "all")
    if not {"same", lower} <= set(results):
        d = {"mean": float("nan"), "low": float("nan"), "high": float("nan")}
    elif few:
        d = fold_difference(results["same"], results[lower], protocol.n_splits)
    else:
        d = paired_difference(per_class, "same", lower)
    claims = pd.DataFrame() if few else res.claims("all")
    lower_name = "other-class background" if few else "diff-loc swap"
    if {"same", lower} <= set(results):
        if few:
            same_mean, lower_mean = float(results["same"]["Accuracy"].mean()), float(results[lower]["Accuracy"].mean())
        else:
            same_mean, lower_mean = float(per_class["same"].mean()), float(per_class[lower].mean())
        gap = _bg_gap(same_mean, lower_mean, d, lower_name,
                      "3 SE from the folds" if few else "3 SE over classes")
    else:
        gap = {"lower_name": lower_name}
    return RobustnessReport(name=run.name, results=results, table=table, per_class=per_class, claims=claims,
                            drop=d, verdict=_verdict(run.name, d, lower), seconds=time.perf_counter() - start,
                            bg_gap=gap,
                            meta={"n_cells": n_cells, "classes": classes, "protocol": protocol.to_dict(),
                                  "channels": list(channels), "skipped": skipped,
                                  "design": "other-class background" if few else "the paper's five settings"})
