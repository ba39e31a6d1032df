"""Figures of the book: small functions that take arrays or tables and return a Figure.

Every function labels its axes and panels; captions live in the chapters.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from skimage.segmentation import find_boundaries

from .constraints import Integer, check_value
from .tables import _check_columns, per_class
from .vocabulary import CLASS_COLORS, CLASSES, MODEL_COLORS, MODEL_TITLES, MODELS


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


# --------------------------------------------------------------------------- chapter figures
#
# The figures the chapters glue.  Each returns a closed Figure (so that a notebook shows
# it once, where it is glued or returned, not again at the end of the cell).


def _closed(fig):
    plt.close(fig)
    return fig


def message(text: str, *, figsize=(6, 0.6)):
    """A figure holding one line of text, where a chapter cannot draw what it would (missing data).

    Examples
    --------
    >>> message("real crops not found").axes[0].texts[0].get_text()
    'real crops not found'
    """
    fig, ax = plt.subplots(figsize=figsize)
    ax.axis("off")
    ax.text(0, 0.5, str(text), fontsize=9)
    return _closed(fig)


def training_curves(trained: Mapping):
    """Training loss per optimiser step, one panel per model (chapter 2).

    Parameters
    ----------
    trained : mapping
        ``{model key: TrainResult}`` (:func:`bgrobust.train.train_models`).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> h = pd.DataFrame({"epoch": [1, 1, 2], "step": [1, 2, 3], "loss": [2.0, 1.5, 1.0]})
    >>> [ax.get_title() for ax in training_curves({"pci": NS(history=h)}).axes]
    ['PCI']
    """
    from .train import plot_history

    if not isinstance(trained, Mapping) or not trained:
        raise ValueError("training_curves: trained must be a non-empty mapping {model: TrainResult}")
    fig, axes = plt.subplots(1, len(trained), figsize=(11 * len(trained) / 3, 2.8), squeeze=False)
    for ax, (name, res) in zip(axes[0], trained.items()):
        plot_history(res.history, ax=ax, label=MODEL_TITLES.get(name, name), show_lr=False)
        ax.set_title(MODEL_TITLES.get(name, name))
    fig.tight_layout()
    return _closed(fig)


def layer_curves(layer_acc: pd.DataFrame, published: pd.DataFrame):
    """Mean pairwise SVM accuracy per layer, one panel per model: the paper's against ours (Supp. Table 1).

    Parameters
    ----------
    layer_acc : DataFrame
        Columns ``model, variant, pooling, column, accuracy`` (``column`` a Supp. Table 1
        column, :data:`bgrobust.tables.LAYER_COLUMNS`).
    published : DataFrame
        :func:`bgrobust.published.supp_table1` (``model, layer, accuracy``).

    Examples
    --------
    >>> ours = pd.DataFrame({"model": ["pci"] * 2, "variant": ["trained"] * 2, "pooling": ["mean"] * 2,
    ...                      "column": ["conv3", "conv4"], "accuracy": [0.8, 0.9]})
    >>> pub = pd.DataFrame({"model": ["pci"], "layer": ["conv4"], "accuracy": [0.95]})
    >>> [t.get_text() for t in layer_curves(ours, pub).axes[0].get_legend().get_texts()]
    ['published', 'ours, trained (mean)']
    """
    from .tables import LAYER_COLUMNS

    _check_columns(layer_acc, ["model", "variant", "pooling", "column", "accuracy"], "layer_curves: layer_acc")
    _check_columns(published, ["model", "layer", "accuracy"], "layer_curves: published")
    models = [m for m in MODELS if m in set(layer_acc.model)]
    fig, axes = plt.subplots(1, len(models), figsize=(11 * len(models) / 3, 3), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], models):
        p = published[published.model == name]
        ours = layer_acc[layer_acc.model == name]
        # one x position per layer in network order (the published row may lack early layers)
        order = [c for c in LAYER_COLUMNS if c in set(p.layer) | set(ours.column)]
        x = {c: i for i, c in enumerate(order)}
        ax.plot(p.layer.map(x), p.accuracy, "k--o", ms=3, label="published")
        for (variant, pool), g in ours.groupby(["variant", "pooling"], sort=False):
            g = g.assign(x=g.column.map(x)).sort_values("x")
            ax.plot(g.x, g.accuracy, "-o" if variant == "trained" else ":s", ms=3, label=f"ours, {variant} ({pool})")
        ax.set_xticks(range(len(order)), order, rotation=60)
        ax.set_title(MODEL_TITLES.get(name, name))
        ax.set_xlabel("layer")
    axes[0, 0].set_ylabel("mean pairwise SVM accuracy")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _closed(fig)


def standardisation(hist: pd.DataFrame):
    """GFP of pasted centre cells and of backgrounds, raw and after the per-protein standardisation.

    Parameters
    ----------
    hist : DataFrame
        :func:`bgrobust.settings.standardisation_histograms`: columns ``stage`` (``raw``,
        ``generated``), ``part`` (``centre cell``, ``background``), ``left, right, density``.

    Examples
    --------
    >>> h = pd.DataFrame([(s, p, 0.0, 1.0, 0.5) for s in ("raw", "generated")
    ...                   for p in ("centre cell", "background")],
    ...                  columns=["stage", "part", "left", "right", "density"])
    >>> [ax.get_title() for ax in standardisation(h).axes]
    ['before: the two source proteins', 'after: in the swapped crops']
    """
    _check_columns(hist, ["stage", "part", "left", "right", "density"], "standardisation: hist")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    for ax, stage in zip(axes, ["raw", "generated"]):
        for part, colour in (("centre cell", "#d62728"), ("background", "#1f77b4")):
            h = hist[(hist.stage == stage) & (hist.part == part)]
            if len(h):
                ax.stairs(h.density.to_numpy(), np.r_[h.left.to_numpy(), h.right.iloc[-1]], color=colour,
                          label=part)
        ax.set_xlabel("GFP intensity (camera counts)" if stage == "raw" else "GFP, standardised per protein")
        ax.set_ylabel("density")
        ax.set_title("before: the two source proteins" if stage == "raw" else "after: in the swapped crops")
    axes[0].legend()
    fig.tight_layout()
    return _closed(fig)


def figure1a(examples: Mapping):
    """Fig. 1A: one crop per setting (GFP above, the centre-cell mask below).

    Parameters
    ----------
    examples : mapping
        ``{experiment key: CropSet}`` with at least one crop each
        (:func:`bgrobust.settings.example_per_setting`).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> crop = NS(images=np.random.default_rng(0).random((1, 3, 8, 8)), masks=np.ones((1, 8, 8)))
    >>> [ax.get_title() for ax in figure1a({"base": crop, "mask": crop}).axes[:2]]
    ['Baseline', 'Masked Background']
    """
    from .vocabulary import EXPERIMENT_TITLES

    if not isinstance(examples, Mapping) or not examples:
        raise ValueError("figure1a: examples must be a non-empty mapping {setting: CropSet}")
    fig, axes = plt.subplots(2, len(examples), figsize=(2.1 * len(examples), 4.4), squeeze=False)
    for j, (setting, crop) in enumerate(examples.items()):
        axes[0, j].imshow(green(crop.images[0, 0]))
        axes[0, j].set_title(EXPERIMENT_TITLES.get(setting, setting), fontsize=8)
        axes[1, j].imshow(crop.masks[0], cmap="gray")
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("GFP")
    axes[1, 0].set_ylabel("centre-cell mask")
    fig.tight_layout()
    return _closed(fig)


def supp_figure1(images: np.ndarray, table: pd.DataFrame, *, setting: str = "diff", n: int = 24,
                 columns: int = 8, random_state=0):
    """Supp. Fig. 1: random generated crops of one setting, titled "centre class on background class".

    Parameters
    ----------
    images : (N, C, H, W) array
        ``SettingSets.images`` (GFP first).
    table : DataFrame
        ``SettingSets.table``: one row per crop with ``setting, centre_class, background_class``.
    setting : str
        The setting shown (the paper: different-localization swaps).
    n, columns : int
        Crops shown (fewer if the setting has fewer) and crops per row.
    random_state : int or Generator

    Examples
    --------
    >>> t = pd.DataFrame({"setting": ["diff"] * 3, "centre_class": ["actin"] * 3,
    ...                   "background_class": ["ER"] * 3})
    >>> fig = supp_figure1(np.zeros((3, 1, 8, 8)), t, n=2, columns=2)
    >>> fig.axes[0].get_title()
    'actin\\non ER'
    """
    check_value(n, Integer(1), "supp_figure1: n")
    check_value(columns, Integer(1), "supp_figure1: columns")
    _check_columns(table, ["setting", "centre_class", "background_class"], "supp_figure1: table")
    if len(images) != len(table):
        raise ValueError(f"supp_figure1: {len(images)} images but {len(table)} table rows")
    rng = np.random.default_rng(random_state)
    rows = np.flatnonzero(table.setting.eq(setting).to_numpy())
    pick = rng.choice(rows, size=min(n, len(rows)), replace=False)
    n_rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(n_rows, columns, figsize=(13 * columns / 8, 5.6 * n_rows / 3), squeeze=False)
    for ax, i in zip(axes.ravel(), pick):
        ax.imshow(green(images[i, 0]))
        row = table.iloc[i]
        ax.set_title(f"{row.centre_class}\non {row.background_class}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(pick):]:
        ax.axis("off")
    fig.tight_layout()
    return _closed(fig)


#: Bar colours of :func:`drop_ranking`, per kind of extractor.
KIND_COLORS: dict[str, str] = {"paper's model": MODEL_COLORS["pifia"], "untrained": "#999999",
                               "baseline": MODEL_COLORS["pci"], "remedy": MODEL_COLORS["deeploc"]}


def drop_ranking(drops: pd.DataFrame, *, colors: Mapping[str, str] | None = None):
    """Extractors ranked by the accuracy lost to different-localization backgrounds (same − diff).

    Parameters
    ----------
    drops : DataFrame
        A drop table (``ExperimentResults.drops``) with ``extractor, drop, drop_low,
        drop_high`` and a ``kind`` column that picks the bar colour.
    colors : mapping, optional
        ``{kind: colour}`` (default :data:`KIND_COLORS`); its keys are the legend.

    Examples
    --------
    >>> d = pd.DataFrame({"extractor": ["a", "b"], "kind": ["baseline", "remedy"], "drop": [0.1, -0.02],
    ...                   "drop_low": [0.05, -0.05], "drop_high": [0.15, 0.01]})
    >>> [t.get_text() for t in drop_ranking(d).axes[0].get_yticklabels()]
    ['b', 'a']
    """
    colors = dict(KIND_COLORS if colors is None else colors)
    _check_columns(drops, ["extractor", "kind", "drop", "drop_low", "drop_high"], "drop_ranking: drops")
    unknown = sorted(set(drops.kind) - set(colors))
    if unknown:
        raise ValueError(f"drop_ranking: no colour for kind(s) {unknown}; colours: {sorted(colors)}")
    from matplotlib.patches import Patch

    order = drops.sort_values("drop")
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(order) + 1.2))
    y = np.arange(len(order))
    ax.barh(y, order["drop"], color=[colors[k] for k in order.kind])
    ax.errorbar(order["drop"], y, xerr=[order["drop"] - order.drop_low, order.drop_high - order["drop"]],
                fmt="none", ecolor="k", lw=0.8)
    ax.set_yticks(y, order.extractor, fontsize=7)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("accuracy drop from different-localization backgrounds (same − diff swap)")
    ax.legend(handles=[Patch(color=c, label=kind) for kind, c in colors.items()], fontsize=7, loc="lower right")
    fig.tight_layout()
    return _closed(fig)


def realism_examples(real_images, real_classes, real_groups, synthetic_images, synthetic_table, strains,
                     classes: Sequence, *, n: int = 5, random_state=0):
    """Real crops beside synthetic crops of the same classes, one row pair per class set (chapter 1).

    The crops are drawn with :func:`bgrobust.synth.realism.example_crops` (held-out real
    crops); the arguments are those of :func:`bgrobust.synth.realism.real_vs_synthetic`.

    Parameters
    ----------
    classes : sequence of tuple of str
        The class sets shown (e.g. the keys of ``real_vs_synthetic``'s reports).
    n : int
        Crops per block and row.
    """
    from .synth.realism import example_crops

    check_value(n, Integer(1), "realism_examples: n")
    if not len(classes):
        raise ValueError("realism_examples: classes is empty")
    shown = {" + ".join(c): example_crops(real_images, real_classes, real_groups, synthetic_images,
                                          synthetic_table, strains, c, n=n, random_state=random_state)
             for c in classes}
    fig = side_by_side({k: v[0] for k, v in shown.items()}, {k: v[1] for k, v in shown.items()}, n=n)
    return _closed(fig)


# --------------------------------------------------------------------------- the backgrounds challenge
def class_heatmap(table: pd.DataFrame, value: str, *, label: str, vmin: float = 0.0, vmax: float = 1.0,
                  cmap: str = "viridis"):
    """One row per extractor, one column per class: ``value`` of a per-class table, printed in each cell.

    Parameters
    ----------
    table : DataFrame
        ``extractor, class`` and ``value`` columns (e.g. ``ChallengeResults.background_only()``).
    value : str
        The column to show.
    label : str
        The colour bar's label.

    Examples
    --------
    >>> t = pd.DataFrame({"extractor": ["a", "a", "b", "b"], "class": ["actin", "ER"] * 2,
    ...                   "bg_only": [0.5, 0.6, 0.9, 0.8]})
    >>> [x.get_text() for x in class_heatmap(t, "bg_only", label="accuracy").axes[0].get_yticklabels()]
    ['a', 'b']
    """
    _check_columns(table, ["extractor", "class", value], "class_heatmap: table")
    wide = table.pivot(index="extractor", columns="class", values=value)
    wide = wide.loc[list(dict.fromkeys(table["extractor"])), [c for c in CLASSES if c in wide.columns]]
    fig, ax = plt.subplots(figsize=(0.5 * wide.shape[1] + 3.2, 0.36 * wide.shape[0] + 1.6))
    im = ax.imshow(wide.to_numpy(float), vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    for (r, c), v in np.ndenumerate(wide.to_numpy(float)):
        if np.isfinite(v):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                    color="w" if (v - vmin) / (vmax - vmin) < 0.5 else "k")
    ax.set_xticks(range(wide.shape[1]), wide.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(wide.shape[0]), wide.index, fontsize=7)
    fig.colorbar(im, ax=ax, label=label, fraction=0.03)
    fig.tight_layout()
    return _closed(fig)


def worst_case_points(summary: pd.DataFrame, columns: Mapping[str, str], *, chance: float = 0.5):
    """Per extractor, mean accuracy ± 3 SE under several backgrounds (one marker per column).

    Parameters
    ----------
    summary : DataFrame
        ``extractor`` and, for every key of ``columns``, the column and its ``<column>_3se``
        (e.g. ``ChallengeResults.worst_summary()``).
    columns : mapping
        ``{column: legend label}``, in drawing order.

    Examples
    --------
    >>> s = pd.DataFrame({"extractor": ["a"], "own": [0.9], "own_3se": [0.02], "worst": [0.4], "worst_3se": [0.05]})
    >>> len(worst_case_points(s, {"own": "own background", "worst": "worst donor"}).axes[0].collections)
    2
    """
    _check_columns(summary, ["extractor", *columns, *(f"{c}_3se" for c in columns)], "worst_case_points: summary")
    fig, ax = plt.subplots(figsize=(6.4, 0.34 * len(summary) + 1.4))
    y = np.arange(len(summary))
    for k, (col, label) in enumerate(columns.items()):
        ax.errorbar(summary[col], y + (k - (len(columns) - 1) / 2) * 0.18, xerr=summary[f"{col}_3se"], fmt="o",
                    ms=4, lw=0.8, label=label)
    ax.axvline(chance, color="k", lw=0.8, ls="--")
    ax.set_yticks(y, summary["extractor"], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("pairwise accuracy (mean over class pairs ± 3 SE); dashed: chance")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _closed(fig)


def flip_distribution(per_cell: pd.DataFrame, *, bins: int = 10):
    """Per extractor, the distribution over cells of the share of swapped backgrounds that flip their label.

    Parameters
    ----------
    per_cell : DataFrame
        ``extractor, flip_rate, stable`` (``ChallengeResults.flips_per_cell()``).

    Examples
    --------
    >>> t = pd.DataFrame({"extractor": ["a"] * 3, "flip_rate": [0.0, 0.5, 1.0], "stable": [True, False, False]})
    >>> flip_distribution(t).axes[0].get_title()
    'a: 33% stable'
    """
    _check_columns(per_cell, ["extractor", "flip_rate", "stable"], "flip_distribution: per_cell")
    names = list(dict.fromkeys(per_cell["extractor"]))
    cols = min(4, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols + 0.6, 1.9 * rows + 0.4), squeeze=False, sharex=True)
    edges = np.linspace(0, 1, bins + 1)
    for ax, name in zip(axes.flat, names):
        g = per_cell[per_cell["extractor"].eq(name)]
        ax.hist(g["flip_rate"], bins=edges, color="#555555")
        ax.set_title(f"{name}: {g['stable'].mean():.0%} stable", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("share of swapped backgrounds\nthat flip the cell's label", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("cells", fontsize=7)
    fig.tight_layout()
    return _closed(fig)


def damaging_backgrounds(images, top: pd.DataFrame, *, channel: int = 0):
    """The most damaging donor crops of every class: one row per centre class, its worst donors left to right.

    Parameters
    ----------
    images : (N, C, S, S) array
        The crops ``top.background_index`` points into (``dataset.crops.images``).
    top : DataFrame
        One extractor's rows of ``ChallengeResults.most_damaging()`` (``class, rank,
        donor_class, Accuracy, background_index``).
    channel : int
        The channel shown (GFP, in green).

    Examples
    --------
    >>> top = pd.DataFrame({"class": ["actin", "actin"], "rank": [1, 2], "donor_class": ["ER", "vacuole"],
    ...                     "Accuracy": [0.2, 0.4], "background_index": [0, 1]})
    >>> damaging_backgrounds(np.random.default_rng(0).random((2, 1, 8, 8)), top).axes[1].get_title()
    'vacuole: 0.40'
    """
    _check_columns(top, ["class", "rank", "donor_class", "Accuracy", "background_index"], "damaging_backgrounds: top")
    classes = [c for c in CLASSES if c in set(top["class"])]
    n = int(top["rank"].max())
    fig, axes = plt.subplots(len(classes), n, figsize=(1.25 * n + 1.7, 1.35 * len(classes) + 0.3), squeeze=False)
    for r, c in enumerate(classes):
        g = top[top["class"].eq(c)].sort_values("rank")
        for k in range(n):
            ax = axes[r, k]
            ax.set_xticks([])
            ax.set_yticks([])
            if k < len(g):
                row = g.iloc[k]
                ax.imshow(green(np.asarray(images[int(row.background_index)])[channel]))
                ax.set_title(f"{row.donor_class}: {row.Accuracy:.2f}", fontsize=6, color=CLASS_COLORS.get(row.donor_class, "k"))
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(c, rotation=0, ha="right", va="center", fontsize=7, color=CLASS_COLORS.get(c, "k"))
    fig.tight_layout()
    return _closed(fig)
