"""Tests of bgrobust.baselines: hand-crafted structural features of the centre cell.

Hand-made crops with known answers (a uniform disc, two discs, a half-bright disc), the
co-occurrence statistics against scikit-image, column names, background invariance, errors.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bgrobust import baselines as B

S = 64
YY, XX = np.mgrid[:S, :S]


def disc(cy: float, cx: float, r: float) -> np.ndarray:
    return (YY - cy) ** 2 + (XX - cx) ** 2 <= r ** 2


def crops_with(*cells, gfp=500.0, cyto=300.0, nuc=None, offset=0.0) -> np.ndarray:
    """One (1, 3, 64, 64) crop with uniform discs ``(cy, cx, r)`` in GFP and cytoplasm."""
    img = np.full((1, 3, S, S), offset)
    for cy, cx, r in cells:
        d = disc(cy, cx, r)
        img[0, 0][d] = gfp
        img[0, 2][d] = cyto
        if nuc is not None:
            img[0, 1][disc(cy, cx, r / 3)] = nuc
    return img


# ---------------------------------------------------------------------------- known values
def test_uniform_disc_has_flat_statistics_and_the_disc_area():
    mask = disc(32, 32, 10)
    f = B.structural_features(crops_with((32, 32, 10)), mask[None]).iloc[0]
    assert f["area"] == mask.sum()
    assert f["gfp_mean"] == 500.0 and f["gfp_std"] == 0.0 and f["gfp_cv"] == 0.0
    assert f["gfp_skew"] == 0.0 and f["gfp_kurtosis"] == 0.0
    assert f["gfp_q10"] == f["gfp_q90"] == f["gfp_max"] == 500.0
    assert f["gfp_total"] == 500.0 * mask.sum()
    rings = f[[f"gfp_ring_{k}" for k in range(1, 6)]].to_numpy()
    np.testing.assert_allclose(rings, 1.0)
    assert f["gfp_edge_ratio"] == pytest.approx(1.0)
    assert f["eccentricity"] == pytest.approx(0.0, abs=1e-9)
    assert f["major_axis_length"] == pytest.approx(f["minor_axis_length"])
    assert f["glcm_contrast_d1"] == 0.0 and f["glcm_homogeneity_d1"] == 1.0
    assert f["glcm_energy_d2"] == 1.0 and f["glcm_entropy_d2"] == 0.0
    assert f["n_other_cells"] == 0 and f["other_cell_fraction"] == 0.0
    assert f["bg_mean"] == 0.0 and f["bg_std"] == 0.0


def test_second_disc_is_one_other_cell_and_shows_in_the_background():
    cells = [(32, 32, 10), (10, 52, 7)]
    f = B.structural_features(crops_with(*cells, nuc=800.0, offset=100.0), disc(32, 32, 10)[None]).iloc[0]
    assert f["n_other_cells"] == 1
    assert f["n_other_nuclei"] == 1
    assert 0.0 < f["other_cell_fraction"] < 0.1
    assert f["bg_max"] == 500.0 and f["bg_q50"] == 100.0
    assert f["cell_bg_contrast"] == pytest.approx((500 - 100) / (500 + 100))


def test_three_neighbours_including_one_cut_by_the_border():
    cells = [(32, 32, 9), (8, 8, 6), (56, 50, 6), (32, 63, 6)]
    f = B.structural_features(crops_with(*cells), disc(32, 32, 9)[None]).iloc[0]
    assert f["n_other_cells"] == 3


def test_radial_profile_and_edge_ratio_of_a_bright_rim():
    img = crops_with((32, 32, 12), gfp=100.0)
    rim = disc(32, 32, 12) & ~disc(32, 32, 9)
    img[0, 0][rim] = 400.0
    f = B.structural_features(img, disc(32, 32, 12)[None]).iloc[0]
    rings = f[[f"gfp_ring_{k}" for k in range(1, 6)]].to_numpy()
    assert rings[0] < 1.0 < rings[-1]
    assert np.all(np.diff(rings) >= -1e-9)
    assert f["gfp_edge_ratio"] > 1.5


def test_elongated_cell_is_eccentric_like_skimage():
    from skimage.measure import regionprops

    mask = ((YY - 32) / 6.0) ** 2 + ((XX - 32) / 14.0) ** 2 <= 1
    f = B.structural_features(crops_with(), mask[None], groups=["shape"]).iloc[0]
    props = regionprops(mask.astype(int))[0]
    assert f["eccentricity"] == pytest.approx(props.eccentricity, rel=1e-6)
    assert f["major_axis_length"] == pytest.approx(props.axis_major_length, rel=1e-6)
    assert f["minor_axis_length"] == pytest.approx(props.axis_minor_length, rel=1e-6)


def test_intensity_quantiles_and_skew_match_numpy_and_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    img = rng.gamma(2.0, 100.0, size=(2, 3, S, S))
    masks = np.stack([disc(32, 32, 11), disc(30, 34, 7)])
    f = B.structural_features(img, masks, groups=["intensity"])
    for i in range(2):
        v = img[i, 0][masks[i]]
        np.testing.assert_allclose(f.loc[i, ["gfp_q10", "gfp_q50", "gfp_q90"]].to_numpy(float),
                                   np.quantile(v, [0.1, 0.5, 0.9]), rtol=1e-12)
        assert f.loc[i, "gfp_std"] == pytest.approx(v.std())
        assert f.loc[i, "gfp_skew"] == pytest.approx(stats.skew(v))
        assert f.loc[i, "gfp_kurtosis"] == pytest.approx(stats.kurtosis(v))
        assert f.loc[i, "gfp_max"] == v.max()


def test_glcm_matches_skimage_on_a_full_mask():
    from skimage.feature import graycomatrix, graycoprops

    rng = np.random.default_rng(1)
    levels = rng.integers(0, 6, size=(1, 20, 20))
    mask = np.ones_like(levels, bool)
    ours = B.glcm_features(levels, mask, 6, distances=(1, 2))
    img = levels[0].astype(np.uint8)
    # distance 1: the four directions as scikit-image defines them
    P1 = graycomatrix(img, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=6, symmetric=True, normed=True)
    # distance 2: scikit-image rounds the diagonal offsets to (1, 1); ours are (2, 2), which is
    # scikit-image's distance 2 * sqrt(2) on the diagonals
    P2_axes = graycomatrix(img, [2], [0, np.pi / 2], levels=6, symmetric=True, normed=True)
    P2_diag = graycomatrix(img, [2 * np.sqrt(2)], [np.pi / 4, 3 * np.pi / 4], levels=6, symmetric=True, normed=True)
    for prop in B.GLCM_PROPS:
        ref1 = graycoprops(P1, prop).mean()
        ref2 = np.concatenate([graycoprops(P2_axes, prop).ravel(), graycoprops(P2_diag, prop).ravel()]).mean()
        assert ours[f"glcm_{prop}_d1"][0] == pytest.approx(ref1, rel=1e-10), prop
        assert ours[f"glcm_{prop}_d2"][0] == pytest.approx(ref2, rel=1e-10), prop


def test_glcm_ignores_pairs_leaving_the_mask():
    levels = np.zeros((1, 10, 10), int)
    levels[0, :, 5:] = 3  # a step exactly at the mask border
    mask = np.zeros((1, 10, 10), bool)
    mask[0, :, :5] = True
    out = B.glcm_features(levels, mask, 4, distances=(1,))
    assert out["glcm_contrast_d1"][0] == 0.0


# ---------------------------------------------------------------------------- invariance, names
def test_cell_only_features_ignore_everything_outside_the_mask():
    rng = np.random.default_rng(2)
    a = rng.integers(100, 1000, size=(3, 3, S, S)).astype(np.uint16)
    masks = np.stack([disc(32, 32, r) for r in (8, 10, 12)])
    b = rng.integers(100, 1000, size=a.shape).astype(np.uint16)
    b[:, :, masks.any(0)] = 0
    b = np.where(masks[:, None], a, b)   # same cell pixels, new surroundings
    fa = B.structural_features(a, masks, include_background=False, include_context=False)
    fb = B.structural_features(b, masks, include_background=False, include_context=False)
    pd.testing.assert_frame_equal(fa, fb)
    full_a = B.structural_features(a, masks)
    full_b = B.structural_features(b, masks)
    assert not np.allclose(full_a["bg_mean"], full_b["bg_mean"])


def test_every_column_is_named_and_grouped():
    names = B.structural_feature_names()
    assert len(names) == len(set(names)) == 49
    f = B.structural_features(crops_with((32, 32, 10)), disc(32, 32, 10)[None])
    assert list(f.columns) == names
    assert sum(len(v) for v in f.attrs["groups"].values()) == len(names)
    assert list(f.attrs["groups"]) == list(B.FEATURE_GROUPS)
    no_bg = B.structural_feature_names(include_background=False)
    assert not any(n.startswith("bg_") or n == "cell_bg_contrast" for n in no_bg)
    assert "n_other_cells" in no_bg
    assert B.structural_feature_names(groups=["texture"], glcm_distances=(3,))[0] == "glcm_contrast_d3"


def test_empty_mask_gives_nan_cell_features_and_finite_background():
    f = B.structural_features(crops_with(offset=100.0), np.zeros((1, S, S), bool)).iloc[0]
    assert np.isnan(f["gfp_mean"]) and np.isnan(f["area"]) and np.isnan(f["n_other_cells"])
    assert f["bg_mean"] == 100.0


def test_table_sets_the_index_and_cross_checks_neighbours():
    img = np.concatenate([crops_with((32, 32, 10), (10, 52, 7)), crops_with((32, 32, 10))])
    masks = np.repeat(disc(32, 32, 10)[None], 2, axis=0)
    table = pd.DataFrame({"n_neighbours": [1, 0]}, index=[10, 11])
    f = B.structural_features(img, masks, table)
    assert list(f.index) == [10, 11]
    check = f.attrs["n_neighbours_check"]
    assert check["exact_n_other_cells"] == 1.0 and check["n"] == 2


def test_batches_give_the_same_result_as_one_pass():
    rng = np.random.default_rng(3)
    img = rng.integers(100, 1000, size=(5, 3, S, S)).astype(np.uint16)
    masks = np.stack([disc(32, 32, 6 + i) for i in range(5)])
    pd.testing.assert_frame_equal(B.structural_features(img, masks, batch_size=2),
                                  B.structural_features(img, masks, batch_size=64))


# ---------------------------------------------------------------------------- extractor
def test_extractor_is_a_callable_with_named_float32_output():
    extract = B.StructuralExtractor(include_background=False)
    img = crops_with((32, 32, 10), (10, 52, 7))
    X = extract(img, disc(32, 32, 10)[None])
    assert X.dtype == np.float32 and X.shape == (1, len(extract.feature_names))
    assert extract.name == "structural"
    assert B.StructuralExtractor(include_background=False, include_context=False).name == "structural-cell"
    assert "include_background=False" in repr(extract)


def test_extractor_segments_the_centre_cell_when_no_mask_is_given():
    img = crops_with((32, 32, 10), (8, 8, 6), nuc=800.0, offset=100.0)
    extract = B.StructuralExtractor(groups=["shape", "context"])
    X = extract.transform(img)
    assert X.loc[0, "area"] == pytest.approx(disc(32, 32, 10).sum(), rel=0.15)
    assert X.loc[0, "n_other_cells"] == 1


def _noisy_crops(n: int = 6, seed: int = 0):
    """Raw-looking crops: camera offset, noise and a bright disc of varying brightness."""
    from bgrobust.crops import CropSet

    rng = np.random.default_rng(seed)
    images = 100.0 + rng.normal(0, 5, size=(n, 3, S, S))
    masks = np.repeat(disc(32, 32, 10)[None], n, axis=0)
    for i in range(n):
        images[i, 0][masks[i]] += 50.0 + 40.0 * i + rng.normal(0, 10, masks[i].sum())
        images[i, 2][masks[i]] += 200.0
    return CropSet(images.astype(np.float32), masks, pd.DataFrame(index=range(n)))


def test_structural_features_see_raw_crops_and_standardised_composites_on_one_scale():
    # chapter 4's base crops are raw, its swap composites standardised per protein (near 0,
    # partly negative); per-crop min-max makes the descriptor invariant to that affine change
    from bgrobust.extractors import StructuralFeatures

    ref = _noisy_crops()
    z = (ref.images - ref.images.mean()) / ref.images.std()
    scaled = StructuralFeatures(ref)
    assert np.abs(scaled(ref.images, masks=ref.masks) - scaled(z, masks=ref.masks)).max() < 1e-3
    raw = StructuralFeatures(ref, intensity="raw")
    drift = np.abs(raw(ref.images, masks=ref.masks) - raw(z, masks=ref.masks)).max()
    assert drift > 10  # ratio features divide by pixel values near zero


def test_structural_features_read_their_channels_by_name_and_fill_undefined_features():
    # real crops: GFP and the cell marker only; the nuclear features are undefined (NaN)
    import warnings

    from bgrobust.crops import CropSet
    from bgrobust.extractors import StructuralFeatures

    three = _noisy_crops()
    two = CropSet(three.images[:, [0, 2]], three.masks, three.table, channels=("gfp", "cytoplasm"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = StructuralFeatures(two, channels=("gfp", "cytoplasm")).with_channels(two.channels)
        X = f(two.images, masks=two.masks)
    assert np.isfinite(X).all() and X.shape == (len(two.images), len(f.extract.feature_names))
    undefined = [i for i, n in enumerate(f.extract.feature_names) if "nuc" in n]
    assert undefined and np.all(X[:, undefined] == 0)
    assert np.abs(X).max() > 0.5  # the defined features vary
    with pytest.raises(ValueError, match="reads channel"):
        StructuralFeatures(two)  # the default descriptor wants the nuclear channel too


def test_structural_features_reject_an_unknown_intensity_option():
    from bgrobust.extractors import StructuralFeatures

    with pytest.raises(ValueError, match="intensity must be one of"):
        StructuralFeatures(_noisy_crops(), intensity="zscore")


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("shape", [(3, S, S), (1, 2, S, S), (1, 3, S)])
def test_wrong_image_shape_is_an_error(shape):
    with pytest.raises(ValueError, match="images must have shape"):
        B.structural_features(np.zeros(shape), np.zeros((1, S, S), bool))


def test_mask_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="masks must have shape"):
        B.structural_features(np.zeros((2, 3, S, S)), np.zeros((1, S, S), bool))
    with pytest.raises(ValueError, match="masks must have shape"):
        B.StructuralExtractor()(np.zeros((1, 3, S, S)), np.zeros((1, 32, 32), bool))


def test_other_bad_arguments_are_errors():
    img, mask = np.zeros((1, 3, S, S)), np.zeros((1, S, S), bool)
    with pytest.raises(ValueError, match="masks are required"):
        B.structural_features(img, None)
    with pytest.raises(ValueError, match="unknown feature group"):
        B.structural_features(img, mask, groups=["colour"])
    with pytest.raises(ValueError, match="table has 2 rows"):
        B.structural_features(img, mask, pd.DataFrame({"n_neighbours": [0, 1]}))
    with pytest.raises(ValueError, match="no 'gfp'"):
        B.structural_features(img, mask, channels=("a", "b", "c"))
    with pytest.raises(ValueError, match="no feature group left"):
        B.structural_features(img, mask, groups=["background"], include_background=False)


def test_structural_features_in_worker_processes_equal_the_serial_ones(tmp_path, monkeypatch):
    import warnings

    from bgrobust.extractors import StructuralFeatures

    ref = _noisy_crops(n=10)
    np.save(tmp_path / "images.npy", ref.images)
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")          # sets are read memory-mapped
    serial = StructuralFeatures(ref, batch_size=3)
    monkeypatch.setattr(StructuralFeatures, "WORKER_CROPS", 4)       # several tasks of a few crops
    with warnings.catch_warnings():
        warnings.simplefilter("error")                               # no worker restarted
        parallel = StructuralFeatures(ref, batch_size=3, n_jobs=2)
        assert np.array_equal(serial.mean, parallel.mean) and np.array_equal(serial.sd, parallel.sd)
        assert np.array_equal(serial(mapped, masks=ref.masks), parallel(mapped, masks=ref.masks))
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="n_jobs must be a non-zero integer"):
            StructuralFeatures(ref, n_jobs=bad)
