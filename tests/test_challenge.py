"""The backgrounds challenge (bgrobust.challenge) on extractors whose answers are known.

The crops are tiny and synthetic: every class draws bright pixels at its own positions of a
16 x 16 grid, inside the centre cell and outside it alike, so a descriptor that reads only the
centre cell's pixels knows the class from the cell, and one that reads only the pixels outside
it knows the class from the background.
"""
import numpy as np
import pandas as pd
import pytest

from bgrobust.challenge import (CHANCE, ChallengeParams, challenge_panel, run_challenge,
                                worst_background_classes)
from bgrobust.classify import SVMProtocol, pairwise_fit_predict
from bgrobust.constraints import ParameterError
from bgrobust.dataset import from_crops
from bgrobust.experiments import setting_crop_ids, setting_features
from bgrobust.extractors import CallableFeatures, PrecomputedFeatures
from bgrobust.imageops import CentreRemoval
from bgrobust.vocabulary import CLASSES

S = 16
CLASS_SET = [CLASSES[i] for i in (0, 5, 7, 14)]   # four classes: six pairs
PARAMS = ChallengeParams(n_train=10, n_test=4, budget=2, n_worst=2)


def _disc():
    yy, xx = np.mgrid[:S, :S]
    return (yy - S // 2) ** 2 + (xx - S // 2) ** 2 <= 16


def _dataset(per_protein=12, proteins=2, seed=0):
    """Class k lights the pixels with (3 y + 5 x) mod 4 == k, in the centre cell and outside it."""
    rng = np.random.default_rng(seed)
    disc = _disc()
    yy, xx = np.mgrid[:S, :S]
    images, strains, labels = [], [], []
    for k, c in enumerate(CLASS_SET):
        pattern = ((3 * yy + 5 * xx) % len(CLASS_SET) == k).astype(float)
        for p in range(proteins):
            for _ in range(per_protein):
                gfp = rng.normal(0, 0.15, (S, S)) + pattern * rng.uniform(0.8, 1.2)
                marker = disc * 1.0 + rng.normal(0, 0.05, (S, S))
                images.append(np.stack([gfp, marker]))
                strains.append(f"{c}-{p}")
                labels.append(c)
    n = len(images)
    return from_crops(np.asarray(images, np.float32), strains, labels, np.repeat(disc[None], n, 0), progress=False)


def centre_only(x, m):
    """Features from the GFP pixels inside the centre mask only."""
    return (x[:, 0] * m).reshape(len(x), -1)


def background_only(x, m):
    """Features from the GFP pixels outside the centre mask only."""
    return (x[:, 0] * ~m).reshape(len(x), -1)


EXTRACTORS = {"centre": CallableFeatures(centre_only, needs_masks=True, name="centre"),
              "background": CallableFeatures(background_only, needs_masks=True, name="background")}


@pytest.fixture(scope="module")
def ds():
    return _dataset()


@pytest.fixture(scope="module")
def panel(ds):
    return challenge_panel(ds, PARAMS, random_state=0)


@pytest.fixture(scope="module")
def res(panel):
    return run_challenge(panel, EXTRACTORS, progress=False)


# --------------------------------------------------------------------------- the panel
def test_panel_sets_and_pixels(panel, ds):
    t, k = panel.table, PARAMS.budget
    assert set(panel.sets["setting"]) == {"base", "bg_only", "train", "own", "swap"}
    swap = panel.sets[panel.sets.setting.eq("swap")]
    assert len(swap) == len(CLASS_SET) ** 2 and set(swap["n"]) == {PARAMS.n_test * k}
    # training, test and donor crops of a class are distinct
    for c in CLASS_SET:
        train = set(t.loc[t.setting.eq("train") & t.centre_class.eq(c), "centre_index"])
        test = set(t.loc[t.setting.eq("own") & t.centre_class.eq(c), "centre_index"])
        donors = set(t.loc[t.setting.eq("swap") & t.background_class.eq(c), "background_index"])
        assert len(donors) == k and not (train & test) and not (train & donors) and not (test & donors)
    # a swapped crop: the own crop's centre pixels, the donor's standardised pixels elsewhere
    own = panel.images[t.index[t.setting.eq("own")][0]]
    row = t[t.setting.eq("swap") & t.cell.eq(0)].iloc[0]
    crop, mask = panel.images[row.name], panel.masks[row.name]
    assert np.array_equal(crop[:, mask], own[:, mask])
    donor = t[t.setting.eq("swap") & t.background_index.eq(row.background_index)].iloc[0]
    assert np.array_equal(crop[:, ~mask], panel.images[donor.name][:, ~mask])
    # background only: the raw crop, with the (grown) centre cell replaced
    base = panel.images[t.index[t.setting.eq("base")][0]]
    removed = panel.images[t.index[t.setting.eq("bg_only")][0]]
    assert np.array_equal(base, ds.crops.images[t[t.setting.eq("base")].iloc[0].centre_index])
    assert not np.array_equal(base[:, panel.masks[0]], removed[:, panel.masks[0]])
    far = np.zeros((S, S), bool); far[0, 0] = True   # a corner pixel, far from the grown mask
    assert np.array_equal(base[:, far], removed[:, far])


def test_clean_swap_erases_the_donor_cell_and_changes_nothing_else(ds, panel):
    clean = challenge_panel(ds, ChallengeParams(**{**PARAMS.__dict__, "swap": "clean"}), random_state=0)
    t = panel.table
    rows = t.index[t.setting.eq("swap")]
    assert clean.table.equals(t)
    paper_px, clean_px = panel.images[rows], clean.images[rows]
    grown = np.zeros((S, S), bool)
    grown[np.nonzero(_disc())] = True
    from scipy import ndimage as ndi
    grown = ndi.binary_dilation(grown, np.ones((3, 3), bool), iterations=2)
    changed = (paper_px != clean_px).any(axis=(0, 1))
    assert changed.any() and not changed[~grown].any() and not changed[_disc()].any()
    others = t.index[~t.setting.eq("swap")]
    assert np.array_equal(panel.images[others], clean.images[others])
    with pytest.raises(ParameterError, match="ChallengeParams.swap must be"):
        ChallengeParams(swap="tidy")


def test_panel_is_deterministic_and_seeded(ds, panel):
    again = challenge_panel(ds, PARAMS, random_state=0)
    other = challenge_panel(ds, PARAMS, random_state=1)
    assert np.array_equal(again.images, panel.images) and again.table.equals(panel.table)
    assert not np.array_equal(other.table["centre_index"], panel.table["centre_index"])


# --------------------------------------------------------------------------- known answers
def test_centre_only_descriptor_background_only_at_chance_and_never_flips(res):
    bg = res.background_only_summary().set_index("extractor").loc["centre"]
    assert abs(bg["bg_only"] - CHANCE) < 0.12 and not bg["above_chance"]
    assert bg["base"] > 0.95
    flips = res.flips_per_cell()
    mine = flips[flips.extractor.eq("centre")]
    assert (mine["n_flips"] == 0).all() and mine["stable"].all() and (mine["flip_rate_same"] == 0).all()
    assert np.allclose(mine["shift"], 0, atol=1e-6) and (mine["relative_shift"] < 1e-5).all()
    worst = res.worst_case()
    w = worst[worst.extractor.eq("centre")]
    assert np.allclose(w["worst_donor_accuracy"], w["own"]) and np.allclose(w["worst_class_accuracy"], w["own"])


def test_background_only_descriptor_flips_whenever_the_background_class_changes(res):
    bg = res.background_only_summary().set_index("extractor").loc["background"]
    assert bg["bg_only"] > 0.95 and bg["above_chance"]
    cells = res.cells[res.cells.extractor.eq("background")]
    changed = cells["donor_class"] != cells["class"]
    assert cells.loc[changed, "flip"].all() and cells.loc[changed, "to_background"].all()
    assert not cells.loc[~changed, "flip"].any()         # a donor of its own class changes nothing
    per = res.flip_summary().set_index(["extractor", "class"]).loc["background"]
    assert (per["flip_rate"] == 1).all() and (per["stable"] == 0).all() and (per["relative_shift"] > 1).all()
    w = res.worst_case().query("extractor == 'background'")
    assert (w["own"] == 1).all() and (w["worst_donor_accuracy"] <= CHANCE).all()
    assert (w["worst_class_accuracy"] <= CHANCE).all()


def test_most_damaging_donors_and_summary(res):
    top = res.most_damaging()
    assert len(top) == len(EXTRACTORS) * len(CLASS_SET) * PARAMS.n_worst
    assert list(top["rank"].iloc[:PARAMS.n_worst]) == list(range(1, PARAMS.n_worst + 1))
    b = top[top.extractor.eq("background")]
    assert (b["donor_class"] != b["class"]).all() and (b["Accuracy"] < b["own"]).all() and (b["own"] == 1).all()
    assert top.groupby(["extractor", "class"])["Accuracy"].apply(lambda s: s.is_monotonic_increasing).all()
    s = res.summary().set_index("extractor")
    assert list(s.index) == ["centre", "background"]
    assert s.loc["centre", "flip_rate"] == 0 and s.loc["background", "flip_rate"] == 1


def test_precomputed_features_give_the_same_challenge(panel, res):
    feats = setting_features(panel, EXTRACTORS["centre"], progress=False)
    ids = setting_crop_ids(panel)
    rows = np.concatenate([feats[(r.setting, r.centre_class, r.background_class)] for r in panel.sets.itertuples()])
    again = run_challenge(panel, {"centre": PrecomputedFeatures(rows, ids)}, progress=False)
    pd.testing.assert_frame_equal(again.summary(), res.summary().iloc[:1])


def test_pairwise_fit_predict_checks_shapes():
    x = np.zeros((6, 2)); x[3:] += 5
    with pytest.raises(ValueError, match="same number of features"):
        pairwise_fit_predict(x[:3], x[3:], np.zeros((2, 3)), SVMProtocol(n_per_class=3, n_splits=2))


def test_worst_background_classes_of_a_diff_table():
    d = pd.DataFrame({"Location1": ["actin"] * 3, "Location2": ["ER"] * 3,
                      "Background": ["actin", "Golgi", "nucleus"], "Accuracy": [0.1, 0.7, 0.8], "StdDev": 0.0})
    out = worst_background_classes(d)   # the pair's own background is left out
    assert out.loc[0, "worst_class"] == "Golgi" and out.loc[0, "mean"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="Background"):
        worst_background_classes(d.drop(columns="Background"))


# --------------------------------------------------------------------------- the BG-gap line
def test_bg_gap_line_of_robustness_report(ds, tmp_path):
    from bgrobust.robustness import robustness_report
    from bgrobust.settings import generate_settings

    sets = generate_settings(ds, 10, classes=CLASS_SET, settings=("same", "diff"), progress=False,
                             cache_dir=tmp_path)
    reports = {n: robustness_report(e, sets=sets, classes=CLASS_SET, progress=False) for n, e in EXTRACTORS.items()}
    gap_bg, gap_centre = reports["background"].bg_gap, reports["centre"].bg_gap
    assert gap_bg["gap"] > 0.3 and gap_bg["low"] > 0 and gap_bg["share"] > 0.6
    assert abs(gap_centre["gap"]) < 0.05 and abs(gap_centre["share"]) < 0.1
    assert gap_bg["gap"] == pytest.approx(reports["background"].drop["mean"])
    assert gap_bg["share"] == pytest.approx(gap_bg["gap"] / (gap_bg["same"] - 0.5))
    line = reports["background"].summary
    assert "\n" not in line and "BG-gap" in line and "headroom" in line and "reads the background" in line


# --------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("field, value", [("n_train", 1), ("n_test", 0), ("budget", 0), ("n_worst", 0),
                                          ("standardize", "yes"), ("removal", {"dilation": 2})])
