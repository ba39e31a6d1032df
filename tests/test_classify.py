"""bgrobust.classify: the paper's pairwise linear-SVM protocol, on tiny synthetic features."""
from __future__ import annotations

import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from bgrobust import classify
from bgrobust.vocabulary import CLASSES
from bgrobust.classify import (
    SVMProtocol,
    evaluate_pairs,
    evaluate_pairs_held_out,
    evaluate_triplets,
    held_out_proteins,
    held_out_split,
    pairwise_accuracy,
    protein_held_out_accuracy,
)

FOUR = ["actin", "ER", "Golgi", "vacuole"]
SMALL = SVMProtocol(n_per_class=20)


def _features(n=20, d=4, shift=0.6, seed=0, classes=FOUR):
    rng = np.random.default_rng(seed)
    return {c: rng.normal(shift * i, 1.0, (n, d)) for i, c in enumerate(classes)}


def _triplet_features(n=20, d=4, seed=0, classes=FOUR, same=True):
    rng = np.random.default_rng(seed)
    return {(c, b): rng.normal(0.6 * i + 0.2 * j, 1.0, (n, d))
            for i, c in enumerate(classes) for j, b in enumerate(classes) if same or b != c}


def _direct(X1, X2, n, scale=False):
    """run_svm.py get_nn_score_svc, written out with sklearn."""
    X = np.vstack([X1[:n], X2[:n]])
    y = np.array([0] * len(X1[:n]) + [1] * len(X2[:n]))
    scores = []
    for train, test in StratifiedKFold(n_splits=5).split(X, y):
        svc = SVC(kernel="linear", max_iter=100000, random_state=42)
        clf = make_pipeline(StandardScaler(), svc) if scale else svc
        clf.fit(X[train], y[train])
        scores.append(accuracy_score(y[test], clf.predict(X[test])))
    return np.mean(scores), np.std(scores)


# --------------------------------------------------------------------------- protocol


def test_protocol_defaults_are_the_papers():
    p = SVMProtocol()
    assert (p.n_per_class, p.kernel, p.C, p.max_iter, p.n_splits, p.shuffle, p.scale, p.shortfall) == (
        1000, "linear", 1.0, 100_000, 5, False, False, "min")


@pytest.mark.parametrize("field, value", [("n_per_class", 0), ("n_per_class", 2.5), ("C", 0),
                                          ("n_splits", 1), ("shortfall", "pad"), ("max_iter", 0)])
def test_protocol_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        SVMProtocol(**{field: value})


# --------------------------------------------------------------------------- pairwise_accuracy


def test_pairwise_matches_direct_sklearn_call():
    f = _features(n=30, shift=0.4)
    got = pairwise_accuracy(f["actin"], f["ER"], SVMProtocol(n_per_class=25))
    want = _direct(f["actin"], f["ER"], 25)
    assert got == pytest.approx(want, abs=1e-12)
    assert 0.5 < got[0] < 1.0 and got[1] > 0  # a non-trivial task: the comparison means something


def test_pairwise_std_is_population_std_of_folds():
    f = _features(n=20, shift=0.3)
    mean, std = pairwise_accuracy(f["actin"], f["ER"], SMALL)
    assert std == pytest.approx(_direct(f["actin"], f["ER"], 20)[1])  # np.std, ddof=0


def test_pairwise_uses_first_rows_only():
    f = _features(n=20, shift=0.4)
    junk = np.random.default_rng(9).normal(50, 1, (7, 4))
    a = pairwise_accuracy(f["actin"], f["ER"], SMALL)
    b = pairwise_accuracy(np.vstack([f["actin"], junk]), np.vstack([f["ER"], junk]), SMALL)
    assert a == b


def test_pairwise_scale_option():
    f = _features(n=20, shift=0.4)
    f["ER"] = f["ER"] * [1, 100, 1, 0.01]
    got = pairwise_accuracy(f["actin"], f["ER"], SVMProtocol(n_per_class=20, scale=True))
    assert got == pytest.approx(_direct(f["actin"], f["ER"], 20, scale=True), abs=1e-12)


