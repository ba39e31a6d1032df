"""Hand-crafted baselines: what a few interpretable numbers per cell can do.

"Deep Learning for BioImaging: What Are We Learning?" (Svatko et al., 2026) finds that learned
representations of microscopy images often do no better than untrained networks and simple
structural descriptors. This module supplies such a descriptor for the centre cell of a 64x64
crop, computed from the crop's pixels only (so it works unchanged on swapped and composited
crops), with the parts that can see the background kept apart and named, so that a
background-blind variant is one switch away.

:func:`structural_features` returns one named column per feature, in groups:

==============  ==================================================================================
group           features (GFP unless stated; "cell" = the centre-cell mask)
==============  ==================================================================================
``intensity``   ``gfp_mean``, ``gfp_std``, ``gfp_cv``, ``gfp_q10`` .. ``gfp_q90``, ``gfp_max``,
                ``gfp_skew``, ``gfp_kurtosis``, ``gfp_total``, ``gfp_max_over_median``
``radial``      ``gfp_ring_1`` .. ``gfp_ring_<n_rings>`` (mean in rings of equal width from the
                mask centroid out to its farthest pixel, divided by the cell mean),
                ``gfp_edge_ratio`` (mean on the mask's boundary pixels / cell mean),
                ``gfp_radial_mean`` (intensity-weighted mean normalised radius)
``texture``     grey-level co-occurrence statistics of the cell's GFP, quantised to
                ``glcm_levels`` levels between the cell's own min and max, symmetric, pairs with
                both pixels in the cell, averaged over the four directions, per distance ``d``:
                ``glcm_<prop>_d<d>`` for contrast, dissimilarity, homogeneity, energy,
                correlation, entropy
``shape``       ``area``, ``major_axis_length``, ``minor_axis_length``, ``eccentricity``,
                ``boundary_fraction`` (boundary pixels / area), ``centroid_offset`` (px from the
                crop centre)
``coloc``       ``coloc_nucleus``, ``coloc_cytoplasm``: Pearson correlation of GFP with the
                nuclear / cytoplasm marker inside the cell
``context``     ``n_other_cells`` (connected components of the thresholded cytoplasm marker
                outside the cell, at least ``min_other_area`` px), ``n_other_nuclei`` (the same
                for the nuclear marker), ``other_cell_fraction`` (fraction of the pixels outside
                the cell covered by other cells)
``background``  ``bg_mean``, ``bg_std``, ``bg_q50``, ``bg_q90``, ``bg_max`` (GFP outside the cell,
                ``background_margin`` px away from it), ``cell_bg_contrast`` (Michelson contrast
                ``(cell mean - bg median) / (cell mean + bg median)``)
==============  ==================================================================================

Only ``context`` and ``background`` read pixels outside the centre mask; with
``include_background=False, include_context=False`` the features depend on the cell's pixels
alone and do not change when its surroundings are swapped.

Conventions
-----------
* Intensities are raw (the crop's own units); scale-free versions (``gfp_cv``, the ring ratios,
  texture on per-cell quantised levels) sit beside them. Standardise the columns before a linear
  model.
* Degenerate cells: a constant cell has ``gfp_std = gfp_skew = gfp_kurtosis = 0``, GLCM contrast
  0, homogeneity, energy and correlation 1 (scikit-image's convention), coloc 0. A ring without
  pixels gets 1 (the cell mean). Crops with an empty mask (cell-free crops) get NaN for every
  cell feature and for the context (which is measured against the cell's marker level).
* The other-cell threshold on a (Gaussian-smoothed) marker channel lies half way between the
  crop's background level (its 5th percentile) and the centre cell's level (the median inside
  the mask), so it adapts to every crop, including composites with a cell-free background.
  Touching neighbours merge into one component; ``n_other_nuclei`` splits them but misses cells
  whose nucleus lies outside the crop.

Typical use::

    from bgrobust.baselines import StructuralExtractor, structural_features
    table = structural_features(crops.images, crops.masks)          # DataFrame, named columns
    extract = StructuralExtractor(include_background=False)
    X = extract(swapped_images, masks=pasted_masks)                  # (N, D) float32
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from tqdm.auto import tqdm

from .vocabulary import CHANNELS

__all__ = [
    "FEATURE_GROUPS",
    "GLCM_PROPS",
    "structural_feature_names",
    "structural_features",
    "glcm_features",
    "centre_masks",
    "neighbour_count_check",
    "StructuralExtractor",
]

#: Feature groups of :func:`structural_features`, in column order.
FEATURE_GROUPS: tuple[str, ...] = ("intensity", "radial", "texture", "shape", "coloc", "context", "background")
#: Co-occurrence statistics computed per distance.
GLCM_PROPS: tuple[str, ...] = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "entropy")
_QUANTILES = (0.10, 0.25, 0.50, 0.75, 0.90)
# (dy, dx) per unit distance for the directions 0, 45, 90 and 135 degrees (scikit-image's convention)
_DIRECTIONS = ((0, 1), (-1, 1), (-1, 0), (-1, -1))
# connect pixels within a crop, never across crops of a stack
_STACK_8 = np.zeros((3, 3, 3), bool)
_STACK_8[1] = True
_STACK_4 = np.zeros((3, 3, 3), bool)
_STACK_4[1] = ndi.generate_binary_structure(2, 1)


def _group_names(group: str, n_rings: int, glcm_distances: Sequence[int]) -> list[str]:
    if group == "intensity":
        return (["gfp_mean", "gfp_std", "gfp_cv"] + [f"gfp_q{int(round(q * 100)):02d}" for q in _QUANTILES]
                + ["gfp_max", "gfp_skew", "gfp_kurtosis", "gfp_total", "gfp_max_over_median"])
    if group == "radial":
        return [f"gfp_ring_{k}" for k in range(1, n_rings + 1)] + ["gfp_edge_ratio", "gfp_radial_mean"]
    if group == "texture":
        return [f"glcm_{p}_d{d}" for d in glcm_distances for p in GLCM_PROPS]
    if group == "shape":
        return ["area", "major_axis_length", "minor_axis_length", "eccentricity", "boundary_fraction",
                "centroid_offset"]
    if group == "coloc":
        return ["coloc_nucleus", "coloc_cytoplasm"]
    if group == "context":
        return ["n_other_cells", "n_other_nuclei", "other_cell_fraction"]
    if group == "background":
        return ["bg_mean", "bg_std", "bg_q50", "bg_q90", "bg_max", "cell_bg_contrast"]
    raise ValueError(f"unknown feature group {group!r}; known groups: {', '.join(FEATURE_GROUPS)}")


def _resolve_groups(groups, include_background: bool, include_context: bool) -> tuple[str, ...]:
    if groups is None:
        chosen = list(FEATURE_GROUPS)
    else:
        if isinstance(groups, str):
            groups = (groups,)
        unknown = [g for g in groups if g not in FEATURE_GROUPS]
        if unknown:
            raise ValueError(f"unknown feature group(s) {unknown}; known groups: {', '.join(FEATURE_GROUPS)}")
        chosen = [g for g in FEATURE_GROUPS if g in groups]
    if not include_background:
        chosen = [g for g in chosen if g != "background"]
    if not include_context:
        chosen = [g for g in chosen if g != "context"]
    if not chosen:
        raise ValueError("structural features: no feature group left to compute")
    return tuple(chosen)


def _check_options(n_rings: int, glcm_levels: int, glcm_distances: Sequence[int]) -> tuple[int, ...]:
    if int(n_rings) < 1:
        raise ValueError(f"n_rings must be >= 1, got {n_rings}")
    if not 2 <= int(glcm_levels) <= 256:
        raise ValueError(f"glcm_levels must be in [2, 256], got {glcm_levels}")
    distances = tuple(int(d) for d in glcm_distances)
    if not distances or min(distances) < 1:
        raise ValueError(f"glcm_distances must be positive integers, got {glcm_distances}")
    return distances


def structural_feature_names(
    include_background: bool = True,
    include_context: bool = True,
    groups: Sequence[str] | None = None,
    n_rings: int = 5,
    glcm_distances: Sequence[int] = (1, 2),
) -> list[str]:
    """Column names of :func:`structural_features` for the given options, in order.

    Examples
    --------
    >>> structural_feature_names(groups=["shape"])
    ['area', 'major_axis_length', 'minor_axis_length', 'eccentricity', 'boundary_fraction', 'centroid_offset']
    >>> len(structural_feature_names()), len(structural_feature_names(include_background=False))
    (49, 43)
    """
    chosen = _resolve_groups(groups, include_background, include_context)
    distances = _check_options(n_rings, 2, glcm_distances)
    return [name for g in chosen for name in _group_names(g, int(n_rings), distances)]


# ---------------------------------------------------------------------------------- helpers
# Cell statistics work on "pixel lists": the masked pixels of a batch of crops, concatenated in
# crop order (``np.nonzero``), with per-crop sums by ``np.bincount``. The cells cover a fraction
# of each crop, so this touches far less memory than full-size masked arrays.
def _segment_sums(seg: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    return np.bincount(seg, weights=values, minlength=n)


def _sorted_by_segment(seg: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` sorted within each run of equal ``seg`` (``seg`` ascending)."""
    if values.size == 0:
        return values
    lo = values.min()
    span = 2.0 * (values.max() - lo) + 1.0
    order = np.argsort(seg * span + (values - lo))
    return values[order]


