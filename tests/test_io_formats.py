"""read_image / read_stack on compressed, multi-page, OME-TIFF, PNG and JPEG files."""
import numpy as np
import pytest
import tifffile
from PIL import Image

from bgrobust.io.images import DataError, read_image, read_stack


def _field(shape=(40, 50), seed=0):
    return np.random.default_rng(seed).integers(0, 65535, shape, dtype=np.uint16)


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd"])
def test_compressed_tiff_round_trip(tmp_path, compression):
    img = _field()
    path = tmp_path / f"field_{compression}.tif"
    tifffile.imwrite(path, img, compression=compression)
    with tifffile.TiffFile(path) as tif:  # the file really is compressed
        assert tif.pages[0].compression != 1
    out = read_image(path, expect_shape=img.shape)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, img)


def test_multipage_and_ome_tiff(tmp_path):
    stack = np.stack([_field(seed=i) for i in range(3)])
    multi = tmp_path / "multi.tif"
    tifffile.imwrite(multi, stack, compression="lzw", photometric="minisblack")
    ome = tmp_path / "crop.ome.tif"
    tifffile.imwrite(ome, stack, ome=True, metadata={"axes": "CYX"})
    for path in (multi, ome):
        np.testing.assert_array_equal(read_stack(path), stack)
        np.testing.assert_array_equal(read_image(path, page=2), stack[2])
        with pytest.raises(DataError, match="but a single plane is expected"):
            read_image(path)
        with pytest.raises(DataError, match=r"page 5 requested but the file has 3 page"):
            read_image(path, page=5)


@pytest.mark.parametrize("dtype, mode", [(np.uint8, "L"), (np.uint16, "I;16")])
def test_png_8_and_16_bit(tmp_path, dtype, mode):
    img = _field((20, 30)).astype(dtype) if dtype == np.uint16 else (_field((20, 30)) // 257).astype(np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(img, mode=mode if dtype == np.uint8 else None).save(path)
    out = read_image(path)
    assert out.shape == img.shape
    np.testing.assert_array_equal(out.astype(np.int64), img.astype(np.int64))


def test_jpeg_grey_reads_close(tmp_path):
    img = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (16, 1))
    path = tmp_path / "x.jpg"
    Image.fromarray(img).save(path, quality=95)
    out = read_image(path)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img.astype(int)).max() < 8  # lossy, but close


def test_rgb_png_is_a_stack_not_a_plane(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 1] = 7
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(path)
    with pytest.raises(DataError, match="channel axis"):
        read_image(path)
    assert read_stack(path).shape == (3, 10, 12)
    assert int(read_stack(path)[1, 0, 0]) == 7


def test_read_stack_nan_names_plane(tmp_path):
    stack = np.ones((2, 4, 4), np.float32)
    stack[1, 2, 3] = np.nan
    np.save(tmp_path / "s.npy", stack)
    with pytest.raises(DataError, match=r"s\.npy: 1 NaN or infinite pixel\(s\), the first at \(plane=1, y=2, x=3\)"):
        read_stack(tmp_path / "s.npy")
