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


# --------------------------------------------------------------------------- chapter tables


from types import SimpleNamespace  # noqa: E402

from bgrobust.constraints import ParameterError  # noqa: E402
from bgrobust.dataset import DatasetParams  # noqa: E402

STRAINS = pd.DataFrame({"strain": [0, 1, 2, 3], "kind": ["single", "single", "multi", "multi"],
                        "plate": [1, 1, 2, 3], "localization": ["actin", "ER", "ER", "Golgi"],
                        "mixing": [None, None, "within_cell", "between_cells"]})
FIELDS = pd.DataFrame({"strain": [0, 0, 1, 1, 2, 2, 3, 3]})


def test_cells_per_field_counts_empty_fields_and_checks_n_fields():
    t = pd.DataFrame({"field": [1, 1, 1, 4]})
    assert tables.cells_per_field(t, 6).tolist() == [0, 3, 0, 0, 1, 0]
    with pytest.raises(ParameterError, match="n_fields"):
        tables.cells_per_field(t, 0)
    with pytest.raises(ValueError, match="field"):
        tables.cells_per_field(pd.DataFrame({"x": [1]}), 2)


def test_screen_facts_counts_kinds_plates_and_field_size():
    crops = pd.DataFrame({"field": [0, 0, 0, 5]})
    f = tables.screen_facts(STRAINS, FIELDS, (3, 200, 300), crops)
    assert (f["n_strains"], f["n_single"], f["n_multi"]) == (4, 2, 2)
    assert (f["n_within"], f["n_between"], f["n_plates"], f["n_fields"]) == (1, 1, 3, 8)
    assert f["fields_per_strain"] == 2
    assert f["field_size"] == "200 x 300"  # height x width
    assert f["cells_per_field_range"] == "0 to 3"
    no_mix = tables.screen_facts(STRAINS.drop(columns="mixing"), FIELDS, (3, 8, 8), crops)
    assert no_mix["n_within"] == no_mix["n_between"] == 0
    with pytest.raises(ValueError, match="field_shape"):
        tables.screen_facts(STRAINS, FIELDS, (200, 300), crops)
    with pytest.raises(ValueError, match="kind"):
        tables.screen_facts(STRAINS.drop(columns="kind"), FIELDS, (3, 8, 8), crops)


def test_segmentation_summary_pools_fields_and_weights_by_matches():
    q = pd.DataFrame({"n_true": [10, 20], "n_pred": [12, 18], "n_matched": [8, 16],
                      "mean_iou": [0.5, 0.8], "centroid_error": [2.0, np.nan]})
    v = tables.segmentation_summary(q).set_index("metric")["value"]
    assert v["true cells"] == 30 and v["segmented objects"] == 30 and v["matched at IoU > 0.5"] == 24
    assert v["precision"] == pytest.approx(24 / 30) and v["recall"] == pytest.approx(24 / 30)
    assert v["object F1"] == pytest.approx(48 / 60)
    assert v["mean IoU of matches"] == pytest.approx((8 * 0.5 + 16 * 0.8) / 24)
    assert v["centroid error (px)"] == pytest.approx(8 * 2.0 / 24)  # NaN counts as 0, as before
    empty = tables.segmentation_summary(q.iloc[:0])
    assert len(empty) == 1 and "no truth" in empty.metric.iloc[0]
    with pytest.raises(ValueError, match="mean_iou"):
        tables.segmentation_summary(q.drop(columns="mean_iou"))


def test_filter_steps_in_pipeline_order_and_names_a_missing_key():
    report = {k: i for i, (k, _) in enumerate(tables.FILTER_STEPS)}
    steps = tables.filter_steps(report)
    assert steps["count"].tolist() == list(range(len(tables.FILTER_STEPS)))
    assert steps.step.iloc[0] == "segmented cells" and steps.step.iloc[-1] == "valid crops"
    del report["n_low_gfp"]
    with pytest.raises(KeyError, match="n_low_gfp"):
        tables.filter_steps(report)


