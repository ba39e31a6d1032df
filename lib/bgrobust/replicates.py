"""The five experiments again under other seeds: screen, training and sampling all reseeded.

One run of chapter 4 is one draw: a synthetic screen, three trainings and one sampling of
the sets, each from the chapter's ``seed``. A verdict that flips with the seed is not a
finding, so the claims of sections 4.1-4.4 are decided over several seeds. For each seed
:func:`run_seed` does what chapter 4 does (the screen of that seed, the models trained on
it, the sets drawn from it, the paper's SVMs on the three models' features) and returns its
:class:`~bgrobust.experiments.ExperimentResults`; :func:`run_replicates` runs several seeds,
several at once where the machine has the cores (each worker with its share of the
threads; every seed's screen, models, sets, features and SVMs are cached under their own
keys, so a re-run reads them back and concurrent runs never write the same entry), and
:class:`Replicates` puts them together: the claims with the spread between seeds beside the
within-run interval (:func:`bgrobust.claims.across_seeds`), and Table 1 per seed.

A :class:`Design` holds everything a run depends on except the seed; chapter 4 builds it
from its parameters, so the replicate seeds run exactly the chapter's protocol.

Examples
--------
>>> d = Design(settings={"n_cells": 8}, classes=("actin", "ER"))
>>> d.n_cells, d.generate_options()
(8, {})
>>> # reps = run_replicates(d, seeds=[1, 2])
>>> # reps.claims()  # one row per (section, model): mean, between-seed SD, verdict
"""
from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .claims import across_seeds
from .experiments import ExperimentResults, run_experiments
from .vocabulary import MODELS

__all__ = ["Design", "run_seed", "run_replicates", "Replicates"]


@dataclass(frozen=True)
class Design:
    """Everything a run of the five experiments depends on, except the seed.

    Parameters
    ----------
    screen_source : {"synthetic", "manifest"}
        Where the crops come from (:func:`bgrobust.dataset.open_dataset`). A manifest's screen
        is the same for every seed; only training and sampling are reseeded then.
    screen, dataset : mapping
        :class:`bgrobust.synth.ScreenConfig` and :class:`bgrobust.dataset.DatasetParams`
        fields (the screen's ``seed`` is the run's seed).
    manifest_path, labels_path : str, optional
        A real screen's manifest and labels (``screen_source="manifest"``).
    training : mapping
        :class:`bgrobust.train.TrainParams` fields, common and per model.
    settings : mapping
        ``n_cells`` and any option of :func:`bgrobust.settings.generate_settings`.
    svm : mapping
        :class:`bgrobust.classify.SVMProtocol` fields (``n_per_class`` defaults to ``n_cells``).
    pooling : str
        Global pooling of the convolutional maps.
    layers : mapping
        Model -> layer (default: the paper's layers).
    classes : sequence of str, optional
        The localization classes (default: all 15).
    models : sequence of str
        The models trained and evaluated.
    precision : str
        The networks' arithmetic in training and extraction
        (:func:`bgrobust.devices.check_precision`; ``"auto"`` is resolved on the machine that
        runs the seed).
    """

    screen_source: str = "synthetic"
    screen: Mapping = field(default_factory=dict)
    dataset: Mapping = field(default_factory=dict)
    manifest_path: str | None = None
    labels_path: str | None = None
    training: Mapping = field(default_factory=dict)
    settings: Mapping = field(default_factory=lambda: {"n_cells": 30})
    svm: Mapping = field(default_factory=dict)
    pooling: str = "mean"
    layers: Mapping = field(default_factory=dict)
    classes: Sequence[str] | None = None
    models: Sequence[str] = MODELS
    precision: str = "float32"

    def __post_init__(self):
        for name in ("screen", "dataset", "training", "settings", "svm", "layers"):
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, {})
            elif not isinstance(value, Mapping):
                raise TypeError(f"Design: {name} must be a mapping, got {type(value).__name__}")
        if "n_cells" not in self.settings:
            raise ValueError("Design: settings must hold n_cells (crops per set)")
        n = self.settings["n_cells"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"Design: settings['n_cells'] must be an integer >= 1, got {n!r}")
        if self.screen_source not in ("synthetic", "manifest"):
            raise ValueError(f"Design: screen_source must be 'synthetic' or 'manifest', got {self.screen_source!r}")
        if not self.models:
            raise ValueError("Design: models is empty")
        from .devices import PRECISIONS

        if self.precision != "auto" and self.precision not in PRECISIONS:
            raise ValueError(f"Design: precision must be 'auto' or one of {PRECISIONS}, got {self.precision!r}")

    @property
    def n_cells(self) -> int:
        return int(self.settings["n_cells"])

    def generate_options(self) -> dict:
        """The options of :func:`bgrobust.settings.generate_settings` (``settings`` less ``n_cells``)."""
        return {k: v for k, v in self.settings.items() if k != "n_cells"}

    def protocol(self):
        """The SVM protocol: the paper's, with ``n_per_class = n_cells`` unless ``svm`` says otherwise."""
        from .classify import SVMProtocol

        return SVMProtocol(**{"n_per_class": self.n_cells, **self.svm})

    def to_dict(self) -> dict:
        return asdict(self)


