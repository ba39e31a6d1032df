"""The five image settings: compositing, standardisation, generation, caching, errors."""
import warnings

import numpy as np
import pandas as pd
import pytest

from bgrobust.crops import CropSet
from bgrobust.dataset import Dataset, build_dataset
from conftest import SHARED_DATA
import bgrobust.settings as settings_module
from bgrobust.imageops import composite, composite_example, protein_stats, standardize, stats_for
from bgrobust.settings import (_rng, example_per_setting, generate_settings, pixel_values, read_example_pair,
                               standardisation_histograms)
from bgrobust.vocabulary import EXPERIMENT_TITLES, EXPERIMENTS
from bgrobust.synth import ScreenConfig, generate_screen

# tiny screen (~2 s): 2 proteins per class, sparse fields so that some classes have cell-free crops
CFG = ScreenConfig.from_dict({"proteins_per_class": 2, "n_multi": 0, "fields_per_strain": 1,
                              "field_shape": [192, 192], "n_plates": 2, "cells_per_field": [8, 30],
                              "pixel_size": 0.2})  # the small scale keeps these logic tests fast
# classes of that screen whose two proteins both have cell-free crops
CLASSES4 = ("cytoplasm", "Golgi", "mitochondrion", "spindle pole")
N = 5
EXAMPLE_PAIR = "paper-results/generate_data_example"


@pytest.fixture(scope="module")
def ds():
    return build_dataset(generate_screen(CFG, progress=False), progress=False)


@pytest.fixture(scope="module")
def sets(ds, tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate_settings(ds, N, classes=CLASSES4, random_state=0, progress=False,
                                 cache_dir=tmp_path_factory.mktemp("settings"))


def _stats(ds):
    return protein_stats(ds.crops)


# -- compositing -----------------------------------------------------------------------

@pytest.mark.skipif(not (SHARED_DATA / EXAMPLE_PAIR).is_dir(), reason="paper example pair not available")
def test_composite_example_on_the_papers_pair_is_exact():
    fg, bg = read_example_pair(SHARED_DATA / EXAMPLE_PAIR)
    assert fg.shape == bg.shape == (64, 64) and fg.dtype == bg.dtype == np.uint16
    out = composite_example(fg, bg)
    assert out.dtype == np.uint16
    inside = fg > 0
    assert int(inside.sum()) == 642
    np.testing.assert_array_equal(out[inside], fg[inside])
    np.testing.assert_array_equal(out[~inside], bg[~inside])


def test_composite_shapes_and_errors():
    rng = np.random.default_rng(0)
    fg, bg = rng.random((2, 2, 3, 8, 8))
    m = rng.random((2, 8, 8)) > 0.5
    out = composite(fg, m, bg)
    for i in range(2):
        np.testing.assert_array_equal(composite(fg[i], m[i], bg[i]), out[i])
        for c in range(3):
            np.testing.assert_array_equal(composite(fg[i, c], m[i], bg[i, c]), out[i, c])
            assert np.array_equal(out[i, c][m[i]], fg[i, c][m[i]])
            assert np.array_equal(out[i, c][~m[i]], bg[i, c][~m[i]])
    with pytest.raises(ValueError, match="same shape"):
        composite(fg, m, bg[:, :2])
    with pytest.raises(ValueError, match="boolean"):
        composite(fg, m.astype(int), bg)
    with pytest.raises(ValueError, match="mask shape"):
        composite(fg, m[:, :4], bg)


# -- standardisation -------------------------------------------------------------------

def test_protein_standardisation_gives_mean_0_std_1_per_channel(ds):
    stats = _stats(ds)
    t = ds.crops.table
    protein = t[t.valid].strain.iloc[0]
    idx = np.flatnonzero((t.strain == protein) & t.valid)
    assert stats.loc[protein, "n_crops"] == len(idx)
    mean, std = stats_for(stats, protein)
    z = standardize(ds.crops.images[idx], mean, std).astype(np.float64)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-5)
    # invalid crops are not part of the statistics
    raw = np.asarray(ds.crops.images[idx], np.float64)
    np.testing.assert_allclose(mean, raw.mean(axis=(0, 2, 3)))


