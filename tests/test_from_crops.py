"""dataset.from_crops: crops cut elsewhere become the Dataset the settings read."""
import numpy as np
import pandas as pd
import pytest

from bgrobust.crops import CropSet
from bgrobust.dataset import CropsParams, Dataset, from_crops
from bgrobust.imageops import protein_stats
from bgrobust.constraints import ParameterError

S = 32


def _cells(n, seed=0, radius=8):
    """Crops with a disc-shaped centre cell in both channels and a neighbour in the corner."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:S, :S]
    centre = (yy - S // 2) ** 2 + (xx - S // 2) ** 2 < radius ** 2
    neighbour = (yy - 2) ** 2 + (xx - 2) ** 2 < 25
    images = np.zeros((n, 2, S, S), np.float32)
    for i in range(n):
        images[i, 0] = centre * rng.uniform(0.5, 1) + rng.normal(0, 0.01, (S, S))
        images[i, 1] = (centre | neighbour) * 0.8 + rng.normal(0, 0.01, (S, S))
    return images, centre


def test_dataset_has_the_columns_downstream_code_reads():
    images, centre = _cells(4)
    ds = from_crops(images, ["P1", "P1", "P2", "P2"], ["actin", "actin", "ER", None], progress=False)
    t = ds.crops.table
    for col in ("strain", "localization", "kind", "valid", "field", "plate", "mask_fraction", "mean_gfp"):
        assert col in t.columns, col
    assert t["kind"].tolist() == ["single", "single", "single", "unlabelled"]
    assert t["field"].nunique() == 4  # every crop is its own field by default
    assert ds.crops.channels == ("gfp", "cytoplasm")
    assert not ds.has_cell_free and len(ds.cell_free) == 0 and ds.cell_free.channels == ("gfp", "cytoplasm")
    # the mask from the marker is the centre disc, not the neighbour
    iou = (ds.crops.masks[0] & centre).sum() / (ds.crops.masks[0] | centre).sum()
    assert iou > 0.8 and not ds.crops.masks[0][2, 2]
    # no channel was invented: two planes in, two planes out, stats named after them
    assert ds.crops.images.shape[1] == 2
    stats = protein_stats(ds.crops)
    assert "mean_cytoplasm" in stats.columns and "mean_nucleus" not in stats.columns


def test_label_mapping_fields_and_given_masks():
    images, centre = _cells(3)
    masks = np.repeat(centre[None], 3, axis=0)
    ds = from_crops(images, ["A", "B", "C"], {"A": "vacuole", "B": "ER"}, masks, fields=["f1", "f1", "f2"],
                    progress=False)
    loc = ds.crops.table["localization"]
    assert loc[:2].tolist() == ["vacuole", "ER"] and pd.isna(loc[2])
    assert ds.crops.table["kind"].tolist() == ["single", "single", "unlabelled"]
    assert ds.crops.table["field"].tolist() == [0, 0, 1]
    assert ds.report["masks"] == "given"
    np.testing.assert_array_equal(ds.crops.masks, masks)


def test_mask_filter_flags_crops_without_a_cell():
    images, _ = _cells(3)
    images[2] = 0.0  # an empty crop: no cell, empty mask
    ds = from_crops(images, ["A", "A", "A"], "actin", progress=False)
    assert ds.crops.table["valid"].tolist() == [True, True, False]
    assert ds.crops.table["mask_too_small"].tolist() == [False, False, True]
    loose = from_crops(images, ["A", "A", "A"], "actin", params=CropsParams(min_mask_fraction=0.0),
                       progress=False)
    assert loose.crops.table["valid"].all()


def test_save_load_keeps_channels(tmp_path):
    images, _ = _cells(2)
    ds = from_crops(images, ["A", "B"], ["actin", "ER"], progress=False)
    back = Dataset.load(ds.save(tmp_path / "ds"))
    assert back.crops.channels == ("gfp", "cytoplasm") and back.cell_free.channels == ("gfp", "cytoplasm")
    assert not back.has_cell_free
    np.testing.assert_array_equal(back.crops.images, images)


def test_cropset_without_channels_file_loads_with_the_default(tmp_path):
    cs = CropSet(np.zeros((1, 3, 4, 4)), np.zeros((1, 4, 4), bool), pd.DataFrame({"strain": ["a"]}))
    folder = tmp_path / "cs"
    folder.mkdir()
    cs.write_files(folder)
    (folder / "channels.json").unlink()
    assert CropSet.load(folder).channels == ("gfp", "nucleus", "cytoplasm")


def test_cropset_channel_names_are_checked():
    with pytest.raises(ValueError, match="2 channel plane"):
        CropSet(np.zeros((1, 2, 4, 4)), np.zeros((1, 4, 4), bool), pd.DataFrame({"s": [1]}),
                channels=("gfp",))
    with pytest.raises(ValueError, match="distinct names"):
        CropSet(np.zeros((1, 1, 4, 4)), np.zeros((1, 4, 4), bool), pd.DataFrame({"s": [1]}), channels=("dapi",))
    two = CropSet(np.zeros((1, 2, 4, 4)), np.zeros((1, 4, 4), bool), pd.DataFrame({"s": [1]}))
    assert two.channels is None  # two unnamed planes: no name is invented
    with pytest.raises(KeyError, match="unnamed"):
        two.channel("gfp")
    named = CropSet(two.images, two.masks, two.table, channels=("gfp", "cytoplasm"))
    with pytest.raises(KeyError, match=r"no 'nucleus' channel; they have \('gfp', 'cytoplasm'\)"):
        named.channel("nucleus")


@pytest.mark.parametrize("kwargs, message", [
    (dict(images=np.zeros((2, 32, 32))), r"images must be \(N, C, H, W\)"),
    (dict(proteins=["A"]), "proteins has 1 entries but images has 2"),
    (dict(labels=["actin", "golgi apparatus"]), r"labels: unknown localization class\(es\) \['golgi apparatus'\]"),
    (dict(labels=["actin"]), "labels has 1 entries"),
    (dict(masks=np.zeros((2, 16, 16), bool)), r"masks must have shape \(2, 32, 32\)"),
    (dict(masks=np.full((2, 32, 32), 0.5)), "masks must be boolean"),
    (dict(channels=("gfp",)), "images has 2 channel"),
    (dict(channels=("gfp", "rfp")), "channels must be distinct names"),
    (dict(marker="nucleus"), "marker 'nucleus' is not one of the channels"),
    (dict(fields=[1]), "fields has 1 entries"),
    (dict(proteins=["A", None]), r"proteins\[1\] is missing"),
    (dict(params={"mask_smooth": 1}), "params must be a CropsParams"),
])
def test_bad_input_names_the_argument(kwargs, message):
    images, _ = _cells(2)
    args = dict(images=images, proteins=["A", "B"], labels=["actin", "ER"], progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        from_crops(**args)


def test_nan_pixels_are_refused_with_their_place():
    images, _ = _cells(2)
    images[1, 1, 3, 3] = np.nan
    with pytest.raises(ValueError, match="the first in crop 1, channel 'cytoplasm'"):
        from_crops(images, ["A", "B"], ["actin", "ER"], progress=False)


def test_crops_params_constraints():
    with pytest.raises(ParameterError, match="CropsParams.max_mask_fraction must be at least"):
        CropsParams(min_mask_fraction=0.5, max_mask_fraction=0.2)
    with pytest.raises(ParameterError, match="CropsParams.mask_threshold"):
        CropsParams(mask_threshold="mean")


def test_settings_accept_a_from_crops_dataset(tmp_path):
    from bgrobust.settings import generate_settings

    rng = np.random.default_rng(1)
    images = np.concatenate([_cells(6, seed=s)[0] for s in range(4)])
    proteins = np.repeat(["A1", "A2", "E1", "E2"], 6)
    labels = np.repeat(["actin", "actin", "ER", "ER"], 6)
    ds = from_crops(images + rng.normal(0, 0.01, images.shape).astype(np.float32), proteins, labels,
                    progress=False)
    sets = generate_settings(ds, 3, classes=("actin", "ER"), settings=("base", "same"), progress=False,
                             cache_dir=tmp_path)
    assert sets.images.shape[1:] == (2, S, S)  # the two real channels, nothing added
    assert set(sets.sets["setting"]) == {"base", "same"}


def test_subset_and_valid_crops_keep_the_channels():
    images, _ = _cells(3)
    ds = from_crops(images, ["A", "B", "C"], ["actin", "ER", "ER"], progress=False)
    assert ds.crops.subset([0, 2]).channels == ("gfp", "cytoplasm")
    assert ds.valid_crops().channels == ("gfp", "cytoplasm")
    np.testing.assert_array_equal(ds.crops.subset([2]).channel("cytoplasm")[0], images[2, 1])


def test_channel_indices_for_a_model_input():
    images, _ = _cells(2)
    ds = from_crops(images, ["A", "B"], ["actin", "ER"], progress=False)
    assert ds.crops.channel_indices(("gfp", "cytoplasm")) == [0, 1]
    with pytest.raises(KeyError, match=r"no \['nucleus'\] channel\(s\); they have \('gfp', 'cytoplasm'\)"):
        ds.crops.channel_indices(("gfp", "nucleus"))


def test_cell_free_setting_is_skipped_with_a_reason_not_faked():
    images, centre = _cells(2)
    ds = from_crops(images, ["A", "B"], ["actin", "ER"], progress=False)
    kept, skipped = ds.runnable_settings()
    assert "batch" not in kept and "no cell-free background crops" in skipped["batch"]
    free = CropSet(images[:1], np.zeros((1, S, S), bool),
                   pd.DataFrame({"strain": ["A"], "localization": ["actin"], "kind": ["single"]}),
                   channels=("gfp", "cytoplasm"))
    with_free = from_crops(images, ["A", "B"], ["actin", "ER"], cell_free=free, progress=False)
    assert with_free.has_cell_free and with_free.runnable_settings() == (("base", "diff", "same", "mask", "batch"), {})
    with pytest.raises(ValueError, match="cell_free has channels"):
        from_crops(images, ["A", "B"], ["actin", "ER"], progress=False,
                   cell_free=CropSet(np.zeros((1, 3, S, S)), np.zeros((1, S, S), bool), free.table))
