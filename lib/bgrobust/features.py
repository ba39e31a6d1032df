"""Feature vectors of single-cell crops from the three models, with an on-disk cache.

* :func:`extract`: one layer, ``(N, D)`` float32. Every crop goes through the model's own
  preprocessing (:func:`bgrobust.models.prepare_input`), then the network up to the named layer
  (default: the paper's layer, ``get_spec(name).paper_layer``), then a global spatial pooling of
  the ``(B, C, H, W)`` map (``"max"``, as the Lu lab's extraction code does, or ``"mean"``;
  ``"centre"`` weights the map with a Gaussian centred on its centre, see below; ``"none"``
  flattens the map). Vector layers (dense layers, ``flatten``) are returned as they are.
  DeepLoc sees five 60x60 crops of each 64x64 crop (centre and four corners) and the pooled
  features are averaged over them, as DeepLoc averages its predictions (``five_crop=True``, its
  default); with ``five_crop=False`` it sees the centre 60x60 crop only.
* :func:`extract_layers`: several layers from *one* forward pass per batch (the layer-selection
  chapter reads every layer at the cost of the deepest one). Equal to calling :func:`extract`
  per layer.
* :func:`bgrobust.cache.array_digest`, :func:`bgrobust.cache.state_digest`: fast fingerprints of a crop array and of a
  model's weights (SHA-256 over the raw bytes, read in chunks without copying; ~1 GB/s).

Two remedies for background-sensitive features (the paper's discussion) are read-out options:

* ``mask_input=True``: every pixel outside the crop's centre-cell mask (a CropSet's ``masks``
  or ``masks=``) is set to 0 before preprocessing: the features of ``crops * masks``. This is
  how a model trained with ``TrainParams(input="masked")`` saw its inputs.
* ``pooling="centre"``: centre-weighted pooling, ``sum_ij w_ij z[:, :, i, j]`` with Gaussian
  weights ``w`` (:func:`centre_weights`) centred on the centre of the map, standard deviation
  ``centre_sigma`` times the map's side, normalised to sum 1. Small ``centre_sigma`` reads the
  centre of the map (the centre cell); large ones tend to mean pooling. DeepLoc's corner crops
  are weighted around their own centres (2 pixels off the crop's centre).

With ``cache_dir`` every (model weights, layer, pooling, five_crop, crops) combination is stored
as one sealed cache entry, a folder ``features-<model>-<layer>-<key>/`` holding ``features.npy``
(written atomically and checked against its manifest when read; a damaged one is recomputed
with a warning naming it, :mod:`bgrobust.cache`); a changed weight, layer,
pooling, five-crop setting or crop array gives a new key, as do ``mask_input`` (with the masks)
and ``centre_sigma`` (with ``pooling="centre"``), which enter the key only when used.

Examples
--------
>>> import numpy as np
>>> from bgrobust import models
>>> model = models.build("pci", width=0.25, random_state=0)
>>> crops = np.random.default_rng(0).integers(0, 4000, size=(5, 3, 64, 64)).astype(np.uint16)
>>> extract(model, crops, progress=False).shape        # conv4_1, max-pooled
(5, 96)
>>> feats = extract_layers(model, crops, ["conv3_1", "conv4_1"], progress=False)
>>> np.array_equal(feats["conv4_1"], extract(model, crops, "conv4_1", progress=False))
True
>>> masks = np.zeros((5, 64, 64), bool); masks[:, 16:48, 16:48] = True
>>> np.array_equal(extract(model, crops, mask_input=True, masks=masks, progress=False),
...                extract(model, crops * masks[:, None], progress=False))
True
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from joblib import Parallel, delayed, effective_n_jobs
from torch import nn
from tqdm.auto import tqdm

from .cache import array_digest, atomic_dir, clean_stale_once, code_key, content_key, read_checked, state_digest
from .crops import CropSet
from .devices import autocast, check_precision, resolve_device
from .models import _ops
from .models.fold import fold_batchnorm
from .models.preprocess import five_crop_offsets
from .models.registry import MODEL_NAMES, get_spec, prepare_input
from .vocabulary import CHANNELS

#: Default crops per forward pass of :func:`extract_layers`, per model: the fastest at width
#: 0.25 on 2 CPU cores with batch-norm folding (``benchmarks/bench_extract.py``: PCI 1.5x faster
#: at 32 than at 64; PIFiA fastest at 64) and, for DeepLoc (five 60x60 crops per crop, so 80
#: inputs per pass), 16 with bfloat16 on 1 and 2 threads (1.1x the rate at 32,
#: ``benchmarks/results/inference_ops.json``).
EXTRACT_BATCH_SIZES = {"pifia": 64, "pci": 32, "deeploc": 16}

__all__ = ["POOLINGS", "extract", "extract_layers", "feature_key",
           "centre_weights"]

#: Accepted values of ``pooling``.
POOLINGS = ("max", "mean", "none", "centre")

#: Default ``centre_sigma`` of ``pooling="centre"`` (fraction of the map's side).
CENTRE_SIGMA = 0.25



# ------------------------------------------------------------------------------ checks
def _check_model(model) -> str:
    name = getattr(model, "name", None)
    if not isinstance(model, nn.Module) or name not in MODEL_NAMES or not hasattr(model, "features"):
        raise TypeError(
            "model must be a bgrobust model (built with bgrobust.models.build: "
            f"{', '.join(MODEL_NAMES)}), got {type(model).__name__}"
        )
    return name


def _check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    return pooling


def _check_sigma(centre_sigma) -> float:
    ok = isinstance(centre_sigma, (int, float, np.number)) and not isinstance(centre_sigma, bool)
    if not ok or not np.isfinite(centre_sigma) or centre_sigma <= 0:
        raise ValueError(f"centre_sigma must be a finite number > 0 (a fraction of the map's side), "
                         f"got {centre_sigma!r}")
    return float(centre_sigma)


def _masks_for(crops, arr: np.ndarray, mask_input: bool, masks):
    """The centre masks to apply (``mask_input``), from ``masks=`` or the CropSet; else None."""
    if not mask_input:
        if masks is not None:
            raise ValueError("masks= is used only with mask_input=True")
        return None
    if masks is None:
        if not isinstance(crops, CropSet):
            raise ValueError("mask_input=True needs the centre masks: pass a CropSet or masks= "
                             "(N, 64, 64) booleans")
        masks = crops.masks
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    masks = masks if isinstance(masks, np.ndarray) else np.asarray(masks)
    expected = (len(arr),) + tuple(arr.shape[2:])
    if tuple(masks.shape) != expected:
        raise ValueError(f"masks must have shape {expected} (one centre mask per crop), got {masks.shape}")
    if masks.dtype != bool:
        raise ValueError(f"masks must be boolean, got dtype {masks.dtype}")
    return masks


def _check_five_crop(name: str, five_crop: bool | None) -> bool:
    spec = get_spec(name)
    if five_crop is None:
        return spec.five_crop_test
    if five_crop and not spec.five_crop_test:
        raise ValueError(
            f"five_crop applies only to models that read 60x60 crops (DeepLoc); "
            f"{spec.title} reads the whole {spec.input_size}x{spec.input_size} crop"
        )
    return bool(five_crop)


def _channels_of(crops, channels) -> tuple[str, ...]:
    """The channel names of ``crops``: the argument, else a CropSet's own, else :data:`CHANNELS`."""
    if channels is not None:
        return tuple(channels)
    return tuple(getattr(crops, "channels", None) or CHANNELS)