def test_standardize_checks_its_arguments():
    with pytest.raises(ValueError, match="do not fit"):
        standardize(np.zeros((2, 3, 4, 4)), [0, 0], [1, 1])
    with pytest.raises(ValueError, match="std must be"):
        standardize(np.zeros((3, 4, 4)), [0, 0, 0], [1, 0, 1])
    per_image = standardize(np.ones((2, 1, 2, 2)), [[1.0], [0.0]], [[1.0], [2.0]])
    np.testing.assert_array_equal(per_image[:, 0, 0, 0], [0.0, 0.5])


# -- the generated settings ------------------------------------------------------------

def test_every_set_is_there_and_traceable(sets, ds):
    k = len(CLASSES4)
    counts = sets.sets.groupby("setting").size().to_dict()
    assert counts == {"base": k, "mask": k, "same": k, "diff": k * (k - 1), "batch": k * (k - 1)}
    assert set(sets.base) == set(CLASSES4) and len(sets.swap) == len(sets.cellfree) == k * (k - 1)
    assert set(EXPERIMENT_TITLES) == set(EXPERIMENTS)
    for (setting, centre, background), crops in sets.items():
        assert crops.images.dtype == np.float32 and crops.images.shape[1:] == (3, 64, 64)
        t = crops.table
        assert (t.setting == setting).all() and (t.centre_class == centre).all()
        assert (t.background_class == background).all()
        # the centre crop is a valid, single-localized crop of the centre class
        src = ds.crops.table.iloc[t.centre_index]
        assert src.valid.all() and (src.localization == centre).all() and (src.kind == "single").all()
        assert (src.strain.to_numpy() == t.centre_strain.to_numpy()).all()
        np.testing.assert_array_equal(crops.masks, ds.crops.masks[t.centre_index])


def test_base_is_raw_and_mask_is_zero_outside_the_centre_cell(sets, ds):
    for c in CLASSES4:
        base, masked = sets.base[c], sets.mask[c]
        np.testing.assert_array_equal(base.table.centre_index, masked.table.centre_index)
        raw = ds.crops.images[base.table.centre_index].astype(np.float32)
        np.testing.assert_array_equal(base.images, raw)
        outside = ~masked.masks[:, None].repeat(3, axis=1)
        assert np.all(masked.images[outside] == 0)
        np.testing.assert_array_equal(masked.images[~outside], raw[~outside])


def test_swap_pixels_are_the_standardised_source_pixels(sets, ds):
    stats = _stats(ds)
    crops = sets.swap[("cytoplasm", "Golgi")]
    t = crops.table
    assert (ds.crops.table.localization.iloc[t.background_index] == "Golgi").all()
    for i in range(len(crops)):
        m = crops.masks[i]
        centre = standardize(ds.crops.images[t.centre_index[i]], *stats_for(stats, t.centre_strain[i]))
        back = standardize(ds.crops.images[t.background_index[i]], *stats_for(stats, t.background_strain[i]))
        np.testing.assert_array_equal(crops.images[i][:, m], centre[:, m])
        np.testing.assert_array_equal(crops.images[i][:, ~m], back[:, ~m])


def test_same_uses_another_protein_of_the_same_class(sets, ds):
    for c in CLASSES4:
        t = sets.same[c].table
        assert len(t) > 0
        assert (t.centre_strain != t.background_strain).all()
        bg = ds.crops.table.iloc[t.background_index]
        assert (bg.localization == c).all() and bg.valid.all() and (bg.kind == "single").all()


def test_diff_and_batch_backgrounds_are_of_another_class(sets, ds):
    for setting, source in (("diff", ds.crops), ("batch", ds.cell_free)):
        t = sets.table[sets.table.setting == setting]
        assert (t.background_class != t.centre_class).all()
        src = source.table.iloc[t.background_index]
        assert (src.localization.to_numpy() == t.background_class.to_numpy()).all()
        assert (src.strain.to_numpy() == t.background_strain.to_numpy()).all()
    # paired design: diff and batch of a pair share their centre cells
    np.testing.assert_array_equal(sets.swap[("Golgi", "cytoplasm")].table.centre_index,
                                  sets.cellfree[("Golgi", "cytoplasm")].table.centre_index)


