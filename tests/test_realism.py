"""The realism measure: statistics of crops and two-sample classifiers on known cases."""
import numpy as np
import pandas as pd
import pytest

from bgrobust.segment import centre_cell_mask
from bgrobust.synth.realism import (
    compare_crops, crop_statistics, crops_like, example_crops, holdout_split, pixel_features, scale_crops,
    two_sample_accuracy,
)


def _cells(n, radius, rng, *, blur=1.5, noise=0.05, spots=0):
    from scipy import ndimage as ndi

    yy, xx = np.mgrid[:64, :64]
    out = np.zeros((n, 2, 64, 64), np.float32)
    for i in range(n):
        r = radius * rng.uniform(0.9, 1.1)
        cell = ((yy - 32) ** 2 + (xx - 32) ** 2 < r ** 2).astype(float)
        gfp = cell * 0.5
        for _ in range(spots):
            y, x = rng.integers(32 - r // 2, 32 + r // 2, 2)
            gfp[y, x] += 20
        out[i, 0] = ndi.gaussian_filter(gfp, blur) + rng.normal(0, noise, (64, 64))
        out[i, 1] = ndi.gaussian_filter(cell, blur) + rng.normal(0, noise, (64, 64))
    return out


def test_identical_distributions_are_indistinguishable():
    rng = np.random.default_rng(0)
    a, b = _cells(80, 16, rng), _cells(80, 16, rng)
    report = compare_crops(a, b, random_state=0)
    acc = report.accuracy.set_index("features")["accuracy"]
    assert (acc < 0.66).all(), acc


def test_shifted_distributions_are_told_apart():
    rng = np.random.default_rng(1)
    a, b = _cells(60, 16, rng), _cells(60, 10, rng, spots=3, blur=0.5)
    report = compare_crops(a, b, random_state=0)
    acc = report.accuracy.set_index("features")["accuracy"]
    assert (acc > 0.95).all(), acc
    med = report.statistics.xs("median", axis=1, level=1)
    assert med.loc["area", "real"] > 2 * med.loc["area", "synthetic"]
    assert med.loc["gfp_kurt_in", "synthetic"] > med.loc["gfp_kurt_in", "real"] + 1


def test_statistics_of_a_known_disc():
    rng = np.random.default_rng(2)
    stats = crop_statistics(_cells(5, 16, rng, noise=0.01))
    assert stats["area"].median() == pytest.approx(np.pi * 16 ** 2, rel=0.12)
    assert stats["eq_diameter"].median() == pytest.approx(32, rel=0.06)
    assert (stats["other_cells"] == 0).all()
    assert (stats["marker_bg_cell_ratio"] < 0.1).all() and (stats["marker_snr"] > 20).all()


def test_centre_cell_mask_keeps_the_centre_cell_of_touching_pairs():
    yy, xx = np.mgrid[:64, :64]
    img = ((yy - 32) ** 2 + (xx - 30) ** 2 < 14 ** 2) | ((yy - 32) ** 2 + (xx - 57) ** 2 < 13 ** 2)
    mask = centre_cell_mask(img.astype(float))
    assert mask[32, 30] and not mask[32, 58]
    assert 500 < mask.sum() < 700
    assert not centre_cell_mask(np.zeros((64, 64))).any()


def test_accuracy_has_chance_half_and_a_standard_error():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(40, 5)), rng.normal(size=(200, 5))  # unequal sizes are subsampled
    acc, se = two_sample_accuracy(a, b, random_state=0)
    assert 0.3 < acc < 0.7 and se == pytest.approx(np.sqrt(acc * (1 - acc) / 80))
    with pytest.raises(ValueError, match="same number of columns"):
        two_sample_accuracy(a, b[:, :3])
    with pytest.raises(ValueError, match="at least n_splits"):
        two_sample_accuracy(a[:3], b)


def test_scaling_and_pixel_features():
    x = np.arange(2 * 2 * 32 * 32, dtype=float).reshape(2, 2, 32, 32)
    s = scale_crops(x)
    assert s.min() == 0 and s.max() == 1 and s.dtype == np.float32
    assert pixel_features(x, 16).shape == (2, 2 * 16 * 16)
    with pytest.raises(ValueError, match="multiple"):
        pixel_features(x, 12)


def test_holdout_split_and_crops_like():
    held = holdout_split(["A", "A", "B", "A", "B", "B"])
    assert held.tolist() == [False, True, False, False, True, False]
    strains = pd.DataFrame({
        "strain": ["s1", "s2", "s3", "s4"], "kind": ["single", "multi", "multi", "single"],
        "mixing": [None, "within_cell", "between_cells", None],
        "p:mitochondrion": [1, 0, 0, 0], "p:cytoplasm": [0, .5, .5, 1], "p:nucleus": [0, .5, .5, 0]})
    table = pd.DataFrame({"strain": ["s1", "s2", "s3", "s4", "s2"]})
    assert crops_like(table, strains, "mitochondrion").tolist() == [True, False, False, False, False]
    assert crops_like(table, strains, ("cytoplasm", "nucleus")).tolist() == [False, True, False, False, True]
    assert crops_like(table, strains, "cytoplasm").tolist() == [False, False, False, True, False]

    with pytest.raises(ValueError, match="crops_like"):
        crops_like(table, strains, "mitochondria")
    images = np.arange(5)[:, None]
    real, synth = example_crops(np.arange(6), [("mitochondrion",)] * 6, list("AABBCC"), images, table, strains,
                                "mitochondrion", n=5, random_state=0)
    assert real.tolist() == [1, 3, 5] and synth.tolist() == [[0]]   # held-out half only, one synthetic match
