"""Crops, the paper's filters and cell-free crops."""
import numpy as np
import pandas as pd
import pytest

from bgrobust.crops import (CropSet, cell_free_crops, centre_distance_ok, extract_crops, gfp_threshold,
                            quality_flags, window)


def test_window_is_centred_and_sized():
    assert window((40.4, 10.6), 64) == (8, 72, -21, 43)


def test_crops_carry_the_centre_mask_and_count_neighbours():
    lab = np.zeros((128, 128), int)
    lab[50:70, 50:70] = 1
    lab[50:70, 72:90] = 2
    img = np.stack([lab * 10, lab * 20, lab * 30]).astype(np.uint16)
    crops, masks, table, dropped = extract_crops(img, lab, size=64)
    assert crops.shape == (2, 3, 64, 64) and dropped == 0
    first = table.label.tolist().index(1)
    assert masks[first].sum() == 400
    assert table.n_neighbours.tolist() == [1, 1]
    # the centre cell sits at the crop centre
    ys, xs = np.nonzero(masks[first])
    assert abs(ys.mean() - 31.5) <= 1 and abs(xs.mean() - 31.5) <= 1
    assert table.mask_fraction.iloc[first] == pytest.approx(400 / 4096)


def test_border_cells_are_dropped_or_padded():
    lab = np.zeros((100, 100), int)
    lab[0:10, 0:10] = 1
    img = np.ones((3, 100, 100), np.uint16)
    _, _, _, dropped = extract_crops(img, lab, edge="drop")
    assert dropped == 1
    crops, masks, _, dropped = extract_crops(img, lab, edge="pad", pad_value=0)
    assert dropped == 0 and crops.shape[0] == 1 and crops[0, 0, 0, 0] == 0 and crops[0, 0, -1, -1] == 1
    with pytest.raises(ValueError, match="edge must be"):
        extract_crops(img, lab, edge="wrap")


def test_pad_fills_with_the_field_background_not_zero():
    rng = np.random.default_rng(0)
    lab = np.zeros((100, 100), int)
    lab[2:14, 2:14] = 1
    img = np.stack([rng.normal(m, 3, (100, 100)) for m in (200, 120, 400)]).astype(np.uint16)
    img[:, 2:14, 2:14] += 500
    crops, masks, _, _ = extract_crops(img, lab, edge="pad")
    outside = crops[0, :, :20, :20]  # the window starts 24 px above and left of the image
    for c, level in enumerate((200, 120, 400)):
        assert abs(np.median(outside[c]) - level) <= 3, (c, np.median(outside[c]))
        assert crops[0, c].min() >= img[c].min()  # no frame darker than the field
    assert masks[0, :20, :20].sum() == 0
    fixed = extract_crops(img, lab, edge="pad", pad_value=[1, 2, 3])[0]
    assert fixed[0, :, 0, 0].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="pad_value must be one finite number or one per channel"):
        extract_crops(img, lab, edge="pad", pad_value=[1, 2])
    with pytest.raises(ValueError, match="pad_value must be 'border_median' or numbers"):
        extract_crops(img, lab, edge="pad", pad_value="mean")


def test_quality_flags_follow_the_paper():
    crops = np.zeros((4, 3, 10, 10))
    crops[:, 0] = np.array([1.0, 50.0, 50.0, 50.0])[:, None, None]
    masks = np.zeros((4, 10, 10), bool)
    masks[0, :5] = True   # 50 %
    masks[1, :5] = True   # 50 %
    masks[2, 0, :4] = True  # 4 % < 5 %
    masks[3, :, :] = True
    masks[3, 0, 0] = False  # 99 % > 95 %
    flags = quality_flags(crops, masks, threshold=10.0)
    assert flags.low_gfp.tolist() == [True, False, False, False]
    assert flags.mask_too_small.tolist() == [False, False, True, False]
    assert flags.mask_too_large.tolist() == [False, False, False, True]
    assert flags.valid.tolist() == [False, True, False, False]


def test_gfp_threshold_readings():
    fields = [np.full((4, 4), 10.0), np.full((4, 4), 30.0)]
    assert gfp_threshold(fields, 50, reference="pixels", step=1) == 20.0
    assert gfp_threshold(fields, 0, reference="field_means") == 10.0
    with pytest.raises(ValueError, match="reference"):
        gfp_threshold(fields, reference="median")