def _segment_quantiles(sorted_vals: np.ndarray, starts: np.ndarray, counts: np.ndarray,
                       qs: Sequence[float]) -> np.ndarray:
    """numpy's default (linear) quantiles of every segment of a segment-sorted array; NaN if empty."""
    out = np.full((len(counts), len(qs)), np.nan)
    ok = counts > 0
    if not ok.any():
        return out
    st = starts[ok]
    last = (counts[ok] - 1).astype(np.float64)
    for j, q in enumerate(qs):
        pos = q * last
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, last.astype(np.int64))
        lo_v, hi_v = sorted_vals[st + lo], sorted_vals[st + hi]
        out[ok, j] = lo_v + (hi_v - lo_v) * (pos - lo)
    return out


def _row_quantiles(values: np.ndarray, mask: np.ndarray, qs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles and max of the masked entries of every row (rows sorted with +inf padding)."""
    rows = np.sort(np.where(mask, values, np.inf), axis=1)
    counts = mask.sum(axis=1)
    starts = np.arange(len(rows)) * rows.shape[1]
    flat = rows.ravel()
    qv = _segment_quantiles(flat, starts, counts, qs)
    vmax = np.where(counts > 0, flat[starts + np.maximum(counts - 1, 0)], np.nan)
    return qv, vmax


def _safe_div(num, den, fill: float) -> np.ndarray:
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    ok = den != 0
    return np.where(ok, num / np.where(ok, den, 1.0), fill)


def _shift_or(mask: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """OR of ``mask`` shifted by -radius..radius along one image axis (a 1-D dilation)."""
    out = mask.copy()
    size = mask.shape[axis]
    for k in range(1, radius + 1):
        if k >= size:
            break
        lead = [slice(None)] * mask.ndim
        trail = [slice(None)] * mask.ndim
        lead[axis], trail[axis] = slice(k, None), slice(None, -k)
        out[tuple(lead)] |= mask[tuple(trail)]
        out[tuple(trail)] |= mask[tuple(lead)]
    return out


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilation of every (N, H, W) mask by a (2 radius + 1)^2 square (8-connected, ``radius`` steps)."""
    if radius <= 0:
        return mask.copy()
    return _shift_or(_shift_or(mask, radius, 1), radius, 2)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (the crop border counts as outside)."""
    inner = mask.copy()
    inner[:, 0, :] = False
    inner[:, -1, :] = False
    inner[:, :, 0] = False
    inner[:, :, -1] = False
    inner[:, 1:, :] &= mask[:, :-1, :]
    inner[:, :-1, :] &= mask[:, 1:, :]
    inner[:, :, 1:] &= mask[:, :, :-1]
    inner[:, :, :-1] &= mask[:, :, 1:]
    return mask & ~inner


def glcm_features(
    levels_img: np.ndarray,
    mask: np.ndarray,
    n_levels: int,
    distances: Sequence[int] = (1, 2),
) -> dict[str, np.ndarray]:
    """Masked grey-level co-occurrence statistics of a stack of quantised images.

    For every distance ``d`` and the four directions 0, 45, 90 and 135 degrees (pixel offsets
    ``d * (0, 1)``, ``d * (-1, 1)``, ``d * (-1, 0)``, ``d * (-1, -1)``: Haralick's chessboard
    distance), count the pixel pairs with *both* pixels inside the mask into a symmetric,
    normalised ``n_levels x n_levels`` matrix (scikit-image's
    ``graycomatrix(..., symmetric=True, normed=True)`` restricted to the mask; for ``d > 1`` its
    diagonal offsets differ, as it rounds ``d * (sin, cos)``), compute :data:`GLCM_PROPS` as ``skimage.feature.graycoprops`` does (entropy with the
    natural log... base 2 as in scikit-image), and average over the directions.

    Parameters
    ----------
    levels_img : (N, H, W) integer array
        Grey levels in ``[0, n_levels)``.
    mask : (N, H, W) bool
    n_levels : int
    distances : sequence of int

    Returns
    -------
    dict
        ``"glcm_<prop>_d<d>" -> (N,)`` float64; NaN where a crop has no pair at that distance.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((1, 4, 4), int); mask = np.ones((1, 4, 4), bool)
    >>> glcm_features(img, mask, 2, distances=(1,))["glcm_homogeneity_d1"].tolist()
    [1.0]
    """
    levels_img = np.asarray(levels_img)
    mask = np.asarray(mask, bool)
    n, h, w = levels_img.shape
    L = int(n_levels)
    i_idx, j_idx = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
    diff = (i_idx - j_idx).astype(np.float64)
    flat_base = (np.arange(n) * L * L)[:, None, None]
    out: dict[str, np.ndarray] = {}
    for d in distances:
        acc = {p: np.zeros(n) for p in GLCM_PROPS}
        n_dirs = np.zeros(n)
        for dy, dx in _DIRECTIONS:
            oy, ox = dy * d, dx * d
            # pairs (r, c) -> (r + oy, c + ox)
            r0, r1 = max(0, -oy), min(h, h - oy)
            c0, c1 = max(0, -ox), min(w, w - ox)
            if r0 >= r1 or c0 >= c1:
                continue
            a = levels_img[:, r0:r1, c0:c1]
            b = levels_img[:, r0 + oy:r1 + oy, c0 + ox:c1 + ox]
            valid = mask[:, r0:r1, c0:c1] & mask[:, r0 + oy:r1 + oy, c0 + ox:c1 + ox]
            base = np.broadcast_to(flat_base, a.shape)[valid]
            av, bv = a[valid].astype(np.int64), b[valid].astype(np.int64)
            counts = np.bincount(base + av * L + bv, minlength=n * L * L).reshape(n, L, L).astype(np.float64)
            counts = counts + counts.transpose(0, 2, 1)
            total = counts.sum(axis=(1, 2))
            has = total > 0
            P = counts / np.where(has, total, 1.0)[:, None, None]
            contrast = (P * diff ** 2).sum(axis=(1, 2))
            dissim = (P * np.abs(diff)).sum(axis=(1, 2))
            homog = (P / (1.0 + diff ** 2)).sum(axis=(1, 2))
            asm = (P ** 2).sum(axis=(1, 2))
            mu_i = (P * i_idx).sum(axis=(1, 2))
            mu_j = (P * j_idx).sum(axis=(1, 2))
            var_i = (P * (i_idx - mu_i[:, None, None]) ** 2).sum(axis=(1, 2))
            var_j = (P * (j_idx - mu_j[:, None, None]) ** 2).sum(axis=(1, 2))
            cov = (P * (i_idx - mu_i[:, None, None]) * (j_idx - mu_j[:, None, None])).sum(axis=(1, 2))
            sd = np.sqrt(var_i) * np.sqrt(var_j)
            flat = (np.sqrt(var_i) < 1e-15) | (np.sqrt(var_j) < 1e-15)
            corr = np.where(flat, 1.0, cov / np.where(flat, 1.0, sd))
            with np.errstate(divide="ignore", invalid="ignore"):
                ent = -(np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0)).sum(axis=(1, 2))
            for p, v in zip(GLCM_PROPS, (contrast, dissim, homog, np.sqrt(asm), corr, ent)):
                acc[p] += np.where(has, v, 0.0)
            n_dirs += has
        for p in GLCM_PROPS:
            out[f"glcm_{p}_d{d}"] = np.where(n_dirs > 0, acc[p] / np.maximum(n_dirs, 1), np.nan)
    return out


def _pearson_lists(seg: np.ndarray, n: int, x: np.ndarray, y: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Pearson correlation of two pixel lists per crop (0 where either is constant)."""
    a = np.maximum(area, 1)
    dx = x - (_segment_sums(seg, n, x) / a)[seg]
    dy = y - (_segment_sums(seg, n, y) / a)[seg]
    cov = _segment_sums(seg, n, dx * dy)
    sxx = _segment_sums(seg, n, dx * dx)
    syy = _segment_sums(seg, n, dy * dy)
    # relative floor: rounding in a constant channel must not look like signal
    scale = np.sqrt(_segment_sums(seg, n, x * x) * _segment_sums(seg, n, y * y))
    sxy = np.sqrt(sxx * syy)
    ok = sxy > 1e-12 * np.maximum(scale, 1e-300)
    return np.where(ok, cov / np.where(ok, sxy, 1.0), 0.0)


def _component_counts(fg: np.ndarray, min_area: int) -> np.ndarray:
    """Connected components (8-connectivity, per crop) of at least ``min_area`` px, per crop."""
    labels, n_lab = ndi.label(fg, structure=_STACK_8)
    n = fg.shape[0]
    if n_lab == 0:
        return np.zeros(n, np.int64)
    per_crop = labels.reshape(n, -1)
    sizes = np.bincount(per_crop.ravel(), minlength=n_lab + 1)
    crop_of = np.zeros(n_lab + 1, np.int64)
    rows, cols = np.nonzero(per_crop)
    crop_of[per_crop[rows, cols]] = rows
    big = np.flatnonzero(sizes >= min_area)
    big = big[big > 0]
    return np.bincount(crop_of[big], minlength=n)


def _batch_features(
    imgs: np.ndarray,
    masks: np.ndarray,
    ch: dict[str, int],
    groups: tuple[str, ...],
    n_rings: int,
    glcm_levels: int,
    glcm_distances: tuple[int, ...],
    min_other_area: int,
    background_margin: int,
    smooth: float,
) -> dict[str, np.ndarray]:
    n, _, h, w = imgs.shape
    m = masks
    bi, yi, xi = np.nonzero(m)                 # the cell pixels, crop by crop
    gc = ch["gfp"]
    g = imgs[bi, gc, yi, xi].astype(np.float64)
    area = np.bincount(bi, minlength=n).astype(np.float64)
    has = area > 0
    a = np.maximum(area, 1.0)
    counts = area.astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    cy = _segment_sums(bi, n, yi.astype(np.float64)) / a
    cx = _segment_sums(bi, n, xi.astype(np.float64)) / a
    total = _segment_sums(bi, n, g)
    mean = total / a
    dev = g - mean[bi]
    var = _segment_sums(bi, n, dev * dev) / a
    std = np.sqrt(var)
    gs = _sorted_by_segment(bi, g)              # cell GFP sorted within each crop
    last = starts + np.maximum(counts - 1, 0)
    vmin = np.where(has, gs[np.minimum(starts, max(len(gs) - 1, 0))] if len(gs) else 0.0, np.nan)
    vmax = np.where(has, gs[np.minimum(last, max(len(gs) - 1, 0))] if len(gs) else 0.0, np.nan)
    need_boundary = "radial" in groups or "shape" in groups
    bnd = _boundary(m)[bi, yi, xi] if need_boundary else None
    out: dict[str, np.ndarray] = {}
    nan = np.full(n, np.nan)

    def put(name: str, values) -> None:
        out[name] = np.where(has, values, np.nan)

    if "intensity" in groups:
        qv = _segment_quantiles(gs, starts, counts, _QUANTILES)
        const = std <= 1e-12 * np.maximum(np.abs(mean), 1.0)
        sd = np.where(const, 1.0, std)
        dev2 = dev * dev
        skew = np.where(const, 0.0, _segment_sums(bi, n, dev2 * dev) / a / sd ** 3)
        kurt = np.where(const, 0.0, _segment_sums(bi, n, dev2 * dev2) / a / sd ** 4 - 3.0)
        median = qv[:, _QUANTILES.index(0.50)]
        vals = [mean, std, _safe_div(std, mean, 0.0)] + [qv[:, j] for j in range(len(_QUANTILES))] + [
            vmax, skew, kurt, total, _safe_div(vmax, median, 1.0)]
        for name, v in zip(_group_names("intensity", n_rings, glcm_distances), vals):
            put(name, v)

    if "radial" in groups:
        r = np.hypot(yi - cy[bi], xi - cx[bi])
        rmax = np.zeros(n)
        if len(r):
            rmax[has] = np.maximum.reduceat(r, starts[has])
        rn = r / np.where(rmax > 0, rmax, 1.0)[bi]
        ring = np.minimum((rn * n_rings).astype(np.int64), n_rings - 1)
        key = bi * n_rings + ring
        ring_sum = np.bincount(key, weights=g, minlength=n * n_rings).reshape(n, n_rings)
        ring_cnt = np.bincount(key, minlength=n * n_rings).reshape(n, n_rings)
        ratio = _safe_div(_safe_div(ring_sum, ring_cnt, np.nan), mean[:, None], 1.0)
        ratio = np.where(ring_cnt > 0, ratio, 1.0)
        edge_mean = _safe_div(_segment_sums(bi, n, g * bnd), _segment_sums(bi, n, bnd.astype(np.float64)), np.nan)
        for k in range(n_rings):
            put(f"gfp_ring_{k + 1}", ratio[:, k])
        put("gfp_edge_ratio", _safe_div(edge_mean, mean, 1.0))
        put("gfp_radial_mean", _safe_div(_segment_sums(bi, n, g * rn), total, np.nan))

    if "texture" in groups:
        span = np.where(has & (vmax > vmin), vmax - vmin, 1.0)
        base = np.where(has, vmin, 0.0)
        q = np.floor((g - base[bi]) / span[bi] * glcm_levels)
        q = np.clip(q, 0, glcm_levels - 1).astype(np.uint8 if glcm_levels <= 256 else np.int64)
        q_img = np.zeros((n, h, w), q.dtype)
        q_img[bi, yi, xi] = q
        for name, v in glcm_features(q_img, m, glcm_levels, glcm_distances).items():
            put(name, v)

    if "shape" in groups:
        dy = yi - cy[bi]
        dx = xi - cx[bi]
        # central second moments, as scikit-image's inertia tensor (divided by the area)
        myy = _segment_sums(bi, n, dy * dy) / a
        mxx = _segment_sums(bi, n, dx * dx) / a
        mxy = _segment_sums(bi, n, dx * dy) / a
        half_tr = (myy + mxx) / 2
        root = np.sqrt(np.maximum(((myy - mxx) / 2) ** 2 + mxy ** 2, 0.0))
        l1, l2 = half_tr + root, np.maximum(half_tr - root, 0.0)
        ecc = np.where(l1 > 0, np.sqrt(np.maximum(1 - _safe_div(l2, l1, 1.0), 0.0)), 0.0)
        boundary_n = _segment_sums(bi, n, bnd.astype(np.float64))
        offset = np.hypot(cy - (h - 1) / 2, cx - (w - 1) / 2)
        vals = [area, 4 * np.sqrt(l1), 4 * np.sqrt(l2), ecc, boundary_n / a, offset]
        for name, v in zip(_group_names("shape", n_rings, glcm_distances), vals):
            put(name, v)

    if "coloc" in groups:
        for marker in ("nucleus", "cytoplasm"):
            if marker in ch:
                v = imgs[bi, ch[marker], yi, xi].astype(np.float64)
                put(f"coloc_{marker}", _pearson_lists(bi, n, g, v, area))
            else:
                out[f"coloc_{marker}"] = nan.copy()

    if "context" in groups or "background" in groups:
        near = _dilate(m, background_margin)
        outside = ~near

    if "context" in groups:
        n_outside = np.maximum(outside.sum(axis=(1, 2)), 1)
        for marker, col in (("cytoplasm", "n_other_cells"), ("nucleus", "n_other_nuclei")):
            if marker not in ch:
                out[col] = nan.copy()
                if marker == "cytoplasm":
                    out["other_cell_fraction"] = nan.copy()
                continue
            chan = imgs[:, ch[marker]].astype(np.float32)
            if smooth > 0:
                chan = ndi.gaussian_filter(chan, sigma=(0, smooth, smooth), mode="nearest", truncate=3.0)
            # background level: 5th percentile of the crop (every other pixel: plenty, 4x faster)
            bg_level = np.percentile(chan[:, ::2, ::2].reshape(n, -1), 5, axis=1)
            inside = chan[bi, yi, xi].astype(np.float64)
            if marker == "cytoplasm":
                cell_level = _segment_sums(bi, n, inside) / a
            else:
                # the nucleus is a small part of the cell: take the cell's brightest (smoothed) pixel
                cell_level = np.full(n, -np.inf)
                if len(inside):
                    cell_level[has] = np.maximum.reduceat(inside, starts[has])
            ok = has & (cell_level > bg_level)
            thr = np.where(ok, bg_level + 0.5 * (cell_level - bg_level), np.inf)
            fg = (chan > thr[:, None, None].astype(np.float32)) & outside
            min_area = min_other_area if marker == "cytoplasm" else max(1, min_other_area // 4)
            put(col, _component_counts(fg, min_area).astype(np.float64))
            if marker == "cytoplasm":
                put("other_cell_fraction", fg.sum(axis=(1, 2)) / n_outside)

    if "background" in groups:
        gfp = imgs[:, gc].reshape(n, -1)
        flat_out = outside.reshape(n, -1)
        n_out = flat_out.sum(axis=1)
        some = n_out > 0
        b = np.maximum(n_out, 1).astype(np.float64)
        gfp32 = gfp.astype(np.float32)
        bmean = np.where(flat_out, gfp32, 0.0).sum(axis=1, dtype=np.float64) / b
        bdev = np.where(flat_out, gfp32 - bmean[:, None].astype(np.float32), 0.0)
        bstd = np.sqrt((bdev.astype(np.float64) ** 2).sum(axis=1) / b)
        # 16-bit (or smaller) integers are exact in float32, whose row sort is much faster
        exact32 = gfp.dtype.kind in "ub" or (gfp.dtype.kind == "i" and gfp.dtype.itemsize <= 2)
        bq, bmax = _row_quantiles(gfp32 if exact32 else gfp.astype(np.float64), flat_out, (0.5, 0.9))
        out["bg_mean"] = np.where(some, bmean, np.nan)
        out["bg_std"] = np.where(some, bstd, np.nan)
        out["bg_q50"] = bq[:, 0]
        out["bg_q90"] = bq[:, 1]
        out["bg_max"] = bmax
        # Michelson contrast of the cell mean against the background median, in [-1, 1]
        out["cell_bg_contrast"] = np.where(has & some, _safe_div(mean - bq[:, 0], mean + bq[:, 0], 0.0), np.nan)
    return out


def _check_stack(images, masks, channels: Sequence[str], who: str) -> tuple[np.ndarray, np.ndarray | None]:
    if not hasattr(images, "shape") or not hasattr(images, "ndim"):
        images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != len(channels):
        raise ValueError(f"{who}: images must have shape (N, {len(channels)}, H, W) for channels "
                         f"{tuple(channels)}; got {tuple(images.shape)}")
    if "gfp" not in channels:
        raise ValueError(f"{who}: the channels {tuple(channels)} have no 'gfp'")
    if masks is None:
        return images, None
    if not hasattr(masks, "shape") or not hasattr(masks, "ndim"):
        masks = np.asarray(masks)
    expected = (images.shape[0],) + tuple(images.shape[2:])
    if tuple(masks.shape) != expected:
        raise ValueError(f"{who}: masks must have shape {expected} (one centre-cell mask per crop); "
                         f"got {tuple(masks.shape)}")
    return images, masks


def structural_features(
    images,
    masks,
    table: pd.DataFrame | None = None,
    *,
    include_background: bool = True,
    include_context: bool = True,
    groups: Sequence[str] | None = None,
    n_rings: int = 5,
    glcm_levels: int = 8,
    glcm_distances: Sequence[int] = (1, 2),
    min_other_area: int = 20,
    background_margin: int = 2,
    smooth: float = 1.0,
    channels: Sequence[str] = CHANNELS,
    batch_size: int = 1024,
    progress: bool = False,
) -> pd.DataFrame:
    """Hand-crafted features of the centre cell of every crop (see the module table).

    Parameters
    ----------
    images : array_like, shape (N, len(channels), H, W)
        Raw crops (uint16 or float; a numpy memmap is read batch by batch).
    masks : array_like of bool, shape (N, H, W)
        The centre cell of every crop (for a composite: the pasted cell's mask).
    table : pandas.DataFrame, optional
        The crops' table (one row per crop). Used only for the output's index and, when it has
        ``n_neighbours``, to cross-check the pixel-based neighbour count: the result's
        ``attrs["n_neighbours_check"]`` (see :func:`neighbour_count_check`). It never supplies
        a feature, so the features work on swapped crops whose table describes another crop.
    include_background : bool
        Include the ``background`` group (GFP statistics outside the cell), the features that
        make a descriptor background-sensitive.
    include_context : bool
        Include the ``context`` group (other cells in the crop).
    groups : sequence of str, optional
        Subset of :data:`FEATURE_GROUPS` (default: all); ``include_background`` and
        ``include_context`` then remove theirs.
    n_rings : int
        Rings of the radial profile.
    glcm_levels : int
        Grey levels of the co-occurrence matrices.
    glcm_distances : sequence of int
        Pixel distances of the co-occurrence matrices.
    min_other_area : int
        Smallest other-cell component counted, px (nuclei: a quarter of it).
    background_margin : int
        The background starts this many px away from the mask (blur of the cell's own GFP).
    smooth : float
        Gaussian sigma (px) applied to the marker channels before thresholding other cells.
    channels : sequence of str
        Channel names of ``images``; ``"gfp"`` is required, the markers are optional (their
        features become NaN without them).
    batch_size : int
        Crops per vectorised batch (memory ~ 200 kB per crop).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    pandas.DataFrame
        ``(N, D)`` float64, columns named as in :func:`structural_feature_names`; index from
        ``table`` when given, else ``0..N-1``; ``attrs["groups"]`` maps each group to its columns.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:64, :64]
    >>> disc = (yy - 32) ** 2 + (xx - 32) ** 2 <= 10 ** 2
    >>> images = np.zeros((1, 3, 64, 64)); images[0, 0][disc] = 500.0; images[0, 2][disc] = 300.0
    >>> f = structural_features(images, disc[None])
    >>> [float(f.loc[0, c]) for c in ("area", "gfp_std", "gfp_ring_1", "n_other_cells")]
    [317.0, 0.0, 1.0, 0.0]
    """
    images, masks = _check_stack(images, masks, channels, "structural_features")
    if masks is None:
        raise ValueError("structural_features: masks are required (see centre_masks to compute them)")
    distances = _check_options(n_rings, glcm_levels, glcm_distances)
    chosen = _resolve_groups(groups, include_background, include_context)
    if batch_size < 1:
        raise ValueError(f"structural_features: batch_size must be >= 1, got {batch_size}")
    n = int(images.shape[0])
    if table is not None and len(table) != n:
        raise ValueError(f"structural_features: table has {len(table)} rows for {n} crops")
    ch = {name: i for i, name in enumerate(channels)}
    names = [name for g in chosen for name in _group_names(g, int(n_rings), distances)]
    result = np.empty((n, len(names)), np.float64)
    starts = range(0, n, batch_size)
    for s in tqdm(starts, desc="structural features", unit="batch", disable=not progress):
        imgs = np.asarray(images[s:s + batch_size])
        m = np.asarray(masks[s:s + batch_size]).astype(bool, copy=False)
        feats = _batch_features(imgs, m, ch, chosen, int(n_rings), int(glcm_levels), distances,
                                int(min_other_area), int(background_margin), float(smooth))
        result[s:s + len(imgs)] = np.column_stack([feats[name] for name in names]) if names else 0
    index = table.index if table is not None else pd.RangeIndex(n)
    frame = pd.DataFrame(result, columns=names, index=index)
    frame.attrs["groups"] = {g: _group_names(g, int(n_rings), distances) for g in chosen}
    if table is not None and "n_neighbours" in table.columns and "n_other_cells" in frame.columns:
        frame.attrs["n_neighbours_check"] = neighbour_count_check(frame, table)
    return frame


def neighbour_count_check(features: pd.DataFrame, table: pd.DataFrame) -> dict[str, float]:
    """How the pixel-based neighbour counts agree with the segmentation's ``n_neighbours``.

    Parameters
    ----------
    features : pandas.DataFrame
        Output of :func:`structural_features` with the ``context`` group.
    table : pandas.DataFrame
        The crops' table with ``n_neighbours`` (other segmented cells in the crop).

    Returns
    -------
    dict
        For ``n_other_cells`` and ``n_other_nuclei``: Pearson ``r_*``, mean difference
        ``bias_*`` (pixels minus table) and fraction of exact agreement ``exact_*``; ``n``.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"n_other_cells": [0.0, 2.0, 3.0], "n_other_nuclei": [0.0, 2.0, 4.0]})
    >>> neighbour_count_check(f, pd.DataFrame({"n_neighbours": [0, 2, 4]}))["exact_n_other_cells"]
    0.6666666666666666
    """
    if len(features) != len(table):
        raise ValueError(f"neighbour_count_check: {len(features)} feature rows for {len(table)} table rows")
    ref = np.asarray(table["n_neighbours"], np.float64)
    out: dict[str, float] = {}
    for col in ("n_other_cells", "n_other_nuclei"):
        if col not in features.columns:
            continue
        v = np.asarray(features[col], np.float64)
        ok = np.isfinite(v) & np.isfinite(ref)
        if ok.sum() > 1 and v[ok].std() > 0 and ref[ok].std() > 0:
            out[f"r_{col}"] = float(np.corrcoef(v[ok], ref[ok])[0, 1])
        else:
            out[f"r_{col}"] = float("nan")
        out[f"bias_{col}"] = float((v[ok] - ref[ok]).mean()) if ok.any() else float("nan")
        out[f"exact_{col}"] = float((v[ok] == ref[ok]).mean()) if ok.any() else float("nan")
    out["n"] = float(len(ref))
    return out


def centre_masks(
    images,
    channels: Sequence[str] = CHANNELS,
    *,
    max_distance: float = 8.0,
    params=None,
    progress: bool = False,
) -> np.ndarray:
    """The centre cell of every crop, segmented from its own marker channels.

    Runs the project's segmentation (:func:`bgrobust.segment.segment_cells` on the cytoplasm
    marker, seeded by the nuclear marker when present) on each crop and keeps the cell under
    the crop centre, or failing that the cell with a pixel nearest to it within
    ``max_distance`` px; crops with none get an empty mask. Slower than the features themselves
    (a few ms per crop) and less exact than the full-field segmentation, because cells cut by
    the crop border are segmented without their missing part: pass the masks you have.

    Parameters
    ----------
    images : array_like, shape (N, len(channels), H, W)
    channels : sequence of str
        Channel names; needs ``"cytoplasm"``.
    max_distance : float
        How far from the centre the nearest cell may be, px.
    params : bgrobust.segment.SegmentationParams, optional
    progress : bool

    Returns
    -------
    numpy.ndarray
        bool ``(N, H, W)``.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((1, 3, 64, 64)); img[0, 2, 22:42, 22:42] = 300; img[0, 2, 0:12, 0:12] = 300
    >>> mask = centre_masks(img)[0]
    >>> bool(mask[32, 32]), bool(mask[5, 5])
    (True, False)
    """
    from .segment import segment_cells

    images, _ = _check_stack(images, None, channels, "centre_masks") if "gfp" in channels else (np.asarray(images), None)
    if "cytoplasm" not in channels:
        raise ValueError(f"centre_masks: needs a 'cytoplasm' channel, got {tuple(channels)}")
    ci = list(channels).index("cytoplasm")
    ni = list(channels).index("nucleus") if "nucleus" in channels else None
    n, _, h, w = images.shape
    out = np.zeros((n, h, w), bool)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(yy - cy, xx - cx)
    for i in tqdm(range(n), desc="centre masks", unit="crop", disable=not progress):
        crop = np.asarray(images[i], np.float32)
        labels = segment_cells(crop[ci], crop[ni] if ni is not None else None, params)
        if labels.max() == 0:
            continue
        near = (labels > 0) & (dist <= max_distance)
        if not near.any():
            continue
        ys, xs = np.nonzero(near)
        k = np.argmin(dist[ys, xs])
        out[i] = labels == labels[ys[k], xs[k]]
    return out


class StructuralExtractor:
    """Callable feature extractor: ``extractor(images, masks=None) -> (N, D)`` float32.

    Wraps :func:`structural_features` with fixed options so it can stand beside the neural
    extractors. The centre-cell masks should be passed (for a composite crop: the mask of the
    pasted cell, which the caller has); without them they are segmented from each crop's
    cytoplasm marker with :func:`centre_masks` (slower and less exact, and for a composite it
    finds whatever cell now sits at the centre).

    Parameters
    ----------
    include_background, include_context, groups, n_rings, glcm_levels, glcm_distances,
    min_other_area, background_margin, smooth, channels, batch_size
        As in :func:`structural_features`.

    Attributes
    ----------
    feature_names : list of str
        Column names, known before any call.
    name : str
        ``"structural"``, or ``"structural-cell"`` without background and context.

    Examples
    --------
    >>> import numpy as np
    >>> extract = StructuralExtractor(include_background=False, include_context=False)
    >>> images = np.random.default_rng(0).integers(100, 900, size=(2, 3, 64, 64))
    >>> masks = np.zeros((2, 64, 64), bool); masks[:, 20:44, 20:44] = True
    >>> X = extract(images, masks)
    >>> X.shape == (2, len(extract.feature_names)), X.dtype
    (True, dtype('float32'))
    """

    def __init__(
        self,
        include_background: bool = True,
        include_context: bool = True,
        groups: Sequence[str] | None = None,
        n_rings: int = 5,
        glcm_levels: int = 8,
        glcm_distances: Sequence[int] = (1, 2),
        min_other_area: int = 20,
        background_margin: int = 2,
        smooth: float = 1.0,
        channels: Sequence[str] = CHANNELS,
        batch_size: int = 1024,
    ) -> None:
        self.include_background = bool(include_background)
        self.include_context = bool(include_context)
        self.groups = tuple(groups) if groups is not None else None
        self.n_rings = int(n_rings)
        self.glcm_levels = int(glcm_levels)
        self.glcm_distances = tuple(int(d) for d in glcm_distances)
        self.min_other_area = int(min_other_area)
        self.background_margin = int(background_margin)
        self.smooth = float(smooth)
        self.channels = tuple(channels)
        self.batch_size = int(batch_size)
        _check_options(self.n_rings, self.glcm_levels, self.glcm_distances)
        self.feature_names = structural_feature_names(
            self.include_background, self.include_context, self.groups, self.n_rings, self.glcm_distances)
        cell_only = not any(g in ("background", "context") for g in
                            _resolve_groups(self.groups, self.include_background, self.include_context))
        self.name = "structural-cell" if cell_only else "structural"

    def get_params(self) -> dict:
        """The constructor arguments (for cache keys)."""
        return {"include_background": self.include_background, "include_context": self.include_context,
                "groups": list(self.groups) if self.groups is not None else None, "n_rings": self.n_rings,
                "glcm_levels": self.glcm_levels, "glcm_distances": list(self.glcm_distances),
                "min_other_area": self.min_other_area, "background_margin": self.background_margin,
                "smooth": self.smooth, "channels": list(self.channels)}

    def transform(self, images, masks=None, table: pd.DataFrame | None = None, progress: bool = False) -> pd.DataFrame:
        """The features as a named DataFrame (see :func:`structural_features`)."""
        images, masks = _check_stack(images, masks, self.channels, "StructuralExtractor")
        if masks is None:
            masks = centre_masks(images, self.channels, progress=progress)
        return structural_features(
            images, masks, table, include_background=self.include_background,
            include_context=self.include_context, groups=self.groups, n_rings=self.n_rings,
            glcm_levels=self.glcm_levels, glcm_distances=self.glcm_distances,
            min_other_area=self.min_other_area, background_margin=self.background_margin,
            smooth=self.smooth, channels=self.channels, batch_size=self.batch_size, progress=progress)

    def __call__(self, images, masks=None) -> np.ndarray:
        return self.transform(images, masks).to_numpy(np.float32)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"StructuralExtractor({args})"
