"""The end-to-end dataset pipeline on a small synthetic screen."""
import numpy as np
import pytest

from bgrobust.dataset import DatasetParams, build_dataset, load_or_build
from bgrobust.synth import ScreenConfig, generate_screen

CFG = ScreenConfig(proteins_per_class=1, n_multi=2, fields_per_strain=1, field_shape=(192, 192),
                   cells_per_field=(5, 25), n_plates=2)


@pytest.fixture(scope="module")
def screen():
    return generate_screen(CFG, progress=False)


def test_pipeline_report_adds_up(screen):
    ds = build_dataset(screen, progress=False)
    r = ds.report
    assert r["n_segmented"] == r["n_crops"] + r["n_dropped_at_border"]
    t = ds.crops.table
    assert r["n_valid"] == int(t.valid.sum()) == len(ds.valid_crops())
    assert (t.valid == ~(t.low_gfp | t.mask_too_small | t.mask_too_large)).all()
    assert ds.crops.images.shape[1:] == (3, 64, 64)
    assert r["n_cell_free"] == len(ds.cell_free) and len(ds.cell_free) > 0
    # crops know their strain, plate and truth
    assert t.strain.notna().all() and t.plate.notna().all()
    single = t[(t.kind == "single") & t.true_localization.notna()]
    assert (single.true_localization == single.localization).all()
    assert len(ds.segmentation_quality) == screen.n_fields


def test_cached_dataset_is_reused_and_keyed_by_parameters(tmp_path, screen):
    a = load_or_build(screen, DatasetParams(), tmp_path, progress=False)
    b = load_or_build(screen, DatasetParams(), tmp_path, progress=False)
    np.testing.assert_array_equal(a.crops.images, b.crops.images)
    load_or_build(screen, DatasetParams(cellfree_stride=16), tmp_path, progress=False)
    assert len(list(tmp_path.glob("dataset-*"))) == 2


def test_params_from_dict_validates_names():
    p = DatasetParams.from_dict({"crop_size": 64, "segmentation": {"smooth": 2.0}})
    assert p.segmentation.smooth == 2.0
    with pytest.raises(ValueError, match="unknown key"):
        DatasetParams.from_dict({"crop": 64})
    with pytest.raises(ValueError, match="segmentation parameters"):
        DatasetParams.from_dict({"segmentation": {"sigma": 1}})


def test_images_rewritten_under_the_same_names_give_new_crops(tmp_path, screen):
    """The dataset key covers the bytes of every image a manifest names, not only the manifest."""
    from bgrobust.dataset import dataset_key, open_screen
    from bgrobust.io import write_manifest

    path = write_manifest(screen, tmp_path / "screen")
    before = open_screen("manifest", manifest_path=path)
    a = load_or_build(before, cache_dir=tmp_path / "cache", progress=False)
    gfp = tmp_path / "screen" / "images" / "field00000_gfp.tif"
    import tifffile
    tifffile.imwrite(gfp, (tifffile.imread(gfp) // 2).astype(np.uint16))  # same name, new pixels
    after = open_screen("manifest", manifest_path=path)
    assert dataset_key(after, DatasetParams()) != dataset_key(before, DatasetParams())
    b = load_or_build(after, cache_dir=tmp_path / "cache", progress=False)
    field0 = (a.crops.table.field == 0).to_numpy()
    assert field0.any() and not np.array_equal(a.crops.images[field0], b.crops.images[(b.crops.table.field == 0).to_numpy()])
    assert len(list((tmp_path / "cache").glob("dataset-*"))) == 2


def test_a_dataset_written_field_by_field_is_the_dataset_built_in_memory(tmp_path, screen):
    """build_dataset(out=) appends each field's crops to the entry's .npy files as they come
    (one field held at a time) and gives the arrays, tables and report of the in-memory build."""
    import pandas as pd

    from bgrobust.dataset import Dataset

    here = build_dataset(screen, progress=False)
    there = build_dataset(screen, progress=False, out=tmp_path / "ds", n_jobs=2)
    saved = Dataset.load(here.save(tmp_path / "saved"))
    assert isinstance(there.crops.images, np.memmap)
    for other in (there, saved):
        for name in ("crops", "cell_free"):
            a, b = getattr(here, name), getattr(other, name)
            np.testing.assert_array_equal(b.images, a.images)
            np.testing.assert_array_equal(b.masks, a.masks)
            assert b.images.dtype == a.images.dtype and b.masks.dtype == a.masks.dtype
            # parquet gives the empty per-field cell-free tables' columns their numeric dtypes
            pd.testing.assert_frame_equal(b.table, a.table, check_dtype=False)
            pd.testing.assert_frame_equal(b.table, getattr(saved, name).table)
            assert b.channels == a.channels
        pd.testing.assert_frame_equal(other.segmentation_quality, here.segmentation_quality)
        assert other.report == here.report


def test_lazy_valid_crops_stream_from_the_files_with_the_same_digest_and_features(tmp_path, screen):
    from bgrobust import models
    from bgrobust._npy import Rows
    from bgrobust.cache import array_digest
    from bgrobust.features import extract

    ds = build_dataset(screen, progress=False, out=tmp_path / "ds")
    eager, lazy = ds.valid_crops(), ds.valid_crops(lazy=True)
    assert isinstance(lazy.images, Rows) and isinstance(lazy.masks, Rows) and len(lazy) == len(eager)
    np.testing.assert_array_equal(np.asarray(lazy.images), eager.images)
    np.testing.assert_array_equal(lazy.masks[2:5], eager.masks[2:5])
    assert array_digest(lazy.images) == array_digest(eager.images)       # one cache key for both
    model = models.build("pifia", width=0.25, random_state=0)
    a = extract(model, eager, progress=False, batch_size=7)
    np.testing.assert_array_equal(extract(model, lazy, progress=False, batch_size=7), a)
    cached = extract(model, eager, progress=False, batch_size=7, cache_dir=tmp_path / "f")
    np.testing.assert_array_equal(extract(model, lazy, progress=False, batch_size=7, cache_dir=tmp_path / "f"),
                                  cached)
    assert len(list((tmp_path / "f").glob("features-*"))) == 1
