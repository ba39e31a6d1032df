"""The simulator's facts and calibration, checked against real third-party files.

Reads ``../shared/data/yeastgfp/allOrfData.txt`` (Huh et al. 2003) to recompute the
numbers in :mod:`bgrobust.synth.biology`, and ``../shared/data/pci-toy-subset/`` (real
WT2-screen crops) to check the realism measure on real cells.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from bgrobust.vocabulary import CLASSES
from bgrobust.io import read_huh_table, read_pci_crops
from conftest import SHARED_DATA
from bgrobust.synth import biology
from bgrobust.synth.realism import compare_crops, holdout_split

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"real data folder {SHARED_DATA} is absent"),
]


@pytest.fixture(scope="module")
def huh():
    t = read_huh_table(SHARED_DATA / "yeastgfp" / "allOrfData.txt")
    visualized = t["GFP visualized?"].astype(str).str.strip().eq("visualized")
    flags = t[list(CLASSES)]
    flags = flags if flags.dtypes.iloc[0] == bool else flags.eq("T")
    log_a = np.log10(pd.to_numeric(t["abundance"], errors="coerce"))
    return visualized, flags, flags.sum(axis=1), log_a


def test_class_abundances_and_their_spread_are_those_of_huh(huh):
    visualized, flags, n, log_a = huh
    residuals = []
    for c in CLASSES:
        m = flags[c] & (n == 1) & visualized & log_a.notna()
        med = float(np.median(log_a[m]))
        assert biology.CLASS_LOG10_ABUNDANCE[c] == pytest.approx(med, abs=6e-4), c
        residuals.append(log_a[m] - biology.CLASS_LOG10_ABUNDANCE[c])
    q = np.percentile(pd.concat(residuals), np.arange(0, 101, 5))
    np.testing.assert_allclose(biology.LOG10_ABUNDANCE_RESIDUAL_QUANTILES, q, atol=6e-4)


def test_multi_localized_combinations_are_those_of_huh(huh):
    visualized, flags, n, _ = huh
    counts = Counter()
    for i in np.flatnonzero(((n >= 2) & visualized).to_numpy()):
        counts[tuple(c for c in CLASSES if flags[c].iloc[i])] += 1
    assert sum(counts.values()) == 1136
    assert biology.MULTI_LOCALIZATIONS == {k: v for k, v in counts.items() if v >= 5}


def test_real_crops_are_indistinguishable_from_themselves():
    crops, table = read_pci_crops(SHARED_DATA / "pci-toy-subset")
    held = holdout_split(table["gene"])
    assert held.sum() == 150
    mito = table["gene"].isin(["AAC1", "AAC3"]).to_numpy()
    report = compare_crops(crops[mito & ~held], crops[mito & held], random_state=0)
    assert (report.accuracy["accuracy"] < 0.7).all(), report.accuracy
    # and a real class is told apart from another real class
    other = compare_crops(crops[mito], crops[~mito][:120], random_state=0)
    assert (other.accuracy["accuracy"] > 0.8).all(), other.accuracy
    med = report.statistics.xs("median", axis=1, level=1)
    assert 850 < med.loc["area", "real"] < 1150  # ~35 px cells in 64 px crops
