"""Image operations shared by the settings generator and the training remedies.

Compositing (:func:`composite`) is the paper notebook's
``impose_foreground_on_background``: a copy of the background crop with the centre
cell's pixels pasted where its segmentation mask is true. Per-protein standardisation
(:func:`protein_stats`, :func:`standardize`) is section 3.2's "we standardize these
pixels using the mean and standard deviation of pixel intensities calculated across all
single-cell images for their respective proteins".

The clean-swap variant (not the paper's) removes the donor crop's own centre cell before
pasting (:func:`remove_centre_cell`, parameters :class:`CentreRemoval`), and
:func:`seam_contrast` / :func:`donor_residue` measure the two compositing artefacts
(a visible seam along the pasted mask, the donor's centre cell showing around the
pasted one) pixel by pixel.

Examples
--------
>>> import numpy as np
>>> fg = np.array([[0, 5], [7, 0]], np.uint16); bg = np.full((2, 2), 1, np.uint16)
>>> composite_example(fg, bg)
array([[1, 5],
       [7, 1]], dtype=uint16)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .constraints import Integer, Real, check_params
from .crops import CropSet
from .vocabulary import CHANNELS


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
# the clean swap: remove the donor's own centre cell before pasting
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CentreRemoval:
    """How :func:`remove_centre_cell` erases a donor crop's centre cell.

    Parameters
    ----------
    dilation : int, default 2
        Pixels by which the donor's centre mask is grown (a square structuring element
        of ``2 * dilation + 1``) before filling, so the cell's blurred rim goes too.
    background_fraction : float in (0, 1], default 0.5
        The donor's *background pixels* are this fraction of its pixels outside the
        grown mask with the lowest intensity (the sum over channels of each channel's
        robust z-score, median and MAD): the crops carry no masks of the neighbouring
        cells, so the dimmest pixels stand for "outside any cell".
    min_background : int, default 16
        Fewer background pixels than this is an error (nothing to fill from).

    Examples
    --------
    >>> CentreRemoval(dilation=3).dilation
    3
    >>> CentreRemoval(background_fraction=0)
    Traceback (most recent call last):
    ...
    bgrobust.constraints.ParameterError: CentreRemoval.background_fraction must be a number in (0, 1], got 0
    """

    dilation: int = 2
    background_fraction: float = 0.5
    min_background: int = 16

    _parameter_constraints = {"dilation": Integer(0, 32), "background_fraction": Real(0, 1, lo_open=True),
                              "min_background": Integer(1)}

    def __post_init__(self):
        check_params(self)

    def to_dict(self) -> dict:
        return asdict(self)


def _grow(mask: np.ndarray, dilation: int) -> np.ndarray:
    if dilation == 0 or not mask.any():
        return mask.copy()
    return ndi.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=dilation)


def remove_centre_cell(image, mask, rng, removal: CentreRemoval | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Erase the centre cell of one crop: fill it from the crop's own background pixels.

    The pixels of ``mask`` grown by ``removal.dilation`` are replaced, each by the
    channel vector of one background pixel of the same crop drawn at random (with
    replacement), so the filled region has the crop's background level, noise and
    channel correlation.  Background pixels are the dimmest
    ``removal.background_fraction`` of the pixels outside the grown mask (see
    :class:`CentreRemoval`).  Every pixel outside the grown mask is unchanged.

    Parameters
    ----------
    image : (C, H, W) array
        A donor crop (float; raw counts are converted to float64 first).
    mask : (H, W) bool array
        Its centre-cell mask.  An empty mask returns the crop unchanged.
    rng : numpy.random.Generator
        The draw of the fill pixels (pass a seeded one for reproducible sets).
    removal : CentreRemoval, optional
        Defaults to ``CentreRemoval()``.

    Returns
    -------
    filled : (C, H, W) array
        A copy of ``image`` (its float dtype) with the centre cell erased.
    removed : (H, W) bool array
        The grown mask: the pixels that were replaced.

    Examples
    --------
    >>> img = np.zeros((1, 8, 8)); img[0, 3:5, 3:5] = 10.0
    >>> m = img[0] > 0
    >>> out, removed = remove_centre_cell(img, m, np.random.default_rng(0), CentreRemoval(dilation=1))
    >>> float(out.max()), int(removed.sum()), bool((out[0][~removed] == img[0][~removed]).all())
    (0.0, 16, True)
    """
    removal = CentreRemoval() if removal is None else removal
    if not isinstance(removal, CentreRemoval):
        raise TypeError(f"remove_centre_cell: removal must be a CentreRemoval, got {type(removal).__name__}")
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3:
        raise ValueError(f"remove_centre_cell: image must be one (C, H, W) crop, got shape {image.shape}")
    if mask.dtype != bool or mask.shape != image.shape[1:]:
        raise ValueError(f"remove_centre_cell: mask must be a boolean (H, W) = {image.shape[1:]} array, "
                         f"got {mask.dtype} {mask.shape}")
    out = image.astype(np.result_type(image, np.float32), copy=True)
    removed = _grow(mask, removal.dilation)
    if not removed.any():
        return out, removed
    outside = out[:, ~removed]  # (C, n)
    if outside.shape[1] < removal.min_background:
        raise ValueError(f"remove_centre_cell: only {outside.shape[1]} pixels lie outside the grown centre "
                         f"mask (dilation={removal.dilation}); need min_background={removal.min_background}")
    centre = np.median(outside, axis=1, keepdims=True)
    spread = np.median(np.abs(outside - centre), axis=1, keepdims=True)
    spread[spread <= 0] = 1.0
    score = ((outside - centre) / spread).sum(axis=0)
    k = max(int(np.ceil(removal.background_fraction * outside.shape[1])), 1)
    if k < removal.min_background:
        raise ValueError(f"remove_centre_cell: {k} background pixels (background_fraction="
                         f"{removal.background_fraction}) are fewer than min_background={removal.min_background}")
    background = outside[:, np.argsort(score, kind="stable")[:k]]
    draw = rng.integers(0, k, size=int(removed.sum()))
    out[:, removed] = background[:, draw]
    return out, removed


