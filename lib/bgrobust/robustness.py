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

import numpy as np
import pandas as pd
import torch

from .vocabulary import CLASSES
from .classify import SVMProtocol
from .devices import resolve_device
from .vocabulary import CHANNELS


def minmax_per_channel(crops: np.ndarray) -> np.ndarray:
    """Scale every channel of every crop to [0, 1] (constant channels become 0).

    Examples
    --------
    >>> minmax_per_channel(np.arange(8, dtype=float).reshape(1, 2, 2, 2))[0, 1]
    array([[0.        , 0.33333333],
           [0.66666667, 1.        ]])
    """
    crops = np.asarray(crops, dtype=np.float64 if np.asarray(crops).dtype == np.float64 else np.float32)
    lo = crops.min(axis=(-2, -1), keepdims=True)
    span = crops.max(axis=(-2, -1), keepdims=True) - lo
    return np.where(span > 0, (crops - lo) / np.where(span > 0, span, 1), 0)


def as_extractor(extractor, *, channels: Sequence[str] = CHANNELS, preprocess: Callable | None = minmax_per_channel,
                 batch_size: int = 256, device=None) -> Callable[[np.ndarray], np.ndarray]:
    """A plain ``crops (N, 3, 64, 64) -> features (N, D)`` function from a callable or a Module.

    Parameters
    ----------
    extractor : callable or torch.nn.Module
        A callable receives the selected channels as a numpy array (after ``preprocess``)
        and returns an array ``(N, D)``. A Module receives a float32 tensor ``(B, C, 64, 64)``
        and may return ``(B, D)`` or feature maps ``(B, D, H, W)``, which are mean-pooled.
    channels : sequence of str
        Channels to pass, from :data:`bgrobust.screen.CHANNELS` (``("gfp",)`` for GFP only).
    preprocess : callable or None
        Applied to the selected channels before the extractor (default: per-crop,
        per-channel min-max scaling); None passes raw values.
    batch_size : int
        Crops per forward pass of a Module.
    device : None, str or torch.device
        Where a Module runs (:func:`bgrobust.devices.resolve_device`; the Module is moved
        there). Default: where its parameters are, else the CPU.
    """
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown or not channels:
        raise ValueError(f"channels must be a non-empty subset of {CHANNELS}, got {tuple(channels)}")
    idx = [CHANNELS.index(c) for c in channels]
    name = getattr(extractor, "__name__", type(extractor).__name__)

    if isinstance(extractor, torch.nn.Module):
        module = extractor.eval()
        if device is not None:
            dev = resolve_device(device)
            module.to(dev)
        else:
            params = list(module.parameters())
            dev = params[0].device if params else torch.device("cpu")

        def run(crops):
            x = np.asarray(crops)[:, idx]
            x = preprocess(x) if preprocess is not None else x
            out = []
            with torch.inference_mode():
                for start in range(0, len(x), batch_size):
                    z = module(torch.as_tensor(np.ascontiguousarray(x[start:start + batch_size]),
                                               dtype=torch.float32, device=dev))
                    if z.ndim == 4:
                        z = z.mean(dim=(2, 3))
                    if z.ndim != 2:
                        raise ValueError(f"extractor {name!r} returned a tensor of shape {tuple(z.shape)}; "
                                         "expected (B, D) or (B, D, H, W)")
                    out.append(z.float().cpu().numpy())
            return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
    elif callable(extractor):
        def run(crops):
            x = np.asarray(crops)[:, idx]
            return np.asarray(extractor(preprocess(x) if preprocess is not None else x))
    else:
        raise TypeError(f"extractor must be a callable or a torch.nn.Module, got {type(extractor).__name__}")

    def checked(crops):
        out = np.asarray(run(crops), dtype=np.float32)
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2 or len(out) != len(crops):
            raise ValueError(f"extractor {name!r} must return one feature vector per crop: got shape "
                             f"{out.shape} for {len(crops)} crops")
        if not np.isfinite(out).all():
            raise ValueError(f"extractor {name!r} returned NaN or infinite features")
        return out

    checked.__name__ = name
    return checked


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


