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
from .constraints import Integer, check_value
from .published import DATASET
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


#: Column of :func:`table1_beside` with ``headroom=True``.
HEADROOM_COLUMN = "drop / headroom"


def table1_beside(tables_by_source: Mapping[str, pd.DataFrame], digits: int = 3, *,
                  headroom: bool = False) -> pd.DataFrame:
    """Several tidy Table 1s (e.g. the paper's and ours) in one wide table, model by model.

    Parameters
    ----------
    tables_by_source : mapping of str to DataFrame
        ``{source label: table}``, each with ``model, experiment, mean, three_se``
        (:func:`table1` or :func:`bgrobust.published.table1`).
    digits : int
    headroom : bool
        Add the column :data:`HEADROOM_COLUMN`: the different-localization drop as a share of
        the room above chance, ``(same - diff) / (same - 0.5)`` of the row's means
        (:func:`headroom_share`; empty where a row lacks either setting).

    Returns
    -------
    DataFrame
        Columns ``Model, source`` and the experiments (paper's names), rows grouped by model in
        the paper's order and by source in the given order.

    Examples
    --------
    >>> t = pd.DataFrame({"model": ["pifia"] * 2, "experiment": ["same", "diff"], "mean": [0.9, 0.8],
    ...                   "three_se": [0.01, 0.01]})
    >>> table1_beside({"paper": t, "ours": t}).columns.tolist()
    ['Model', 'source', 'Diff Loc Swap', 'Same Loc Swap']
    >>> table1_beside({"ours": t}, headroom=True)[HEADROOM_COLUMN].tolist()
    ['0.250']
    """
    frames = []
    for k, (source, df) in enumerate(tables_by_source.items()):
        wide = format_table1(df, digits).reset_index()
        wide.insert(1, "source", source)
        if headroom:
            means = df.pivot_table(index="model", columns="experiment", values="mean", aggfunc="first")
            share = {}
            if {"same", "diff"} <= set(means.columns):
                for model, row in means.iterrows():
                    value = headroom_share(float(row["same"]), float(row["diff"]))
                    share[MODEL_TITLES.get(model, model)] = "" if np.isnan(value) else f"{value:.{digits}f}"
            wide[HEADROOM_COLUMN] = wide["Model"].map(share).fillna("")
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


# --------------------------------------------------------------------------- chapter tables
#
# The tables the chapters show, built from the objects the chapters hold (a screen, a
# dataset, trained models, layer accuracies, setting sets, a drop table).  Each returns
# a DataFrame (or, for the glued facts, a dict keyed by glue name) and draws nothing.


