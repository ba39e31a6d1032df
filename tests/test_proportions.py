"""bgrobust.proportions: the LR heads, per-protein distributions, KL and the truth checks."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from bgrobust.vocabulary import CLASSES, SORTED_CLASSES
from conftest import SHARED_DATA
from bgrobust.proportions import (
    MultinomialLR, classification_report, compare_reports, disagreement_table,
    error_by_covariate, kl_divergence, kl_summary, load_head, load_paper_head,
    protein_distributions, total_variation, true_distributions, truth_errors,
    uniform_baseline,
)

HEADS = SHARED_DATA / "paper-results" / "pifia_logistic_regression" / "trained_models"
EPS = 1e-10
THREE = ("actin", "ER", "vacuole")


# --------------------------------------------------------------------------- divergences
def test_kl_matches_hand_computation_with_zeros_and_clipping():
    P = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    Q = np.array([[0.25, 0.25, 0.5], [0.0, 1.0, 0.0]])
    # the zero of P becomes eps and contributes eps * ln(eps / 0.5); Q's zeros become eps
    row0 = 2 * 0.5 * math.log(2) + EPS * math.log(EPS / 0.5)
    row1 = 1.0 * math.log(1.0 / EPS) + EPS * math.log(EPS / 1.0) + EPS * math.log(EPS / EPS)
    kl = kl_divergence(P, Q)
    assert isinstance(kl, np.ndarray) and kl.shape == (2,)
    np.testing.assert_allclose(kl, [row0, row1], rtol=1e-14, atol=0)
    # a larger floor changes the value as the hand computation says
    assert kl_divergence([1.0, 0.0], [0.0, 1.0], eps=1e-3) == pytest.approx(
        math.log(1e3) + 1e-3 * math.log(1e-3), rel=1e-12)
    # rows are normalised first (the original divides by the sum before clipping)
    assert kl_divergence([2.0, 2.0, 0.0], [1.0, 1.0, 2.0]) == pytest.approx(row0, rel=1e-14)
    # renormalising after the clip moves the value by O(k * eps) only
    after = kl_divergence(P, Q, renormalize_after_clip=True)
    assert not np.array_equal(after, kl) and np.allclose(after, kl, atol=1e-8)


def test_kl_of_a_distribution_with_itself_is_zero_and_frames_align():
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(15), size=6)
    P[0] = np.eye(15)[3]  # with zeros
    np.testing.assert_allclose(kl_divergence(P, P), 0.0, atol=1e-15)
    np.testing.assert_allclose(total_variation(P, P), 0.0, atol=1e-15)
    Pf = pd.DataFrame(P, index=[f"S{i}" for i in range(6)], columns=CLASSES)
    Qf = Pf.iloc[::-1, ::-1]  # same content, other protein and class order
    out = kl_divergence(Pf, Qf)
    assert isinstance(out, pd.Series) and list(out.index) == list(Pf.index)
    np.testing.assert_allclose(out, 0.0, atol=1e-15)
    with pytest.raises(ValueError, match="proteins differ.*S5"):
        kl_divergence(Pf, Qf.iloc[1:])
    with pytest.raises(ValueError, match="shapes differ"):
        kl_divergence(P, P[:, :14])
    with pytest.raises(ValueError, match="non-negative"):
        kl_divergence([0.5, -0.5, 1.0], [0.3, 0.3, 0.4])
    with pytest.raises(ValueError, match="sums to 0"):
        kl_divergence([0.0, 0.0], [0.5, 0.5])


def test_total_variation_by_hand():
    assert total_variation([1.0, 0.0], [0.0, 1.0]) == 1.0
    assert total_variation([0.5, 0.3, 0.2], [0.2, 0.3, 0.5]) == pytest.approx(0.3)


def test_uniform_baseline_is_zero_on_uniform_and_about_ln15_on_one_hot():
    assert uniform_baseline(np.full(15, 1 / 15)) == pytest.approx(0.0, abs=1e-15)
    one_hot = uniform_baseline(np.eye(15))
    by_hand = math.log(15) + 14 * EPS * math.log(15 * EPS)  # clipped zeros, no renormalising
    np.testing.assert_allclose(one_hot, by_hand, rtol=1e-14, atol=0)
    assert abs(one_hot[0] - math.log(15)) < 1e-7 and one_hot[0] != math.log(15)


def test_kl_summary_counts_proteins_strictly_above_their_own_baseline():
    kl = pd.Series([0.1, 0.5, 2.0, 3.0], index=list("abcd"))
    base = pd.Series([3.0, 1.0, 1.0, 1.0], index=list("dcba"))  # d: 3.0 is not > 3.0
    out = kl_summary(kl, base)
    assert out["count"] == 4 and out["n_exceeds"] == 1 and out["share_exceeds"] == 0.25
    assert out["std"] == pytest.approx(np.std(kl, ddof=1))
    assert out["50%"] == pytest.approx(np.percentile(kl, 50))
    assert "share_exceeds" not in kl_summary(kl)
    with pytest.raises(ValueError, match="lengths differ"):
        kl_summary([0.1, 0.2], [0.3])


# --------------------------------------------------------------------------- proportions
@pytest.fixture
def tiny():
    """Three proteins, five cells, classes (actin, ER, vacuole)."""
    proba = np.array([
        [0.7, 0.2, 0.1],  # A: actin
        [0.1, 0.6, 0.3],  # A: ER
        [0.4, 0.5, 0.1],  # A: ER
        [0.2, 0.2, 0.6],  # B: vacuole
        [0.3, 0.3, 0.4],  # C: vacuole (invalid below)
    ])
    return proba, np.array(["A", "A", "A", "B", "C"])


def test_protein_distributions_for_each_method(tiny):
    proba, prot = tiny
    cells = protein_distributions(proba, prot, THREE, "cells")
    np.testing.assert_allclose(cells.loc["A"], [1 / 3, 2 / 3, 0])
    np.testing.assert_allclose(cells.loc["B"], [0, 0, 1])
    assert list(cells.index) == ["A", "B", "C"] and list(cells.columns) == list(THREE)
    first = protein_distributions(proba, prot, THREE, "first_crop")
    np.testing.assert_allclose(first.loc["A"], [0.7, 0.2, 0.1])
    mean = protein_distributions(proba, prot, THREE, "mean_proba")
    np.testing.assert_allclose(mean.loc["A"], [0.4, 13 / 30, 0.5 / 3])
    # labels give the same "cells" result; a frame with permuted columns is reordered
    labels = np.array(THREE)[proba.argmax(1)]
    pd.testing.assert_frame_equal(protein_distributions(labels, prot, THREE), cells)
    frame = pd.DataFrame(proba, columns=THREE)[["vacuole", "actin", "ER"]]
    pd.testing.assert_frame_equal(protein_distributions(frame, prot, THREE, "first_crop"), first)
    # valid rows and an explicit protein order
    sub = protein_distributions(proba, prot, THREE, "cells", valid=np.array([0, 1, 1, 1, 1], bool),
                                index=["B", "A"])
    assert list(sub.index) == ["B", "A"]
    np.testing.assert_allclose(sub.loc["A"], [0, 1, 0])


def test_protein_distributions_bad_inputs(tiny):
    proba, prot = tiny
    valid = np.array([1, 1, 1, 1, 0], bool)
    with pytest.raises(ValueError, match=r"protein\(s\) \['C'\] have no valid cells"):
        protein_distributions(proba, prot, THREE, valid=valid)
    dropped = protein_distributions(proba, prot, THREE, valid=valid, on_empty="drop")
    assert list(dropped.index) == ["A", "B"]
    with pytest.raises(ValueError, match=r"\['Z'\] have no valid cells"):
        protein_distributions(proba, prot, THREE, index=["A", "Z"])
    with pytest.raises(ValueError, match="proteins: expected one id per row"):
        protein_distributions(proba, prot[:4], THREE)
    with pytest.raises(ValueError, match="valid: expected a boolean array of length 5"):
        protein_distributions(proba, prot, THREE, valid=valid[:3])
    with pytest.raises(ValueError, match="has 3 columns but 15 classes"):
        protein_distributions(proba, prot)
    with pytest.raises(ValueError, match="only allow method='cells'"):
        protein_distributions(np.array(THREE)[[0, 1, 1, 2, 2]], prot, THREE, "mean_proba")
    with pytest.raises(ValueError, match=r"\['nucleous'\] are not among the classes"):
        protein_distributions(np.array(["actin"] * 4 + ["nucleous"]), prot, THREE)
    with pytest.raises(ValueError, match="method must be one of"):
        protein_distributions(proba, prot, THREE, "median")


# --------------------------------------------------------------------------- training
def blobs(n_per=60, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(2.0 * i, 0.7, (n_per, d)) for i in range(3)])
    y = np.repeat(THREE, n_per)
    groups = np.repeat([f"P{i}" for i in range(3 * n_per // 10)], 10)  # 10 cells per protein
    return X, y, groups


def small_lr(**kw):
    params = dict(epochs=4, batch_size=16, lr=0.05, classes=THREE, random_state=0)
    return MultinomialLR(**{**params, **kw})


def test_training_is_deterministic_and_learns():
    X, y, _ = blobs()
    a, b = small_lr().fit(X, y), small_lr().fit(X, y)
    assert torch.equal(a.head_.linear.weight, b.head_.linear.weight)
    assert torch.equal(a.head_.linear.bias, b.head_.linear.bias)
    pd.testing.assert_frame_equal(a.history_, b.history_)
    np.testing.assert_array_equal(a.test_index_, b.test_index_)
    c = small_lr(random_state=1).fit(X, y)
    assert not torch.equal(a.head_.linear.weight, c.head_.linear.weight)
    assert a.score(X, y) > 0.9 and list(a.history_["epoch"]) == [1, 2, 3, 4]
    # held-out: 20% of each class, reported per class
    assert (pd.Series(y[a.test_index_]).value_counts() == 12).all()
    assert list(a.report_.index) == list(THREE) and a.report_["support"].sum() == 36
    assert set(a.predict(X)) <= set(THREE)
    assert set(a.state_dict()) == {"linear.weight", "linear.bias"}


def test_protein_split_keeps_proteins_apart():
    X, y, g = blobs()
    m = small_lr(split="proteins").fit(X, y, groups=g)
    assert not set(g[m.train_index_]) & set(g[m.test_index_])
    assert (pd.Series(y[m.test_index_]).value_counts() == 10).all()  # round(0.2 * 6) = 1 protein
    with pytest.raises(ValueError, match="groups: split='proteins' needs"):
        small_lr(split="proteins").fit(X, y)
    bad = g.copy()
    bad[59] = "P6"  # a protein of class actin gets a cell of ER
    with pytest.raises(ValueError, match=r"protein\(s\) \['P6'\] have rows of more than one class"):
        small_lr(split="proteins").fit(X, y, groups=bad)


def test_fit_rejects_bad_inputs():
    X, y, _ = blobs()
    keep = y != "vacuole"
    with pytest.raises(ValueError, match=r"y: class\(es\) \['vacuole'\] have no training rows"):
        small_lr().fit(X[keep], y[keep])
    with pytest.raises(ValueError, match="y: has 179 entries but there are 180 rows"):
        small_lr().fit(X, y[:-1])
    with pytest.raises(ValueError, match=r"\['Vacuole'\] are not among the classes"):
        small_lr().fit(X, np.where(y == "vacuole", "Vacuole", y))
    with pytest.raises(ValueError, match="test_fraction must be in"):
        small_lr(test_fraction=1.0).fit(X, y)
    m = small_lr().fit(X, y)
    with pytest.raises(ValueError, match="X: has 3 features, the head expects 4"):
        m.predict(X[:, :3])


def test_save_and_load_use_the_paper_format(tmp_path):
    X, y, _ = blobs()
    m = small_lr().fit(X, y)
    path = m.save(tmp_path / "head.pth")
    assert set(torch.load(path, weights_only=True)) == {"linear.weight", "linear.bias"}
    back = load_head(path, THREE)
    np.testing.assert_array_equal(back.predict_proba(X), m.predict_proba(X))
    # a wrong class order is not detectable from the file, but names follow the order given
    swapped = load_head(path, THREE[::-1])
    np.testing.assert_array_equal(swapped.predict_proba_frame(X, order=THREE[::-1]).to_numpy(),
                                  m.predict_proba(X))


def test_bad_head_files_are_reported_by_name(tmp_path):
    torch.save({"weight": torch.zeros(15, 64), "bias": torch.zeros(15)}, tmp_path / "keys.pth")
    with pytest.raises(ValueError, match=r"keys\.pth: expected exactly the keys"):
        load_paper_head(tmp_path / "keys.pth")
    torch.save({"linear.weight": torch.zeros(14, 64), "linear.bias": torch.zeros(14)},
               tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"shape\.pth: expected linear.weight \(15, d\)"):
        load_paper_head(tmp_path / "shape.pth")
    torch.save({"linear.weight": torch.zeros(15, 32), "linear.bias": torch.zeros(15)},
               tmp_path / "dim.pth")
    with pytest.raises(ValueError, match=r"dim\.pth: linear.weight has 32 input features, expected 64"):
        load_paper_head(tmp_path / "dim.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"junk\.pth: not a readable torch state dict"):
        load_paper_head(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_paper_head(tmp_path / "absent.pth")


@pytest.mark.shared_data
@pytest.mark.skipif(not HEADS.is_dir(), reason=f"shared data not available: {HEADS}")
@pytest.mark.parametrize("name", ["original", "masked"])
def test_the_paper_heads_load_with_lexicographic_class_order(name):
    path = HEADS / f"{name}_crops_model.pth"
    raw = torch.load(path, weights_only=True)
    model = load_paper_head(path)
    assert model.coef_.shape == (15, 64) and model.intercept_.shape == (15,)
    np.testing.assert_array_equal(model.coef_, raw["linear.weight"].numpy())
    assert model.classes_ == SORTED_CLASSES and model.classes_[:2] == ("ER", "Golgi")
    # the biases support the order: cytoplasm and nucleus, the largest single-localization
    # classes of Huh et al., get the two largest biases (in CLASSES order they'd be ER, nucleolus)
    top = {model.classes_[i] for i in np.argsort(model.intercept_)[-2:]}
    assert top == {"cytoplasm", "nucleus"}
    X = np.random.default_rng(0).normal(size=(50, 64))
    proba = model.predict_proba(X)
    frame = model.predict_proba_frame(X)  # CLASSES order by name
    assert list(frame.columns) == list(CLASSES)
    for c in CLASSES:
        np.testing.assert_array_equal(frame[c].to_numpy(), proba[:, SORTED_CLASSES.index(c)])
    np.testing.assert_array_equal(model.predict(X), np.array(SORTED_CLASSES)[proba.argmax(1)])
    np.testing.assert_array_equal(frame.to_numpy().argmax(1), [CLASSES.index(c) for c in model.predict(X)])


# --------------------------------------------------------------------------- reports, truth
def test_classification_report_by_hand():
    rep = classification_report(["ER", "ER", "Golgi", "actin"], ["ER", "Golgi", "Golgi", "ER"],
                                ["ER", "Golgi", "actin"])
    assert rep.loc["ER", "precision"] == 0.5 and rep.loc["ER", "recall"] == 0.5
    assert rep.loc["Golgi", "f1"] == pytest.approx(2 / 3) and rep.loc["actin", "support"] == 1
    assert np.isnan(rep.loc["actin", "precision"])  # never predicted
    table = compare_reports({"Original": rep, "Masked": rep})
    assert table.columns.tolist()[0] == ("Original", "precision") and table.index[2] == "Actin"
    with pytest.raises(ValueError, match="y_pred: has 1 entries but there are 2 rows"):
        classification_report(["ER", "ER"], ["ER"], ["ER", "Golgi"])


def test_truth_errors_disagreement_and_covariate():
    cols = ["ER", "Golgi"]
    true = pd.DataFrame([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]], index=["a", "b", "c"], columns=cols)
    orig = pd.DataFrame([[0.5, 0.5], [0.5, 0.5], [0.0, 1.0]], index=["a", "b", "c"], columns=cols)
    mask = pd.DataFrame([[0.9, 0.1], [0.5, 0.5], [1.0, 0.0]], index=["c", "b", "a"],
                        columns=cols)[["Golgi", "ER"]]  # aligned by name
    err = truth_errors(orig, mask, true)
    assert err.loc["a", "tv_original"] == pytest.approx(0.5) and err.loc["a", "tv_masked"] == 0.0
    assert err.loc["a", "kl_original"] == pytest.approx(math.log(2) + EPS * math.log(EPS / 0.5))
    assert list(err["closer"]) == ["masked", "tie", "original"]
    table = disagreement_table(orig, mask, true, n=2)
    # a: 0.5 ln 2 + 0.5 ln(0.5 / eps) ~ 10.8 nats (the clipped 0), c: ln(1 / 0.1) ~ 2.3
    assert list(table.index) == ["a", "c"]
    assert table.loc["a", "kl"] == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(0.5 / EPS))
    assert table.loc["c", "top_original"] == "Golgi" and table.loc["c", "top_masked"] == "ER"
    assert table.loc["c", "top_true"] == "Golgi" and table.loc["c", "closer"] == "original"
    by = error_by_covariate(err[["tv_original", "tv_masked"]], [0.1, 0.2, 0.9], bins=[0, 0.5, 1])
    assert by[("n", "")].tolist() == [2, 1]
    assert by[("tv_original", "mean")].tolist() == pytest.approx([0.25, 0.2])
    with pytest.raises(ValueError, match="covariate: expected 3 values"):
        error_by_covariate(err["tv_masked"], [0.1, 0.2])
    with pytest.raises(ValueError, match="outside the bin edges"):
        error_by_covariate(err["tv_masked"], [0.1, 0.2, 1.5], bins=[0, 0.5, 1])


def test_true_distributions_reads_the_strain_table():
    strains = pd.DataFrame({"strain": ["S1", "S2"], "kind": ["single", "multi"],
                            **{f"p:{c}": [1.0 if c == "ER" else 0.0,
                                          0.25 if c in ("ER", "nucleus") else
                                          (0.5 if c == "vacuole" else 0.0)] for c in CLASSES}})
    P = true_distributions(strains)
    assert list(P.index) == ["S2"] and list(P.columns) == list(CLASSES)
    assert P.loc["S2", "vacuole"] == 0.5 and P.loc["S2"].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="missing column"):
        true_distributions(strains.drop(columns="p:ER"))


def test_uniform_baseline_keeps_the_protein_index_of_a_frame():
    frame = pd.DataFrame(np.eye(15)[:4], index=["p1", "p2", "p3", "p4"], columns=list(CLASSES))
    out = uniform_baseline(frame)
    assert list(out.index) == ["p1", "p2", "p3", "p4"]
    assert np.allclose(out.to_numpy(), uniform_baseline(np.eye(15)[:4]))


# ---------------------------------------------------------------------------- issue 14: converged heads, F1, estimators
from bgrobust import proportions as P  # noqa: E402
def test_macro_f1_counts_undefined_as_zero_by_hand():
    # Golgi is never predicted: its F1 is undefined; ER F1 = 2*(2/3*1)/(2/3+1) = 0.8, actin 1
    rep = P.classification_report(["ER", "ER", "Golgi", "actin"], ["ER", "ER", "ER", "actin"],
                                  ["ER", "Golgi", "actin"])
    assert np.isnan(rep.loc["Golgi", "f1"])
    assert P.macro_f1(rep) == pytest.approx((0.8 + 0 + 1) / 3)
    assert P.macro_f1(rep, "skip") == pytest.approx((0.8 + 1) / 2)
    with pytest.raises(ValueError, match="undefined"):
        P.macro_f1(rep, "drop")
    with pytest.raises(ValueError, match="f1"):
        P.macro_f1(rep.drop(columns="f1"))


def test_chance_accuracy_by_hand():
    assert P.chance_accuracy(["a", "b", "b", "b", "c"]) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="no labels"):
        P.chance_accuracy([])


def _blobs(n=60, sep=1.2, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(m, 1.0, (n, 4)) for m in (0, sep)]).astype(np.float32)
    y = np.array(["ER"] * n + ["nucleus"] * n)
    return X, y


def test_early_stopping_stops_on_held_out_loss_and_keeps_best_weights():
    X, y = _blobs()
    kw = dict(batch_size=16, lr=0.05, classes=("ER", "nucleus"), random_state=0)
    h = P.MultinomialLR(epochs=300, early_stopping=True, patience=5, **kw).fit(X, y)
    hist = h.history_
    assert h.stopped_early_ and len(hist) < 300
    best = hist["test_loss"].idxmin()
    assert h.best_epoch_ == int(hist.loc[best, "epoch"])
    assert h.best_test_loss_ == pytest.approx(hist["test_loss"].min())
    assert len(hist) - h.best_epoch_ == 5                        # stopped after `patience` epochs
    steps_per_epoch = int(np.ceil(len(h.train_index_) / 16))
    assert h.n_steps_ == steps_per_epoch * h.best_epoch_
    assert list(hist["steps"]) == [steps_per_epoch * e for e in hist["epoch"]]
    # the kept weights are the best epoch's: their held-out loss is the minimum
    import torch
    with torch.no_grad():
        logits = torch.from_numpy(h.decision_function(X[h.test_index_]))
        codes = torch.from_numpy((y[h.test_index_] == "nucleus").astype(np.int64))
        assert float(torch.nn.functional.cross_entropy(logits, codes)) == pytest.approx(h.best_test_loss_, rel=1e-5)
    # the default is the paper's fixed 5 epochs
    plain = P.MultinomialLR(**kw).fit(X, y)
    assert len(plain.history_) == 5 and plain.best_epoch_ == 5 and not plain.stopped_early_
    with pytest.raises(ValueError, match="test_fraction"):
        P.MultinomialLR(early_stopping=True, test_fraction=0.0, **kw).fit(X, y)
    with pytest.raises(ValueError, match="patience"):
        P.MultinomialLR(early_stopping=True, patience=0, **kw).fit(X, y)


def test_head_summary_against_chance():
    X, y = _blobs(sep=3.0)
    kw = dict(batch_size=16, lr=0.05, classes=("ER", "nucleus"), random_state=0, early_stopping=True)
    good = P.MultinomialLR(epochs=100, **kw).fit(X, y)
    rng = np.random.default_rng(1)
    noise = P.MultinomialLR(epochs=100, **kw).fit(rng.normal(size=X.shape).astype(np.float32), y)
    t = P.head_summary({"good": good, "noise": noise})
    assert t.loc["good", "chance"] == pytest.approx(0.5)
    assert t.loc["good", "beats_chance"] and t.loc["good", "held_out_accuracy"] > 0.9
    rep = good.report_
    assert t.loc["good", "held_out_accuracy"] == pytest.approx(
        float((good.predict(X[good.test_index_]) == y[good.test_index_]).mean()))
    assert t.loc["good", "macro_f1"] == pytest.approx(P.macro_f1(rep))
    assert t.loc["noise", "held_out_accuracy"] < 0.75            # features carry nothing
    assert not t.loc["noise", "beats_chance"] and t.loc["noise", "p_vs_chance"] > 0.05
    assert t.loc["good", "p_vs_chance"] < 1e-6
    with pytest.raises(ValueError, match="held-out"):
        P.head_summary({"x": P.MultinomialLR(test_fraction=0.0, **dict(kw, early_stopping=False)).fit(X, y)})


def test_estimator_table_three_estimators_by_hand():
    classes = ["ER", "actin"]
    proteins = np.array(["a", "a", "a", "b", "b"])
    po = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.6, 0.4]])
    pm = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.6, 0.4], [0.6, 0.4]])
    methods = ("first_crop", "cells", "mean_proba")
    orig = {m: P.protein_distributions(po, proteins, classes, m) for m in methods}
    mask = {m: P.protein_distributions(pm, proteins, classes, m) for m in methods}
    assert orig["first_crop"].loc["a"].tolist() == [0.9, 0.1]
    assert orig["cells"].loc["a"].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert orig["mean_proba"].loc["a"].tolist() == pytest.approx([7 / 15, 8 / 15])
    t = P.estimator_table(orig, mask)
    kl_a = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    assert t.loc["first_crop", "kl_mean"] == pytest.approx(kl_a / 2)   # protein b: identical, KL 0
    # a: the masked head is uniform, so its KL equals a's baseline (not strictly above);
    # b: KL 0 < baseline. No protein exceeds.
    assert t.loc["first_crop", "share_exceeds"] == 0.0
    # "cells": the masked head's uniform softmax is an ER vote on a tie, so a's masked
    # distribution is [1, 0] and the clipped zero (1e-10) dominates a's KL; b is identical (0)
    kl_cells_a = (1 / 3) * np.log(1 / 3) + (2 / 3) * np.log((2 / 3) / 1e-10)
    assert t.loc["cells", "kl_median"] == pytest.approx(np.median([kl_cells_a, 0.0]))
    # the renormalised variant differs from the paper's clipped KL only where a zero is clipped
    assert t.loc["first_crop", "kl_renorm_median"] == pytest.approx(t.loc["first_crop", "kl_median"], abs=1e-8)
    with pytest.raises(ValueError, match="same methods"):
        P.estimator_table(orig, {"cells": mask["cells"]})
