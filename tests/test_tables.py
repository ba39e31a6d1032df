"""bgrobust.tables: reading/writing per-pair results, the two aggregations and Table 1.

The synthetic tests pin each aggregation rule down on hand-made tables.  The tests
marked ``shared_data`` read the paper's own per-pair CSVs from
``SHARED_DATA / "paper-results"`` (microsoft/microscopy-sc-robustness,
``swap_experiments/results``) and are skipped when that folder is absent.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bgrobust import published, tables
from conftest import SHARED_DATA

PAPER = SHARED_DATA / "paper-results" / "swap_experiments" / "results"
needs_paper = [pytest.mark.shared_data,
               pytest.mark.skipif(not PAPER.is_dir(), reason=f"paper results folder {PAPER} is absent")]


def _pairs(rows):
    return pd.DataFrame(rows, columns=["Location1", "Location2", "Accuracy"]).assign(StdDev=0.0)


def _triplets(rows):
    return pd.DataFrame(rows, columns=["Location1", "Location2", "Background", "Accuracy"]).assign(StdDev=0.0)


BASE = _pairs([("actin", "ER", 0.9), ("actin", "vacuole", 0.7), ("ER", "vacuole", 0.5)])
DIFF = _triplets([
    ("actin", "ER", "actin", 0.10),      # background == Location1: dropped
    ("actin", "ER", "Golgi", 0.80),      # first valid row of the pair: the "paper" value
    ("actin", "ER", "vacuole", 0.60),
    ("actin", "vacuole", "ER", 0.70),
    ("actin", "vacuole", "Golgi", 0.90),
    ("ER", "vacuole", "vacuole", 0.20),  # background == Location2: dropped
    ("ER", "vacuole", "actin", 0.40),
])


# --------------------------------------------------------------------------- aggregation rules


def test_paper_base_groups_by_location1_only():
    pc = tables.per_class({"base": BASE}, "paper")["base"]
    assert pc["actin"] == pytest.approx(0.8) and pc["ER"] == pytest.approx(0.5)
    assert np.isnan(pc["vacuole"])  # never a Location1


def test_all_base_credits_both_members():
    pc = tables.per_class({"base": BASE}, "all")["base"]
    assert pc.to_dict() == pytest.approx({"actin": 0.8, "ER": 0.7, "vacuole": 0.6})


def test_same_credits_both_members_in_both_modes():
    for agg in ("paper", "all"):
        pc = tables.per_class({"same": BASE}, agg)["same"]
        assert pc["vacuole"] == pytest.approx(0.6)


def test_paper_diff_keeps_first_valid_background():
    pc = tables.per_class({"diff": DIFF}, "paper")["diff"]
    # pairs: (actin, ER) 0.80, (actin, vacuole) 0.70, (ER, vacuole) 0.40
    assert pc.to_dict() == pytest.approx({"actin": 0.75, "ER": 0.60, "vacuole": 0.55})


def test_all_diff_averages_valid_backgrounds():
    pc = tables.per_class({"diff": DIFF}, "all")["diff"]
    # pairs: (actin, ER) 0.70, (actin, vacuole) 0.80, (ER, vacuole) 0.40
    assert pc.to_dict() == pytest.approx({"actin": 0.75, "ER": 0.55, "vacuole": 0.60})


def test_per_class_columns_in_experiment_order_and_bad_aggregation():
    pc = tables.per_class({"diff": DIFF, "base": BASE}, "all")
    assert list(pc.columns) == ["base", "diff"] and pc.index.name == "class"
    with pytest.raises(ValueError, match="aggregation"):
        tables.per_class({"base": BASE}, "mean")


def test_table1_three_se_and_format():
    t = tables.table1({"pifia": {"base": BASE, "diff": DIFF}}, "all")
    row = t.set_index("experiment").loc["base"]
    v = np.array([0.8, 0.7, 0.6])
    assert row["mean"] == pytest.approx(0.7)
    assert row["three_se"] == pytest.approx(3 * v.std(ddof=1) / np.sqrt(3))
    assert row["n_classes"] == 3
    wide = tables.format_table1(t)
    assert wide.loc["PIFiA", "Baseline"] == f"0.700 ± {row['three_se']:.3f}"
    assert list(wide.columns) == ["Baseline", "Diff Loc Swap"]


def test_table1_wants_nested_results():
    with pytest.raises(TypeError, match="model"):
        tables.table1({"base": BASE})


def test_drop_and_scatter_helpers():
    res = {"m": {"base": BASE, "same": BASE.assign(Accuracy=BASE.Accuracy + 0.1), "diff": DIFF}}
    d = tables.drop(res, "same", "diff", aggregation="all").iloc[0]
    assert d["drop"] == pytest.approx(0.8 - np.mean([0.75, 0.55, 0.60]))
    assert d["low"] <= d["paired_mean"] <= d["high"]
    boot = tables.drop(res, interval="bootstrap", random_state=0, n_boot=200, aggregation="all").iloc[0]
    assert boot["low"] <= boot["high"]
    s = tables.scatter_data(res, ("same", "diff"), aggregation="paper")
    assert list(s.columns) == ["model", "experiment", "class", "baseline", "accuracy"]
    assert set(s["class"]) == {"actin", "ER"}  # vacuole has no paper-mode baseline


def test_held_out_per_class_layout():
    df = DIFF.assign(HeldOutAccuracy=DIFF.Accuracy - 0.1)
    t = tables.held_out_per_class(df)
    assert list(t.columns) == ["held_out", "cv"]
    assert t["cv"].to_dict() == pytest.approx({"actin": 0.75, "ER": 0.55, "vacuole": 0.60})
    assert (t["cv"] - t["held_out"]).to_numpy() == pytest.approx([0.1] * 3)
    with pytest.raises(ValueError, match="HeldOutAccuracy"):
        tables.held_out_per_class(DIFF)


# --------------------------------------------------------------------------- I/O


def test_write_read_roundtrip(tmp_path):
    res = {"pifia": {"base": BASE, "diff": DIFF}, "pci": {"base": BASE}}
    files = tables.write_results(res, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files) == [
        "pci/results_base.csv", "pifia/results_base.csv", "pifia/results_diff.csv"]
    back = tables.read_paper_results(tmp_path)
    assert list(back) == ["pifia", "pci"]
    pd.testing.assert_frame_equal(back["pifia"]["diff"], DIFF)
    one = tables.read_paper_results(tmp_path / "pifia")  # a single model's folder
    assert list(one) == ["pifia"] and list(one["pifia"]) == ["base", "diff"]


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tables.read_paper_results(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="results"):
        tables.read_paper_results(tmp_path)
    bad = tmp_path / "m"
    bad.mkdir()
    DIFF.drop(columns="Background").to_csv(bad / "results_diff.csv", index=False)
    with pytest.raises(ValueError, match=r"results_diff\.csv: missing column 'Background'"):
        tables.read_paper_results(tmp_path)
    BASE.assign(Location2=["ER", "lysosome", "vacuole"]).to_csv(bad / "results_base.csv", index=False)
    with pytest.raises(ValueError, match=r"results_base\.csv, column 'Location2'.*lysosome"):
        tables.read_paper_results(bad, experiments=["base"])


# --------------------------------------------------------------------------- the paper's CSVs

#: Sensitivity table of the reference notes (anchors-paper-pifia.md, section 1.4):
#: base/mask symmetric, batch/diff mean over all 13 valid backgrounds.
SENSITIVITY = {
    "pifia": {"base": (0.950, 0.012), "mask": (0.884, 0.018), "batch": (0.900, 0.017), "diff": (0.842, 0.023)},
    "pci": {"base": (0.919, 0.017), "mask": (0.870, 0.019), "batch": (0.873, 0.020), "diff": (0.775, 0.025)},
    "deeploc": {"base": (0.715, 0.026), "mask": (0.685, 0.027), "batch": (0.684, 0.024), "diff": (0.618, 0.024)},
}


@pytest.fixture(scope="module")
def paper_results():
    return tables.read_paper_results(PAPER)


@pytest.mark.parametrize("m", [pytest.param(None, marks=needs_paper)])
def test_paper_csvs_shape(paper_results, m):
    assert list(paper_results) == ["pifia", "pci", "deeploc"]
    for exps in paper_results.values():
        assert list(exps) == ["base", "diff", "same", "mask", "batch"]   # vocabulary.EXPERIMENTS order
        assert [len(exps[e]) for e in exps] == [105, 1575, 105, 105, 1575]


@pytest.mark.parametrize("m", [pytest.param(None, marks=needs_paper)])
def test_paper_aggregation_reproduces_table1(paper_results, m):
    ours = tables.table1(paper_results, "paper").set_index(["model", "experiment"])
    for model, exps in published.TABLE1.items():
        for exp, (mean, se) in exps.items():
            row = ours.loc[(model, exp)]
            assert round(row["mean"], 3) == mean, (model, exp)
            assert round(row["three_se"], 3) == se, (model, exp)
            assert row["n_classes"] == (14 if exp in ("base", "mask") else 15)
    wide = tables.format_table1(tables.table1(paper_results))
    assert wide.loc["PCI", "Diff Loc Swap"] == "0.772 ± 0.026"


@pytest.mark.parametrize("m", [pytest.param(None, marks=needs_paper)])
def test_all_aggregation_reproduces_sensitivity_table(paper_results, m):
    ours = tables.table1(paper_results, "all").set_index(["model", "experiment"])
    for model, exps in SENSITIVITY.items():
        for exp, (mean, se) in exps.items():
            row = ours.loc[(model, exp)]
            assert round(row["mean"], 3) == mean and round(row["three_se"], 3) == se, (model, exp)
            # "differences stay at or below 0.008" (on the rounded numbers; DeepLoc mask: 0.685 vs 0.677)
            assert abs(round(row["mean"], 3) - published.TABLE1[model][exp][0]) <= 0.008 + 1e-9


@pytest.mark.parametrize("m", [pytest.param(None, marks=needs_paper)])
def test_per_class_paper_values_behind_figure2(paper_results, m):
    pc = tables.per_class(paper_results["pifia"], "paper").round(3)
    assert pc.loc["actin", ["base", "mask", "batch", "same", "diff"]].tolist() == [0.974, 0.908, 0.929, 0.956, 0.846]
    assert pc.loc["vacuole", ["batch", "same", "diff"]].tolist() == [0.868, 0.916, 0.821]
    assert pc.loc["vacuole", ["base", "mask"]].isna().all()
    s = tables.scatter_data(paper_results)
    assert s.groupby(["model", "experiment"]).size().eq(14).all()


@pytest.mark.parametrize("m", [pytest.param(None, marks=needs_paper)])
def test_supp_table2_is_the_all_aggregation(paper_results, m):
    pub = published.supp_table2()
    ours = pd.concat([tables.per_class_table(paper_results[k], "all").assign(model=k) for k in paper_results])
    both = pub.merge(ours, on=["model", "experiment", "class"], suffixes=("_pub", "_ours"))
    assert len(both) == len(pub) == 225
    assert ((both.mean_pub - both.mean_ours).abs() <= 0.005 + 1e-9).all()
    assert ((both.three_se_pub - both.three_se_ours).abs() <= 0.005 + 1e-9).all()
    assert set(both.loc[both.experiment == "diff", "n_tasks"]) == {182}


@pytest.mark.parametrize("m", [pytest.param(None, marks=needs_paper)])
def test_supp_table3_cv_row_and_text_drops(paper_results, m):
    pub = published.supp_table3().set_index(["model", "class"])
    for model, exps in paper_results.items():
        cv = tables.per_class(exps, "all")["batch"]
        assert (cv - pub.loc[model]["cv"]).abs().max() <= 0.0005 + 1e-9
    d = tables.drop(paper_results).set_index("model")["drop"]
    for model, value in published.TEXT_DROPS["same-diff"].items():
        assert abs(d[model] - value) <= 0.002, model  # PCI: 0.1586, printed 0.157 (and 15.8 %)


# ---------------------------------------------------------------------------- headroom (issue 14)
def test_headroom_share_by_hand():
    from bgrobust.tables import headroom_share
    assert headroom_share(0.99, 0.94) == pytest.approx(0.05 / 0.49)
    assert headroom_share(0.75, 0.5) == pytest.approx(1.0)            # down to chance: all the room
    assert headroom_share(0.8, 0.9) == pytest.approx(-1 / 3)           # a rise is negative
    assert np.isnan(headroom_share(0.5, 0.4))                          # no room
    assert headroom_share(0.9, 0.7, chance=0.1) == pytest.approx(0.25)
    s = headroom_share(pd.Series([0.9, 0.45], index=["ER", "actin"]), pd.Series([0.8, 0.4], index=["ER", "actin"]))
    assert list(s.index) == ["ER", "actin"] and s["ER"] == pytest.approx(0.25) and np.isnan(s["actin"])
    with pytest.raises(ValueError, match="chance"):
        headroom_share(0.9, 0.8, chance=1.0)


def test_headroom_table_by_hand():
    from bgrobust.tables import headroom

    def res(acc):
        return pd.DataFrame({"Location1": ["ER", "actin", "vacuole"], "Location2": ["actin", "vacuole", "ER"],
                             "Accuracy": acc, "StdDev": 0.0})
    t = headroom({"pifia": {"same": res([0.99, 0.99, 0.99]), "diff": res([0.9, 0.9, 0.9])},
                  "pci": {"same": res([0.7, 0.7, 0.7]), "diff": res([0.6, 0.6, 0.6])}})
    assert t.loc["pifia", "drop"] == pytest.approx(0.09)
    assert t.loc["pifia", "share"] == pytest.approx(0.09 / 0.49)
    assert t.loc["pci", "share"] == pytest.approx(0.5)                # a similar drop (0.10 vs 0.09)
    assert t.loc["pci", "share"] > 2 * t.loc["pifia", "share"]       # is a far larger share of its room
    assert t.loc["pci", "share_per_class"] == pytest.approx(0.5)
