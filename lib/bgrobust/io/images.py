"""Read one image plane from disk, with errors that say which file is wrong and why.

Every real-data reader of :mod:`bgrobust.io` reads pixels through :func:`read_image`,
so a broken screen fails with one readable :class:`DataError` (naming the file and the
problem) instead of a traceback from deep inside tifffile or numpy.

Examples
--------
>>> import tempfile, pathlib, numpy as np, tifffile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "gfp.tif"
>>> tifffile.imwrite(path, np.zeros((4, 5), np.uint16))
>>> read_image(path).shape
(4, 5)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: File suffixes :func:`read_image` understands.
IMAGE_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".npy", ".png", ".jpg", ".jpeg")
TIFF_SUFFIXES: tuple[str, ...] = (".tif", ".tiff")


class DataError(ValueError):
    """Input data on disk (an image, a table, a manifest) is missing or malformed.

    The message always names the file and the problem.
    """


def read_text_table(path, what: str) -> pd.DataFrame:
    """A CSV read as strings (no NA guessing), or a :class:`DataError` naming ``what`` and the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path}: file not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataError(f"{what} {path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    return table


def _load(path: Path, page: int | None = None) -> np.ndarray:
    """Pixels of ``path`` as an array (no checks beyond what the file format does).

    TIFF files go through tifffile, which decodes LZW, Deflate and ZSTD with the
    ``imagecodecs`` package; a multi-page TIFF or an OME-TIFF gives its whole stack (or
    one ``page``); PNG and JPEG (8 or 16 bit) are read with Pillow.
    """
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix in TIFF_SUFFIXES:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            # the first series: all planes of a multi-page or OME-TIFF (or planar samples)
            pixels = tif.series[0].asarray() if tif.series else tif.asarray()
    else:
        from PIL import Image

        with Image.open(path) as img:
            if img.mode in ("P", "PA"):
                img = img.convert("RGBA" if "A" in img.mode else "RGB")
            pixels = np.asarray(img)
    if page is None:
        return pixels
    if pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.ndim != 3 or not 0 <= page < pixels.shape[0]:
        n = pixels.shape[0] if pixels.ndim == 3 else "no"
        raise IndexError(f"page {page} requested but the file has {n} page(s) (shape {pixels.shape})")
    return pixels[page]


def read_stack(path, *, what: str = "image") -> np.ndarray:
    """Every plane of an image file, as ``(P, H, W)`` (a 2-D image gives ``P = 1``).

    For multi-channel crops stored in one file: a multi-page or OME-TIFF
    (``(C, H, W)``), a TIFF or ``.npy`` holding a ``(C, H, W)`` array, or an RGB(A) PNG
    (channels last, moved first).

    Raises
    ------
    DataError
        When the file is missing or unreadable, or its pixels are not a 2-D or 3-D
        integer or floating-point array, or hold NaN or infinite values.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tifffile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "crop.tif"
    >>> tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint16), compression="zlib")
    >>> read_stack(path).shape
    (2, 8, 8)
    """
    path = Path(path)
    image = _open(path, what, None)
    head = f"{what} {path}"
    if image.ndim == 2:
        image = image[None]
    elif image.ndim == 3 and path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        image = np.moveaxis(image, -1, 0)
    elif image.ndim != 3:
        raise DataError(f"{head}: has {image.ndim} dimension(s) (shape {image.shape}); "
                        "expected a (C, H, W) stack of channel planes")
    _check_pixels(image, head)
    return image


def _open(path: Path, what: str, page: int | None) -> np.ndarray:
    head = f"{what} {path}"
    if not path.exists():
        raise DataError(f"{head}: file not found")
    if path.is_dir():
        raise DataError(f"{head}: is a folder, not an image file")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(
            f"{head}: unsupported file type {path.suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)}"
        )
    try:
        image = _load(path, page)
    except Exception as exc:  # any failure of the file format library is a bad file
        raise DataError(f"{head}: cannot be read as an image ({type(exc).__name__}: {exc})") from exc
    return np.asarray(image)


def _check_pixels(image: np.ndarray, head: str) -> None:
    if image.dtype.kind not in "uif":
        raise DataError(f"{head}: unsupported pixel type {image.dtype} (expected integers or floats)")
    if image.dtype.kind == "f":
        bad = ~np.isfinite(image)
        if bad.any():
            where = [int(v) for v in np.argwhere(bad)[0]]
            at = (f"(y={where[0]}, x={where[1]})" if len(where) == 2 else
                  f"(plane={where[0]}, y={where[1]}, x={where[2]})")
            raise DataError(f"{head}: {int(bad.sum())} NaN or infinite pixel(s), the first at {at}")


def _shape_problem(shape: tuple[int, ...]) -> str:
    """Why an array of ``shape`` is not a single 2-D plane."""
    if len(shape) == 3 and (shape[0] <= 4 or shape[-1] <= 4):
        return (
            f"has a channel axis (shape {shape}) but a single plane is expected; "
            "save each channel to its own file"
        )
    if len(shape) == 3:
        return f"is a stack of {shape[0]} planes (shape {shape}) but a single plane is expected"
    return f"has {len(shape)} dimension(s) (shape {shape}) but a 2-D plane is expected"


def read_image(path, *, expect_shape=None, what: str = "image", page: int | None = None) -> np.ndarray:
    """Read one 2-D image plane: TIFF (uncompressed, LZW, Deflate, ZSTD, ...; multi-page
    and OME-TIFF with ``page``), PNG or JPEG (8 or 16 bit, grey), or ``.npy``.

    Parameters
    ----------
    path : str or path-like
        The file to read.
    expect_shape : tuple of int, optional
        Required ``(H, W)``; a different shape raises :class:`DataError`.
    what : str
        What the file is, for error messages (e.g. ``"GFP image of field 3"``).
    page : int, optional
        For a multi-page (or OME-) TIFF: the page (plane) to read.  Without it the file
        must hold a single plane.

    Returns
    -------
    image : (H, W) ndarray
        The pixels in the file's own dtype (integer or floating point).

    Raises
    ------
    DataError
        If the file is missing, is not a readable image, is not a single 2-D plane
        (e.g. it has a channel axis), has the wrong shape or an unsupported dtype, or
        holds NaN or infinite pixels.  The message names ``what``, the file and the
        problem; the original exception, if any, is chained.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tifffile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "plane.npy", np.ones((3, 3), np.float32))
    >>> read_image(folder / "plane.npy", expect_shape=(3, 3)).dtype
    dtype('float32')
    >>> tifffile.imwrite(folder / "field.tif", np.arange(12, dtype=np.uint16).reshape(3, 4),
    ...                  compression="lzw")
    >>> int(read_image(folder / "field.tif")[2, 3])
    11
    """
    path = Path(path)
    head = f"{what} {path}"
    image = _open(path, what, page)
    if image.ndim != 2:
        raise DataError(f"{head}: {_shape_problem(image.shape)}")
    if expect_shape is not None and image.shape != tuple(expect_shape):
        raise DataError(f"{head}: shape {image.shape}, expected {tuple(expect_shape)}")
    _check_pixels(image, head)
    return image
