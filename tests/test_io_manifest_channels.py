"""A manifest may leave out the marker channels: the screen and its crops keep only those present."""
import numpy as np
import pandas as pd
import pytest

from bgrobust.dataset import DatasetParams, build_dataset
from bgrobust.io import DataError, load_screen, write_manifest
from bgrobust.synth import ScreenConfig, generate_screen


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    cfg = ScreenConfig(proteins_per_class=1, n_multi=0, fields_per_strain=1, field_shape=(192, 192),
                       n_plates=1, seed=5)
    screen = generate_screen(cfg, progress=False)
    sub = screen.fields["field"] < 4
    folder = tmp_path_factory.mktemp("screen")
    path = write_manifest(screen, folder)
    table = pd.read_csv(path)
    table = table[sub.to_numpy()]
    return screen, folder, table


def _manifest(folder, table, drop, name):
    path = folder / name
    table.drop(columns=list(drop)).to_csv(path, index=False)
    return path


def test_manifest_without_nucleus(written):
    screen, folder, table = written
    real = load_screen(_manifest(folder, table, ["nucleus"], "no_nucleus.csv"))
    assert real.meta["channels"] == ["gfp", "cytoplasm"]
    assert real.image(0).shape[0] == 2
    np.testing.assert_array_equal(real.image(0)[1], screen.image(0)[2])  # cytoplasm, not a zero plane
    ds = build_dataset(real, progress=False)
    assert ds.crops.channels == ("gfp", "cytoplasm") and ds.crops.images.shape[1] == 2
    assert ds.cell_free.channels == ("gfp", "cytoplasm")
    assert len(ds.crops) > 10


def test_gfp_only_manifest_is_segmented_from_the_gfp(written):
    screen, folder, table = written
    real = load_screen(_manifest(folder, table, ["nucleus", "cytoplasm"], "gfp_only.csv"))
    assert real.meta["channels"] == ["gfp"]
    ds = build_dataset(real, progress=False)
    assert ds.crops.channels == ("gfp",) and ds.crops.images.shape[1] == 1
    assert len(ds.crops) > 5
    params = DatasetParams.from_dict({"gfp_segmentation": {"min_diameter": 20.0, "max_diameter": 30.0}})
    with pytest.raises(DataError, match="no crop in any"):
        build_dataset(real, params, progress=False)  # the size limits are used: no cell is 20-30 um wide


def test_full_manifest_keeps_its_key(written):
    _, folder, table = written
    real = load_screen(_manifest(folder, table, [], "full.csv"))
    assert "channels" not in real.meta and real.image(0).shape[0] == 3
