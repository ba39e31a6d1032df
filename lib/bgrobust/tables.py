"""Per-pair SVM results on disk, their per-class aggregation and the paper's Table 1.

The paper's code writes one CSV per model and experiment
(``<folder>/<model>/results_<experiment>.csv``): ``Location1, Location2, Accuracy,
StdDev`` for the pair experiments (base, mask, same) and ``Location1, Location2,
Background, Accuracy, StdDev`` for the triplet experiments (diff, batch).  This module
reads and writes that layout and reduces it to Table 1.

Two aggregations are offered (:func:`per_class`):

``"paper"``
    exactly what ``analyze_swap.ipynb`` does, quirks included: base and mask are
    averaged per ``Location1`` (so ``vacuole``, never a ``Location1``, is missing and the
    pairs are weighted unevenly); same credits each pair to both members; diff and batch
    drop rows whose background equals either centre class, then keep only the *first*
    remaining row of each pair in file order (one background per pair) and credit both
    members.  This reproduces the printed Table 1.
``"all"``
    every pair credited to both members and, for diff and batch, the mean over all
    valid backgrounds (``b`` not in ``{c1, c2}``).  This is the paper's *description*
    (section 3.4) and the aggregation of its Supplementary Tables 2 and 3.

Table 1's "±" is 3 standard errors (``std(ddof=1) / sqrt(n)``) across classes.

Examples
--------
>>> import pandas as pd
>>> base = pd.DataFrame({"Location1": ["actin", "actin", "bud neck"],
...                      "Location2": ["bud neck", "ER", "ER"],
...                      "Accuracy": [0.9, 0.8, 0.7], "StdDev": [0.0, 0.0, 0.0]})
>>> per_class({"base": base}, aggregation="all")["base"].round(2).to_dict()
{'actin': 0.85, 'bud neck': 0.8, 'ER': 0.75}
>>> per_class({"base": base}, aggregation="paper")["base"].round(2).to_dict()
{'actin': 0.85, 'bud neck': 0.7, 'ER': nan}
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import atomic_file
from .vocabulary import (CLASSES, EXPERIMENT_TITLES, EXPERIMENTS, MODEL_TITLES, MODELS, TRIPLET_EXPERIMENTS,
                         check_classes)

PAIR_COLUMNS: tuple[str, ...] = ("Location1", "Location2", "Accuracy", "StdDev")
TRIPLET_COLUMNS: tuple[str, ...] = ("Location1", "Location2", "Background", "Accuracy", "StdDev")
AGGREGATIONS: tuple[str, ...] = ("paper", "all")


# --------------------------------------------------------------------------- I/O


def check_results_frame(df: pd.DataFrame, experiment: str, *, where: str = "results") -> pd.DataFrame:
    """Validate one per-pair table and return it with clean dtypes.

    Parameters
    ----------
    df : DataFrame
        ``Location1, Location2, [Background,] Accuracy, StdDev``.
    experiment : str
        Its experiment key; diff and batch (:data:`TRIPLET_EXPERIMENTS`) need a
        ``Background`` column.
    where : str
        Named in error messages (a file name, say).

    Raises
    ------
    ValueError
        A missing column (named), an unknown class name, a non-numeric or
        out-of-range accuracy.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}")
    needed = TRIPLET_COLUMNS if experiment in TRIPLET_EXPERIMENTS else PAIR_COLUMNS
    for col in needed:
        if col not in df.columns:
            raise ValueError(f"{where}: missing column {col!r} (experiment {experiment!r} needs "
                             f"{', '.join(needed)}; found {', '.join(map(str, df.columns))})")
    out = df.copy()
    loc_cols = [c for c in ("Location1", "Location2", "Background") if c in out.columns]
    for col in loc_cols:
        out[col] = out[col].astype(str)
        check_classes(out[col].unique(), where=f"{where}, column {col!r}")
    for col in ("Accuracy", "StdDev"):
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.isna() & out[col].notna()
        if bad.any():
            raise ValueError(f"{where}: column {col!r} has non-numeric values, e.g. "
                             f"{out[col][bad].iloc[0]!r} in row {int(np.flatnonzero(bad)[0])}")
        out[col] = values.astype(float)
    acc = out["Accuracy"].dropna()
    if ((acc < 0) | (acc > 1)).any():
        raise ValueError(f"{where}: column 'Accuracy' has values outside [0, 1]")
    return out


