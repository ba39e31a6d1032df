"""Numbers published in the paper, typed in as data (they are facts, not results).

Every chapter puts our numbers beside these.  Sources are given per table:
Gupta, Moses & Lu, MLCB 2025 (PMLR 311:162-177), main text, Table 1 and the
supplementary tables.  Nothing here is computed by this project.

Conventions (shared with :mod:`bgrobust.tables`): model keys ``"pifia"``, ``"pci"``,
``"deeploc"``; experiment keys ``base`` (Baseline), ``mask`` (Masked Background),
``batch`` (Cell-Free Diff Loc Swap), ``same`` (Same Loc Swap), ``diff`` (Diff Loc Swap);
class names as in :data:`bgrobust.vocabulary.CLASSES`.  The paper's "±" values are
3 standard errors and are stored as ``three_se``.

Examples
--------
>>> from bgrobust import published
>>> published.TABLE1["pci"]["diff"]
(0.772, 0.026)
>>> t = published.table1()
>>> t.shape, list(t.columns)
((15, 4), ['model', 'experiment', 'mean', 'three_se'])
"""
from __future__ import annotations

import pandas as pd

from .vocabulary import CLASSES

SOURCE = "Gupta, Moses & Lu, MLCB 2025 (PMLR 311:162-177)"

#: Facts about the real screen and protocol (section 3.1, 3.4, 3.6, 4.5, appendix D.1).
DATASET = {
    "strains": 4049,
    "cells_multinomial_training": 2_668_343,
    "fields_per_strain": 4,
    "replicates": 2,
    "crop_size": 64,
    "classes": 15,
    "multi_localized_proteins": 1531,
    "cells_per_class_svm": 1000,
    "gfp_filter_percentile": 5,
    "mask_fraction_range": (0.05, 0.95),
    "cellfree_stride": 32,
    "cellfree_min_distance": 50,
    "segmentation": "YeastSpotter (Mask R-CNN)",
}


def dataset_facts() -> pd.DataFrame:
    """:data:`DATASET` as a two-column table (quantity, published value)."""
    return pd.DataFrame({"quantity": list(DATASET), "published": [str(v) for v in DATASET.values()]})


# --------------------------------------------------------------------------- Table 1

#: Table 1 (main text, section 3/4): mean accuracy over localization classes and its
#: "± 3 standard errors", per model and experiment: ``{model: {experiment: (mean, three_se)}}``.
#: Printed column order: Baseline, Diff Loc Swap, Same Loc Swap, Masked Background,
#: Cell-Free Diff Loc Swap.
TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "pifia": {"base": (0.946, 0.020), "diff": (0.843, 0.022), "same": (0.939, 0.013),
              "mask": (0.883, 0.023), "batch": (0.902, 0.017)},
    "pci": {"base": (0.916, 0.025), "diff": (0.772, 0.026), "same": (0.930, 0.016),
            "mask": (0.869, 0.029), "batch": (0.876, 0.019)},
    "deeploc": {"base": (0.713, 0.029), "diff": (0.612, 0.025), "same": (0.746, 0.030),
                "mask": (0.677, 0.029), "batch": (0.689, 0.023)},
}

#: Numbers stated in the running text (abstract, sections 4.1, 4.2, 4.4).  They are
#: differences of Table 1 means, as printed (the paper's own rounding: the PCI
#: diff-vs-same drop is "0.157" in section 4.2 but 15.8 % in the abstract, and
#: 0.930 - 0.772 = 0.158; the mask drop for PIFiA is 0.939 - 0.883 = 0.056, printed "0.05").
TEXT_DROPS: dict[str, dict[str, float]] = {
    # section 4.2: "accuracy dropped by 0.096 for PIFiA, 0.157 for PCI, and 0.134 for
    # DeepLoc relative to the same localization swap setting"
    "same-diff": {"pifia": 0.096, "pci": 0.157, "deeploc": 0.134},
    # section 4.4: "performance decreased by 0.05 for PIFiA, 0.06 for PCI, and 0.07 for DeepLoc"
    "same-mask": {"pifia": 0.05, "pci": 0.06, "deeploc": 0.07},
}
#: Abstract: "accuracy drops by up to 15.8%" (different vs same localization swap).
ABSTRACT_MAX_DROP = 0.158
#: Section 4.1: baseline vs same-swap differences "minimal (less than 0.02)" for PIFiA and PCI.
SAME_VS_BASE_MAX_DIFF = 0.02


