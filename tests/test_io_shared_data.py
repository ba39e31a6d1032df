"""bgrobust.io on the real third-party files in ../shared/data (never copied into the repo).

Reads ``yeastgfp/allOrfData.txt`` (Huh et al. 2003), ``yeastgfp/Sce.csv.xz`` (CHNOSZ gene
map) and ``pci-toy-subset/images/`` (Paired Cell Inpainting crops).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bgrobust.vocabulary import CLASSES
from bgrobust.io import (
    gene_to_orf,
    huh_labels,
    join_by_orf,
    multi_localized,
    read_huh_table,
    read_pci_crops,
    single_localized,
)
from conftest import SHARED_DATA

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"real data folder {SHARED_DATA} is absent"),
]

HUH = SHARED_DATA / "yeastgfp" / "allOrfData.txt"
SCE = SHARED_DATA / "yeastgfp" / "Sce.csv.xz"
PCI = SHARED_DATA / "pci-toy-subset"

SINGLE_COUNTS = {
    "cytoplasm": 823, "nucleus": 496, "mitochondrion": 485, "ER": 266, "vacuole": 121,
    "nucleolus": 70, "cell periphery": 57, "vacuolar membrane": 54, "nuclear periphery": 53,
    "spindle pole": 39, "endosome": 34, "actin": 27, "peroxisome": 21, "Golgi": 15, "bud neck": 15,
}
PCI_ORFS = {"AAC1": "YMR056C", "AAC3": "YBR085W", "AAH1": "YNL141W", "AAP1": "YHR047C", "AAR2": "YBL074C"}


@pytest.fixture(scope="module")
def huh():
    return read_huh_table(HUH)


def test_huh_table_shape(huh):
    assert len(huh) == 6234
    assert set(CLASSES) <= set(huh.columns)
    assert int(huh["ambiguous"].sum()) == 237


def test_single_localized_counts(huh):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no class falls under five proteins
        labels = single_localized(huh)
    assert len(labels) == 2576 == sum(SINGLE_COUNTS.values())
    assert labels["localization"].value_counts().to_dict() == SINGLE_COUNTS
    assert labels.attrs["excluded_classes"] == {}
    assert not labels["orf"].duplicated().any()


def test_single_localized_variants(huh):
    assert len(single_localized(huh, drop_ambiguous=False)) == 2598
    assert len(single_localized(huh, exclusive=False)) == 2654
    assert len(single_localized(huh, exclusive=False, drop_ambiguous=False)) == 2688


def test_multi_localized_counts(huh):
    multi = multi_localized(huh)
    assert len(multi) == 1136
    assert multi["localizations"].map(len).min() == 2
    assert len(multi_localized(huh, drop_ambiguous=True)) == 1093


def test_pci_crops():
    crops, table = read_pci_crops(PCI)
    assert crops.shape == (300, 2, 64, 64) and crops.dtype == np.float32
    assert np.isfinite(crops).all() and crops.min() >= 0.0 and crops.max() <= 1.0
    assert table["gene"].value_counts().to_dict() == {gene: 60 for gene in PCI_ORFS}
    assert not table.duplicated(["gene", "field", "cell"]).any()


def test_gene_to_orf_and_join(huh):
    mapping = gene_to_orf(SCE)
    assert {gene: mapping[gene] for gene in PCI_ORFS} == PCI_ORFS
    strains = pd.DataFrame({"strain": list(PCI_ORFS)})
    strains["orf"] = strains["strain"].map(mapping)
    out = join_by_orf(strains, huh_labels(huh)).set_index("strain")
    assert out.attrs["join"] == {"matched": 5, "unmatched": 0}
    assert out.loc["AAC1", "orf"] == "YMR056C"
    assert out.loc["AAC1", "kind"] == "single" and out.loc["AAC1", "localization"] == "mitochondrion"
    assert out.loc["AAC3", "localization"] == "mitochondrion"
    for gene in ("AAH1", "AAP1", "AAR2"):
        assert out.loc[gene, "kind"] == "multi"
        assert out.loc[gene, "localizations"] == ("cytoplasm", "nucleus")