def _exp_from_name(path: Path) -> str:
    return path.stem[len("results_"):]


def _read_model_folder(folder: Path, experiments) -> dict[str, pd.DataFrame]:
    files = sorted(folder.glob("results_*.csv"))
    if not files:
        raise FileNotFoundError(f"{folder}: no results_<experiment>.csv files")
    out = {}
    for f in files:
        exp = _exp_from_name(f)
        if experiments is not None and exp not in experiments:
            continue
        out[exp] = check_results_frame(pd.read_csv(f), exp, where=str(f))
    if experiments is not None:
        missing = [e for e in experiments if e not in out]
        if missing:
            raise FileNotFoundError(f"{folder}: no results_<experiment>.csv for {missing}")
    return {e: out[e] for e in _order_experiments(out)}


def _order_experiments(names) -> list[str]:
    names = list(names)
    known = [e for e in EXPERIMENTS if e in names]
    return known + sorted(e for e in names if e not in EXPERIMENTS)


def read_paper_results(folder, *, models: Sequence[str] | None = None,
                       experiments: Sequence[str] | None = None) -> dict[str, dict[str, pd.DataFrame]]:
    """Read per-pair results in the layout of the paper's repository.

    Parameters
    ----------
    folder : path
        Either ``folder/<model>/results_<experiment>.csv`` (one sub-folder per model),
        or a folder holding one model's ``results_*.csv`` directly; the model is then
        keyed by the folder's name.
    models, experiments : sequence of str, optional
        Read only these (default: everything found).

    Returns
    -------
    dict
        ``{model: {experiment: DataFrame}}``; experiments in :data:`EXPERIMENTS` order.
        Row counts are not checked (runs of this project may have fewer classes).

    Raises
    ------
    FileNotFoundError
        ``folder`` (or a requested model or experiment) is missing, or holds no
        results files.
    ValueError
        A file lacks a column (file and column are named) or names an unknown class.

    Examples
    --------
    >>> # SHARED_DATA: the folder of the real third-party data (``../shared/data`` beside the checkout)
    >>> folder = SHARED_DATA / "paper-results" / "swap_experiments" / "results"
    >>> res = read_paper_results(folder) if folder.exists() else None
    >>> sorted(res) if res else ['deeploc', 'pci', 'pifia']
    ['deeploc', 'pci', 'pifia']
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder {folder} does not exist")
    if any(folder.glob("results_*.csv")):
        if models is not None and folder.name not in models:
            raise FileNotFoundError(f"{folder} holds the results of model {folder.name!r}, "
                                    f"not of {list(models)}")
        return {folder.name: _read_model_folder(folder, experiments)}
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and any(p.glob("results_*.csv")))
    if models is not None:
        missing = [m for m in models if not (folder / m).is_dir()]
        if missing:
            raise FileNotFoundError(f"{folder}: no sub-folder for model(s) {missing}")
        subs = [folder / m for m in models]
    if not subs:
        raise FileNotFoundError(f"{folder}: neither results_*.csv files nor model sub-folders holding them")
    order = [m for m in MODELS if m in {p.name for p in subs}] + sorted(
        p.name for p in subs if p.name not in MODELS)
    return {m: _read_model_folder(folder / m, experiments) for m in order}


def _is_flat(results: Mapping) -> bool:
    return all(isinstance(v, pd.DataFrame) for v in results.values())


def write_results(results: Mapping, folder) -> list[Path]:
    """Write results in the paper's layout, each file atomically.

    Parameters
    ----------
    results : mapping
        ``{model: {experiment: DataFrame}}`` (written to ``folder/<model>/``) or one
        model's ``{experiment: DataFrame}`` (written to ``folder`` directly).
    folder : path

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> df = pd.DataFrame({"Location1": ["actin"], "Location2": ["ER"],
    ...                    "Accuracy": [0.9], "StdDev": [0.01]})
    >>> out = write_results({"pifia": {"base": df}}, tempfile.mkdtemp())
    >>> out[0].parent.name, out[0].name
    ('pifia', 'results_base.csv')
    """
    folder = Path(folder)
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results: expected a non-empty mapping {model: {experiment: DataFrame}} "
                         "or {experiment: DataFrame}")
    nested = {"": results} if _is_flat(results) else results
    written = []
    for model, exps in nested.items():
        if not isinstance(exps, Mapping):
            raise TypeError(f"results[{model!r}]: expected a mapping experiment -> DataFrame, "
                            f"got {type(exps).__name__}")
        target = folder / model if model else folder
        for exp, df in exps.items():
            df = check_results_frame(df, exp, where=f"results[{model!r}][{exp!r}]" if model
                                     else f"results[{exp!r}]")
            cols = list(TRIPLET_COLUMNS if "Background" in df.columns else PAIR_COLUMNS)
            path = target / f"results_{exp}.csv"
            with atomic_file(path) as tmp:
                df[cols].to_csv(tmp, index=False)
            written.append(path)
    return written


# --------------------------------------------------------------------------- aggregation


def _credit_both(df: pd.DataFrame, value: str = "Accuracy") -> pd.Series:
    long = pd.concat([df[["Location1", value]].rename(columns={"Location1": "class"}),
                      df[["Location2", value]].rename(columns={"Location2": "class"})])
    return long.groupby("class", sort=False)[value].mean()


def _valid_backgrounds(df: pd.DataFrame) -> pd.DataFrame:
    keep = (df["Background"] != df["Location1"]) & (df["Background"] != df["Location2"])
    return df[keep]


def class_accuracies(df: pd.DataFrame, experiment: str, aggregation: str = "paper",
                     value: str = "Accuracy") -> pd.Series:
    """One accuracy per class for one experiment's per-pair table.

    Parameters
    ----------
    df : DataFrame
        One results file (see :func:`check_results_frame`).
    experiment : str
        Its key; in ``"paper"`` mode it selects the rule (base/mask: per
        ``Location1``; a table with a ``Background`` column: first valid background per
        pair; anything else: both members).
    aggregation : {"paper", "all"}
    value : str
        The column to aggregate (``"Accuracy"``; e.g. ``"HeldOutAccuracy"``).

    Returns
    -------
    Series
        Indexed by class, in :data:`~bgrobust.vocabulary.CLASSES` order; classes without a
        value are absent.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if value not in df.columns:
        raise ValueError(f"experiment {experiment!r}: no column {value!r}")
    if "Background" in df.columns:
        df = _valid_backgrounds(df)
        if aggregation == "paper":
            # analyze_swap.ipynb: a `seen` set keeps the first remaining row per pair.
            df = df.drop_duplicates(subset=["Location1", "Location2"], keep="first")
        else:
            df = df.groupby(["Location1", "Location2"], sort=False, as_index=False)[value].mean()
        s = _credit_both(df, value)
    elif aggregation == "paper" and experiment in ("base", "mask"):
        s = df.groupby("Location1", sort=False)[value].mean()
    else:
        s = _credit_both(df, value)
    s = s.reindex([c for c in CLASSES if c in s.index])
    s.index.name = "class"
    return s.rename(experiment)


