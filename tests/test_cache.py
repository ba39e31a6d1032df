"""Content keys, atomic writes, sealed entries, stale temporaries and entry locks."""
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from bgrobust import cache as C
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


# --------------------------------------------------------------------------- sealed entries

def _entry(folder, files=None):
    files = files or {"a.bin": b"\x01" * 100, "sub/b.txt": b"hello"}
    with C.atomic_dir(folder, seal=True) as tmp:
        for name, data in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
    return folder


def test_sealed_entry_lists_every_file_with_size_and_checksum(tmp_path):
    folder = _entry(tmp_path / "e")
    manifest = json.loads((folder / C.ENTRY_MANIFEST).read_text())
    assert sorted(manifest["files"]) == ["a.bin", "sub/b.txt"]
    assert manifest["files"]["sub/b.txt"][0] == 5
    assert manifest["versions"] == C.package_versions()
    assert C.check_entry(folder) is None


@pytest.mark.parametrize("damage, problem", [
    (lambda f: (f / "sub" / "b.txt").unlink(), r"sub/b.txt: missing"),
    (lambda f: (f / "a.bin").write_bytes(b"\x01" * 50), r"a.bin: 50 bytes, the manifest says 100"),
    (lambda f: (f / "a.bin").write_bytes(b"\x00" * 100), r"a.bin: checksum .* differs"),
    (lambda f: (f / C.ENTRY_MANIFEST).write_text("{"), r"\.entry\.json is unreadable"),
    (lambda f: (f / C.ENTRY_MANIFEST).unlink(), r"no \.entry\.json"),
])
def test_damage_of_any_kind_is_found(tmp_path, damage, problem):
    folder = _entry(tmp_path / "e")
    assert C.check_entry(folder) is None  # remembered as good ...
    time.sleep(0.01)
    damage(folder)
    assert re.search(problem, C.check_entry(folder))  # ... but a changed file is read again
    with pytest.raises(C.DamagedEntry, match=f"cache entry {re.escape(str(folder))} is damaged"):
        C.verify_entry(folder)


def test_a_complete_entry_is_never_replaced_a_damaged_one_is(tmp_path):
    folder = _entry(tmp_path / "e", {"v.txt": b"first"})
    _entry(folder, {"v.txt": b"second"})  # a second writer of the same key: its copy is dropped
    assert (folder / "v.txt").read_bytes() == b"first"
    (folder / "v.txt").write_bytes(b"rot!!")
    _entry(folder, {"v.txt": b"third"})  # a damaged entry is replaced
    assert (folder / "v.txt").read_bytes() == b"third" and C.check_entry(folder) is None
    assert [p.name for p in tmp_path.iterdir()] == ["e"]  # no temporaries, no lock file left


def test_load_or_create_rebuilds_a_damaged_entry_with_a_warning_naming_it(tmp_path):
    folder = tmp_path / "thing-123"
    builds = []

    def build(path):
        builds.append(1)
        _entry(path, {"v.txt": b"42"})

    def load(path):
        return (path / "v.txt").read_text()

    assert C.load_or_create(folder, build, load) == "42"
    assert C.load_or_create(folder, build, load) == "42" and len(builds) == 1
    (folder / "v.txt").write_text("00")
    with pytest.warns(C.CacheWarning, match=r"thing entry .*thing-123 is damaged \(v\.txt: checksum"):
        assert C.load_or_create(folder, build, load, what="thing entry") == "42"
    assert len(builds) == 2


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_killed_runs_are_cleaned_up(tmp_path, monkeypatch):
    dead = tmp_path / f".screen-abc.tmp-{_dead_pid()}-0123abcd"
    dead.mkdir()
    (dead / "half.zarr").write_text("x")
    mine = tmp_path / f".screen-abc.tmp-{os.getpid()}-0123abcd"
    mine.mkdir()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = tmp_path / f".other.tmp-{alive.pid}-0123abcd"
        live.write_text("being written")
        legacy = tmp_path / ".old.tmp-0123abcd"  # no pid: older versions; older than this process
        legacy.write_text("x")
        os.utime(legacy, (C.PROCESS_START - 60, C.PROCESS_START - 60))
        user = tmp_path / "notes.tmp-0123abcd"  # not hidden: never ours
        user.write_text("keep")
        with pytest.warns(C.CacheWarning, match="removed 2 stale temporary"):
            removed = C.clean_stale(tmp_path)
        assert sorted(p.name for p in removed) == sorted([dead.name, legacy.name])
        assert mine.exists() and live.exists() and user.exists() and not dead.exists()
    finally:
        alive.kill()
        alive.wait()


