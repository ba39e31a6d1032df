"""Image operations shared by the settings generator and the training remedies.

Compositing (:func:`composite`) is the paper notebook's
``impose_foreground_on_background``: a copy of the background crop with the centre
cell's pixels pasted where its segmentation mask is true. Per-protein standardisation
(:func:`protein_stats`, :func:`standardize`) is section 3.2's "we standardize these
pixels using the mean and standard deviation of pixel intensities calculated across all
single-cell images for their respective proteins".

Examples
--------
>>> import numpy as np
>>> fg = np.array([[0, 5], [7, 0]], np.uint16); bg = np.full((2, 2), 1, np.uint16)
>>> composite_example(fg, bg)
array([[1, 5],
       [7, 1]], dtype=uint16)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .crops import CropSet


# --------------------------------------------------------------------------------------
# compositing
# --------------------------------------------------------------------------------------

def composite(foreground, mask, background) -> np.ndarray:
    """Paste the masked pixels of ``foreground`` onto a copy of ``background``.

    Parameters
    ----------
    foreground, background : array, (H, W), (C, H, W) or (N, C, H, W)
        Same shape.  The result has their common dtype (``np.result_type``).
    mask : bool array
        ``(H, W)`` for single images (shared by all channels), ``(N, H, W)`` for a
        batch, or the full shape of ``foreground``.

    Returns
    -------
    out : array
        ``background`` where ``mask`` is False, ``foreground`` where it is True.

    Examples
    --------
    >>> fg = np.full((2, 3, 3), 9.0); bg = np.zeros((2, 3, 3)); m = np.eye(3, dtype=bool)
    >>> composite(fg, m, bg)[1]
    array([[9., 0., 0.],
           [0., 9., 0.],
           [0., 0., 9.]])
    """
    foreground = np.asarray(foreground)
    background = np.asarray(background)
    mask = np.asarray(mask)
    if foreground.shape != background.shape:
        raise ValueError(f"composite: foreground {foreground.shape} and background "
                         f"{background.shape} must have the same shape")
    if foreground.ndim not in (2, 3, 4):
        raise ValueError(f"composite: foreground must be (H, W), (C, H, W) or (N, C, H, W), "
                         f"got shape {foreground.shape}")
    if mask.dtype != bool:
        raise ValueError(f"composite: mask must be a boolean array, got dtype {mask.dtype}")
    if mask.shape == foreground.shape:
        full = mask
    elif foreground.ndim == 3 and mask.shape == foreground.shape[1:]:
        full = mask[None]
    elif foreground.ndim == 4 and mask.shape == (foreground.shape[0],) + foreground.shape[2:]:
        full = mask[:, None]
    else:
        raise ValueError(f"composite: mask shape {mask.shape} does not fit foreground "
                         f"{foreground.shape}; expected (H, W), (N, H, W) or the full shape")
    return np.where(full, foreground, background).astype(
        np.result_type(foreground, background), copy=False)


def composite_example(foreground, background) -> np.ndarray:
    """The paper notebook's compositing of a pre-segmented foreground crop.

    Exactly ``impose_foreground_on_background(..., normalize_foreground=False,
    normalize_background=False)`` of ``generate_data_example.ipynb``: the mask is
    ``foreground > 0`` and raw values are pasted (no standardisation).

    Parameters
    ----------
    foreground : (H, W) array
        A crop that is zero outside the segmented cell.
    background : (H, W) array
        The donor crop.

    Examples
    --------
    >>> composite_example(np.array([[0, 3]]), np.array([[1, 1]]))
    array([[1, 3]])
    """
    foreground = np.asarray(foreground)
    if foreground.ndim != 2:
        raise ValueError(f"composite_example: foreground must be one (H, W) channel, "
                         f"got shape {foreground.shape}")
    return composite(foreground, foreground > 0, background)


# --------------------------------------------------------------------------------------
# per-protein standardisation
# --------------------------------------------------------------------------------------

def protein_stats(crops: CropSet, by: str = "strain", *, valid_only: bool = True,
                  chunk: int = 512, proteins=None) -> pd.DataFrame:
    """Per-protein, per-channel mean and standard deviation of all crop pixels.

    Section 3.2: "we standardize these pixels using the mean and standard deviation
    of pixel intensities calculated across all single-cell images for their
    respective proteins".

    Parameters
    ----------
    crops : CropSet
        Cell crops; ``images`` is ``(N, C, S, S)``, its planes named by ``crops.channels``
        (the columns are named after them; unnamed planes give ``c0``, ``c1``, ...).
    by : str
        The table column that names the protein.
    valid_only : bool
        Use only rows with ``table.valid`` True (when the column exists).
    chunk : int
        Crops read at a time (memory bound for memory-mapped crops).
    proteins : iterable, optional
        Only these proteins (values of ``by``); the default is every protein.  A
        protein's statistics do not depend on which others are computed.

    Returns
    -------
    stats : DataFrame
        Indexed by protein, columns ``n_crops``, ``mean_<channel>``, ``std_<channel>``
        (float64, population std over all pixels of all crops).

    Examples
    --------
    >>> import pandas as pd
    >>> imgs = np.stack([np.full((3, 2, 2), v, np.uint16) for v in (1, 3)])
    >>> cs = CropSet(imgs, np.ones((2, 2, 2), bool), pd.DataFrame({"strain": ["A", "A"]}))
    >>> protein_stats(cs).loc["A", ["n_crops", "mean_gfp", "std_gfp"]].tolist()
    [2.0, 2.0, 1.0]
    >>> two = CropSet(imgs[:, :2], cs.masks, cs.table, channels=("gfp", "cytoplasm"))
    >>> list(protein_stats(two).columns)
    ['n_crops', 'mean_gfp', 'mean_cytoplasm', 'std_gfp', 'std_cytoplasm']
    """
    table = crops.table
    if by not in table.columns:
        raise ValueError(f"protein_stats: crops.table has no column {by!r} (by=)")
    images = crops.images
    if np.ndim(images) != 4:
        raise ValueError(f"protein_stats: crops.images must be (N, C, S, S), got {np.shape(images)}")
    n_channels = images.shape[1]
    channels = getattr(crops, "channels", None)
    if channels is not None and len(channels) != n_channels:
        raise ValueError(f"protein_stats: crops.channels names {len(channels)} channel(s) {tuple(channels)} "
                         f"but crops.images has {n_channels}")
    names = list(channels) if channels is not None else [f"c{i}" for i in range(n_channels)]
    keep = np.ones(len(table), bool)
    if valid_only and "valid" in table.columns:
        keep = table["valid"].to_numpy(bool)
    if proteins is not None:
        keep = keep & table[by].isin(list(proteins)).to_numpy(bool)
    rows = {}
    groups = pd.Series(np.arange(len(table)))[keep].groupby(table[by].to_numpy()[keep], sort=True)
    for protein, positions in groups:
        idx = np.sort(positions.to_numpy())
        shift = None
        total = np.zeros(n_channels)
        total_sq = np.zeros(n_channels)
        count = 0
        for start in range(0, len(idx), chunk):
            block = np.asarray(images[idx[start:start + chunk]], np.float64)
            if shift is None:
                shift = block.mean(axis=(0, 2, 3))
            block -= shift[None, :, None, None]
            total += block.sum(axis=(0, 2, 3))
            total_sq += np.square(block).sum(axis=(0, 2, 3))
            count += block.shape[0] * block.shape[2] * block.shape[3]
        mean_shifted = total / count
        var = np.maximum(total_sq / count - mean_shifted ** 2, 0.0)
        row = {"n_crops": len(idx)}
        row.update({f"mean_{c}": m for c, m in zip(names, shift + mean_shifted)})
        row.update({f"std_{c}": s for c, s in zip(names, np.sqrt(var))})
        rows[protein] = row
    columns = ["n_crops"] + [f"mean_{c}" for c in names] + [f"std_{c}" for c in names]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    out.index.name = by
    out["n_crops"] = out["n_crops"].astype(int)
    return out


def stats_for(stats: pd.DataFrame, protein) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` arrays, one value per channel, of one protein of :func:`protein_stats`."""
    if protein not in stats.index:
        raise KeyError(f"stats_for: protein {protein!r} has no statistics (no valid crops?)")
    row = stats.loc[protein]
    means = [c for c in stats.columns if c.startswith("mean_")]
    stds = [c for c in stats.columns if c.startswith("std_")]
    return row[means].to_numpy(np.float64), row[stds].to_numpy(np.float64)


