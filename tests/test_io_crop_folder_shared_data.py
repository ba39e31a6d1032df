"""The crop-folder readers and from_crops on the real PCI crops in ../shared/data.

Reads ``pci-toy-subset/images/`` (300 WT2-screen cells, GFP + cytoplasmic RFP),
``yeastgfp/allOrfData.txt`` and ``yeastgfp/Sce.csv.xz``.
"""
import numpy as np
import pytest

from bgrobust.dataset import from_pci_folder
from bgrobust.io import DataError
from conftest import SHARED_DATA

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not (SHARED_DATA / "pci-toy-subset").exists(),
                       reason=f"real data folder {SHARED_DATA / 'pci-toy-subset'} is absent"),
]
HUH = SHARED_DATA / "yeastgfp" / "allOrfData.txt"
SCE = SHARED_DATA / "yeastgfp" / "Sce.csv.xz"


@pytest.fixture(scope="module")
def real():
    return from_pci_folder(SHARED_DATA / "pci-toy-subset", huh_table=HUH, gene_table=SCE, multi_localized="first", progress=False)


def test_real_pci_crops_become_a_dataset(real):
    t = real.crops.table
    assert real.crops.images.shape == (300, 2, 64, 64) and real.crops.channels == ("gfp", "cytoplasm")
    assert t.groupby("localization")["strain"].nunique().to_dict() == {"cytoplasm": 3, "mitochondrion": 2}
    assert dict(zip(t["strain"], t["orf"]))["AAC1"] == "YMR056C"
    assert not real.has_cell_free
    # masks from the RFP marker: one connected centre cell covering the crop centre, not the whole crop
    frac = t["mask_fraction"].to_numpy()
    assert np.median(frac) > 0.1 and frac.max() < 0.8
    assert real.crops.masks[:, 32, 32].mean() > 0.9
    assert t["valid"].mean() > 0.95


def test_paper_rule_keeps_single_localized_only():
    ds = from_pci_folder(SHARED_DATA / "pci-toy-subset", huh_table=HUH, gene_table=SCE, progress=False)
    t = ds.crops.table
    assert sorted(t.loc[t["kind"] == "single", "strain"].unique()) == ["AAC1", "AAC3"]


def test_gene_names_without_gene_table_do_not_match():
    with pytest.raises(DataError, match=r"allOrfData\.txt: no ORF in common with the 300 crop\(s\)"):
        from_pci_folder(SHARED_DATA / "pci-toy-subset", huh_table=HUH, progress=False)