def test_keys_include_the_versions_of_the_packages_that_shape_the_numbers(monkeypatch):
    assert set(C.package_versions()) == {"numpy", "scipy", "torch", "scikit-learn", "scikit-image"}
    before = code_key("bgrobust.cache")
    real = C.package_versions()
    monkeypatch.setattr(C, "package_versions", lambda: {**real, "torch": "0.0.1"})
    assert code_key("bgrobust.cache") != before


def test_file_digest_sees_a_file_rewritten_under_the_same_name(tmp_path):
    path = tmp_path / "img.tif"
    path.write_bytes(b"a" * 10)
    first = C.file_digest(path)
    assert C.file_digest(path) == first
    path.write_bytes(b"b" * 10)
    assert C.file_digest(path) != first


def test_entry_lock_serialises_processes_and_is_released_by_death(tmp_path):
    """The lock is held by one process at a time; a killed holder frees it."""
    target = tmp_path / "entry"
    code = ("import sys, time; from bgrobust.cache import entry_lock\n"
            "with entry_lock(sys.argv[1]):\n"
            "    open(sys.argv[2], 'w').close(); time.sleep(60)\n")
    flag = tmp_path / "holding"
    holder = subprocess.Popen([sys.executable, "-c", code, str(target), str(flag)])
    try:
        for _ in range(600):
            if flag.exists():
                break
            time.sleep(0.05)
        assert flag.exists()
        probe = subprocess.Popen([sys.executable, "-c",
                                  "import sys; from bgrobust.cache import entry_lock\n"
                                  "print('trying', flush=True)\n"
                                  "with entry_lock(sys.argv[1]): print('got it')\n", str(target)],
                                 stdout=subprocess.PIPE, text=True)
        assert probe.stdout.readline().strip() == "trying"
        time.sleep(1.0)
        assert probe.poll() is None  # waits while the holder lives
        holder.kill()
        holder.wait()
        out, _ = probe.communicate(timeout=60)
        assert out.strip() == "got it"
    finally:
        holder.kill()
        holder.wait()
    assert not C.lock_path(target).exists()


def test_array_digest_of_a_read_only_mapping_is_hashed_once_and_equals_a_copys(tmp_path, monkeypatch):
    data = np.arange(4 * 3 * 5, dtype=np.float32).reshape(4, 3, 5)
    np.save(tmp_path / "a.npy", data)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    calls = []
    sha = C._sha256_of
    monkeypatch.setattr(C, "_sha256_of", lambda a: calls.append(a.shape) or sha(a))
    for view in (mapped, mapped[1:3], mapped[:, 1]):                 # whole, rows, a strided view
        assert C.array_digest(view) == sha(np.ascontiguousarray(view))
        assert C.array_digest(view) == C.array_digest(np.array(view))  # same bytes, same digest
    assert C.array_digest(mapped[1:3]) == C.array_digest(mapped[1:3])
    # each view of the mapping hashed once; the in-memory copies every time
    assert calls.count((4, 3, 5)) == 2 and calls.count((2, 3, 5)) == 2 and calls.count((4, 5)) == 2


def test_array_digest_of_writable_memory_sees_every_change(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 4)))
    writable = np.load(tmp_path / "a.npy", mmap_mode="r+")
    before = C.array_digest(writable)
    writable[1, 2] = 7.0
    assert C.array_digest(writable) != before
    in_memory = np.zeros((3, 4))
    before = C.array_digest(in_memory)
    in_memory[0, 0] = 1.0
    assert C.array_digest(in_memory) != before