def standardize(images, mean, std, *, dtype=np.float32) -> np.ndarray:
    """Per-channel standardisation ``(images - mean) / std``.

    Parameters
    ----------
    images : array, (C, H, W) or (N, C, H, W)
    mean, std : array
        ``(C,)`` (one value per channel) or, for a batch, ``(N, C)`` (one row per image).
    dtype : dtype
        Output dtype (computed in float64).

    Examples
    --------
    >>> standardize(np.array([[[1.0, 3.0]]]), [2.0], [1.0])
    array([[[-1.,  1.]]], dtype=float32)
    """
    images = np.asarray(images)
    mean = np.asarray(mean, np.float64)
    std = np.asarray(std, np.float64)
    if images.ndim not in (3, 4):
        raise ValueError(f"standardize: images must be (C, H, W) or (N, C, H, W), got {images.shape}")
    if mean.shape != std.shape:
        raise ValueError(f"standardize: mean {mean.shape} and std {std.shape} must have the same shape")
    n_channels = images.shape[-3]
    if mean.ndim == 1 and mean.shape[0] == n_channels:
        shape = (n_channels, 1, 1)
    elif mean.ndim == 2 and images.ndim == 4 and mean.shape == images.shape[:2]:
        shape = mean.shape + (1, 1)
    else:
        raise ValueError(f"standardize: mean/std of shape {mean.shape} do not fit images "
                         f"{images.shape}; expected ({n_channels},) or (N, {n_channels})")
    if not np.all(np.isfinite(std)) or np.any(std <= 0):
        raise ValueError("standardize: std must be finite and > 0 in every channel "
                         "(a constant protein channel cannot be standardised)")
    out = (images.astype(np.float64) - mean.reshape(shape)) / std.reshape(shape)
    return out.astype(dtype, copy=False)