# --------------------------------------------------------------------------- appendix A

#: Supplementary Table 1 (appendix A): mean pairwise linear-SVM accuracy per feature
#: layer (spatially average-pooled; 15 classes x 3 proteins x 1000 cells);
#: ``None`` = "–" (layer not available).  "final" is the second FC layer (PIFiA: the
#: 64-d profile, DeepLoc: 512-d).  PCI's "conv4" is the layer named ``conv4_1`` in the
#: paper's code (the anchors notes, section 1.2).
SUPP_TABLE1: dict[str, dict[str, float | None]] = {
    "pifia": {"conv1": 0.9288, "conv2": 0.9571, "conv3": 0.9823, "conv4": 0.9870, "conv5": 0.9891,
              "conv6": 0.9879, "conv7": 0.9882, "conv8": 0.9896, "final": 0.9880},
    "pci": {"conv1": 0.8227, "conv2": 0.9762, "conv3": 0.9828, "conv4": 0.9847, "conv5": 0.9832,
            "conv6": None, "conv7": None, "conv8": None, "final": None},
    "deeploc": {"conv1": None, "conv2": None, "conv3": 0.8100, "conv4": 0.8130, "conv5": 0.8436,
                "conv6": 0.8356, "conv7": 0.8296, "conv8": 0.8185, "final": 0.7891},
}
#: The layer printed in bold in Supplementary Table 1 (the one used in all experiments).
BEST_LAYERS: dict[str, str] = {"pifia": "conv8", "pci": "conv4", "deeploc": "conv5"}


# --------------------------------------------------------------------------- appendix B

#: Order of the five experiments inside each row of :data:`SUPP_TABLE2` (the paper's row
#: order: Baseline, Same Loc Swap, Diff Loc Swap, Cell-Free Diff Loc Swap, Masked Background).
SUPP_TABLE2_EXPERIMENTS: tuple[str, ...] = ("base", "same", "diff", "batch", "mask")