def remove_centre_cells(images, masks, rng, removal: CentreRemoval | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`remove_centre_cell` for a batch ``(N, C, H, W)`` with masks ``(N, H, W)``.

    Examples
    --------
    >>> imgs = np.zeros((2, 1, 16, 16)); imgs[:, 0, 6:9, 6:9] = 5.0
    >>> out, removed = remove_centre_cells(imgs, imgs[:, 0] > 0, np.random.default_rng(0))
    >>> float(out.max()), removed.shape
    (0.0, (2, 16, 16))
    """
    images = np.asarray(images)
    masks = np.asarray(masks)
    if images.ndim != 4 or masks.shape != (images.shape[0],) + images.shape[2:]:
        raise ValueError(f"remove_centre_cells: images must be (N, C, H, W) and masks (N, H, W), "
                         f"got {images.shape} and {masks.shape}")
    pairs = [remove_centre_cell(images[i], masks[i], rng, removal) for i in range(len(images))]
    if not pairs:
        return images.astype(np.result_type(images, np.float32)), masks.astype(bool)
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def donor_coverage(pasted_masks, donor_masks) -> np.ndarray:
    """How much of each donor's centre cell each pasted mask would cover.

    Parameters
    ----------
    pasted_masks : (N, H, W) bool array
        Centre-cell masks to paste.
    donor_masks : (M, H, W) bool array
        Centre-cell masks of candidate donor (background) crops.

    Returns
    -------
    (N, M) float64 array
        ``|pasted_i & donor_j| / |donor_j|`` (1 for an empty donor mask: nothing shows).

    Examples
    --------
    >>> a = np.zeros((1, 4, 4), bool); a[0, :2] = True
    >>> d = np.zeros((2, 4, 4), bool); d[0, 0] = True; d[1, 1:3] = True
    >>> donor_coverage(a, d)
    array([[1. , 0.5]])
    """
    pasted = np.asarray(pasted_masks)
    donors = np.asarray(donor_masks)
    if pasted.ndim != 3 or donors.ndim != 3 or pasted.shape[1:] != donors.shape[1:]:
        raise ValueError(f"donor_coverage: masks must be (N, H, W) and (M, H, W) of one crop size, "
                         f"got {pasted.shape} and {donors.shape}")
    a = pasted.reshape(len(pasted), -1).astype(np.float32)
    b = donors.reshape(len(donors), -1).astype(np.float32)
    overlap = (a @ b.T).astype(np.float64)
    area = b.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(area[None] > 0, overlap / np.maximum(area[None], 1), 1.0)


# --------------------------------------------------------------------------------------
# pixel-level artefact diagnostics of a composite
# --------------------------------------------------------------------------------------

def _neighbour_steps(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute differences of 4-neighbour pixel pairs: across the mask boundary, elsewhere.

    ``image`` is (C, H, W); returns two (C, n) arrays.
    """
    across, within = [], []
    for axis in (1, 2):
        a = np.moveaxis(image, axis, -1)
        step = np.abs(np.diff(a, axis=-1))
        m = np.moveaxis(mask, axis - 1, -1)
        crosses = m[..., 1:] != m[..., :-1]
        across.append(step[:, crosses])
        within.append(step[:, ~crosses])
    return np.concatenate(across, axis=1), np.concatenate(within, axis=1)


def seam_contrast(images, masks) -> np.ndarray:
    """How much a pasted mask's outline stands out: the seam of a composite.

    For each crop and channel, the mean absolute difference of 4-neighbour pixel pairs
    that straddle the mask boundary divided by that of all other neighbour pairs of the
    crop.  About 1 for a seamless paste (and for the uncut original, whose cell edge is
    only as sharp as its own gradient); larger when the pasted cell sits on a background
    of another level or texture.  Compare a composite with its source crop (the centre
    cell in its own crop, same mask) to separate the seam from the cell's own edge.

    Parameters
    ----------
    images : (N, C, H, W) array
    masks : (N, H, W) bool array
        The pasted masks.

    Returns
    -------
    (N, C) float64 array
        NaN for a crop whose mask is empty or fills it.

    Examples
    --------
    >>> img = np.ones((1, 1, 6, 6)); m = np.zeros((1, 6, 6), bool); m[0, 2:4, 2:4] = True
    >>> img[0, 0][m[0]] = 5.0; img[0, 0, 0, ::2] = 2.0  # a step at the mask, texture elsewhere
    >>> seam_contrast(img, m).round(2)
    array([[26.]])
    """
    images = np.asarray(images, np.float64)
    masks = np.asarray(masks)
    if images.ndim != 4 or masks.shape != (images.shape[0],) + images.shape[2:] or masks.dtype != bool:
        raise ValueError(f"seam_contrast: images must be (N, C, H, W) and masks boolean (N, H, W), "
                         f"got {images.shape} and {masks.dtype} {masks.shape}")
    out = np.full(images.shape[:2], np.nan)
    for i in range(len(images)):
        across, within = _neighbour_steps(images[i], masks[i])
        if across.shape[1] and within.shape[1]:
            base = within.mean(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[i] = np.where(base > 0, across.mean(axis=1) / base, np.nan)
    return out


def donor_residue(images, masks, donor_masks, backgrounds=None) -> pd.DataFrame:
    """How much of the donor's own centre cell is left around the pasted one.

    Parameters
    ----------
    images : (N, C, H, W) array
        Composites.
    masks : (N, H, W) bool array
        The pasted centre-cell masks.
    donor_masks : (N, H, W) bool array
        The centre-cell masks of the donor (background) crops.
    backgrounds : (N, C, H, W) array, optional
        The donor crops as they went into the paste (e.g. standardised); when given,
        ``level`` is measured against the donor's own median outside its cell.

    Returns
    -------
    DataFrame
        One row per crop: ``visible_fraction`` (share of the donor's centre-cell pixels
        outside the pasted mask), ``visible_pixels`` and, per channel ``k``,
        ``level_<k>``: the mean of the composite over those visible pixels minus the
        median of the composite outside both masks (about 0 once the donor cell is
        erased; the donor cell's contrast when it shows).

    Examples
    --------
    >>> img = np.zeros((1, 1, 6, 6)); donor = np.zeros((1, 6, 6), bool); donor[0, 1:4, 1:4] = True
    >>> img[0, 0][donor[0]] = 3.0; pasted = np.zeros_like(donor); pasted[0, 2:5, 2:5] = True
    >>> donor_residue(img, pasted, donor)[["visible_pixels", "level_c0"]].values.tolist()
    [[5.0, 3.0]]
    """
    images = np.asarray(images, np.float64)
    masks, donor_masks = np.asarray(masks), np.asarray(donor_masks)
    want = (images.shape[0],) + images.shape[2:]
    if images.ndim != 4 or masks.shape != want or donor_masks.shape != want:
        raise ValueError(f"donor_residue: images must be (N, C, H, W) and both masks (N, H, W), got "
                         f"{images.shape}, {masks.shape} and {donor_masks.shape}")
    names = list(CHANNELS) if images.shape[1] == len(CHANNELS) else [f"c{k}" for k in range(images.shape[1])]
    rows = []
    for i in range(len(images)):
        visible = donor_masks[i] & ~masks[i]
        rest = ~donor_masks[i] & ~masks[i]
        ref = images[i] if backgrounds is None else np.asarray(backgrounds[i], np.float64)
        row = {"visible_fraction": float(visible.sum() / donor_masks[i].sum()) if donor_masks[i].any() else np.nan,
               "visible_pixels": float(visible.sum())}
        for k, name in enumerate(names):
            level = np.median(ref[k][rest]) if rest.any() else np.nan
            row[f"level_{name}"] = float(images[i, k][visible].mean() - level) if visible.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


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
