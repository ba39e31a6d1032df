"""Training the three models with their original objectives, resumable and cached.

Objectives (what each original code base optimises):

* **PIFiA**: protein-identity classification. Every strain present in the training crops is a
  class (sorted strain names); softmax cross-entropy on ``d3``; Adam (lr 3e-4) with cosine decay
  over all steps, dropout 0.02, batch 128, 30 epochs; random left/right and up/down flips.
* **PCI**: paired cell inpainting. Every source crop gets a partner cell of the same strain,
  drawn anew each epoch from the same field (fallback: the same strain in any field); the model
  sees the source's GFP + marker and the partner's marker and predicts the partner's GFP; MSE.
  Adam lr 1e-4, beta1 0.5, batch 64, 30 epochs; flips drawn independently for source and target.
* **DeepLoc**: supervised classification of the 15 localization classes
  (:data:`bgrobust.vocabulary.CLASSES` order) on single-localized strains (``kind == "single"``);
  softmax cross-entropy; Adam lr 0.1 decayed x0.96 every 25 steps (staircase), batch 128,
  at most 5000 steps (the released checkpoint); a random 60x60 crop, flips and ``rot90`` with
  k in {0, 1, 2} (the original never draws k = 3).

Inputs always go through :func:`bgrobust.models.prepare_input` (each model's normalisation),
augmentation runs on the normalised tensors. Only crops that pass the paper's filters
(``table.valid``) are used unless ``valid_only=False``.

Determinism and resuming
------------------------
All randomness comes from :class:`torch.Generator` objects: the initialisation from
``seed``, and every epoch's shuffling, PCI partners, augmentation and PIFiA's dropout from a
generator seeded by ``(seed, epoch)``. The global RNGs are never touched, so a training is
bit-identical on CPU given its parameters and data. Because each epoch's random stream is a
function of ``(seed, epoch)`` and the learning rate a function of the step, the end-of-epoch
checkpoint (model, optimizer, step, epoch, history) is all a run needs to continue exactly
where it stopped: an interrupted training resumed from its last checkpoint gives the same
weights as an uninterrupted one. Checkpoints are written atomically and carry the training's
key; one with another key, or one that cannot be read, is ignored.

Work per epoch is bounded by ``max_crops_per_epoch`` (a fresh random subset each epoch) and the
whole run by ``max_steps``.

Remedies for background-sensitive features
------------------------------------------
The paper's discussion names three remedies for features that depend on the cells around the
centre cell. Two are training options; the third, centre-weighted pooling, is a read-out option
(``pooling="centre"`` in :mod:`bgrobust.features`). ``init_from`` makes the first two cheap:

* ``augment="background_swap"``: each training crop is, with probability
  ``swap_probability``, replaced by its centre cell (the CropSet's ``masks``) pasted onto the
  crop of a random training crop of *another* protein (strain), both standardised with their
  own protein's per-channel mean and std first, exactly as the paper's swap settings are made
  (:func:`bgrobust.settings.protein_stats`, :func:`~bgrobust.settings.standardize`,
  :func:`~bgrobust.settings.composite`). The target stays the centre cell's: its protein
  (PIFiA), its class (DeepLoc); PCI augments the source crop only, never the partner (target).
  Crops that are not swapped stay raw; every model's preprocessing is invariant to the
  per-channel affine map of standardisation, so both kinds reach the network on the same scale.
  The draws come from the epoch generator, so such a training is deterministic and resumes
  exactly like any other.
* ``input="masked"``: every training input (PCI: source and partner) has all pixels outside
  its centre mask set to 0 before preprocessing; read such a model's features with
  ``features.extract(..., mask_input=True)``.
* ``init_from``: start from a saved state dict (e.g. ``TrainResult.path`` of the original
  training) instead of a random initialisation, so a remedy can be a short fine-tuning. A fresh
  Adam state and the learning-rate schedule of the new parameters are used.

While these fields are at their defaults (``"none"``, ``"crop"``, ``None``) they are left out of
the training key, so a training that does not use them is described by the same parameters as
before they existed (the key also digests this module's code, as always).

Examples
--------
>>> params = TrainParams.for_model("pci", epochs=2, width=0.25)
>>> params.lr, params.betas, params.independent_flips
(0.0001, (0.5, 0.999), True)
>>> TrainParams.for_model("pifia", augment="background_swap").swap_probability
0.5
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .cache import (CacheWarning, array_digest, atomic_file, check_entry, clean_stale, code_key, content_key,
                    entry_lock, file_checksum, seal_entry, tensors_digest)
from .vocabulary import CLASSES, MODELS
from .constraints import Boolean, Choice, Integer, Optional, Real, check_params, check_value
from .crops import CropSet
from .devices import PRECISIONS, autocast, check_precision, resolve_device
from .imageops import composite, protein_stats, standardize
from .models.preprocess import five_crop_offsets, random_crop
from .models.registry import MODEL_NAMES, build, get_spec, load_weights, prepare_input, save_weights

__all__ = [
    "TrainParams",
    "TrainResult",
    "TrainingData",
    "default_params",
    "training_data",
    "training_key",
    "data_fingerprint",
    "train",
    "load_or_train",
    "plot_history",
    "lr_at",
    "weights_digest",
    "AUGMENTS",
    "INPUTS",
    "TRAIN_PROTEINS",
    "protein_split",
    "evaluation_proteins",
    "evaluated_proteins",
]

SCHEDULES = ("constant", "cosine", "exponential")
PAIR_SCOPES = ("field", "strain")
#: Accepted values of ``TrainParams.augment``.
AUGMENTS = ("none", "background_swap")
#: Accepted values of ``TrainParams.input``.
INPUTS = ("crop", "masked")
#: Accepted values of ``TrainParams.train_proteins``.
TRAIN_PROTEINS = ("all", "disjoint")
#: The remedy fields at their defaults: left out of the training key while at these values.
_REMEDY_DEFAULTS: dict[str, Any] = {"augment": "none", "swap_probability": 0.5, "input": "crop",
                                    "init_from": None, "precision": "float32"}
#: End-of-epoch checkpoints: ``checkpoint-e<epoch>-<crc32>.pt``, each written onto a fresh name.
_CHECKPOINT_GLOB = "checkpoint-e*.pt"
_WEIGHTS = "weights.pt"
_HISTORY = "history.csv"
_META = "meta.json"
_FORMAT = 2

#: The originals' settings (see the module docstring and the reference notes).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "pifia": dict(epochs=30, batch_size=128, lr=3e-4, betas=(0.9, 0.999), adam_eps=1e-7,
                  schedule="cosine", dropout=0.02, flips=True, rot90=()),
    "pci": dict(epochs=30, batch_size=64, lr=1e-4, betas=(0.5, 0.999), adam_eps=1e-8,
                schedule="constant", flips=True, independent_flips=True, rot90=(), pair_scope="field"),
    "deeploc": dict(epochs=30, batch_size=128, lr=0.1, betas=(0.9, 0.999), adam_eps=1e-8,
                    schedule="exponential", decay_rate=0.96, decay_steps=25, max_steps=5000,
                    flips=True, rot90=(0, 1, 2), random_crop=True, logit_bn=True,
                    train_proteins="disjoint"),
}
#: The paper's practice for the self-supervised models: train on every protein of the screen.
for _name in ("pifia", "pci"):
    _DEFAULTS[_name]["train_proteins"] = "all"
#: Fields that only some models have (None for the others).
_ONLY = {"dropout": ("pifia",), "independent_flips": ("pci",), "pair_scope": ("pci",),
         "logit_bn": ("deeploc",), "random_crop": ("deeploc",)}


def _model_name(name) -> str:
    if not isinstance(name, str) or name.lower() not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    return name.lower()


# ------------------------------------------------------------------------------ parameters
@dataclass(frozen=True)
class TrainParams:
    """Hyper-parameters of :func:`train`; ``None`` means "the original model's value".

    Build them with :meth:`for_model` (or :func:`default_params`) to see every value;
    :func:`train` fills the ``None`` fields the same way (:meth:`resolve`).

    Attributes
    ----------
    epochs : int
        Passes over the training crops (each bounded by ``max_crops_per_epoch``). 30 for all.
    batch_size : int
        PIFiA 128, PCI 64, DeepLoc 128. A final partial batch is dropped.
    lr : float
        Initial Adam learning rate: PIFiA 3e-4, PCI 1e-4, DeepLoc 0.1.
    width : float
        Width multiplier of the network (1.0 = original).
    weight_decay : float
        Adam's (L2) weight decay; 0 in all originals.
    dropout : float
        PIFiA only: dropout before ``d3`` (0.02).
    seed : int
        Seeds the initialisation and every epoch's random stream.
    max_steps : int, optional
        Stop after this many optimizer steps in total (DeepLoc: 5000).
    max_crops_per_epoch : int, optional
        Use a random subset of this many training crops per epoch (a new one each epoch).
    betas : tuple of float
        Adam betas: (0.9, 0.999); PCI (0.5, 0.999).
    adam_eps : float
        Adam epsilon: 1e-7 for PIFiA (Keras), 1e-8 for PCI and DeepLoc (``tf.train``).
    schedule : {"constant", "cosine", "exponential"}
        PIFiA cosine decay to 0 over all steps, PCI constant, DeepLoc staircase exponential.
    decay_rate, decay_steps : float, int
        Exponential schedule: ``lr * decay_rate ** (step // decay_steps)`` (0.96, 25).
    flips : bool
        Random left/right and up/down flips (all three).
    independent_flips : bool
        PCI only: draw the flips of source and target independently (True).
    rot90 : tuple of int
        Rotations by k x 90 degrees drawn uniformly from these k; DeepLoc (0, 1, 2), others ().
    random_crop : bool
        DeepLoc only: train on a random 60x60 crop of the 64x64 crop (True, the original's
        jitter) or on the centre crop (False). PIFiA and PCI read the whole crop.
    pair_scope : {"field", "strain"}
        PCI only: partner cells from the same field when possible ("field"), or from anywhere
        in the strain ("strain").
    logit_bn : bool
        DeepLoc only: BatchNorm on the logits, as the original (True).
    valid_only : bool
        Train on the crops that pass the paper's filters only (``table.valid``).
    augment : {"none", "background_swap"}
        Remedy 1 (see the module docstring): paste the centre cell of a training crop onto the
        crop of a random other protein, both standardised per protein. "none" (default) trains
        on the crops as they are. Needs the CropSet's ``masks``.
    swap_probability : float
        Probability, in (0, 1], that a training crop is swapped in an epoch (0.5). Used only with
        ``augment="background_swap"``.
    input : {"crop", "masked"}
        Remedy 2: "masked" sets every pixel outside the centre mask of every training input to 0
        before preprocessing; "crop" (default) uses the whole crop.
    train_proteins : {"disjoint", "all"}, optional
        Which proteins the model may train on. ``"disjoint"`` (DeepLoc's default) trains only
        on the *training proteins* of :func:`protein_split`, so the proteins the experiments
        evaluate (:func:`evaluation_proteins`) are never seen in training: the paper's DeepLoc
        is a transfer model trained on another screen. ``"all"`` (PIFiA's and PCI's default,
        the paper's practice for the self-supervised models) trains on every protein.
    train_protein_fraction : float
        With ``"disjoint"``: the share of each class's single-localized proteins used for
        training (0.5); the rest, and every multi-localized protein, are evaluation proteins.
    split_seed : int
        With ``"disjoint"``: which proteins are training proteins (0). Independent of ``seed``
        so the evaluation proteins stay fixed while training is reseeded.
    precision : {"float32", "bfloat16", "float16"}
        The arithmetic of the forward and backward passes (:func:`bgrobust.devices.autocast`;
        weights, optimizer state and losses stay float32; ``"float16"`` on a GPU only, with
        loss scaling). The originals train in float32 (the default); any other value enters
        the key.
    init_from : str, optional
        Path of a state dict (``TrainResult.path``, :func:`bgrobust.models.save_weights`) to
        start from instead of the random initialisation, e.g. to fine-tune a trained model with a
        remedy for one epoch. The file must exist; the key holds the digest of its tensors, not
        its path.

    Examples
    --------
    >>> TrainParams(epochs=3).resolve("pifia").schedule
    'cosine'
    >>> TrainParams.from_dict({"epochs": 2, "lr": 1e-3}, model="deeploc").rot90
    (0, 1, 2)
    """

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    width: float = 1.0
    weight_decay: float = 0.0
    dropout: float | None = None
    seed: int = 0
    max_steps: int | None = None
    max_crops_per_epoch: int | None = None
    betas: tuple[float, float] | None = None
    adam_eps: float | None = None
    schedule: str | None = None
    decay_rate: float | None = None
    decay_steps: int | None = None
    flips: bool | None = None
    independent_flips: bool | None = None
    rot90: tuple[int, ...] | None = None
    random_crop: bool | None = None
    pair_scope: str | None = None
    logit_bn: bool | None = None
    valid_only: bool = True
    augment: str = "none"
    swap_probability: float = 0.5
    input: str = "crop"
    init_from: str | None = None
    train_proteins: str | None = None
    train_protein_fraction: float = 0.5
    split_seed: int = 0
    precision: str = "float32"

    def __post_init__(self):
        # YAML gives lists: store tuples so the dataclass stays hashable and keys stable
        for name in ("betas", "rot90"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                    raise TypeError(f"TrainParams.{name} must be a sequence, got {value!r}")
                object.__setattr__(self, name, tuple(value))
        if self.init_from is not None:
            if not isinstance(self.init_from, (str, os.PathLike)):
                raise TypeError(f"TrainParams.init_from must be a path (str) or None, got {self.init_from!r}")
            object.__setattr__(self, "init_from", os.fspath(self.init_from))
        self._check()

    # -- validation of whatever is set
    def _check(self) -> None:
        def integer(name, lo, optional=True):
            c = Integer(lo)
            check_value(getattr(self, name), Optional(c) if optional else c, f"TrainParams.{name}")

        def number(name, lo, hi=math.inf, lo_open=True, hi_open=False):
            c = Real(lo, None if hi == math.inf else hi, lo_open=lo_open, hi_open=hi_open)
            check_value(getattr(self, name), Optional(c), f"TrainParams.{name}")

        integer("epochs", 1)
        integer("batch_size", 2)
        integer("seed", 0, optional=False)
        integer("split_seed", 0, optional=False)
        integer("max_steps", 1)
        integer("max_crops_per_epoch", 2)
        integer("decay_steps", 1)
        number("lr", 0)
        number("width", 0)
        number("weight_decay", 0, lo_open=False)
        number("dropout", 0, 1, lo_open=False, hi_open=True)
        number("adam_eps", 0)
        number("decay_rate", 0, 1)
        if self.betas is not None:
            if len(self.betas) != 2 or not all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in self.betas
            ):
                raise ValueError(f"TrainParams.betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.rot90 is not None and not all(
            isinstance(k, (int, np.integer)) and not isinstance(k, bool) and 0 <= k <= 3 for k in self.rot90
        ):
            raise ValueError(f"TrainParams.rot90 must hold integers k in 0..3, got {self.rot90!r}")
        check_params(self, {"schedule": Optional(Choice(SCHEDULES)), "pair_scope": Optional(Choice(PAIR_SCOPES)),
                            **{name: Optional(Boolean()) for name in
                               ("flips", "independent_flips", "logit_bn", "random_crop")},
                            "valid_only": Boolean(), "augment": Choice(AUGMENTS),
                            "swap_probability": Real(0, 1, lo_open=True), "input": Choice(INPUTS),
                            "train_proteins": Optional(Choice(TRAIN_PROTEINS)),
                            "train_protein_fraction": Real(0, 1, lo_open=True, hi_open=True),
                            "precision": Choice(PRECISIONS)})
        if self.augment != "none" and self.input == "masked":
            raise ValueError(f"TrainParams.augment={self.augment!r} cannot be combined with input='masked': "
                             "a masked input has no background to swap")
        if self.init_from is not None and not Path(self.init_from).is_file():
            raise FileNotFoundError(f"TrainParams.init_from: no such file {self.init_from!r}")

    # -- construction
    def resolve(self, name: str) -> "TrainParams":
        """Fill every ``None`` with the model's original value and check model-specific fields.

        Raises
        ------
        ValueError
            When a field the model does not have is set (e.g. ``dropout`` for PCI).

        Examples
        --------
        >>> TrainParams(lr=1e-3).resolve("pci").lr
        0.001
        """
        name = _model_name(name)
        for field_name, owners in _ONLY.items():
            if name not in owners and getattr(self, field_name) is not None:
                raise ValueError(
                    f"TrainParams.{field_name} applies only to {', '.join(owners)}; "
                    f"{get_spec(name).title} has no such setting (got {getattr(self, field_name)!r})"
                )
        filled = {}
        defaults = _DEFAULTS[name]
        for f in fields(self):
            value = getattr(self, f.name)
            filled[f.name] = defaults.get(f.name) if value is None else value
        if filled["schedule"] == "exponential":
            filled["decay_rate"] = 0.96 if filled["decay_rate"] is None else filled["decay_rate"]
            filled["decay_steps"] = 25 if filled["decay_steps"] is None else filled["decay_steps"]
        return TrainParams(**filled)

    @classmethod
    def for_model(cls, name: str, **overrides) -> "TrainParams":
        """The original model's training settings, with ``overrides`` applied.

        Examples
        --------
        >>> p = TrainParams.for_model("deeploc", width=0.25, max_steps=100)
        >>> p.lr, p.batch_size, p.random_crop, p.max_steps
        (0.1, 128, True, 100)
        """
        return cls.from_dict(overrides).resolve(name)

    @classmethod
    def from_dict(cls, params: dict | None, model: str | None = None) -> "TrainParams":
        """Build from a profile dictionary; unknown keys are an error.

        Parameters
        ----------
        params : dict, optional
        model : str, optional
            Resolve for this model (fill the original values).

        Examples
        --------
        >>> TrainParams.from_dict({"epochs": 1, "width": 0.25}).width
        0.25
        >>> TrainParams.from_dict({"epoch": 1})
        Traceback (most recent call last):
        ...
        ValueError: training parameters: unknown key(s) ['epoch']; known: ...
        """
        params = dict(params or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(f"training parameters: unknown key(s) {unknown}; known: {', '.join(known)}")
        out = cls(**params)
        return out.resolve(model) if model is not None else out

    def to_dict(self) -> dict:
        """Plain dictionary (JSON-able) of every field."""
        d = asdict(self)
        for k in ("betas", "rot90"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d


def default_params(name: str, **overrides) -> TrainParams:
    """The original model's training settings: :meth:`TrainParams.for_model`.

    Examples
    --------
    >>> default_params("pifia").lr
    0.0003
    """
    return TrainParams.for_model(name, **overrides)


def lr_at(step: int, params: TrainParams, total_steps: int) -> float:
    """Learning rate used for optimizer step ``step`` (0-based).

    Examples
    --------
    >>> p = TrainParams.for_model("deeploc")
    >>> lr_at(0, p, 100), round(lr_at(25, p, 100), 6)
    (0.1, 0.096)
    >>> lr_at(50, TrainParams.for_model("pifia"), 100)   # half-way down the cosine
    0.00015
    """
    if params.schedule == "constant":
        return float(params.lr)
    if params.schedule == "cosine":
        frac = min(step, total_steps) / max(total_steps, 1)
        return float(params.lr * 0.5 * (1.0 + math.cos(math.pi * frac)))
    if params.schedule == "exponential":
        return float(params.lr * params.decay_rate ** (step // params.decay_steps))
    raise ValueError(f"unresolved schedule {params.schedule!r}: call params.resolve(name) first")


# ------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class TrainingData:
    """Which crops a model trains on, and their targets.

    Attributes
    ----------
    index : numpy.ndarray
        Positions of the training crops in the CropSet.
    labels : numpy.ndarray or None
        Class index of each training crop (PIFiA, DeepLoc); None for PCI.
    classes : tuple of str
        Class names in label order: the sorted strains (PIFiA), :data:`CLASSES` (DeepLoc);
        empty for PCI.
    strain, field : numpy.ndarray
        Strain and field of each training crop (PCI pairing).
    """

    index: np.ndarray
    labels: np.ndarray | None
    classes: tuple[str, ...]
    strain: np.ndarray
    field: np.ndarray


def _required_columns(name: str, valid_only: bool, train_proteins: str = "all") -> list[str]:
    cols = ["strain"]
    if name == "pci":
        cols.append("field")
    if name == "deeploc" or train_proteins == "disjoint":
        cols += ["kind", "localization"]
    if valid_only:
        cols.append("valid")
    return cols


def _check_cropset(crops, name: str, valid_only: bool, train_proteins: str = "all") -> None:
    if not isinstance(crops, CropSet):
        raise TypeError(f"crops must be a bgrobust.crops.CropSet, got {type(crops).__name__}")
    spec = get_spec(name)
    shape = tuple(crops.images.shape[1:])
    if len(crops.images.shape) != 4 or shape != (3, spec.crop_size, spec.crop_size):
        raise ValueError(f"crops.images must have shape (N, 3, {spec.crop_size}, {spec.crop_size}), "
                         f"got {tuple(crops.images.shape)}")
    missing = [c for c in _required_columns(name, valid_only, train_proteins) if c not in crops.table.columns]
    if missing:
        raise ValueError(f"crops.table lacks column(s) {missing} needed to train {spec.title}")


def _check_fraction(fraction, seed) -> None:
    check_value(fraction, Real(0, 1, lo_open=True, hi_open=True), "train_protein_fraction")
    check_value(seed, Integer(0), "split_seed")


def protein_split(table: pd.DataFrame, fraction: float = 0.5, seed: int = 0) -> pd.Series:
    """Which proteins are *training* proteins of a supervised model and which are *evaluation* ones.

    Per localization class, the single-localized proteins are ranked by a digest of
    ``(seed, strain)`` (:func:`bgrobust.cache.content_key`) and the first
    ``floor(fraction * n)`` of the class's ``n`` proteins are training proteins -- at least
    one when the class has two or more, never all of them, so every class keeps at least one
    evaluation protein. Multi-localized (and any other) proteins are always evaluation
    proteins. The split depends only on the strain names, their classes, ``fraction`` and
    ``seed``: not on the order of the table, the crops or the training seed.

    Parameters
    ----------
    table : DataFrame
        Columns ``strain``, ``kind`` and ``localization`` (a crop table or a strain table;
        one row per crop is fine).
    fraction : float in (0, 1)
        Share of each class's proteins used for training.
    seed : int
        Chooses the proteins.

    Returns
    -------
    Series
        Index strain (sorted), values ``"train"`` or ``"evaluation"``.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"strain": ["a", "b", "c", "d", "m"],
    ...                   "kind": ["single"] * 4 + ["multi"],
    ...                   "localization": ["ER", "ER", "ER", "vacuole", "ER"]})
    >>> split = protein_split(t)
    >>> split.value_counts().to_dict()
    {'evaluation': 4, 'train': 1}
    >>> split["d"], split["m"]      # a class's only protein, and a multi-localized one
    ('evaluation', 'evaluation')
    """
    _check_fraction(fraction, seed)
    missing = [c for c in ("strain", "kind", "localization") if c not in table.columns]
    if missing:
        raise ValueError(f"protein_split: the table lacks column(s) {missing}")
    proteins = table[["strain", "kind", "localization"]].astype(str).drop_duplicates("strain")
    out = pd.Series("evaluation", index=pd.Index(sorted(proteins["strain"]), name="strain"), name="role")
    single = proteins[proteins["kind"] == "single"]
    for _, group in single.groupby("localization", sort=True):
        names = sorted(group["strain"], key=lambda s: content_key("protein-split", int(seed), s))
        n = len(names)
        n_train = min(max(int(math.floor(fraction * n)), 1 if n >= 2 else 0), n - 1)
        out.loc[names[:n_train]] = "train"
    return out


def evaluation_proteins(table: pd.DataFrame, params: TrainParams | dict | None = None,
                        model: str = "deeploc") -> list[str]:
    """The proteins a model never trained on: those the experiments may evaluate it on.

    With ``train_proteins="all"`` (PIFiA's and PCI's default) that is every protein of the
    table; with ``"disjoint"`` (DeepLoc's default) the evaluation proteins of
    :func:`protein_split` with the parameters' fraction and split seed. Restrict the
    settings of the experiments to these proteins when a supervised model is evaluated.

    Parameters
    ----------
    table : DataFrame
        Columns ``strain``, ``kind``, ``localization``.
    params : TrainParams or dict, optional
        The model's training parameters (unset fields: the model's defaults).
    model : str
        Whose defaults fill ``params``.

    Returns
    -------
    list of str
        Sorted strain names.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"strain": list("abcd"), "kind": "single", "localization": ["ER"] * 4})
    >>> len(evaluation_proteins(t)), len(evaluation_proteins(t, model="pifia"))
    (2, 4)
    """
    params = _as_params(params, _model_name(model))
    if params.train_proteins == "all":
        return sorted(set(table["strain"].astype(str)))
    split = protein_split(table, params.train_protein_fraction, params.split_seed)
    return split.index[split == "evaluation"].tolist()


def evaluated_proteins(table: pd.DataFrame, trained: Mapping) -> list[str]:
    """The proteins none of the trained models saw with its labels: where all of them may be evaluated.

    The intersection of :func:`bgrobust.train.evaluation_proteins` over the models (every
    protein for the self-supervised ones, the held-out part for a supervised one).
    """
    keep = None
    for name, result in trained.items():
        mine = set(evaluation_proteins(table, result.params, model=name))
        keep = mine if keep is None else keep & mine
    return sorted(keep or ())


def training_data(name: str, crops: CropSet, valid_only: bool = True, *, train_proteins: str = "all",
                  fraction: float = 0.5, split_seed: int = 0) -> TrainingData:
    """Select a model's training crops and their targets.

    PIFiA: every crop, labelled by strain (classes = sorted strains). PCI: every crop whose
    strain has at least one other crop (a partner). DeepLoc: crops of single-localized strains
    whose localization is one of :data:`CLASSES`, labelled by class index. With
    ``train_proteins="disjoint"`` only the crops of the training proteins of
    :func:`protein_split` (``fraction``, ``split_seed``) are kept.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from bgrobust.crops import CropSet
    >>> table = pd.DataFrame({"strain": ["b", "a", "b"], "field": [0, 1, 0], "valid": True,
    ...                       "kind": "single", "localization": ["ER", "actin", "ER"]})
    >>> cs = CropSet(np.zeros((3, 3, 64, 64), np.uint16), np.zeros((3, 64, 64), bool), table)
    >>> d = training_data("pifia", cs)
    >>> d.classes, d.labels.tolist()
    (('a', 'b'), [1, 0, 1])
    >>> training_data("deeploc", cs).labels.tolist()
    [5, 0, 5]
    """
    name = _model_name(name)
    check_value(train_proteins, Choice(TRAIN_PROTEINS), "train_proteins")
    _check_cropset(crops, name, valid_only, train_proteins)
    table = crops.table
    keep = np.ones(len(table), bool)
    if valid_only:
        keep &= table["valid"].to_numpy(dtype=bool)
    if train_proteins == "disjoint":
        split = protein_split(table, fraction, split_seed)
        keep &= table["strain"].astype(str).map(split).eq("train").to_numpy()
    labels, classes = None, ()
    if name == "deeploc":
        keep &= (table["kind"].to_numpy() == "single") & table["localization"].isin(CLASSES).to_numpy()
    strain = table["strain"].astype(str).to_numpy()
    field = table["field"].to_numpy() if "field" in table.columns else np.zeros(len(table), np.int64)
    if name == "pci":
        counts = pd.Series(strain[keep]).value_counts()
        keep &= pd.Series(strain).map(counts).fillna(0).to_numpy() >= 2
    index = np.flatnonzero(keep)
    if len(index) < 2:
        raise ValueError(f"{get_spec(name).title}: fewer than 2 training crops after selection "
                         f"(valid_only={valid_only}, train_proteins={train_proteins!r}); nothing to train on"
                         + ("; with 'disjoint' a class needs >= 2 proteins to have a training protein"
                            if train_proteins == "disjoint" else ""))
    if name == "pifia":
        classes = tuple(sorted(set(strain[index])))
        lookup = {s: i for i, s in enumerate(classes)}
        labels = np.array([lookup[s] for s in strain[index]], dtype=np.int64)
    elif name == "deeploc":
        classes = CLASSES
        lookup = {s: i for i, s in enumerate(CLASSES)}
        labels = np.array([lookup[s] for s in table["localization"].to_numpy()[index]], dtype=np.int64)
    return TrainingData(index=index, labels=labels, classes=tuple(classes),
                        strain=strain[index], field=np.asarray(field)[index])


def data_fingerprint(crops: CropSet, name: str, valid_only: bool = True, train_proteins: str = "all") -> str:
    """Content digest of what a training reads: the full pixel array and the table columns used.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from bgrobust.crops import CropSet
    >>> cs = CropSet(np.zeros((2, 3, 64, 64), np.uint16), np.zeros((2, 64, 64), bool),
    ...              pd.DataFrame({"strain": ["a", "b"], "valid": True}))
    >>> len(data_fingerprint(cs, "pifia"))
    16
    """
    name = _model_name(name)
    _check_cropset(crops, name, valid_only, train_proteins)
    cols = _required_columns(name, valid_only, train_proteins)
    table = crops.table[cols].astype(str)
    table_digest = array_digest(pd.util.hash_pandas_object(table, index=False).to_numpy())
    return content_key(cols, table_digest, array_digest(crops.images))


def training_key(name: str, crops: CropSet, params: TrainParams) -> str:
    """Cache / checkpoint key of a training: model, resolved parameters, data and code.

    The remedy fields (``augment``, ``swap_probability``, ``input``, ``init_from``) enter the
    key only when they are not at their defaults, so trainings without them keep their keys;
    with ``augment`` or ``input="masked"`` the centre masks are part of the data, and
    ``init_from`` enters as the digest of the state dict's tensors (:func:`weights_digest`).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from bgrobust.crops import CropSet
    >>> cs = CropSet(np.zeros((2, 3, 64, 64), np.uint16), np.zeros((2, 64, 64), bool),
    ...              pd.DataFrame({"strain": ["a", "b"], "valid": True}))
    >>> a = training_key("pifia", cs, TrainParams(epochs=1))
    >>> a == training_key("pifia", cs, TrainParams(epochs=2))
    False
    """
    name = _model_name(name)
    params = _as_params(params, name)
    described = params.to_dict()
    for field_name, default in _REMEDY_DEFAULTS.items():
        if described[field_name] == default:
            del described[field_name]
    if params.augment == "none":
        described.pop("swap_probability", None)  # no effect without augmentation
    if params.init_from is not None:
        described["init_from"] = weights_digest(params.init_from)
    if params.train_proteins == "all":
        # the paper's practice: no split, so the split's settings do not enter the key
        for field_name in ("train_proteins", "train_protein_fraction", "split_seed"):
            described.pop(field_name, None)
    parts = ["train", name, described,
             data_fingerprint(crops, name, params.valid_only, params.train_proteins)]
    if _uses_masks(params):
        parts.append(("masks", array_digest(crops.masks)))
    return content_key(*parts, code_key("bgrobust.train", "bgrobust.models"))


def weights_digest(path) -> str:
    """SHA-256 of the tensors of a saved state dict (names, dtypes, shapes and bytes).

    The digest of the content, not of the file: a copy or a re-save of the same weights has the
    same digest.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from bgrobust import models
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> m = models.build("pci", width=0.125, random_state=0)
    >>> a = weights_digest(models.save_weights(m, folder / "a.pt"))
    >>> a == weights_digest(models.save_weights(m, folder / "b.pt"))
    True
    """
    return tensors_digest(_read_state(path))


def _read_state(path) -> dict:
    """The state dict saved at ``path`` (``TrainParams.init_from``), with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TrainParams.init_from: no such file {str(path)!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"TrainParams.init_from: cannot read {str(path)!r} as a state dict: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"TrainParams.init_from: {str(path)!r} holds no state dict (name -> tensor); "
                         "save one with bgrobust.models.save_weights")
    return state


