"""Can plate batch effects be read from standardised backgrounds? A test with a positive control.

Chapter 5 asks whether the models profit from plate (batch) effects. A negative answer means
something only if plate effects that *survive* the per-protein standardisation of the swap
experiments would have been seen. This module holds a direct test of that and is meant to be
run on two screens: one with strong planted plate effects (the positive control, it must
detect them) and one whose plates are identical (the null, it must not).

The test, on a synthetic screen with its truth labels:

1. :func:`background_patches`: square patches of every field that hold no cell (at least
   ``margin`` px from any truth cell), ``per_field`` at most, with their strain and plate.
2. :func:`patch_descriptors`: every patch is standardised per channel with the mean and
   standard deviation of all its protein's patches (:func:`bgrobust.imageops.standardize`,
   as the swap experiments standardise per protein), so offset and gain are gone; what is
   left is the *shape* of the signal: per channel, the log variance of three spatial
   frequency bands (fine: pixel noise; middle: texture; coarse: illumination and
   out-of-focus light).
3. :func:`plate_effect_test`: each protein's mean descriptor is assigned to the plate
   whose centroid (over the *other* proteins) is nearest; the accuracy of this
   leave-one-protein-out assignment is compared with its distribution when the plates are
   permuted among proteins of the same class (so class-plate skew, which the test is not
   about, cannot make it significant). ``detected`` when the permutation p-value is below
   ``alpha``.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from scipy import ndimage as ndi
>>> rng = np.random.default_rng(0)
>>> plate = np.repeat(np.arange(12) % 3 + 1, 4)          # 12 proteins, 4 patches each, 3 plates
>>> table = pd.DataFrame({"strain": np.repeat([f"s{i}" for i in range(12)], 4), "plate": plate,
...                       "stratum": "ER"})
>>> smooth = ndi.gaussian_filter(rng.normal(size=(48, 3, 16, 16)), (0, 0, 3, 3)) * 10
>>> noisy = smooth + rng.normal(size=smooth.shape) * np.array([0.2, 1.0, 3.0])[plate - 1, None, None, None]
>>> d = patch_descriptors(noisy + 5, table)
>>> plate_effect_test(d, table, n_permutations=99)["detected"]
True
"""
from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .imageops import standardize

__all__ = ["background_patches", "patch_descriptors", "plate_effect_test", "plate_effect_report",
           "NEUTRAL_PLATES", "PLANTED_PLATES"]

#: The control screens spread every class evenly over the plates (a large Dirichlet
#: concentration), so that permuting plates within classes can break the plate assignment.
_EVEN_LAYOUT = {"plate_skew": 50.0}
#: Screen parameters under which every plate is the same: the null of the test.
NEUTRAL_PLATES = {"offset_sd": 0.0, "gain_sd": 0.0, "vignette_max": 0.0, "tilt_max": 0.0,
                  "plate_focus_sd": 0.0, "plate_noise_sd": 0.0, "plate_texture_max": 0.0, **_EVEN_LAYOUT}
#: Strong plate effects that survive standardisation: the positive control.
PLANTED_PLATES = {"plate_focus_sd": 0.5, "plate_noise_sd": 1.0, "plate_texture_max": 1.0, **_EVEN_LAYOUT}

_BANDS = ((0.0, 1.0), (1.0, 3.0), (3.0, 8.0))


