"""bgrobust.published: the paper's typed-in numbers are complete and self-consistent.

The comparison of TABLE1 with the paper's own per-pair CSVs (``shared_data``) is skipped
when ``SHARED_DATA / "paper-results"`` is absent.
"""
from __future__ import annotations

import numpy as np
import pytest

from bgrobust import published, tables
from bgrobust.vocabulary import CLASSES
from conftest import SHARED_DATA

PAPER = SHARED_DATA / "paper-results" / "swap_experiments" / "results"
MODELS = ["pifia", "pci", "deeploc"]
EXPERIMENTS = {"base", "mask", "batch", "same", "diff"}


def test_dataset_facts_kept():
    facts = published.dataset_facts()
    assert list(facts.columns) == ["quantity", "published"]
    assert published.DATASET["cells_per_class_svm"] == 1000 and len(facts) == len(published.DATASET)


def test_table1_shape_and_conventions():
    t = published.table1()
    assert list(t.columns) == ["model", "experiment", "mean", "three_se"]
    assert len(t) == 15 and list(t.model.unique()) == MODELS and set(t.experiment) == EXPERIMENTS
    assert t["mean"].between(0.5, 1).all() and t["three_se"].between(0, 0.05).all()


def test_table1_text_numbers_are_differences_of_table1():
    T = published.TABLE1
    for model, drop in published.TEXT_DROPS["same-diff"].items():
        assert abs(T[model]["same"][0] - T[model]["diff"][0] - drop) <= 0.0015
    for model, drop in published.TEXT_DROPS["same-mask"].items():
        assert abs(T[model]["same"][0] - T[model]["mask"][0] - drop) <= 0.007  # printed to 2 decimals
    assert max(T[m]["same"][0] - T[m]["diff"][0] for m in MODELS) == pytest.approx(published.ABSTRACT_MAX_DROP)
    for model in ("pifia", "pci"):
        assert abs(T[model]["same"][0] - T[model]["base"][0]) < published.SAME_VS_BASE_MAX_DIFF


@pytest.mark.shared_data
@pytest.mark.skipif(not PAPER.is_dir(), reason=f"paper results folder {PAPER} is absent")
def test_table1_equals_paper_csvs():
    ours = tables.table1(tables.read_paper_results(PAPER), "paper").round(3)
    merged = published.table1().merge(ours, on=["model", "experiment"], suffixes=("_pub", "_ours"))
    assert len(merged) == 15
    assert (merged.mean_pub == merged.mean_ours).all()
    assert (merged.three_se_pub == merged.three_se_ours).all()


def test_supp_table1_layers():
    t = published.supp_table1()
    assert t.accuracy.between(0.7, 1).all()
    assert t.groupby("model").size().to_dict() == {"deeploc": 7, "pci": 5, "pifia": 9}
    for model, layer in published.BEST_LAYERS.items():  # bold = the best layer
        sub = t[t.model == model]
        assert sub.loc[sub.accuracy.idxmax(), "layer"] == layer
        assert sub.loc[sub.best, "layer"].tolist() == [layer]


def test_supp_table2_complete():
    t = published.supp_table2()
    assert len(t) == 3 * 5 * 15
    for _, sub in t.groupby(["model", "experiment"]):
        assert sub["class"].tolist() == list(CLASSES)
    assert t["mean"].between(0.5, 1).all() and t["three_se"].between(0, 0.06).all()
    # the triplet experiments average 182 tasks: much smaller standard errors
    assert t.loc[t.experiment.isin(["diff", "batch"]), "three_se"].max() <= 0.02
    # Table 1 ordering holds class by class for the average: diff < same
    wide = t.pivot_table(index=["model", "class"], columns="experiment", values="mean")
    assert (wide["diff"] < wide["same"]).all()


def test_supp_table3_complete():
    t = published.supp_table3()
    assert len(t) == 45 and set(t.model) == set(MODELS)
    assert t.groupby("model")["class"].apply(list).map(lambda c: c == list(CLASSES)).all()
    assert t[["held_out", "cv"]].stack().between(0.6, 1).all()


def test_supp_table4_complete_and_f1_consistent():
    t = published.supp_table4()
    assert len(t) == 30 and t.model.tolist()[:15] == ["original"] * 15
    assert set(t["class"]) == set(CLASSES)
    assert t[["precision", "recall", "f1"]].stack().between(0, 1).all()
    f1 = 2 * t.precision * t.recall / (t.precision + t.recall)
    assert np.allclose(f1, t.f1, atol=0.011)  # harmonic mean of the printed 2-decimal P and R
    orig = t[t.model == "original"].set_index("class").f1
    masked = t[t.model == "masked"].set_index("class").f1
    assert (masked < orig).all()  # "masking ... leads to a substantial drop"


def test_kl_summary_and_uniform_baseline():
    k = published.KL_SUMMARY
    assert k["count"] == published.KL_TEXT["count"] == published.DATASET["multi_localized_proteins"]
    assert k["min"] <= k["25%"] <= k["50%"] <= k["75%"] <= k["max"]
    for stat, text in [("min", "min"), ("50%", "median"), ("mean", "mean"), ("max", "max")]:
        digits = len(str(published.KL_TEXT[text]).split(".")[1])
        assert round(k[stat], digits) == published.KL_TEXT[text]
    assert tuple(round(k[q], 2) for q in ("25%", "50%", "75%")) == published.FIG3A_QUARTILE_LABELS
    u = published.UNIFORM_BASELINE
    assert round(u["n_exceeding"] / u["n_proteins"], 3) == u["share"] == 0.146
    assert list(published.kl_summary().columns) == ["statistic", "repository", "text"]