#: Supplementary Table 2 (appendix B): per-class accuracy "± 3 standard errors", two
#: decimals, ``{model: {class: ((mean, three_se) for each of SUPP_TABLE2_EXPERIMENTS)}}``.
#: Classes in the paper's column order (alphabetical, upper case first).  These are the
#: means over *all* tasks involving the class (14 pairs; 14 x 13 triplets for diff and
#: batch), i.e. ``tables.per_class_table(..., aggregation="all")``, not Table 1's.
SUPP_TABLE2: dict[str, dict[str, tuple[tuple[float, float], ...]]] = {
    "pifia": {
        #                     base          same          diff          batch         mask
        "ER":                 ((0.94, 0.02), (0.94, 0.02), (0.83, 0.01), (0.89, 0.01), (0.86, 0.03)),
        "Golgi":              ((0.95, 0.02), (0.92, 0.03), (0.81, 0.01), (0.89, 0.01), (0.86, 0.05)),
        "actin":              ((0.97, 0.01), (0.96, 0.03), (0.85, 0.01), (0.93, 0.01), (0.91, 0.03)),
        "bud neck":           ((0.94, 0.03), (0.93, 0.03), (0.83, 0.01), (0.88, 0.01), (0.87, 0.04)),
        "cell periphery":     ((0.96, 0.02), (0.96, 0.02), (0.87, 0.01), (0.93, 0.01), (0.90, 0.03)),
        "cytoplasm":          ((0.93, 0.03), (0.94, 0.02), (0.84, 0.01), (0.89, 0.01), (0.87, 0.04)),
        "endosome":           ((0.94, 0.02), (0.92, 0.03), (0.81, 0.01), (0.88, 0.01), (0.86, 0.04)),
        "mitochondrion":      ((0.93, 0.02), (0.92, 0.02), (0.81, 0.01), (0.88, 0.01), (0.85, 0.03)),
        "nuclear periphery":  ((0.97, 0.01), (0.96, 0.01), (0.89, 0.01), (0.93, 0.00), (0.92, 0.01)),
        "nucleolus":          ((0.97, 0.02), (0.96, 0.02), (0.89, 0.01), (0.93, 0.01), (0.93, 0.02)),
        "nucleus":            ((0.95, 0.02), (0.95, 0.02), (0.88, 0.01), (0.91, 0.01), (0.90, 0.02)),
        "peroxisome":         ((0.96, 0.01), (0.94, 0.03), (0.83, 0.01), (0.89, 0.01), (0.88, 0.03)),
        "spindle pole":       ((0.95, 0.01), (0.94, 0.02), (0.83, 0.01), (0.90, 0.01), (0.88, 0.02)),
        "vacuolar membrane":  ((0.95, 0.03), (0.93, 0.03), (0.83, 0.01), (0.90, 0.01), (0.88, 0.04)),
        "vacuole":            ((0.92, 0.03), (0.92, 0.03), (0.82, 0.01), (0.87, 0.01), (0.86, 0.04)),
    },
    "pci": {
        #                     base          same          diff          batch         mask
        "ER":                 ((0.90, 0.03), (0.92, 0.02), (0.76, 0.01), (0.86, 0.01), (0.85, 0.03)),
        "Golgi":              ((0.91, 0.03), (0.91, 0.04), (0.73, 0.01), (0.86, 0.01), (0.85, 0.04)),
        "actin":              ((0.95, 0.02), (0.95, 0.03), (0.78, 0.01), (0.91, 0.01), (0.89, 0.04)),
        "bud neck":           ((0.90, 0.04), (0.93, 0.03), (0.77, 0.01), (0.85, 0.01), (0.86, 0.04)),
        "cell periphery":     ((0.95, 0.02), (0.96, 0.02), (0.83, 0.01), (0.92, 0.01), (0.90, 0.03)),
        "cytoplasm":          ((0.90, 0.03), (0.93, 0.03), (0.78, 0.01), (0.86, 0.01), (0.86, 0.04)),
        "endosome":           ((0.90, 0.03), (0.90, 0.04), (0.74, 0.01), (0.84, 0.01), (0.84, 0.04)),
        "mitochondrion":      ((0.88, 0.03), (0.90, 0.03), (0.72, 0.01), (0.84, 0.01), (0.83, 0.03)),
        "nuclear periphery":  ((0.94, 0.02), (0.95, 0.02), (0.81, 0.01), (0.90, 0.01), (0.89, 0.03)),
        "nucleolus":          ((0.95, 0.03), (0.96, 0.02), (0.83, 0.01), (0.91, 0.01), (0.91, 0.03)),
        "nucleus":            ((0.92, 0.02), (0.94, 0.02), (0.79, 0.01), (0.88, 0.01), (0.88, 0.02)),
        "peroxisome":         ((0.92, 0.03), (0.93, 0.03), (0.77, 0.01), (0.86, 0.01), (0.87, 0.04)),
        "spindle pole":       ((0.92, 0.02), (0.92, 0.02), (0.76, 0.01), (0.87, 0.01), (0.87, 0.02)),
        "vacuolar membrane":  ((0.93, 0.03), (0.94, 0.03), (0.80, 0.01), (0.88, 0.01), (0.89, 0.04)),
        "vacuole":            ((0.89, 0.04), (0.92, 0.03), (0.77, 0.01), (0.85, 0.01), (0.85, 0.05)),
    },
    "deeploc": {
        #                     base          same          diff          batch         mask
        "ER":                 ((0.69, 0.05), (0.72, 0.06), (0.60, 0.01), (0.66, 0.01), (0.66, 0.04)),
        "Golgi":              ((0.68, 0.04), (0.71, 0.06), (0.59, 0.01), (0.66, 0.01), (0.66, 0.05)),
        "actin":              ((0.77, 0.04), (0.75, 0.05), (0.61, 0.01), (0.72, 0.01), (0.72, 0.03)),
        "bud neck":           ((0.72, 0.04), (0.75, 0.04), (0.61, 0.01), (0.69, 0.01), (0.68, 0.05)),
        "cell periphery":     ((0.74, 0.05), (0.78, 0.05), (0.67, 0.01), (0.71, 0.01), (0.74, 0.04)),
        "cytoplasm":          ((0.72, 0.04), (0.78, 0.06), (0.64, 0.01), (0.69, 0.01), (0.69, 0.03)),
        "endosome":           ((0.69, 0.04), (0.70, 0.05), (0.59, 0.01), (0.65, 0.01), (0.67, 0.05)),
        "mitochondrion":      ((0.68, 0.04), (0.70, 0.05), (0.59, 0.01), (0.66, 0.01), (0.65, 0.04)),
        "nuclear periphery":  ((0.71, 0.04), (0.75, 0.05), (0.62, 0.01), (0.69, 0.01), (0.71, 0.04)),
        "nucleolus":          ((0.80, 0.03), (0.85, 0.05), (0.70, 0.01), (0.77, 0.01), (0.77, 0.04)),
        "nucleus":            ((0.71, 0.03), (0.74, 0.05), (0.61, 0.01), (0.68, 0.01), (0.67, 0.04)),
        "peroxisome":         ((0.70, 0.05), (0.72, 0.06), (0.60, 0.01), (0.65, 0.01), (0.65, 0.04)),
        "spindle pole":       ((0.71, 0.03), (0.75, 0.05), (0.61, 0.01), (0.68, 0.01), (0.65, 0.04)),
        "vacuolar membrane":  ((0.70, 0.04), (0.72, 0.05), (0.59, 0.01), (0.69, 0.01), (0.68, 0.03)),
        "vacuole":            ((0.72, 0.05), (0.75, 0.06), (0.64, 0.02), (0.67, 0.01), (0.68, 0.05)),
    },
}