def test_shortfall_min_uses_available_rows_and_error_raises():
    f = _features(n=20, shift=0.4)
    short = f["ER"][:13]
    got = pairwise_accuracy(f["actin"], short, SMALL)
    X = np.vstack([f["actin"], short])
    y = np.r_[np.zeros(20), np.ones(13)]
    scores = [accuracy_score(y[te], SVC(kernel="linear", max_iter=100000).fit(X[tr], y[tr]).predict(X[te]))
              for tr, te in StratifiedKFold(5).split(X, y)]
    assert got == pytest.approx((np.mean(scores), np.std(scores)))
    with pytest.raises(ValueError, match="13 rows, fewer than n_per_class=20"):
        pairwise_accuracy(f["actin"], short, SVMProtocol(n_per_class=20, shortfall="error"))


@pytest.mark.parametrize("bad, match", [
    (np.zeros(20), "2-D"),
    (np.full((20, 4), np.nan), "NaN"),
    (np.zeros((20, 5)), "features"),
    (np.zeros((3, 4)), "fewer than n_splits"),
])
def test_pairwise_input_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        pairwise_accuracy(np.zeros((20, 4)), bad, SMALL)


def test_pairwise_reports_max_iter_once():
    f = _features(n=20, shift=0.1)
    with pytest.warns(ConvergenceWarning, match="of 5 SVM fits stopped at max_iter=2"):
        pairwise_accuracy(f["actin"], f["ER"], SVMProtocol(n_per_class=20, max_iter=2))


# --------------------------------------------------------------------------- evaluate_pairs / triplets


def test_evaluate_pairs_layout_and_values():
    f = _features()
    df = evaluate_pairs(f, SMALL, classes=FOUR, progress=False)
    assert list(df.columns) == ["Location1", "Location2", "Accuracy", "StdDev"]
    assert df[["Location1", "Location2"]].values.tolist() == [
        ["actin", "ER"], ["actin", "Golgi"], ["actin", "vacuole"],
        ["ER", "Golgi"], ["ER", "vacuole"], ["Golgi", "vacuole"]]
    row = df.iloc[3]
    assert (row.Accuracy, row.StdDev) == pairwise_accuracy(f["ER"], f["Golgi"], SMALL)


def test_evaluate_pairs_default_is_the_105_pairs_in_paper_order():
    f = _features(n=5, d=2, shift=0.5, classes=CLASSES)
    df = evaluate_pairs(f, SVMProtocol(n_per_class=5), progress=False)
    assert len(df) == 105
    assert tuple(df.Location1.iloc[[0, -1]]) == ("actin", "vacuolar membrane")
    assert df.Location2.iloc[-1] == "vacuole" and "vacuole" not in set(df.Location1)


def test_evaluate_pairs_missing_class_is_named():
    f = _features()
    del f["Golgi"]
    with pytest.raises(KeyError, match="'Golgi'"):
        evaluate_pairs(f, SMALL, classes=FOUR, progress=False)


def test_triplet_row_counts_for_15_classes():
    assert len(classify._triplets(list(CLASSES), list(CLASSES), "valid")) == 1365
    assert len(classify._triplets(list(CLASSES), list(CLASSES), "all")) == 1575


def test_evaluate_triplets_valid_and_all():
    f = _triplet_features()
    valid = evaluate_triplets(f, SMALL, classes=FOUR, progress=False)
    assert list(valid.columns) == ["Location1", "Location2", "Background", "Accuracy", "StdDev"]
    assert len(valid) == 6 * 2
    assert not ((valid.Background == valid.Location1) | (valid.Background == valid.Location2)).any()
    # pair-major, background-minor file order, like the paper's results_diff.csv
    assert valid[["Location1", "Location2", "Background"]].values.tolist()[:3] == [
        ["actin", "ER", "Golgi"], ["actin", "ER", "vacuole"], ["actin", "Golgi", "ER"]]
    r = valid.iloc[1]
    assert (r.Accuracy, r.StdDev) == pairwise_accuracy(f[("actin", "vacuole")], f[("ER", "vacuole")], SMALL)

    full = evaluate_triplets(f, SMALL, classes=FOUR, backgrounds="all", progress=False)
    assert len(full) == 6 * 4
    merged = full.merge(valid, on=["Location1", "Location2", "Background"], suffixes=("", "_v"))
    assert len(merged) == 12 and np.allclose(merged.Accuracy, merged.Accuracy_v)


