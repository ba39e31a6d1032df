"""bgrobust._npy.Rows: some rows of an array, read when indexed."""
import numpy as np
import pytest

from bgrobust._npy import Rows


@pytest.fixture
def mapped(tmp_path):
    data = np.arange(10 * 2 * 3, dtype=np.uint16).reshape(10, 2, 3)
    np.save(tmp_path / "a.npy", data)
    return data, np.load(tmp_path / "a.npy", mmap_mode="r")


@pytest.mark.parametrize("index", [[0, 1, 2, 7, 9], [9, 3, 4, 5, 0], [-1, 2], np.arange(10) % 3 == 0, []])
def test_rows_read_what_indexing_gives(mapped, index):
    data, mm = mapped
    for source in (mm, data):                     # from the file, and an in-memory array indexed
        rows = Rows(source, index)
        want = data[np.asarray(index, dtype=bool if np.asarray(index).dtype == bool else np.int64)]
        assert rows.shape == want.shape and len(rows) == len(want) and rows.dtype == want.dtype
        assert rows.ndim == want.ndim and rows.size == want.size and rows.nbytes == want.nbytes
        np.testing.assert_array_equal(np.asarray(rows), want)
        np.testing.assert_array_equal(rows[1:4], want[1:4])
        if len(want):
            np.testing.assert_array_equal(rows[0], want[0])
    assert Rows(mm, index)._file is not None      # the memory map is read with preadv, not mapped


def test_rows_name_their_bad_index_and_a_truncated_file(mapped, tmp_path):
    _, mm = mapped
    with pytest.raises(IndexError, match="out of range for 10 rows"):
        Rows(mm, [0, 10])
    with pytest.raises(IndexError, match="a boolean index of 3 for 10 rows"):
        Rows(mm, [True, False, True])
    with pytest.raises(TypeError, match="integer or a slice"):
        Rows(mm, [0, 1])[[0, 1]]
    with open(tmp_path / "a.npy", "r+b") as fh:   # the file shrinks under the reader
        fh.truncate(128 + 4 * 2 * 3 * 2)
    with pytest.raises(OSError, match="a.npy: short read"):
        np.asarray(Rows(mm, [2, 8]))