# --------------------------------------------------------------------------- appendix D.3

#: Supplementary Table 3 (appendix D.3): per-class accuracy of the Cell-Free Different
#: Localization Swap (``batch``) experiment, ``{model: {class: (held_out, cv)}}``:
#: a protein-held-out 80/20 split (no protein overlap) and 5-fold cross-validation (the
#: latter equals ``tables.per_class(..., aggregation="all")["batch"]`` on the paper's CSVs).
SUPP_TABLE3: dict[str, dict[str, tuple[float, float]]] = {
    "pifia": {
        #                     held-out  5-fold CV
        "ER":                 (0.873, 0.890),
        "Golgi":              (0.816, 0.891),
        "actin":              (0.890, 0.929),
        "bud neck":           (0.880, 0.883),
        "cell periphery":     (0.877, 0.930),
        "cytoplasm":          (0.878, 0.887),
        "endosome":           (0.843, 0.877),
        "mitochondrion":      (0.864, 0.879),
        "nuclear periphery":  (0.932, 0.934),
        "nucleolus":          (0.915, 0.934),
        "nucleus":            (0.908, 0.909),
        "peroxisome":         (0.945, 0.893),
        "spindle pole":       (0.888, 0.899),
        "vacuolar membrane":  (0.823, 0.898),
        "vacuole":            (0.852, 0.869),
    },
    "pci": {
        "ER":                 (0.839, 0.858),
        "Golgi":              (0.765, 0.861),
        "actin":              (0.870, 0.906),
        "bud neck":           (0.853, 0.852),
        "cell periphery":     (0.874, 0.920),
        "cytoplasm":          (0.850, 0.861),
        "endosome":           (0.818, 0.843),
        "mitochondrion":      (0.824, 0.840),
        "nuclear periphery":  (0.909, 0.896),
        "nucleolus":          (0.895, 0.911),
        "nucleus":            (0.874, 0.883),
        "peroxisome":         (0.916, 0.864),
        "spindle pole":       (0.853, 0.870),
        "vacuolar membrane":  (0.758, 0.879),
        "vacuole":            (0.825, 0.849),
    },
    "deeploc": {
        "ER":                 (0.680, 0.664),
        "Golgi":              (0.619, 0.656),
        "actin":              (0.751, 0.723),
        "bud neck":           (0.720, 0.688),
        "cell periphery":     (0.734, 0.707),
        "cytoplasm":          (0.702, 0.691),
        "endosome":           (0.676, 0.654),
        "mitochondrion":      (0.661, 0.657),
        "nuclear periphery":  (0.727, 0.685),
        "nucleolus":          (0.795, 0.769),
        "nucleus":            (0.677, 0.683),
        "peroxisome":         (0.689, 0.654),
        "spindle pole":       (0.669, 0.676),
        "vacuolar membrane":  (0.660, 0.686),
        "vacuole":            (0.688, 0.669),
    },
}


