"""Content keys, atomic writes and verified cache entries for everything the book caches.

Every cached artefact (a rendered screen, a crop set, a checkpoint, a feature matrix)
lives under a key computed from everything that determines it: parameters, input
data, the source code of the modules that produce it and the versions of the packages
that shape its numbers (:func:`package_versions`, part of every :func:`code_key`).

Writing
    An entry is written into a temporary sibling folder with a unique name
    (``.<name>.tmp-<pid>-<random>``) and renamed onto its final name only when it is
    complete (:func:`atomic_dir`).  A complete entry is never deleted to make room for
    another: when two processes build the same key, the first rename wins and the
    second writer discards its own copy (the contents are the same: a key determines
    them).  Only a *damaged* entry is replaced, and then under the key's lock file
    (``.<name>.lock``, :func:`entry_lock`, ``fcntl.flock``).
Verifying
    A sealed entry carries ``.entry.json``, the size and CRC-32 of every file in it
    (:func:`seal_entry`).  :func:`check_entry` compares the files with it; loaders call it
    before they read anything, so a missing zarr chunk, a truncated ``.npy`` or a
    zeroed file is found instead of being read as zeros.
Building
    :func:`load_or_create` loads a valid entry, or takes the key's lock and builds it:
    a second process asking for the same key meanwhile waits and then loads the first
    one's entry.  A damaged entry is rebuilt with a :class:`CacheWarning` that names
    its folder.  Temporaries left by killed runs (their process is gone) are removed
    (:func:`clean_stale`).

Every content digest of the project lives here: :func:`content_key` (parameters),
:func:`array_digest` (arrays), :func:`state_digest` / :func:`tensors_digest` (weights),
:func:`dataset_fingerprint` (a dataset), :func:`file_digest`, :func:`files_digest`,
:func:`folder_digest`, :func:`source_digest` (files and code).

Examples
--------
>>> from bgrobust.cache import content_key
>>> content_key({"seed": 0, "n": 3}) == content_key({"n": 3, "seed": 0})
True
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import importlib.metadata
import inspect
import json
import mmap
import os
import re
import shutil
import threading
import time
import uuid
import warnings
import weakref
import zlib
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

T = TypeVar("T")

#: The file inside every sealed entry that lists its files, sizes and checksums.
ENTRY_MANIFEST = ".entry.json"
_ENTRY_FORMAT = 1
#: The packages whose versions shape the numbers of cached artefacts (part of every key).
KEY_PACKAGES: tuple[str, ...] = ("numpy", "scipy", "torch", "scikit-learn", "scikit-image")
_TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?:(?P<pid>\d+)-)?[0-9a-f]{8}$")
#: When this process started (temporaries older than it, without a live writer, are stale).
PROCESS_START = time.time()
_CHUNK = 1 << 22


class CacheWarning(UserWarning):
    """A cache entry was damaged (and is rebuilt) or a stale temporary was removed."""


class DamagedEntry(OSError):
    """A cache entry whose files do not match its manifest; the message names the folder."""

    def __init__(self, path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"cache entry {self.path} is damaged: {problem}")


# --------------------------------------------------------------------------- keys
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


def package_versions() -> dict[str, str | None]:
    """Installed versions of :data:`KEY_PACKAGES` (``None`` for one that is not installed).

    Read from the package metadata, so nothing is imported.

    Examples
    --------
    >>> sorted(package_versions())
    ['numpy', 'scikit-image', 'scikit-learn', 'scipy', 'torch']
    """
    out = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def code_key(*modules: str) -> str:
    """Digest of the code that produces an artefact.

    The source of the named modules (packages include all their files) and the
    versions of the packages that shape the numbers (:func:`package_versions`), so a
    cache made with another numpy, torch, scikit-learn or scikit-image is not reused.
    """
    h = hashlib.sha256()
    h.update(json.dumps(package_versions(), sort_keys=True).encode())
    for name in modules:
        mod = importlib.import_module(name)
        path = Path(inspect.getfile(mod))
        files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


_FILE_DIGESTS: dict[tuple, str] = {}


def file_digest(path) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes.

    Remembered for the life of the process under the file's size, modification time
    and inode, so a file that is asked for twice is read once; a rewritten file (new
    mtime or size) is read again.
    """
    path = Path(path)
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    if memo not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                h.update(block)
        _FILE_DIGESTS[memo] = h.hexdigest()[:16]
    return _FILE_DIGESTS[memo]