def test_evaluate_triplets_all_needs_same_class_keys():
    f = _triplet_features(same=False)
    evaluate_triplets(f, SMALL, classes=FOUR[:3], progress=False)  # "valid" does not need them
    with pytest.raises(KeyError, match=r"\('actin', 'actin'\)"):
        evaluate_triplets(f, SMALL, classes=FOUR[:3], backgrounds="all", progress=False)
    with pytest.raises(ValueError, match="backgrounds"):
        evaluate_triplets(f, SMALL, classes=FOUR[:3], backgrounds="some", progress=False)


def test_parallel_equals_serial():
    # The joblib path with threads (process workers take seconds to start on a busy
    # machine; the functions shipped to them are module-level and pickle fine).
    f = _triplet_features(n=10)
    p = SVMProtocol(n_per_class=10)
    a = evaluate_triplets(f, p, classes=FOUR, n_jobs=1, progress=False)
    with joblib.parallel_config(backend="threading"):
        b = evaluate_triplets(f, p, classes=FOUR, n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(a, b)


def test_cache_reuses_results(tmp_path, monkeypatch):
    f = _features()
    first = evaluate_pairs(f, SMALL, classes=FOUR, progress=False, cache_dir=tmp_path)
    assert len(list(tmp_path.rglob("*.json"))) == 6

    def boom(*args, **kwargs):
        raise AssertionError("recomputed a cached SVM")

    monkeypatch.setattr(classify, "_cv", boom)
    again = evaluate_pairs(f, SMALL, classes=FOUR, progress=False, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(first, again)
    # a different protocol or different rows is a different key
    with pytest.raises(AssertionError, match="recomputed"):
        evaluate_pairs(f, SVMProtocol(n_per_class=19), classes=FOUR, progress=False, cache_dir=tmp_path)


# --------------------------------------------------------------------------- protein-held-out


def test_held_out_split_is_protein_disjoint_and_stratified():
    y = np.repeat([0, 1], 50)
    groups = np.repeat([f"p{i}" for i in range(10)], 10)
    train, test = held_out_split(y, groups, 0.2, random_state=3)
    assert set(groups[train]).isdisjoint(groups[test])
    assert len(set(groups[test])) == 2 and set(y[test]) == {0, 1}  # one protein of 5 per class
    assert len(test) == 20


def test_held_out_split_errors():
    with pytest.raises(ValueError, match="more than one class"):
        held_out_split([0, 0, 1, 1], ["a", "b", "b", "c"])
    with pytest.raises(ValueError, match="class 1.*at least 2"):
        held_out_split([0, 0, 1, 1], ["a", "b", "c", "c"])
    with pytest.raises(ValueError, match="test_fraction"):
        held_out_proteins(["a", "b"], 1.0)


def test_protein_held_out_accuracy_matches_manual_fit():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (40, 3)), rng.normal(0.7, 1, (40, 3))])
    y = np.repeat([0, 1], 40)
    groups = np.repeat(np.arange(8), 10)
    train, test = held_out_split(y, groups, 0.25, random_state=1)
    clf = SVC(kernel="linear", max_iter=100000).fit(X[train], y[train])
    want = accuracy_score(y[test], clf.predict(X[test]))
    assert protein_held_out_accuracy(X, y, groups, test_fraction=0.25, random_state=1) == want


def test_evaluate_pairs_held_out_pairs_and_triplets():
    f = _features(n=20)
    groups = {c: [f"{c}-{k // 4}" for k in range(20)] for c in FOUR}  # 5 proteins per class
    df = evaluate_pairs_held_out(f, groups, SMALL, classes=FOUR, progress=False)
    assert list(df.columns) == ["Location1", "Location2", "HeldOutAccuracy", "Accuracy", "StdDev"]
    cv = evaluate_pairs(f, SMALL, classes=FOUR, progress=False)
    pd.testing.assert_frame_equal(df[cv.columns], cv)
    assert df.HeldOutAccuracy.between(0, 1).all()

    tf = _triplet_features(same=False)
    tg = {k: [f"{k[0]}-{i // 4}" for i in range(20)] for k in tf}
    tdf = evaluate_pairs_held_out(tf, tg, SMALL, classes=FOUR, progress=False)
    assert "Background" in tdf.columns and len(tdf) == 12


