"""The 15 localization classes of the paper, in the orders the original code uses.

``CLASSES`` is the order of ``LOC_KEYS`` in the paper's ``run_svm.py`` (it fixes the
105 unordered pairs i < j and therefore the "paper" aggregation of Table 1).
``SORTED_CLASSES`` is the lexicographic order of the same strings (upper case first),
which is the class order of the paper's trained logistic-regression heads
(pandas ``category`` codes).

The strings are the yeastgfp (Huh et al. 2003) column names.

Examples
--------
>>> from bgrobust.classes import CLASSES, class_index
>>> len(CLASSES), CLASSES[0], class_index("vacuole")
(15, 'actin', 14)
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
DISPLAY_NAMES: dict[str, str] = {c: c if c in ("ER", "Golgi") else c.title() for c in CLASSES}

#: One colour per class (tab20 without the greys), stable across every figure of the book.
COLORS: dict[str, str] = dict(
    zip(
        CLASSES,
        (
            "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c",
            "#98df8a", "#d62728", "#ff9896", "#9467bd", "#c5b0d5",
            "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#17becf",
        ),
    )
)


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