def run_seed(design: Design, seed: int, *, n_jobs: int = 1, device=None, progress: bool = False,
             keep_features: bool = False) -> ExperimentResults:
    """Chapter 4 under one seed: the screen, the trained models, the sets and the SVMs of ``seed``.

    Every supervised model is evaluated only on proteins it did not train on
    (:func:`evaluated_proteins`); the result's ``meta`` records the seed, the number of
    evaluated proteins and the seconds the run took.

    Returns
    -------
    ExperimentResults
    """
    from .dataset import open_dataset
    from .extractors import ModelFeatures
    from .paths import cache_folder
    from .settings import generate_settings
    from .train import evaluated_proteins, train_models
    from .vocabulary import CLASSES

    if not isinstance(design, Design):
        raise TypeError(f"run_seed: design must be a bgrobust.replicates.Design, got {type(design).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"run_seed: seed must be an integer >= 0, got {seed!r}")
    t0 = time.perf_counter()
    _, ds = open_dataset(design.screen_source, dict(design.screen), dict(design.dataset), seed=seed,
                         manifest_path=design.manifest_path, labels_path=design.labels_path, n_jobs=n_jobs,
                         progress=progress)
    trained = train_models(ds, dict(design.training), tuple(design.models), seed=seed, progress=progress,
                           device=device, precision=design.precision)
    evaluated = evaluated_proteins(ds.crops.table, trained)
    sets = generate_settings(ds.restricted_to(evaluated), design.n_cells, classes=list(design.classes or CLASSES),
                             random_state=seed, progress=progress, **design.generate_options())
    extractors = {name: ModelFeatures(res.model, design.layers.get(name), design.pooling,
                                      cache_dir=cache_folder("features"), device=device, precision=design.precision)
                  for name, res in trained.items()}
    res = run_experiments(sets, extractors, design.protocol(), n_jobs=n_jobs, progress=progress,
                          cache_dir=cache_folder("svm"), keep_features=keep_features)
    res.meta.update({"seed": seed, "n_evaluated_proteins": len(evaluated),
                     "seconds": time.perf_counter() - t0})
    return res


def _worker(design: Design, seed: int, threads: int, device) -> tuple[ExperimentResults, list]:
    """One seed in a worker process with ``threads`` torch threads and serial SVMs; its warnings
    come back with the result (a worker's stderr is not the caller's)."""
    import torch

    torch.set_num_threads(threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_seed(design, seed, n_jobs=1, device=device, progress=False)
    return res, [(w.category, str(w.message)) for w in caught]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run_replicates(design: Design, seeds: Sequence[int], *, parallel: int | None = None, n_jobs: int = 1,
                   device=None, progress: bool = True) -> "Replicates":
    """:func:`run_seed` for every seed, ``parallel`` seeds at once.

    Parameters
    ----------
    design : Design
    seeds : sequence of int
        Distinct seeds.
    parallel : int, optional
        Seeds run at once, each in its own process with ``cores // parallel`` torch threads
        and serial SVMs. Whether that pays depends on the stage (``benchmarks/bench_threads.py``
        on 2 cores: two single-threaded extractions do 0.7-1.8x the work of one two-threaded
        one, by model; in the demo book, ``benchmarks/results/demo_book.json``, the two replicate
        seeds took 461 s side by side, where the same work for the chapter's own seed in two
        threads, screen + training + experiments of chapters 1, 2 and 4, took 337 s). Default:
        as many as there are
        seeds and cores. ``1`` runs the seeds one after the other in this process with
        ``n_jobs`` SVM workers.
    n_jobs : int
        SVM workers of a serial run (``parallel=1``).
    device : None, str or torch.device
        Where the networks run (a GPU is shared by the seeds one at a time: use
        ``parallel=1`` there).
    progress : bool
        A tqdm bar over the seeds.

    Returns
    -------
    Replicates
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("run_replicates: seeds is empty")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"run_replicates: seeds must be integers >= 0, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"run_replicates: seeds must be distinct, got {seeds}")
    cores = _cores()
    if parallel is None:
        parallel = max(1, min(len(seeds), cores))
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise ValueError(f"run_replicates: parallel must be an integer >= 1, got {parallel!r}")
    parallel = min(parallel, len(seeds))
    runs: dict[int, ExperimentResults] = {}
    bar = tqdm(total=len(seeds), desc="replicate seeds", unit="seed", disable=not progress)
    if parallel == 1:
        for s in seeds:
            runs[s] = run_seed(design, s, n_jobs=n_jobs, device=device, progress=False)
            bar.update()
    else:
        from joblib import Parallel, delayed

        threads = max(1, cores // parallel)
        jobs = Parallel(n_jobs=parallel, backend="loky", return_as="generator")(
            delayed(_worker)(design, s, threads, device) for s in seeds)
        for s, (res, caught) in zip(seeds, jobs):
            runs[s] = res
            for category, message in dict.fromkeys(caught):
                warnings.warn(f"seed {s}: {message}", category, stacklevel=2)
            bar.update()
    bar.close()
    return Replicates(runs)


@dataclass
class Replicates:
    """Several seeds' :class:`~bgrobust.experiments.ExperimentResults` of one design.

    Attributes
    ----------
    runs : dict
        ``{seed: ExperimentResults}``; every run has the same extractors.
    """

    runs: dict

    def __post_init__(self):
        if not isinstance(self.runs, Mapping) or not self.runs:
            raise ValueError("Replicates: runs must be a non-empty mapping of seed to ExperimentResults")
        names = None
        for seed, res in self.runs.items():
            if not isinstance(res, ExperimentResults):
                raise TypeError(f"Replicates: runs[{seed!r}] must be ExperimentResults, got {type(res).__name__}")
            if names is None:
                names = res.names
            elif sorted(res.names) != sorted(names):
                raise ValueError(f"Replicates: runs[{seed!r}] has extractors {res.names}, the first run {names}")
        self.runs = dict(self.runs)

    @property
    def seeds(self) -> list:
        return list(self.runs)

    def with_run(self, seed: int, res: ExperimentResults) -> "Replicates":
        """These seeds and one more (e.g. the chapter's own run), the given seed first."""
        if seed in self.runs:
            raise ValueError(f"Replicates: seed {seed!r} is already there")
        return Replicates({seed: res, **self.runs})

    def claim_tables(self, aggregation: str = "all", **kw) -> pd.DataFrame:
        """Every seed's claims (:func:`bgrobust.claims.evaluate_claims`), one long table with a ``seed`` column."""
        return pd.concat([res.claims(aggregation, **kw).assign(seed=s) for s, res in self.runs.items()],
                         ignore_index=True)

    def claims(self, aggregation: str = "all", **kw) -> pd.DataFrame:
        """The claims over the seeds (:func:`bgrobust.claims.across_seeds`), with the claim's text.

        With one seed the same columns come back: its difference as mean, min and max, no
        between-seed SD (NaN), its interval's half-width, and the verdict of that one run.
        """
        per_seed = [res.claims(aggregation, **kw) for res in self.runs.values()]
        if len(per_seed) == 1:
            one = per_seed[0]
            out = one[["section", "model"]].assign(
                n_seeds=1, mean=one["difference"], between_seed_sd=np.nan, min=one["difference"],
                max=one["difference"], within_run_halfwidth=(one["high"] - one["low"]) / 2,
                n_holds=one["holds"].astype(int), sd_over_halfwidth=np.nan,
                verdict=np.where(one["holds"], "holds in the one seed", "holds in no seed"))
        else:
            out = across_seeds(per_seed).reset_index()
        text = per_seed[0].drop_duplicates("section").set_index("section")["claim"]
        out.insert(1, "claim", out["section"].map(text))
        return out

    def table1(self, aggregation: str = "paper") -> pd.DataFrame:
        """Table 1 of every seed (long: ``seed, model, experiment, mean, three_se``)."""
        return pd.concat([res.table1(aggregation).assign(seed=s) for s, res in self.runs.items()],
                         ignore_index=True)

    def table1_spread(self, aggregation: str = "paper") -> pd.DataFrame:
        """Per model and experiment: the mean over seeds, the between-seed SD, min and max of Table 1's mean."""
        t = self.table1(aggregation)
        g = t.groupby(["model", "experiment"], sort=False)["mean"]
        return pd.DataFrame({"n_seeds": g.size(), "mean": g.mean(), "between_seed_sd": g.std(ddof=1),
                             "min": g.min(), "max": g.max()}).reset_index()

    def seconds(self) -> pd.Series:
        """Wall seconds of each seed's run (as recorded by :func:`run_seed`)."""
        return pd.Series({s: res.meta.get("seconds", float("nan")) for s, res in self.runs.items()},
                         name="seconds")
