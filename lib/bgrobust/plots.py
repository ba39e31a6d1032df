"""Figures of the book: small functions that take arrays or tables and return a Figure.

Every function labels its axes and panels; captions live in the chapters.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from skimage.segmentation import find_boundaries

from .tables import per_class
from .vocabulary import CLASS_COLORS, CLASSES, MODEL_COLORS, MODEL_TITLES


def stretch(img, low: float = 0.5, high: float = 99.8) -> np.ndarray:
    """Rescale an image to [0, 1] between two percentiles (for display only)."""
    img = np.asarray(img, np.float64)
    lo, hi = np.percentile(img, [low, high])
    return np.clip((img - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(img)


def green(img) -> np.ndarray:
    """A GFP image shown in green, as in the paper's figures."""
    g = stretch(img)
    return np.stack([np.zeros_like(g), g, np.zeros_like(g)], axis=-1)


def show_field(image: np.ndarray, *, title: str = "", channels=("GFP", "nuclear marker", "cytoplasm marker")):
    """The three channels of one field of view plus a merge (GFP green, nucleus blue, cytoplasm red)."""
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for ax, img, name in zip(axes, image, channels):
        ax.imshow(stretch(img), cmap="gray")
        ax.set_title(name)
    merge = np.stack([0.6 * stretch(image[2]), stretch(image[0]), stretch(image[1])], axis=-1)
    axes[3].imshow(np.clip(merge, 0, 1))
    axes[3].set_title("merge")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def crop_grid(crops: Mapping[str, np.ndarray], *, n: int = 4, title: str = "", row_label: str = "{}"):
    """One row per key (e.g. class), ``n`` GFP crops each, shown in green."""
    keys = list(crops)
    fig, axes = plt.subplots(len(keys), n, figsize=(1.3 * n + 1.6, 1.3 * len(keys)), squeeze=False)
    for r, key in enumerate(keys):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(crops[key]):
                ax.imshow(green(crops[key][c]))
        axes[r, 0].set_ylabel(row_label.format(key), rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def side_by_side(real: Mapping[str, np.ndarray], synthetic: Mapping[str, np.ndarray], *, n: int = 5):
    """Real crops (left block) beside synthetic crops (right block), GFP and marker rows."""
    rows = list(real)
    fig, axes = plt.subplots(2 * len(rows), 2 * n, figsize=(2 * n * 1.2, 2 * len(rows) * 1.25))
    for r, key in enumerate(rows):
        for block, source in enumerate((real, synthetic)):
            stack = source[key]
            for c in range(n):
                for k, (chan, show) in enumerate(((0, green), (1, lambda x: stretch(x)))):
                    ax = axes[2 * r + k, block * n + c]
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if c < len(stack):
                        img = show(stack[c][chan])
                        ax.imshow(img, cmap=None if img.ndim == 3 else "gray")
        axes[2 * r, 0].set_ylabel(f"{key}\nGFP", rotation=0, ha="right", va="center", fontsize=9)
        axes[2 * r + 1, 0].set_ylabel("marker", rotation=0, ha="right", va="center", fontsize=9)
    axes[0, 0].set_title("real (PCI toy crops)", loc="left", fontsize=10)
    axes[0, n].set_title("synthetic screen", loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def segmentation_overlay(cytoplasm: np.ndarray, truth: np.ndarray, predicted: np.ndarray, *, title: str = ""):
    """Cytoplasm channel with true (cyan) and predicted (magenta) cell outlines."""
    base = stretch(cytoplasm)
    rgb = np.stack([base] * 3, axis=-1) * 0.8
    rgb[find_boundaries(truth, mode="inner")] = (0, 1, 1)
    rgb[find_boundaries(predicted, mode="outer")] = (1, 0, 1)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.imshow(rgb)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "truth (cyan) vs segmentation (magenta)")
    fig.tight_layout()
    return fig


def filter_histograms(table: pd.DataFrame, threshold: float, min_fraction: float, max_fraction: float):
    """Crop mean GFP (log scale) and centre-mask coverage, with the filter thresholds."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    axes[0].hist(np.log10(table["mean_gfp"]), bins=60, color="#2ca02c")
    axes[0].axvline(np.log10(threshold), color="k", ls="--", label=f"5th percentile threshold ({threshold:.0f})")
    axes[0].set(xlabel="log10 mean GFP of the crop (ADU)", ylabel="crops", title="low-signal filter")
    axes[0].legend(fontsize=8)
    axes[1].hist(100 * table["mask_fraction"], bins=60, color="#1f77b4")
    for v in (min_fraction, max_fraction):
        axes[1].axvline(100 * v, color="k", ls="--")
    axes[1].set(xlabel="centre mask coverage (% of the crop)", ylabel="crops", title="segmentation filter")
    fig.tight_layout()
    return fig


def plate_heatmap(distribution: pd.DataFrame, *, title: str = ""):
    """Supp. Fig. 3: share of each class's proteins per plate (rows sum to 1)."""
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * distribution.shape[1], 0.42 * len(distribution) + 1.2))
    im = ax.imshow(distribution.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(distribution.shape[1]), [str(c) for c in distribution.columns])
    ax.set_yticks(range(len(distribution)), distribution.index)
    ax.set(xlabel="plate", ylabel="localization")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, label="share of the class's proteins")
    fig.tight_layout()
    return fig