def _uses_masks(params: TrainParams) -> bool:
    return params.augment != "none" or params.input != "crop"


def _as_params(params, name: str) -> TrainParams:
    if params is None:
        return TrainParams().resolve(name)
    if isinstance(params, dict):
        return TrainParams.from_dict(params, model=name)
    if not isinstance(params, TrainParams):
        raise TypeError(f"params must be a TrainParams, a dict or None, got {type(params).__name__}")
    return params.resolve(name)


# ------------------------------------------------------------------------------ randomness
def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), 0x7EA1, int(epoch)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    lr = (torch.rand(b, generator=g) < 0.5).view(b, 1, 1, 1)
    ud = (torch.rand(b, generator=g) < 0.5).view(b, 1, 1, 1)
    x = torch.where(lr, x.flip(-1), x)
    return torch.where(ud, x.flip(-2), x)


def _rotate(x: torch.Tensor, ks: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    if not ks or ks == (0,):
        return x
    choice = torch.tensor(ks)[torch.randint(len(ks), (x.shape[0],), generator=g)]
    out = x.clone()
    for k in sorted(set(ks)):
        sel = choice == k
        if k and bool(sel.any()):
            out[sel] = torch.rot90(x[sel], k, dims=(-2, -1))
    return out


def _dropout(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Inverted dropout drawn from ``g`` (nn.Dropout would use the global RNG)."""
    if p <= 0:
        return x
    keep = (torch.rand(x.shape, generator=g) >= p).to(x.device)
    return x * keep / (1.0 - p)


def _backgrounds(codes: np.ndarray, sources: np.ndarray, probability: float, g: torch.Generator) -> np.ndarray:
    """Per source: a random training crop of another protein to paste it on, or -1 (kept).

    ``codes`` is the protein code of every training crop; ``sources`` are positions among them.
    """
    n = len(codes)
    swap = (torch.rand(len(sources), generator=g, dtype=torch.float64) < probability).numpy()
    u = torch.rand(len(sources), generator=g, dtype=torch.float64).numpy()
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    own = codes[sources]
    start = np.searchsorted(sorted_codes, own, side="left")
    size = np.searchsorted(sorted_codes, own, side="right") - start
    others = n - size
    r = np.minimum(np.floor(u * others).astype(np.int64), others - 1)
    r = r + np.where(r >= start, size, 0)  # skip the source's own protein
    return np.where(swap, order[r], -1)


def _partners(data: TrainingData, sources: np.ndarray, scope: str, g: torch.Generator) -> np.ndarray:
    """A random partner (another crop of the same strain, same field if possible) per source."""
    n = len(data.index)
    strain_codes = pd.factorize(data.strain)[0]
    field_codes = pd.factorize(pd.Series(list(zip(data.strain, data.field))))[0]
    partner = np.empty(len(sources), np.int64)
    u = torch.rand(len(sources), generator=g, dtype=torch.float64).numpy()

    def group_info(codes):
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        starts = np.searchsorted(sorted_codes, codes, side="left")
        sizes = np.searchsorted(sorted_codes, codes, side="right") - starts
        pos = np.empty(n, np.int64)
        pos[order] = np.arange(n) - np.searchsorted(sorted_codes, sorted_codes, side="left")
        return order, starts, sizes, pos

    use_field = np.zeros(len(sources), bool)
    groups = []
    if scope == "field":
        field_info = group_info(field_codes)
        use_field = field_info[2][sources] >= 2
        groups.append((use_field, field_info))
    groups.append((~use_field, group_info(strain_codes)))
    for mask, (order, start, size, pos) in groups:
        if not mask.any():
            continue
        src = sources[mask]
        r = np.minimum(np.floor(u[mask] * (size[src] - 1)).astype(np.int64), size[src] - 2)
        r = r + (r >= pos[src])  # skip the source itself
        partner[mask] = order[start[src] + r]
    return partner


# ------------------------------------------------------------------------------ remedies
@dataclass(frozen=True)
class _Remedy:
    """What the remedies need per training crop (positions in :class:`TrainingData`)."""

    masks: Any              # the CropSet's masks (N, S, S), indexed by CropSet position
    masked: bool            # input="masked"
    codes: np.ndarray       # protein code of each training crop (background_swap)
    mean: np.ndarray | None  # (n_train, C) protein mean of each training crop (background_swap)
    std: np.ndarray | None


def _remedy(crops: CropSet, data: TrainingData, params: TrainParams) -> _Remedy | None:
    if not _uses_masks(params):
        return None
    masks = crops.masks
    expected = (len(crops.images),) + tuple(crops.images.shape[2:])
    if tuple(np.shape(masks)) != expected:
        raise ValueError(f"crops.masks must have shape {expected} (one centre mask per crop) for "
                         f"augment={params.augment!r}, input={params.input!r}; got {np.shape(masks)}")
    used = np.asarray(masks[data.index]).astype(bool, copy=False)
    empty = int((~used.reshape(len(used), -1).any(axis=1)).sum())
    if empty:
        raise ValueError(f"{empty} of {len(used)} training crops have an empty centre mask (crops.masks); "
                         f"augment={params.augment!r} and input={params.input!r} need the centre cell")
    codes, proteins = pd.factorize(data.strain)
    mean = std = None
    if params.augment == "background_swap":
        if len(proteins) < 2:
            raise ValueError("TrainParams.augment='background_swap' needs training crops of at least 2 "
                             f"proteins (strains), got {list(proteins)}")
        table = crops.table.assign(_protein=crops.table["strain"].astype(str))
        stats = protein_stats(CropSet(crops.images, crops.masks, table), by="_protein",
                              valid_only=params.valid_only, proteins=list(proteins))
        means = [c for c in stats.columns if c.startswith("mean_")]
        stds = [c for c in stats.columns if c.startswith("std_")]
        mean = stats.loc[data.strain, means].to_numpy(np.float64)
        std = stats.loc[data.strain, stds].to_numpy(np.float64)
        flat = ~(std > 0).all(axis=1)
        if flat.any():
            raise ValueError("TrainParams.augment='background_swap': protein(s) "
                             f"{sorted(set(data.strain[flat]))} have a constant channel (std 0) and "
                             "cannot be standardised")
    return _Remedy(masks=masks, masked=params.input == "masked", codes=codes, mean=mean, std=std)


def _raw_batch(images, data: TrainingData, idx: np.ndarray, remedy: _Remedy | None,
               backgrounds: np.ndarray | None = None) -> np.ndarray:
    """The raw crops of training positions ``idx`` with the remedies applied.

    ``backgrounds`` (background_swap) holds, per crop, the training position of the crop its
    centre cell is pasted on, or -1 to keep the crop.
    """
    raw = np.asarray(images[data.index[idx]])
    if remedy is None:
        return raw
    masks = np.asarray(remedy.masks[data.index[idx]]).astype(bool, copy=False)
    if backgrounds is not None and (backgrounds >= 0).any():
        sel = np.flatnonzero(backgrounds >= 0)
        bg = backgrounds[sel]
        centre = standardize(raw[sel], remedy.mean[idx[sel]], remedy.std[idx[sel]])
        back = standardize(np.asarray(images[data.index[bg]]), remedy.mean[bg], remedy.std[bg])
        raw = raw.astype(np.float32)
        raw[sel] = composite(centre, masks[sel], back)
    if remedy.masked:
        raw = raw * masks[:, None]
    return raw


# ------------------------------------------------------------------------------ result
@dataclass
class TrainResult:
    """A trained model and how it got there.

    Attributes
    ----------
    name : str
        Model name.
    model : torch.nn.Module
        The trained network, in ``eval()`` mode.
    history : pandas.DataFrame
        One row per optimizer step: ``epoch`` (1-based), ``step`` (1-based), ``loss``, ``lr``
        and, for the classifiers, the batch ``accuracy``.
    path : pathlib.Path or None
        The final weights (a state dict, :func:`bgrobust.models.save_weights`), or None when
        trained without a checkpoint folder.
    labels : tuple of str
        Class names in output order: strains (PIFiA), localizations (DeepLoc); empty for PCI.
    params : TrainParams
        The resolved parameters.
    key : str
        The training's key (:func:`training_key`).
    n_train : int
        Number of training crops.
    seconds : float
        Wall time of the training (summed over resumed runs).
    """

    name: str
    model: nn.Module
    history: pd.DataFrame
    path: Path | None
    labels: tuple[str, ...]
    params: TrainParams
    key: str
    n_train: int
    seconds: float = float("nan")


# ------------------------------------------------------------------------------ training
def _build(name: str, params: TrainParams, n_classes: int | None, generator: torch.Generator | None):
    kwargs: dict[str, Any] = {}
    if name == "pifia":
        kwargs["dropout"] = params.dropout
        kwargs["n_classes"] = n_classes
    elif name == "deeploc":
        kwargs["logit_bn"] = params.logit_bn
        kwargs["n_classes"] = n_classes
    # the layers' constructors draw PyTorch's default initialisation from the global RNG before
    # the model re-initialises them from ``generator``: keep the global RNG as it was
    with torch.random.fork_rng(devices=[]):
        model = build(name, width=params.width, random_state=generator, **kwargs)
    # channels-last layout: 1.3-4x faster convolutions on CPU (PCI's decoder gains most)
    return model.to(memory_format=torch.channels_last)


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _batch_loss(name, model, params, images, data, idx, partner, g, remedy=None, backgrounds=None,
                device=torch.device("cpu")):
    """Loss (and batch accuracy) of one batch; ``idx`` are positions in ``data``.

    Batches are assembled and augmented on the CPU (the draws come from ``g``), then moved
    to ``device``.
    """
    raw = _raw_batch(images, data, idx, remedy, backgrounds)
    if name == "pci":
        source = prepare_input(name, raw)
        partner_raw = _raw_batch(images, data, partner, remedy)  # the target is never swapped
        gfp = get_spec(name).input_channels.index("gfp")
        target = torch.cat([prepare_input(name, partner_raw)[:, gfp:gfp + 1],
                            prepare_input(name, partner_raw, target=True)], dim=1)
        if params.flips:
            if params.independent_flips:
                source, target = _flip(source, g), _flip(target, g)
            else:
                both = _flip(torch.cat([source, target], dim=1), g)
                source, target = both[:, :source.shape[1]], both[:, source.shape[1]:]
        source, target = _rotate(source, params.rot90, g), _rotate(target, params.rot90, g)
        source, target = source.to(device), target.to(device)
        pred = model(_cl(source), _cl(target[:, 1:]))
        return F.mse_loss(pred, target[:, :1]), None
    x = prepare_input(name, raw)
    spec = get_spec(name)
    if spec.input_size != spec.crop_size:  # DeepLoc: 60x60 network input
        if params.random_crop:
            x = random_crop(x, spec.input_size, generator=g)
        else:
            r, c = five_crop_offsets(spec.input_size, spec.crop_size)[0]
            x = x[:, :, r:r + spec.input_size, c:c + spec.input_size]
    if params.flips:
        x = _flip(x, g)
    x = _rotate(x, params.rot90, g)
    x, y = x.to(device), torch.from_numpy(data.labels[idx]).to(device)
    if name == "pifia":
        logits = model.d3(_dropout(model.features(_cl(x), "d2"), params.dropout, g))
    else:
        logits = model(_cl(x))
    loss = F.cross_entropy(logits, y)
    accuracy = (logits.argmax(1) == y).float().mean().item()
    return loss, accuracy


def _checkpoints(folder: Path) -> list[tuple[int, str, Path]]:
    """``(epoch, crc32, path)`` of the checkpoints in ``folder``, the latest first."""
    found = []
    for path in folder.glob(_CHECKPOINT_GLOB):
        parts = path.stem.split("-")
        if len(parts) == 3 and parts[1][1:].isdigit():
            found.append((int(parts[1][1:]), parts[2], path))
    return sorted(found, reverse=True)


def _load_checkpoint(folder: Path, key: str):
    """The latest undamaged checkpoint of the training ``key`` in ``folder``, or None.

    A checkpoint whose bytes do not match the CRC-32 in its name, or that cannot be read,
    is skipped with a warning naming it (an older one, if any, is used instead).
    """
    for _, crc, path in _checkpoints(folder):
        try:
            if file_checksum(path) != crc:
                raise ValueError(f"its checksum differs from the {crc} in its name")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            continue
        except Exception as exc:  # damaged or unreadable: never reuse
            warnings.warn(f"ignoring unreadable checkpoint {path}: {exc}", RuntimeWarning, stacklevel=3)
            continue
        if isinstance(ckpt, dict) and ckpt.get("format") == _FORMAT and ckpt.get("key") == key:
            return ckpt
    return None


def _save_checkpoint(folder: Path, epoch: int, **payload) -> None:
    """Write the checkpoint of ``epoch`` onto a fresh name, then remove the older ones.

    The file is written under a temporary name and renamed onto
    ``checkpoint-e<epoch>-<crc32>.pt``; a run killed at any moment leaves the previous
    checkpoint or the new one, both whole.
    """
    staging = folder / f"checkpoint-e{epoch:05d}.pt"
    with atomic_file(staging) as tmp:
        torch.save({"format": _FORMAT, "epoch": epoch, **payload}, tmp)
    final = folder / f"checkpoint-e{epoch:05d}-{file_checksum(staging)}.pt"
    os.replace(staging, final)
    for _, _, old in _checkpoints(folder):
        if old != final:
            old.unlink(missing_ok=True)


def _remove_checkpoints(folder: Path) -> None:
    """Remove every checkpoint, and any staging file of a run killed between two renames."""
    for path in folder.glob(_CHECKPOINT_GLOB):
        path.unlink(missing_ok=True)


def train(
    name: str,
    crops: CropSet,
    params: TrainParams | dict | None = None,
    *,
    checkpoint_dir=None,
    progress: bool = True,
    callback: Callable[[int, pd.DataFrame], None] | None = None,
    device=None,
) -> TrainResult:
    """Train a model with its original objective (resuming from a checkpoint).

    From scratch, or from ``params.init_from``; with the remedies of the module docstring when
    ``params`` asks for them.

    Parameters
    ----------
    name : {"pifia", "pci", "deeploc"}
    crops : CropSet
        Crops with a table holding ``strain`` (all), ``field`` (PCI), ``kind`` and
        ``localization`` (DeepLoc) and ``valid`` (with ``valid_only``); centre ``masks`` are
        read with ``augment="background_swap"`` or ``input="masked"``.
    params : TrainParams or dict, optional
        Unset fields take the original model's values (:meth:`TrainParams.resolve`).
    checkpoint_dir : path, optional
        Folder for the end-of-epoch checkpoint and the final ``weights.pt``, ``history.csv``
        and ``meta.json``. A checkpoint there with the same key is resumed from. ``None``
        trains in memory only.
    progress : bool
        Show a tqdm bar over optimizer steps.
    callback : callable, optional
        ``callback(epochs_done, history)`` after every epoch, once its checkpoint is written.
    device : None, str or torch.device
        Where the network trains (:func:`bgrobust.devices.resolve_device`: ``None`` = CPU,
        ``"auto"``, ``"cuda"``). Not part of the key: a checkpoint resumes on any device. The
        returned model is on the CPU.

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from bgrobust.crops import CropSet
    >>> rng = np.random.default_rng(0)
    >>> table = pd.DataFrame({"strain": list("aabb"), "field": [0, 0, 1, 1], "valid": True})
    >>> cs = CropSet(rng.integers(0, 999, (4, 3, 64, 64)), np.zeros((4, 64, 64), bool), table)
    >>> res = train("pifia", cs, TrainParams(epochs=2, batch_size=4, width=0.125), progress=False)
    >>> res.labels, len(res.history), res.model.training
    (('a', 'b'), 2, False)
    """
    name = _model_name(name)
    params = _as_params(params, name)
    dev = resolve_device(device)
    check_precision(params.precision, dev, where="TrainParams.precision")
    _check_cropset(crops, name, params.valid_only, params.train_proteins)
    key = training_key(name, crops, params)
    data = training_data(name, crops, params.valid_only, train_proteins=params.train_proteins,
                         fraction=params.train_protein_fraction, split_seed=params.split_seed)
    remedy = _remedy(crops, data, params)
    n = len(data.index)
    per_epoch = n if params.max_crops_per_epoch is None else min(n, params.max_crops_per_epoch)
    batch = min(params.batch_size, per_epoch)
    steps_per_epoch = per_epoch // batch
    total_steps = params.epochs * steps_per_epoch
    if params.max_steps is not None:
        total_steps = min(total_steps, params.max_steps)
    n_epochs = math.ceil(total_steps / steps_per_epoch)

    model = _build(name, params, len(data.classes) or None, torch.Generator().manual_seed(params.seed))
    if params.init_from is not None:
        try:
            model.load_state_dict(_read_state(params.init_from))
        except RuntimeError as exc:
            raise ValueError(f"TrainParams.init_from: {params.init_from!r} does not fit {get_spec(name).title} "
                             f"at width {params.width} with {len(data.classes) or 'no'} classes: {exc}") from exc
    model.to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr, betas=params.betas,
                                 eps=params.adam_eps, weight_decay=params.weight_decay)
    rows: list[dict] = []
    start_epoch, step, seconds = 0, 0, 0.0
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        clean_stale(folder)
        ckpt = _load_checkpoint(folder, key)
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            start_epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
            seconds = float(ckpt.get("seconds", 0.0))
            rows = [dict(zip(ckpt["history"]["columns"], r)) for r in ckpt["history"]["rows"]]

    model.train()
    # float16 needs loss scaling (bfloat16 has float32's range); disabled, the scaler is a pass-through
    scaler = torch.amp.GradScaler(dev.type, enabled=params.precision == "float16")
    columns = ["epoch", "step", "loss", "lr"] + (["accuracy"] if data.labels is not None else [])
    bar = tqdm(total=total_steps, initial=step, desc=f"train {get_spec(name).title}", unit="step",
               disable=not progress)
    try:
        for epoch in range(start_epoch, n_epochs):
            t0 = time.perf_counter()
            g = _epoch_generator(params.seed, epoch)
            order = torch.randperm(n, generator=g).numpy()[:per_epoch]
            partners = _partners(data, order, params.pair_scope, g) if name == "pci" else None
            backgrounds = (_backgrounds(remedy.codes, order, params.swap_probability, g)
                           if params.augment == "background_swap" else None)
            for b in range(steps_per_epoch):
                if step >= total_steps:
                    break
                lr = lr_at(step, params, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                sl = slice(b * batch, (b + 1) * batch)
                with autocast(dev, params.precision):
                    loss, acc = _batch_loss(name, model, params, crops.images, data, order[sl],
                                            partners[sl] if partners is not None else None, g, remedy,
                                            backgrounds[sl] if backgrounds is not None else None, dev)
                loss = loss.float()
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                step += 1
                value = float(loss.detach())
                row = {"epoch": epoch + 1, "step": step, "loss": value, "lr": lr}
                if acc is not None:
                    row["accuracy"] = acc
                rows.append(row)
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4g}", epoch=epoch + 1)
                if not math.isfinite(value):
                    raise FloatingPointError(f"{get_spec(name).title}: loss became {value} at step {step}; "
                                             "lower lr or check the inputs")
            seconds += time.perf_counter() - t0
            history = pd.DataFrame(rows, columns=columns)
            if folder is not None:
                _save_checkpoint(folder, epoch + 1, key=key, step=step, seconds=seconds,
                                 model=model.state_dict(), optimizer=optimizer.state_dict(),
                                 history={"columns": columns, "rows": [[r.get(c) for c in columns] for r in rows]})
            if callback is not None:
                callback(epoch + 1, history)
    finally:
        bar.close()

    model.to("cpu").eval()
    history = pd.DataFrame(rows, columns=columns)
    path = None
    if folder is not None:
        path = folder / _WEIGHTS
        with atomic_file(path) as tmp:
            save_weights(model, tmp)
        with atomic_file(folder / _HISTORY) as tmp:
            history.to_csv(tmp, index=False)
        meta = {"name": name, "key": key, "params": params.to_dict(), "labels": list(data.classes),
                "n_train": n, "seconds": seconds, "steps": step, "epochs": n_epochs,
                "steps_per_epoch": steps_per_epoch, "batch_size": batch, "device": str(dev)}
        with atomic_file(folder / _META) as tmp:
            tmp.write_text(json.dumps(meta, indent=2))
        seal_entry(folder, files=[_WEIGHTS, _HISTORY, _META])
        _remove_checkpoints(folder)
    return TrainResult(name=name, model=model, history=history, path=path, labels=tuple(data.classes),
                       params=params, key=key, n_train=n, seconds=seconds)


def _load_result(folder: Path, name: str, key: str, params: TrainParams, warn: bool = True) -> TrainResult | None:
    """The finished training in ``folder`` if it is whole; None otherwise (damage is warned about)."""
    meta_path = folder / _META
    if not meta_path.exists():
        return None
    problem = check_entry(folder)
    if problem is None:
        try:
            meta = json.loads(meta_path.read_text())
        except (ValueError, OSError) as exc:
            problem = f"{_META} cannot be read ({exc})"
    if problem is not None:
        if warn:
            warnings.warn(f"trained model {folder} is damaged ({problem}); training it again", CacheWarning,
                          stacklevel=3)
        return None
    if meta.get("key") != key:
        return None
    labels = tuple(meta["labels"])
    model = _build(name, params, len(labels) or None, torch.Generator().manual_seed(0))
    load_weights(model, folder / _WEIGHTS)
    model.eval()
    history = pd.read_csv(folder / _HISTORY)
    return TrainResult(name=name, model=model, history=history, path=folder / _WEIGHTS, labels=labels,
                       params=params, key=key, n_train=int(meta["n_train"]), seconds=float(meta["seconds"]))


def load_or_train(
    name: str,
    crops: CropSet,
    params: TrainParams | dict | None = None,
    *,
    cache_dir=None,
    progress: bool = True,
    device=None,
) -> TrainResult:
    """:func:`train` with an on-disk cache: ``cache_dir/<name>-<key>/``.

    A finished training with the same key (model, resolved parameters, data fingerprint, code of
    :mod:`bgrobust.train` and :mod:`bgrobust.models`, package versions) is loaded instead of
    retrained, after its files are checked against their manifest (a damaged one is trained
    again, with a :class:`~bgrobust.cache.CacheWarning` naming the folder); an interrupted one
    resumes from its last complete epoch.  The training runs under the key's lock
    (:func:`bgrobust.cache.entry_lock`): a second process asking for the same model waits for it
    and loads its result.

    Parameters
    ----------
    cache_dir : path, optional
        Default: ``run_dir("shared") / "models"``.
    device : None, str or torch.device
        Where a training that is not cached runs (see :func:`train`).

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd
    >>> from bgrobust.crops import CropSet
    >>> rng = np.random.default_rng(0)
    >>> table = pd.DataFrame({"strain": list("aabb"), "field": 0, "valid": True})
    >>> cs = CropSet(rng.integers(0, 999, (4, 3, 64, 64)), np.zeros((4, 64, 64), bool), table)
    >>> p = TrainParams(epochs=1, batch_size=4, width=0.125)
    >>> d = tempfile.mkdtemp()
    >>> a = load_or_train("pifia", cs, p, cache_dir=d, progress=False)
    >>> b = load_or_train("pifia", cs, p, cache_dir=d, progress=False)   # from the cache
    >>> a.path == b.path
    True
    """
    from .paths import run_dir

    name = _model_name(name)
    params = _as_params(params, name)
    resolve_device(device)  # a bad device is an error even when the result is cached
    key = training_key(name, crops, params)
    cache_dir = Path(cache_dir) if cache_dir is not None else run_dir("shared") / "models"
    folder = cache_dir / f"{name}-{key}"
    # without the lock a result may be half-written by another process: no verdict yet
    cached = _load_result(folder, name, key, params, warn=False)
    if cached is not None:
        return cached
    with entry_lock(folder):  # a second process training the same key waits, then loads
        cached = _load_result(folder, name, key, params)
        if cached is not None:
            return cached
        return train(name, crops, params, checkpoint_dir=folder, progress=progress, device=device)


# ------------------------------------------------------------------------------ plotting
def plot_history(history: pd.DataFrame, ax=None, *, label: str | None = None, show_lr: bool = True):
    """Training loss per step (thin) and per epoch (mean, markers); learning rate on a twin axis.

    Parameters
    ----------
    history : pandas.DataFrame
        ``TrainResult.history`` (columns ``epoch``, ``step``, ``loss``, optionally ``lr``).
    ax : matplotlib.axes.Axes, optional
    label : str, optional
        Legend label of the loss curve.
    show_lr : bool
        Draw the learning rate on a secondary axis when it changes during training.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import pandas as pd
    >>> h = pd.DataFrame({"epoch": [1, 1, 2, 2], "step": [1, 2, 3, 4],
    ...                   "loss": [2.0, 1.5, 1.2, 1.0], "lr": [1e-3] * 4})
    >>> plot_history(h).get_ylabel()
    'training loss'
    """
    import matplotlib.pyplot as plt

    missing = [c for c in ("epoch", "step", "loss") if c not in history.columns]
    if missing:
        raise ValueError(f"plot_history: history lacks column(s) {missing}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    line = ax.plot(history["step"], history["loss"], lw=0.8, alpha=0.45, label=label)[0]
    per_epoch = history.groupby("epoch").agg(step=("step", "max"), loss=("loss", "mean"))
    ax.plot(per_epoch["step"], per_epoch["loss"], "o-", color=line.get_color(), ms=4,
            label=f"{label} (epoch mean)" if label else "epoch mean")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    if show_lr and "lr" in history.columns and history["lr"].nunique() > 1:
        ax2 = ax.twinx()
        ax2.plot(history["step"], history["lr"], color="0.5", lw=0.8, ls="--")
        ax2.set_ylabel("learning rate", color="0.4")
        ax2.tick_params(axis="y", colors="0.4")
    ax.legend(loc="upper right", fontsize="small")
    return ax


# ------------------------------------------------------------------------------ the book's models
def split_training(training: Mapping | None, name: str) -> dict:
    """One model's training parameters from a profile's ``training`` mapping.

    Top-level keys apply to every model; a key named after a model (``pifia``, ``pci``,
    ``deeploc``) holds that model's overrides.
    """
    training = dict(training or {})
    common = {k: v for k, v in training.items() if k not in MODEL_NAMES}
    own = training.get(name) or {}
    if not isinstance(own, Mapping):
        raise TypeError(f"training.{name} must be a mapping of parameters, got {own!r}")
    return {**common, **own}


def train_models(dataset, training: Mapping | None = None, models=MODELS, *, seed: int = 0, cache_dir=None,
                 progress: bool = True, device=None, precision: str | None = None) -> dict:
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
    precision : str, optional
        Every model's ``TrainParams.precision`` (``"auto"`` resolved for ``device`` by
        :func:`bgrobust.devices.check_precision`); ``None`` keeps ``training``'s (float32).

    Returns
    -------
    dict of str to bgrobust.train.TrainResult
    """
    results = {}
    common = {} if precision is None else {"precision": check_precision(precision, device)}
    for name in models:
        params = TrainParams.from_dict({"seed": seed, **split_training(training, name), **common}, model=name)
        results[name] = load_or_train(name, dataset.crops, params, cache_dir=cache_dir, progress=progress,
                                      device=device)
    return results


def untrained_models(trained: Mapping, *, seed: int = 0) -> dict:
    """Random-init copies of trained models: same architecture, width and head size.

    The untrained baseline of "what are we learning": the same layer and pooling read
    from a network that never saw the screen.
    """
    copies = {}
    for name, result in trained.items():
        n_classes = len(result.labels) if result.labels else None
        kwargs = {"n_classes": n_classes} if n_classes else {}
        copies[name] = build(name, width=result.params.width, random_state=seed, **kwargs).eval()
    return copies
