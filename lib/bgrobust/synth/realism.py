"""How far is a set of crops from another? Per-crop statistics and two-sample classifiers.

The synthetic screen is only useful if its crops are hard to tell from real ones.
This module measures that for any two sets of crops (typically real crops read with
:mod:`bgrobust.io` and synthetic crops of the same classes):

* :func:`crop_statistics`: one row per crop of interpretable statistics (centre-cell
  area, equivalent diameter, mask fraction, other cells in the crop, and per channel
  the skew and kurtosis of the intensities inside the cell and in the background, the
  background/cell ratio, the signal-to-noise ratio, a texture and an edge statistic);
* :func:`two_sample_accuracy`: the cross-validated accuracy of a logistic regression
  that tells the two sets apart (0.5: indistinguishable, 1: trivially different), with
  its standard error;
* :func:`compare_crops`: both, on statistics and on downsampled raw pixels, as a
  :class:`RealismReport`.

Both sets are treated alike: every crop and channel is min-max scaled on its own
(real crops come scaled per image, synthetic ones in camera units), and the centre
cell's mask is estimated from the marker channel of both sets with
:func:`bgrobust.segment.centre_cell_mask` (never the synthetic truth), so that the
mask estimator's bias is the same on both sides.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a = rng.normal(size=(60, 2, 32, 32)); b = rng.normal(size=(60, 2, 32, 32))
>>> acc, se = two_sample_accuracy(pixel_features(a), pixel_features(b), random_state=0)
>>> acc < 0.75
True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy import stats

#: The per-crop statistics that do not depend on a channel.
SHAPE_STATISTICS = ("area", "eq_diameter", "mask_fraction", "other_cells")
#: The statistics computed for every channel (prefixed by the channel's name).
CHANNEL_STATISTICS = ("skew_in", "kurt_in", "skew_bg", "kurt_bg", "bg_cell_ratio", "snr",
                      "texture", "edge", "top10_share")


def scale_crops(images) -> np.ndarray:
    """Min-max scale every crop and channel to [0, 1] (float32, ``(N, C, H, W)``).

    A constant plane becomes 0.
    """
    x = np.asarray(images, np.float32)
    if x.ndim != 4:
        raise ValueError(f"scale_crops: crops must be (N, C, H, W), got shape {x.shape}")
    lo = x.min(axis=(2, 3), keepdims=True)
    span = x.max(axis=(2, 3), keepdims=True) - lo
    return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1), 0).astype(np.float32)


def _moments(values: np.ndarray) -> tuple[float, float]:
    if values.size < 8 or np.ptp(values) == 0:
        return float("nan"), float("nan")
    return float(stats.skew(values)), float(stats.kurtosis(values))


def _channel_stats(img: np.ndarray, mask: np.ndarray, cells: np.ndarray) -> dict:
    inside = img[mask]
    bg = img[~cells] if (~cells).sum() >= 8 else img[~mask]
    skew_in, kurt_in = _moments(inside)
    skew_bg, kurt_bg = _moments(bg)
    med_in = float(np.median(inside)) if inside.size else float("nan")
    med_bg = float(np.median(bg)) if bg.size else float("nan")
    sd_bg = float(1.4826 * np.median(np.abs(bg - med_bg))) if bg.size else float("nan")
    highpass = img - ndi.gaussian_filter(img, 2.0)
    mean_in = float(inside.mean()) if inside.size else float("nan")
    texture = float(highpass[mask].std() / mean_in) if inside.size and mean_in > 0 else float("nan")
    # edge: mean gradient on the cell's rim relative to the cell/background contrast
    rim = mask & ~ndi.binary_erosion(mask)
    grad = np.hypot(*np.gradient(ndi.gaussian_filter(img, 0.7)))
    contrast = med_in - med_bg
    edge = float(grad[rim].mean() / contrast) if rim.any() and contrast > 0 else float("nan")
    top = np.sort(inside)[::-1]
    top10 = float(top[: max(1, top.size // 10)].sum() / top.sum()) if inside.size and top.sum() > 0 else float("nan")
    return {"skew_in": skew_in, "kurt_in": kurt_in, "skew_bg": skew_bg, "kurt_bg": kurt_bg,
            "bg_cell_ratio": med_bg / med_in if med_in > 0 else float("nan"),
            "snr": (mean_in - med_bg) / sd_bg if sd_bg > 0 else float("nan"),
            "texture": texture, "edge": edge, "top10_share": top10}


def crop_statistics(images, masks=None, *, channels=("gfp", "marker"), marker: int = -1,
                    smooth: float = 1.5) -> pd.DataFrame:
    """One row of interpretable statistics per crop.

    Parameters
    ----------
    images : (N, C, H, W) array
        The crops, in any intensity units (each crop and channel is min-max scaled).
    masks : (N, H, W) bool array, optional
        Centre-cell masks; by default estimated from the marker channel with
        :func:`bgrobust.segment.centre_cell_mask`.
    channels : sequence of str
        A name for each channel (the column prefix).
    marker : int
        Index of the whole-cell marker channel (masks and the "all cells" region that
        defines the background come from it).
    smooth : float
        Smoothing of the marker before thresholding (px).

    Returns
    -------
    pandas.DataFrame
        ``area``, ``eq_diameter``, ``mask_fraction``, ``other_cells`` and, for every
        channel ``c``, ``c_skew_in``, ``c_kurt_in`` (Fisher kurtosis), ``c_skew_bg``,
        ``c_kurt_bg``, ``c_bg_cell_ratio`` (median background / median cell),
        ``c_snr`` ((mean cell - median background) / robust background sd),
        ``c_texture`` (sd of the high-pass image inside the cell / its mean),
        ``c_edge`` (gradient on the cell rim / contrast; high = sharp edge) and
        ``c_top10_share`` (share of the cell's intensity in its brightest 10 % pixels).
    """
    from skimage import filters, measure

    from ..segment import centre_cell_mask

    x = scale_crops(images)
    if len(channels) != x.shape[1]:
        raise ValueError(f"crop_statistics: {len(channels)} channel names for {x.shape[1]} channels")
    if masks is not None:
        masks = np.asarray(masks, bool)
        if masks.shape != (x.shape[0],) + x.shape[2:]:
            raise ValueError(f"crop_statistics: masks {masks.shape} do not match crops {x.shape}")
    rows = []
    for i in range(len(x)):
        mk = x[i, marker]
        mask = centre_cell_mask(mk, smooth=smooth) if masks is None else masks[i]
        sm = filters.gaussian(mk, smooth, preserve_range=True)
        cells = ndi.binary_fill_holes(sm > filters.threshold_otsu(sm)) if np.ptp(sm) > 0 else mask.copy()
        cells |= mask
        others = measure.label(cells & ~ndi.binary_dilation(mask, iterations=2))
        n_other = int(sum(r.area >= 0.1 * max(mask.sum(), 1) for r in measure.regionprops(others)))
        area = int(mask.sum())
        row = {"area": area, "eq_diameter": float(np.sqrt(4 * area / np.pi)),
               "mask_fraction": area / mask.size, "other_cells": n_other}
        for c, name in enumerate(channels):
            if area < 8:
                row.update({f"{name}_{k}": float("nan") for k in CHANNEL_STATISTICS})
            else:
                row.update({f"{name}_{k}": v for k, v in _channel_stats(x[i, c], mask, cells).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def pixel_features(images, size: int = 16) -> np.ndarray:
    """Downsampled raw pixels: each min-max scaled crop block-averaged to ``size x size``."""
    x = scale_crops(images)
    n, c, h, w = x.shape
    if h % size or w % size:
        raise ValueError(f"pixel_features: crop side {h}x{w} is not a multiple of size={size}")
    x = x.reshape(n, c, size, h // size, size, w // size).mean(axis=(3, 5))
    return x.reshape(n, -1)


def two_sample_accuracy(A, B, *, n_splits: int = 5, C: float = 1.0,
                        random_state=None) -> tuple[float, float]:
    """Cross-validated accuracy of a logistic regression telling ``A`` from ``B``.

    The larger set is subsampled (at random, ``random_state``) to the size of the
    smaller one, so chance is 0.5.  Features are standardised inside each fold;
    columns with a NaN are imputed by the training fold's median.

    Returns
    -------
    accuracy : float
        Out-of-fold accuracy (0.5 = indistinguishable).
    se : float
        Its binomial standard error, ``sqrt(a (1 - a) / n)`` over the ``n`` crops.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[1]:
        raise ValueError(f"two_sample_accuracy: feature matrices {A.shape} and {B.shape} must be 2-D "
                         "with the same number of columns")
    n = min(len(A), len(B))
    if n < n_splits:
        raise ValueError(f"two_sample_accuracy: need at least n_splits={n_splits} crops per set, got {n}")
    rng = np.random.default_rng(random_state)
    A = A[np.sort(rng.choice(len(A), n, replace=False))]
    B = B[np.sort(rng.choice(len(B), n, replace=False))]
    X = np.concatenate([A, B])
    X[~np.isfinite(X)] = np.nan
    keep = ~np.isnan(X).all(axis=0)
    X = X[:, keep]
    y = np.repeat([0, 1], n)
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                          LogisticRegression(C=C, max_iter=2000))
    folds = StratifiedKFold(n_splits, shuffle=True, random_state=int(rng.integers(2**31)))
    pred = cross_val_predict(model, X, y, cv=folds)
    acc = float((pred == y).mean())
    return acc, float(np.sqrt(acc * (1 - acc) / len(y)))


