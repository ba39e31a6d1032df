"""An ``.npy`` file written row block by row block, its length known only at the end.

:class:`NpyAppender` writes a fixed-size header, appends each block of rows with plain file
writes (never a memory map, so the rows do not stay in the writer's resident memory), and
on :meth:`~NpyAppender.close` rewrites the header with the final shape, padded to the same
length. ``np.load`` (with ``mmap_mode`` too) reads the result like any ``np.save`` file.
Used to write a dataset's crops into its cache entry field by field
(:func:`bgrobust.dataset.build_dataset`).
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

__all__ = ["NpyAppender"]

_PREAMBLE = 128  # magic (6) + version (2) + length (2) + header: a multiple of 64, as np.save aligns


def _header(dtype: np.dtype, shape: tuple) -> bytes:
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)})
    body = _PREAMBLE - 10
    if len(text) + 1 > body:
        raise ValueError(f"NpyAppender: the header of shape {shape} does not fit in {body} bytes")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", body) + (text.ljust(body - 1) + "\n").encode("latin1")


class NpyAppender:
    """Append rows of one dtype and row shape to an ``.npy`` file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
    >>> with NpyAppender(path, np.uint16, (2,)) as out:
    ...     out.append(np.ones((3, 2), np.uint16))
    ...     out.append(np.zeros((1, 2), np.uint16))
    >>> np.load(path).tolist()
    [[1, 1], [1, 1], [1, 1], [0, 0]]
    """

    def __init__(self, path, dtype, row_shape):
        self.path, self.dtype, self.row_shape = Path(path), np.dtype(dtype), tuple(int(s) for s in row_shape)
        self.n = 0
        self._fh = open(self.path, "wb")
        self._fh.write(_header(self.dtype, (10 ** 12, *self.row_shape)))

    def append(self, rows) -> None:
        rows = np.asarray(rows)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"NpyAppender {self.path}: rows of shape {rows.shape[1:]}, expected {self.row_shape}")
        self._fh.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.n += len(rows)

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.seek(0)
        self._fh.write(_header(self.dtype, (self.n, *self.row_shape)))
        self._fh.close()

    def __enter__(self) -> "NpyAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