def test_cell_free_crops_keep_away_from_cells_and_structure():
    rng = np.random.default_rng(0)
    img = rng.normal(200, 5, (3, 256, 256))
    lab = np.zeros((256, 256), int)
    lab[20:40, 20:40] = 1  # a cell near the top-left corner
    img[0][lab > 0] += 500
    img[0, 200:215, 200:215] += 400  # an undetected bright object: rejected by variance
    crops, table = cell_free_crops(img, lab, size=64, stride=32, min_distance=50, border=16)
    assert len(crops) > 0
    centres = np.array([[29.5, 29.5]])
    assert centre_distance_ok(table, centres, 64, 50).all()
    for _, r in table.iterrows():
        y0, x0 = int(r.y0), int(r.x0)
        assert not (y0 <= 214 and y0 + 64 > 200 and x0 <= 214 and x0 + 64 > 200)
        assert y0 >= 16 and x0 >= 16 and y0 + 64 <= 240 and x0 + 64 <= 240


def test_cropset_subset_and_round_trip(tmp_path):
    cs = CropSet(np.arange(2 * 3 * 4 * 4, dtype=np.uint16).reshape(2, 3, 4, 4),
                 np.zeros((2, 4, 4), bool), pd.DataFrame({"a": [1, 2]}))
    sub = cs.subset(np.array([False, True]))
    assert len(sub) == 1 and sub.table.a.tolist() == [2]
    assert sub.channel("cytoplasm").shape == (1, 4, 4)
    back = CropSet.load(cs.save(tmp_path / "c"))
    np.testing.assert_array_equal(back.images, cs.images)
    with pytest.raises(ValueError, match="must agree"):
        CropSet(cs.images, cs.masks[:1], cs.table)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int32])
@pytest.mark.parametrize("max_values", [1, 7, 1 << 22])
def test_streamed_percentile_equals_numpy_on_all_values_at_once(dtype, max_values):
    """Exact (==) against np.percentile of the concatenation, with ties, wide ranges, chunks of
    one value, and max_values small enough to force the narrowing passes."""
    from bgrobust._quantile import streamed_percentile

    rng = np.random.default_rng(3)
    for trial in range(25):
        if np.dtype(dtype).kind == "f":
            scale = [1e-3, 1.0, 1e5][trial % 3]
            parts = [(rng.normal(size=int(rng.integers(1, 400))) * scale).astype(dtype) for _ in range(4)]
            if trial % 4 == 0:
                parts = [np.round(p) for p in parts]   # many ties
        else:
            top = [3, 1000, 200_000][trial % 3]       # the last one is wider than one pass counts
            parts = [rng.integers(0, min(top, np.iinfo(dtype).max), int(rng.integers(1, 400))).astype(dtype)
                     for _ in range(4)]
        parts.append(parts[0][:1])                    # a chunk of one value
        for q in (0.0, 5.0, 37.5, 50.0, 99.0, 100.0, float(rng.uniform(0, 100))):
            want = np.percentile(np.concatenate(parts), q)
            assert streamed_percentile(lambda: parts, q, max_values=max_values) == want, (trial, q)


def test_streamed_percentile_errors():
    from bgrobust._quantile import streamed_percentile

    with pytest.raises(ValueError, match="no values"):
        streamed_percentile(lambda: [np.zeros(0)], 5)
    with pytest.raises(ValueError, match="NaN or infinity"):
        streamed_percentile(lambda: [np.array([1.0, np.nan])], 5)
    with pytest.raises(ValueError, match="mix dtypes"):
        streamed_percentile(lambda: [np.zeros(2, np.float32), np.zeros(2)], 5)
    with pytest.raises(ValueError, match=r"percentile must be in \[0, 100\]"):
        streamed_percentile(lambda: [np.zeros(2)], 101)


def test_gfp_threshold_streams_fields_from_a_callable_and_channel_means_by_chunks():
    from bgrobust.crops import channel_means

    rng = np.random.default_rng(0)
    fields = [rng.integers(0, 4000, (64, 64)).astype(np.uint16) for _ in range(5)]
    calls = []

    def again():
        calls.append(1)
        return (f for f in fields)

    want = np.percentile(np.concatenate([f[::4, ::4].ravel() for f in fields]), 5.0)
    assert gfp_threshold(again, 5.0) == want == gfp_threshold(iter(fields), 5.0) == gfp_threshold(fields, 5.0)
    assert len(calls) >= 2   # read again, pass by pass, never held
    crops = rng.normal(size=(10, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(channel_means(crops, 1, chunk=3),
                                  crops[:, 1].astype(np.float64).mean(axis=(1, 2)))


@pytest.mark.parametrize("radius", [1, 2, 3, 5, 8])
def test_dilate_disk_equals_skimage_dilation(radius):
    from scipy import ndimage as ndi
    from skimage import morphology

    from bgrobust.crops import dilate_disk

    rng = np.random.default_rng(radius)
    for grow in range(4):
        mask = ndi.binary_dilation(rng.random((61, 83)) < 0.01, iterations=grow) if grow else rng.random((61, 83)) < 0.02
        mask[0, :2] = mask[-1, -1] = True                       # objects touching the border
        assert np.array_equal(dilate_disk(mask, radius), morphology.dilation(mask, morphology.disk(radius)))
