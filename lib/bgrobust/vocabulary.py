"""The book's vocabulary, defined once: classes, channels, experiments and models.

Every key, display title, colour and order the library, the chapters and the tests use
lives here and nowhere else (``tests/test_vocabulary.py`` checks it).

Classes
    ``CLASSES`` is the order of ``LOC_KEYS`` in the paper's ``run_svm.py`` (it fixes the
    105 unordered pairs i < j and therefore the "paper" aggregation of Table 1).
    ``SORTED_CLASSES`` is the lexicographic order of the same strings (upper case first),
    which is the class order of the paper's trained logistic-regression heads
    (pandas ``category`` codes). The strings are the yeastgfp (Huh et al. 2003) column names.
Channels
    ``CHANNELS``: the crop channels of the synthetic screen and of a screen manifest
    (GFP, a nuclear marker, a whole-cell cytoplasmic marker), in array order.
Experiments
    ``EXPERIMENTS``: the paper code's CSV keys, in the column order of Table 1;
    ``EXPERIMENT_TITLES``: the names printed in the paper.
Models
    ``MODELS``: the paper's three extractors, in its row order; ``MODEL_TITLES``,
    ``MODEL_COLORS``.

Examples
--------
>>> from bgrobust.vocabulary import CLASSES, EXPERIMENT_TITLES, class_index
>>> len(CLASSES), CLASSES[0], class_index("vacuole")
(15, 'actin', 14)
>>> EXPERIMENT_TITLES["diff"]
'Diff Loc Swap'
"""
from __future__ import annotations

CLASSES: tuple[str, ...] = (
    "actin",
    "bud neck",
    "cell periphery",
    "cytoplasm",
    "endosome",
    "ER",
    "Golgi",
    "mitochondrion",
    "nucleus",
    "nuclear periphery",
    "nucleolus",
    "spindle pole",
    "peroxisome",
    "vacuolar membrane",
    "vacuole",
)

SORTED_CLASSES: tuple[str, ...] = tuple(sorted(CLASSES))

#: Display names used in the paper's supplementary tables.
CLASS_TITLES: dict[str, str] = {c: c if c in ("ER", "Golgi") else c.title() for c in CLASSES}

#: One colour per class (tab20 without the greys), stable across every figure of the book.
CLASS_COLORS: dict[str, str] = dict(
    zip(
        CLASSES,
        (
            "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c",
            "#98df8a", "#d62728", "#ff9896", "#9467bd", "#c5b0d5",
            "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#17becf",
        ),
    )
)

#: Crop channels, in array order (GFP, nuclear marker, whole-cell cytoplasmic marker).
CHANNELS: tuple[str, str, str] = ("gfp", "nucleus", "cytoplasm")

#: The five experiments by the paper code's CSV names, in the column order of Table 1.
EXPERIMENTS: tuple[str, ...] = ("base", "diff", "same", "mask", "batch")
#: Names as printed in the paper's Table 1.
EXPERIMENT_TITLES: dict[str, str] = {
    "base": "Baseline",
    "diff": "Diff Loc Swap",
    "same": "Same Loc Swap",
    "mask": "Masked Background",
    "batch": "Cell-Free Diff Loc Swap",
}
#: Experiments with one result per class pair (``Location1, Location2``).
PAIR_EXPERIMENTS: tuple[str, ...] = ("base", "same", "mask")
#: Experiments with one result per pair and background class (a ``Background`` column).
TRIPLET_EXPERIMENTS: tuple[str, ...] = ("diff", "batch")

#: The *other-class background* design for few classes (not one of the paper's five): both
#: classes' centres on backgrounds of one class of the pair, in turn (the diff swap's rows whose
#: background is one of the pair, which the paper computes and drops; see bgrobust.settings).
OTHER_CLASS: str = "other"
OTHER_CLASS_TITLE: str = "Other-Class Background"

#: The backgrounds challenge (:mod:`bgrobust.challenge`, after Xiao et al. 2020; not the paper's):
#: its measures, in the order a chapter shows them, and their display names.
CHALLENGE_MEASURES: tuple[str, ...] = ("bg_only", "worst_class", "worst_donor", "flips", "bg_gap")
CHALLENGE_TITLES: dict[str, str] = {
    "bg_only": "Background Only",
    "worst_class": "Worst Background Class",
    "worst_donor": "Worst Donor Crop",
    "flips": "Per-Cell Flips",
    "bg_gap": "BG-Gap",
}

#: The paper's three feature extractors, in its row order.
MODELS: tuple[str, ...] = ("pifia", "pci", "deeploc")
#: Display names of the models (Table 1 rows).
MODEL_TITLES: dict[str, str] = {"pifia": "PIFiA", "pci": "PCI", "deeploc": "DeepLoc"}
#: One colour per model, the paper's (Fig. 2: PIFiA red, PCI blue, DeepLoc green).
MODEL_COLORS: dict[str, str] = {"pifia": "#951403", "pci": "#005b96", "deeploc": "#00A36C"}


def class_index(name: str) -> int:
    """Index of ``name`` in :data:`CLASSES`.

    Raises
    ------
    ValueError
        If ``name`` is not one of the 15 classes (the message lists them).
    """
    try:
        return CLASSES.index(name)
    except ValueError:
        raise ValueError(
            f"unknown localization class {name!r}; expected one of: {', '.join(CLASSES)}"
        ) from None


def check_classes(names, *, where: str = "input") -> None:
    """Raise a ``ValueError`` naming ``where`` if any of ``names`` is not a known class."""
    unknown = sorted({str(n) for n in names} - set(CLASSES))
    if unknown:
        raise ValueError(
            f"{where}: unknown localization class(es) {unknown}; "
            f"expected names from: {', '.join(CLASSES)}"
        )
