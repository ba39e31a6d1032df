"""The backgrounds challenge for single cells: how much, how badly and how often backgrounds decide.

The paper measures background reliance with one number per setting, the mean accuracy of
pairwise linear SVMs.  The backgrounds challenge of natural images (Xiao et al. 2020, the
ImageNet-9 "Only-BG", adversarial backgrounds and per-image flips) asks three more
questions, answered here for any extractor :func:`bgrobust.extractors.as_extractor` adapts
(trained or untrained networks, the structural baseline, the VAE, callables, precomputed
features), through the runner's own pieces (:func:`bgrobust.experiments.setting_features`,
:mod:`bgrobust.classify`):

background only (``bg_only``)
    The centre cell is removed (:func:`bgrobust.imageops.remove_centre_cells`: its mask,
    grown a little, filled with the crop's own background pixels) and the paper's pairwise
    SVMs are asked for the centre cell's class from what is left.  In a screen every cell of
    a field carries the same protein, so this is how much an extractor *could* cheat; chance
    is 0.5.
worst-case backgrounds (``worst_class``, ``worst_donor``)
    Pairwise SVMs fitted on unaltered crops label test cells pasted on donor crops of every
    class: per pair of centre classes the accuracy under the single most damaging background
    class and under the single most damaging donor crop of a budgeted pool (``budget``
    donors per class), and per class the donors that hurt its cells most.
per-cell flips (``flips``)
    The same SVMs vote (libsvm's one-vs-one rule) for one label per crop; a cell *flips* on a
    background when its label differs from its label on its own crop, and is *background
    stable* when it never flips.  Beside it the feature-space shift: the cosine distance
    between a cell's features on its own and on a swapped background, relative to the mean
    cosine distance between two cells of its class on their own backgrounds.
the BG-gap (``bg_gap``)
    Same-localization swap minus different-localization swap accuracy and its share of the
    headroom, ``(same - diff) / (same - 0.5)``: the one-line summary of
    :func:`bgrobust.robustness.robustness_report` (:attr:`RobustnessReport.bg_gap
    <bgrobust.robustness.RobustnessReport>`).

Every crop of the challenge is built once, by :func:`challenge_panel` (one
:class:`~bgrobust.settings.SettingSets` holding the settings of :data:`PANEL_SETTINGS`),
and :func:`run_challenge` evaluates extractors on it.  The composites follow the paper's
compositing (section 3.2): centre cell and donor standardised with their own proteins'
statistics, then the centre pasted on the donor; the unaltered crops the classifiers are
fitted on, and each cell's "own background" crop, are standardised the same way, so the
background is the only thing that changes.

Examples
--------
>>> import numpy as np
>>> from bgrobust.dataset import from_crops
>>> rng = np.random.default_rng(0)
>>> n, s = 48, 16                                    # 4 classes x 2 proteins x 6 crops
>>> yy, xx = np.mgrid[:s, :s]
>>> disc = (yy - s // 2) ** 2 + (xx - s // 2) ** 2 <= 12
>>> labels = np.repeat(["actin", "ER", "Golgi", "vacuole"], 12)
>>> level = np.repeat(np.arange(4.0), 12)[:, None, None]
>>> gfp = rng.normal(0, 0.1, (n, s, s)) + np.where(disc, level, 0)   # the class is in the centre cell only
>>> images = np.stack([gfp, np.where(disc, 1.0, 0) + rng.normal(0, 0.1, (n, s, s))], 1)
>>> ds = from_crops(images, np.repeat([f"p{i}" for i in range(8)], 6), labels,
...                 np.repeat(disc[None], n, 0), progress=False)
>>> panel = challenge_panel(ds, ChallengeParams(n_train=5, n_test=3, budget=1), random_state=0)
>>> centre = lambda x, m: (x[:, 0] * m).reshape(len(x), -1)      # pixels of the centre cell only
>>> res = run_challenge(panel, {"centre": as_extractor(centre, needs_masks=True)}, progress=False)
>>> float(res.flip_summary()["flip_rate"].max())                  # it never reads the background
0.0
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .classify import SVMProtocol, evaluate_pairs, pairwise_fit_predict
from .constraints import Boolean, Choice, Instance, Integer, Optional, ParameterError, check_params, check_value
from .experiments import setting_features
from .extractors import Extractor, as_extractor
from .imageops import CentreRemoval, composite, protein_stats, remove_centre_cells, standardize
from .settings import SettingSets
from .tables import class_accuracies, mean_three_se
from .vocabulary import CHANNELS, CLASSES, check_classes

__all__ = ["ChallengeParams", "ChallengeResults", "PANEL_SETTINGS", "challenge_panel", "run_challenge",
           "worst_background_classes", "CHANCE"]

#: The settings of a challenge panel: the raw crops the classifiers of "background only" see
#: (``base``) and the same crops with the centre cell removed (``bg_only``); the standardised
#: unaltered crops the flip classifiers are fitted on (``train``); each test cell on its own
#: crop (``own``) and on every donor crop of every class (``swap``).
PANEL_SETTINGS: tuple[str, ...] = ("base", "bg_only", "train", "own", "swap")
#: Accuracy of guessing between two balanced classes.
CHANCE: float = 0.5


@dataclass(frozen=True)
class ChallengeParams:
    """How many crops the backgrounds challenge uses, and how it removes a centre cell.

    Parameters
    ----------
    n_train : int, default 30
        Unaltered crops per class: the background-only SVMs (5-fold, the paper's protocol)
        and the classifiers of the worst-case and flip measures are fitted on them.
    n_test : int, default 8
        Centre cells per class (not among the training crops) put on every donor.
    budget : int, default 2
        Donor crops per background class in the searched pool (neither training nor test
        cells of that class): the worst-donor search tries ``budget * n_classes`` donors per
        pair, and each test cell meets ``budget * (n_classes - 1)`` backgrounds of other
        classes.
    n_worst : int, default 3
        The most damaging donors listed per class.
    standardize : bool, default True
        Standardise centre cells and donors with their proteins' statistics before pasting
        (the paper's compositing), and the unaltered crops the same way.
    swap : {"paper", "clean"}, default "paper"
        How a test cell is pasted on a donor: the paper's compositing (the donor's own
        centre cell stays under and around the pasted one), or ``"clean"`` (not the paper's):
        the donor's centre cell is removed first, as for ``generate_settings(swap="clean")``.
    removal : CentreRemoval, optional
        How a centre cell is removed, for "background only" and the clean swap (default
        ``CentreRemoval()``).

    Examples
    --------
    >>> ChallengeParams(budget=3).budget
    3
    >>> ChallengeParams(n_test=1)
    Traceback (most recent call last):
    ...
    bgrobust.constraints.ParameterError: ChallengeParams.n_test must be an integer >= 2, got 1
    """

    n_train: int = 30
    n_test: int = 8
    budget: int = 2
    n_worst: int = 3
    standardize: bool = True
    swap: str = "paper"
    removal: CentreRemoval | None = None

    _parameter_constraints = {"n_train": Integer(2), "n_test": Integer(2), "budget": Integer(1),
                              "n_worst": Integer(1), "standardize": Boolean(), "swap": Choice(("paper", "clean")),
                              "removal": Optional(Instance(CentreRemoval, "a bgrobust.imageops.CentreRemoval"))}

    def __post_init__(self):
        check_params(self)

    @classmethod
    def from_dict(cls, params: Mapping | None) -> "ChallengeParams":
        """From a profile's ``challenge`` block (unknown keys are an error naming them)."""
        params = dict(params or {})
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ParameterError(f"ChallengeParams: unknown key(s) {unknown}; expected some of {sorted(known)}")
        if isinstance(params.get("removal"), Mapping):
            params["removal"] = CentreRemoval(**params["removal"])
        return cls(**params)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["removal"] = (self.removal or CentreRemoval()).to_dict()
        return out


# --------------------------------------------------------------------------- the panel
def _check_classes(classes, where: str) -> list[str]:
    if isinstance(classes, str) or not hasattr(classes, "__iter__"):
        raise ParameterError(f"{where}: classes must be a sequence of class names, got {classes!r}")
    classes = list(classes)
    check_classes(classes, where=f"{where}: classes")
    if len(classes) < 2:
        raise ParameterError(f"{where}: classes must name at least 2 classes (pairs are compared), got {classes}")
    if len(set(classes)) != len(classes):
        raise ParameterError(f"{where}: classes has duplicates: {classes}")
    return classes


def challenge_panel(dataset, params: ChallengeParams | Mapping | None = None, *, classes=None,
                    random_state: int = 0, progress: bool = False) -> SettingSets:
    """Every crop of the backgrounds challenge, as one :class:`~bgrobust.settings.SettingSets`.

    Per class ``c`` (valid crops of single-localized proteins, all proteins of the class
    pooled) ``n_train + n_test + budget`` distinct crops are drawn at random: the training
    crops, the test cells and the class's donors.  The sets (keyed ``(setting, centre,
    background)``, settings :data:`PANEL_SETTINGS`):

    * ``("base", c, c)``, ``("bg_only", c, c)``: the raw training crops, and the same with
      the centre cell removed (:func:`bgrobust.imageops.remove_centre_cells`);
    * ``("train", c, c)``, ``("own", c, c)``: the training crops and the test cells,
      standardised with their proteins' statistics;
    * ``("swap", c, b)`` for every class ``b`` (``b == c`` too): every test cell of ``c``
      pasted on every donor of ``b``, cell-major (``n_test * budget`` crops).

    The table's ``cell`` column numbers the test cells of a class (``-1`` elsewhere),
    ``donor`` the donors of a background class (``-1`` where there is none); ``centre_index``
    and ``background_index`` point into ``dataset.crops``.  The masks are the centre cells'
    masks (for ``bg_only``: where the removed cell was).

    Parameters
    ----------
    dataset : bgrobust.dataset.Dataset
    params : ChallengeParams or mapping, optional
    classes : sequence of str, optional
        Default: every class with valid single-localized crops, in
        :data:`~bgrobust.vocabulary.CLASSES` order.
    random_state : int
        Seeds the draws and the fill of the removed centre cells.
    progress : bool
        A tqdm bar over the classes.

    Raises
    ------
    ParameterError
        Bad ``params``, ``classes`` or ``random_state``; a class with too few valid crops
        (the message names it and the count needed).
    """
    where = "challenge_panel"
    params = params if isinstance(params, ChallengeParams) else ChallengeParams.from_dict(params)
    check_value(random_state, Integer(0), f"{where}: random_state")
    t = dataset.crops.table.reset_index(drop=True)
    for col in ("strain", "localization", "kind", "valid"):
        if col not in t.columns:
            raise ValueError(f"{where}: dataset.crops.table lacks column {col!r}")
    usable = t["valid"].to_numpy(bool) & t["kind"].eq("single").to_numpy()
    if classes is None:
        present = set(t.loc[usable, "localization"])
        classes = [c for c in CLASSES if c in present]
    classes = _check_classes(classes, where)
    need = params.n_train + params.n_test + params.budget
    draws = {}
    for c in classes:
        pos = np.flatnonzero(usable & t["localization"].eq(c).to_numpy())
        if len(pos) < need:
            raise ParameterError(f"{where}: class {c!r} has {len(pos)} valid single-localized crops; the challenge "
                                 f"needs n_train + n_test + budget = {need}")
        rng = np.random.default_rng([random_state, CLASSES.index(c)])
        pick = rng.permutation(pos)[:need]
        draws[c] = {"train": np.sort(pick[:params.n_train]),
                    "test": pick[params.n_train:params.n_train + params.n_test],
                    "donor": pick[params.n_train + params.n_test:]}
    strains = t["strain"].astype(str).to_numpy()
    images, masks = dataset.crops.images, dataset.crops.masks
    stats = None
    if params.standardize:
        used = sorted({strains[i] for d in draws.values() for v in d.values() for i in v})
        stats = protein_stats(dataset.crops, proteins=used)
        means = [col for col in stats.columns if col.startswith("mean_")]
        stds = [col for col in stats.columns if col.startswith("std_")]

    def std(idx):
        x = np.asarray(images[idx], np.float32)
        if stats is None:
            return x
        s = stats.loc[strains[idx]]
        return standardize(x, s[means].to_numpy(), s[stds].to_numpy())

    removal = params.removal or CentreRemoval()
    blocks, rows = [], []

    def add(setting, c, b, imgs, msk, centre_idx, background_idx, cell, donor):
        blocks.append((np.asarray(imgs, np.float32), np.asarray(msk, bool)))
        rows.append(pd.DataFrame({"setting": setting, "centre_class": c, "background_class": b,
                                  "centre_index": np.asarray(centre_idx, np.int64),
                                  "background_index": np.asarray(background_idx, np.int64),
                                  "cell": np.asarray(cell, np.int64), "donor": np.asarray(donor, np.int64)}))

    donors_std = {b: std(draws[b]["donor"]) for b in classes}
    if params.swap == "clean":   # erase each donor's own centre cell before anything is pasted on it
        for b in classes:
            rng = np.random.default_rng([random_state, CLASSES.index(b), 2])
            donors_std[b], _ = remove_centre_cells(donors_std[b], np.asarray(masks[draws[b]["donor"]], bool), rng,
                                                   removal)
    for c in tqdm(classes, desc="challenge panel", unit="class", disable=not progress):
        train, test = draws[c]["train"], draws[c]["test"]
        raw = np.asarray(images[train], np.float32)
        m_train = np.asarray(masks[train], bool)
        rng = np.random.default_rng([random_state, CLASSES.index(c), 1])
        removed, _ = remove_centre_cells(raw, m_train, rng, removal)
        none = np.full(len(train), -1)
        add("base", c, c, raw, m_train, train, train, none, none)
        add("bg_only", c, c, removed, m_train, train, train, none, none)
        add("train", c, c, std(train), m_train, train, train, none, none)
        centre, m_test = std(test), np.asarray(masks[test], bool)
        add("own", c, c, centre, m_test, test, test, np.arange(len(test)), np.full(len(test), -1))
        k = params.budget
        for b in classes:
            fg = np.repeat(centre, k, axis=0)
            mk = np.repeat(m_test, k, axis=0)
            bg = np.tile(donors_std[b], (len(test), 1, 1, 1))
            add("swap", c, b, composite(fg, mk, bg), mk, np.repeat(test, k), np.tile(draws[b]["donor"], len(test)),
                np.repeat(np.arange(len(test)), k), np.tile(np.arange(k), len(test)))
    table = pd.concat(rows, ignore_index=True)
    sizes = [len(r) for r in rows]
    stops = np.cumsum(sizes)
    table.insert(0, "set", np.repeat(np.arange(len(rows)), sizes))
    table["centre_strain"] = strains[table["centre_index"].to_numpy()]
    table["background_strain"] = strains[table["background_index"].to_numpy()]
    table["strain"], table["localization"] = table["centre_strain"], table["centre_class"]
    sets = pd.DataFrame({"set": np.arange(len(rows)), "setting": [r["setting"].iloc[0] for r in rows],
                         "centre_class": [r["centre_class"].iloc[0] for r in rows],
                         "background_class": [r["background_class"].iloc[0] for r in rows],
                         "start": stops - np.asarray(sizes), "stop": stops, "n": sizes})
    channels = list(getattr(dataset.crops, "channels", None) or CHANNELS)
    meta = {"kind": "challenge panel", "classes": classes, "random_state": int(random_state),
            "params": params.to_dict(), "channels": channels}
    return SettingSets(np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks]),
                       table, sets, meta)