# --------------------------------------------------------------------------- appendix E.1

#: Supplementary Table 4 (appendix E.1): per-class precision, recall and F1 of the
#: multinomial logistic regressions on a held-out 20 % of single-localization data,
#: ``{class: (precision, recall, f1 of the original-crop model,
#:            precision, recall, f1 of the masked-crop model)}``.
SUPP_TABLE4: dict[str, tuple[float, float, float, float, float, float]] = {
    #                     original: P    R     F1    masked: P    R     F1
    "ER":                 (0.87, 0.76, 0.81, 0.66, 0.48, 0.56),
    "Golgi":              (0.78, 0.58, 0.66, 0.38, 0.03, 0.05),
    "actin":              (0.89, 0.82, 0.85, 0.69, 0.28, 0.40),
    "bud neck":           (0.80, 0.30, 0.44, 0.70, 0.04, 0.07),
    "cell periphery":     (0.85, 0.63, 0.73, 0.57, 0.22, 0.32),
    "cytoplasm":          (0.83, 0.94, 0.88, 0.67, 0.90, 0.76),
    "endosome":           (0.77, 0.55, 0.65, 0.67, 0.05, 0.10),
    "mitochondrion":      (0.88, 0.84, 0.86, 0.64, 0.65, 0.65),
    "nuclear periphery":  (0.86, 0.82, 0.84, 0.82, 0.49, 0.61),
    "nucleolus":          (0.91, 0.85, 0.88, 0.75, 0.64, 0.69),
    "nucleus":            (0.90, 0.90, 0.90, 0.83, 0.79, 0.81),
    "peroxisome":         (0.81, 0.69, 0.74, 0.52, 0.21, 0.30),
    "spindle pole":       (0.81, 0.69, 0.75, 0.64, 0.33, 0.43),
    "vacuolar membrane":  (0.84, 0.65, 0.74, 0.67, 0.28, 0.40),
    "vacuole":            (0.70, 0.59, 0.64, 0.47, 0.19, 0.27),
}


# --------------------------------------------------------------------------- section 4.5 / Figure 3A

#: Section 4.5 (running text): KL divergence D_KL(original || masked) between the
#: predicted localization distributions, over 1,531 multi-localized proteins.
KL_TEXT: dict[str, float] = {"count": 1531, "min": 0.003, "median": 0.48, "mean": 0.80, "max": 9.75}

#: Figure 3A: the same distribution in full, as printed by ``describe()`` in the paper's
#: repository (microsoft/microscopy-sc-robustness, ``pifia_logistic_regression/
#: analyze_lr.ipynb`` cell 2 output); the figure labels the quartiles 0.19 / 0.48 / 1.05.
#: (Code-repository numbers, not printed in the paper text: std and the exact quartiles.)
KL_SUMMARY: dict[str, float] = {
    "count": 1531,
    "mean": 0.800180,
    "std": 0.947482,
    "min": 0.003260,
    "25%": 0.187370,
    "50%": 0.479301,
    "75%": 1.047329,
    "max": 9.751676,
}
FIG3A_QUARTILE_LABELS: tuple[float, float, float] = (0.19, 0.48, 1.05)