def _check_int(value, name: str, lo: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def background_patches(screen, size: int = 32, margin: int = 4, per_field: int = 16,
                       random_state: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Cell-free square patches of every field of a synthetic screen, with strain and plate.

    Parameters
    ----------
    screen : bgrobust.screen.Screen
        With truth ``labels`` (a synthetic screen) and a ``plate`` column in ``fields``.
    size : int
        Patch side (px).
    margin : int
        Minimum distance (px) of every patch pixel from any truth cell.
    per_field : int
        At most this many patches per field, drawn at random among the cell-free
        positions of a grid with step ``size``.
    random_state : int
        Seeds the draw.

    Returns
    -------
    patches : ndarray, (n, 3, size, size) float32
    table : DataFrame
        ``strain``, ``plate``, ``field`` and ``stratum`` (the strain's localization for
        single-localized strains, ``"multi"`` otherwise) of each patch.
    """
    size = _check_int(size, "size", 4)
    margin = _check_int(margin, "margin", 0)
    per_field = _check_int(per_field, "per_field", 1)
    if screen.labels is None:
        raise ValueError("background_patches: the screen has no truth labels (a synthetic screen is needed)")
    for col in ("strain", "plate"):
        if col not in screen.fields.columns:
            raise ValueError(f"background_patches: screen.fields lacks column {col!r}")
    strains = screen.strains.set_index("strain")
    rng = np.random.default_rng(random_state)
    patches, rows = [], []
    for i, f in enumerate(screen.fields.itertuples(index=False)):
        cells = np.asarray(screen.labels[i]) > 0
        near = ndi.binary_dilation(cells, iterations=margin) if margin else cells
        h, w = near.shape
        spots = [(y, x) for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)
                 if not near[y:y + size, x:x + size].any()]
        if not spots:
            continue
        pick = rng.permutation(len(spots))[:per_field]
        image = np.asarray(screen.images[i], dtype=np.float32)
        s = strains.loc[f.strain]
        stratum = s["localization"] if s.get("kind", "single") == "single" else "multi"
        for k in pick:
            y, x = spots[k]
            patches.append(image[:, y:y + size, x:x + size])
            rows.append({"strain": f.strain, "plate": int(f.plate), "field": i, "stratum": str(stratum)})
    if not patches:
        raise ValueError(f"background_patches: no cell-free {size} x {size} patch in any field; "
                         "lower size or margin")
    return np.stack(patches), pd.DataFrame(rows)


def _check_table(table: pd.DataFrame, n: int, where: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{where}: table must be a DataFrame, got {type(table).__name__}")
    missing = [c for c in ("strain", "plate", "stratum") if c not in table.columns]
    if missing:
        raise ValueError(f"{where}: table lacks column(s) {missing}")
    if len(table) != n:
        raise ValueError(f"{where}: table has {len(table)} rows for {n} patches")


def patch_descriptors(patches, table: pd.DataFrame) -> np.ndarray:
    """Per-protein standardised band-power descriptors of background patches.

    Parameters
    ----------
    patches : array-like, (n, c, s, s)
    table : DataFrame
        ``strain``, ``plate``, ``stratum`` of each patch (:func:`background_patches`).

    Returns
    -------
    ndarray, (n, 3 * c)
        Per channel, the log variance of the fine, middle and coarse band of the patch
        after standardising it with its protein's per-channel mean and standard deviation.
    """
    x = np.asarray(patches, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"patch_descriptors: patches must be (n, channels, s, s), got shape {x.shape}")
    _check_table(table, len(x), "patch_descriptors")
    out = np.empty((len(x), len(_BANDS) * x.shape[1]), np.float64)
    strain = table["strain"].astype(str).to_numpy()
    for name in np.unique(strain):
        rows = np.flatnonzero(strain == name)
        mean = x[rows].mean(axis=(0, 2, 3))
        std = x[rows].std(axis=(0, 2, 3))
        z = standardize(x[rows], mean, np.where(std > 0, std, 1.0))
        feats = []
        for lo, hi in _BANDS:
            fine = ndi.gaussian_filter(z, (0, 0, lo, lo)) if lo > 0 else z
            coarse = ndi.gaussian_filter(z, (0, 0, hi, hi))
            feats.append(np.log((fine - coarse).var(axis=(2, 3)) + 1e-8))
        out[rows] = np.stack(feats, axis=2).reshape(len(rows), -1)
    return out


def _loo_accuracy(z: np.ndarray, plates: np.ndarray, n_plates: int) -> float:
    onehot = np.eye(n_plates)[plates]                           # (n, P)
    sums = onehot.T @ z                                          # (P, d)
    counts = onehot.sum(axis=0)                                  # (P,)
    # centroid of each plate without protein i: remove i from its own plate
    own = sums[None] - onehot[:, :, None] * z[:, None, :]        # (n, P, d)
    n_other = counts[None] - onehot                              # (n, P)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroids = own / n_other[:, :, None]
    dist = ((centroids - z[:, None, :]) ** 2).sum(axis=2)
    dist[n_other == 0] = np.inf
    return float((dist.argmin(axis=1) == plates).mean())


def plate_effect_test(descriptors, table: pd.DataFrame, *, n_permutations: int = 999, alpha: float = 0.05,
                      random_state: int = 0) -> dict:
    """Is the plate readable from the descriptors, beyond chance and beyond class-plate skew?

    Parameters
    ----------
    descriptors : array-like, (n, d)
        :func:`patch_descriptors`.
    table : DataFrame
        ``strain``, ``plate``, ``stratum`` per row; each strain on one plate.
    n_permutations : int
        Permutations of the plates among the proteins of each stratum.
    alpha : float in (0, 1)
        Detection level of the permutation p-value.
    random_state : int

    Returns
    -------
    dict
        ``accuracy`` (leave-one-protein-out nearest-centroid plate assignment), ``null_mean``
        and ``null_95`` (mean and 95th percentile of the permuted accuracies), ``p_value``
        (``(1 + #{permuted >= observed}) / (1 + n_permutations)``), ``detected``,
        ``n_proteins``, ``n_plates`` and ``n_patches``.
    """
    d = np.asarray(descriptors, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"plate_effect_test: descriptors must be (n, d), got shape {d.shape}")
    _check_table(table, len(d), "plate_effect_test")
    n_permutations = _check_int(n_permutations, "n_permutations", 1)
    if not (isinstance(alpha, numbers.Real) and 0 < alpha < 1):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    per = pd.DataFrame(d).groupby(table["strain"].astype(str).to_numpy()).mean()
    info = table.assign(strain=table["strain"].astype(str)).groupby("strain")[["plate", "stratum"]].agg(
        lambda v: v.iloc[0] if v.nunique() == 1 else np.nan)
    if info["plate"].isna().any():
        raise ValueError("plate_effect_test: a strain lies on more than one plate")
    info = info.loc[per.index]
    codes, plate_names = pd.factorize(info["plate"])
    if len(plate_names) < 2:
        raise ValueError("plate_effect_test: fewer than 2 plates; nothing to tell apart")
    z = per.to_numpy()
    sd = z.std(axis=0)
    z = (z - z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    observed = _loo_accuracy(z, codes, len(plate_names))
    rng = np.random.default_rng(random_state)
    strata = [np.flatnonzero(info["stratum"].to_numpy() == s) for s in pd.unique(info["stratum"])]
    null = np.empty(n_permutations)
    for b in range(n_permutations):
        perm = codes.copy()
        for rows in strata:
            perm[rows] = codes[rng.permutation(rows)]
        null[b] = _loo_accuracy(z, perm, len(plate_names))
    p = float((1 + np.sum(null >= observed)) / (1 + n_permutations))
    return {"accuracy": observed, "null_mean": float(null.mean()), "null_95": float(np.quantile(null, 0.95)),
            "p_value": p, "detected": bool(p < alpha), "n_proteins": int(len(per)),
            "n_plates": int(len(plate_names)), "n_patches": int(len(d))}


def plate_effect_report(screens, **kwargs) -> pd.DataFrame:
    """:func:`plate_effect_test` on several screens, one row each.

    Parameters
    ----------
    screens : mapping name -> Screen
    **kwargs
        ``size``, ``margin``, ``per_field`` for :func:`background_patches`; the rest for
        :func:`plate_effect_test`.

    Returns
    -------
    DataFrame
        Index screen; the keys of :func:`plate_effect_test`.
    """
    patch_keys = {"size", "margin", "per_field"}
    pk = {k: v for k, v in kwargs.items() if k in patch_keys}
    tk = {k: v for k, v in kwargs.items() if k not in patch_keys}
    rows = {}
    for name, screen in screens.items():
        patches, table = background_patches(screen, **pk)
        rows[name] = plate_effect_test(patch_descriptors(patches, table), table, **tk)
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "screen"
    return out
