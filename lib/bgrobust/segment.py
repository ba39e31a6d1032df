"""Cell segmentation on the cytoplasm channel, and its quality against a known truth.

The paper segmented cells with YeastSpotter (a Mask R-CNN whose weights this project
cannot download).  The substitute here is a classical scikit-image pipeline seeded by
the nuclear marker:

1. smooth the cytoplasm channel, threshold it (Otsu by default), fill holes and drop
   small objects: the foreground;
2. detect nuclei in the nuclear channel inside the foreground: one seed per cell;
   foreground components without a nucleus get a seed of their own;
3. watershed on the inverted distance transform of the foreground from those seeds,
   which splits touching cells along the neck between them and keeps a bud (which has
   no nucleus) with its mother.

Without marker channels, :func:`segment_gfp` segments cells from the GFP channel alone
(log-intensity foreground, seeded watershed on a smoothed distance map, size limits in
micrometres or pixels; :class:`GfpSegmentationParams`).

:func:`match_instances` scores any segmentation against truth labels (object F1 at
IoU 0.5, mean IoU of matched objects, centroid error).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, measure, morphology, segmentation

from .constraints import Choice, Integer, Optional, Real, check_params


@dataclass(frozen=True)
class SegmentationParams:
    """Parameters of :func:`segment_cells` (names match ``params/*.yml``)."""

    smooth: float = 1.0
    threshold: str = "otsu"
    min_area: int = 60
    nucleus_min_area: int = 8

    _parameter_constraints = {"smooth": Real(0), "threshold": Choice(("otsu", "li", "triangle")),
                              "min_area": Integer(1), "nucleus_min_area": Integer(1)}

    def __post_init__(self):
        check_params(self)


_THRESHOLDS = {"otsu": filters.threshold_otsu, "li": filters.threshold_li,
               "triangle": filters.threshold_triangle}


def _check_plane(img, name):
    arr = np.asarray(img)
    if arr.ndim != 2:
        raise ValueError(f"segment_cells: {name} must be a 2-D image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"segment_cells: {name} contains NaN or infinite pixels")
    return arr.astype(np.float32)


def segment_cells(cytoplasm, nucleus=None, params: SegmentationParams | None = None) -> np.ndarray:
    """Instance labels of the cells in one field.

    Parameters
    ----------
    cytoplasm : (H, W) array
        The cytoplasm-marker channel (whole-cell fill).
    nucleus : (H, W) array, optional
        The nuclear-marker channel; without it seeds come from the distance transform.
    params : SegmentationParams, optional

    Returns
    -------
    labels : (H, W) int32 array, 0 = background.

    Examples
    --------
    >>> img = np.zeros((40, 40)); img[5:15, 5:15] = 100; img[22:35, 20:34] = 100
    >>> labels = segment_cells(img)
    >>> int(labels.max())
    2
    """
    params = params or SegmentationParams()
    if params.threshold not in _THRESHOLDS:
        raise ValueError(f"segment_cells: unknown threshold {params.threshold!r}; "
                         f"choose from {sorted(_THRESHOLDS)}")
    cyto = filters.gaussian(_check_plane(cytoplasm, "cytoplasm"), params.smooth, preserve_range=True)
    if cyto.max() == cyto.min():
        return np.zeros(cyto.shape, np.int32)
    fg = cyto > _THRESHOLDS[params.threshold](cyto)
    fg = ndi.binary_fill_holes(fg)
    fg = morphology.remove_small_objects(fg, max_size=params.min_area - 1)
    if not fg.any():
        return np.zeros(cyto.shape, np.int32)

    distance = ndi.distance_transform_edt(fg)
    if nucleus is not None:
        nuc = filters.gaussian(_check_plane(nucleus, "nucleus"), params.smooth, preserve_range=True)
        inside = nuc[fg]
        nuc_fg = (nuc > filters.threshold_otsu(inside)) & fg if inside.max() > inside.min() else np.zeros_like(fg)
        nuc_fg = morphology.remove_small_objects(nuc_fg, max_size=params.nucleus_min_area - 1)
        seeds = measure.label(nuc_fg)
    else:
        seeds = np.zeros(fg.shape, np.int32)
        peaks = _distance_peaks(distance, fg)
        seeds[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)

    # a foreground component with no seed becomes a cell of its own
    components = measure.label(fg)
    seeded = np.unique(components[seeds > 0])
    orphan = np.setdiff1d(np.arange(1, components.max() + 1), seeded)
    if orphan.size:
        extra = np.isin(components, orphan)
        seeds = np.where(extra, components + seeds.max(), seeds)
    labels = segmentation.watershed(-distance, seeds, mask=fg)
    labels = morphology.remove_small_objects(labels, max_size=params.min_area - 1)
    labels, _, _ = segmentation.relabel_sequential(labels)
    return labels.astype(np.int32)


@dataclass(frozen=True)
class GfpSegmentationParams:
    """Parameters of :func:`segment_gfp` (GFP-only segmentation, no marker channels).

    Attributes
    ----------
    smooth : float
        Gaussian smoothing (px) of the GFP before the foreground threshold.
    threshold : {"li", "otsu", "triangle", "percentile"}
        The threshold on the log of the background-subtracted GFP.
    percentile : float
        The percentile for ``threshold="percentile"`` (pixels above it are foreground).
    closing_radius : int
        Radius (px) of a closing that joins the puncta of one cell (0 = none).
    min_diameter, max_diameter : float
        Size limits: objects with an area outside that of discs of these diameters are
        dropped.  In micrometres when ``pixel_size`` is set, else in pixels.
    seed_distance : float
        Smallest distance between two cells' seeds (same unit as the diameters).
    distance_smooth : float
        Gaussian smoothing (px) of the distance map before seeding (fewer split cells).
    pixel_size : float or None
        Micrometres per pixel (default: the synthetic screen's 0.13); ``None`` means the
        sizes above are in pixels.

    Examples
    --------
    >>> p = GfpSegmentationParams(pixel_size=None, min_diameter=10, max_diameter=60)
    >>> round(p.area_limits()[0], 1), GfpSegmentationParams().seed_distance_px()
    (78.5, 12)
    """

    smooth: float = 1.0
    threshold: str = "li"
    percentile: float = 60.0
    closing_radius: int = 0
    min_diameter: float = 1.8
    max_diameter: float = 9.0
    seed_distance: float = 1.5
    distance_smooth: float = 2.0
    pixel_size: float | None = 0.13

    _parameter_constraints = {
        "smooth": Real(0), "threshold": Choice(("li", "otsu", "triangle", "percentile")),
        "percentile": Real(0, 100), "closing_radius": Integer(0), "min_diameter": Real(0),
        "max_diameter": Real(0, lo_open=True), "seed_distance": Real(0), "distance_smooth": Real(0),
        "pixel_size": Optional(Real(0, lo_open=True)),
    }
    _parameter_rules = (
        ("max_diameter", lambda p: p.min_diameter <= p.max_diameter,
         "must be at least min_diameter ({p.min_diameter}), got {p.max_diameter}"),
    )

    def __post_init__(self):
        check_params(self)

    def _px(self, length: float) -> float:
        return length / self.pixel_size if self.pixel_size is not None else length

    def area_limits(self) -> tuple[float, float]:
        """``(min_area, max_area)`` in px, the areas of discs of the two diameters."""
        return (float(np.pi * (self._px(self.min_diameter) / 2) ** 2),
                float(np.pi * (self._px(self.max_diameter) / 2) ** 2))

    def seed_distance_px(self) -> int:
        """:attr:`seed_distance` in whole pixels (at least 1)."""
        return max(1, int(round(self._px(self.seed_distance))))


def segment_gfp(gfp, params: GfpSegmentationParams | None = None) -> np.ndarray:
    """Instance labels of the cells in one field from its GFP channel alone.

    For screens without marker channels.  The steps (implemented in
    :mod:`bgrobust._segment_gfp`): background = the field's median, noise = its MAD; a
    foreground threshold on ``log1p(max(smoothed - background, 0) / noise)`` (dim diffuse
    cells and bright organelles on one scale), optional closing, hole filling; seeds at
    the maxima of a smoothed distance map, ``seed_distance`` apart; a watershed; then
    the size limits.  Without a marker, a punctate protein (spindle pole, bud neck) gives
    little of its cells' outline, so quality depends on the localization: score it with
    :func:`match_instances` where a truth exists (the synthetic screen).

    Parameters
    ----------
    gfp : (H, W) array
        The GFP channel, finite.
    params : GfpSegmentationParams, optional

    Returns
    -------
    labels : (H, W) int32 array, 0 = background.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[:80, :120]
    >>> img = 100 + rng.normal(0, 3, (80, 120))
    >>> for cy, cx in ((40, 30), (40, 85)):
    ...     img += 60 * (((yy - cy) ** 2 + (xx - cx) ** 2) < 15 ** 2)
    >>> labels = segment_gfp(img, GfpSegmentationParams(pixel_size=None, min_diameter=10,
    ...                                                 max_diameter=60, seed_distance=12))
    >>> int(labels.max())
    2
    """
    from ._segment_gfp import gfp_foreground, size_filter, split_cells

    params = params or GfpSegmentationParams()
    if not isinstance(params, GfpSegmentationParams):
        raise ValueError(f"segment_gfp: params must be a GfpSegmentationParams, got {type(params).__name__}")
    g = _check_plane(gfp, "gfp")
    min_area, max_area = params.area_limits()
    fg = gfp_foreground(g, smooth=params.smooth, method=params.threshold, percentile=params.percentile,
                        closing_radius=params.closing_radius, min_area=int(min_area))
    labels = split_cells(fg, min_distance=params.seed_distance_px(), distance_smooth=params.distance_smooth)
    return size_filter(labels, min_area, max_area)


def _distance_peaks(distance, fg):
    from skimage.feature import peak_local_max

    return peak_local_max(distance, min_distance=6, labels=measure.label(fg), exclude_border=False)


@dataclass(frozen=True)
class MatchResult:
    """Quality of one segmentation against the truth."""

    n_true: int
    n_pred: int
    n_matched: int
    mean_iou: float
    centroid_error: float

    @property
    def precision(self) -> float:
        return self.n_matched / self.n_pred if self.n_pred else float("nan")

    @property
    def recall(self) -> float:
        return self.n_matched / self.n_true if self.n_true else float("nan")

    @property
    def f1(self) -> float:
        denom = self.n_true + self.n_pred
        return 2 * self.n_matched / denom if denom else float("nan")


def overlap_table(truth: np.ndarray, pred: np.ndarray):
    """IoU of every overlapping (truth, pred) pair: arrays ``t, p, iou``."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"overlap_table: truth {truth.shape} and prediction {pred.shape} differ in shape")
    both = (truth > 0) & (pred > 0)
    tb, pb = truth[both].astype(np.int64), pred[both].astype(np.int64)
    t_area = np.bincount(truth.ravel())
    p_area = np.bincount(pred.ravel())
    # each (truth, pred) pair as one code, ordered as the pairs are (by truth, then pred):
    # counted with bincount where the code range is small, else with a 1-D unique (np.unique
    # over the stacked pairs with axis=1 sorts them as records, ~20x slower per field)
    n_p = len(p_area)
    codes = tb * n_p + pb
    if len(t_area) * n_p <= 1 << 22:
        counts = np.bincount(codes, minlength=len(t_area) * n_p)
        codes = np.flatnonzero(counts)
        inter = counts[codes]
    else:
        codes, inter = np.unique(codes, return_counts=True)
    t, p = np.divmod(codes, n_p)
    iou = inter / (t_area[t] + p_area[p] - inter)
    return t, p, iou


def match_instances(truth: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5) -> MatchResult:
    """Match predicted to true objects at IoU > ``iou_threshold`` (one-to-one).

    With a threshold of at least 0.5 a match is unique, so no assignment problem
    arises.  ``centroid_error`` is the mean distance (px) between matched centroids.

    Examples
    --------
    >>> t = np.zeros((10, 10), int); t[2:6, 2:6] = 1
    >>> p = np.zeros((10, 10), int); p[2:6, 3:7] = 5
    >>> r = match_instances(t, p)
    >>> r.n_matched, round(r.mean_iou, 2), r.centroid_error
    (1, 0.6, 1.0)
    """
    if iou_threshold < 0.5:
        raise ValueError("match_instances: iou_threshold must be >= 0.5 for unique matches")
    t, p, iou = overlap_table(truth, pred)
    good = iou > iou_threshold
    t, p, iou = t[good], p[good], iou[good]
    n_true = len(np.unique(truth[truth > 0]))
    n_pred = len(np.unique(pred[pred > 0]))
    if len(t) == 0:
        return MatchResult(n_true, n_pred, 0, float("nan"), float("nan"))
    tc = np.array(ndi.center_of_mass(np.ones_like(truth), truth, t))
    pc = np.array(ndi.center_of_mass(np.ones_like(pred), pred, p))
    err = float(np.linalg.norm(tc - pc, axis=1).mean())
    return MatchResult(n_true, n_pred, len(t), float(iou.mean()), err)


def centre_cell_mask(marker, *, smooth: float = 1.5, min_distance: int = 7,
                     threshold: str = "otsu") -> np.ndarray:
    """The mask of the cell at the centre of a crop, from a whole-cell marker channel.

    For crops that come without masks (e.g. the PCI crops, or a screen that was cropped
    elsewhere): smooth the marker, threshold it, fill holes (vacuoles), split touching
    cells by a watershed on the distance map, and keep the segment under the centre
    pixel (or, when the centre is background, the segment nearest to it).

    Parameters
    ----------
    marker : (H, W) array
        A whole-cell marker (cytoplasmic fill) of one crop.
    smooth : float
        Gaussian smoothing (px) before thresholding; it evens out the marker's texture.
    min_distance : int
        Smallest distance (px) between two cells' centres for the watershed seeds.
    threshold : {"otsu", "li", "triangle"}
        Thresholding method.

    Returns
    -------
    mask : (H, W) bool array
        All ``False`` when the crop holds no cell.

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> img = ((yy - 32) ** 2 + (xx - 32) ** 2 < 15 ** 2) * 1.0
    >>> img += ((yy - 32) ** 2 + (xx - 62) ** 2 < 14 ** 2)
    >>> mask = centre_cell_mask(img)
    >>> bool(mask[32, 32]), bool(mask[32, 60]), 600 < int(mask.sum()) < 800
    (True, False, True)
    """
    if threshold not in _THRESHOLDS:
        raise ValueError(f"centre_cell_mask: unknown threshold {threshold!r}; choose from {sorted(_THRESHOLDS)}")
    img = filters.gaussian(_check_plane(marker, "marker"), smooth, preserve_range=True)
    if img.max() <= img.min():
        return np.zeros(img.shape, bool)
    fg = ndi.binary_fill_holes(img > _THRESHOLDS[threshold](img))
    if not fg.any():
        return fg
    distance = ndi.distance_transform_edt(fg)
    from skimage.feature import peak_local_max

    peaks = peak_local_max(distance, min_distance=min_distance, labels=measure.label(fg),
                           exclude_border=False)
    seeds = np.zeros(fg.shape, np.int32)
    seeds[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = segmentation.watershed(-distance, seeds, mask=fg)
    cy, cx = (s // 2 for s in labels.shape)
    lab = labels[cy, cx]
    if lab == 0:
        ys, xs = np.nonzero(labels)
        nearest = np.argmin((ys - cy) ** 2 + (xs - cx) ** 2)
        lab = labels[ys[nearest], xs[nearest]]
    return labels == lab