def _as_crops(crops) -> np.ndarray:
    if isinstance(crops, CropSet):
        return crops.images
    if isinstance(crops, torch.Tensor):
        crops = crops.detach().cpu().numpy()
    arr = np.asarray(crops) if not isinstance(crops, np.ndarray) else crops
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"crops must be a real numeric array or a CropSet, got dtype {arr.dtype}")
    if arr.ndim != 4:
        raise ValueError(f"crops must have shape (N, C, 64, 64), got {arr.shape}")
    return arr


def _check_layers(name: str, layers) -> list[str]:
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError("layers must name at least one layer")
    spec = get_spec(name)
    for layer in layers:
        spec.layer(layer)  # raises a clear error for an unknown layer
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers contains duplicates: {layers}")
    return layers


# ------------------------------------------------------------------------------ forward
def _stages(model: nn.Module):
    """(name, op) pairs of the feature path, for running several layers in one pass."""
    return model.feature_steps()


def _forward_layers(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Outputs at ``layers`` from one staged pass (:meth:`feature_steps`), stopping at the last.

    Inference only (no autograd): a ReLU step whose input is neither the batch ``x`` nor an
    output kept for ``layers`` runs in place, which saves a copy of the largest maps, and
    2x2 max pooling of even-sided maps is the maximum of four views
    (:func:`bgrobust.models._ops.fast_pool`); the values are the same.
    """
    wanted = set(layers)
    out: dict[str, torch.Tensor] = {}
    z = x
    for name, step in _stages(model):
        if step is F.relu and z is not x and not any(z is kept for kept in out.values()):
            z = _ops.relu_(z)
        else:
            pooled = _ops.fast_pool(step, z)
            z = step(z) if pooled is None else pooled
        if name in wanted:
            out[name] = z
            if len(out) == len(wanted):
                break
    return out


def _five_crops_channels_last(x: torch.Tensor, size: int) -> torch.Tensor:
    """DeepLoc's five crops of every image as one ``(5B, C, size, size)`` channels-last batch.

    Image ``i``'s crops are rows ``5i .. 5i + 4`` in :func:`five_crop_offsets` order (the layout
    of ``five_crops(x).reshape(5B, ...)``), written once into channels-last memory instead of
    being stacked and then converted.
    """
    b, c = x.shape[:2]
    nhwc = x.permute(0, 2, 3, 1)
    out = torch.empty((b, 5, size, size, c), dtype=x.dtype, device=x.device)
    for k, (r, col) in enumerate(five_crop_offsets(size, x.shape[-1])):
        out[:, k] = nhwc[:, r:r + size, col:col + size]
    return out.reshape(b * 5, size, size, c).permute(0, 3, 1, 2)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _inference_copy(model: nn.Module, layers: Sequence[str] = (), fold_bn: bool = True) -> nn.Module:
    """An eval-mode copy in channels-last layout (about 1.5-2x faster on CPU), with every
    Conv -> BatchNorm pair folded into one convolution unless its convolution output is one of
    ``layers`` (:func:`bgrobust.models.fold.fold_batchnorm`; same features within ~1e-6);
    ``model`` is untouched."""
    net = copy.deepcopy(model).eval()
    if fold_bn:
        fold_batchnorm(net, keep=layers)
    return net.to(memory_format=torch.channels_last)


def centre_weights(height: int, width: int, centre_sigma: float = CENTRE_SIGMA) -> np.ndarray:
    """Gaussian weights of ``pooling="centre"`` on a ``height x width`` map, summing to 1.

    ``w_ij ~ exp(-((i - ci)^2 / (2 sh^2) + (j - cj)^2 / (2 sw^2)))`` with the map's centre
    ``(ci, cj) = ((height - 1) / 2, (width - 1) / 2)`` and ``sh = centre_sigma * height``,
    ``sw = centre_sigma * width``.

    Parameters
    ----------
    height, width : int
        Map size.
    centre_sigma : float
        Standard deviation as a fraction of the map's side (> 0).

    Returns
    -------
    numpy.ndarray
        ``(height, width)`` float64, non-negative, summing to 1.

    Examples
    --------
    >>> w = centre_weights(5, 5)
    >>> round(float(w.sum()), 12), int(w.argmax()), bool(w[2, 2] > w[0, 0])
    (1.0, 12, True)
    """
    centre_sigma = _check_sigma(centre_sigma)
    if isinstance(height, bool) or isinstance(width, bool) or min(int(height), int(width)) < 1:
        raise ValueError(f"centre_weights: map size must be positive integers, got {height} x {width}")
    i = (np.arange(height) - (height - 1) / 2.0) / (centre_sigma * height)
    j = (np.arange(width) - (width - 1) / 2.0) / (centre_sigma * width)
    w = np.exp(-0.5 * (i[:, None] ** 2 + j[None, :] ** 2))
    return w / w.sum()


def _pool(z: torch.Tensor, pooling: str, centre_sigma: float = CENTRE_SIGMA) -> torch.Tensor:
    if z.ndim == 2:
        return z
    if pooling == "max":
        return z.amax(dim=(-2, -1))
    if pooling == "mean":
        return z.mean(dim=(-2, -1))
    if pooling == "centre":
        w = torch.from_numpy(centre_weights(z.shape[-2], z.shape[-1], centre_sigma)).to(z.device, z.dtype)
        return (z * w).sum(dim=(-2, -1))
    return z.flatten(1)


def _features_batch(model, name, raw, layers, pooling, five_crop,
                    centre_sigma: float = CENTRE_SIGMA, device=torch.device("cpu"),
                    channels: Sequence[str] = CHANNELS) -> dict[str, torch.Tensor]:
    x = prepare_input(name, raw, channels).to(device)
    spec = get_spec(name)
    if spec.input_size != spec.crop_size:  # DeepLoc: 60x60 crops of the 64x64 crop
        if five_crop:
            b = x.shape[0]
            outs = _forward_layers(model, _five_crops_channels_last(x, spec.input_size), layers)
            return {k: _pool(v, pooling, centre_sigma).reshape(b, 5, -1).mean(dim=1) for k, v in outs.items()}
        r, c = five_crop_offsets(spec.input_size, spec.crop_size)[0]
        x = x[:, :, r:r + spec.input_size, c:c + spec.input_size]
    return {k: _pool(v, pooling, centre_sigma)
            for k, v in _forward_layers(model, _channels_last(x), layers).items()}


def _extract_batches(arr, mask_arr, net, name, todo, pooling, five_crop, centre_sigma, dev, channels,
                     precision, batch_size, *, progress: bool, desc: str) -> dict[str, np.ndarray]:
    """Features at ``todo`` of ``arr`` (masked by ``mask_arr``), ``batch_size`` crops per pass."""
    n = len(arr)
    chunks: dict[str, list[np.ndarray]] = {layer: [] for layer in todo}
    with torch.inference_mode(), autocast(dev, precision):
        starts = range(0, max(n, 1), batch_size)
        for start in tqdm(starts, desc=desc, unit="batch", disable=not progress):
            raw = arr[start:start + batch_size] if n else np.zeros((1, *arr.shape[1:]), np.float32)
            if mask_arr is not None and n:
                raw = np.asarray(raw) * np.asarray(mask_arr[start:start + batch_size])[:, None]
            out = _features_batch(net, name, raw, todo, pooling, five_crop, centre_sigma, dev, channels)
            for layer in todo:
                v = out[layer].to(torch.float32).cpu().numpy()
                chunks[layer].append(v if n else v[:0])
    return {layer: np.concatenate(chunks[layer]) for layer in todo}


def feature_key(model: nn.Module, layer: str, pooling: str, five_crop: bool, crops_digest: str,
                weights_digest: str | None = None, *, mask_input: bool = False,
                masks_digest: str | None = None, centre_sigma: float = CENTRE_SIGMA,
                channels: Sequence[str] = CHANNELS, precision: str = "float32") -> str:
    """Cache key of one feature matrix (see the module docstring).

    ``mask_input`` (with ``masks_digest``, the :func:`array_digest` of the masks), a
    ``precision`` other than float32 and, for ``pooling="centre"``, ``centre_sigma`` enter the
    key only when used, so the keys of the other features do not depend on them.

    Examples
    --------
    >>> from bgrobust import models
    >>> m = models.build("pifia", width=0.25, random_state=0)
    >>> feature_key(m, "conv8", "max", False, "x") != feature_key(m, "conv8", "mean", False, "x")
    True
    >>> feature_key(m, "conv8", "max", False, "x") == feature_key(m, "conv8", "max", False, "x", centre_sigma=1)
    True
    """
    name = _check_model(model)
    parts = ["features", name, float(getattr(model, "width", 1.0)), layer, pooling, bool(five_crop),
             weights_digest or state_digest(model), crops_digest]
    if mask_input:
        if masks_digest is None:
            raise ValueError("feature_key: mask_input=True needs masks_digest")
        parts.append(("mask_input", masks_digest))
    if pooling == "centre":
        parts.append(("centre_sigma", _check_sigma(centre_sigma)))
    if tuple(channels) != CHANNELS:
        parts.append(("channels", list(channels)))
    if precision != "float32":
        parts.append(("precision", precision))
    return content_key(*parts, code_key("bgrobust.features", "bgrobust.models"))


_FEATURES_FILE = "features.npy"


def _load_features(folder: Path) -> np.ndarray:
    return np.load(folder / _FEATURES_FILE, allow_pickle=False)


# ------------------------------------------------------------------------------ public API
def extract_layers(
    model: nn.Module,
    crops,
    layers: Sequence[str],
    pooling: str = "max",
    *,
    batch_size: int | None = None,
    five_crop: bool | None = None,
    progress: bool = True,
    cache_dir=None,
    mask_input: bool = False,
    masks=None,
    centre_sigma: float = CENTRE_SIGMA,
    device=None,
    channels: Sequence[str] | None = None,
    precision: str = "float32",
    n_jobs: int = 1,
) -> dict[str, np.ndarray]:
    """Features at several layers, computed in one forward pass per batch.

    Parameters
    ----------
    model : torch.nn.Module
        A bgrobust model (``models.build``). Features are computed by an ``eval()``-mode copy
        in channels-last memory layout; ``model`` itself is not changed.
    crops : array_like of shape (N, 3, 64, 64) or CropSet
        Raw crops in :data:`bgrobust.screen.CHANNELS` order, any real dtype (composites with
        negative values included).
    layers : sequence of str
        Names from ``get_spec(model.name).feature_layers``.
    pooling : {"max", "mean", "none", "centre"}
        Global spatial pooling of ``(B, C, H, W)`` maps; ``"centre"`` is the Gaussian-weighted
        sum of :func:`centre_weights`; ``"none"`` flattens them (C*H*W values,
        channel-major). Vector layers are never pooled.
    batch_size : int, optional
        Crops per forward pass (DeepLoc's five-crop pass runs 5 x ``batch_size`` inputs).
        ``None`` = the model's :data:`EXTRACT_BATCH_SIZES` entry, the fastest of 32/64/128 at
        the demo width on 2 CPU cores (``benchmarks/bench_extract.py``).
    five_crop : bool, optional
        DeepLoc only: average over the five 60x60 crops (default ``True``) or use the centre
        crop (``False``). ``None`` = the model's test-time protocol.
    progress : bool
        Show a tqdm bar over batches.
    cache_dir : path, optional
        Read / write ``features-<model>-<layer>-<key>/`` entries there (one per layer).
    mask_input : bool
        Set every pixel outside the centre-cell mask to 0 before preprocessing (the features of
        ``crops * masks[:, None]``), as a model trained with ``input="masked"`` saw its inputs.
    masks : array_like of shape (N, 64, 64), bool, optional
        The centre masks for ``mask_input``; default: the CropSet's ``masks``. An error when
        ``mask_input`` is False.
    centre_sigma : float
        ``pooling="centre"`` only: the Gaussian's standard deviation as a fraction of the map's
        side (0.25).
    device : None, str or torch.device
        Where the forward passes run (:func:`bgrobust.devices.resolve_device`: ``None`` = CPU,
        ``"auto"``, ``"cuda"``); not part of the cache key.
    precision : {"float32", "bfloat16", "float16"}
        The forward passes' arithmetic (:func:`bgrobust.devices.autocast`; ``"float16"`` on a
        GPU only). Part of the cache key when not float32; the features are float32 either way.
    n_jobs : int
        ``1``: every batch in this process. Otherwise chunks of consecutive batches run in
        joblib's workers (each computes the same batches it would here), on a dask cluster
        inside :func:`bgrobust.cluster.connect` (``-1``: every worker). CPU only. Not part of
        the cache key.

    Returns
    -------
    dict of str to numpy.ndarray
        ``layer -> (N, D)`` float32, in the order of ``layers``.

    Examples
    --------
    >>> import numpy as np
    >>> from bgrobust import models
    >>> m = models.build("deeploc", width=0.25, n_classes=15, random_state=0)
    >>> x = np.random.default_rng(0).random((3, 3, 64, 64), dtype=np.float32)
    >>> {k: v.shape for k, v in extract_layers(m, x, ["conv5", "fc2"], progress=False).items()}
    {'conv5': (3, 64), 'fc2': (3, 128)}
    """
    name = _check_model(model)
    layers = _check_layers(name, layers)
    pooling = _check_pooling(pooling)
    centre_sigma = _check_sigma(centre_sigma)
    five_crop = _check_five_crop(name, five_crop)
    dev = resolve_device(device)
    precision = check_precision(precision, dev)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer (-1: every worker), got {n_jobs!r}")
    if n_jobs != 1 and dev.type != "cpu":
        raise ValueError(f"n_jobs={n_jobs} splits the crops over CPU worker processes; on {dev} use n_jobs=1")
    if batch_size is None:
        batch_size = EXTRACT_BATCH_SIZES[name]
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    arr = _as_crops(crops)
    channels = _channels_of(crops, channels)
    spec = get_spec(name)
    if tuple(arr.shape[1:]) != (len(channels), spec.crop_size, spec.crop_size):
        raise ValueError(f"crops must have shape (N, {len(channels)}, {spec.crop_size}, {spec.crop_size}) "
                         f"for channels {channels}, got {arr.shape}")
    missing = [c for c in spec.input_channels if c not in channels]
    if missing:
        raise ValueError(f"{spec.title} reads channel(s) {missing}; the crops have {channels}")
    mask_arr = _masks_for(crops, arr, bool(mask_input), masks)

    result: dict[str, np.ndarray] = {}
    paths: dict[str, Path] = {}
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        clean_stale_once(cache_dir)  # temporaries of killed runs
        crops_digest, weights_digest = array_digest(arr), state_digest(model)
        masks_digest = array_digest(mask_arr) if mask_arr is not None else None
        for layer in layers:
            key = feature_key(model, layer, pooling, five_crop, crops_digest, weights_digest,
                              mask_input=mask_arr is not None, masks_digest=masks_digest,
                              centre_sigma=centre_sigma, channels=channels, precision=precision)
            paths[layer] = cache_dir / f"features-{name}-{layer}-{key}"
            cached = read_checked(paths[layer], _load_features, what="feature cache entry")
            if cached is not None:
                result[layer] = cached
    todo = [layer for layer in layers if layer not in result]

    if todo:
        net = _inference_copy(model, todo).to(dev)
        work = (net, name, todo, pooling, five_crop, centre_sigma, dev, channels, precision, batch_size)
        jobs = 1 if n_jobs == 1 else effective_n_jobs(n_jobs)
        if jobs == 1 or len(arr) <= batch_size:
            parts = [_extract_batches(arr, mask_arr, *work, progress=progress, desc=f"{spec.title} features")]
        else:
            # chunks of whole batches in joblib's workers (local processes, or a dask cluster
            # under bgrobust.cluster.connect): the same batches as in one process
            per = batch_size * max(1, math.ceil(len(arr) / (batch_size * 4 * jobs)))
            starts = range(0, len(arr), per)
            outputs = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_extract_batches)(np.asarray(arr[s:s + per]),
                                          None if mask_arr is None else np.asarray(mask_arr[s:s + per]),
                                          *work, progress=False, desc="")
                for s in starts)
            parts = list(tqdm(outputs, total=len(starts), desc=f"{spec.title} features", unit="chunk",
                              disable=not progress))
        chunks = {layer: [p[layer] for p in parts] for layer in todo}
        for layer in todo:
            feats = np.ascontiguousarray(np.concatenate(chunks[layer]), dtype=np.float32)
            result[layer] = feats
            if layer in paths:
                with atomic_dir(paths[layer], seal=True) as tmp:
                    np.save(tmp / _FEATURES_FILE, feats)
    return {layer: result[layer] for layer in layers}


def extract(
    model: nn.Module,
    crops,
    layer: str | None = None,
    pooling: str = "max",
    *,
    batch_size: int | None = None,
    five_crop: bool | None = None,
    progress: bool = True,
    cache_dir=None,
    mask_input: bool = False,
    masks=None,
    centre_sigma: float = CENTRE_SIGMA,
    device=None,
    channels: Sequence[str] | None = None,
    precision: str = "float32",
    n_jobs: int = 1,
) -> np.ndarray:
    """Feature vectors of crops at one layer of a model.

    Parameters
    ----------
    model : torch.nn.Module
        A bgrobust model (``models.build``), evaluated in ``eval()`` mode (on a copy; ``model``
        itself is not changed).
    crops : array_like of shape (N, 3, 64, 64) or CropSet
        Raw crops in :data:`bgrobust.screen.CHANNELS` order, any real dtype.
    layer : str, optional
        Default: the paper's layer (PIFiA ``conv8``, PCI ``conv4_1``, DeepLoc ``conv5``).
    pooling : {"max", "mean", "none", "centre"}
        Global spatial max / mean / centre-weighted mean (:func:`centre_weights`) of
        ``(B, C, H, W)`` maps, or ``"none"`` to flatten them.
    batch_size : int, optional
        Crops per forward pass (see :func:`extract_layers`; ``None`` = per model).
    five_crop : bool, optional
        DeepLoc only: average the pooled features over the five 60x60 crops (default) or use
        the centre crop (``False``).
    progress : bool
        Show a tqdm bar over batches.
    cache_dir : path, optional
        Cache the result there as ``.npy`` (see the module docstring).
    mask_input : bool
        Read the features of ``crops * masks[:, None]`` (see :func:`extract_layers`).
    masks : array_like of shape (N, 64, 64), bool, optional
        Centre masks for ``mask_input`` (default: the CropSet's).
    centre_sigma : float
        ``pooling="centre"`` only: Gaussian standard deviation as a fraction of the map's side.
    device : None, str or torch.device
        Where the forward passes run (see :func:`extract_layers`).
    precision : {"float32", "bfloat16", "float16"}
        The forward passes' arithmetic (see :func:`extract_layers`).
    channels : sequence of str, optional
        Channel names of ``crops`` (default: a CropSet's own, else
        :data:`bgrobust.vocabulary.CHANNELS`); the model takes its input channels by name.
    n_jobs : int
        Worker processes or a dask cluster's workers (see :func:`extract_layers`).

    Returns
    -------
    numpy.ndarray
        ``(N, D)`` float32.

    Examples
    --------
    >>> import numpy as np
    >>> from bgrobust import models
    >>> m = models.build("pifia", width=0.25, n_classes=10, random_state=0)
    >>> x = np.random.default_rng(0).integers(0, 4000, size=(4, 3, 64, 64))
    >>> extract(m, x, progress=False).shape, extract(m, x, "d2", progress=False).shape
    ((4, 64), (4, 16))
    >>> extract(m, x, pooling="none", progress=False).shape   # 64 x 5 x 5 conv8 map
    (4, 1600)
    """
    name = _check_model(model)
    if layer is None:
        layer = get_spec(name).paper_layer
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a layer name (str), got {type(layer).__name__}; "
                        "use extract_layers for several layers")
    return extract_layers(model, crops, [layer], pooling, batch_size=batch_size, five_crop=five_crop,
                          progress=progress, cache_dir=cache_dir, mask_input=mask_input, masks=masks,
                          centre_sigma=centre_sigma, device=device, channels=channels,
                          precision=precision, n_jobs=n_jobs)[layer]
