"""Layer selection (section 3.4, appendix A): which layer of each model to read features from.

:func:`balanced_crops` draws appendix A's balanced design (a few proteins per class, a few
cells per protein); :func:`layer_accuracies` runs the paper's pairwise SVMs on the features of
every layer of a model; :data:`TABLE_LAYERS` names the columns of Supp. Table 1.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .classify import SVMProtocol, evaluate_pairs
from .features import extract_layers
from .vocabulary import CLASSES

__all__ = ["TABLE_LAYERS", "balanced_crops", "layer_accuracies"]


#: The columns of Supp. Table 1 and the layer of each model they name ("final" is the
#: feature layer before the classifier head; PCI's ``convK`` is ``convK_1``).
TABLE_LAYERS: dict[str, dict[str, str]] = {
    "pifia": {**{f"conv{k}": f"conv{k}" for k in range(1, 9)}, "final": "d2"},
    "pci": {f"conv{k}": f"conv{k}_1" for k in range(1, 6)},
    "deeploc": {**{f"conv{k}": f"conv{k}" for k in range(1, 9)}, "final": "fc2"},
}


def balanced_crops(dataset, proteins_per_class: int = 3, cells_per_protein: int = 20, *, classes=CLASSES,
                   random_state: int = 0):
    """A balanced set of valid crops of single-localized proteins (appendix A's design).

    Up to ``proteins_per_class`` random proteins per class and ``cells_per_protein`` random
    valid crops of each; the rows of a class are shuffled so that the unshuffled
    5-fold split of the paper's protocol does not fall along protein boundaries.

    Returns
    -------
    crops : CropSet
        Table has ``localization`` (the class) and ``strain``.
    report : DataFrame
        Per class: proteins used and crops used.
    """
    if proteins_per_class < 1 or cells_per_protein < 1:
        raise ValueError("balanced_crops: proteins_per_class and cells_per_protein must be >= 1, got "
                         f"{proteins_per_class} and {cells_per_protein}")
    rng = np.random.default_rng(random_state)
    valid = dataset.valid_crops()
    table = valid.table
    picked, rows = [], []
    for c in classes:
        strains = sorted(table.loc[table["kind"].eq("single") & table["localization"].eq(c), "strain"].unique())
        if not strains:
            raise ValueError(f"balanced_crops: class {c!r} has no single-localized protein with valid crops")
        chosen = rng.choice(strains, size=min(proteins_per_class, len(strains)), replace=False)
        idx = []
        for s in chosen:
            pos = np.flatnonzero(table["strain"].eq(s).to_numpy())
            idx.extend(rng.choice(pos, size=min(cells_per_protein, len(pos)), replace=False))
        idx = rng.permutation(np.asarray(idx))
        picked.append(idx)
        rows.append({"class": c, "proteins": len(chosen), "crops": len(idx)})
    return valid.subset(np.concatenate(picked)), pd.DataFrame(rows)


def layer_accuracies(model, crops, labels, layers, pooling: str = "max", protocol: SVMProtocol | None = None, *,
                     classes=CLASSES, n_jobs: int = 1, progress: bool = True, cache_dir=None,
                     device=None, precision: str = "float32") -> pd.DataFrame:
    """Mean pairwise SVM accuracy over the class pairs for every layer of a model.

    ``device`` and ``precision`` are those of :func:`bgrobust.features.extract_layers`.

    Returns
    -------
    DataFrame
        One row per layer: ``layer``, ``accuracy`` (mean over pairs), ``sd`` (over pairs),
        ``n_pairs``, ``dim`` (feature dimension).
    """
    labels = np.asarray(labels)
    feats = extract_layers(model, crops, list(layers), pooling, progress=progress, cache_dir=cache_dir,
                           device=device, precision=precision)
    rows = []
    for layer in layers:
        per_class = {c: feats[layer][labels == c] for c in classes}
        n = min(len(v) for v in per_class.values())
        proto = protocol or SVMProtocol(n_per_class=n)
        res = evaluate_pairs(per_class, proto, classes=classes, n_jobs=n_jobs, progress=False, cache_dir=cache_dir)
        rows.append({"layer": layer, "accuracy": res["Accuracy"].mean(), "sd": res["Accuracy"].std(ddof=1),
                     "n_pairs": len(res), "dim": feats[layer].shape[1]})
    return pd.DataFrame(rows)
