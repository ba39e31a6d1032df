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


# ---------------------------------------------------------------------------- 4.1 as equivalence (issue 14)
def _close_results(shift: float, noise: float, rng) -> dict:
    """same = base + shift + per-class noise; the other experiments are irrelevant here."""
    res = _results(0.1, rng)
    same = res["base"].copy()
    same["Accuracy"] = same["Accuracy"] + shift + rng.normal(0, noise, len(same))
    res["same"] = same
    return res


def test_equivalence_by_hand():
    assert claims.equivalence({"low": -0.019, "high": 0.019}) == (True, "holds (interval inside ±0.02)")
    assert claims.equivalence({"low": -0.021, "high": 0.0})[1].startswith("not shown")
    assert claims.equivalence({"low": 0.02, "high": 0.1})[1].startswith("fails")
    assert claims.equivalence({"low": -0.3, "high": -0.02})[1].startswith("fails")
    assert claims.equivalence({"low": 0.01, "high": 0.03}, margin=0.05)[0]
    with pytest.raises(ValueError, match="margin"):
        claims.equivalence({"low": 0, "high": 0}, margin=0)
    with pytest.raises(ValueError, match="low"):
        claims.equivalence({"low": 0.1, "high": 0})


def test_claim_41_decided_on_the_interval_not_the_point():
    from bgrobust.published import SAME_VS_BASE_MAX_DIFF
    assert claims.CLAIMS[0][-1] == SAME_VS_BASE_MAX_DIFF
    rng = np.random.default_rng(1)
    # a mean difference well inside the margin but a noisy one: the point says "holds",
    # the interval (±3 SE over classes) crosses the margin, so equivalence is not shown
    noisy = _close_results(0.005, 0.2, rng)
    by_interval = claims.evaluate_claims({"pifia": noisy}).set_index("section")
    by_point = claims.evaluate_claims({"pifia": noisy}, close_rule="point").set_index("section")
    row = by_interval.loc["4.1"]
    assert abs(row["difference"]) < SAME_VS_BASE_MAX_DIFF
    assert row["high"] > SAME_VS_BASE_MAX_DIFF or row["low"] < -SAME_VS_BASE_MAX_DIFF
    assert not row["holds"] and row["verdict"].startswith("not shown")
    assert by_point.loc["4.1", "holds"]
    # a precise difference inside the margin holds; a precise shift of 0.05 fails
    assert claims.evaluate_claims({"pifia": _close_results(0.0, 0.001, rng)}).set_index("section").loc["4.1", "holds"]
    far = claims.evaluate_claims({"pifia": _close_results(0.05, 0.001, rng)}).set_index("section").loc["4.1"]
    assert not far["holds"] and far["verdict"].startswith("fails")
    with pytest.raises(ValueError, match="close_rule"):
        claims.evaluate_claims({"pifia": noisy}, close_rule="mean")


def test_across_seeds_spread_beside_within_run_interval():
    rng = np.random.default_rng(2)
    per_seed = [claims.evaluate_claims({"pci": _results(d, rng)}) for d in (0.03, 0.13, 0.08)]
    out = claims.across_seeds(per_seed)
    row = out.loc[("4.2", "pci")]
    diffs = [t.set_index("section").loc["4.2", "difference"] for t in per_seed]
    assert row["n_seeds"] == 3
    assert row["mean"] == pytest.approx(np.mean(diffs))
    assert row["between_seed_sd"] == pytest.approx(np.std(diffs, ddof=1))
    halves = [(t.set_index("section").loc["4.2", "high"] - t.set_index("section").loc["4.2", "low"]) / 2
              for t in per_seed]
    assert row["within_run_halfwidth"] == pytest.approx(np.mean(halves))
    # seeds far apart relative to each run's interval: the spread dwarfs the interval
    assert row["sd_over_halfwidth"] > 1
    assert row["verdict"] == "holds in every seed"
    with pytest.raises(ValueError, match=">= 2 seeds"):
        claims.across_seeds(per_seed[:1])
    with pytest.raises(ValueError, match="lacks column"):
        claims.across_seeds([per_seed[0], per_seed[1].drop(columns="low")])