def _verdict(name: str, drop: dict) -> str:
    text = f"same-loc minus diff-loc swap accuracy {drop['mean']:+.3f} [{drop['low']:+.3f}, {drop['high']:+.3f}]"
    if drop["low"] > 0:
        return f"{name} reads the background: {text} (3 SE interval above 0)."
    if drop["high"] < 0:
        return f"{name} is helped by different backgrounds: {text} (interval below 0)."
    return f"{name}: no background effect shown: {text} (interval includes 0)."


def _check_arguments(n_cells, classes, channels, random_state, n_jobs, protocol, sets) -> None:
    """Fail before any work, naming the argument, on values :func:`robustness_report` cannot use."""
    from .vocabulary import check_classes
    from .constraints import Instance, Integer, Optional, ParameterError, check_value

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
                      progress: bool = True, device=None) -> RobustnessReport:
    """Run the paper's five background experiments on any feature extractor.

    Parameters
    ----------
    extractor : callable or torch.nn.Module
        Maps crops to features (see :func:`as_extractor`). A bgrobust model is also
        accepted as such (it is then fed min-max scaled crops, not its own preprocessing;
        use :func:`bgrobust.pipeline.model_extractor` for the faithful path).
    dataset : bgrobust.dataset.Dataset, optional
        The crops to build the settings from; default: the profile's synthetic screen.
    profile : {"ci", "demo", "paper"}
        Parameter profile for the screen, the number of crops per set and the classes
        when ``dataset``, ``n_cells`` or ``classes`` are not given.
    sets : bgrobust.settings.SettingSets, optional
        Pre-generated settings (then ``dataset`` and ``n_cells`` are not used).
    n_cells : int, optional
        Crops per set and per class in the SVMs.
    classes : sequence of str, optional
    protocol : SVMProtocol, optional
        Default: the paper's protocol with ``n_per_class = n_cells``.
    channels, preprocess
        What the extractor sees (see :func:`as_extractor`).
    name : str, optional
        Display name.
    device : None, str or torch.device
        Where a Module runs (see :func:`as_extractor`; ``"auto"``: a CUDA GPU when present).

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

    import yaml

    from . import claims as claims_mod
    from . import pipeline, tables
    from .paths import PARAMS
    from .settings import generate_settings

    start = time.perf_counter()
    _check_arguments(n_cells, classes, channels, random_state, n_jobs, protocol, sets)
    cfg = {}
    if dataset is None or n_cells is None or classes is None:
        path = PARAMS / f"{profile}.yml"
        if not path.exists():
            raise ValueError(f"robustness_report: unknown profile {profile!r} (no file {path})")
        cfg = yaml.safe_load(path.read_text()) or {}
    classes = list(cfg.get("classes") or CLASSES) if classes is None else list(classes)
    if sets is None:
        if dataset is None:
            _, dataset = pipeline.chapter_dataset("synthetic", cfg.get("screen") or {}, cfg.get("dataset") or {},
                                                  seed=cfg.get("seed", 0), n_jobs=n_jobs, progress=progress)
        if n_cells is None:
            n_cells = int((cfg.get("settings") or {}).get("n_cells", 40))
        sets = generate_settings(dataset, n_cells, classes=classes, random_state=random_state, progress=progress)
    n_cells = int(sets.sets["n"].max() if n_cells is None else n_cells)
    protocol = protocol or SVMProtocol(n_per_class=n_cells)
    run = as_extractor(extractor, channels=channels, preprocess=preprocess, device=device)
    name = name or run.__name__
    feats = pipeline.setting_features(sets, run, progress=progress)
    results = pipeline.run_experiments(feats, protocol, classes=classes, n_jobs=n_jobs, progress=progress)
    nested = {name: results}
    t_all = tables.table1(nested, aggregation="all").drop(columns="model")
    t_paper = tables.table1(nested, aggregation="paper").drop(columns="model")
    table = t_all.merge(t_paper, on="experiment", suffixes=("", "_paper"))
    per_class = tables.per_class(results, "all")
    verdicts = claims_mod.evaluate_claims(nested, aggregation="all")
    d = claims_mod.paired_difference(per_class, "same", "diff")
    return RobustnessReport(name=name, results=results, table=table, per_class=per_class, claims=verdicts,
                            drop=d, verdict=_verdict(name, d), seconds=time.perf_counter() - start,
                            meta={"n_cells": n_cells, "classes": classes, "protocol": protocol.to_dict(),
                                  "channels": list(channels)})
