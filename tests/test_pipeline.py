"""The book's pipeline stages (bgrobust.pipeline) on tiny inputs."""
import numpy as np
import pandas as pd
import pytest

from bgrobust import pipeline
from bgrobust.vocabulary import CLASSES
from bgrobust.classify import SVMProtocol, evaluate_pairs, pairwise_accuracy, pairwise_predictions


def test_split_training_common_and_own_keys():
    t = {"width": 0.25, "epochs": 2, "pci": {"epochs": 1, "lr": 1e-3}}
    assert pipeline.split_training(t, "pci") == {"width": 0.25, "epochs": 1, "lr": 1e-3}
    assert pipeline.split_training(t, "pifia") == {"width": 0.25, "epochs": 2}
    assert pipeline.split_training(None, "deeploc") == {}
    with pytest.raises(TypeError, match="training.pci"):
        pipeline.split_training({"pci": 3}, "pci")


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


def test_run_experiments_layout_and_values_match_direct_calls():
    rng = np.random.default_rng(0)
    classes = CLASSES[:4]
    feats = _features(rng, classes)
    proto = SVMProtocol(n_per_class=12, n_splits=3)
    res = pipeline.run_experiments(feats, proto, classes=classes, progress=False)
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
    res = pipeline.run_experiments(feats, SVMProtocol(n_per_class=12, n_splits=3), classes=classes,
                                   experiments=("batch",), progress=False)
    assert classes[0] not in set(res["batch"].Background)
    assert len(res["batch"]) == 6 * 2 - 3                     # the 3 pairs that used background 0


def test_run_experiments_missing_class_is_named():
    rng = np.random.default_rng(2)
    classes = CLASSES[:3]
    feats = _features(rng, classes)
    del feats[("base", classes[1], classes[1])]
    with pytest.raises(ValueError, match=classes[1]):
        pipeline.run_experiments(feats, SVMProtocol(n_per_class=12, n_splits=3), classes=classes,
                                 experiments=("base",), progress=False)


def test_pairwise_predictions_agree_with_accuracy():
    rng = np.random.default_rng(3)
    X1, X2 = rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + [1.0, 0, 0]
    proto = SVMProtocol(n_per_class=30, n_splits=5)
    pred = pairwise_predictions(X1, X2, proto)
    y = np.r_[np.zeros(30), np.ones(30)]
    assert np.mean(pred == y) == pytest.approx(pairwise_accuracy(X1, X2, proto)[0])


def test_setting_features_splits_rows_back_into_sets():
    from types import SimpleNamespace
    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) * np.ones((10, 3, 64, 64), np.float32)
    sets = SimpleNamespace(images=images, sets=pd.DataFrame(
        {"setting": ["base", "diff"], "centre_class": ["actin", "actin"], "background_class": ["actin", "ER"],
         "start": [0, 4], "stop": [4, 10]}))
    feats = pipeline.setting_features(sets, lambda x: x[:, 0, :1, 0], batch_size=3, progress=False)
    assert feats[("base", "actin", "actin")].ravel().tolist() == [0, 1, 2, 3]
    assert feats[("diff", "actin", "ER")].ravel().tolist() == [4, 5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        pipeline.setting_features(sets, lambda x: x[:2, 0, 0, 0], progress=False)


def test_balanced_crops_and_neighbour_mismatch(small_dataset):
    screen, ds = small_dataset
    crops, report = pipeline.balanced_crops(ds, proteins_per_class=2, cells_per_protein=3, random_state=0)
    assert list(report["class"]) == list(CLASSES)
    assert (report.crops <= 6).all() and (report.proteins <= 2).all()
    assert crops.table.kind.eq("single").all() and crops.table.valid.all()
    again, _ = pipeline.balanced_crops(ds, proteins_per_class=2, cells_per_protein=3, random_state=0)
    assert again.table.equals(crops.table)
    with pytest.raises(ValueError, match=">= 1"):
        pipeline.balanced_crops(ds, proteins_per_class=0)

    table = ds.crops.table
    m = pipeline.neighbour_mismatch(screen, table)
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
    t = pipeline.drop_table(res, {"remedy": "model", "flat remedy": "flat"}).set_index("extractor")
    assert t.loc["remedy", "drop_removed"] == pytest.approx(0.6, abs=0.05)
    assert np.isnan(t.loc["flat remedy", "drop_removed"])
    assert t.loc["remedy", "baseline_cost"] == pytest.approx(t.loc["model", "base"] - t.loc["remedy", "base"])
    assert {"base", "base_3se", "drop", "drop_low", "drop_high"} <= set(t.columns)
