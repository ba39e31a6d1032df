"""Numbers published in the paper, typed in as data (they are facts, not results).

Every chapter puts our numbers beside these.  Sources are given per table:
Gupta, Moses & Lu, MLCB 2025 (PMLR 311:162-177), main text, Table 1 and the
supplementary tables.  Nothing here is computed by this project.
"""
from __future__ import annotations

import pandas as pd

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