#: Section 4.5: proteins whose KL(original || masked) exceeds KL(original || uniform):
#: "223 out of 1,531 proteins (14.6%)".
UNIFORM_BASELINE: dict[str, float] = {"n_exceeding": 223, "n_proteins": 1531, "share": 0.146}


# --------------------------------------------------------------------------- tidy views


def table1() -> pd.DataFrame:
    """:data:`TABLE1` as a tidy table: ``model, experiment, mean, three_se``.

    Same columns and keys as :func:`bgrobust.tables.table1` (less ``n_classes``), so
    the two can be merged on ``model, experiment``.
    """
    rows = [{"model": m, "experiment": e, "mean": v[0], "three_se": v[1]}
            for m, exps in TABLE1.items() for e, v in exps.items()]
    return pd.DataFrame(rows, columns=["model", "experiment", "mean", "three_se"])


def supp_table1() -> pd.DataFrame:
    """:data:`SUPP_TABLE1` as ``model, layer, accuracy, best`` (unavailable layers dropped)."""
    rows = [{"model": m, "layer": layer, "accuracy": acc, "best": layer == BEST_LAYERS[m]}
            for m, layers in SUPP_TABLE1.items() for layer, acc in layers.items() if acc is not None]
    return pd.DataFrame(rows, columns=["model", "layer", "accuracy", "best"])


def _class_order(d) -> list[str]:
    return [c for c in CLASSES if c in d]


def supp_table2() -> pd.DataFrame:
    """:data:`SUPP_TABLE2` as ``model, experiment, class, mean, three_se`` (CLASSES order)."""
    rows = []
    for m, by_class in SUPP_TABLE2.items():
        for i, e in enumerate(SUPP_TABLE2_EXPERIMENTS):
            for c in _class_order(by_class):
                mean, se = by_class[c][i]
                rows.append({"model": m, "experiment": e, "class": c, "mean": mean, "three_se": se})
    return pd.DataFrame(rows, columns=["model", "experiment", "class", "mean", "three_se"])


def supp_table3() -> pd.DataFrame:
    """:data:`SUPP_TABLE3` as ``model, class, held_out, cv`` (CLASSES order)."""
    rows = [{"model": m, "class": c, "held_out": by_class[c][0], "cv": by_class[c][1]}
            for m, by_class in SUPP_TABLE3.items() for c in _class_order(by_class)]
    return pd.DataFrame(rows, columns=["model", "class", "held_out", "cv"])


def supp_table4() -> pd.DataFrame:
    """:data:`SUPP_TABLE4` as ``model, class, precision, recall, f1``.

    ``model`` is ``"original"`` (crops with background cells) or ``"masked"``.
    """
    rows = []
    for c in _class_order(SUPP_TABLE4):
        v = SUPP_TABLE4[c]
        rows.append({"model": "original", "class": c, "precision": v[0], "recall": v[1], "f1": v[2]})
        rows.append({"model": "masked", "class": c, "precision": v[3], "recall": v[4], "f1": v[5]})
    df = pd.DataFrame(rows, columns=["model", "class", "precision", "recall", "f1"])
    return df.sort_values("model", key=lambda s: s.map({"original": 0, "masked": 1}),
                          kind="stable").reset_index(drop=True)


def kl_summary() -> pd.DataFrame:
    """Figure 3A's KL summary: ``statistic, repository, text`` (text = section 4.5, rounded)."""
    text = {"count": KL_TEXT["count"], "mean": KL_TEXT["mean"], "min": KL_TEXT["min"],
            "50%": KL_TEXT["median"], "max": KL_TEXT["max"]}
    return pd.DataFrame({"statistic": list(KL_SUMMARY), "repository": list(KL_SUMMARY.values()),
                         "text": [text.get(k) for k in KL_SUMMARY]})


def text_drops() -> pd.DataFrame:
    """:data:`TEXT_DROPS` as ``comparison, model, drop``."""
    rows = [{"comparison": k, "model": m, "drop": v} for k, d in TEXT_DROPS.items() for m, v in d.items()]
    return pd.DataFrame(rows, columns=["comparison", "model", "drop"])