def _check_columns(df, columns, where: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; found {list(map(str, df.columns))}")


def _check_keys(mapping, keys, where: str) -> None:
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise KeyError(f"{where}: missing key(s) {missing}")


def cells_per_field(crops_table: pd.DataFrame, n_fields: int) -> pd.Series:
    """Number of cropped cells in each field of view, fields without crops counted as 0.

    Parameters
    ----------
    crops_table : DataFrame
        A crop table with a ``field`` column (``Dataset.crops.table``).
    n_fields : int
        Fields of the screen (``Screen.n_fields``); the index runs over ``range(n_fields)``.

    Examples
    --------
    >>> t = pd.DataFrame({"field": [0, 0, 2]})
    >>> cells_per_field(t, 4).tolist()
    [2, 0, 1, 0]
    """
    check_value(n_fields, Integer(1), "cells_per_field: n_fields")
    _check_columns(crops_table, ["field"], "cells_per_field: crops_table")
    return crops_table.groupby("field").size().reindex(range(n_fields), fill_value=0)


def screen_facts(strains: pd.DataFrame, fields: pd.DataFrame, field_shape, crops_table: pd.DataFrame) -> dict:
    """The numbers chapter 1 states about a screen, keyed by their glue names.

    Parameters
    ----------
    strains : DataFrame
        ``Screen.strains`` (columns ``kind``, ``plate`` and, for a synthetic screen, ``mixing``).
    fields : DataFrame
        ``Screen.fields`` (one row per field, column ``strain``).
    field_shape : tuple of int
        ``(channels, height, width)`` of one field.
    crops_table : DataFrame
        ``Dataset.crops.table`` (column ``field``).

    Returns
    -------
    dict
        ``n_strains, n_single, n_multi, n_within, n_between, n_plates, n_fields,
        fields_per_strain, field_size, cells_per_field_range``.

    Examples
    --------
    >>> strains = pd.DataFrame({"strain": [0, 1], "kind": ["single", "multi"], "plate": [1, 1],
    ...                         "mixing": [None, "within_cell"]})
    >>> fields = pd.DataFrame({"strain": [0, 0, 1, 1]})
    >>> facts = screen_facts(strains, fields, (3, 256, 320), pd.DataFrame({"field": [0, 0, 3]}))
    >>> facts["n_multi"], facts["n_within"], facts["field_size"], facts["cells_per_field_range"]
    (1, 1, '256 x 320', '0 to 2')
    """
    _check_columns(strains, ["kind", "plate"], "screen_facts: strains")
    _check_columns(fields, ["strain"], "screen_facts: fields")
    if len(field_shape) != 3:
        raise ValueError(f"screen_facts: field_shape must be (channels, height, width), got {field_shape!r}")
    kinds = strains["kind"].value_counts()
    mixing = strains["mixing"].value_counts() if "mixing" in strains else pd.Series(dtype=int)
    per_field = cells_per_field(crops_table, len(fields))
    return {
        "n_strains": len(strains),
        "n_single": int(kinds.get("single", 0)),
        "n_multi": int(kinds.get("multi", 0)),
        "n_within": int(mixing.get("within_cell", 0)),
        "n_between": int(mixing.get("between_cells", 0)),
        "n_plates": strains["plate"].nunique(),
        "n_fields": len(fields),
        "fields_per_strain": int(fields.groupby("strain").size().median()),
        "field_size": f"{field_shape[1]} x {field_shape[2]}",
        "cells_per_field_range": f"{per_field.min()} to {per_field.max()}",
    }


#: The crop statistics chapter 1 shows for real beside synthetic crops
#: (:func:`bgrobust.synth.realism.crop_statistics` names).
REALISM_STATISTICS: tuple[str, ...] = (
    "area", "eq_diameter", "other_cells", "gfp_skew_in", "gfp_kurt_in", "gfp_bg_cell_ratio", "gfp_snr",
    "gfp_texture", "gfp_edge", "marker_bg_cell_ratio", "marker_snr", "marker_texture", "marker_edge")


def realism_statistics(reports: Mapping, statistics: Sequence[str] = REALISM_STATISTICS) -> pd.DataFrame:
    """Real beside synthetic crop statistics, ``median [p10, p90]``, one column block per class set.

    Parameters
    ----------
    reports : mapping
        ``{classes: RealismReport}`` from :func:`bgrobust.synth.realism.real_vs_synthetic`
        (``classes`` a tuple of class names).
    statistics : sequence of str
        The rows (statistics) to show, in order.

    Returns
    -------
    DataFrame
        Index statistic; columns ``(" + ".join(classes), set)``.

    Examples
    --------
    >>> class R:  # anything with RealismReport.table
    ...     def table(self, statistics):
    ...         return pd.DataFrame({"real": ["1"], "synthetic": ["2"]}, index=list(statistics))
    >>> realism_statistics({("cytoplasm", "nucleus"): R()}, ["area"]).columns.tolist()
    [('cytoplasm + nucleus', 'real'), ('cytoplasm + nucleus', 'synthetic')]
    """
    if not isinstance(reports, Mapping) or not reports:
        raise ValueError("realism_statistics: reports must be a non-empty mapping {classes: RealismReport}")
    return pd.concat({" + ".join(c): r.table(list(statistics)) for c, r in reports.items()}, axis=1)


def realism_accuracies(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The two-sample accuracies of :func:`bgrobust.synth.realism.real_vs_synthetic`, rounded.

    Examples
    --------
    >>> s = pd.DataFrame({"classes": ["x"], "features": ["pixels"], "accuracy": [0.51234], "se": [0.0312]})
    >>> realism_accuracies(s).accuracy.tolist()
    [0.512]
    """
    _check_columns(summary, ["accuracy", "se"], "realism_accuracies: summary")
    return summary.assign(accuracy=summary.accuracy.round(digits), se=summary.se.round(digits))


def segmentation_summary(quality: pd.DataFrame) -> pd.DataFrame:
    """Segmentation against the truth over all fields: counts, precision, recall, F1, IoU.

    Parameters
    ----------
    quality : DataFrame
        ``Dataset.segmentation_quality``: one row per field with ``n_true, n_pred,
        n_matched, mean_iou, centroid_error`` (empty for a screen without truth).

    Returns
    -------
    DataFrame
        Columns ``metric, value``; a single "no truth" row when ``quality`` is empty.

    Examples
    --------
    >>> q = pd.DataFrame({"n_true": [10], "n_pred": [10], "n_matched": [9], "mean_iou": [0.8],
    ...                   "centroid_error": [1.0]})
    >>> float(segmentation_summary(q).set_index("metric").value["object F1"])
    0.9
    """
    if not isinstance(quality, pd.DataFrame):
        raise TypeError(f"segmentation_summary: expected a DataFrame, got {type(quality).__name__}")
    if not len(quality):
        return pd.DataFrame({"metric": ["no truth for a real screen"], "value": [np.nan]})
    _check_columns(quality, ["n_true", "n_pred", "n_matched", "mean_iou", "centroid_error"],
                   "segmentation_summary: quality")
    q = quality
    matched, n_true, n_pred = q.n_matched.sum(), q.n_true.sum(), q.n_pred.sum()
    return pd.DataFrame({
        "metric": ["true cells", "segmented objects", "matched at IoU > 0.5", "precision", "recall",
                   "object F1", "mean IoU of matches", "centroid error (px)"],
        "value": [n_true, n_pred, matched, matched / n_pred, matched / n_true,
                  2 * matched / (n_true + n_pred),
                  np.average(q.mean_iou.fillna(0), weights=q.n_matched),
                  np.average(q.centroid_error.fillna(0), weights=q.n_matched)],
    })


#: The steps of chapter 1's crop filter table: ``(report key, description)``.
FILTER_STEPS: tuple[tuple[str, str], ...] = (
    ("n_segmented", "segmented cells"),
    ("n_dropped_at_border", "window leaves the field (dropped)"),
    ("n_crops", "crops"),
    ("n_low_gfp", "mean GFP below the 5th percentile"),
    ("n_mask_too_small", "centre mask < 5 % of the crop"),
    ("n_mask_too_large", "centre mask > 95 % of the crop"),
    ("n_valid", "valid crops"),
)


def filter_steps(report: Mapping) -> pd.DataFrame:
    """From segmented cells to valid crops: the count after each step of the paper's filters.

    Parameters
    ----------
    report : mapping
        ``Dataset.report`` (the keys of :data:`FILTER_STEPS`).

    Examples
    --------
    >>> r = dict(n_segmented=10, n_dropped_at_border=1, n_crops=9, n_low_gfp=1, n_mask_too_small=0,
    ...          n_mask_too_large=1, n_valid=7)
    >>> filter_steps(r)["count"].tolist()
    [10, 1, 9, 1, 0, 1, 7]
    """
    _check_keys(report, [k for k, _ in FILTER_STEPS], "filter_steps: report")
    return pd.DataFrame({"step": [s for _, s in FILTER_STEPS], "count": [report[k] for k, _ in FILTER_STEPS]})


def dataset_beside_paper(strains: pd.DataFrame, fields: pd.DataFrame, params, n_valid: int, *,
                         label: str = "this run") -> pd.DataFrame:
    """Chapter 1's summary: the paper's screen and protocol (:data:`bgrobust.published.DATASET`)
    beside this run's.

    Parameters
    ----------
    strains, fields : DataFrame
        ``Screen.strains`` (column ``localization``) and ``Screen.fields`` (column ``strain``).
    params : bgrobust.dataset.DatasetParams
        The dataset parameters of the run.
    n_valid : int
        Valid crops of the run.
    label : str
        Header of this run's column.

    Returns
    -------
    DataFrame
        Columns ``quantity, paper (published), <label>``.

    Examples
    --------
    >>> from bgrobust.dataset import DatasetParams
    >>> s = pd.DataFrame({"localization": ["actin", "ER"]})
    >>> t = dataset_beside_paper(s, pd.DataFrame({"strain": [0, 0, 1, 1]}), DatasetParams(), 120)
    >>> t.set_index("quantity").loc["strains"].tolist()
    [4049, 2]
    """
    _check_columns(strains, ["localization"], "dataset_beside_paper: strains")
    _check_columns(fields, ["strain"], "dataset_beside_paper: fields")
    p, (lo, hi) = params, DATASET["mask_fraction_range"]
    return pd.DataFrame([
        ("strains", DATASET["strains"], len(strains)),
        ("fields of view per strain", DATASET["fields_per_strain"], int(fields.groupby("strain").size().median())),
        ("localization classes", DATASET["classes"], int(strains.localization.nunique())),
        ("crop size (px)", DATASET["crop_size"], p.crop_size),
        ("segmentation", DATASET["segmentation"], "nuclear-seeded watershed (scikit-image)"),
        ("GFP filter percentile", DATASET["gfp_filter_percentile"], p.gfp_percentile),
        ("mask coverage kept (%)", f"{100 * lo:.0f}-{100 * hi:.0f}",
         f"{100 * p.min_mask_fraction:.0f}-{100 * p.max_mask_fraction:.0f}"),
        ("cell-free stride / distance (px)", f"{DATASET['cellfree_stride']} / {DATASET['cellfree_min_distance']}",
         f"{p.cellfree_stride} / {p.cellfree_min_distance:.0f}"),
        ("valid crops", f"{DATASET['cells_multinomial_training'] / 1e6:.2f} million (single-localized, LR data)",
         n_valid),
    ], columns=["quantity", "paper (published)", label])


#: What each of the paper's models is trained to do (chapter 2's training table).
MODEL_OBJECTIVES: dict[str, str] = {"pifia": "protein identity (CE)", "pci": "paired inpainting (MSE)",
                                    "deeploc": "localization (CE)"}


def training_table(trained: Mapping) -> pd.DataFrame:
    """One row per trained model: objective, width, size, data, steps, loss at start and end, time.

    Parameters
    ----------
    trained : mapping
        ``{model key: TrainResult}`` (:func:`bgrobust.train.train_models`); each result has
        ``history`` (columns ``step, loss``), ``params`` (``width, epochs``), ``model``,
        ``n_train`` and ``seconds``.

    Returns
    -------
    DataFrame
        The losses are the means over the first and the last 10 % of the steps;
        ``last epoch change`` is the mean loss of the last epoch relative to the epoch before
        (``-0.05``: 5 % lower; NaN with one epoch or no ``epoch`` column): near 0 where the
        training has levelled off, clearly negative where it was stopped still improving.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> import torch
    >>> res = NS(history=pd.DataFrame({"step": [1, 2], "loss": [2.0, 1.0]}), params=NS(width=0.5, epochs=1),
    ...          model=torch.nn.Linear(2, 3), n_train=100, seconds=1.23)
    >>> training_table({"pci": res})[["model", "parameters", "loss first 10%", "loss last 10%"]].values.tolist()
    [['PCI', 9, 2.0, 1.0]]
    """
    if not isinstance(trained, Mapping) or not trained:
        raise ValueError("training_table: trained must be a non-empty mapping {model: TrainResult}")
    rows = []
    for name, res in trained.items():
        h = res.history
        _check_columns(h, ["step", "loss"], f"training_table: {name}.history")
        k = max(1, len(h) // 10)
        by_epoch = h.groupby("epoch").loss.mean() if "epoch" in h.columns else pd.Series(dtype=float)
        change = float(by_epoch.iloc[-1] / by_epoch.iloc[-2] - 1) if len(by_epoch) > 1 else float("nan")
        rows.append({"model": MODEL_TITLES.get(name, name), "objective": MODEL_OBJECTIVES.get(name, ""),
                     "width": res.params.width, "parameters": sum(p.numel() for p in res.model.parameters()),
                     "training crops": res.n_train, "epochs": res.params.epochs, "steps": int(h.step.max()),
                     "loss first 10%": round(h.loss.iloc[:k].mean(), 4),
                     "loss last 10%": round(h.loss.iloc[-k:].mean(), 4),
                     "last epoch change": round(change, 3),
                     "seconds": round(res.seconds, 1)})
    return pd.DataFrame(rows)


#: The columns of Supp. Table 1, in network order (:data:`bgrobust.layers.TABLE_LAYERS`).
LAYER_COLUMNS: tuple[str, ...] = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "conv8",
                                  "final")
_LAYER_ACC_COLUMNS = ("model", "variant", "pooling", "column", "accuracy")


def supp_table1_beside(layer_acc: pd.DataFrame, published: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Supp. Table 1: per model, the published row and one row per (variant, pooling) of ours.

    Parameters
    ----------
    layer_acc : DataFrame
        Our accuracies, columns ``model, variant, pooling, column, accuracy`` (``column`` a
        Supp. Table 1 column, :data:`LAYER_COLUMNS`).
    published : DataFrame
        :func:`bgrobust.published.supp_table1` (``model, layer, accuracy``).
    digits : int
        Our accuracies are rounded to this.

    Returns
    -------
    DataFrame
        Columns ``model, source`` (``"published (paper)"`` or ``"ours, <variant>,
        <pooling>-pooled"``) and :data:`LAYER_COLUMNS`; NaN where a model lacks a layer.

    Examples
    --------
    >>> ours = pd.DataFrame({"model": ["pci"], "variant": ["trained"], "pooling": ["mean"],
    ...                      "column": ["conv4"], "accuracy": [0.812345]})
    >>> pub = pd.DataFrame({"model": ["pci"], "layer": ["conv4"], "accuracy": [0.9]})
    >>> supp_table1_beside(ours, pub)[["source", "conv4"]].values.tolist()
    [['published (paper)', 0.9], ['ours, trained, mean-pooled', 0.8123]]
    """
    check_value(digits, Integer(0), "supp_table1_beside: digits")
    _check_columns(layer_acc, _LAYER_ACC_COLUMNS, "supp_table1_beside: layer_acc")
    _check_columns(published, ["model", "layer", "accuracy"], "supp_table1_beside: published")
    rows = []
    models = [m for m in MODELS if m in set(layer_acc.model)] + \
        [m for m in dict.fromkeys(layer_acc.model) if m not in MODELS]
    for name in models:
        title = MODEL_TITLES.get(name, name)
        p = published[published.model == name].set_index("layer").accuracy
        rows.append({"model": title, "source": "published (paper)", **p.to_dict()})
        for (variant, pool), g in layer_acc[layer_acc.model == name].groupby(["variant", "pooling"], sort=False):
            rows.append({"model": title, "source": f"ours, {variant}, {pool}-pooled",
                         **g.set_index("column").accuracy.round(digits).to_dict()})
    return pd.DataFrame(rows).reindex(columns=["model", "source", *LAYER_COLUMNS])


def layer_summary(layer_acc: pd.DataFrame, published: pd.DataFrame, best_layers: Mapping[str, str],
                  pooling: str, digits: int = 3) -> pd.DataFrame:
    """Per model: the paper's layer, our accuracy there and our best layer, beside the untrained
    copy and the published value.

    Parameters
    ----------
    layer_acc : DataFrame
        As for :func:`supp_table1_beside`; needs a ``"trained"`` row at ``pooling`` and an
        ``"untrained"`` row for each model's paper layer.
    published : DataFrame
        :func:`bgrobust.published.supp_table1`.
    best_layers : mapping
        ``{model: column}``, the paper's chosen layers (:data:`bgrobust.published.BEST_LAYERS`).
    pooling : str
        The pooling of the trained rows compared.
    digits : int
        Our accuracies are rounded to this.

    Returns
    -------
    DataFrame
        Columns ``model, paper's layer, ours at paper's layer (<pooling>), our best layer,
        our best accuracy, untrained at paper's layer, published at paper's layer``.

    Examples
    --------
    >>> ours = pd.DataFrame({"model": ["pci"] * 3, "variant": ["trained", "trained", "untrained"],
    ...                      "pooling": ["mean"] * 3, "column": ["conv3", "conv4", "conv4"],
    ...                      "accuracy": [0.9, 0.8, 0.7]})
    >>> pub = pd.DataFrame({"model": ["pci"], "layer": ["conv4"], "accuracy": [0.95]})
    >>> [str(v) if isinstance(v, str) else float(v)
    ...  for v in layer_summary(ours, pub, {"pci": "conv4"}, "mean").iloc[0]]
    ['PCI', 'conv4', 0.8, 'conv3', 0.9, 0.7, 0.95]
    """
    check_value(digits, Integer(0), "layer_summary: digits")
    _check_columns(layer_acc, _LAYER_ACC_COLUMNS, "layer_summary: layer_acc")
    _check_columns(published, ["model", "layer", "accuracy"], "layer_summary: published")
    rows = []
    for name in [m for m in MODELS if m in set(layer_acc.model)]:
        mine = layer_acc[layer_acc.model == name]
        g = mine[(mine.variant == "trained") & (mine.pooling == pooling)]
        u = mine[mine.variant == "untrained"]
        if not len(g):
            raise ValueError(f"layer_summary: no trained {pooling!r}-pooled accuracies for {name!r}")
        _check_keys(best_layers, [name], "layer_summary: best_layers")
        best, paper_col = g.loc[g.accuracy.idxmax()], best_layers[name]
        pub = published[(published.model == name) & (published.layer == paper_col)].accuracy
        rows.append({"model": MODEL_TITLES.get(name, name), "paper's layer": paper_col,
                     f"ours at paper's layer ({pooling})": round(g.set_index("column").accuracy[paper_col], digits),
                     "our best layer": best.column, "our best accuracy": round(best.accuracy, digits),
                     "untrained at paper's layer": round(u.set_index("column").accuracy[paper_col], digits),
                     "published at paper's layer": pub.iloc[0] if len(pub) else np.nan})
    return pd.DataFrame(rows)


def settings_overview(sets: pd.DataFrame) -> pd.DataFrame:
    """Per setting (in the paper's order): number of sets, crops, the smallest set and short sets.

    Parameters
    ----------
    sets : DataFrame
        ``SettingSets.sets``: one row per set with ``setting``, ``set``, ``n`` and ``shortfall``.

    Examples
    --------
    >>> s = pd.DataFrame({"setting": ["base", "base", "diff"], "set": ["a", "b", "c"], "n": [4, 3, 4],
    ...                   "shortfall": [False, True, False]})
    >>> settings_overview(s)[["setting", "name", "sets", "crops", "short_sets"]].values.tolist()[:2]
    [['base', 'Baseline', 2, 7, 1], ['diff', 'Diff Loc Swap', 1, 4, 0]]
    """
    _check_columns(sets, ["setting", "set", "n", "shortfall"], "settings_overview: sets")
    overview = (sets.groupby("setting", sort=False)
                .agg(sets=("set", "size"), crops=("n", "sum"), min_per_set=("n", "min"),
                     short_sets=("shortfall", "sum"))
                .reindex([e for e in EXPERIMENTS if e in set(sets.setting)]).reset_index())
    overview.insert(1, "name", overview.setting.map(EXPERIMENT_TITLES))
    return overview


def trained_vs_untrained(drops: pd.DataFrame, titles: Mapping[str, str], *,
                         untrained: str = "{}, untrained") -> pd.DataFrame:
    """Each architecture trained beside its untrained copy: baseline, diff swap and the drop.

    Parameters
    ----------
    drops : DataFrame
        A drop table (``ExperimentResults.drops``) with columns ``extractor, base, diff, drop``.
    titles : mapping
        ``{model key: extractor name of the trained model}``.
    untrained : str
        The untrained copy's extractor name, formatted with the trained one's.

    Examples
    --------
    >>> d = pd.DataFrame({"extractor": ["PCI", "PCI, untrained"], "base": [0.9, 0.8],
    ...                   "diff": [0.7, 0.75], "drop": [0.2, 0.05]})
    >>> trained_vs_untrained(d, {"pci": "PCI"}).iloc[0, 1:].tolist()
    [0.9, 0.8, 0.7, 0.75, 0.2, 0.05]
    """
    _check_columns(drops, ["extractor", "base", "diff", "drop"], "trained_vs_untrained: drops")
    t = drops.set_index("extractor")
    rows = []
    for title in titles.values():
        other = untrained.format(title)
        missing = [n for n in (title, other) if n not in t.index]
        if missing:
            raise KeyError(f"trained_vs_untrained: no extractor(s) {missing} in the drop table")
        a, b = t.loc[title], t.loc[other]
        rows.append({"model": title, "baseline, trained": a.base, "baseline, untrained": b.base,
                     "diff swap, trained": a["diff"], "diff swap, untrained": b["diff"],
                     "drop, trained": a["drop"], "drop, untrained": b["drop"]})
    return pd.DataFrame(rows)


def fold_difference(higher: pd.DataFrame, lower: pd.DataFrame, n_splits: int) -> dict:
    """Mean over class pairs of ``higher - lower`` accuracy with a 3 SE interval from the folds.

    With two or three classes there are too few classes for the paired interval over classes
    (:func:`bgrobust.claims.paired_difference`); the uncertainty then comes from the
    cross-validation folds: ``SE = sqrt(mean over pairs of (sd_h**2 + sd_l**2) / n_splits / n_pairs)``,
    treating the two experiments' folds as independent.

    Examples
    --------
    >>> h = pd.DataFrame({"Location1": ["a"], "Location2": ["b"], "Accuracy": [0.9], "StdDev": [0.05]})
    >>> l = h.assign(Accuracy=[0.7])
    >>> d = fold_difference(h, l, 5)
    >>> round(d["mean"], 3), round(d["high"] - d["mean"], 3)
    (0.2, 0.095)
    """
    m = higher.merge(lower, on=["Location1", "Location2"], suffixes=("_h", "_l"))
    if m.empty:
        raise ValueError("fold_difference: the two tables share no class pair")
    diff = float((m["Accuracy_h"] - m["Accuracy_l"]).mean())
    se = float(np.sqrt(((m["StdDev_h"] ** 2 + m["StdDev_l"] ** 2) / n_splits).mean() / len(m)))
    return {"mean": diff, "low": diff - 3 * se, "high": diff + 3 * se, "se": se, "n_pairs": len(m),
            "interval": "folds"}


def two_class_summary(results: Mapping[str, Mapping[str, pd.DataFrame]], n_splits: int = 5,
                      margin: float = 0.02) -> pd.DataFrame:
    """The other-class background design per extractor (few classes; chapter 8).

    Parameters
    ----------
    results : mapping
        ``{extractor: {experiment: DataFrame}}`` with ``base``, ``same`` and ``other``
        (:func:`bgrobust.experiments.run_experiments` with ``backgrounds="all"``), optionally ``mask``.
    n_splits : int
        Folds of the SVM protocol (for :func:`fold_difference`).
    margin : float
        The paper's artefact check: ``|same - base| < margin`` (section 4.1).

    Returns
    -------
    DataFrame
        One row per extractor: mean accuracy over the class pairs of each experiment, ``drop``
        (same - other) with ``drop_low``/``drop_high`` (3 SE from the folds), ``artefact_ok``.

    Examples
    --------
    >>> def r(a):
    ...     return pd.DataFrame({"Location1": ["a"], "Location2": ["b"], "Accuracy": [a], "StdDev": [0.0]})
    >>> t = two_class_summary({"m": {"base": r(0.9), "same": r(0.91), "other": r(0.7)}})
    >>> t[["same", "other", "drop", "artefact_ok"]].round(2).values.tolist()
    [[0.91, 0.7, 0.21, True]]
    """
    from .vocabulary import OTHER_CLASS

    rows = []
    for name, res in _check_nested(results).items():
        _check_keys(res, ["base", "same", OTHER_CLASS], f"two_class_summary: {name}")
        row = {"extractor": name, **{e: float(res[e]["Accuracy"].mean())
                                     for e in ("base", "same", OTHER_CLASS, "mask") if e in res}}
        d = fold_difference(res["same"], res[OTHER_CLASS], n_splits)
        row.update(drop=d["mean"], drop_low=d["low"], drop_high=d["high"],
                   artefact_ok=bool(abs(row["same"] - row["base"]) < margin))
        rows.append(row)
    return pd.DataFrame(rows)


def format_two_class(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """:func:`two_class_summary` as printed: the paper's setting names, the drop with its interval."""
    from .vocabulary import OTHER_CLASS, OTHER_CLASS_TITLE

    names = {**EXPERIMENT_TITLES, OTHER_CLASS: OTHER_CLASS_TITLE}
    out = summary[["extractor"]].copy()
    for e in ("base", "same", OTHER_CLASS, "mask"):
        if e in summary:
            out[names[e]] = summary[e].round(digits)
    out["drop (same − other)"] = [f"{d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"
                                  for d, lo, hi in zip(summary["drop"], summary["drop_low"], summary["drop_high"])]
    out["|same − base| < 0.02"] = summary["artefact_ok"]
    return out
