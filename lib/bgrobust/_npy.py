"""``.npy`` files written and read row block by row block, never held whole.

:class:`NpyAppender` writes a fixed-size header, appends each block of rows with plain file
writes (never a memory map, so the rows do not stay in the writer's resident memory), and
on :meth:`~NpyAppender.close` rewrites the header with the final shape, padded to the same
length. ``np.load`` (with ``mmap_mode`` too) reads the result like any ``np.save`` file.
Used to write a dataset's crops into its cache entry field by field
(:func:`bgrobust.dataset.build_dataset`).

:class:`Rows` is the other direction: some rows of an array (a memory-mapped ``.npy`` file)
read on demand, a block at a time, with plain file reads, so a pass over a screen's valid
crops holds one batch (:meth:`bgrobust.crops.CropSet.subset` with ``lazy=True``).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

__all__ = ["NpyAppender", "Rows"]

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


class Rows:
    """Rows ``positions`` of ``array``, read when indexed (a lazy ``array[positions]``).

    ``len``, ``shape``, ``dtype``, ``ndim``, ``size`` and ``nbytes`` are those of the
    selection; an integer or a slice reads just those rows, ``np.asarray(rows)`` all of them.
    Over a C-ordered ``np.memmap`` of a file the rows are read with ``os.preadv`` (a run of
    consecutive positions in one call), so the file's pages are never mapped into this process
    and a pass over the rows does not grow its resident memory; any other array is indexed.

    Examples
    --------
    >>> a = np.arange(24).reshape(6, 4)
    >>> r = Rows(a, [0, 2, 3, 5])
    >>> r.shape, r[1:3].tolist(), np.asarray(r)[-1].tolist()
    ((4, 4), [[8, 9, 10, 11], [12, 13, 14, 15]], [20, 21, 22, 23])
    """

    #: Marks lazily read rows for :func:`bgrobust.cache.array_digest` (hashed block by block).
    lazy_rows = True

    def __init__(self, array, positions):
        positions = np.asarray(positions)
        if positions.dtype == bool:
            if len(positions) != len(array):
                raise IndexError(f"Rows: a boolean index of {len(positions)} for {len(array)} rows")
            positions = np.flatnonzero(positions)
        if positions.ndim != 1 or not (np.issubdtype(positions.dtype, np.integer) or positions.size == 0):
            raise IndexError(f"Rows: positions must be a 1-D integer or boolean index, got {positions.dtype} "
                             f"of shape {positions.shape}")
        n = len(array)
        positions = positions.astype(np.int64)
        if len(positions) and (positions.min() < -n or positions.max() >= n):
            raise IndexError(f"Rows: positions out of range for {n} rows")
        self.array, self.positions = array, np.where(positions < 0, positions + n, positions)
        self.dtype = np.dtype(array.dtype)
        self.shape = (len(self.positions), *array.shape[1:])
        self._file = None
        if isinstance(array, np.memmap) and array.filename is not None and array.flags.c_contiguous:
            row = int(np.prod(array.shape[1:], dtype=np.int64)) * self.dtype.itemsize
            self._file = (array.filename, int(array.offset), row)

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))
    nbytes = property(lambda self: self.size * self.dtype.itemsize)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<Rows {self.shape} {self.dtype} of {type(self.array).__name__}>"

    def _read(self, pos: np.ndarray) -> np.ndarray:
        if self._file is None:
            return np.asarray(self.array[pos])
        path, offset, row = self._file
        out = np.empty((len(pos), *self.shape[1:]), self.dtype)
        if not len(pos) or not row:
            return out
        flat = memoryview(out).cast("B")
        runs = np.split(pos, np.flatnonzero(np.diff(pos) != 1) + 1)
        fd = os.open(path, os.O_RDONLY)
        try:
            done = 0
            for run in runs:
                want = len(run) * row
                got = os.preadv(fd, [flat[done:done + want]], offset + int(run[0]) * row)
                if got != want:
                    raise OSError(f"{path}: short read ({got} of {want} bytes at row {int(run[0])}); "
                                  f"the file was truncated")
                done += want
        finally:
            os.close(fd)
        return out

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return self._read(self.positions[[key]])[0]
        if isinstance(key, slice):
            return self._read(self.positions[key])
        raise TypeError(f"Rows: index with an integer or a slice, got {type(key).__name__}")

    def __array__(self, dtype=None, copy=None):
        out = self._read(self.positions)
        return out if dtype is None else out.astype(dtype, copy=False)
