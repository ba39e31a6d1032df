"""Content keys and atomic writes."""
import numpy as np
import pytest

from bgrobust.cache import atomic_dir, atomic_file, code_key, content_key


def test_content_key_is_order_free_and_sensitive():
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})
    assert content_key(np.zeros(3)) != content_key(np.zeros(3, np.float32))
    assert len(code_key("bgrobust.cache")) == 16


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(KeyError):
        with atomic_file(target) as tmp:
            tmp.write_text("new")
            raise KeyError
    assert target.read_text() == "old"
    with atomic_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1