def class_counts(counts: pd.Series, *, xlabel: str, title: str = ""):
    """A horizontal bar chart of one number per class, in class colours."""
    counts = counts.reindex([c for c in CLASSES if c in counts.index])
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(counts) + 1))
    ax.barh(counts.index[::-1], counts.to_numpy()[::-1], color=[CLASS_COLORS[c] for c in counts.index[::-1]])
    ax.set(xlabel=xlabel, title=title)
    fig.tight_layout()
    return fig


def save(fig, path, dpi: int = 110):
    """Save a figure for the book, creating the folder, and return the path."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def examples_per_class(images: np.ndarray, labels: Sequence[str], n: int, random_state=0) -> dict:
    """Up to ``n`` random examples of every class present in ``labels``, in class order."""
    rng = np.random.default_rng(random_state)
    labels = np.asarray(labels)
    out = {}
    for c in CLASSES:
        idx = np.flatnonzero(labels == c)
        if idx.size:
            out[c] = np.asarray(images[np.sort(rng.choice(idx, min(n, idx.size), replace=False))])
    return out


def figure2(results, *, colors=None, titles=None):
    """Fig. 2 of the paper: per-class accuracy with the original background (x) against a
    modified one (y); (A) same- and different-localization swaps, (B) masked background and
    cell-free swap.

    Parameters
    ----------
    results : mapping
        ``{extractor: {experiment: DataFrame}}`` (:attr:`bgrobust.experiments.ExperimentResults.results`).
    colors, titles : mapping, optional
        Per extractor (default: :data:`~bgrobust.vocabulary.MODEL_COLORS`, ``MODEL_TITLES``).
    """
    colors = {**MODEL_COLORS, **(colors or {})}
    titles = {**MODEL_TITLES, **(titles or {})}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    panels = [(("same", "o", "same-loc swap"), ("diff", "x", "diff-loc swap")),
              (("mask", "s", "masked background"), ("batch", "^", "cell-free diff-loc swap"))]
    lo = 1.0
    for ax, panel in zip(axes, panels):
        for name, res in results.items():
            pc = per_class(res, "all")
            for exp, marker, label in panel:
                if exp not in pc:
                    continue
                ax.scatter(pc["base"], pc[exp], marker=marker, color=colors.get(name), s=22,
                           label=f"{titles.get(name, name)}, {label}")
                lo = min(lo, np.nanmin(pc[["base", exp]].to_numpy()))
    for ax, title in zip(axes, ["A. swapping the background", "B. removing the background cells"]):
        ax.plot([0, 1], [0, 1], "k-", lw=0.8)
        ax.set_xlim(max(0.0, lo - 0.03), 1.0)
        ax.set_ylim(max(0.0, lo - 0.03), 1.0)
        ax.set_xlabel("accuracy, original background (baseline)")
        ax.set_ylabel("accuracy, modified background")
        ax.set_title(title)
        ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    return fig