@dataclass
class RealismReport:
    """What :func:`compare_crops` measured.

    ``statistics``: one row per statistic with the median and the 10th-90th
    percentiles of each set; ``accuracy``: the two-sample classifier accuracy (and SE)
    on the statistics and on the raw pixels; ``per_crop``: the statistics of every crop
    with a ``set`` column.
    """

    statistics: pd.DataFrame
    accuracy: pd.DataFrame
    per_crop: pd.DataFrame
    names: tuple[str, str]

    def table(self, statistics=None) -> pd.DataFrame:
        """``median [p10, p90]`` of each statistic for the two sets, as text, side by side."""
        st = self.statistics if statistics is None else self.statistics.loc[list(statistics)]
        out = {}
        for name in self.names:
            out[name] = [f"{m:.3g} [{lo:.3g}, {hi:.3g}]" for m, lo, hi in
                         zip(st[(name, "median")], st[(name, "p10")], st[(name, "p90")])]
        return pd.DataFrame(out, index=st.index)


def summarise(per_crop: pd.DataFrame, names=("real", "synthetic")) -> pd.DataFrame:
    """Median and 10th-90th percentile of each statistic, the two sets side by side."""
    out = {}
    for name in names:
        part = per_crop[per_crop["set"] == name].drop(columns="set")
        out[(name, "median")] = part.median()
        out[(name, "p10")] = part.quantile(0.1)
        out[(name, "p90")] = part.quantile(0.9)
    table = pd.DataFrame(out)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.index.name = "statistic"
    return table