def test_dataset_beside_paper_takes_published_facts_and_run_parameters():
    params = DatasetParams(crop_size=32)
    t = tables.dataset_beside_paper(STRAINS, FIELDS, params, 77, label="this run (ci)").set_index("quantity")
    assert list(t.columns) == ["paper (published)", "this run (ci)"]
    assert t.loc["strains"].tolist() == [published.DATASET["strains"], 4]
    assert t.loc["localization classes", "this run (ci)"] == 3
    assert t.loc["crop size (px)"].tolist() == [published.DATASET["crop_size"], 32]
    assert t.loc["mask coverage kept (%)", "paper (published)"] == "5-95"
    assert t.loc["cell-free stride / distance (px)", "paper (published)"] == "32 / 50"
    assert t.loc["valid crops", "this run (ci)"] == 77
    assert t.loc["valid crops", "paper (published)"].startswith("2.67 million")


class _Report:
    def __init__(self, value):
        self.value = value

    def table(self, statistics):
        return pd.DataFrame({"real": [f"{self.value}r"] * len(statistics),
                             "synthetic": [f"{self.value}s"] * len(statistics)}, index=list(statistics))


def test_realism_tables():
    t = tables.realism_statistics({("mitochondrion",): _Report(1), ("cytoplasm", "nucleus"): _Report(2)})
    assert list(t.index) == list(tables.REALISM_STATISTICS)
    assert t[("cytoplasm + nucleus", "synthetic")].iloc[0] == "2s"
    assert t[("mitochondrion", "real")].iloc[0] == "1r"
    with pytest.raises(ValueError, match="non-empty"):
        tables.realism_statistics({})
    s = pd.DataFrame({"classes": ["a"], "features": ["pixels"], "accuracy": [0.51249], "se": [0.02351]})
    r = tables.realism_accuracies(s)
    assert (r.accuracy.iloc[0], r.se.iloc[0]) == (0.512, 0.024)
    assert s.accuracy.iloc[0] == 0.51249  # the input is left alone


def _train_result(losses, width=0.5):
    import torch

    h = pd.DataFrame({"epoch": 1, "step": np.arange(1, len(losses) + 1), "loss": losses})
    return SimpleNamespace(history=h, params=SimpleNamespace(width=width, epochs=2),
                           model=torch.nn.Linear(4, 2), n_train=50, seconds=12.345)


def test_training_table_losses_over_first_and_last_tenth():
    losses = np.r_[[4.0, 2.0], np.ones(16), [0.5, 0.1]]
    t = tables.training_table({"pifia": _train_result(losses), "deeploc": _train_result([1.0], 1.0)})
    assert t.model.tolist() == ["PIFiA", "DeepLoc"]
    row = t.iloc[0]
    assert row["loss first 10%"] == 3.0 and row["loss last 10%"] == 0.3
    assert row["parameters"] == 10 and row["steps"] == 20 and row["seconds"] == 12.3
    assert row["objective"] == tables.MODEL_OBJECTIVES["pifia"]
    assert t.iloc[1]["loss first 10%"] == t.iloc[1]["loss last 10%"] == 1.0
    assert np.isnan(row["last epoch change"])                        # one epoch: nothing to compare
    two = _train_result([4.0, 4.0, 3.0, 3.0])
    two.history["epoch"] = [1, 1, 2, 2]
    assert tables.training_table({"pci": two}).iloc[0]["last epoch change"] == -0.25   # 3 against 4
    with pytest.raises(ValueError, match="non-empty"):
        tables.training_table({})


LAYER_ACC = pd.DataFrame(
    [("pci", "trained", "max", "conv3", 0.91234), ("pci", "trained", "max", "conv4", 0.85),
     ("pci", "trained", "mean", "conv3", 0.7), ("pci", "trained", "mean", "conv4", 0.8),
     ("pci", "untrained", "mean", "conv3", 0.6), ("pci", "untrained", "mean", "conv4", 0.65),
     ("pifia", "trained", "mean", "conv8", 0.9), ("pifia", "untrained", "mean", "conv8", 0.95)],
    columns=["model", "variant", "pooling", "column", "accuracy"])


