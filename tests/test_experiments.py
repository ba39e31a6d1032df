"""The experiment runner (bgrobust.experiments), the extractor protocol and the stages the chapters share."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bgrobust.classify import SVMProtocol, pairwise_accuracy, pairwise_predictions
from bgrobust.experiments import ExperimentResults, drop_table, run_experiments, setting_crop_ids, setting_features
from bgrobust.extractors import CallableFeatures, PrecomputedFeatures, as_extractor
from bgrobust.layers import balanced_crops
from bgrobust.screen import neighbour_mismatch
from bgrobust.train import split_training
from bgrobust.vocabulary import CLASSES


def test_split_training_common_and_own_keys():
    t = {"width": 0.25, "epochs": 2, "pci": {"epochs": 1, "lr": 1e-3}}
    assert split_training(t, "pci") == {"width": 0.25, "epochs": 1, "lr": 1e-3}
    assert split_training(t, "pifia") == {"width": 0.25, "epochs": 2}
    assert split_training(None, "deeploc") == {}
    with pytest.raises(TypeError, match="training.pci"):
        split_training({"pci": 3}, "pci")


def _features(rng, classes, n=12, d=4, shift=3.0):
    """Separable features per (setting, centre, background): the centre's class moves dim 0."""
    feats = {}
    for k, c in enumerate(classes):
        for setting in ("base", "mask", "same"):
            feats[(setting, c, c)] = rng.normal(size=(n, d)) + [shift * k, 0, 0, 0]
        for b in classes:
            if b != c:
                for setting in ("diff", "batch"):
                    feats[(setting, c, b)] = rng.normal(size=(n, d)) + [shift * k, 0, 0, 0]
    return feats


def _sets_from(feats):
    """A SettingSets-like object whose crops *are* the features (pixel [0, 0, j] = feature j), plus the
    extractor that reads them back, so the runner sees exactly ``feats``."""
    keys = list(feats)
    n = [len(feats[k]) for k in keys]
    d = max(x.shape[1] for x in feats.values() if len(x))
    stops = np.cumsum(n)
    images = np.zeros((int(stops[-1]), 1, 1, d), np.float32)
    for k, stop, m in zip(keys, stops, n):
        images[stop - m:stop, 0, 0] = feats[k][:, :d] if m else images[stop - m:stop, 0, 0]
    sets = pd.DataFrame({"setting": [k[0] for k in keys], "centre_class": [k[1] for k in keys],
                         "background_class": [k[2] for k in keys], "start": stops - n, "stop": stops, "n": n,
                         "set": range(len(keys))})
    table = pd.DataFrame({"set": np.repeat(sets.set, n), "setting": np.repeat(sets.setting, n),
                          "centre_class": np.repeat(sets.centre_class, n),
                          "background_class": np.repeat(sets.background_class, n)}).reset_index(drop=True)
    return SimpleNamespace(images=images, masks=np.ones((len(images), 1, d), bool), sets=sets, table=table,
                           meta={"channels": ["gfp"]})


def read_back(x):
    return x[:, 0, 0, :]


def test_run_experiments_layout_and_values_match_direct_calls():
    rng = np.random.default_rng(0)
    classes = CLASSES[:4]
    feats = _features(rng, classes)
    proto = SVMProtocol(n_per_class=12, n_splits=3)
    out = run_experiments(_sets_from(feats), {"m": read_back}, proto, progress=False)
    assert isinstance(out, ExperimentResults) and out.names == ["m"] and out.classes == list(classes)
    res = out["m"]
    assert set(res) == {"base", "mask", "same", "diff", "batch"}
    assert len(res["base"]) == 6 and list(res["base"].columns) == ["Location1", "Location2", "Accuracy", "StdDev"]
    assert len(res["diff"]) == 6 * 2                          # each pair x the 2 other backgrounds
    row = res["diff"].iloc[0]
    direct = pairwise_accuracy(feats[("diff", row.Location1, row.Background)],
                               feats[("diff", row.Location2, row.Background)], proto)
    assert row.Accuracy == pytest.approx(direct[0])


def test_run_experiments_skips_empty_cellfree_sets():
    rng = np.random.default_rng(1)
    classes = CLASSES[:4]
    feats = _features(rng, classes)
    for c in classes:                                          # no cell-free crops of class 0
        if c != classes[0]:
            feats[("batch", c, classes[0])] = np.zeros((0, 4))
    res = run_experiments(_sets_from(feats), {"m": read_back}, SVMProtocol(n_per_class=12, n_splits=3),
                          classes=classes, experiments=("batch",), progress=False)["m"]
    assert classes[0] not in set(res["batch"].Background)
    assert len(res["batch"]) == 6 * 2 - 3                     # the 3 pairs that used background 0


def test_run_experiments_missing_class_is_named():
    rng = np.random.default_rng(2)
    classes = CLASSES[:3]
    feats = _features(rng, classes)
    del feats[("base", classes[1], classes[1])]
    feats[("base", classes[1], classes[1])] = np.zeros((0, 4))
    with pytest.raises(ValueError, match=classes[1]):
        run_experiments(_sets_from(feats), {"m": read_back}, SVMProtocol(n_per_class=12, n_splits=3),
                        classes=classes, experiments=("base",), progress=False)


def test_a_setting_the_sets_lack_is_skipped_and_named():
    rng = np.random.default_rng(5)
    classes = CLASSES[:3]
    feats = {k: v for k, v in _features(rng, classes).items() if k[0] != "batch"}
    out = run_experiments(_sets_from(feats), read_back, SVMProtocol(n_per_class=12, n_splits=3), progress=False)
    assert "batch" not in out[out.names[0]] and "batch" in out.skipped
    with pytest.raises(ValueError, match="unknown experiment"):
        run_experiments(_sets_from(feats), read_back, experiments=("nope",), progress=False)