def test_evaluate_pairs_held_out_rejects_shared_proteins():
    f = _features(n=20, classes=FOUR[:2])
    groups = {c: [f"p{k // 4}" for k in range(20)] for c in FOUR[:2]}
    with pytest.raises(ValueError, match="share protein"):
        evaluate_pairs_held_out(f, groups, SMALL, classes=FOUR[:2], progress=False)
    with pytest.raises(KeyError, match="groups"):
        evaluate_pairs_held_out(f, {}, SMALL, classes=FOUR[:2], progress=False)


def test_no_stray_warnings_for_easy_tasks():
    f = _features(n=20, shift=3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_pairs(f, SMALL, classes=FOUR, progress=False)


# --------------------------------------------------------------------------- direct libsvm backend


def _network_features(n=100, seed=0, classes=FOUR):
    """Max-pooled features of a random PIFiA (width 0.25) on class-dependent random crops:
    non-negative, correlated, 64-d, with overlapping classes (what the SVM grid sees)."""
    import torch

    from bgrobust.models import build

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build("pifia", width=0.25, random_state=seed, n_classes=15).eval()
    out = {}
    with torch.inference_mode():
        for i, c in enumerate(classes):
            x = rng.normal(0, 1, (n, 1, 64, 64)).astype(np.float32)
            x[:, 0, 16 + 4 * i:40 + 4 * i, 20:44] += 0.5  # a weak class signal
            z = model.features(torch.from_numpy(x), "conv8")
            out[c] = z.amax(dim=(2, 3)).double().numpy()
    return out


@pytest.mark.parametrize("n, scale, max_iter", [(100, False, 100000), (37, False, 100000),
                                                (100, True, 100000), (100, False, 50)])
def test_libsvm_backend_is_bit_identical_to_sklearn(n, scale, max_iter):
    f = _network_features()
    fast = SVMProtocol(n_per_class=n, scale=scale, max_iter=max_iter)
    slow = SVMProtocol(n_per_class=n, scale=scale, max_iter=max_iter, backend="sklearn")
    assert fast.backend == "libsvm" and SVMProtocol().backend == "libsvm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = evaluate_pairs(f, fast, classes=FOUR, progress=False)
        b = evaluate_pairs(f, slow, classes=FOUR, progress=False)
        pa = classify.pairwise_predictions(f["actin"], f["ER"], fast)
        pb = classify.pairwise_predictions(f["actin"], f["ER"], slow)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    np.testing.assert_array_equal(pa, pb)
    assert a["Accuracy"].nunique() > 1 and 0.5 < a["Accuracy"].min() < 1.0  # not a trivial task


def test_libsvm_backend_counts_the_same_stopped_fits():
    f = _network_features(n=40)
    counts = []
    for backend in classify.BACKENDS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            counts.append(classify._cv(f["actin"][:40], f["ER"][:40],
                                       SVMProtocol(n_per_class=40, max_iter=5, backend=backend)))
    assert counts[0] == counts[1] and counts[0][2] > 0


def test_libsvm_fit_predict_matches_svc_for_other_kernels():
    from bgrobust._libsvm import fit_predict

    f = _network_features(n=30)
    X = np.vstack([f["actin"], f["Golgi"]])
    y = np.repeat([3, 7], 30)  # labels other than 0/1 come back as given
    for kernel in ("rbf", "poly", "sigmoid"):
        svc = SVC(kernel=kernel, random_state=42)
        pred, _ = fit_predict(svc, X[::2], y[::2], X[1::2])
        np.testing.assert_array_equal(pred, SVC(kernel=kernel, random_state=42).fit(X[::2], y[::2]).predict(X[1::2]))


def test_libsvm_fit_predict_rejects_what_it_does_not_reproduce():
    from bgrobust._libsvm import fit_predict

    X, y = np.eye(4), np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="precomputed"):
        fit_predict(SVC(kernel="precomputed"), X, y, X)
    with pytest.raises(ValueError, match="class_weight"):
        fit_predict(SVC(class_weight="balanced"), X, y, X)
    with pytest.raises(ValueError, match="two classes"):
        fit_predict(SVC(), X, np.zeros(4), X)
    with pytest.raises(ValueError, match="backend"):
        SVMProtocol(backend="liblinear")