def test_supp_table1_beside_published_then_ours_per_model():
    t = tables.supp_table1_beside(LAYER_ACC, published.supp_table1())
    assert list(t.columns) == ["model", "source", *tables.LAYER_COLUMNS]
    assert t.model.tolist() == ["PIFiA"] * 3 + ["PCI"] * 4  # the paper's model order
    assert t.source.tolist()[3:] == ["published (paper)", "ours, trained, max-pooled",
                                     "ours, trained, mean-pooled", "ours, untrained, mean-pooled"]
    pub = published.supp_table1()
    pci_pub = pub[(pub.model == "pci") & (pub.layer == "conv4")].accuracy.iloc[0]
    assert t.iloc[3]["conv4"] == pci_pub
    assert t.iloc[4]["conv3"] == 0.9123  # rounded to 4 digits
    assert np.isnan(t.iloc[4]["conv8"])   # PCI has no conv8
    with pytest.raises(ValueError, match="pooling"):
        tables.supp_table1_beside(LAYER_ACC.drop(columns="pooling"), pub)


def test_layer_summary_best_layer_untrained_and_published():
    pub = published.supp_table1()
    t = tables.layer_summary(LAYER_ACC, pub, {"pci": "conv4", "pifia": "conv8"}, "mean").set_index("model")
    pci = t.loc["PCI"]
    assert pci["ours at paper's layer (mean)"] == 0.8 and pci["our best layer"] == "conv4"
    assert pci["untrained at paper's layer"] == 0.65
    assert pci["published at paper's layer"] == pub[(pub.model == "pci") & (pub.layer == "conv4")].accuracy.iloc[0]
    best_max = tables.layer_summary(LAYER_ACC[LAYER_ACC.model == "pci"], pub, {"pci": "conv4"}, "max")
    assert best_max["our best layer"].iloc[0] == "conv3" and best_max["our best accuracy"].iloc[0] == 0.912
    with pytest.raises(ValueError, match="no trained 'centre'"):
        tables.layer_summary(LAYER_ACC, pub, {"pci": "conv4", "pifia": "conv8"}, "centre")
    with pytest.raises(KeyError, match="best_layers"):
        tables.layer_summary(LAYER_ACC, pub, {"pci": "conv4"}, "mean")


def test_settings_overview_in_experiment_order():
    sets = pd.DataFrame({"setting": ["diff", "base", "base", "batch"], "set": list("abcd"),
                         "n": [5, 4, 2, 3], "shortfall": [False, False, True, True]})
    o = tables.settings_overview(sets)
    assert o.setting.tolist() == ["base", "diff", "batch"]
    assert o.name.tolist() == ["Baseline", "Diff Loc Swap", "Cell-Free Diff Loc Swap"]
    base = o.iloc[0]
    assert (base.sets, base.crops, base.min_per_set, base.short_sets) == (2, 6, 2, 1)


def test_trained_vs_untrained_pairs_each_model_with_its_copy():
    d = pd.DataFrame({"extractor": ["PIFiA", "PIFiA, untrained", "PCI", "PCI, untrained"],
                      "base": [0.9, 0.7, 0.8, 0.85], "diff": [0.6, 0.65, 0.5, 0.55],
                      "drop": [0.3, 0.02, 0.2, 0.1]})
    t = tables.trained_vs_untrained(d, {"pci": "PCI", "pifia": "PIFiA"})
    assert t.model.tolist() == ["PCI", "PIFiA"]
    assert t.iloc[0].tolist()[1:] == [0.8, 0.85, 0.5, 0.55, 0.2, 0.1]
    with pytest.raises(KeyError, match="DeepLoc, untrained"):
        tables.trained_vs_untrained(d, {"deeploc": "DeepLoc"})


def test_two_class_summary_drop_interval_comes_from_the_folds():
    def r(acc, sd):
        return pd.DataFrame({"Location1": ["actin"], "Location2": ["ER"], "Accuracy": [acc], "StdDev": [sd]})
    t = tables.two_class_summary({"m": {"base": r(0.80, 0.05), "same": r(0.90, 0.05), "other": r(0.70, 0.05)}},
                                 n_splits=5)
    row = t.iloc[0]
    se = np.sqrt((0.05 ** 2 + 0.05 ** 2) / 5)
    assert row["drop"] == pytest.approx(0.2) and row["drop_high"] - row["drop"] == pytest.approx(3 * se)
    assert not row["artefact_ok"]                 # |0.90 - 0.80| >= 0.02
    assert "Other-Class Background" in tables.format_two_class(t).columns
    with pytest.raises(KeyError, match="other"):
        tables.two_class_summary({"m": {"base": r(0.8, 0.0), "same": r(0.9, 0.0)}})