def test_precomputed_features_give_the_same_results_as_the_callable():
    rng = np.random.default_rng(6)
    classes = CLASSES[:3]
    sets = _sets_from(_features(rng, classes))
    proto = SVMProtocol(n_per_class=12, n_splits=3)
    direct = run_experiments(sets, {"m": read_back}, proto, progress=False)["m"]
    ids = setting_crop_ids(sets)
    assert len(set(ids)) == len(ids) == len(sets.images)
    frame = pd.DataFrame(read_back(sets.images)).add_prefix("f").assign(crop_id=ids).sample(frac=1, random_state=0)
    pre = run_experiments(sets, {"m": frame}, proto, progress=False)["m"]
    for exp in direct:
        pd.testing.assert_frame_equal(direct[exp], pre[exp])
    with pytest.raises(ValueError, match="no features for"):
        run_experiments(sets, PrecomputedFeatures(read_back(sets.images)[:5], ids[:5]), proto, progress=False)


def test_pairwise_predictions_agree_with_accuracy():
    rng = np.random.default_rng(3)
    X1, X2 = rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + [1.0, 0, 0]
    proto = SVMProtocol(n_per_class=30, n_splits=5)
    pred = pairwise_predictions(X1, X2, proto)
    y = np.r_[np.zeros(30), np.ones(30)]
    assert np.mean(pred == y) == pytest.approx(pairwise_accuracy(X1, X2, proto)[0])


def test_setting_features_splits_rows_back_into_sets():
    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) * np.ones((10, 3, 64, 64), np.float32)
    sets = SimpleNamespace(images=images, masks=np.ones((10, 64, 64), bool), meta={}, sets=pd.DataFrame(
        {"setting": ["base", "diff"], "centre_class": ["actin", "actin"], "background_class": ["actin", "ER"],
         "start": [0, 4], "stop": [4, 10]}))
    feats = setting_features(sets, lambda x: x[:, 0, :1, 0], batch_size=3, progress=False)
    assert feats[("base", "actin", "actin")].ravel().tolist() == [0, 1, 2, 3]
    assert feats[("diff", "actin", "ER")].ravel().tolist() == [4, 5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="one feature vector per crop"):
        setting_features(sets, lambda x: x[:2, 0, 0, 0], progress=False)
    masked = CallableFeatures(lambda x, m: m.reshape(len(m), -1)[:, :1], needs_masks=True)
    with pytest.raises(ValueError, match="needs the centre-cell masks"):
        masked(images)


def test_as_extractor_dispatch():
    import torch
    from bgrobust import models
    from bgrobust.extractors import ModelFeatures, ModuleFeatures

    assert isinstance(as_extractor(models.build("pifia", width=0.125, random_state=0)), ModelFeatures)
    assert isinstance(as_extractor(torch.nn.Conv2d(3, 2, 3)), ModuleFeatures)
    assert isinstance(as_extractor(lambda x: x), CallableFeatures)
    with pytest.raises(TypeError, match="feature extractor"):
        as_extractor(3)
    with pytest.raises(ValueError, match=".parquet or .h5ad"):
        as_extractor("features.csv")


def test_balanced_crops_and_neighbour_mismatch(small_dataset):
    screen, ds = small_dataset
    crops, report = balanced_crops(ds, proteins_per_class=2, cells_per_protein=3, random_state=0)
    assert list(report["class"]) == list(CLASSES)
    assert (report.crops <= 6).all() and (report.proteins <= 2).all()
    assert crops.table.kind.eq("single").all() and crops.table.valid.all()
    again, _ = balanced_crops(ds, proteins_per_class=2, cells_per_protein=3, random_state=0)
    assert again.table.equals(crops.table)
    with pytest.raises(ValueError, match=">= 1"):
        balanced_crops(ds, proteins_per_class=0)

    table = ds.crops.table
    m = neighbour_mismatch(screen, table)
    assert m.shape == (len(table),)
    ok = ~np.isnan(m)
    assert ok.any() and ((m[ok] >= 0) & (m[ok] <= 1)).all()
    single = table.kind.eq("single").to_numpy() & ok
    assert (m[single] == 0).all()          # a single-localized protein's neighbours share its class


@pytest.fixture(scope="module")
def small_dataset():
    from bgrobust.dataset import load_or_build, open_screen
    screen = open_screen("synthetic", {"seed": 0, "proteins_per_class": 2, "n_multi": 3, "fields_per_strain": 1,
                                       "field_shape": [192, 192], "n_plates": 2}, progress=False)
    return screen, load_or_build(screen, progress=False)


def test_drop_table_shares_only_where_the_reference_has_a_drop():
    rng = np.random.default_rng(4)
    from test_claims import _results
    res = {"model": _results(0.10, rng), "remedy": _results(0.04, rng),
           "flat": _results(0.0, rng), "flat remedy": _results(0.02, rng)}
    t = drop_table(res, {"remedy": "model", "flat remedy": "flat"}).set_index("extractor")
    assert t.loc["remedy", "drop_removed"] == pytest.approx(0.6, abs=0.05)
    assert np.isnan(t.loc["flat remedy", "drop_removed"])
    assert t.loc["remedy", "baseline_cost"] == pytest.approx(t.loc["model", "base"] - t.loc["remedy", "base"])
    assert {"base", "base_3se", "drop", "drop_low", "drop_high"} <= set(t.columns)
