"""robustness_report on the inputs a lab brings: real crops through from_pci_folder (two classes) and
features computed elsewhere (a table keyed by crop id)."""
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from bgrobust.dataset import from_pci_folder
from bgrobust.experiments import setting_crop_ids
from bgrobust.robustness import robustness_report
from bgrobust.settings import generate_settings

REAL = SHARED_DATA / "pci-toy-subset"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real data folder {REAL} is absent")


@pytest.fixture(scope="module")
def real():
    y = SHARED_DATA / "yeastgfp"
    return from_pci_folder(REAL, huh_table=y / "allOrfData.txt", gene_table=y / "Sce.csv.xz",
                           multi_localized="first", progress=False)


def outside_centre(crops):
    """GFP statistics outside a central disc: reads only the background."""
    yy, xx = np.mgrid[:64, :64]
    ring = (yy - 31.5) ** 2 + (xx - 31.5) ** 2 > 20 ** 2
    g = crops[:, 0][:, ring]
    return np.c_[g.mean(1), g.std(1)]


@needs_real
@pytest.mark.shared_data
def test_real_crops_two_classes_other_class_design(real):
    rep = robustness_report(outside_centre, dataset=real, n_cells=40, channels=("gfp",), preprocess=None,
                            progress=False)
    assert rep.meta["design"] == "other-class background"
    assert "batch" in rep.meta["skipped"] and "cell-free" in rep.meta["skipped"]["batch"]
    t = rep.table.set_index("experiment")
    assert set(t.index) == {"base", "same", "other", "mask"} and (t.interval == "folds").all()
    # a background reader: the aligned background helps, the shared other-class background does not
    assert t.loc["same", "mean"] > t.loc["other", "mean"] + 0.1 and abs(t.loc["other", "mean"] - 0.5) < 0.15
    assert rep.drop["low"] > 0 and "reads the background" in rep.verdict


@needs_real
@pytest.mark.shared_data
def test_precomputed_features_equal_the_callable(real):
    sets = generate_settings(real, 30, classes=["mitochondrion", "cytoplasm"], settings=("base", "same", "diff", "mask"),
                             swap_backgrounds="all", shared_backgrounds=True, progress=False)
    direct = robustness_report(outside_centre, sets=sets, channels=("gfp",), preprocess=None, progress=False)
    frame = pd.DataFrame(outside_centre(np.asarray(sets.images)), columns=["f0", "f1"])
    frame["crop_id"] = setting_crop_ids(sets)
    pre = robustness_report(frame.sample(frac=1, random_state=1), sets=sets, progress=False)
    pd.testing.assert_frame_equal(direct.table, pre.table)
    assert direct.drop == pytest.approx(pre.drop)