def test_bad_parameters_name_the_field(field, value):
    with pytest.raises(ParameterError, match=f"ChallengeParams.{field} must be"):
        ChallengeParams(**{field: value})


def test_bad_inputs_give_clear_errors(ds, panel):
    with pytest.raises(ParameterError, match="unknown key"):
        ChallengeParams.from_dict({"n_cells": 3})
    assert ChallengeParams.from_dict({"removal": {"dilation": 1}}).removal == CentreRemoval(dilation=1)
    with pytest.raises(ParameterError, match="class 'actin' has 24 valid .* needs n_train \\+ n_test \\+ budget = 30"):
        challenge_panel(ds, ChallengeParams(n_train=20, n_test=8, budget=2))
    with pytest.raises(ValueError, match="unknown localization class"):
        challenge_panel(ds, PARAMS, classes=["actin", "nucleous"])
    with pytest.raises(ParameterError, match="at least 2 classes"):
        challenge_panel(ds, PARAMS, classes=["actin"])
    with pytest.raises(ParameterError, match="random_state"):
        challenge_panel(ds, PARAMS, random_state=-1)
    with pytest.raises(ParameterError, match="challenge_panel"):
        run_challenge(ds.crops, EXTRACTORS)
    with pytest.raises(ParameterError, match="no extractors"):
        run_challenge(panel, {})
    with pytest.raises(ParameterError, match="protocol"):
        run_challenge(panel, EXTRACTORS, protocol={"C": 1})


def test_challenge_figures_draw_every_extractor_and_class(res, ds):
    from bgrobust import plots

    top = res.most_damaging()
    fig = plots.damaging_backgrounds(ds.crops.images, top[top.extractor.eq("background")])
    assert len(fig.axes) == len(CLASS_SET) * PARAMS.n_worst
    assert len(plots.flip_distribution(res.flips_per_cell()).axes) == len(EXTRACTORS)
    heat = plots.class_heatmap(res.background_only(), "bg_only", label="accuracy")
    assert [t.get_text() for t in heat.axes[0].get_yticklabels()] == list(EXTRACTORS)
    cols = {"own": "own", "worst_donor_accuracy": "worst donor"}
    assert len(plots.worst_case_points(res.worst_summary(), cols).axes[0].get_yticklabels()) == len(EXTRACTORS)