def files_digest(paths) -> str:
    """One digest of the contents of several files, in the given order (see :func:`file_digest`)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(file_digest(p).encode())
    return h.hexdigest()[:16]


def folder_digest(path) -> str:
    """Digest of a folder's file names, sizes and modification times (not their bytes: cheap on big folders)."""
    path = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def source_digest(lib_dir) -> str:
    """SHA-256 of the path and bytes of every ``*.py`` file under ``lib_dir`` (the library, for the book runner)."""
    h = hashlib.sha256()
    for path in sorted(Path(lib_dir).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        h.update(path.relative_to(lib_dir).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------- content digests
def array_digest(arr) -> str:
    """SHA-256 hex digest of an array's dtype, shape and raw bytes.

    Reads the data in 16 MiB chunks straight from the array's buffer (a C-contiguous array or
    memory map is not copied), so hashing 1 GB of crops takes about a second.

    Parameters
    ----------
    arr : array_like

    Returns
    -------
    str
        64 hex characters.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(6, dtype=np.uint16).reshape(2, 3)
    >>> array_digest(a) == array_digest(a.copy())
    True
    >>> array_digest(a) == array_digest(a.astype(np.int32))
    False
    """
    if getattr(arr, "lazy_rows", False):   # bgrobust._npy.Rows: hashed block by block, never held whole
        return _sha256_of(arr)
    a = np.asarray(arr)
    mapping = _readonly_mapping(a)
    if mapping is not None:
        where = (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)
        known = _MAPPED_DIGESTS.setdefault(mapping, {})
        if where not in known:
            known[where] = _sha256_of(a)
        return known[where]
    return _sha256_of(a)


#: Digests of arrays that live in read-only file mappings (cache entries read with
#: ``np.load(..., mmap_mode="r")``), per mapping and place in it: such memory cannot change
#: while the mapping is open, and sealed cache entries are replaced, never rewritten in
#: place, so chapter 4's ten extractors hash each set's crops once instead of ten times.
_MAPPED_DIGESTS: "weakref.WeakKeyDictionary[mmap.mmap, dict]" = weakref.WeakKeyDictionary()


def _readonly_mapping(a: np.ndarray):
    """The read-only ``mmap`` that holds ``a``'s memory, or None (any other memory)."""
    base = a
    while isinstance(base, np.ndarray):
        base = base.base
    if not isinstance(base, mmap.mmap) or base.closed:
        return None
    with memoryview(base) as view:
        return base if view.readonly else None


def _sha256_of(a: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}|{a.shape}|".encode())
    if a.size:
        if a.dtype.hasobject:
            raise TypeError("array_digest: object arrays cannot be hashed by their bytes")
        # process the leading axis in slabs: contiguous slabs are hashed without copying
        rows = max(1, _CHUNK // max(1, a[:1].nbytes)) if a.ndim else 1
        if a.ndim == 0:
            h.update(np.ascontiguousarray(a).tobytes())
        else:
            for start in range(0, a.shape[0], rows):
                slab = np.ascontiguousarray(a[start:start + rows])
                h.update(memoryview(slab).cast("B"))
    return h.hexdigest()


def state_digest(model) -> str:
    """SHA-256 hex digest of every tensor of ``model.state_dict()`` (names, dtypes, shapes, bytes).

    Examples
    --------
    >>> from bgrobust import models
    >>> a = models.build("pifia", width=0.25, random_state=0)
    >>> b = models.build("pifia", width=0.25, random_state=0)
    >>> state_digest(a) == state_digest(b)
    True
    """
    return tensors_digest(model.state_dict())


def tensors_digest(state: dict) -> str:
    """SHA-256 hex digest of a state dict's tensors (names, dtypes, shapes and bytes)."""
    import torch

    h = hashlib.sha256()
    for key, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()).cast("B"))
    return h.hexdigest()


def dataset_fingerprint(dataset, chunk: int = 1024) -> str:
    """A content key of a :class:`~bgrobust.dataset.Dataset` (tables, report, every pixel)."""
    import pandas as pd

    h = hashlib.sha256()
    for crops in (dataset.crops, dataset.cell_free):
        h.update(pd.util.hash_pandas_object(crops.table, index=False).to_numpy().tobytes())
        h.update(str(list(crops.table.columns)).encode())
        for arr in (crops.images, crops.masks):
            h.update(f"{np.shape(arr)}{np.asarray(arr[:0]).dtype}".encode())
            for start in range(0, len(arr), chunk):
                h.update(np.ascontiguousarray(arr[start:start + chunk]).tobytes())
    h.update(json.dumps(getattr(dataset, "report", {}), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]



# --------------------------------------------------------------------------- checksums and manifests
def file_checksum(path) -> str:
    """CRC-32 of a file's bytes as 8 hex digits (fast; finds truncated, zeroed or altered files)."""
    crc = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            crc = zlib.crc32(block, crc)
    return f"{crc & 0xFFFFFFFF:08x}"


def _entry_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ENTRY_MANIFEST)


def seal_entry(folder, files=None) -> Path:
    """Write ``folder/.entry.json``: the relative path, size and CRC-32 of every file in it.

    Parameters
    ----------
    folder : path-like
    files : iterable of str, optional
        Only these files (paths relative to ``folder``); default: every file.

    Returns
    -------
    Path
        The manifest.
    """
    folder = Path(folder)
    paths = _entry_files(folder) if files is None else [folder / f for f in files]
    files = {p.relative_to(folder).as_posix(): [p.stat().st_size, file_checksum(p)] for p in paths}
    manifest = {"format": _ENTRY_FORMAT, "files": files, "versions": package_versions()}
    path = folder / ENTRY_MANIFEST
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return path


_VERIFIED: dict[tuple, bool] = {}
_VERIFIED_LOCK = threading.Lock()


def check_entry(folder) -> str | None:
    """Why ``folder`` is not a complete, undamaged entry, or ``None`` when it is.

    Every file listed in ``.entry.json`` must exist with its size and CRC-32.  A check
    that passed is remembered for the life of the process while no file's size,
    modification time or inode changes (then the files are read again).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("abc"); _ = seal_entry(d)
    >>> check_entry(d) is None
    True
    >>> _ = (d / "a.txt").write_text("abd")
    >>> check_entry(d).startswith("a.txt: checksum")
    True
    """
    folder = Path(folder)
    manifest = folder / ENTRY_MANIFEST
    if not folder.is_dir():
        return "missing"
    if not manifest.is_file():
        return f"no {ENTRY_MANIFEST} (incomplete, or written by an older version)"
    try:
        data = json.loads(manifest.read_text())
        files = data["files"]
        assert data.get("format") == _ENTRY_FORMAT and isinstance(files, dict)
    except (ValueError, KeyError, TypeError, AssertionError, OSError):
        return f"{ENTRY_MANIFEST} is unreadable"
    stats = []
    for rel, (size, _) in sorted(files.items()):
        try:
            st = (folder / rel).stat()
        except FileNotFoundError:
            return f"{rel}: missing"
        if st.st_size != size:
            return f"{rel}: {st.st_size} bytes, the manifest says {size}"
        stats.append((rel, st.st_size, st.st_mtime_ns, st.st_ino))
    memo = (str(folder.resolve()), manifest.stat().st_mtime_ns, tuple(stats))
    if _VERIFIED.get(memo):
        return None
    for rel, (_, checksum) in sorted(files.items()):
        got = file_checksum(folder / rel)
        if got != checksum:
            return f"{rel}: checksum {got} differs from the manifest ({checksum})"
    with _VERIFIED_LOCK:
        _VERIFIED[memo] = True
    return None


def verify_entry(folder) -> Path:
    """Raise :class:`DamagedEntry` (naming the folder and the problem) unless ``folder`` checks out."""
    problem = check_entry(folder)
    if problem is not None:
        raise DamagedEntry(folder, problem)
    return Path(folder)


def verify_if_sealed(folder) -> None:
    """:func:`verify_entry` for a folder that has a manifest (hand-made folders pass unchecked)."""
    if (Path(folder) / ENTRY_MANIFEST).exists():
        verify_entry(folder)


# --------------------------------------------------------------------------- temporaries and locks
def tmp_sibling(path) -> Path:
    """A unique temporary name beside ``path``: ``.<name>.tmp-<pid>-<random>`` (see :func:`clean_stale`)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(path: Path) -> bool:
    """A temporary whose writer is gone.

    Its process id (in the name) is not running, or is running but started after the
    temporary was made (the id was reused).  A temporary without an id (older
    versions) is stale when it is older than this process.
    """
    m = _TMP.match(path.name)
    if m is None:
        return False
    try:
        made = path.lstat().st_mtime
    except FileNotFoundError:
        return False
    if m.group("pid") is None:
        return made < PROCESS_START
    pid = int(m.group("pid"))
    if pid == os.getpid():
        return False
    if not _pid_alive(pid):
        return True
    try:
        started = Path(f"/proc/{pid}").stat().st_ctime
    except OSError:
        return False
    return started > made + 1.0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_stale(folder, *, warn: bool = True) -> list[Path]:
    """Remove the temporaries in ``folder`` whose writer is gone (killed runs).

    Returns
    -------
    list of Path
        What was removed (a :class:`CacheWarning` lists it when ``warn``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        if p.name.startswith(".") and ".tmp-" in p.name and _is_stale(p):
            _remove(p)
            removed.append(p)
    if removed and warn:
        warnings.warn(f"removed {len(removed)} stale temporary file(s) of killed runs in {folder}: "
                      f"{', '.join(p.name for p in removed[:3])}{' ...' if len(removed) > 3 else ''}",
                      CacheWarning, stacklevel=3)
    return removed


_CLEANED: set[str] = set()


def clean_stale_once(folder) -> list[Path]:
    """:func:`clean_stale` the first time this process uses ``folder`` (a cheap no-op afterwards)."""
    key = os.path.abspath(folder)
    if key in _CLEANED:
        return []
    _CLEANED.add(key)
    return clean_stale(folder)


_HELD = threading.local()


def lock_path(path) -> Path:
    """The lock file of the entry ``path`` (``.<name>.lock`` beside it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _acquire(lock: Path) -> int:
    """An open descriptor of ``lock`` holding its exclusive ``flock``.

    The holder removes the file before it lets go (:func:`entry_lock`), so a waiter that
    got the lock of a file that is no longer linked at ``lock`` tries again: whoever holds
    the lock of the file at ``lock`` is the only holder.
    """
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    break
                except InterruptedError:  # pragma: no cover
                    continue
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def entry_lock(path):
    """Hold the exclusive lock of the cache entry ``path`` (``fcntl.flock`` on its lock file).

    The lock file is ``.<name>.lock`` beside ``path``; it exists only while the lock is
    held.  Other processes (and threads) asking for the same lock wait; the operating
    system releases it when its holder dies, so a killed run never leaves it taken (the
    next holder reuses the file it left).  The lock is re-entrant within one thread.
    """
    lock = lock_path(path).absolute()
    held = getattr(_HELD, "paths", None)
    if held is None:
        held = _HELD.paths = set()
    if lock in held:
        yield
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock)
    held.add(lock)
    try:
        yield
    finally:
        held.discard(lock)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# --------------------------------------------------------------------------- atomic writes
def _retire(path: Path) -> None:
    """Rename ``path`` out of the way (onto a temporary name) and delete it there."""
    trash = tmp_sibling(path)
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    _remove(trash)


@contextlib.contextmanager
def atomic_dir(path, *, seal: bool = False):
    """Yield a temporary directory that becomes ``path`` only if the block succeeds.

    The directory is renamed onto ``path`` under the entry's lock.  If ``path`` exists:

    * with ``seal=True`` (a cache entry), a complete entry there is kept and the new
      copy discarded (another writer finished the same key first); a damaged one is
      replaced;
    * with ``seal=False`` it is replaced.

    Parameters
    ----------
    path : path-like
    seal : bool
        Write the entry's manifest (:func:`seal_entry`) before the rename.

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
    tmp = tmp_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
        if seal:
            seal_entry(tmp)
        with entry_lock(path):
            if path.exists():
                if seal and check_entry(path) is None:
                    _remove(tmp)
                    return
                _retire(path)
            os.rename(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary file path that is renamed to ``path`` only if the block succeeds.

    The rename (``os.replace``) is atomic: a reader sees the old file or the new one,
    never part of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


# --------------------------------------------------------------------------- load or create
def _try_load(path: Path, load: Callable[[Path], T]) -> tuple[T | None, str | None]:
    problem = check_entry(path)
    if problem is not None:
        return None, problem
    try:
        return load(path), None
    except Exception as exc:  # noqa: BLE001 - any failure to read means "rebuild"
        return None, f"cannot be read ({type(exc).__name__}: {exc})"


def load_or_create(path, build: Callable[[Path], Any], load: Callable[[Path], T], *,
                   what: str = "cache entry") -> T:
    """Load the sealed entry ``path``, building it first if it is missing or damaged.

    Parameters
    ----------
    path : path-like
        The entry's folder (its name carries the key).
    build : callable
        ``build(path)`` writes the entry, sealed (e.g. through ``atomic_dir(path,
        seal=True)``).  It runs under the key's lock: a concurrent caller waits for it
        and then loads its entry.
    load : callable
        ``load(path)`` reads a verified entry.
    what : str
        What the entry is, for the warning.

    Returns
    -------
    The result of ``load``.

    Warns
    -----
    CacheWarning
        When an existing entry is damaged (the warning names its folder and the
        problem); it is then rebuilt.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> def build(p):
    ...     with atomic_dir(p, seal=True) as tmp:
    ...         _ = (tmp / "v.txt").write_text("42")
    >>> entry = pathlib.Path(tempfile.mkdtemp()) / "answer"
    >>> load_or_create(entry, build, lambda p: (p / "v.txt").read_text())
    '42'
    """
    path = Path(path)
    if path.exists():
        value, problem = _try_load(path, load)
        if problem is None:
            return value
    with entry_lock(path):
        if path.exists():
            value, problem = _try_load(path, load)
            if problem is None:
                return value
            warnings.warn(f"{what} {path} is damaged ({problem}); rebuilding it", CacheWarning, stacklevel=2)
            _retire(path)
        clean_stale(path.parent)
        build(path)
        problem = check_entry(path)
        if problem is not None:
            raise DamagedEntry(path, f"just built but {problem}")
        return load(path)


def read_checked(path, load: Callable[[Path], T], *, what: str = "cache entry") -> T | None:
    """Load the sealed entry ``path`` if it is there and whole; else ``None``.

    A damaged entry gives a :class:`CacheWarning` naming it (and ``None``: the caller
    recomputes it and writes it with ``atomic_dir(path, seal=True)``, which replaces it).
    """
    path = Path(path)
    if not path.exists():
        return None
    value, problem = _try_load(path, load)
    if problem is None:
        return value
    warnings.warn(f"{what} {path} is damaged ({problem}); recomputing it", CacheWarning, stacklevel=2)
    return None
