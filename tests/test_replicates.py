"""Replicate seeds: the five experiments again with screen, training and sampling reseeded."""
import numpy as np
import pandas as pd
import pytest
import torch

from bgrobust.classify import SVMProtocol
from bgrobust.experiments import ExperimentResults
from bgrobust.replicates import Design, Replicates, run_replicates, run_seed
from bgrobust.train import TrainParams, evaluated_proteins

CLASSES4 = ("cytoplasm", "ER", "mitochondrion", "nucleus")
TINY = Design(
    screen={"proteins_per_class": 3, "n_multi": 0, "fields_per_strain": 1, "field_shape": [192, 192],
            "n_plates": 2, "cells_per_field": [8, 30], "pixel_size": 0.2},
    training={"width": 0.125, "epochs": 1, "max_crops_per_epoch": 64, "batch_size": 32},
    settings={"n_cells": 5, "centre_proteins": "pooled", "base_proteins": "same"},
    classes=CLASSES4)


def _results(rng, shift):
    """Per-pair results in the paper's layout, same > diff by ``shift`` on average."""
    pairs = [(a, b) for i, a in enumerate(CLASSES4) for b in CLASSES4[i + 1:]]
    out = {}
    for exp, level in {"base": 0.9, "same": 0.9, "mask": 0.85, "diff": 0.9 - shift, "batch": 0.88}.items():
        if exp in ("diff", "batch"):
            rows = [(a, b, g) for a, b in pairs for g in CLASSES4 if g not in (a, b)]
            df = pd.DataFrame(rows, columns=["Location1", "Location2", "Background"])
        else:
            df = pd.DataFrame(pairs, columns=["Location1", "Location2"])
        df["Accuracy"] = np.clip(level + rng.normal(0, 0.01, len(df)), 0, 1)
        df["StdDev"] = 0.01
        out[exp] = df
    return ExperimentResults({"pifia": out}, SVMProtocol(n_per_class=5), list(CLASSES4))


def test_replicates_put_the_seeds_claims_side_by_side():
    rng = np.random.default_rng(0)
    reps = Replicates({s: _results(rng, shift) for s, shift in zip([0, 1, 2], [0.1, 0.12, -0.05])})
    c = reps.claims().set_index(["section", "model"])
    row = c.loc[("4.2", "pifia")]
    assert int(row.n_seeds) == 3 and int(row.n_holds) == 2 and row.verdict == "holds in 2 of 3 seeds"
    assert row["mean"] == pytest.approx(np.mean([r.claims().set_index("section").loc["4.2", "difference"]
                                                 for r in reps.runs.values()]))
    assert row.between_seed_sd > 0.03 and "different-localization" in row.claim
    long = reps.claim_tables()
    assert sorted(long.seed.unique()) == [0, 1, 2]
    spread = reps.table1_spread().set_index(["model", "experiment"])
    assert spread.loc[("pifia", "diff"), "max"] - spread.loc[("pifia", "diff"), "min"] > 0.15
    assert spread.loc[("pifia", "base"), "between_seed_sd"] < 0.02
    assert reps.with_run(7, _results(rng, 0.1)).seeds == [7, 0, 1, 2]
    with pytest.raises(ValueError, match="already there"):
        reps.with_run(0, _results(rng, 0.1))


def test_replicates_and_design_check_their_inputs():
    rng = np.random.default_rng(1)
    one = _results(rng, 0.1)
    with pytest.raises(ValueError, match="non-empty"):
        Replicates({})
    with pytest.raises(TypeError, match=r"runs\[1\]"):
        Replicates({0: one, 1: "x"})
    other = ExperimentResults({"pci": one.results["pifia"]}, one.protocol, one.classes)
    with pytest.raises(ValueError, match="extractors"):
        Replicates({0: one, 1: other})
    single = Replicates({0: one}).claims().set_index(["section", "model"])   # one seed: its own verdicts
    own = one.claims().set_index(["section", "model"])
    np.testing.assert_allclose(single["mean"], own["difference"])
    assert single.between_seed_sd.isna().all() and single.n_seeds.eq(1).all()
    assert (single.verdict == np.where(own.holds, "holds in the one seed", "holds in no seed")).all()
    with pytest.raises(ValueError, match="n_cells"):
        Design(settings={})
    with pytest.raises(ValueError, match="n_cells"):
        Design(settings={"n_cells": 0})
    with pytest.raises(TypeError, match="screen must be a mapping"):
        Design(screen=[1])
    with pytest.raises(ValueError, match="screen_source"):
        Design(screen_source="zarr")
    with pytest.raises(ValueError, match="Design: precision"):
        Design(precision="half")
    with pytest.raises(ValueError, match="seeds is empty"):
        run_replicates(TINY, [])
    with pytest.raises(ValueError, match="distinct"):
        run_replicates(TINY, [1, 1])
    with pytest.raises(ValueError, match="parallel"):
        run_replicates(TINY, [1], parallel=0)
    with pytest.raises(ValueError, match="seed must be"):
        run_seed(TINY, -1)
    assert TINY.protocol().n_per_class == 5 and TINY.generate_options() == {"centre_proteins": "pooled",
                                                                             "base_proteins": "same"}


def test_evaluated_proteins_leave_out_every_supervised_models_training_proteins():
    t = pd.DataFrame({"strain": [f"p{i}" for i in range(8)], "kind": "single",
                      "localization": ["ER"] * 4 + ["actin"] * 4})
    trained = {"pifia": type("R", (), {"params": TrainParams.from_dict({}, model="pifia")})(),
               "deeploc": type("R", (), {"params": TrainParams.from_dict({}, model="deeploc")})()}
    ev = evaluated_proteins(t, trained)
    assert len(ev) == 4 and set(ev) < set(t.strain)
    assert evaluated_proteins(t, {"pifia": trained["pifia"]}) == sorted(t.strain)


def test_parallel_seeds_equal_serial_ones_and_differ_between_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("BGROBUST_RUNS", str(tmp_path / "a"))
    reps = run_replicates(TINY, [1, 2], parallel=2, progress=False)
    assert reps.seeds == [1, 2] and all(r.meta["seed"] == s for s, r in reps.runs.items())
    a, b = (reps.runs[s].results["pifia"]["diff"].Accuracy.to_numpy() for s in (1, 2))
    assert not np.array_equal(a, b)  # another screen, other models, other sets
    # the same seed run serially in another run folder (nothing cached) gives the same numbers
    # with the same thread count (PyTorch's CPU sums depend on it, in the last bits)
    monkeypatch.setenv("BGROBUST_RUNS", str(tmp_path / "b"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = run_seed(TINY, 2)
    finally:
        torch.set_num_threads(threads)
    for name in ("pifia", "pci", "deeploc"):
        for exp in ("base", "same", "mask", "diff", "batch"):
            if exp in serial.results[name]:
                pd.testing.assert_frame_equal(serial.results[name][exp], reps.runs[2].results[name][exp])
    assert reps.claims().n_seeds.eq(2).all()
