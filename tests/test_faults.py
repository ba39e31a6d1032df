"""Faults: concurrent writers and readers of one cache key, and runs killed with SIGKILL.

Every scenario runs real processes (``subprocess`` with this interpreter): two writers of
one key, a reader that arrives while a writer is half done, a training and an SVM grid
killed mid-way and run again.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bgrobust import cache as C


def _python(code: str, *args, env=None, **kwargs) -> subprocess.Popen:
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.02)


def _finish(proc: subprocess.Popen, seconds: float = 300) -> str:
    out, err = proc.communicate(timeout=seconds)
    assert proc.returncode == 0, err
    return out


# --------------------------------------------------------------------------- one key, two processes
SLOW_WRITER = """
import os, sys, time
from pathlib import Path
from bgrobust.cache import atomic_dir, load_or_create

entry, log, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)

def build(path):
    with open(log, "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    with atomic_dir(path, seal=True) as tmp:
        for i in range(20):                       # a slow writer: 20 chunks
            (tmp / f"chunk{i:02d}").write_bytes(bytes([i]) * 1000)
            time.sleep(0.02)

def load(path):
    return sum(sum((path / f"chunk{i:02d}").read_bytes()) for i in range(20))

print(load_or_create(entry, build, load))
"""


def test_two_processes_writing_one_key_make_one_complete_entry(tmp_path):
    entry, log, go = tmp_path / "cache" / "thing-abc", tmp_path / "builds.log", tmp_path / "go"
    procs = [_python(SLOW_WRITER, entry, log, go) for _ in range(2)]
    time.sleep(0.5)
    go.touch()
    outs = [_finish(p) for p in procs]
    expected = sum(i * 1000 for i in range(20))
    assert [int(o) for o in outs] == [expected, expected]
    assert len(log.read_text().split()) == 1          # the second waited for the first, then loaded
    assert C.check_entry(entry) is None
    assert [p.name for p in entry.parent.iterdir()] == ["thing-abc"]  # no temporary, no lock left


def test_a_reader_during_a_write_waits_and_never_sees_a_missing_chunk(tmp_path):
    entry, log, go = tmp_path / "cache" / "thing-abc", tmp_path / "builds.log", tmp_path / "go"
    go.touch()
    writer = _python(SLOW_WRITER, entry, log, go)
    _wait_for(log, writer)                            # the writer is inside build(), half done

    def must_not_build(path):
        raise AssertionError("the reader rebuilt an entry that was being written")

    def load(path):
        return [(path / f"chunk{i:02d}").read_bytes()[:1] for i in range(20)]

    assert not entry.exists()                         # nothing visible before the rename
    got = C.load_or_create(entry, must_not_build, load)
    assert got == [bytes([i]) for i in range(20)]
    assert int(_finish(writer)) == sum(i * 1000 for i in range(20))


SCREEN_WRITER = """
import sys
from bgrobust.synth import ScreenConfig, load_or_generate
cfg = ScreenConfig(proteins_per_class=1, n_multi=1, fields_per_strain=1, field_shape=(96, 96),
                   cells_per_field=(4, 8), n_plates=1)
s = load_or_generate(cfg, sys.argv[1], progress=False)
import numpy as np
print(int(sum(int(np.asarray(s.image(i), np.int64).sum()) for i in range(s.n_fields))))
"""


def test_two_processes_generating_one_screen_agree_and_leave_one_whole_entry(tmp_path):
    procs = [_python(SCREEN_WRITER, tmp_path) for _ in range(2)]
    outs = [_finish(p) for p in procs]
    assert outs[0] == outs[1]
    (entry,) = tmp_path.iterdir()
    assert entry.name.startswith("screen-") and C.check_entry(entry) is None
    manifest = json.loads((entry / C.ENTRY_MANIFEST).read_text())["files"]
    n_fields = 16  # 15 classes x 1 protein + 1 multi, one field each
    assert sum(k.startswith("images.zarr/c/") for k in manifest) == n_fields  # every chunk listed


CHAPTER = """
import json, sys
from bgrobust.dataset import open_dataset
screen, ds = open_dataset("synthetic", {"proteins_per_class": 1, "n_multi": 2, "fields_per_strain": 2,
                                                    "field_shape": [128, 128], "n_plates": 1}, {}, seed=3,
                                      n_jobs=1, progress=False)
print(json.dumps({"n_crops": len(ds.crops), "fields": int(ds.crops.table.field.nunique())}))
"""


def _entries(runs: Path) -> dict:
    """Every sealed entry under ``runs``: its name -> the sizes and checksums of its files."""
    return {p.parent.relative_to(runs).as_posix(): json.loads(p.read_text())["files"]
            for p in sorted(runs.rglob(C.ENTRY_MANIFEST))}


def test_two_chapters_on_one_runs_folder_store_what_one_chapter_stores(tmp_path):
    """The issue's scenario at library level: two kernels build the screen and dataset at once."""
    shared, alone = tmp_path / "shared_runs", tmp_path / "alone_runs"
    procs = [_python(CHAPTER, env={**os.environ, "BGROBUST_RUNS": str(shared), "OMP_NUM_THREADS": "1"})
             for _ in range(2)]
    outs = [json.loads(_finish(p)) for p in procs]
    single = json.loads(_finish(_python(CHAPTER, env={**os.environ, "BGROBUST_RUNS": str(alone),
                                                       "OMP_NUM_THREADS": "1"})))
    assert outs == [single, single]
    together, apart = _entries(shared), _entries(alone)
    assert sorted(together) == sorted(apart) and len(together) == 2    # one screen, one dataset
    assert together == apart                                            # bit for bit
    assert not [p for p in shared.rglob("*") if p.name.startswith(".") and p.name != C.ENTRY_MANIFEST]


# --------------------------------------------------------------------------- SIGKILL mid-way
TRAIN_CHILD = """
import sys, time
from pathlib import Path
import numpy as np, pandas as pd, torch
torch.set_num_threads(1)
from bgrobust import train as T
from bgrobust.crops import CropSet

def cropset():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"strain": np.repeat(["YAL1", "YBR2", "YCL3"], 4), "field": 0, "valid": True})
    return CropSet(rng.integers(0, 3000, (12, 3, 64, 64)).astype(np.uint16), np.zeros((12, 64, 64), bool), table)

PARAMS = dict(width=0.125, batch_size=4, epochs=3)

if __name__ == "__main__":
    cache, flag = Path(sys.argv[1]), Path(sys.argv[2])
    real = T.train
    def stall(epochs_done, history):
        if epochs_done == 1:
            flag.touch()
            time.sleep(600)                     # killed here, in the middle of the training
    T.train = lambda *a, **k: real(*a, callback=stall, **k)
    T.load_or_train("pifia", cropset(), PARAMS, cache_dir=cache, progress=False)
"""


@pytest.fixture(scope="module")
def train_child(tmp_path_factory):
    path = tmp_path_factory.mktemp("child") / "train_child.py"
    path.write_text(textwrap.dedent(TRAIN_CHILD))
    return path


def test_training_killed_mid_way_resumes_to_the_same_weights(tmp_path, train_child, monkeypatch):
    import torch

    sys.path.insert(0, str(train_child.parent))
    try:
        import train_child as child  # noqa: PLC0415 - the child's own data and parameters
    finally:
        sys.path.pop(0)
    from bgrobust import train as T

    cache, flag = tmp_path / "models", tmp_path / "epoch1"
    proc = subprocess.Popen([sys.executable, str(train_child), str(cache), str(flag)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(flag, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (folder,) = cache.glob("pifia-*")
    assert len(list(folder.glob("checkpoint-e00001-*.pt"))) == 1 and not (folder / "weights.pt").exists()
    # what a kill during a write leaves behind: a temporary of a dead process
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = folder / f".checkpoint-e00002.pt.tmp-{dead.pid}-0123abcd"
    stale.write_bytes(b"half a checkpoint")

    epochs = []
    real = T.train
    monkeypatch.setattr(T, "train", lambda *a, **k: real(*a, callback=lambda e, h: epochs.append(e), **k))
    torch.set_num_threads(1)
    cs = child.cropset()
    with pytest.warns(C.CacheWarning, match="stale temporary"):
        resumed = T.load_or_train("pifia", cs, child.PARAMS, cache_dir=cache, progress=False)
    assert epochs == [2, 3]                            # epoch 1 came from the killed run's checkpoint
    assert not stale.exists() and not list(folder.glob("checkpoint-*"))
    whole = real("pifia", cs, child.PARAMS, progress=False)   # uninterrupted, in memory
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert C.check_entry(folder) is None


SVM_CHILD = """
import sys, time
from pathlib import Path
import numpy as np
from bgrobust import classify

cache, flag = Path(sys.argv[1]), Path(sys.argv[2])
rng = np.random.default_rng(0)
classes = ["actin", "ER", "Golgi", "nucleus", "vacuole", "cytoplasm"]
feats = {c: rng.normal(i * 0.3, 1, (20, 4)) for i, c in enumerate(classes)}
real, calls = classify._cv, []
def slow(*a, **k):
    calls.append(1)
    if len(calls) == 5:
        flag.touch()
        time.sleep(600)                         # killed here: 4 of 15 SVMs done
    return real(*a, **k)
classify._cv = slow
classify.evaluate_pairs(feats, classify.SVMProtocol(n_per_class=20), classes=classes, n_jobs=1,
                        progress=False, cache_dir=cache)
"""


def test_svm_grid_killed_mid_way_resumes_and_gives_the_same_table(tmp_path, monkeypatch):
    from bgrobust import classify

    cache, flag = tmp_path / "svm", tmp_path / "busy"
    proc = _python(SVM_CHILD, cache, flag)
    try:
        _wait_for(flag, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = list(cache.rglob("*.json"))
    assert 0 < len(done) < 15

    rng = np.random.default_rng(0)
    classes = ["actin", "ER", "Golgi", "nucleus", "vacuole", "cytoplasm"]
    feats = {c: rng.normal(i * 0.3, 1, (20, 4)) for i, c in enumerate(classes)}
    proto = classify.SVMProtocol(n_per_class=20)
    calls = []
    real = classify._cv
    monkeypatch.setattr(classify, "_cv", lambda *a, **k: calls.append(1) or real(*a, **k))
    resumed = classify.evaluate_pairs(feats, proto, classes=classes, progress=False, cache_dir=cache)
    assert len(calls) == 15 - len(done)               # only the missing SVMs ran
    monkeypatch.setattr(classify, "_cv", real)
    fresh = classify.evaluate_pairs(feats, proto, classes=classes, progress=False)
    assert resumed.equals(fresh)
    assert len(list(cache.rglob("*.json"))) == 15 and not list(cache.rglob(".*tmp*"))
