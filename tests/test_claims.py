"""The paper's claims as tests on per-class numbers (bgrobust.claims)."""
import numpy as np
import pandas as pd
import pytest

from bgrobust import claims
from bgrobust.vocabulary import CLASSES


def test_paired_difference_by_hand():
    pc = pd.DataFrame({"a": [0.9, 0.8, 0.7, np.nan], "b": [0.8, 0.8, 0.5, 0.4]}, index=list("wxyz"))
    d = claims.paired_difference(pc, "a", "b")
    diffs = np.array([0.1, 0.0, 0.2])
    assert d["n"] == 3
    assert d["mean"] == pytest.approx(diffs.mean())
    assert d["three_se"] == pytest.approx(3 * diffs.std(ddof=1) / np.sqrt(3))
    assert d["low"] == pytest.approx(d["mean"] - d["three_se"])


def test_paired_difference_errors():
    pc = pd.DataFrame({"a": [0.9], "b": [0.8]})
    with pytest.raises(KeyError, match="no column 'c'"):
        claims.paired_difference(pc, "a", "c")
    with pytest.raises(ValueError, match="need >= 2"):
        claims.paired_difference(pc, "a", "b")


def _results(same_minus_diff: float, rng) -> dict:
    """Per-pair results where every pair/triplet has a fixed accuracy plus noise."""
    pairs = [(a, b) for i, a in enumerate(CLASSES) for b in CLASSES[i + 1:]]
    def pair_df(level):
        return pd.DataFrame({"Location1": [a for a, _ in pairs], "Location2": [b for _, b in pairs],
                             "Accuracy": level + rng.normal(0, 0.005, len(pairs)), "StdDev": 0.0})
    trip = [(a, b, g) for a, b in pairs for g in CLASSES if g not in (a, b)]
    def trip_df(level):
        return pd.DataFrame({"Location1": [t[0] for t in trip], "Location2": [t[1] for t in trip],
                             "Background": [t[2] for t in trip],
                             "Accuracy": level + rng.normal(0, 0.005, len(trip)), "StdDev": 0.0})
    return {"base": pair_df(0.9), "same": pair_df(0.9), "mask": pair_df(0.85),
            "diff": trip_df(0.9 - same_minus_diff), "batch": trip_df(0.88)}


def test_claims_hold_and_fail_as_constructed():
    rng = np.random.default_rng(0)
    v = claims.evaluate_claims({"pifia": _results(0.1, rng), "deeploc": _results(-0.05, rng)})
    by = v.set_index(["section", "model"])
    assert by.loc[("4.2", "pifia"), "holds"]
    assert not by.loc[("4.2", "deeploc"), "holds"]
    assert by.loc[("4.2", "deeploc"), "verdict"] == "reversed"
    assert by.loc[("4.1", "pifia"), "holds"]          # same == base by construction
    assert "not claimed" in by.loc[("4.1", "deeploc"), "verdict"]
    assert by.loc[("4.4", "pifia"), "holds"]          # same 0.9 > mask 0.85
    assert by.loc[("4.3", "pifia"), "holds"]          # batch 0.88 > diff 0.8
    assert by.loc[("4.2", "pifia"), "difference"] == pytest.approx(0.1, abs=0.005)
