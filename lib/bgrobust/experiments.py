"""The experiment runner: settings -> features -> the paper's SVM grid -> one result object.

Every chapter that runs the five experiments, and :func:`bgrobust.robustness.robustness_report`,
calls :func:`run_experiments`:

1. the sets of the settings (:func:`bgrobust.settings.generate_settings`) are given;
2. each extractor (anything :func:`bgrobust.extractors.as_extractor` adapts) maps every crop of
   every set to a feature vector (:func:`setting_features`);
3. the paper's pairwise linear SVMs (:mod:`bgrobust.classify`) run per experiment: one result per
   class pair for base, same and mask, per pair and background class for diff and batch;
4. the results come back as one :class:`ExperimentResults`: per-pair tables in the paper's CSV
   layout, Table 1, the per-class data behind Fig. 2, the claims, the drop table.

A setting the sets do not contain (e.g. the cell-free swap of a dataset without cell-free
crops) is skipped and named in ``ExperimentResults.skipped``; nothing is filled in for it.

Examples
--------
>>> # sets = generate_settings(dataset, 40)
>>> # res = run_experiments(sets, {"mean": lambda x: x.mean(axis=(2, 3))})
>>> # res.table1(), res.claims(), res.write("results/")
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .classify import SVMProtocol, evaluate_pairs, evaluate_pairs_held_out, evaluate_triplets
from .extractors import Extractor, as_extractor
from .tables import other_class_background
from .vocabulary import CHANNELS, CLASSES, EXPERIMENTS, OTHER_CLASS, PAIR_EXPERIMENTS, TRIPLET_EXPERIMENTS

__all__ = ["ExperimentResults", "run_experiments", "setting_features", "setting_crop_ids", "set_groups",
           "held_out_triplets", "drop_table"]


# ------------------------------------------------------------------------------ features
def setting_crop_ids(sets) -> np.ndarray:
    """One id per crop of a :class:`~bgrobust.settings.SettingSets`: ``setting/centre/background/k``.

    ``k`` is the crop's position inside its set. These are the ids
    :class:`~bgrobust.extractors.PrecomputedFeatures` looks features up by.
    """
    t = sets.table
    k = t.groupby("set").cumcount().to_numpy()
    return np.array([f"{s}/{c}/{b}/{i}" for s, c, b, i in
                     zip(t["setting"], t["centre_class"], t["background_class"], k)], dtype=object)


def _channels(sets) -> tuple[str, ...]:
    return tuple(getattr(sets, "channels", None) or (getattr(sets, "meta", {}) or {}).get("channels") or CHANNELS)


def setting_features(sets, extractor, *, batch_size: int = 4096, progress: bool = True) -> dict:
    """Features of every set of a :class:`~bgrobust.settings.SettingSets`.

    The extractor sees all crops in large batches (so a model's own batching and caching
    apply), with their centre masks and ids when it needs them; the rows are split back
    into sets.

    Returns
    -------
    dict of (setting, centre, background) to ndarray (n, D)
    """
    ex = as_extractor(extractor).with_channels(_channels(sets))
    ids = setting_crop_ids(sets) if ex.needs_ids else None
    n = len(sets.images)
    chunks = []
    for start in tqdm(range(0, n, batch_size), desc=f"{ex.name} features", unit="batch", disable=not progress):
        stop = min(start + batch_size, n)
        chunks.append(ex(np.asarray(sets.images[start:stop]),
                         np.asarray(sets.masks[start:stop]) if ex.needs_masks else None,
                         ids[start:stop] if ids is not None else None))
    feats = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
    return {(r.setting, r.centre_class, r.background_class): feats[int(r.start):int(r.stop)]
            for r in sets.sets.itertuples()}


# ------------------------------------------------------------------------------ the SVM grid
def _triplets_available(feats, protocol, classes, n_jobs, progress, cache_dir,
                        backgrounds: str = "valid") -> pd.DataFrame:
    """Triplets for the backgrounds that have crops for both centres (all of them on a full screen).

    ``backgrounds="all"`` also evaluates each pair on the backgrounds of its own two classes
    (the other-class background design; the sets need ``swap_backgrounds="all"``).
    """
    if backgrounds == "all":
        missing = [(c, b) for c in classes for b in classes if (c, b) not in feats]
        if missing:
            raise ValueError(f"backgrounds='all' needs sets for every (centre, background) including b == c; "
                             f"missing {missing[:4]} (generate the settings with swap_backgrounds='all')")
        return evaluate_triplets(feats, protocol, classes=classes, backgrounds="all", n_jobs=n_jobs,
                                 progress=progress, cache_dir=cache_dir)
    backgrounds = [b for b in classes if all((c, b) in feats for c in classes if c != b)]
    if len(backgrounds) == len(classes):
        return evaluate_triplets(feats, protocol, classes=classes, n_jobs=n_jobs, progress=progress,
                                 cache_dir=cache_dir)
    rows = []
    for b in classes:
        centres = [c for c in classes if c != b and (c, b) in feats]
        if len(centres) < 2:
            continue
        rows.append(evaluate_triplets({(c, b): feats[(c, b)] for c in centres}, protocol, classes=centres,
                                      background_classes=[b], n_jobs=n_jobs, progress=False, cache_dir=cache_dir))
    if not rows:
        return pd.DataFrame(columns=["Location1", "Location2", "Background", "Accuracy", "StdDev"])
    df = pd.concat(rows, ignore_index=True)
    order = {c: i for i, c in enumerate(classes)}  # the paper's file order: pair by pair, backgrounds inside
    df["_k"] = [(order[a], order[b], order[g]) for a, b, g in zip(df.Location1, df.Location2, df.Background)]
    return df.sort_values("_k").drop(columns="_k").reset_index(drop=True)


def set_groups(sets) -> dict:
    """``{(centre, background): the centre protein of every crop}`` of the sets (for protein-held-out splits)."""
    return {(r.centre_class, r.background_class): sets.table["centre_strain"].iloc[int(r.start):int(r.stop)].to_numpy()
            for r in sets.sets.itertuples()}


def _grid(features: Mapping, protocol: SVMProtocol, experiments, classes, n_jobs, progress,
          cache_dir, held_out=None, groups=None, backgrounds: str = "valid") -> dict[str, pd.DataFrame]:
    out = {}
    for exp in experiments:
        if held_out is not None:
            if exp not in TRIPLET_EXPERIMENTS:
                raise ValueError(f"run_experiments: held_out evaluation is defined for {TRIPLET_EXPERIMENTS} "
                                 f"(appendix D.3), not for {exp!r}")
            feats = {(c, b): x for (s, c, b), x in features.items() if s == exp and len(x) > 0}
            out[exp] = held_out_triplets(feats, groups, protocol, classes=classes, n_jobs=n_jobs,
                                         cache_dir=cache_dir, **held_out)
        elif exp in PAIR_EXPERIMENTS:
            feats = {c: features[(exp, c, c)] for c in classes if len(features.get((exp, c, c), ())) > 0}
            missing = sorted(set(classes) - set(feats))
            if missing:
                raise ValueError(f"experiment {exp!r}: no crops for class(es) {', '.join(missing)}")
            out[exp] = evaluate_pairs(feats, protocol, classes=classes, n_jobs=n_jobs, progress=progress,
                                      cache_dir=cache_dir)
        elif exp in TRIPLET_EXPERIMENTS:
            feats = {(c, b): x for (s, c, b), x in features.items() if s == exp and len(x) > 0}
            out[exp] = _triplets_available(feats, protocol, classes, n_jobs, progress, cache_dir, backgrounds)
            if backgrounds == "all" and exp == "diff":
                out[OTHER_CLASS] = other_class_background(out[exp])
        else:
            raise ValueError(f"unknown experiment {exp!r}; expected names from {EXPERIMENTS}")
    return out


def held_out_triplets(features: Mapping, groups: Mapping, protocol: SVMProtocol | None = None, *,
                      classes=CLASSES, backgrounds=None, test_fraction: float = 0.2, random_state: int = 0,
                      n_jobs: int = 1, cache_dir=None) -> pd.DataFrame:
    """Protein-held-out and 5-fold accuracy for every triplet that has crops (appendix D.3).

    Like :func:`bgrobust.classify.evaluate_pairs_held_out` on ``(centre, background)`` keys,
    but background by background, so a background class without cell-free crops (a tiny
    screen) or a centre class with a single protein is left out instead of failing.

    Returns
    -------
    DataFrame
        ``Location1, Location2, Background, HeldOutAccuracy, Accuracy, StdDev`` in the
        paper's row order.
    """
    backgrounds = list(backgrounds or classes)
    frames = []
    for b in backgrounds:
        centres = [c for c in classes if c != b and len(features.get((c, b), ())) > 0
                   and len(set(groups[(c, b)])) >= 2]
        if len(centres) < 2:
            continue
        keys = [(c, b) for c in centres]
        frames.append(evaluate_pairs_held_out({k: features[k] for k in keys}, {k: groups[k] for k in keys},
                                              protocol, classes=centres, background_classes=[b],
                                              test_fraction=test_fraction, random_state=random_state,
                                              n_jobs=n_jobs, progress=False, cache_dir=cache_dir))
    if not frames:
        raise ValueError("held_out_triplets: no background class has crops for two centre classes with "
                         ">= 2 proteins each")
    df = pd.concat(frames, ignore_index=True)
    order = {c: i for i, c in enumerate(classes)}
    key = [(order[a], order[c], order.get(g, len(order))) for a, c, g in zip(df.Location1, df.Location2, df.Background)]
    return df.iloc[sorted(range(len(df)), key=key.__getitem__)].reset_index(drop=True)


# ------------------------------------------------------------------------------ results
def drop_table(results: Mapping[str, Mapping[str, pd.DataFrame]], reference: Mapping[str, str] | None = None):
    """Every extractor in the five settings, its background drop and, for remedies, their cost.

    Parameters
    ----------
    results : mapping
        ``{extractor: {experiment: DataFrame}}``.
    reference : mapping, optional
        ``{extractor: the extractor it modifies}``: adds the drop removed and the baseline
        accuracy lost relative to that reference.

    Returns
    -------
    DataFrame
        One row per extractor: mean and 3 SE of each experiment (all pairs and triplets), the
        drop (same minus diff swap: mean, low, high) and, with references, ``drop_removed``
        (the reference's drop minus this one's, as a share of the reference's; only where the
        reference's drop is shown, its 3 SE interval above 0) and
        ``baseline_cost`` (reference baseline minus this baseline).
    """
    from .claims import paired_difference
    from .tables import per_class, table1

    t = table1(results, aggregation="all")
    rows = []
    for name, res in results.items():
        row = {"extractor": name}
        for r in t[t.model == name].itertuples():
            row[r.experiment] = r.mean
            row[f"{r.experiment}_3se"] = r.three_se
        if "same" in res and "diff" in res:
            d = paired_difference(per_class(res, "all"), "same", "diff")
            row.update({"drop": d["mean"], "drop_low": d["low"], "drop_high": d["high"]})
        rows.append(row)
    out = pd.DataFrame(rows).set_index("extractor")
    out["drop_removed"], out["baseline_cost"] = np.nan, np.nan   # present even where no reference has a drop
    if reference:
        for name, ref in reference.items():
            if name in out.index and ref in out.index:
                if out.loc[ref, "drop_low"] > 0:  # a share of a drop only where there is one
                    out.loc[name, "drop_removed"] = (out.loc[ref, "drop"] - out.loc[name, "drop"]) / out.loc[ref, "drop"]
                out.loc[name, "baseline_cost"] = out.loc[ref, "base"] - out.loc[name, "base"]
    return out.reset_index()


@dataclass
class ExperimentResults:
    """What :func:`run_experiments` found, for one or several extractors.

    Attributes
    ----------
    results : dict
        ``{extractor: {experiment: DataFrame}}``, the paper's CSV layout
        (``Location1, Location2, [Background,] Accuracy, StdDev``); the layout of
        :func:`bgrobust.tables.read_paper_results`, so ours and the paper's go through the
        same functions.
    protocol : SVMProtocol
    classes : list of str
    features : dict or None
        ``{extractor: {(setting, centre, background): (n, D) array}}`` when kept.
    timing : DataFrame
        Seconds per extractor for the features and the SVMs.
    skipped : dict
        ``{experiment: reason}`` for settings that could not run.
    """

    results: dict
    protocol: SVMProtocol
    classes: list
    features: dict | None = None
    timing: pd.DataFrame = field(default_factory=pd.DataFrame)
    skipped: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> dict:
        return self.results[name]

    @property
    def names(self) -> list[str]:
        return list(self.results)

    def table1(self, aggregation: str = "paper") -> pd.DataFrame:
        """Table 1 (:func:`bgrobust.tables.table1`): mean and 3 SE per extractor and experiment."""
        from .tables import table1

        return table1(self.results, aggregation=aggregation)

    def format_table1(self, aggregation: str = "paper", **kw):
        """Table 1 as the paper prints it (:func:`bgrobust.tables.format_table1`)."""
        from .tables import format_table1

        return format_table1(self.table1(aggregation), **kw)

    def per_class(self, name: str | None = None, aggregation: str = "all") -> pd.DataFrame:
        """Per-class accuracy per experiment of one extractor (the data of Fig. 2)."""
        from .tables import per_class

        return per_class(self.results[name or self.names[0]], aggregation)

    def scatter_data(self) -> pd.DataFrame:
        """Fig. 2's points for every extractor (:func:`bgrobust.tables.scatter_data`)."""
        from .tables import scatter_data

        return scatter_data(self.results)

    def claims(self, aggregation: str = "all", **kw) -> pd.DataFrame:
        """The paper's claims 4.1-4.4 on every extractor (:func:`bgrobust.claims.evaluate_claims`)."""
        from .claims import evaluate_claims

        return evaluate_claims(self.results, aggregation=aggregation, **kw)

    def drops(self, reference: Mapping[str, str] | None = None) -> pd.DataFrame:
        """:func:`drop_table` of these results."""
        return drop_table(self.results, reference)

    def write(self, folder):
        """Write the per-pair CSVs in the paper's layout (``<folder>/<extractor>/results_<exp>.csv``)."""
        from .tables import write_results

        return write_results(self.results, folder)

    def merged(self, other: "ExperimentResults") -> "ExperimentResults":
        """These results and ``other``'s (same protocol and classes) as one object."""
        feats = None if self.features is None or other.features is None else {**self.features, **other.features}
        return ExperimentResults({**self.results, **other.results}, self.protocol, self.classes, feats,
                                 pd.concat([self.timing, other.timing], ignore_index=True),
                                 {**self.skipped, **other.skipped}, {**self.meta, **other.meta})


def _default_classes(sets) -> list[str]:
    present = set(sets.sets["centre_class"])
    known = [c for c in CLASSES if c in present]
    return known + sorted(present - set(known))


def _available(sets, experiments, classes) -> tuple[list[str], dict]:
    have = set(sets.sets["setting"])
    run, skipped = [], {}
    for exp in experiments:
        if exp not in EXPERIMENTS:
            raise ValueError(f"run_experiments: unknown experiment {exp!r}; expected names from {EXPERIMENTS}")
        if exp in have:
            run.append(exp)
        else:
            skipped[exp] = "the sets have no such setting (e.g. no cell-free crops in the dataset)"
    return run, skipped


def run_experiments(sets, extractors, protocol: SVMProtocol | None = None, *, experiments=None, classes=None,
                    held_out: Mapping | None = None, backgrounds: str = "valid", n_jobs: int = 1,
                    progress: bool = True, cache_dir=None,
                    keep_features: bool = False, batch_size: int = 4096) -> ExperimentResults:
    """The paper's five experiments for one or several feature extractors.

    Parameters
    ----------
    sets : bgrobust.settings.SettingSets
        The crops of every setting (:func:`bgrobust.settings.generate_settings`).
    extractors : extractor or mapping of name to extractor
        Anything :func:`bgrobust.extractors.as_extractor` adapts: a bgrobust model, a
        ``torch.nn.Module``, a callable, precomputed features, an Extractor.
    protocol : SVMProtocol, optional
        Default: the paper's protocol with ``n_per_class`` the largest set size.
    experiments : sequence of str, optional
        Default: every setting the sets hold, in :data:`bgrobust.vocabulary.EXPERIMENTS` order.
    classes : sequence of str, optional
        Default: every centre class of the sets.
    held_out : mapping, optional
        Evaluate the triplet experiments with proteins held out (appendix D.3,
        :func:`held_out_triplets`) instead of the 5-fold protocol alone; the mapping holds its
        ``test_fraction``, ``random_state`` and ``backgrounds``. The groups are the sets'
        centre proteins (generate the sets with ``centre_proteins="all"``).
    backgrounds : {"valid", "all"}
        Backgrounds of the triplet experiments: the classes other than the pair's (the paper's
        aggregation), or also the pair's own two classes (the *other-class background* design
        for few classes: both centres on backgrounds of one class of the pair, in turn; the sets
        need ``swap_backgrounds="all"``, and ``shared_backgrounds=True`` keeps the two centre
        classes on the very same background crops). Its results are added as the experiment
        :data:`~bgrobust.vocabulary.OTHER_CLASS` (``"other"``), one row per pair.
    n_jobs, progress, cache_dir
        Parallel SVM workers, progress bars, the SVM result cache folder.
    keep_features : bool
        Keep every set's features in the result (e.g. for a protein-held-out analysis).

    Returns
    -------
    ExperimentResults
    """
    if not isinstance(extractors, Mapping) or isinstance(extractors, pd.DataFrame):
        ex = as_extractor(extractors)
        extractors = {ex.name: ex}
    if not extractors:
        raise ValueError("run_experiments: no extractors given")
    classes = _default_classes(sets) if classes is None else list(classes)
    experiments, skipped = _available(sets, list(experiments or EXPERIMENTS), classes)
    protocol = protocol or SVMProtocol(n_per_class=int(sets.sets["n"].max()))
    held_out = None if held_out is None else dict(held_out)
    groups = set_groups(sets) if held_out is not None else None
    results, features, timing = {}, {}, []
    for name, extractor in extractors.items():
        ex = extractor if isinstance(extractor, Extractor) else as_extractor(extractor, name=str(name))
        start = time.perf_counter()
        feats = setting_features(sets, ex, batch_size=batch_size, progress=progress)
        t_feat = time.perf_counter() - start
        results[name] = _grid(feats, protocol, experiments, classes, n_jobs, progress, cache_dir, held_out, groups,
                              backgrounds)
        timing.append({"extractor": name, "features_s": t_feat, "svm_s": time.perf_counter() - start - t_feat})
        if keep_features:
            features[name] = feats
    return ExperimentResults(results, protocol, classes, features if keep_features else None,
                             pd.DataFrame(timing), skipped,
                             {"n_cells": int(sets.sets["n"].max()), "channels": list(_channels(sets))})