def per_class(results: Mapping[str, pd.DataFrame], aggregation: str = "paper",
              experiments: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-class accuracies of one model, one column per experiment.

    Parameters
    ----------
    results : mapping
        One model's ``{experiment: DataFrame}``.
    aggregation : {"paper", "all"}
        See the module docstring.
    experiments : sequence of str, optional
        Columns to build, in this order (default: all present, :data:`EXPERIMENTS`
        order).

    Returns
    -------
    DataFrame
        Index ``class`` (every class that is a centre class in any of the experiments,
        CLASSES order), columns
        the experiments; NaN where a class has no value (vacuole in base and mask with
        ``"paper"``).

    Examples
    --------
    >>> import pandas as pd
    >>> diff = pd.DataFrame({"Location1": ["actin"] * 3, "Location2": ["ER"] * 3,
    ...                      "Background": ["actin", "Golgi", "nucleus"],
    ...                      "Accuracy": [0.5, 0.8, 0.6], "StdDev": [0.0] * 3})
    >>> per_class({"diff": diff}, "paper")["diff"].tolist()
    [0.8, 0.8]
    >>> per_class({"diff": diff}, "all")["diff"].round(2).tolist()
    [0.7, 0.7]
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results: expected one model's non-empty mapping {experiment: DataFrame}")
    if not _is_flat(results):
        raise TypeError("results: expected one model's {experiment: DataFrame}; for several models "
                        "pass results[model]")
    experiments = _order_experiments(results) if experiments is None else list(experiments)
    missing = [e for e in experiments if e not in results]
    if missing:
        raise KeyError(f"results: no experiment(s) {missing}; have {list(results)}")
    cols = {e: class_accuracies(results[e], e, aggregation) for e in experiments}
    present = set()
    for e in experiments:
        present.update(results[e]["Location1"].astype(str))
        present.update(results[e]["Location2"].astype(str))
    index = [c for c in CLASSES if c in present]
    out = pd.DataFrame({e: s.reindex(index) for e, s in cols.items()}, index=pd.Index(index, name="class"))
    out.columns.name = "experiment"
    return out


def mean_three_se(values) -> tuple[float, float, int]:
    """Mean, 3 standard errors (``3 * std(ddof=1) / sqrt(n)``) and n, NaNs ignored.

    >>> m, se, n = mean_three_se([0.9, 0.8, 0.7])
    >>> round(m, 3), round(se, 3), n
    (0.8, 0.173, 3)
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), 0
    se = 3 * v.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
    return float(v.mean()), float(se), n


def _check_nested(results: Mapping) -> Mapping:
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results: expected a non-empty mapping {model: {experiment: DataFrame}}")
    if _is_flat(results):
        raise TypeError("results: expected {model: {experiment: DataFrame}}; wrap one model's "
                        "results as {'name': results}")
    return results


def table1(results: Mapping[str, Mapping[str, pd.DataFrame]], aggregation: str = "paper",
           experiments: Sequence[str] | None = None) -> pd.DataFrame:
    """Table 1: mean over classes of the per-class accuracy, with 3 standard errors.

    Parameters
    ----------
    results : mapping
        ``{model: {experiment: DataFrame}}`` (as from :func:`read_paper_results`).
    aggregation : {"paper", "all"}
        ``"paper"`` reproduces the printed numbers; see :func:`per_class`.
    experiments : sequence of str, optional

    Returns
    -------
    DataFrame
        Columns ``model, experiment, mean, three_se, n_classes``, one row per model and
        experiment (tidy; see :func:`format_table1` for the printed layout).

    Examples
    --------
    >>> import pandas as pd
    >>> same = pd.DataFrame({"Location1": ["actin", "actin", "ER"],
    ...                      "Location2": ["ER", "Golgi", "Golgi"],
    ...                      "Accuracy": [0.9, 0.8, 0.7], "StdDev": [0.0] * 3})
    >>> print(table1({"m": {"same": same}}).round(3).to_string(index=False))
    model experiment  mean  three_se  n_classes
        m       same   0.8     0.087          3
    """
    rows = []
    for model, exps in _check_nested(results).items():
        pc = per_class(exps, aggregation, experiments)
        for exp in pc.columns:
            mean, se, n = mean_three_se(pc[exp])
            rows.append({"model": model, "experiment": exp, "mean": mean, "three_se": se, "n_classes": n})
    return pd.DataFrame(rows, columns=["model", "experiment", "mean", "three_se", "n_classes"])


def format_table1(df: pd.DataFrame, digits: int = 3, *, display_names: bool = True) -> pd.DataFrame:
    """The paper's wide layout of a tidy Table 1 (``"0.946 ± 0.020"`` cells).

    Parameters
    ----------
    df : DataFrame
        Columns ``model, experiment, mean, three_se`` (:func:`table1`, or
        :func:`bgrobust.published.table1`).
    digits : int
    display_names : bool
        Use the paper's model and experiment names (PIFiA, "Diff Loc Swap", ...).

    Returns
    -------
    DataFrame
        Rows models, columns experiments in the paper's order, string cells.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"model": ["pifia"], "experiment": ["base"],
    ...                   "mean": [0.9461], "three_se": [0.0199]})
    >>> format_table1(t).loc["PIFiA", "Baseline"]
    '0.946 ± 0.020'
    """
    for col in ("model", "experiment", "mean", "three_se"):
        if col not in df.columns:
            raise ValueError(f"format_table1: missing column {col!r}")
    cells = df.assign(cell=[f"{m:.{digits}f} ± {s:.{digits}f}" for m, s in zip(df["mean"], df["three_se"])])
    wide = cells.pivot(index="model", columns="experiment", values="cell")
    models = [m for m in MODELS if m in wide.index] + [m for m in wide.index if m not in MODELS]
    exps = [e for e in EXPERIMENTS if e in wide.columns] + [e for e in wide.columns if e not in EXPERIMENTS]
    wide = wide.loc[models, exps]
    if display_names:
        wide = wide.rename(index=MODEL_TITLES, columns=EXPERIMENT_TITLES)
    wide.index.name, wide.columns.name = "Model", None
    return wide


def per_class_table(results: Mapping[str, pd.DataFrame], aggregation: str = "all",
                    experiments: Sequence[str] | None = None) -> pd.DataFrame:
    """Supplementary Table 2 layout: per class and experiment, mean ± 3 SE over tasks.

    With ``aggregation="all"`` (the default, as in the paper's Supp. Table 2) the mean
    and its 3 SE run over every task involving the class: its 14 pairs (base, mask,
    same), or its 14 x 13 valid (pair, background) triplets (diff, batch).  With
    ``"paper"`` the tasks are those the Table 1 aggregation keeps.

    Returns
    -------
    DataFrame
        Columns ``experiment, class, mean, three_se, n_tasks``.
    """
    if not _is_flat(results):
        raise TypeError("results: expected one model's {experiment: DataFrame}")
    experiments = _order_experiments(results) if experiments is None else list(experiments)
    rows = []
    for exp in experiments:
        df = results[exp]
        if "Background" in df.columns:
            df = _valid_backgrounds(df)
            if aggregation == "paper":
                df = df.drop_duplicates(subset=["Location1", "Location2"], keep="first")
        for c in CLASSES:
            if aggregation == "paper" and exp in ("base", "mask") and "Background" not in df.columns:
                sel = df[df["Location1"] == c]
            else:
                sel = df[(df["Location1"] == c) | (df["Location2"] == c)]
            if len(sel):
                mean, se, n = mean_three_se(sel["Accuracy"])
                rows.append({"experiment": exp, "class": c, "mean": mean, "three_se": se, "n_tasks": n})
    return pd.DataFrame(rows, columns=["experiment", "class", "mean", "three_se", "n_tasks"])


# --------------------------------------------------------------------------- figure helpers


def scatter_data(results: Mapping[str, Mapping[str, pd.DataFrame]], modified: Sequence[str] = ("same", "diff"),
                 baseline: str = "base", aggregation: str = "paper") -> pd.DataFrame:
    """Per-class baseline vs modified accuracies, the points of Figure 2.

    Figure 2A is ``modified=("same", "diff")``, Figure 2B ``("mask", "batch")``.  As in
    the paper's notebook, classes without a baseline value are dropped (inner merge), so
    ``"paper"`` gives 14 points per model and experiment (no vacuole).

    Returns
    -------
    DataFrame
        Columns ``model, experiment, class, baseline, accuracy``.
    """
    frames = []
    for model, exps in _check_nested(results).items():
        pc = per_class(exps, aggregation, [baseline, *modified])
        for exp in modified:
            sub = pc[[baseline, exp]].dropna()
            frames.append(pd.DataFrame({"model": model, "experiment": exp, "class": sub.index,
                                        "baseline": sub[baseline].to_numpy(),
                                        "accuracy": sub[exp].to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def drop(results: Mapping[str, Mapping[str, pd.DataFrame]], high: str = "same", low: str = "diff",
         aggregation: str = "paper", interval: str = "3se", n_boot: int = 10_000,
         random_state=None) -> pd.DataFrame:
    """Accuracy drop ``high - low`` per model (default: same minus diff), with an interval.

    The drop is the difference of the two Table 1 means (section 4.2: 0.096, 0.157,
    0.134).  The interval comes from the paired per-class differences over the classes
    present in both experiments: ``"3se"`` gives ``mean ± 3 SE`` of those differences,
    ``"bootstrap"`` a 95 % percentile interval of their mean over resampled classes.

    Parameters
    ----------
    results : mapping
        ``{model: {experiment: DataFrame}}``.
    high, low : str
        Experiment keys.
    aggregation : {"paper", "all"}
    interval : {"3se", "bootstrap"}
    n_boot : int
        Bootstrap resamples.
    random_state : int, Generator or None
        Seeds the bootstrap.

    Returns
    -------
    DataFrame
        Columns ``model, drop, paired_mean, low, high, n_classes``; ``drop`` is the
        difference of the means, ``paired_mean`` the mean of paired differences (they
        agree when both experiments cover the same classes).
    """
    if interval not in ("3se", "bootstrap"):
        raise ValueError(f"interval must be '3se' or 'bootstrap', got {interval!r}")
    rng = np.random.default_rng(random_state)
    rows = []
    for model, exps in _check_nested(results).items():
        pc = per_class(exps, aggregation, [high, low])
        d = (pc[high] - pc[low]).dropna().to_numpy()
        paired, se, n = mean_three_se(d)
        if interval == "3se":
            lo, hi = paired - se, paired + se
        else:
            boots = d[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
            lo, hi = (float(x) for x in np.percentile(boots, [2.5, 97.5]))
        rows.append({"model": model, "drop": float(pc[high].mean() - pc[low].mean()),
                     "paired_mean": paired, "low": lo, "high": hi, "n_classes": n})
    return pd.DataFrame(rows, columns=["model", "drop", "paired_mean", "low", "high", "n_classes"])


def held_out_per_class(df: pd.DataFrame, aggregation: str = "all") -> pd.DataFrame:
    """Supplementary Table 3 layout from :func:`bgrobust.classify.evaluate_pairs_held_out`.

    Returns
    -------
    DataFrame
        Index class, columns ``held_out`` (the protein-held-out split) and ``cv`` (the
        5-fold cross-validation), aggregated per class like :func:`per_class`
        (``"all"`` by default, as Supp. Table 3's 5-fold row matches it).
    """
    for col in ("HeldOutAccuracy", "Accuracy"):
        if col not in df.columns:
            raise ValueError(f"held_out_per_class: missing column {col!r}")
    exp = "batch" if "Background" in df.columns else "held_out"
    held = class_accuracies(df, exp, aggregation, value="HeldOutAccuracy")
    cv = class_accuracies(df, exp, aggregation, value="Accuracy")
    out = pd.DataFrame({"held_out": held, "cv": cv})
    out.index.name = "class"
    return out


def table1_beside(tables_by_source: Mapping[str, pd.DataFrame], digits: int = 3) -> pd.DataFrame:
    """Several tidy Table 1s (e.g. the paper's and ours) in one wide table, model by model.

    Parameters
    ----------
    tables_by_source : mapping of str to DataFrame
        ``{source label: table}``, each with ``model, experiment, mean, three_se``
        (:func:`table1` or :func:`bgrobust.published.table1`).

    Returns
    -------
    DataFrame
        Columns ``Model, source`` and the experiments (paper's names), rows grouped by model in
        the paper's order and by source in the given order.

    Examples
    --------
    >>> t = pd.DataFrame({"model": ["pifia"], "experiment": ["base"], "mean": [0.9], "three_se": [0.01]})
    >>> table1_beside({"paper": t, "ours": t}).columns.tolist()
    ['Model', 'source', 'Baseline']
    """
    frames = []
    for k, (source, df) in enumerate(tables_by_source.items()):
        wide = format_table1(df, digits).reset_index()
        wide.insert(1, "source", source)
        wide["_s"] = k
        frames.append(wide)
    out = pd.concat(frames, ignore_index=True)
    rank = {MODEL_TITLES.get(m, m): i for i, m in enumerate(MODELS)}
    out["_m"] = out["Model"].map(lambda m: rank.get(m, len(rank)))
    return out.sort_values(["_m", "_s"], kind="stable").drop(columns=["_m", "_s"]).reset_index(drop=True)


def supp_table2(results: Mapping[str, Mapping[str, pd.DataFrame]], aggregation: str = "all",
                digits: int = 2) -> pd.DataFrame:
    """Supp. Table 2: per-class accuracy ``"mean ± 3 SE"`` per extractor and setting.

    Returns
    -------
    DataFrame
        Columns ``model, setting`` and one per class (in :data:`~bgrobust.vocabulary.CLASSES`
        order); one row per extractor and experiment.
    """
    frames = []
    for name, res in _check_nested(results).items():
        pc = per_class_table(res, aggregation)
        pc["value"] = [f"{m:.{digits}f} ± {e:.{digits}f}" for m, e in zip(pc["mean"], pc["three_se"])]
        w = pc.pivot(index="experiment", columns="class", values="value")
        w = w.reindex(index=[e for e in EXPERIMENTS if e in w.index], columns=[c for c in CLASSES if c in w.columns])
        w.index = [EXPERIMENT_TITLES[e] for e in w.index]
        w.index.name = "setting"
        w = w.reset_index()
        w.insert(0, "model", MODEL_TITLES.get(name, name))
        frames.append(w)
    return pd.concat(frames, ignore_index=True)


def format_drops(drops: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A :func:`bgrobust.experiments.drop_table` as printed: ``"mean ± 3 SE"`` per setting, the drop
    with its interval, and for remedies the share of the drop removed and the baseline cost.

    Columns other than the table's own (e.g. a ``kind`` column) are kept after ``extractor``.
    """
    own = {"extractor", "drop", "drop_low", "drop_high", "drop_removed", "baseline_cost"} | \
        {e for e in EXPERIMENTS} | {f"{e}_3se" for e in EXPERIMENTS}
    out = drops[["extractor"] + [c for c in drops.columns if c not in own]].copy()
    for e in EXPERIMENTS:
        if e in drops:
            out[EXPERIMENT_TITLES[e]] = [f"{m:.{digits}f} ± {s:.{digits}f}" for m, s in zip(drops[e], drops[f"{e}_3se"])]
    if "drop" in drops:
        out["drop (same − diff)"] = [f"{d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"
                                     for d, lo, hi in zip(drops["drop"], drops["drop_low"], drops["drop_high"])]
    if "drop_removed" in drops:
        out["drop removed"] = [f"{v:.0%}" if pd.notna(v) else "" for v in drops["drop_removed"]]
    if "baseline_cost" in drops:
        out["baseline cost"] = [f"{v:+.{digits}f}" if pd.notna(v) else "" for v in drops["baseline_cost"]]
    return out


def other_class_background(diff: pd.DataFrame) -> pd.DataFrame:
    """The other-class background results of a diff-swap table evaluated on every background.

    For each pair ``(c1, c2)``, the rows whose ``Background`` is ``c1`` or ``c2`` (both centres on
    backgrounds of one class of the pair), averaged over the two backgrounds: one row per pair in
    the pairwise layout (``Location1, Location2, Accuracy, StdDev``), the design that works with two
    classes (:data:`bgrobust.vocabulary.OTHER_CLASS`).

    Examples
    --------
    >>> d = pd.DataFrame({"Location1": ["actin"] * 3, "Location2": ["ER"] * 3,
    ...                   "Background": ["actin", "ER", "Golgi"], "Accuracy": [0.8, 0.6, 0.9], "StdDev": [0.1] * 3})
    >>> other_class_background(d)[["Location1", "Location2", "Accuracy"]].values.tolist()
    [['actin', 'ER', 0.7]]
    """
    own = diff[(diff["Background"] == diff["Location1"]) | (diff["Background"] == diff["Location2"])]
    if own.empty:
        raise ValueError("other_class_background: no row has a background of its own pair; evaluate the diff "
                         "swap with backgrounds='all' on sets made with swap_backgrounds='all'")
    out = own.groupby(["Location1", "Location2"], sort=False)[["Accuracy", "StdDev"]].mean().reset_index()
    return out.round({"Accuracy": 10})


def headroom_share(same, diff, chance: float = 0.5):
    """The drop as a share of the room there was to drop: ``(same - diff) / (same - chance)``.

    A drop of 0.05 from 0.99 and one from 0.60 are not the same loss: the first uses 10 % of
    the room above chance (0.5 for the paper's balanced two-class SVMs), the second 50 %. The
    share is NaN where ``same <= chance`` (no headroom) or an input is NaN; it is 1 when the
    swap brings accuracy down to chance and negative when it rises.

    Parameters
    ----------
    same, diff : float, array-like or Series
        Accuracy with the same-localization swap (the high value) and with the
        different-localization swap (the low value); broadcast together.
    chance : float in [0, 1)
        Accuracy of guessing (0.5 for two balanced classes).

    Returns
    -------
    float, ndarray or Series
        The share, shaped like the inputs (a Series keeps its index).

    Examples
    --------
    >>> round(headroom_share(0.99, 0.94), 3), round(headroom_share(0.6, 0.55), 3)
    (0.102, 0.5)
    >>> headroom_share([0.5, 0.8], [0.4, 0.65]).tolist()
    [nan, 0.5]
    """
    if not (isinstance(chance, (int, float, np.floating)) and not isinstance(chance, bool) and 0 <= chance < 1):
        raise ValueError(f"headroom_share: chance must be a number in [0, 1), got {chance!r}")
    index = same.index if isinstance(same, pd.Series) else diff.index if isinstance(diff, pd.Series) else None
    s = np.asarray(same, dtype=float)
    d = np.asarray(diff, dtype=float)
    room = s - chance
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(room > 0, (s - d) / np.where(room > 0, room, 1.0), np.nan)
    if index is not None:
        return pd.Series(share, index=index, name="headroom_share")
    return float(share) if share.ndim == 0 else share


def headroom(results: Mapping[str, Mapping[str, pd.DataFrame]], high: str = "same", low: str = "diff",
             aggregation: str = "paper", chance: float = 0.5) -> pd.DataFrame:
    """Per model: the Table 1 means of ``high`` and ``low``, the drop, and the drop as a share of the headroom.

    The column to put beside :func:`drop`: ``share = (high - low) / (high - chance)`` of the
    class means (:func:`headroom_share`), and ``share_per_class``, the mean of the per-class
    shares over the classes with headroom.

    Returns
    -------
    DataFrame
        Index model; columns ``high, low, drop, headroom, share, share_per_class``.

    Examples
    --------
    >>> import pandas as pd
    >>> def res(acc):
    ...     return pd.DataFrame({"Location1": ["ER", "actin"], "Location2": ["actin", "ER"],
    ...                          "Accuracy": acc, "StdDev": 0.0})
    >>> t = headroom({"pifia": {"same": res([0.9, 0.9]), "diff": res([0.8, 0.8])}})
    >>> t.loc["pifia", ["drop", "headroom", "share"]].round(3).tolist()
    [0.1, 0.4, 0.25]
    """
    rows = {}
    for model, exps in _check_nested(results).items():
        pc = per_class(exps, aggregation, [high, low])
        h, lo = float(pc[high].mean()), float(pc[low].mean())
        per = headroom_share(pc[high], pc[low], chance)
        rows[model] = {"high": h, "low": lo, "drop": h - lo, "headroom": h - chance,
                       "share": headroom_share(h, lo, chance), "share_per_class": float(per.mean())}
    out = pd.DataFrame.from_dict(rows, orient="index",
                                 columns=["high", "low", "drop", "headroom", "share", "share_per_class"])
    out.index.name = "model"
    return out