# --------------------------------------------------------------------------- the measures
def _cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ``1 - cos(a, b)``; 0 where both rows are zero, 1 where only one is."""
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    dot = (a * b).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((na > 0) & (nb > 0), dot / np.where((na > 0) & (nb > 0), na * nb, 1), 0.0)
    out = 1.0 - np.clip(cos, -1.0, 1.0)
    return np.where((na == 0) & (nb == 0), 0.0, out)


def _check_panel(panel) -> tuple[list[str], int, int]:
    meta = getattr(panel, "meta", None) or {}
    if meta.get("kind") != "challenge panel":
        raise ParameterError("run_challenge: panel must come from bgrobust.challenge.challenge_panel "
                             f"(got {type(panel).__name__} without its meta)")
    p = meta["params"]
    return list(meta["classes"]), int(p["budget"]), int(p["n_test"])


def _one_extractor(name, ex, panel, classes, budget, n_test, protocol, n_jobs, progress, batch_size, cache_dir):
    t0 = time.perf_counter()
    feats = setting_features(panel, ex, batch_size=batch_size, progress=progress)
    t_feat = time.perf_counter() - t0
    bg = {s: evaluate_pairs({c: feats[(s, c, c)] for c in classes}, protocol, classes=classes, n_jobs=n_jobs,
                            progress=False, cache_dir=cache_dir) for s in ("bg_only", "base")}
    # the evaluation rows: every test cell on its own crop, then on every donor (cell-major)
    k, nc = budget, len(classes)
    own = np.stack([feats[("own", c, c)] for c in classes])                      # (C, T, D)
    swap = np.stack([np.stack([feats[("swap", c, b)].reshape(n_test, k, -1) for b in classes], 1)
                     for c in classes])                                           # (C, T, B, k, D)
    D = own.shape[-1]
    X_eval = np.concatenate([own.reshape(-1, D), swap.reshape(-1, D)])
    pairs = list(combinations(range(nc), 2))
    votes = np.zeros((len(X_eval), nc), np.int32)
    correct = {}
    stopped = 0
    n_own = nc * n_test
    for i, j in tqdm(pairs, desc=f"{name} challenge SVMs", unit="pair", disable=not progress):
        pred, hit = pairwise_fit_predict(feats[("train", classes[i], classes[i])],
                                         feats[("train", classes[j], classes[j])], X_eval, protocol)
        stopped += hit
        votes[pred == 0, i] += 1
        votes[pred == 1, j] += 1
        p_own = pred[:n_own].reshape(nc, n_test)
        p_swap = pred[n_own:].reshape(nc, n_test, nc, k)
        # correct answers of the pair's two classes' cells: own (T,), swapped (T, B, k)
        correct[(i, j)] = (p_own[i] == 0, p_own[j] == 1, p_swap[i] == 0, p_swap[j] == 1)
    label = votes.argmax(1)                                                       # libsvm's one-vs-one rule
    label_own = label[:n_own].reshape(nc, n_test)
    label_swap = label[n_own:].reshape(nc, n_test, nc, k)
    # per pair: accuracy on own crops and on each donor
    pair_rows = []
    for (i, j), (own_i, own_j, sw_i, sw_j) in correct.items():
        base = {"extractor": name, "Location1": classes[i], "Location2": classes[j]}
        pair_rows.append({**base, "background": "own", "donor_class": None, "donor": -1,
                          "Accuracy": float(np.concatenate([own_i, own_j]).mean())})
        acc = (sw_i.mean(0) + sw_j.mean(0)) / 2                                   # (B, k)
        for b in range(nc):
            for d in range(k):
                pair_rows.append({**base, "background": f"{classes[b]}/{d}", "donor_class": classes[b], "donor": d,
                                  "Accuracy": float(acc[b, d])})
    # per class: accuracy of its cells over the pairs it is in, own and per donor
    class_rows = []
    for c in range(nc):
        own_c, sw_c = [], []
        for (i, j), (own_i, own_j, sw_i, sw_j) in correct.items():
            if c == i:
                own_c.append(own_i); sw_c.append(sw_i)
            elif c == j:
                own_c.append(own_j); sw_c.append(sw_j)
        own_acc = float(np.mean(own_c))
        sw_acc = np.mean(np.stack(sw_c), axis=(0, 1))                             # (B, k)
        for b in range(nc):
            for d in range(k):
                class_rows.append({"extractor": name, "class": classes[c], "own": own_acc,
                                   "background": f"{classes[b]}/{d}", "donor_class": classes[b], "donor": d,
                                   "Accuracy": float(sw_acc[b, d])})
    # per cell and background: the label, and the feature-space shift
    cell_rows, shift_rows = [], []
    for c in range(nc):
        f_own = own[c]                                                            # (T, D)
        within = _cosine_distance(f_own[:, None], f_own[None])                   # (T, T)
        within = (within.sum(1) - np.diag(within)) / max(n_test - 1, 1)
        for t in range(n_test):
            other = [b for b in range(nc) if b != c]
            dist = _cosine_distance(np.broadcast_to(f_own[t], swap[c, t, other].shape), swap[c, t, other])
            shift = float(dist.mean())
            shift_rows.append({"extractor": name, "class": classes[c], "cell": t, "shift": shift,
                               "within": float(within[t]),
                               "relative_shift": shift / within[t] if within[t] > 0 else (0.0 if shift == 0 else np.inf)})
            for b in range(nc):
                for d in range(k):
                    cell_rows.append({"extractor": name, "class": classes[c], "cell": t, "donor_class": classes[b],
                                      "donor": d, "label_own": classes[label_own[c, t]],
                                      "label": classes[label_swap[c, t, b, d]]})
    cells = pd.DataFrame(cell_rows)
    cells["flip"] = cells["label"] != cells["label_own"]
    cells["to_background"] = cells["flip"] & (cells["label"] == cells["donor_class"])
    timing = {"extractor": name, "features_s": t_feat, "svm_s": time.perf_counter() - t0 - t_feat}
    return bg, pd.DataFrame(pair_rows), pd.DataFrame(class_rows), cells, pd.DataFrame(shift_rows), timing, stopped


def run_challenge(panel, extractors, protocol: SVMProtocol | None = None, *, n_jobs: int = 1,
                  progress: bool = True, batch_size: int = 4096, cache_dir=None) -> "ChallengeResults":
    """The backgrounds challenge for one or several extractors on a :func:`challenge_panel`.

    Parameters
    ----------
    panel : SettingSets
        From :func:`challenge_panel`.
    extractors : extractor or mapping of name to extractor
        Anything :func:`bgrobust.extractors.as_extractor` adapts (precomputed features are
        looked up by :func:`bgrobust.experiments.setting_crop_ids` of the panel).
    protocol : SVMProtocol, optional
        Default: the paper's protocol with ``n_per_class = n_train``.
    n_jobs, progress, batch_size, cache_dir
        SVM workers for the background-only grid, tqdm bars, crops per extractor call,
        the SVM result cache.

    Returns
    -------
    ChallengeResults
    """
    classes, budget, n_test = _check_panel(panel)
    if not isinstance(extractors, Mapping) or isinstance(extractors, pd.DataFrame):
        ex = as_extractor(extractors)
        extractors = {ex.name: ex}
    if not extractors:
        raise ParameterError("run_challenge: no extractors given")
    check_value(protocol, Optional(Instance(SVMProtocol)), "run_challenge: protocol")
    check_value(n_jobs, Integer(), "run_challenge: n_jobs")
    check_value(batch_size, Integer(1), "run_challenge: batch_size")
    protocol = protocol or SVMProtocol(n_per_class=int(panel.meta["params"]["n_train"]))
    out = {"bg_only": {}, "pairs": [], "classes": [], "cells": [], "shifts": [], "timing": []}
    stopped = 0
    for name, extractor in extractors.items():
        ex = extractor if isinstance(extractor, Extractor) else as_extractor(extractor, name=str(name))
        bg, pairs, per_class, cells, shifts, timing, hit = _one_extractor(
            str(name), ex, panel, classes, budget, n_test, protocol, n_jobs, progress, batch_size, cache_dir)
        out["bg_only"][str(name)] = bg
        for key, value in (("pairs", pairs), ("classes", per_class), ("cells", cells), ("shifts", shifts),
                           ("timing", timing)):
            out[key].append(value)
        stopped += hit
    if stopped:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(f"run_challenge: {stopped} SVM fits stopped at max_iter={protocol.max_iter} before converging "
                      "(results are kept)", ConvergenceWarning, stacklevel=2)
    t = panel.table
    donors = (t[t["setting"].eq("swap")].drop_duplicates(["background_class", "donor"])
              [["background_class", "donor", "background_index", "background_strain"]]
              .rename(columns={"background_class": "donor_class"}).reset_index(drop=True))
    return ChallengeResults(out["bg_only"], pd.concat(out["pairs"], ignore_index=True),
                            pd.concat(out["classes"], ignore_index=True), pd.concat(out["cells"], ignore_index=True),
                            pd.concat(out["shifts"], ignore_index=True), donors, protocol, classes,
                            pd.DataFrame(out["timing"]), dict(panel.meta))


@dataclass
class ChallengeResults:
    """What :func:`run_challenge` found, for one or several extractors.

    Attributes
    ----------
    bg_only : dict
        ``{extractor: {"bg_only": DataFrame, "base": DataFrame}}``: the paper's pairwise
        5-fold SVMs on the training crops with and without their centre cell
        (``Location1, Location2, Accuracy, StdDev``).
    pairs : DataFrame
        One row per extractor, pair of centre classes and background (``"own"`` or a donor
        ``"<class>/<k>"``): the pair's accuracy (classifier fitted on unaltered crops).
    per_class : DataFrame
        One row per extractor, centre class and donor: the accuracy of that class's test
        cells over the pairs it is in (``own``: on their own crops).
    cells : DataFrame
        One row per extractor, test cell and donor: ``label_own``, ``label``, ``flip``
        (``label != label_own``) and ``to_background`` (the new label is the donor's class).
    shifts : DataFrame
        One row per extractor and test cell: ``shift`` (mean cosine distance between its
        features on its own crop and on the donors of other classes), ``within`` (mean
        cosine distance to the other test cells of its class) and their ratio
        ``relative_shift``.
    donors : DataFrame
        The donor pool: ``donor_class``, ``donor``, ``background_index`` (into
        ``dataset.crops``), ``background_strain``.
    protocol, classes, timing, meta
    """

    bg_only: dict
    pairs: pd.DataFrame
    per_class: pd.DataFrame
    cells: pd.DataFrame
    shifts: pd.DataFrame
    donors: pd.DataFrame
    protocol: SVMProtocol
    classes: list
    timing: pd.DataFrame = field(default_factory=pd.DataFrame)
    meta: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.bg_only)

    # background only -----------------------------------------------------------------------
    def background_only(self) -> pd.DataFrame:
        """Per extractor and class: accuracy from the background alone, on the full crop, and chance.

        Returns
        -------
        DataFrame
            ``extractor, class, bg_only, base, chance`` (per class: the mean over every
            pair the class is in).
        """
        frames = []
        for name, res in self.bg_only.items():
            df = pd.DataFrame({"bg_only": class_accuracies(res["bg_only"], "bg_only", "all"),
                               "base": class_accuracies(res["base"], "base", "all")})
            frames.append(df.rename_axis("class").reset_index().assign(extractor=name, chance=CHANCE))
        return pd.concat(frames, ignore_index=True)[["extractor", "class", "bg_only", "base", "chance"]]

    def background_only_summary(self) -> pd.DataFrame:
        """Per extractor: mean over classes (± 3 SE) of background-only and full-crop accuracy.

        ``above_chance`` is True where the background-only interval lies above 0.5, and
        ``share_of_base`` is ``(bg_only - 0.5) / (base - 0.5)``: how much of what the
        extractor tells apart on the full crop the background alone tells.
        """
        rows = []
        for name, g in self.background_only().groupby("extractor", sort=False):
            m, se, n = mean_three_se(g["bg_only"])
            b, bse, _ = mean_three_se(g["base"])
            rows.append({"extractor": name, "bg_only": m, "bg_only_3se": se, "base": b, "base_3se": bse,
                         "chance": CHANCE, "above_chance": bool(m - se > CHANCE),
                         "share_of_base": (m - CHANCE) / (b - CHANCE) if b > CHANCE else np.nan, "n_classes": n})
        return pd.DataFrame(rows)

    # worst-case backgrounds ----------------------------------------------------------------
    def worst_case(self) -> pd.DataFrame:
        """Per extractor and pair: accuracy on own crops, over all donors, under the worst class and donor.

        The class accuracy is the mean over that class's donors; the worst donor is the
        single donor crop of the pool with the lowest accuracy (ties: the first in class
        order).

        Returns
        -------
        DataFrame
            ``extractor, Location1, Location2, own, swapped, worst_class, worst_class_accuracy,
            worst_donor, worst_donor_class, worst_donor_accuracy``.
        """
        rows = []
        for (name, a, b), g in self.pairs.groupby(["extractor", "Location1", "Location2"], sort=False):
            own = float(g.loc[g["background"].eq("own"), "Accuracy"].iloc[0])
            sw = g[g["background"].ne("own")]
            by_class = sw.groupby("donor_class", sort=False)["Accuracy"].mean()
            worst = sw.loc[sw["Accuracy"].idxmin()]
            rows.append({"extractor": name, "Location1": a, "Location2": b, "own": own,
                         "swapped": float(sw["Accuracy"].mean()), "worst_class": by_class.idxmin(),
                         "worst_class_accuracy": float(by_class.min()), "worst_donor": worst["background"],
                         "worst_donor_class": worst["donor_class"], "worst_donor_accuracy": float(worst["Accuracy"])})
        return pd.DataFrame(rows)

    def worst_summary(self) -> pd.DataFrame:
        """Per extractor: mean over pairs (± 3 SE) of own, swapped, worst-class and worst-donor accuracy.

        ``below_chance`` counts the pairs whose worst donor brings the accuracy under 0.5.
        """
        rows = []
        for name, g in self.worst_case().groupby("extractor", sort=False):
            row = {"extractor": name}
            for col in ("own", "swapped", "worst_class_accuracy", "worst_donor_accuracy"):
                row[col], row[f"{col}_3se"], _ = mean_three_se(g[col])
            row["below_chance"] = int((g["worst_donor_accuracy"] < CHANCE).sum())
            row["n_pairs"] = len(g)
            rows.append(row)
        return pd.DataFrame(rows)

    def most_damaging(self, n: int | None = None) -> pd.DataFrame:
        """Per extractor and class: the ``n`` donors on which its cells are classified worst.

        Parameters
        ----------
        n : int, optional
            Default: the panel's ``n_worst``.

        Returns
        -------
        DataFrame
            ``extractor, class, rank, background, donor_class, donor, Accuracy, own,
            background_index`` (``background_index`` into ``dataset.crops``, for a figure).
        """
        n = int(self.meta.get("params", {}).get("n_worst", 3) if n is None else check_value(n, Integer(1), "n"))
        pc = self.per_class.sort_values(["extractor", "class", "Accuracy"], kind="stable")
        top = pc.groupby(["extractor", "class"], sort=False).head(n).copy()
        top["rank"] = top.groupby(["extractor", "class"], sort=False).cumcount() + 1
        top = top.merge(self.donors[["donor_class", "donor", "background_index"]], on=["donor_class", "donor"])
        order = {c: i for i, c in enumerate(self.classes)}
        ext = {e: i for i, e in enumerate(self.names)}
        top = top.sort_values(["extractor", "class", "rank"], key=lambda s: s.map(ext) if s.name == "extractor"
                              else s.map(order) if s.name == "class" else s)
        return top[["extractor", "class", "rank", "background", "donor_class", "donor", "Accuracy", "own",
                    "background_index"]].reset_index(drop=True)

    # per-cell flips -----------------------------------------------------------------------
    def flips_per_cell(self) -> pd.DataFrame:
        """Per extractor and test cell: flips on backgrounds of other classes, and its feature shift.

        Returns
        -------
        DataFrame
            ``extractor, class, cell, n_backgrounds, n_flips, flip_rate, stable`` (never
            flips), ``to_background`` (share of its flips that land on the donor's class),
            ``flip_rate_same`` (on donors of its own class: a compositing control),
            ``correct_own`` (its label on its own crop is its true class), ``shift``,
            ``within``, ``relative_shift``.
        """
        c = self.cells
        other = c[c["donor_class"] != c["class"]]
        same = c[c["donor_class"] == c["class"]]
        keys = ["extractor", "class", "cell"]
        g = other.groupby(keys, sort=False)
        out = pd.DataFrame({"n_backgrounds": g.size(), "n_flips": g["flip"].sum(),
                            "n_to_background": g["to_background"].sum()})
        out["flip_rate"] = out["n_flips"] / out["n_backgrounds"]
        out["stable"] = out["n_flips"] == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            out["to_background"] = np.where(out["n_flips"] > 0, out["n_to_background"] / out["n_flips"].clip(lower=1),
                                            np.nan)
        out["flip_rate_same"] = same.groupby(keys, sort=False)["flip"].mean()
        first = c.groupby(keys, sort=False).first()
        out["correct_own"] = first["label_own"] == first.index.get_level_values("class")
        out = out.reset_index().merge(self.shifts, on=keys)
        return out[["extractor", "class", "cell", "n_backgrounds", "n_flips", "flip_rate", "stable", "to_background",
                    "flip_rate_same", "correct_own", "shift", "within", "relative_shift"]]

    def flip_summary(self) -> pd.DataFrame:
        """Per extractor and class: flip rate, background-stable share, flips to the background's class, shift.

        Returns
        -------
        DataFrame
            ``extractor, class, flip_rate, stable, to_background, flip_rate_same,
            correct_own, relative_shift`` (means over the class's test cells).
        """
        cols = ["flip_rate", "stable", "to_background", "flip_rate_same", "correct_own", "relative_shift"]
        per = self.flips_per_cell()
        per[["stable", "correct_own"]] = per[["stable", "correct_own"]].astype(float)
        return per.groupby(["extractor", "class"], sort=False)[cols].mean().reset_index()

    def summary(self) -> pd.DataFrame:
        """One row per extractor: every measure of the challenge beside chance.

        Returns
        -------
        DataFrame
            ``extractor, bg_only, bg_only_3se, base, worst_class_accuracy,
            worst_donor_accuracy, own, flip_rate, flip_rate_same, stable, to_background,
            relative_shift`` (flip measures: means over cells; the shift: the median).  A flip that
            picked another class at random would land on the donor's class with probability
            ``1 / (n_classes - 1)``, the chance level of ``to_background``.
        """
        bg = self.background_only_summary().set_index("extractor")
        worst = self.worst_summary().set_index("extractor")
        per = self.flips_per_cell()
        flips = per.groupby("extractor", sort=False).agg(
            flip_rate=("flip_rate", "mean"), flip_rate_same=("flip_rate_same", "mean"), stable=("stable", "mean"),
            to_background=("to_background", "mean"), relative_shift=("relative_shift", "median"))
        out = pd.concat([bg[["bg_only", "bg_only_3se", "base"]],
                         worst[["own", "worst_class_accuracy", "worst_donor_accuracy"]], flips], axis=1)
        return out.loc[self.names].rename_axis("extractor").reset_index()


def worst_background_classes(diff: pd.DataFrame) -> pd.DataFrame:
    """Per pair of a diff-swap results table: the mean over backgrounds and the most damaging one.

    The paper's protocol (an SVM trained and tested on the swapped crops, 5-fold) on the
    runner's ``diff`` table (``Location1, Location2, Background, Accuracy, StdDev``); the
    backgrounds of the pair's own classes are left out, as in the paper's aggregation.

    Examples
    --------
    >>> d = pd.DataFrame({"Location1": ["actin"] * 3, "Location2": ["ER"] * 3,
    ...                   "Background": ["Golgi", "nucleus", "vacuole"], "Accuracy": [0.9, 0.6, 0.8],
    ...                   "StdDev": [0.0] * 3})
    >>> worst_background_classes(d)[["worst_class", "worst_class_accuracy"]].values.tolist()
    [['nucleus', 0.6]]
    """
    for col in ("Location1", "Location2", "Background", "Accuracy"):
        if col not in diff.columns:
            raise ValueError(f"worst_background_classes: the table lacks column {col!r} (a diff-swap results table)")
    keep = diff[(diff["Background"] != diff["Location1"]) & (diff["Background"] != diff["Location2"])]
    if keep.empty:
        raise ValueError("worst_background_classes: no row has a background of a third class")
    rows = []
    for (a, b), g in keep.groupby(["Location1", "Location2"], sort=False):
        worst = g.loc[g["Accuracy"].idxmin()]
        rows.append({"Location1": a, "Location2": b, "mean": float(g["Accuracy"].mean()),
                     "worst_class": worst["Background"], "worst_class_accuracy": float(worst["Accuracy"])})
    return pd.DataFrame(rows)