def compare_crops(a, b, *, masks_a=None, masks_b=None, channels=("gfp", "marker"), marker: int = -1,
                  names=("real", "synthetic"), pixel_size: int = 16, random_state=0) -> RealismReport:
    """Statistics side by side and two-sample accuracies of two sets of crops.

    Parameters
    ----------
    a, b : (N, C, H, W) arrays
        The two sets (same channels, same order; e.g. real and synthetic crops of one
        class).
    masks_a, masks_b : (N, H, W) bool arrays, optional
        Centre-cell masks; by default both are estimated from the marker channel.
    channels, marker : see :func:`crop_statistics`.
    names : (str, str)
        Labels of the two sets in the tables.
    pixel_size : int
        Side of the downsampled pixel features (:func:`pixel_features`).
    random_state : int
        Seed of the subsampling and the folds.
    """
    sa = crop_statistics(a, masks_a, channels=channels, marker=marker)
    sb = crop_statistics(b, masks_b, channels=channels, marker=marker)
    per_crop = pd.concat([sa.assign(set=names[0]), sb.assign(set=names[1])], ignore_index=True)
    rows = []
    for kind, fa, fb in (("statistics", sa.to_numpy(), sb.to_numpy()),
                         ("pixels", pixel_features(a, pixel_size), pixel_features(b, pixel_size))):
        acc, se = two_sample_accuracy(fa, fb, random_state=random_state)
        rows.append({"features": kind, "accuracy": acc, "se": se, "n_per_set": min(len(a), len(b))})
    return RealismReport(summarise(per_crop, names), pd.DataFrame(rows), per_crop, tuple(names))


def holdout_split(groups) -> np.ndarray:
    """Which crops form the held-out half: every second crop of each protein, in order.

    The simulator's defaults were calibrated looking only at the other half, so the
    realism numbers of the book are measured on crops the calibration never saw.
    """
    groups = pd.Series(np.asarray(groups))
    return (groups.groupby(groups).cumcount() % 2 == 1).to_numpy()


