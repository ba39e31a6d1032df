"""The book's pipeline: one call per stage, every stage cached.

The chapters are separate notebooks, each run in its own kernel; they meet through the
on-disk caches of the stages below, so the second chapter that needs the trained models
or the generated settings loads them instead of recomputing them.

Stages, in the order data flows:

1. :func:`chapter_dataset`: the screen and its crops (:mod:`bgrobust.dataset`);
2. :func:`train_models`: the three feature extractors, trained on the screen
   (:mod:`bgrobust.train`); :func:`untrained_models` gives random-init copies;
3. :func:`model_extractor`: a model, layer and pooling turned into a plain callable
   ``crops -> features`` (any such callable works in the next stage);
4. :func:`setting_features` and :func:`run_experiments`: the five experiments for one
   extractor, as per-pair results in the paper's CSV layout (:mod:`bgrobust.settings`,
   :mod:`bgrobust.classify`).

Examples
--------
>>> from bgrobust.pipeline import split_training
>>> split_training({"width": 0.25, "epochs": 2, "pci": {"epochs": 1}}, "pci")
{'width': 0.25, 'epochs': 1}
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .vocabulary import CLASSES
from .classify import SVMProtocol, evaluate_pairs, evaluate_triplets
from .dataset import DatasetParams, load_or_build, open_screen
from .paths import run_dir

#: The paper's three models, in the paper's order.
MODELS: tuple[str, ...] = ("pifia", "pci", "deeploc")
#: The experiments whose sets are keyed by class only (the pairwise layout).
PAIR_EXPERIMENTS = ("base", "mask", "same")
#: The experiments keyed by (centre, background) (the triplet layout).
TRIPLET_EXPERIMENTS = ("diff", "batch")


def chapter_dataset(screen_source="synthetic", screen=None, dataset=None, *, seed=0, manifest_path=None,
                    labels_path=None, n_jobs=1, progress=True):
    """The screen and its dataset from a chapter's parameters (both cached).

    Returns
    -------
    screen : bgrobust.screen.Screen
    dataset : bgrobust.dataset.Dataset
    """
    screen_params = {"seed": seed, **(screen or {})}
    data = open_screen(screen_source, screen_params, manifest_path=manifest_path, labels_path=labels_path,
                       n_jobs=n_jobs, progress=progress)
    ds = load_or_build(data, DatasetParams.from_dict(dataset), n_jobs=n_jobs, progress=progress)
    return data, ds


def split_training(training: Mapping | None, name: str) -> dict:
    """One model's training parameters from a profile's ``training`` mapping.

    Top-level keys apply to every model; a key named after a model (``pifia``, ``pci``,
    ``deeploc``) holds that model's overrides.
    """
    training = dict(training or {})
    common = {k: v for k, v in training.items() if k not in MODELS}
    own = training.get(name) or {}
    if not isinstance(own, Mapping):
        raise TypeError(f"training.{name} must be a mapping of parameters, got {own!r}")
    return {**common, **own}


def train_models(dataset, training: Mapping | None = None, models=MODELS, *, seed: int = 0, cache_dir=None,
                 progress: bool = True, device=None) -> dict:
    """Train (or load from the cache) each model on the dataset's crops.

    Parameters
    ----------
    dataset : bgrobust.dataset.Dataset
    training : mapping, optional
        Parameters of :class:`bgrobust.train.TrainParams`, common and per model (see
        :func:`split_training`).
    models : sequence of str
    seed : int
        Default seed of every training (a ``seed`` in ``training`` wins).
    device : None, str or torch.device
        Where trainings that are not cached run (``"auto"``: a CUDA GPU when present).

    Returns
    -------
    dict of str to bgrobust.train.TrainResult
    """
    from .train import TrainParams, load_or_train

    results = {}
    for name in models:
        params = TrainParams.from_dict({"seed": seed, **split_training(training, name)}, model=name)
        results[name] = load_or_train(name, dataset.crops, params, cache_dir=cache_dir, progress=progress,
                                      device=device)
    return results


def untrained_models(trained: Mapping, *, seed: int = 0) -> dict:
    """Random-init copies of trained models: same architecture, width and head size.

    The untrained baseline of "what are we learning": the same layer and pooling read
    from a network that never saw the screen.
    """
    from .models import build

    copies = {}
    for name, result in trained.items():
        n_classes = len(result.labels) if result.labels else None
        kwargs = {"n_classes": n_classes} if n_classes else {}
        copies[name] = build(name, width=result.params.width, random_state=seed, **kwargs).eval()
    return copies


def model_extractor(model: torch.nn.Module, layer: str | None = None, pooling: str = "max", *,
                    cache_dir=None, progress: bool = False, device=None) -> Callable[[np.ndarray], np.ndarray]:
    """A bgrobust model at one layer as a callable ``crops (N, 3, 64, 64) -> features (N, D)``."""
    from .features import extract

    def extractor(crops):
        return extract(model, crops, layer, pooling, cache_dir=cache_dir, progress=progress, device=device)

    extractor.__name__ = f"{getattr(model, 'name', type(model).__name__)}:{layer}:{pooling}"
    return extractor


def setting_features(sets, extractor: Callable[[np.ndarray], np.ndarray], *, batch_size: int = 4096,
                     with_masks: bool = False, progress: bool = True) -> dict:
    """Features of every set of a :class:`~bgrobust.settings.SettingSets`.

    The extractor sees all crops in large batches (so a model's own batching and caching
    apply) and the rows are split back into sets. With ``with_masks`` it is called as
    ``extractor(images, masks)`` with the centre-cell masks of the crops (the pasted cell
    in a swap), for extractors that need to know where the centre cell is.

    Returns
    -------
    dict of (setting, centre, background) to ndarray (n, D)
    """
    from tqdm.auto import tqdm

    n = len(sets.images)
    chunks = []
    starts = range(0, n, batch_size)
    for start in tqdm(starts, desc="features", unit="batch", disable=not progress):
        stop = min(start + batch_size, n)
        images = np.asarray(sets.images[start:stop])
        out = extractor(images, np.asarray(sets.masks[start:stop])) if with_masks else extractor(images)
        out = np.asarray(out, dtype=np.float32)
        if out.ndim != 2 or len(out) != stop - start:
            raise ValueError(f"extractor {getattr(extractor, '__name__', extractor)!r} must map "
                             f"{stop - start} crops to an (N, D) array, got shape {out.shape}")
        chunks.append(out)
    feats = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
    return {(r.setting, r.centre_class, r.background_class): feats[int(r.start):int(r.stop)]
            for r in sets.sets.itertuples()}


def run_experiments(features: Mapping, protocol: SVMProtocol | None = None, *, classes=CLASSES,
                    experiments=("base", "mask", "same", "diff", "batch"), n_jobs: int = 1,
                    progress: bool = True, cache_dir=None) -> dict[str, pd.DataFrame]:
    """The five experiments' per-pair (or per-triplet) SVM accuracies for one extractor.

    Parameters
    ----------
    features : mapping
        ``(setting, centre, background) -> (n, D)`` from :func:`setting_features`. Empty
        sets (a class without cell-free crops on a tiny screen) are left out of the triplets.
    protocol : SVMProtocol, optional
        Default: the paper's protocol.

    Returns
    -------
    dict of experiment to DataFrame
        The paper's CSV layout (``Location1, Location2, [Background,] Accuracy, StdDev``).
    """
    protocol = protocol or SVMProtocol()
    out = {}
    for exp in experiments:
        if exp in PAIR_EXPERIMENTS:
            feats = {c: features[(exp, c, c)] for c in classes if len(features.get((exp, c, c), ())) > 0}
            missing = sorted(set(classes) - set(feats))
            if missing:
                raise ValueError(f"experiment {exp!r}: no crops for class(es) {', '.join(missing)}")
            out[exp] = evaluate_pairs(feats, protocol, classes=classes, n_jobs=n_jobs, progress=progress,
                                      cache_dir=cache_dir)
        elif exp in TRIPLET_EXPERIMENTS:
            feats = {(c, b): x for (s, c, b), x in features.items() if s == exp and len(x) > 0}
            out[exp] = _triplets_available(feats, protocol, classes, n_jobs, progress, cache_dir)
        else:
            raise ValueError(f"unknown experiment {exp!r}; expected one of {PAIR_EXPERIMENTS + TRIPLET_EXPERIMENTS}")
    return out


def _triplets_available(feats, protocol, classes, n_jobs, progress, cache_dir) -> pd.DataFrame:
    """Triplets for the backgrounds that have crops for both centres (all of them on a full screen)."""
    backgrounds = [b for b in classes if all((c, b) in feats for c in classes if c != b)]
    if len(backgrounds) == len(classes):
        return evaluate_triplets(feats, protocol, classes=classes, n_jobs=n_jobs, progress=progress,
                                 cache_dir=cache_dir)
    rows = []
    for b in classes:
        centres = [c for c in classes if c != b and (c, b) in feats]
        if len(centres) < 2:
            continue
        df = evaluate_triplets({(c, b): feats[(c, b)] for c in centres}, protocol, classes=centres,
                               background_classes=[b], n_jobs=n_jobs, progress=False, cache_dir=cache_dir)
        rows.append(df)
    if not rows:
        return pd.DataFrame(columns=["Location1", "Location2", "Background", "Accuracy", "StdDev"])
    df = pd.concat(rows, ignore_index=True)
    # the paper's file order: pair by pair, backgrounds inside each pair
    order = {c: i for i, c in enumerate(classes)}
    df["_k"] = [(order[a], order[b], order[g]) for a, b, g in zip(df.Location1, df.Location2, df.Background)]
    return df.sort_values("_k").drop(columns="_k").reset_index(drop=True)


def five_experiments(sets, extractor, protocol: SVMProtocol | None = None, *, classes=CLASSES,
                     n_jobs: int = 1, progress: bool = True, cache_dir=None) -> tuple[dict, float]:
    """Features of every set, then the five experiments; returns ``(results, seconds)``."""
    start = time.perf_counter()
    feats = setting_features(sets, extractor, progress=progress)
    results = run_experiments(feats, protocol, classes=classes, n_jobs=n_jobs, progress=progress,
                              cache_dir=cache_dir)
    return results, time.perf_counter() - start


def results_dir(profile: str, name: str = "results"):
    """Where a profile's per-pair results are written (the paper's folder layout)."""
    path = run_dir(profile) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


#: The columns of Supp. Table 1 and the layer of each model they name ("final" is the
#: feature layer before the classifier head; PCI's ``convK`` is ``convK_1``).
TABLE_LAYERS: dict[str, dict[str, str]] = {
    "pifia": {**{f"conv{k}": f"conv{k}" for k in range(1, 9)}, "final": "d2"},
    "pci": {f"conv{k}": f"conv{k}_1" for k in range(1, 6)},
    "deeploc": {**{f"conv{k}": f"conv{k}" for k in range(1, 9)}, "final": "fc2"},
}


def balanced_crops(dataset, proteins_per_class: int = 3, cells_per_protein: int = 20, *, classes=CLASSES,
                   random_state: int = 0):
    """A balanced set of valid crops of single-localized proteins (appendix A's design).

    Up to ``proteins_per_class`` random proteins per class and ``cells_per_protein`` random
    valid crops of each; the rows of a class are shuffled so that the unshuffled
    5-fold split of the paper's protocol does not fall along protein boundaries.

    Returns
    -------
    crops : CropSet
        Table has ``localization`` (the class) and ``strain``.
    report : DataFrame
        Per class: proteins used and crops used.
    """
    if proteins_per_class < 1 or cells_per_protein < 1:
        raise ValueError("balanced_crops: proteins_per_class and cells_per_protein must be >= 1, got "
                         f"{proteins_per_class} and {cells_per_protein}")
    rng = np.random.default_rng(random_state)
    valid = dataset.valid_crops()
    table = valid.table
    picked, rows = [], []
    for c in classes:
        strains = sorted(table.loc[table["kind"].eq("single") & table["localization"].eq(c), "strain"].unique())
        if not strains:
            raise ValueError(f"balanced_crops: class {c!r} has no single-localized protein with valid crops")
        chosen = rng.choice(strains, size=min(proteins_per_class, len(strains)), replace=False)
        idx = []
        for s in chosen:
            pos = np.flatnonzero(table["strain"].eq(s).to_numpy())
            idx.extend(rng.choice(pos, size=min(cells_per_protein, len(pos)), replace=False))
        idx = rng.permutation(np.asarray(idx))
        picked.append(idx)
        rows.append({"class": c, "proteins": len(chosen), "crops": len(idx)})
    return valid.subset(np.concatenate(picked)), pd.DataFrame(rows)


def layer_accuracies(model, crops, labels, layers, pooling: str = "max", protocol: SVMProtocol | None = None, *,
                     classes=CLASSES, n_jobs: int = 1, progress: bool = True, cache_dir=None,
                     device=None) -> pd.DataFrame:
    """Mean pairwise SVM accuracy over the class pairs for every layer of a model.

    Returns
    -------
    DataFrame
        One row per layer: ``layer``, ``accuracy`` (mean over pairs), ``sd`` (over pairs),
        ``n_pairs``, ``dim`` (feature dimension).
    """
    from .features import extract_layers

    labels = np.asarray(labels)
    feats = extract_layers(model, crops, list(layers), pooling, progress=progress, cache_dir=cache_dir,
                           device=device)
    rows = []
    for layer in layers:
        per_class = {c: feats[layer][labels == c] for c in classes}
        n = min(len(v) for v in per_class.values())
        proto = protocol or SVMProtocol(n_per_class=n)
        res = evaluate_pairs(per_class, proto, classes=classes, n_jobs=n_jobs, progress=False, cache_dir=cache_dir)
        rows.append({"layer": layer, "accuracy": res["Accuracy"].mean(), "sd": res["Accuracy"].std(ddof=1),
                     "n_pairs": len(res), "dim": feats[layer].shape[1]})
    return pd.DataFrame(rows)


def cache_folder(kind: str):
    """A shared cache folder (``runs/shared/<kind>``); contents are keyed by content."""
    path = run_dir("shared") / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def paper_experiments(sets, models: Mapping, *, layers: Mapping | None = None, pooling: str = "mean",
                      protocol: SVMProtocol | None = None, classes=CLASSES, n_jobs: int = 1,
                      progress: bool = True, results_folder=None, device=None) -> tuple[dict, dict, pd.DataFrame]:
    """The five experiments for several models at their paper layers (all stages cached).

    Parameters
    ----------
    sets : bgrobust.settings.SettingSets
    models : mapping of name to torch.nn.Module
        bgrobust models (keys are model names).
    layers : mapping, optional
        Layer per model; default the paper's layer (``get_spec(name).paper_layer``).
    results_folder : path, optional
        Where to write the per-pair CSVs in the paper's layout (``<folder>/<model>/results_<exp>.csv``).
    device : None, str or torch.device
        Where the features are computed (``"auto"``: a CUDA GPU when present).

    Returns
    -------
    results : dict
        ``{model: {experiment: DataFrame}}`` (the layout of :func:`bgrobust.tables.read_paper_results`).
    features : dict
        ``{model: {(setting, centre, background): ndarray}}``.
    timing : DataFrame
        Seconds per model.
    """
    from .models import get_spec
    from .tables import write_results

    layers = dict(layers or {})
    results, features, timing = {}, {}, []
    for name, model in models.items():
        layer = layers.get(name) or get_spec(name).paper_layer
        extractor = model_extractor(model, layer, pooling, cache_dir=cache_folder("features"), device=device)
        start = time.perf_counter()
        features[name] = setting_features(sets, extractor, progress=progress)
        t_feat = time.perf_counter() - start
        results[name] = run_experiments(features[name], protocol, classes=classes, n_jobs=n_jobs,
                                        progress=progress, cache_dir=cache_folder("svm"))
        timing.append({"model": name, "layer": layer, "pooling": pooling, "features_s": t_feat,
                       "svm_s": time.perf_counter() - start - t_feat})
    if results_folder is not None:
        write_results(results, results_folder)
    return results, features, pd.DataFrame(timing)


def neighbour_mismatch(screen, table: pd.DataFrame, half_window: int = 32) -> np.ndarray:
    """Per crop: the fraction of the other true cells in its window whose class differs.

    Uses the synthetic screen's truth (``screen.cells``: field, label, y, x,
    localization). A neighbour is a true cell whose centre lies within the crop window
    (``|dy|, |dx| < half_window``). NaN for crops without a matched true cell or without
    neighbours.

    Parameters
    ----------
    screen : bgrobust.screen.Screen
        A screen with truth.
    table : DataFrame
        Crop table with ``field``, ``y``, ``x``, ``truth_label`` and ``true_localization``.
    """
    if not screen.has_truth:
        raise ValueError("neighbour_mismatch needs a screen with truth (a synthetic screen)")
    for col in ("field", "y", "x", "truth_label", "true_localization"):
        if col not in table.columns:
            raise ValueError(f"neighbour_mismatch: crop table lacks column {col!r}")
    out = np.full(len(table), np.nan)
    cells = screen.cells.groupby("field")
    positions = table.reset_index(drop=True).groupby("field").indices
    for field, rows in positions.items():
        if field not in cells.groups:
            continue
        c = cells.get_group(field)
        cy, cx = c["y"].to_numpy(float), c["x"].to_numpy(float)
        clab, cloc = c["label"].to_numpy(), c["localization"].to_numpy()
        for i in rows:
            r = table.iloc[i]
            if pd.isna(r.true_localization):
                continue
            near = (np.abs(cy - r.y) < half_window) & (np.abs(cx - r.x) < half_window) & (clab != r.truth_label)
            if near.any():
                out[i] = float(np.mean(cloc[near] != r.true_localization))
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
    from .classify import evaluate_pairs_held_out

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


def load_or_fit_vae(dataset, params: Mapping | None = None, *, cache_dir=None, progress: bool = True):
    """The VAE baseline (:mod:`bgrobust.vae`) fitted on the valid crops, cached on disk.

    ``params`` are :class:`bgrobust.vae.VAEParams` fields; ``preset: demo`` starts from
    :meth:`~bgrobust.vae.VAEParams.demo` (the short CPU run) instead of the original's values.

    Returns
    -------
    model : bgrobust.vae.VAE
    history : DataFrame
    seconds : float
        Wall time of the fit (of the original fit when loaded from the cache).
    """
    import json

    from .cache import atomic_dir, code_key, content_key, load_or_create
    from .vae import VAEParams, fit_vae, load_vae, save_vae

    params = dict(params or {})
    preset = params.pop("preset", None)
    if preset not in (None, "demo"):
        raise ValueError(f"vae.preset must be 'demo' or absent, got {preset!r}")
    vp = VAEParams.demo(**params) if preset == "demo" else VAEParams(**params)
    valid = dataset.valid_crops()
    from .train import data_fingerprint

    key = content_key(repr(vp), data_fingerprint(valid, "pifia"), code_key("bgrobust.vae"))
    folder = Path(cache_dir or cache_folder("models")) / f"vae-{key}"

    def build(path):
        start = time.perf_counter()
        model, history = fit_vae(valid.images, vp, progress=progress)
        seconds = time.perf_counter() - start
        with atomic_dir(path, seal=True) as tmp:
            save_vae(model, tmp / "vae.pt")
            history.to_csv(tmp / "history.csv", index=False)
            (tmp / "info.json").write_text(json.dumps({"seconds": seconds, "params": repr(vp)}))

    def load(path):
        info = json.loads((path / "info.json").read_text())
        return load_vae(path / "vae.pt"), pd.read_csv(path / "history.csv"), info["seconds"]

    return load_or_create(folder, build, load, what="fitted VAE")


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
        d = paired_difference(per_class(res, "all"), "same", "diff")
        row.update({"drop": d["mean"], "drop_low": d["low"], "drop_high": d["high"]})
        rows.append(row)
    out = pd.DataFrame(rows).set_index("extractor")
    if reference:
        # the columns exist even when no reference shows a drop (NaN = not computed)
        out["drop_removed"] = np.nan
        out["baseline_cost"] = np.nan
        for name, ref in reference.items():
            if name in out.index and ref in out.index:
                if out.loc[ref, "drop_low"] > 0:  # a share of a drop only where there is one
                    out.loc[name, "drop_removed"] = (out.loc[ref, "drop"] - out.loc[name, "drop"]) / out.loc[ref, "drop"]
                out.loc[name, "baseline_cost"] = out.loc[ref, "base"] - out.loc[name, "base"]
    return out.reset_index()
