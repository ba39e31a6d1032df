"""Per-crop input transforms of the three models, and DeepLoc's 60x60 crops.

Each model normalises every crop on its own, in its own way, before the network sees it:

============  ==================================================================================
model         transform
============  ==================================================================================
PIFiA         per-crop min-max to [0, 1], then TensorFlow's ``per_image_standardization``:
              ``(x - mean) / max(std, 1 / sqrt(N))`` over all N = C*H*W values of the crop
PCI           per-channel min-max to [0, 1] (``skimage.exposure.rescale_intensity``)
DeepLoc       per-channel percentile stretch: clip above the 99.9th percentile, subtract the
              0.1th percentile, divide by the range only if the range exceeds 1 (values below the
              low percentile are *not* clipped, so they go slightly negative)
============  ==================================================================================

The array functions work on numpy arrays (or anything :func:`numpy.asarray` accepts) of shape
``(..., C, H, W)`` or ``(..., H, W)``: every leading index is one crop (and channel). They compute
in float64 and return float32. The crop functions (:func:`five_crops`, :func:`random_crop`,
:func:`five_crop_mean`) work on ``(B, C, H, W)`` torch tensors.

Constant crops
--------------
A constant channel (max == min) has no defined min-max scaling; the original code divides by
zero and produces NaN (PIFiA; old scikit-image for PCI). Here such a channel becomes all zeros
(``constant=0.0``), and PIFiA's standardisation then maps it to zeros as well, so a blank crop
gives a finite, blank input instead of NaN.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = [
    "minmax_scale",
    "per_image_standardize",
    "percentile_stretch",
    "pifia_preprocess",
    "pci_preprocess",
    "deeploc_preprocess",
    "FIVE_CROP_OFFSETS",
    "five_crop_offsets",
    "five_crops",
    "five_crop_mean",
    "random_crop",
]


def _as_images(x, min_ndim: int, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < min_ndim:
        raise ValueError(f"{what} needs an array with at least {min_ndim} dimensions, got shape {arr.shape}")
    if arr.shape[-1] == 0 or arr.shape[-2] == 0:
        raise ValueError(f"{what} needs non-empty images, got shape {arr.shape}")
    return arr


def minmax_scale(x, constant: float = 0.0) -> np.ndarray:
    """Rescale every image (last two axes) linearly to [0, 1] by its own min and max.

    Parameters
    ----------
    x : array_like, shape (..., H, W)
        Images; every leading index (crop, channel) is scaled on its own.
    constant : float
        Value given to an image whose max equals its min (the original would give NaN).

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape.

    Examples
    --------
    >>> minmax_scale([[[2.0, 4.0], [6.0, 10.0]]]).tolist()
    [[[0.0, 0.25], [0.5, 1.0]]]
    >>> minmax_scale([[3.0, 3.0], [3.0, 3.0]]).tolist()
    [[0.0, 0.0], [0.0, 0.0]]
    """
    arr = _as_images(x, 2, "minmax_scale")
    lo = arr.min(axis=(-2, -1), keepdims=True)
    span = arr.max(axis=(-2, -1), keepdims=True) - lo
    ok = span > 0
    out = np.where(ok, (arr - lo) / np.where(ok, span, 1.0), constant)
    return out.astype(np.float32)


def per_image_standardize(x) -> np.ndarray:
    """TensorFlow's ``tf.image.per_image_standardization`` on channels-first images.

    Each image (the last three axes, ``C, H, W``) becomes ``(x - mean) / max(std, 1/sqrt(N))``
    with N = C*H*W and the population standard deviation.

    Parameters
    ----------
    x : array_like, shape (..., C, H, W)

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape.

    Examples
    --------
    >>> per_image_standardize([[[0.0, 2.0], [0.0, 2.0]]]).tolist()  # mean 1, std 1
    [[[-1.0, 1.0], [-1.0, 1.0]]]
    >>> # std 0.25 is below the floor 1/sqrt(4) = 0.5, so the floor is used
    >>> per_image_standardize([[[0.0, 0.5], [0.0, 0.5]]]).tolist()
    [[[-0.5, 0.5], [-0.5, 0.5]]]
    """
    arr = _as_images(x, 3, "per_image_standardize")
    axes = (-3, -2, -1)
    n = arr.shape[-3] * arr.shape[-2] * arr.shape[-1]
    mean = arr.mean(axis=axes, keepdims=True)
    std = arr.std(axis=axes, keepdims=True)
    return ((arr - mean) / np.maximum(std, 1.0 / np.sqrt(n))).astype(np.float32)


def percentile_stretch(x, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """DeepLoc's ``stretchVector`` applied to every image (last two axes).

    Clip values above the ``high`` percentile, subtract the ``low`` percentile, and divide by
    ``(p_high - p_low)`` only when that range exceeds 1 (raw intensities); values below the
    ``low`` percentile are not clipped. Percentiles use numpy's default linear interpolation.

    Parameters
    ----------
    x : array_like, shape (..., H, W)
    low, high : float
        Percentiles in [0, 100].

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape.

    Examples
    --------
    >>> percentile_stretch([[0.0, 10.0], [20.0, 30.0]], low=0, high=100).tolist()
    [[0.0, 0.3333333432674408], [0.6666666865348816, 1.0]]
    >>> percentile_stretch([[0.1, 0.2], [0.3, 0.5]], low=0, high=100).tolist()  # range <= 1
    [[0.0, 0.10000000149011612], [0.20000000298023224, 0.4000000059604645]]
    """
    if not 0.0 <= low <= high <= 100.0:
        raise ValueError(f"percentile_stretch needs 0 <= low <= high <= 100, got low={low}, high={high}")
    arr = _as_images(x, 2, "percentile_stretch")
    # both percentiles from one partition of each image (the values of two separate calls)
    p_low, p_high = np.percentile(arr, [low, high], axis=(-2, -1), keepdims=True)
    out = np.minimum(arr, p_high) - p_low
    span = p_high - p_low
    out = np.where(span > 1.0, out / np.where(span > 1.0, span, 1.0), out)
    return out.astype(np.float32)


def pifia_preprocess(x) -> np.ndarray:
    """PIFiA's input transform: per-channel min-max, then per-image standardisation.

    Parameters
    ----------
    x : array_like, shape (..., C, H, W)
        Raw crops (C = 1, the GFP channel, for the released model).

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape.

    Examples
    --------
    >>> import numpy as np
    >>> out = pifia_preprocess(np.arange(16.0).reshape(1, 4, 4) * 100)
    >>> round(float(out.mean()), 6), round(float(out.std()), 6)
    (0.0, 1.0)
    """
    return per_image_standardize(minmax_scale(x))


def pci_preprocess(x) -> np.ndarray:
    """PCI's input transform: every channel min-max scaled to [0, 1] on its own.

    Examples
    --------
    >>> pci_preprocess([[[0.0, 5.0]], [[1.0, 3.0]]]).tolist()
    [[[0.0, 1.0]], [[0.0, 1.0]]]
    """
    return minmax_scale(x)


def deeploc_preprocess(x) -> np.ndarray:
    """DeepLoc's input transform: the 0.1 / 99.9 percentile stretch of every channel.

    Apply it to the 64x64 crop, before cutting the 60x60 network inputs, as the original does.

    Examples
    --------
    >>> import numpy as np
    >>> np.round(deeploc_preprocess([[0.0, 100.0], [200.0, 300.0]]).astype(float), 3).tolist()
    [[-0.001, 0.333], [0.667, 1.0]]
    """
    return percentile_stretch(x, 0.1, 99.9)


# ---------------------------------------------------------------------------- DeepLoc crops
def five_crop_offsets(size: int = 60, full: int = 64) -> tuple[tuple[int, int], ...]:
    """(row, column) offsets of DeepLoc's five test crops, in the original order.

    The order is centre, (0, 0), (0, m), (m, 0), (m, m) with m = ``full - size``, as in
    DeepLoc's ``extractCrops``.

    Examples
    --------
    >>> five_crop_offsets()
    ((2, 2), (0, 0), (0, 4), (4, 0), (4, 4))
    """
    if not 0 < size <= full:
        raise ValueError(f"five_crop_offsets needs 0 < size <= full, got size={size}, full={full}")
    m = full - size
    return ((m // 2, m // 2), (0, 0), (0, m), (m, 0), (m, m))


#: DeepLoc's five 60x60 crops of a 64x64 crop: centre, then the four corners.
FIVE_CROP_OFFSETS = five_crop_offsets(60, 64)


def _check_batch(x, what: str) -> None:
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{what} expects a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{what} expects a (B, C, H, W) batch, got shape {tuple(x.shape)}")


def five_crops(x, size: int = 60):
    """Cut DeepLoc's five test crops (centre and four corners) from every image.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray, shape (B, C, H, W)
        Square images (64x64 crops for DeepLoc), already preprocessed.
    size : int
        Side of the crops.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        ``(B, 5, C, size, size)``, same type as ``x``; crop order as :func:`five_crop_offsets`.

    Examples
    --------
    >>> import torch
    >>> five_crops(torch.zeros(3, 2, 64, 64)).shape
    torch.Size([3, 5, 2, 60, 60])
    """
    _check_batch(x, "five_crops")
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"five_crops expects square images, got shape {tuple(x.shape)}")
    offsets = five_crop_offsets(size, x.shape[-1])
    crops = [x[:, :, r:r + size, c:c + size] for r, c in offsets]
    if isinstance(x, torch.Tensor):
        return torch.stack(crops, dim=1)
    return np.stack(crops, axis=1)


def five_crop_mean(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int = 60
) -> torch.Tensor:
    """Apply ``fn`` to the five crops of every image and average the results per image.

    DeepLoc averages the *softmax* over the crops; pass
    ``lambda z: model(z).softmax(-1)`` for that, ``lambda z: model.features(z, "conv5")`` for
    averaged feature maps, or ``model`` for averaged logits.

    Parameters
    ----------
    fn : callable
        Maps a ``(N, C, size, size)`` batch to a tensor with leading dimension N.
    x : torch.Tensor, shape (B, C, H, W)
        Preprocessed full crops (64x64).
    size : int
        Side of the crops.

    Returns
    -------
    torch.Tensor
        ``fn``'s output shape with N replaced by B: the mean over the five crops.

    Examples
    --------
    >>> import torch
    >>> five_crop_mean(lambda z: z.mean(dim=(1, 2, 3)), torch.ones(4, 2, 64, 64)).shape
    torch.Size([4])
    """
    _check_batch(x, "five_crop_mean")
    crops = five_crops(x, size)
    b = crops.shape[0]
    out = fn(crops.reshape(b * 5, *crops.shape[2:]))
    return out.reshape(b, 5, *out.shape[1:]).mean(dim=1)


def random_crop(
    x: torch.Tensor,
    size: int = 60,
    generator: torch.Generator | None = None,
    include_last: bool = False,
) -> torch.Tensor:
    """One random ``size`` x ``size`` crop per image (DeepLoc's training jitter).

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W)
    size : int
        Side of the crops.
    generator : torch.Generator, optional
        Random source for the offsets (default: PyTorch's global generator).
    include_last : bool
        DeepLoc draws each offset with ``np.random.randint(0, H - size)``, so the last offset
        (``H - size``) never occurs; ``False`` (default) reproduces that, ``True`` allows it.

    Returns
    -------
    torch.Tensor
        ``(B, C, size, size)``.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> random_crop(torch.zeros(8, 2, 64, 64), generator=g).shape
    torch.Size([8, 2, 60, 60])
    """
    _check_batch(x, "random_crop")
    if not isinstance(x, torch.Tensor):
        raise TypeError("random_crop expects a torch.Tensor")
    h, w = x.shape[-2:]
    if not (0 < size <= h and size <= w):
        raise ValueError(f"random_crop: size {size} does not fit images of shape {tuple(x.shape)}")
    span_h = (h - size) + (1 if include_last else 0)
    span_w = (w - size) + (1 if include_last else 0)
    b = x.shape[0]
    if b == 0:
        return x[:, :, :size, :size]
    rows = torch.randint(0, max(span_h, 1), (b,), generator=generator)
    cols = torch.randint(0, max(span_w, 1), (b,), generator=generator)
    offsets = zip(rows.tolist(), cols.tolist())
    return torch.stack([x[i, :, r:r + size, c:c + size] for i, (r, c) in enumerate(offsets)])
