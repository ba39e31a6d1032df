"""One protocol for every feature extractor the experiments evaluate.

An *extractor* turns a batch of crops into one feature vector per crop. The experiment
runner (:mod:`bgrobust.experiments`) and :func:`bgrobust.robustness.robustness_report`
accept anything :func:`as_extractor` can adapt:

=============================  ==============================================================
what you have                  adapter
=============================  ==============================================================
a bgrobust model (PIFiA, PCI,  :class:`ModelFeatures`: the model's own preprocessing, a layer
DeepLoc)                       and a pooling (:func:`bgrobust.features.extract`, cached)
any ``torch.nn.Module``        :class:`ModuleFeatures`: selected channels, min-max scaled,
                               feature maps mean-pooled
a plain callable on crops      :class:`CallableFeatures` (``fn(crops)`` or, with
                               ``needs_masks``, ``fn(crops, masks)``)
features computed elsewhere    :class:`PrecomputedFeatures`: a table keyed by crop id
                               (DataFrame, parquet or AnnData file)
=============================  ==============================================================

The VAE (:class:`bgrobust.vae.VAE`) and the structural baseline
(:class:`bgrobust.baselines.StructuralExtractor`) are adapted the same way
(:func:`as_extractor` recognises them).

Every adapter is called as ``extractor(images, masks, ids)``: ``images`` ``(N, C, S, S)``
in the order of ``channels`` (the crops' channel names), ``masks`` the centre-cell masks
``(N, S, S)`` and ``ids`` one string per crop (see
:func:`bgrobust.experiments.setting_crop_ids`); each adapter uses what it needs.

Examples
--------
>>> import numpy as np
>>> ex = as_extractor(lambda crops: crops.mean(axis=(2, 3)), name="mean intensity")
>>> x = np.random.default_rng(0).random((4, 3, 8, 8))
>>> ex(x).shape, ex.name
((4, 3), 'mean intensity')
>>> pre = PrecomputedFeatures(np.eye(2), ["a", "b"])
>>> pre(np.zeros((2, 3, 8, 8)), ids=["b", "a"]).tolist()
[[0.0, 1.0], [1.0, 0.0]]
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed

from .devices import check_precision, resolve_device
from .vocabulary import CHANNELS

__all__ = ["Extractor", "ModelFeatures", "ModuleFeatures", "CallableFeatures", "PrecomputedFeatures", "VAEFeatures",
           "StructuralFeatures",
           "as_extractor", "minmax_per_channel"]


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


def _check_channel_names(channels, who: str) -> tuple[str, ...] | None:
    if channels is None:
        return None
    if isinstance(channels, str) or not channels:
        raise ValueError(f"{who}: channels must be a non-empty sequence of channel names, got {channels!r}")
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ValueError(f"{who}: unknown channel(s) {unknown}; channels must be a subset of {CHANNELS}")
    return tuple(channels)


def _channel_index(wanted: Sequence[str], available: Sequence[str], who: str) -> list[int]:
    wanted, available = tuple(wanted), tuple(available)
    if isinstance(wanted, str) or not wanted:
        raise ValueError(f"{who}: channels must be a non-empty sequence of channel names, got {wanted!r}")
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ValueError(f"{who}: reads channel(s) {missing}, but the crops have {available}")
    return [available.index(c) for c in wanted]


class Extractor:
    """Base class of the adapters: ``extractor(images, masks=None, ids=None) -> (N, D) float32``.

    Subclasses implement :meth:`_features`; :meth:`__call__` checks the output (one finite
    row per crop). ``needs_masks`` / ``needs_ids`` say what the runner must pass.
    """

    name: str = "extractor"
    needs_masks: bool = False
    needs_ids: bool = False
    #: Channel names of the crops this extractor is given (set by the runner from the dataset).
    crop_channels: tuple[str, ...] = CHANNELS

    def _features(self, images, masks, ids) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def with_channels(self, channels: Sequence[str]) -> "Extractor":
        """Tell the extractor the channel names of the crops it will see (returns ``self``)."""
        self.crop_channels = tuple(channels)
        return self

    def __call__(self, images, masks=None, ids=None) -> np.ndarray:
        images = np.asarray(images)
        if self.needs_masks and masks is None:
            raise ValueError(f"extractor {self.name!r} needs the centre-cell masks of the crops")
        if self.needs_ids and ids is None:
            raise ValueError(f"extractor {self.name!r} (precomputed features) needs the crop ids")
        out = np.asarray(self._features(images, masks, ids), dtype=np.float32)
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2 or len(out) != len(images):
            raise ValueError(f"extractor {self.name!r} must return one feature vector per crop: got shape "
                             f"{out.shape} for {len(images)} crops")
        if not np.isfinite(out).all():
            raise ValueError(f"extractor {self.name!r} returned NaN or infinite features")
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ModelFeatures(Extractor):
    """A bgrobust model read at one layer with one pooling (:func:`bgrobust.features.extract`).

    Parameters
    ----------
    model : torch.nn.Module
        A registered model (``bgrobust.models.build`` or a trained one).
    layer : str, optional
        Default: the paper's layer of the model.
    pooling : {"max", "mean", "none", "centre"}
    mask_input : bool
        Read the features of the crops with everything outside the centre mask set to 0.
    cache_dir : path, optional
        Feature cache folder.
    device : None, str or torch.device
    precision : {"float32", "bfloat16", "float16"}
        The forward passes' arithmetic (:func:`bgrobust.devices.autocast`).
    n_jobs : int
        Extraction in worker processes, or on a dask cluster inside
        :func:`bgrobust.cluster.connect` (:func:`bgrobust.features.extract_layers`).
    name : str, optional
    """

    def __init__(self, model, layer: str | None = None, pooling: str = "max", *, mask_input: bool = False,
                 cache_dir=None, device=None, precision: str = "float32", n_jobs: int = 1,
                 name: str | None = None):
        from .models import get_spec

        spec = get_spec(getattr(model, "name", None))
        self.model, self.layer, self.pooling = model, layer or spec.paper_layer, pooling
        self.mask_input, self.cache_dir, self.device = bool(mask_input), cache_dir, device
        self.precision = check_precision(precision, device, where="ModelFeatures: precision")
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
            raise ValueError(f"ModelFeatures: n_jobs must be a non-zero integer, got {n_jobs!r}")
        self.n_jobs = n_jobs
        self.needs_masks = self.mask_input
        self.name = name or f"{spec.title}:{self.layer}:{pooling}"

    def _features(self, images, masks, ids):
        from .features import extract

        return extract(self.model, images, self.layer, self.pooling, mask_input=self.mask_input,
                       masks=masks if self.mask_input else None, cache_dir=self.cache_dir, progress=False,
                       device=self.device, channels=self.crop_channels, precision=self.precision,
                       n_jobs=self.n_jobs)


class ModuleFeatures(Extractor):
    """Any ``torch.nn.Module`` on the selected channels.

    It receives a float32 tensor ``(B, C, S, S)`` (after ``preprocess``) and may return
    ``(B, D)`` or feature maps ``(B, D, H, W)``, which are mean-pooled.
    """

    def __init__(self, module: torch.nn.Module, *, channels: Sequence[str] = CHANNELS,
                 preprocess: Callable | None = minmax_per_channel, batch_size: int = 256, device=None,
                 name: str | None = None):
        self.module, self.preprocess = module.eval(), preprocess
        self.channels = _check_channel_names(channels, "ModuleFeatures")
        self.batch_size = int(batch_size)
        if device is not None:
            self.device = resolve_device(device)
            module.to(self.device)
        else:
            params = list(module.parameters())
            self.device = params[0].device if params else torch.device("cpu")
        self.name = name or getattr(module, "__name__", type(module).__name__)

    def _features(self, images, masks, ids):
        x = images[:, _channel_index(self.channels, self.crop_channels, self.name)]
        x = self.preprocess(x) if self.preprocess is not None else x
        out = []
        with torch.inference_mode():
            for start in range(0, len(x), self.batch_size):
                z = self.module(torch.as_tensor(np.ascontiguousarray(x[start:start + self.batch_size]),
                                                dtype=torch.float32, device=self.device))
                if z.ndim == 4:
                    z = z.mean(dim=(2, 3))
                if z.ndim != 2:
                    raise ValueError(f"extractor {self.name!r} returned a tensor of shape {tuple(z.shape)}; "
                                     "expected (B, D) or (B, D, H, W)")
                out.append(z.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class CallableFeatures(Extractor):
    """A plain function of the crops (and, with ``needs_masks``, of their centre masks).

    Parameters
    ----------
    fn : callable
        ``fn(crops) -> (N, D)`` or ``fn(crops, masks) -> (N, D)``.
    channels : sequence of str, optional
        The channels ``fn`` receives, in this order (default: all the crops have).
    preprocess : callable, optional
        Applied to the selected channels first (default: none).
    """

    def __init__(self, fn: Callable, *, channels: Sequence[str] | None = None, preprocess: Callable | None = None,
                 needs_masks: bool = False, name: str | None = None):
        if not callable(fn):
            raise TypeError(f"CallableFeatures: fn must be callable, got {type(fn).__name__}")
        self.fn, self.preprocess = fn, preprocess
        self.channels = _check_channel_names(channels, "CallableFeatures")
        self.needs_masks = bool(needs_masks)
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def _features(self, images, masks, ids):
        x = images if self.channels is None else images[:, _channel_index(self.channels, self.crop_channels,
                                                                          self.name)]
        x = self.preprocess(x) if self.preprocess is not None else x
        return self.fn(x, masks) if self.needs_masks else self.fn(x)


class StructuralFeatures(Extractor):
    """The hand-crafted structural baseline (:class:`bgrobust.baselines.StructuralExtractor`), standardised.

    Every crop is first rescaled on its own, as each of the three networks does before it sees
    a crop (:mod:`bgrobust.models.preprocess`): with ``intensity="minmax"`` each channel to
    [0, 1] by its own minimum and maximum (:func:`minmax_per_channel`, PCI's transform). The
    raw crops of the base and mask settings and the composites of same, diff and batch (whose
    pixels are standardised per protein, section 3.2, so they are near zero and partly
    negative) then reach the descriptor on one scale; without it (``intensity="raw"``) its
    ratio features (``cell_bg_contrast``, ``gfp_max_over_median``, ...) divide by values near
    zero on composites and reach 1e7.
    Its features have very different scales (areas, counts, intensities) and the paper's SVM
    does not scale, so each is then standardised once with the mean and standard deviation
    over ``reference`` crops (e.g. the screen's valid crops), the same for every set.

    A feature that is undefined for a crop (NaN, e.g. a neighbour measure without neighbours,
    or a marker channel the crops lack) is left out of the statistics and set to the mean (0).

    Parameters
    ----------
    reference : CropSet
        Crops (with masks) whose feature statistics standardise every set.
    name : str
    intensity : {"minmax", "raw"}, default "minmax"
        Per-crop, per-channel rescaling before the descriptor (``"raw"``: none).
    n_jobs : int
        Batches of crops (the extractor's ``batch_size`` each) described in joblib's worker
        processes (``-1``: every core; on a dask cluster inside
        :func:`bgrobust.cluster.connect`); the features do not depend on it.
    **options
        Options of :class:`~bgrobust.baselines.StructuralExtractor`; its ``channels`` are
        taken by name from the crops' channels (e.g. ``channels=("gfp", "cytoplasm")`` for
        real crops without a nuclear marker).

    Examples
    --------
    >>> import pandas as pd
    >>> from bgrobust.crops import CropSet
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(100, 900, size=(4, 3, 64, 64)).astype(np.float32)
    >>> masks = np.zeros((4, 64, 64), bool); masks[:, 20:44, 20:44] = True
    >>> f = StructuralFeatures(CropSet(images, masks, pd.DataFrame(index=range(4))))
    >>> a = f(images, masks=masks)
    >>> b = f((images - 500) / 200, masks=masks)  # standardised pixels, as in a composite
    >>> bool(np.abs(a - b).max() < 1e-3)
    True
    """

    needs_masks = True
    INTENSITY = ("minmax", "raw")
    #: Crops per task in worker processes (``n_jobs != 1``).
    WORKER_CROPS = 256

    def __init__(self, reference, *, name: str = "structural (hand-crafted)", intensity: str = "minmax",
                 n_jobs: int = 1, **options):
        from .baselines import StructuralExtractor

        if not hasattr(reference, "images") or getattr(reference, "masks", None) is None:
            raise TypeError("StructuralFeatures: reference must be a CropSet with images and masks, "
                            f"got {type(reference).__name__}")
        if len(reference.images) < 2:
            raise ValueError(f"StructuralFeatures: reference needs >= 2 crops, got {len(reference.images)}")
        if intensity not in self.INTENSITY:
            raise ValueError(f"StructuralFeatures: intensity must be one of {self.INTENSITY}, got {intensity!r}")
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
            raise ValueError(f"StructuralFeatures: n_jobs must be a non-zero integer (-1: every core), got {n_jobs!r}")
        self.intensity, self.n_jobs = intensity, int(n_jobs)
        self.extract = StructuralExtractor(**options)
        self.name = name
        ref = self._raw_features(reference.images, reference.masks,
                                 tuple(getattr(reference, "channels", None) or CHANNELS))
        defined = np.isfinite(ref)
        count = np.maximum(defined.sum(0), 1)
        filled = np.where(defined, ref, 0.0)
        self.mean = filled.sum(0) / count  # a feature never defined gets mean 0 and sd 1e-9: it stays 0
        self.sd = np.sqrt((np.where(defined, ref - self.mean, 0.0) ** 2).sum(0) / count) + 1e-9

    def _raw_features(self, images, masks, channels):
        idx = _channel_index(self.extract.channels, channels, self.name)
        n, step = len(images), self.extract.batch_size
        if self.n_jobs == 1 or n <= self.WORKER_CROPS:
            out = [_structural_batch(self.extract, images[s:s + step], masks[s:s + step], idx, self.intensity)
                   for s in range(0, n, step)]
        else:
            # small batches, sent by value: a worker that read a memory-mapped set, or kept a
            # large batch's heap, would grow past loky's memory-leak limit and be restarted
            # (with a warning on the page); the features are the same either way (per crop)
            step = min(step, self.WORKER_CROPS)
            tasks = (delayed(_structural_batch)(self.extract, np.array(images[s:s + step]),
                                                np.array(masks[s:s + step]), idx, self.intensity)
                     for s in range(0, n, step))
            out = Parallel(n_jobs=self.n_jobs, max_nbytes=None)(tasks)
        return np.concatenate(out) if out else np.zeros((0, len(self.extract.feature_names)), np.float32)

    def _features(self, images, masks, ids):
        z = (self._raw_features(images, masks, self.crop_channels) - self.mean) / self.sd
        return np.nan_to_num(z, nan=0.0).astype(np.float32)


def _structural_batch(extract, images, masks, idx, intensity: str) -> np.ndarray:
    """One batch of :class:`StructuralFeatures`' raw descriptor (run here or in a worker)."""
    x = np.asarray(images)[:, idx]
    return extract(x if intensity == "raw" else minmax_per_channel(x.astype(np.float32)), np.asarray(masks))


class PrecomputedFeatures(Extractor):
    """Features computed elsewhere, looked up by crop id.

    Parameters
    ----------
    features : (M, D) array
    ids : sequence of str, length M
        The crop id of every row (unique).

    Use :meth:`from_frame`, :meth:`from_parquet` or :meth:`from_anndata` to read a table.
    The ids of the crops of a set of experiments are :func:`bgrobust.experiments.setting_crop_ids`.
    """

    needs_ids = True

    def __init__(self, features, ids, *, name: str = "precomputed", source: str = "features"):
        features = np.asarray(features, dtype=np.float32)
        ids = pd.Index([str(i) for i in ids])
        if features.ndim != 2 or len(features) != len(ids):
            raise ValueError(f"{source}: features must be (n_crops, n_features) with one id per row; got "
                             f"{features.shape} for {len(ids)} ids")
        if ids.has_duplicates:
            raise ValueError(f"{source}: crop ids must be unique; duplicated: {list(ids[ids.duplicated()][:5])}")
        self.features, self.ids, self.name, self.source = features, ids, name, source

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, id_column: str = "crop_id", feature_columns=None,
                   name: str = "precomputed", source: str = "DataFrame") -> "PrecomputedFeatures":
        """One row per crop: ``id_column`` and the feature columns (default: every numeric column
        that does not start with ``Metadata_``)."""
        if id_column not in frame.columns:
            raise ValueError(f"{source}: no column {id_column!r} (the crop ids); columns: {list(frame.columns)[:10]}")
        if feature_columns is None:
            feature_columns = [c for c in frame.columns if c != id_column and not str(c).startswith("Metadata_")
                               and pd.api.types.is_numeric_dtype(frame[c])]
        if not feature_columns:
            raise ValueError(f"{source}: no numeric feature columns besides {id_column!r}")
        return cls(frame[list(feature_columns)].to_numpy(np.float32), frame[id_column], name=name, source=source)

    @classmethod
    def from_parquet(cls, path, *, id_column: str = "Metadata_crop_id", **kw) -> "PrecomputedFeatures":
        """A parquet file of features with ``Metadata_*`` columns (the pycytominer convention)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such features file")
        return cls.from_frame(pd.read_parquet(path), id_column=id_column, source=str(path), **kw)

    @classmethod
    def from_anndata(cls, path_or_adata, *, id_column: str | None = None, name: str = "precomputed"):
        """An AnnData (``.h5ad`` path or object): ``X`` the features, ``obs_names`` (or ``obs[id_column]``)
        the crop ids."""
        import anndata

        adata = anndata.read_h5ad(path_or_adata) if isinstance(path_or_adata, (str, Path)) else path_or_adata
        ids = adata.obs_names if id_column is None else adata.obs[id_column]
        x = adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X
        return cls(np.asarray(x), ids, name=name, source=str(path_or_adata) if isinstance(path_or_adata, (str, Path))
                   else "AnnData")

    def _features(self, images, masks, ids):
        pos = self.ids.get_indexer([str(i) for i in ids])
        if (pos < 0).any():
            missing = [str(i) for i, p in zip(ids, pos) if p < 0]
            raise ValueError(f"{self.source}: no features for {len(missing)} of {len(pos)} crops "
                             f"(e.g. {missing[:3]}); compute them for the ids of "
                             "bgrobust.experiments.setting_crop_ids(sets)")
        return self.features[pos]


class VAEFeatures(Extractor):
    """The VAE baseline's posterior means (:func:`bgrobust.vae.vae_features`)."""

    def __init__(self, model, *, name: str | None = None):
        self.model, self.name = model, name or "VAE (posterior mean)"

    def _features(self, images, masks, ids):
        from .vae import vae_features

        return vae_features(self.model, images, image_channels=self.crop_channels)


def _is_registered_model(obj) -> bool:
    from .models.registry import MODEL_NAMES

    return isinstance(obj, torch.nn.Module) and getattr(obj, "name", None) in MODEL_NAMES and hasattr(obj, "features")


def as_extractor(obj, *, name: str | None = None, channels: Sequence[str] | None = None,
                 preprocess: Callable | None | str = "default", layer: str | None = None, pooling: str = "max",
                 needs_masks: bool | None = None, cache_dir=None, device=None, batch_size: int = 256) -> Extractor:
    """Adapt ``obj`` to the extractor protocol.

    Parameters
    ----------
    obj : Extractor, bgrobust model, VAE, StructuralExtractor, torch.nn.Module, callable, DataFrame or path
        A DataFrame, a ``.parquet`` or a ``.h5ad`` path become :class:`PrecomputedFeatures`.
    name : str, optional
    channels : sequence of str, optional
        Module / callable: the channels it receives (Module default: all the crops have).
    preprocess : callable, None or "default"
        Module: default min-max per channel (:func:`minmax_per_channel`); callable: default none.
    layer, pooling
        For a bgrobust model (default: the paper's layer, max pooling).
    needs_masks : bool, optional
        For a callable: call it as ``fn(crops, masks)`` (default: False).
    cache_dir, device, batch_size
        Feature cache (models), where networks run, crops per forward pass (Modules).
    """
    from .baselines import StructuralExtractor
    from .vae import VAE

    if isinstance(obj, Extractor):
        if name:
            obj.name = name
        return obj
    if isinstance(obj, pd.DataFrame):
        return PrecomputedFeatures.from_frame(obj, name=name or "precomputed")
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        if path.suffix == ".parquet":
            return PrecomputedFeatures.from_parquet(path, name=name or path.stem)
        if path.suffix == ".h5ad":
            return PrecomputedFeatures.from_anndata(path, name=name or path.stem)
        raise ValueError(f"{path}: precomputed features must be a .parquet or .h5ad file")
    if _is_registered_model(obj):
        return ModelFeatures(obj, layer, pooling, cache_dir=cache_dir, device=device, name=name)
    if isinstance(obj, VAE):
        return VAEFeatures(obj, name=name)
    if isinstance(obj, StructuralExtractor):
        return CallableFeatures(obj, channels=CHANNELS, needs_masks=True, name=name or "structural")
    if isinstance(obj, torch.nn.Module):
        return ModuleFeatures(obj, channels=channels or CHANNELS,
                              preprocess=minmax_per_channel if preprocess == "default" else preprocess,
                              batch_size=batch_size, device=device, name=name)
    if callable(obj):
        return CallableFeatures(obj, channels=channels, preprocess=None if preprocess == "default" else preprocess,
                                needs_masks=bool(needs_masks), name=name)
    raise TypeError(f"cannot use a {type(obj).__name__} as a feature extractor: expected a bgrobust model, a "
                    "torch.nn.Module, a callable, precomputed features (DataFrame, .parquet, .h5ad) or an Extractor")
