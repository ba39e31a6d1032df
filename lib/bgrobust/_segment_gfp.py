"""GFP-only cell segmentation (no marker channels): the private implementation of
:func:`bgrobust.segment.segment_gfp`.

Steps, for one field:

1. background and noise: the median and the MAD of the field (most pixels are medium);
2. foreground: a log transform of the smoothed, background-subtracted GFP
   (``log1p(max(g - bg, 0) / noise)``), which brings dim diffuse cells and bright
   organelles to one scale, thresholded on the log image (Li's minimum cross-entropy
   by default; Otsu, triangle, or a percentile as options);
   then a closing (joins the puncta and tubules of one cell into its body), hole filling
   and removal of objects below the minimum cell area;
3. seeds: local maxima of a smoothed distance map of the foreground, at least the
   minimum cell radius apart (one per cell; a bud on its mother has a shallower one);
4. watershed of the inverted smoothed distance from the seeds, inside the foreground;
5. size limits: objects outside the area range (from diameters in micrometres with a
   pixel size, or in pixels) are dropped.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, measure, morphology, segmentation
from skimage.feature import peak_local_max


def _mad(values: np.ndarray) -> float:
    med = np.median(values)
    return float(1.4826 * np.median(np.abs(values - med)))


def gfp_foreground(gfp: np.ndarray, *, smooth: float, method: str, percentile: float,
                   closing_radius: int, min_area: int) -> np.ndarray:
    """The cell foreground of a GFP field (bool), steps 1-2 of the module docstring."""
    g = filters.gaussian(gfp.astype(np.float32), smooth, preserve_range=True)
    step = max(1, int(np.sqrt(g.size / 65536)))
    sample = g[::step, ::step].ravel()
    bg = float(np.median(sample))
    noise = _mad(sample) or float(np.std(sample)) or 1.0
    logged = np.log1p(np.maximum(g - bg, 0.0) / noise)
    if logged.max() <= logged.min():
        return np.zeros(g.shape, bool)
    if method == "li":
        level = filters.threshold_li(logged)
    elif method == "otsu":
        level = filters.threshold_otsu(logged)
    elif method == "triangle":
        level = filters.threshold_triangle(logged)
    elif method == "percentile":
        level = np.percentile(logged, percentile)
    else:
        raise ValueError(f"gfp_foreground: unknown method {method!r}")
    fg = logged > level
    if closing_radius > 0:
        fg = ndi.binary_closing(np.pad(fg, closing_radius), morphology.disk(closing_radius))[
            closing_radius:-closing_radius, closing_radius:-closing_radius]
    fg = ndi.binary_fill_holes(fg)
    return morphology.remove_small_objects(fg, max_size=max(min_area - 1, 0))


def split_cells(fg: np.ndarray, *, min_distance: int, distance_smooth: float) -> np.ndarray:
    """Instance labels of a foreground (seeded watershed on a smoothed distance map)."""
    if not fg.any():
        return np.zeros(fg.shape, np.int32)
    distance = ndi.distance_transform_edt(fg)
    if distance_smooth > 0:
        distance = filters.gaussian(distance, distance_smooth, preserve_range=True)
    components = measure.label(fg)
    peaks = peak_local_max(distance, min_distance=max(1, min_distance), labels=components,
                           exclude_border=False)
    seeds = np.zeros(fg.shape, np.int32)
    seeds[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    orphan = np.setdiff1d(np.arange(1, components.max() + 1), np.unique(components[seeds > 0]))
    if orphan.size:
        extra = np.isin(components, orphan)
        seeds = np.where(extra, components + seeds.max(), seeds)
    return segmentation.watershed(-distance, seeds, mask=fg).astype(np.int32)


def size_filter(labels: np.ndarray, min_area: float, max_area: float) -> np.ndarray:
    """Drop objects with an area outside ``[min_area, max_area]`` px and relabel 1..n."""
    areas = np.bincount(labels.ravel())
    bad = (areas < min_area) | (areas > max_area)
    bad[0] = False
    out = np.where(bad[labels], 0, labels)
    out, _, _ = segmentation.relabel_sequential(out)
    return out.astype(np.int32)
