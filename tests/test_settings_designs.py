"""Designs for few classes (other-class backgrounds, shared backgrounds) and the clean swap."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from bgrobust.cache import content_key, dataset_fingerprint
from bgrobust.classify import SVMProtocol, evaluate_triplets, pairwise_accuracy
from bgrobust.constraints import ParameterError
from bgrobust.dataset import build_dataset
from bgrobust.imageops import (CentreRemoval, donor_residue, protein_stats, remove_centre_cell,
                               remove_centre_cells, seam_contrast, standardize, stats_for)
from bgrobust.settings import compositing_artefacts, generate_settings
from bgrobust.synth import ScreenConfig, generate_screen
from bgrobust.vocabulary import CLASSES

# the tiny screen of tests/test_settings.py (~2 s; all 15 classes, 2 proteins each)
TINY = {"proteins_per_class": 2, "n_multi": 0, "fields_per_strain": 1, "field_shape": [192, 192],
        "n_plates": 2, "cells_per_field": [8, 30], "pixel_size": 0.2}
# four fields per strain (~6 s): 26-35 valid crops per protein, enough for 5-fold SVMs of 25 + 25 rows
SMALL = {**TINY, "fields_per_strain": 4}
CLASSES4 = ("cytoplasm", "Golgi", "mitochondrion", "spindle pole")
PAIR = ("cytoplasm", "mitochondrion")

# Digests of generate_settings(ds_tiny, 5, random_state=3) (all 15 classes, all five
# settings) made with the code *before* the few-class designs and the clean swap
# (commit 8800c93), on the dataset whose fingerprint is PINNED_DATASET (re-pinned when the crop
# sets began to record their channel names: same pixels and tables, the sets' digests unchanged).
PINNED_DATASET = "0e9b76de57a76b75"
PINNED = {
    "{}": {"images": "f0b8b4a55c910d1a", "masks": "1be5f969d68c8ffd", "table": "1c0cd8d34395ff24",
           "sets": "71f4417b345eb800", "n": 465},
    '{"centre_proteins": "all"}': {"images": "bd5dfefea43a6bdc", "masks": "dde198fc01f7dfd3",
                                   "table": "a3316729df4f8f44", "sets": "befce9009acb649d", "n": 465},
}


def _generate(ds, n, path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate_settings(ds, n, progress=False, cache_dir=path, **kw)


@pytest.fixture(scope="module")
def ds_tiny():
    return build_dataset(generate_screen(ScreenConfig.from_dict(TINY), progress=False), progress=False)


@pytest.fixture(scope="module")
def ds_small():
    return build_dataset(generate_screen(ScreenConfig.from_dict(SMALL), progress=False), progress=False)


# -- the default sets are unchanged -------------------------------------------------------

def test_default_sets_are_those_of_the_code_before_the_designs(ds_tiny, tmp_path):
    if dataset_fingerprint(ds_tiny) != PINNED_DATASET:
        pytest.skip("the synthetic screen differs on this platform; the pins hold for its pinned content")
    for kw_json, pinned in PINNED.items():
        s = _generate(ds_tiny, 5, tmp_path, random_state=3, **json.loads(kw_json))
        assert s.meta["swap"] == "paper" and s.meta["swap_backgrounds"] == "other"
        got = {"images": content_key(np.asarray(s.images)), "masks": content_key(np.asarray(s.masks)),
               "table": content_key(s.table.to_dict("list")), "sets": content_key(s.sets.to_dict("list")),
               "n": len(s)}
        assert got == pinned, kw_json


# -- swap_backgrounds="all": the other-class background design -----------------------------

@pytest.fixture(scope="module")
def sets_all(ds_tiny, tmp_path_factory):
    return _generate(ds_tiny, 5, tmp_path_factory.mktemp("designs"), classes=CLASSES4, random_state=0,
                     swap_backgrounds="all")


def test_all_backgrounds_add_the_centre_class_pairs_and_keep_the_others(sets_all, ds_tiny, tmp_path):
    k = len(CLASSES4)
    counts = sets_all.sets.groupby("setting").size().to_dict()
    assert counts == {"base": k, "mask": k, "same": k, "diff": k * k, "batch": k * k}
    other = _generate(ds_tiny, 5, tmp_path, classes=CLASSES4, random_state=0)
    for key in other.keys():  # the paper's sets are untouched
        a, b = other[key], sets_all[key]
        np.testing.assert_array_equal(a.images, b.images)
        pd.testing.assert_frame_equal(a.table.drop(columns="set"), b.table.drop(columns="set"))
    for c in CLASSES4:
        # diff (c, c) is the same-localization swap of c: the diff swap with b chosen among the pair
        diff, same = sets_all.swap[(c, c)], sets_all.same[c]
        np.testing.assert_array_equal(diff.images, same.images)
        cols = ["centre_index", "centre_strain", "background_index", "background_strain"]
        pd.testing.assert_frame_equal(diff.table[cols], same.table[cols])
        # batch (c, c): the same centre cells on cell-free crops of class c
        free = sets_all.cellfree[(c, c)].table
        assert (free.background_source == "cell_free").all()
        assert (ds_tiny.cell_free.table.localization.iloc[free.background_index] == c).all()
        np.testing.assert_array_equal(free.centre_index, diff.table.centre_index[:len(free)])
    with pytest.raises(KeyError, match="swap_backgrounds='all'"):
        other[("diff", "Golgi", "Golgi")]


def test_two_class_sets_feed_evaluate_triplets_with_every_background(ds_tiny, tmp_path):
    s = _generate(ds_tiny, 5, tmp_path, classes=("Golgi", "spindle pole"), settings=("diff", "batch"),
                  swap_backgrounds="all")
    for setting in ("diff", "batch"):
        feats = {key[1:]: crops.images.reshape(len(crops), -1)[:, ::97] for key, crops in s.items()
                 if key[0] == setting}
        assert set(feats) == {(a, b) for a in ("Golgi", "spindle pole") for b in ("Golgi", "spindle pole")}
        n = min(len(v) for v in feats.values())
        df = evaluate_triplets(feats, SVMProtocol(n_per_class=n, n_splits=min(n, 5)),
                               classes=("Golgi", "spindle pole"), backgrounds="all", progress=False)
        assert df[["Location1", "Location2", "Background"]].values.tolist() == [
            ["Golgi", "spindle pole", "Golgi"], ["Golgi", "spindle pole", "spindle pole"]]
        assert df.Accuracy.between(0, 1).all()


def _stats_features(crops, inside: bool) -> np.ndarray:
    """A trivial extractor: GFP statistics inside (or outside) the pasted centre mask."""
    g = np.asarray(crops.images[:, 0], np.float64)
    masks = np.asarray(crops.masks, bool)
    gy, gx = np.gradient(g, axis=(1, 2))
    edge = np.hypot(gy, gx)
    rows = []
    for x, e, m in zip(g, edge, masks):
        w = m if inside else ~m
        rows.append(np.r_[x[w].mean(), x[w].std(), np.quantile(x[w], [0.1, 0.5, 0.9]), e[w].mean()])
    return np.stack(rows)


def test_other_class_background_design_on_trivial_extractors(ds_small, tmp_path):
    n = 25
    s = _generate(ds_small, n, tmp_path, classes=PAIR, settings=("diff",), swap_backgrounds="all",
                  shared_backgrounds=True)
    assert (s.sets.n == n).all()
    protocol = SVMProtocol(n_per_class=n, scale=True)
    results = {}
    for inside in (True, False):
        feats = {key[1:]: _stats_features(crops, inside) for key, crops in s.items()}
        df = evaluate_triplets(feats, protocol, classes=PAIR, backgrounds="all", progress=False)
        assert df.Background.tolist() == list(PAIR)
        results[inside] = df.Accuracy.to_numpy()
        if not inside:
            # the same background-only extractor separates the classes on their own backgrounds
            own, _ = pairwise_accuracy(feats[(PAIR[0], PAIR[0])], feats[(PAIR[1], PAIR[1])], protocol)
    # the centre carries the class whatever the shared background ...
    assert (results[True] >= 0.75).all(), results
    # ... and on a shared background the background alone carries nothing
    assert (np.abs(results[False] - 0.5) <= 0.15).all(), results
    assert own >= 0.85, own


def test_shared_backgrounds_paste_every_centre_class_on_the_same_crops(ds_tiny, tmp_path):
    s = _generate(ds_tiny, 5, tmp_path, classes=CLASSES4, settings=("diff", "batch"), swap_backgrounds="all",
                  shared_backgrounds=True)
    independent = _generate(ds_tiny, 5, tmp_path, classes=CLASSES4, settings=("diff", "batch"),
                            swap_backgrounds="all")
    for setting in ("diff", "batch"):
        for b in CLASSES4:
            own = s[(setting, b, b)].table
            if setting == "diff":  # (b, b) itself is drawn exactly as without sharing
                pd.testing.assert_frame_equal(own, independent[(setting, b, b)].table)
            tables = [s[(setting, c, b)].table for c in CLASSES4]
            ref = max(tables, key=len)  # sets with fewer centre cells use a prefix of the shared crops
            for t in tables:
                np.testing.assert_array_equal(t.background_index, ref.background_index[:len(t)])
                np.testing.assert_array_equal(t.background_strain, ref.background_strain[:len(t)])
    t = independent.table[independent.table.setting == "diff"]
    assert t.groupby("background_class").background_strain.nunique().max() > 1  # not shared by default
    assert s.meta["shared_backgrounds"] and not independent.meta["shared_backgrounds"]
    assert s.path != independent.path


def test_all_centre_proteins_on_their_own_class_keep_a_background_protein_apart(ds_small, tmp_path):
    s = _generate(ds_small, 12, tmp_path, classes=PAIR, settings=("diff",), swap_backgrounds="all",
                  centre_proteins="all")
    for c in PAIR:
        t = s.swap[(c, c)].table
        assert not set(t.centre_strain) & set(t.background_strain)
        assert (ds_small.crops.table.localization.iloc[t.background_index] == c).all()


@pytest.fixture(scope="module")
def ds_three():
    # three proteins per class (~3 s) for the pooled designs
    cfg = {**TINY, "proteins_per_class": 3, "fields_per_strain": 2}
    return build_dataset(generate_screen(ScreenConfig.from_dict(cfg), progress=False), progress=False)


def test_pooled_same_sets_pool_every_protein_but_the_background_one(ds_three, tmp_path):
    s = _generate(ds_three, 12, tmp_path, classes=CLASSES4[:3], settings=("same", "diff"),
                  centre_proteins="pooled", random_state=2)
    src = ds_three.crops.table
    for c in CLASSES4[:3]:
        t = s.same[c].table
        proteins = set(src[src.valid & (src.kind == "single") & (src.localization == c)].strain)
        assert len(proteins) == 3
        assert t.background_strain.nunique() == 1  # the protein kept back for the backgrounds
        assert not set(t.centre_strain) & set(t.background_strain)
        assert t.centre_strain.nunique() == 2 and set(t.centre_strain) | set(t.background_strain) == proteins
        assert t.centre_index.is_unique and (src.localization.iloc[t.centre_index] == c).all()
    # the swaps pool all three proteins, as with "all"
    t = s.swap[(CLASSES4[0], CLASSES4[1])].table
    assert t.centre_strain.nunique() >= 2
    same_one = _generate(ds_three, 12, tmp_path, classes=CLASSES4[:3], settings=("same",), random_state=2)
    assert (same_one.same[CLASSES4[0]].table.centre_strain.nunique() == 1)
    assert same_one.path != s.path


@pytest.mark.parametrize("centre_proteins", ["one", "pooled"])
def test_base_proteins_same_gives_the_same_swaps_centre_cells_unaltered(ds_three, tmp_path, centre_proteins):
    s = _generate(ds_three, 10, tmp_path, classes=CLASSES4[:3], settings=("base", "mask", "same"),
                  base_proteins="same", centre_proteins=centre_proteins, random_state=4)
    for c in CLASSES4[:3]:
        same, base, mask = s.same[c].table, s.base[c].table, s.mask[c].table
        np.testing.assert_array_equal(base.centre_index, same.centre_index)
        np.testing.assert_array_equal(mask.centre_index, same.centre_index)
        np.testing.assert_array_equal(base.centre_strain, same.centre_strain)
        # unaltered crops: the baseline images are the dataset's crops
        np.testing.assert_array_equal(s.base[c].images, ds_three.crops.images[base.centre_index])
    # generated without the same sets, the baseline crops do not change
    alone = _generate(ds_three, 10, tmp_path, classes=CLASSES4[:3], settings=("base",),
                      base_proteins="same", centre_proteins=centre_proteins, random_state=4)
    for c in CLASSES4[:3]:
        np.testing.assert_array_equal(alone.base[c].table.centre_index, s.base[c].table.centre_index)
    default = _generate(ds_three, 10, tmp_path, classes=CLASSES4[:3], settings=("base",), random_state=4)
    assert default.base[CLASSES4[0]].table.centre_strain.nunique() > 1  # the paper's: all proteins


def _one_golgi_protein(ds):
    """The dataset without one of its two Golgi proteins (a class with a single protein)."""
    from bgrobust.dataset import Dataset

    t = ds.crops.table
    drop = t.strain == t[t.localization == "Golgi"].strain.iloc[0]
    return Dataset(ds.crops.subset(np.flatnonzero(~drop)), ds.cell_free, ds.segmentation_quality, ds.report)


def test_base_proteins_same_needs_two_proteins(ds_tiny, tmp_path):
    one = _one_golgi_protein(ds_tiny)
    with pytest.raises(ValueError, match="base_proteins='same' needs two"):
        generate_settings(one, 5, classes=CLASSES4[:2], settings=("base",), base_proteins="same",
                          progress=False, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="base_proteins must be one of"):
        generate_settings(ds_tiny, 5, classes=CLASSES4[:2], base_proteins="pooled", progress=False,
                          cache_dir=tmp_path)


def test_design_and_swap_arguments_are_checked(ds_tiny, tmp_path):
    kw = dict(classes=CLASSES4[:2], progress=False, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="swap_backgrounds must be one of"):
        generate_settings(ds_tiny, 5, swap_backgrounds="same", **kw)
    with pytest.raises(ValueError, match="swap must be one of"):
        generate_settings(ds_tiny, 5, swap="inpaint", **kw)
    with pytest.raises(ValueError, match="shared_backgrounds must be"):
        generate_settings(ds_tiny, 5, shared_backgrounds="yes", **kw)
    with pytest.raises(ValueError, match="only with swap='clean'"):
        generate_settings(ds_tiny, 5, removal=CentreRemoval(), **kw)
    with pytest.raises(TypeError, match="CentreRemoval"):
        generate_settings(ds_tiny, 5, swap="clean", removal={"dilation": 2}, **kw)
    # a background of the centre's own class needs a second protein of that class
    one = _one_golgi_protein(ds_tiny)
    with pytest.raises(ValueError, match="class 'Golgi' has only"):
        generate_settings(one, 5, classes=CLASSES4[:2], settings=("diff",), swap_backgrounds="all",
                          progress=False, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"diff \('Golgi', 'Golgi'\) needs two"):
        generate_settings(one, 5, classes=CLASSES4[:2], settings=("diff",), swap_backgrounds="all",
                          centre_proteins="all", progress=False, cache_dir=tmp_path)


# -- the clean swap ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def paper_and_clean(ds_tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("swaps")
    kw = dict(classes=CLASSES4[:3], random_state=0, swap_backgrounds="all")
    return _generate(ds_tiny, 5, path, **kw), _generate(ds_tiny, 5, path, swap="clean", **kw)


def test_clean_swap_invariants(paper_and_clean, ds_tiny):
    paper, clean = paper_and_clean
    assert clean.meta["swap"] == "clean" and clean.meta["removal"] == CentreRemoval().to_dict()
    pd.testing.assert_frame_equal(paper.table, clean.table)  # the same crops, only the pixels differ
    stats = protein_stats(ds_tiny.crops)
    dilation = CentreRemoval().dilation
    checked = 0
    for key in paper.keys():
        a, b = paper[key], clean[key]
        if key[0] not in ("same", "diff"):  # base, mask and the cell-free sets are not composites on cells
            np.testing.assert_array_equal(a.images, b.images)
            continue
        t = b.table
        for i in range(len(b)):
            m = b.masks[i]
            # centre pixels of the pasted cell unchanged
            np.testing.assert_array_equal(b.images[i][:, m], a.images[i][:, m])
            donor = np.asarray(ds_tiny.crops.masks[t.background_index[i]], bool)
            grown = donor.copy()
            for _ in range(dilation):
                grown[1:] |= grown[:-1].copy(); grown[:-1] |= grown[1:].copy()
                grown[:, 1:] |= grown[:, :-1].copy(); grown[:, :-1] |= grown[:, 1:].copy()
            away = ~grown & ~m
            # the background away from the donor's centre cell unchanged
            np.testing.assert_array_equal(b.images[i][:, away], a.images[i][:, away])
            # the donor's centre cell gone: every pixel of it outside the pasted mask is a background pixel
            # of the donor, drawn from outside its grown mask
            gone = grown & ~m
            back = standardize(ds_tiny.crops.images[t.background_index[i]], *stats_for(stats, t.background_strain[i]))
            pool = {tuple(v) for v in back[:, ~grown].T.tolist()}
            assert all(tuple(v) in pool for v in b.images[i][:, gone].T.tolist())
            visible = donor & ~m
            if visible.sum() >= 20:
                # ... and dimmer than the donor cell was (GFP), so it no longer shows
                assert b.images[i][0][visible].mean() < a.images[i][0][visible].mean()
                checked += 1
    assert checked >= 5


def test_clean_swap_is_keyed_and_deterministic(paper_and_clean, ds_tiny, tmp_path):
    paper, clean = paper_and_clean
    assert clean.path != paper.path
    kw = dict(classes=CLASSES4[:3], random_state=0, swap_backgrounds="all", swap="clean")
    again = _generate(ds_tiny, 5, tmp_path, **kw)
    np.testing.assert_array_equal(again.images, clean.images)
    wider = _generate(ds_tiny, 5, tmp_path, removal=CentreRemoval(dilation=4), **kw)
    assert wider.path.name != again.path.name and wider.meta["removal"]["dilation"] == 4
    assert not np.array_equal(wider.images, again.images)


def test_compositing_artefacts_of_both_variants(paper_and_clean, ds_tiny):
    paper, clean = paper_and_clean
    a, b = (compositing_artefacts(s, ds_tiny) for s in paper_and_clean)
    assert len(a) == len(b) == 3 + 9 and set(a.setting) == {"same", "diff"}
    assert (a.swap == "paper").all() and (b.swap == "clean").all() and (a.donors == "random").all()
    # where the donor cell was is the same for both ...
    np.testing.assert_allclose(a.donor_visible, b.donor_visible)
    assert a.donor_visible.between(0, 1).all() and (a.donor_visible > 0).any()
    # ... but only the paper's compositing leaves it brighter than the rest of the background
    assert (a.donor_level > b.donor_level).mean() >= 0.9
    assert (a.seam > 0).all() and (a.seam_source > 0).all()
    np.testing.assert_allclose(a.seam_source, b.seam_source)  # the same centre cells in their own crops
    one = compositing_artefacts(paper, ds_tiny, settings=("diff",), max_crops=2)
    assert set(one.setting) == {"diff"} and (one.n <= 2).all()
    with pytest.raises(ValueError, match="settings must be among"):
        compositing_artefacts(paper, ds_tiny, settings=("batch",))
    with pytest.raises(ValueError, match="channel must be one of"):
        compositing_artefacts(paper, ds_tiny, channel="rfp")
    with pytest.raises(ValueError, match="compositing_artefacts: max_crops must be an integer >= 1"):
        compositing_artefacts(paper, ds_tiny, max_crops=0)


# -- the image operations ------------------------------------------------------------------

def _cell_crop(rng, size=32):
    yy, xx = np.mgrid[:size, :size]
    cell = np.hypot(yy - size / 2, xx - size / 2) < 6
    neighbour = np.hypot(yy - 5, xx - 5) < 4
    img = rng.normal(10, 1, (2, size, size))
    img[0][cell] += 50
    img[0][neighbour] += 30
    img[1][cell] += 5
    return img, cell, neighbour


def test_remove_centre_cell_fills_from_the_dimmest_background_pixels():
    rng = np.random.default_rng(0)
    img, cell, neighbour = _cell_crop(rng)
    out, removed = remove_centre_cell(img, cell, np.random.default_rng(1), CentreRemoval(dilation=1))
    assert removed.sum() > cell.sum() and (removed | ~cell).all()
    np.testing.assert_array_equal(out[:, ~removed], img[:, ~removed])
    # the fill has the background's level and noise: no cell left, not the neighbour's brightness
    assert abs(out[0][removed].mean() - 10) < 1 and out[0][removed].max() < 20
    assert 0.3 < out[0][removed].std() < 1.5
    # every fill pixel is one of the crop's own pixel vectors from outside the grown mask
    pool = {tuple(v) for v in img[:, ~removed].T.tolist()}
    assert all(tuple(v) in pool for v in out[:, removed].T.tolist())
    # reproducible with the same generator seed, empty masks change nothing
    again, _ = remove_centre_cell(img, cell, np.random.default_rng(1), CentreRemoval(dilation=1))
    np.testing.assert_array_equal(again, out)
    same, none = remove_centre_cell(img, np.zeros_like(cell), rng)
    np.testing.assert_array_equal(same, img)
    assert not none.any()
    batch, masks = remove_centre_cells(img[None], cell[None], np.random.default_rng(1), CentreRemoval(dilation=1))
    np.testing.assert_array_equal(batch[0], out)


def test_remove_centre_cell_checks_its_input():
    img = np.zeros((1, 8, 8))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="one \\(C, H, W\\) crop"):
        remove_centre_cell(img[0], img[0] > 0, rng)
    with pytest.raises(ValueError, match="boolean"):
        remove_centre_cell(img, np.zeros((8, 8), int), rng)
    with pytest.raises(ValueError, match="min_background"):
        full = np.ones((8, 8), bool)
        remove_centre_cell(img, full, rng)
    with pytest.raises(TypeError, match="CentreRemoval"):
        remove_centre_cell(img, img[0] > 0, rng, {"dilation": 1})
    with pytest.raises(ParameterError, match="CentreRemoval.dilation must be an integer in \\[0, 32\\]"):
        CentreRemoval(dilation=-1)
    with pytest.raises(ParameterError, match="background_fraction"):
        CentreRemoval(background_fraction=1.5)
    with pytest.raises(ValueError, match="remove_centre_cells"):
        remove_centre_cells(img, np.zeros((2, 8, 8), bool), rng)


def test_seam_contrast_sees_a_pasted_step_and_not_a_seamless_paste():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    mask = (np.hypot(yy - 16, xx - 16) < 7)[None]
    smooth = rng.normal(0, 1, (1, 1, 32, 32))
    seamless = seam_contrast(smooth, mask)[0, 0]
    assert 0.7 < seamless < 1.3
    pasted = smooth.copy()
    pasted[0, 0][mask[0]] += 5
    assert seam_contrast(pasted, mask)[0, 0] > 3
    assert np.isnan(seam_contrast(smooth, np.zeros_like(mask))).all()
    with pytest.raises(ValueError, match="seam_contrast"):
        seam_contrast(smooth[0], mask)


def test_donor_residue_counts_the_uncovered_donor_cell():
    img, cell, _ = _cell_crop(np.random.default_rng(0))
    pasted = np.roll(cell, 4, axis=1)
    out = donor_residue(img[None], pasted[None], cell[None])
    visible = cell & ~pasted
    assert out.visible_pixels[0] == visible.sum()
    assert out.visible_fraction[0] == pytest.approx(visible.sum() / cell.sum())
    assert out.level_c0[0] > 40  # the donor cell's 50 above a background of 10 (with the neighbour)
    covered = donor_residue(img[None], cell[None], cell[None])
    assert covered.visible_pixels[0] == 0 and np.isnan(covered.level_c0[0])
    with pytest.raises(ValueError, match="donor_residue"):
        donor_residue(img[None], pasted, cell[None])


def test_covered_donors_hide_more_of_the_donor_cell(ds_small, tmp_path):
    from bgrobust.imageops import donor_coverage
    kw = dict(classes=PAIR, settings=("same", "diff"), swap_backgrounds="all", random_state=0)
    random = _generate(ds_small, 12, tmp_path, **kw)
    covered = _generate(ds_small, 12, tmp_path, donors="covered", **kw)
    assert covered.path != random.path and covered.meta["donors"] == "covered"
    masks = ds_small.crops.masks
    for key in random.keys():
        a, b = random[key].table, covered[key].table
        # the same centre cells and background protein, other crops of that protein
        np.testing.assert_array_equal(a.centre_index, b.centre_index)
        assert (a.background_strain == b.background_strain).all() and b.background_index.is_unique
        pool = set(np.flatnonzero((ds_small.crops.table.strain == b.background_strain[0])
                                  & ds_small.crops.table.valid))
        assert set(b.background_index) <= pool

        def cover(t):
            c = donor_coverage(np.asarray(masks[t.centre_index]), np.asarray(masks[t.background_index]))
            return np.diag(c).mean()
        assert cover(b) >= cover(a)
    r, c = (compositing_artefacts(s, ds_small) for s in (random, covered))
    assert c.donor_visible.mean() < r.donor_visible.mean()
    with pytest.raises(ValueError, match="cannot be combined with shared_backgrounds"):
        generate_settings(ds_small, 5, classes=PAIR, donors="covered", shared_backgrounds=True,
                          progress=False, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="donors must be one of"):
        generate_settings(ds_small, 5, classes=PAIR, donors="best", progress=False, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="donor_coverage"):
        donor_coverage(np.zeros((1, 4, 4), bool), np.zeros((1, 5, 5), bool))
