"""Facts of the real yeast proteome that the synthetic screen draws from.

Computed once from the Huh et al. (2003) yeastgfp table (``allOrfData.txt``: 6,234
ORFs, abundance in molecules per cell from Ghaemmaghami et al. 2003), restricted to
ORFs whose GFP fusion was visualized; ``tests/test_synth_shared_data.py`` recomputes
every number here from the file and checks it.

* :data:`CLASS_LOG10_ABUNDANCE`: the median log10 abundance of the single-localized
  proteins of each class (in the 15 classes);
* :data:`LOG10_ABUNDANCE_RESIDUAL_QUANTILES`: the 0, 5, ..., 100th percentiles of a
  protein's log10 abundance minus its class median, pooled over the classes: the
  spread of expression within a class (about two orders of magnitude between the 5th
  and 95th percentile);
* :data:`MULTI_LOCALIZATIONS`: how often each combination of classes occurs among the
  1,136 visualized proteins with two or more of the 15 classes (combinations seen at
  least 5 times; cytoplasm + nucleus alone is 74 % of them).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a = sample_abundance(rng, "mitochondrion", 1000)
>>> 1500 < float(np.median(a)) < 3000
True
"""
from __future__ import annotations

import numpy as np

#: Median log10(molecules per cell) of the visualized single-localized proteins per class.
CLASS_LOG10_ABUNDANCE: dict[str, float] = {
    "actin": 3.474, "bud neck": 2.896, "cell periphery": 3.369, "cytoplasm": 3.528,
    "endosome": 3.086, "ER": 3.494, "Golgi": 3.622, "mitochondrion": 3.359, "nucleus": 3.333,
    "nuclear periphery": 3.433, "nucleolus": 3.736, "spindle pole": 2.965, "peroxisome": 3.264,
    "vacuolar membrane": 3.427, "vacuole": 3.182,
}

#: Percentiles 0, 5, ..., 100 of log10 abundance minus the class median (2,312 proteins).
LOG10_ABUNDANCE_RESIDUAL_QUANTILES: tuple[float, ...] = (
    -1.836, -1.024, -0.758, -0.602, -0.475, -0.364, -0.285, -0.211, -0.143, -0.069, 0.0,
    0.063, 0.153, 0.234, 0.323, 0.425, 0.517, 0.657, 0.892, 1.221, 2.707,
)

#: Combinations of classes among multi-localized visualized proteins, with their counts.
MULTI_LOCALIZATIONS: dict[tuple[str, ...], int] = {
    ("cytoplasm", "nucleus"): 838,
    ("nucleus", "nucleolus"): 73,
    ("bud neck", "cell periphery"): 29,
    ("bud neck", "cell periphery", "cytoplasm"): 24,
    ("cell periphery", "vacuole"): 21,
    ("bud neck", "cytoplasm"): 19,
    ("cytoplasm", "mitochondrion"): 18,
    ("nucleus", "spindle pole"): 12,
    ("cytoplasm", "nucleus", "nucleolus"): 12,
    ("cytoplasm", "ER"): 10,
    ("cytoplasm", "nucleolus"): 8,
    ("ER", "vacuole"): 8,
    ("cell periphery", "cytoplasm"): 7,
    ("cytoplasm", "vacuole"): 5,
    ("mitochondrion", "nucleus"): 5,
    ("cell periphery", "ER"): 5,
}


def sample_abundance(rng: np.random.Generator, localization: str | None, size=None) -> np.ndarray:
    """Protein abundances (molecules per cell) as in the real proteome.

    The class median (:data:`CLASS_LOG10_ABUNDANCE`; the mean of the classes' medians
    for ``None``) plus a residual drawn from the real within-class distribution
    (inverse-CDF sampling of :data:`LOG10_ABUNDANCE_RESIDUAL_QUANTILES`).
    """
    if localization is None:
        centre = float(np.mean(list(CLASS_LOG10_ABUNDANCE.values())))
    elif localization in CLASS_LOG10_ABUNDANCE:
        centre = CLASS_LOG10_ABUNDANCE[localization]
    else:
        raise ValueError(f"sample_abundance: unknown class {localization!r}")
    q = np.asarray(LOG10_ABUNDANCE_RESIDUAL_QUANTILES)
    u = rng.uniform(0, 1, size)
    return 10 ** (centre + np.interp(u, np.linspace(0, 1, q.size), q))


def sample_multi_localization(rng: np.random.Generator) -> tuple[str, ...]:
    """One combination of classes, drawn with the frequencies of :data:`MULTI_LOCALIZATIONS`."""
    combos = list(MULTI_LOCALIZATIONS)
    w = np.array([MULTI_LOCALIZATIONS[c] for c in combos], float)
    return combos[int(rng.choice(len(combos), p=w / w.sum()))]