def test_cell_free_backgrounds_have_no_cell_centre_within_50_px(sets, ds):
    t = sets.table[sets.table.setting == "batch"]
    assert len(t) > 0 and (t.background_source == "cell_free").all()
    free = ds.cell_free.table.iloc[np.unique(t.background_index)]
    cells = ds.crops.table
    for row in free.itertuples():
        same_field = cells[cells.field == row.field]
        d = np.hypot(same_field.y - (row.y0 + 32), same_field.x - (row.x0 + 32))
        assert (d >= 50).all()
    assert not ds.cell_free.masks.any()


def test_determinism_cache_and_key(ds, sets, tmp_path):
    kw = dict(classes=CLASSES4[:2], settings=("base", "diff"), progress=False, cache_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = generate_settings(ds, N, **kw)
        mtime = (a.path / "images.npy").stat().st_mtime_ns
        b = generate_settings(ds, N, **kw)
        assert b.path == a.path and (b.path / "images.npy").stat().st_mtime_ns == mtime  # loaded
        assert isinstance(b.images, np.memmap)
        c = generate_settings(ds, N + 1, **kw)
        assert c.path != a.path
        d = generate_settings(ds, N, **{**kw, "random_state": 1})
    assert len(list(tmp_path.glob("settings-*"))) == 3
    pd.testing.assert_frame_equal(a.table, b.table)
    # a set does not depend on which other sets were generated
    for key in a.keys():
        np.testing.assert_array_equal(a[key].images, sets[key].images)
        np.testing.assert_array_equal(a[key].table.centre_index, sets[key].table.centre_index)
    assert not np.array_equal(a.table.centre_index, d.table.centre_index)


def test_shortfall_policies(ds, tmp_path):
    big = 10_000
    with pytest.warns(UserWarning, match="fewer than"):
        s = generate_settings(ds, big, classes=CLASSES4[:2], settings=("base", "same"), progress=False,
                              cache_dir=tmp_path)
    assert s.sets.shortfall.all() and (s.sets.n < big).all() and (s.sets.n > 0).all()
    with pytest.raises(ValueError, match=r"class 'cytoplasm'.*protein 'S\d+'"):
        generate_settings(ds, big, classes=CLASSES4[:2], settings=("same",), shortfall="error",
                          progress=False, cache_dir=tmp_path)


def test_bad_inputs_give_clear_errors(ds, tmp_path):
    kw = dict(progress=False, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown localization class"):
        generate_settings(ds, N, classes=("Golgi", "golgi"), **kw)
    with pytest.raises(ValueError, match="n_cells must be an integer >= 1"):
        generate_settings(ds, 0, classes=CLASSES4, **kw)
    with pytest.raises(ValueError, match="settings must be"):
        generate_settings(ds, N, classes=CLASSES4, settings=("swap",), **kw)
    with pytest.raises(ValueError, match="shortfall must be"):
        generate_settings(ds, N, classes=CLASSES4, shortfall="max", **kw)
    # a class without any single-localized protein (its strains are multi-localized)
    t = ds.crops.table
    multi = t.assign(kind=np.where(t.localization == "Golgi", "multi", t.kind))
    no_golgi = Dataset(CropSet(ds.crops.images, ds.crops.masks, multi), ds.cell_free,
                       ds.segmentation_quality, ds.report)
    with pytest.raises(ValueError, match="class 'Golgi' has no single-localized protein"):
        generate_settings(no_golgi, N, classes=CLASSES4, **kw)
    # 'same' needs two proteins of the class
    one = t.strain != t[t.localization == "Golgi"].strain.iloc[0]
    one_golgi = Dataset(ds.crops.subset(np.flatnonzero(one)), ds.cell_free, ds.segmentation_quality, ds.report)
    with pytest.raises(ValueError, match="'same' needs two single-localized proteins of class 'Golgi'"):
        generate_settings(one_golgi, N, classes=CLASSES4, **kw)


def test_alternative_sampling_options(ds, tmp_path):
    s = generate_settings(ds, 3, classes=CLASSES4[:2], settings=("base", "batch"), sampling="first",
                          base_proteins="one", cellfree_sampling="one_protein", progress=False,
                          cache_dir=tmp_path)
    t = ds.crops.table
    for c in CLASSES4[:2]:
        base = s.base[c].table
        assert base.centre_strain.nunique() == 1
        pool = np.flatnonzero((t.strain == base.centre_strain[0]) & t.valid)
        np.testing.assert_array_equal(base.centre_index, pool[:3])  # the first crops, in order
    batch = s.table[s.table.setting == "batch"]
    assert (batch.groupby("set").background_strain.nunique() == 1).all()


def test_chapter_helpers(sets, ds):
    crops = sets.swap[("cytoplasm", "Golgi")]
    v = pixel_values(ds, crops, max_pixels=500)
    assert set(v.part) == {"centre cell", "background"} and set(v.stage) == {"raw", "generated"}
    gen = v[(v.stage == "generated") & (v.part == "centre cell")].value
    assert abs(gen.mean()) < 3  # standardised, not raw camera counts
    h = standardisation_histograms(ds, crops, bins=20, max_pixels=500)
    widths = h.right - h.left
    integral = (h.density * widths).groupby([h.stage, h.part]).sum()
    np.testing.assert_allclose(integral, 1.0)
    ex = example_per_setting(sets, "cytoplasm", "Golgi")
    assert list(ex) == list(EXPERIMENTS) and all(len(e) == 1 for e in ex.values())
    assert ex["diff"].table.centre_index[0] == ex["batch"].table.centre_index[0]
    with pytest.raises(ValueError, match="must differ"):
        example_per_setting(sets, "Golgi", "Golgi")


# -- centre cells of one protein or of all proteins of the class (appendix D.3) --------

def _generate(ds, n, path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate_settings(ds, n, progress=False, cache_dir=path, **kw)


@pytest.fixture(scope="module")
def sets_all(ds, tmp_path_factory):
    return _generate(ds, 8, tmp_path_factory.mktemp("settings_all"), classes=CLASSES4[:3],
                     settings=("diff", "batch"), centre_proteins="all", random_state=0)


def test_default_centre_cells_are_one_protein_as_before(sets, ds, tmp_path):
    t = ds.crops.table
    valid = t.valid & (t.kind == "single")
    for setting in ("diff", "batch", "same"):
        for row in sets.sets[sets.sets.setting == setting].itertuples():
            assert ";" not in row.centre_strain
            crops = sets[(setting, row.centre_class, row.background_class)]
            assert crops.table.centre_strain.nunique() == 1
            # the draw of section 3.2, pinned: one random protein p1, then its crops
            rng = _rng(0, "centre", row.centre_class, row.background_class)
            proteins = sorted(t[valid & (t.localization == row.centre_class)].strain.unique())
            p1 = proteins[int(rng.integers(len(proteins)))]
            pool = np.flatnonzero(valid & (t.strain == p1))
            expected = rng.choice(pool, size=min(N, len(pool)), replace=False)[:len(crops)]
            assert row.centre_strain == p1
            np.testing.assert_array_equal(crops.table.centre_index, expected)
    explicit = _generate(ds, N, tmp_path, classes=CLASSES4, centre_proteins="one")
    assert explicit.meta["centre_proteins"] == "one"
    pd.testing.assert_frame_equal(explicit.table, sets.table)
    np.testing.assert_array_equal(explicit.images, sets.images)


def test_centre_proteins_all_spans_several_proteins_of_the_class(sets_all, ds):
    assert sets_all.meta["centre_proteins"] == "all"
    assert set(sets_all.sets.setting) == {"diff", "batch"} and len(sets_all) == 2 * 3 * 2
    src_table = ds.crops.table
    for (setting, centre, background), crops in sets_all.items():
        t = crops.table
        assert len(t) == 8 and t.centre_index.is_unique  # drawn without replacement
        src = src_table.iloc[t.centre_index]
        assert src.valid.all() and (src.kind == "single").all() and (src.localization == centre).all()
        # each crop names its own protein; the set spans several proteins of class ``centre``
        assert (src.strain.to_numpy() == t.centre_strain.to_numpy()).all()
        proteins = sorted(t.centre_strain.unique())
        assert len(proteins) >= 2
        row = sets_all.sets[(sets_all.sets.setting == setting) & (sets_all.sets.centre_class == centre)
                            & (sets_all.sets.background_class == background)].iloc[0]
        assert row.centre_strain == ";".join(proteins)
    # paired design: diff and batch of a pair share their centre cells (and proteins)
    for c, b in sets_all.swap:
        pd.testing.assert_frame_equal(sets_all.swap[(c, b)].table[["centre_index", "centre_strain"]],
                                      sets_all.cellfree[(c, b)].table[["centre_index", "centre_strain"]])


def test_centre_proteins_all_standardises_each_crop_with_its_own_protein(sets_all, ds):
    stats = _stats(ds)
    crops = sets_all.swap[(CLASSES4[0], CLASSES4[1])]
    t = crops.table
    assert t.centre_strain.nunique() >= 2
    for i in range(len(crops)):
        m = crops.masks[i]
        centre = standardize(ds.crops.images[t.centre_index[i]], *stats_for(stats, t.centre_strain[i]))
        back = standardize(ds.crops.images[t.background_index[i]], *stats_for(stats, t.background_strain[i]))
        np.testing.assert_array_equal(crops.images[i][:, m], centre[:, m])
        np.testing.assert_array_equal(crops.images[i][:, ~m], back[:, ~m])


def test_centre_proteins_all_is_deterministic_and_keyed(sets_all, ds, tmp_path, monkeypatch):
    kw = dict(classes=CLASSES4[:3], centre_proteins="all", random_state=0)
    seen = []
    real = settings_module.protein_stats
    monkeypatch.setattr(settings_module, "protein_stats",
                        lambda *a, **k: seen.append(k.get("proteins")) or real(*a, **k))
    # batch alone: only the cell-free sets, identical to those of the bigger run
    batch = _generate(ds, 8, tmp_path / "a", settings=("batch",), **kw)
    assert set(batch.sets.setting) == {"batch"} and len(batch) == 3 * 2
    for key in batch.keys():
        pd.testing.assert_frame_equal(batch[key].table.drop(columns="set"),
                                      sets_all[key].table.drop(columns="set"))
        np.testing.assert_array_equal(batch[key].images, sets_all[key].images)
    # ... and the statistics of just the proteins it uses, not of the whole screen
    (used,) = seen
    assert set(used) == set(batch.table.centre_strain) | set(batch.table.background_strain)
    assert len(used) < ds.crops.table.strain.nunique()
    again = _generate(ds, 8, tmp_path / "b", settings=("diff", "batch"), **kw)
    assert again.path != sets_all.path
    pd.testing.assert_frame_equal(again.table, sets_all.table)
    np.testing.assert_array_equal(again.images, sets_all.images)
    other = _generate(ds, 8, tmp_path / "b", settings=("diff", "batch"), **{**kw, "random_state": 1})
    assert not np.array_equal(other.table.centre_index, sets_all.table.centre_index)
    one = _generate(ds, 8, tmp_path / "b", settings=("diff", "batch"), **{**kw, "centre_proteins": "one"})
    assert one.path != again.path and (one.sets.centre_strain.str.count(";") == 0).all()


def test_centre_proteins_all_guarantees_two_proteins_and_checks_its_value(ds, tmp_path):
    # "first" takes the pooled crops in dataset order (one protein), then swaps in another protein
    s = _generate(ds, 3, tmp_path, classes=CLASSES4[:2], settings=("diff",), sampling="first",
                  centre_proteins="all")
    t = ds.crops.table
    for (c, b), crops in s.swap.items():
        pool = np.flatnonzero(t.valid & (t.kind == "single") & (t.localization == c))
        np.testing.assert_array_equal(crops.table.centre_index[:2], pool[:2])
        assert crops.table.centre_strain.nunique() == 2
    with pytest.raises(ValueError, match="centre_proteins must be one of"):
        generate_settings(ds, N, classes=CLASSES4, centre_proteins="some", progress=False, cache_dir=tmp_path)


def test_protein_stats_of_some_proteins_equal_the_full_table(ds):
    full = _stats(ds)
    some = protein_stats(ds.crops, proteins=list(full.index[:3]))
    pd.testing.assert_frame_equal(some, full.iloc[:3])