def crops_like(table: pd.DataFrame, strains: pd.DataFrame, classes) -> np.ndarray:
    """Which synthetic crops correspond to a real protein localized to ``classes``.

    One class: crops of the single-localized proteins of that class.  Several: crops
    of the within-cell mixtures of exactly those classes (a cytoplasm+nucleus protein
    of Huh et al. lights both compartments in every cell).

    Parameters
    ----------
    table : DataFrame
        A crop table with a ``strain`` column (``Dataset.crops.table``).
    strains : DataFrame
        ``Screen.strains`` of the synthetic screen.
    classes : str or sequence of str
    """
    from ..vocabulary import check_classes
    from ..screen import PROPORTION_COLUMNS

    classes = (classes,) if isinstance(classes, str) else tuple(classes)
    check_classes(classes, where="crops_like")
    by_strain = strains.set_index("strain")
    on = by_strain.reindex(columns=list(PROPORTION_COLUMNS), fill_value=0).gt(0)
    wanted = np.isin(PROPORTION_COLUMNS, [f"p:{c}" for c in classes])
    exact = on.loc[:, wanted].all(axis=1) & ~on.loc[:, ~wanted].any(axis=1)
    if len(classes) == 1:
        keep = exact & by_strain["kind"].eq("single")
    else:
        keep = exact & by_strain["mixing"].eq("within_cell")
    return table["strain"].isin(keep.index[keep]).to_numpy()


def example_crops(real_images, real_classes, real_groups, synthetic_images, synthetic_table, strains,
                  classes, *, n: int = 5, held_out: bool = True,
                  random_state=None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random real crops of ``classes`` (held-out half, by protein ``real_groups``) and
    ``n`` synthetic crops like them (:func:`crops_like`)."""
    rng = np.random.default_rng(random_state)
    classes = (classes,) if isinstance(classes, str) else tuple(classes)
    real_classes = [tuple(c) for c in real_classes]
    keep = holdout_split(real_groups) if held_out else np.ones(len(real_classes), bool)
    r_idx = np.flatnonzero(keep & np.array([c == classes for c in real_classes]))
    s_idx = np.flatnonzero(crops_like(synthetic_table, strains, classes))
    pick = lambda idx: np.sort(rng.choice(idx, min(n, len(idx)), replace=False))  # noqa: E731
    return np.asarray(real_images)[pick(r_idx)], np.asarray(synthetic_images)[pick(s_idx)]


def real_vs_synthetic(real_images, real_classes, real_groups, synthetic_images, synthetic_table,
                      strains, *, held_out: bool = True, random_state=0) -> tuple[pd.DataFrame, dict]:
    """Compare real crops with synthetic crops of the same classes, class by class.

    Parameters
    ----------
    real_images : (N, 2, H, W) array
        Real crops, GFP then a whole-cell marker.
    real_classes : sequence of tuple of str
        Each real crop's classes (one class, or several for a multi-localized protein).
    real_groups : sequence
        Each real crop's protein (for :func:`holdout_split`).
    synthetic_images : (M, 2, H, W) array
        Synthetic crops in the same channel order (e.g. GFP and cytoplasm marker).
    synthetic_table, strains : DataFrame
        The synthetic crops' table (with ``strain``) and ``Screen.strains``.
    held_out : bool
        Use only the held-out half of the real crops (:func:`holdout_split`).

    Returns
    -------
    summary : DataFrame
        One row per class and feature kind: accuracy, SE, crops per set.
    reports : dict
        ``{classes: RealismReport}``.
    """
    real_classes = [tuple(c) for c in real_classes]
    keep = holdout_split(real_groups) if held_out else np.ones(len(real_classes), bool)
    rows, reports = [], {}
    for classes in sorted(set(real_classes)):
        rm = keep & np.array([c == classes for c in real_classes])
        sm = crops_like(synthetic_table, strains, classes)
        name = " + ".join(classes)
        if rm.sum() < 5 or sm.sum() < 5:
            rows.append({"classes": name, "features": "-", "accuracy": np.nan, "se": np.nan,
                         "n_real": int(rm.sum()), "n_synthetic": int(sm.sum())})
            continue
        report = compare_crops(np.asarray(real_images)[rm], np.asarray(synthetic_images)[sm],
                               random_state=random_state)
        reports[classes] = report
        for _, r in report.accuracy.iterrows():
            rows.append({"classes": name, "features": r["features"], "accuracy": r["accuracy"],
                         "se": r["se"], "n_real": int(rm.sum()), "n_synthetic": int(sm.sum())})
    return pd.DataFrame(rows), reports
