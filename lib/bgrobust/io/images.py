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

#: File suffixes :func:`read_image` understands.
IMAGE_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".npy")


class DataError(ValueError):
    """Input data on disk (an image, a table, a manifest) is missing or malformed.

    The message always names the file and the problem.
    """


def _load(path: Path) -> np.ndarray:
    """Pixels of ``path`` as an array (no checks beyond what the file format does)."""
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    import tifffile

    return tifffile.imread(path)


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


def read_image(path, *, expect_shape=None, what: str = "image") -> np.ndarray:
    """Read a TIFF (``.tif``/``.tiff``) or ``.npy`` file holding one 2-D image plane.

    Parameters
    ----------
    path : str or path-like
        The file to read.
    expect_shape : tuple of int, optional
        Required ``(H, W)``; a different shape raises :class:`DataError`.
    what : str
        What the file is, for error messages (e.g. ``"GFP image of field 3"``).

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
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "plane.npy"
    >>> np.save(path, np.ones((3, 3), np.float32))
    >>> read_image(path, expect_shape=(3, 3)).dtype
    dtype('float32')
    """
    path = Path(path)
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
        image = _load(path)
    except Exception as exc:  # any failure of the file format library is a bad file
        raise DataError(f"{head}: cannot be read as an image ({type(exc).__name__}: {exc})") from exc
    image = np.asarray(image)

    if image.ndim != 2:
        raise DataError(f"{head}: {_shape_problem(image.shape)}")
    if expect_shape is not None and image.shape != tuple(expect_shape):
        raise DataError(f"{head}: shape {image.shape}, expected {tuple(expect_shape)}")
    if image.dtype.kind not in "uif":
        raise DataError(f"{head}: unsupported pixel type {image.dtype} (expected integers or floats)")
    if image.dtype.kind == "f":
        bad = ~np.isfinite(image)
        if bad.any():
            y, x = np.argwhere(bad)[0]
            raise DataError(
                f"{head}: {int(bad.sum())} NaN or infinite pixel(s), the first at (y={y}, x={x})"
            )
    return image
