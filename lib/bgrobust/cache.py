"""Content keys and atomic writes for everything the book caches.

Every cached artefact (a rendered screen, a crop set, a checkpoint, a feature matrix)
lives under a key computed from everything that determines it: parameters, input
data and the source code of the modules that produce it.  Artefacts are written under
a temporary name and renamed into place, so an interrupted run never leaves a
half-written file that a later run would reuse.

Examples
--------
>>> from bgrobust.cache import content_key
>>> content_key({"seed": 0, "n": 3}) == content_key({"n": 3, "seed": 0})
True
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np


def _update(h, obj) -> None:
    if isinstance(obj, np.ndarray):
        h.update(b"ndarray")
        h.update(str(obj.dtype).encode())
        h.update(str(obj.shape).encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, (bytes, bytearray)):
        h.update(bytes(obj))
    elif isinstance(obj, Path):
        h.update(b"path")
        h.update(obj.read_bytes() if obj.is_file() else str(obj).encode())
    elif isinstance(obj, (list, tuple)):
        h.update(f"seq{len(obj)}".encode())
        for item in obj:
            _update(h, item)
    else:
        h.update(json.dumps(obj, sort_keys=True, default=str).encode())


def content_key(*parts, length: int = 16) -> str:
    """A short, stable hex digest of ``parts`` (JSON-able objects, arrays, bytes, files).

    Dictionaries are hashed with sorted keys, so key order does not matter.
    """
    h = hashlib.sha256()
    for part in parts:
        _update(h, part)
    return h.hexdigest()[:length]


def code_key(*modules: str) -> str:
    """Digest of the source code of the named modules (packages include all their files)."""
    h = hashlib.sha256()
    for name in modules:
        mod = importlib.import_module(name)
        path = Path(inspect.getfile(mod))
        files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary directory that replaces ``path`` only if the block succeeds.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "artefact"
    >>> with atomic_dir(target) as tmp:
    ...     _ = (tmp / "x.txt").write_text("done")
    >>> (target / "x.txt").read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary file path that is renamed to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
