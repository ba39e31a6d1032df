"""Execute the book's notebooks under a named parameter profile.

The notebook sources are jupytext files in ``notebooks/`` (MyST markdown ``.md`` or
percent ``.py``), each with one code cell tagged ``parameters``.  This runner reads
them with jupytext, injects the parameters of a profile (``params/<profile>.yml``)
with papermill, and writes the executed notebooks to ``book/<name>.ipynb``, which
Jupyter Book renders as they are (``execute_notebooks: "off"``).

A notebook is skipped when its executed copy already carries the same *input hash*:
a digest of the source, the final parameters, the contents of the files its path
parameters point to (a manifest with its images, :func:`input_files`), the code of the
``bgrobust`` library and the profile name (``metadata.bgrobust.input_hash``).  Relative
paths given to path parameters (``*_path``, ``*_dir``, ``*_file``) are made absolute:
``-p`` values against the directory the command runs in, profile values against the
profile's folder (:func:`resolve_paths`); the kernels run in ``book/``.  A failed notebook leaves
no page behind: ``book/<name>.ipynb`` is removed and the partial output is kept as
``book/<name>.failed.ipynb``, which the book excludes.

Examples
--------
Run every notebook at demo scale, then one notebook with an override::

    python -m bgrobust.runbook --profile demo
    python -m bgrobust.runbook --profile demo --only 01_dataset -p n_cells 50

Show what would run and with which parameters::

    python -m bgrobust.runbook --profile ci --list
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import jupytext
import nbformat
import papermill as pm
import yaml
from traitlets.config import Config

from bgrobust.paths import RUNS_ENV
from bgrobust.profiles import Profile, ProfileError, is_path_parameter, load_profile, resolve_paths


def _project_root() -> Path:
    """The book's repository: the checkout the library is installed from (editable), else the cwd."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "_toc.yml").is_file() else Path.cwd()


#: The book's repository and its folders (book tooling only: the library itself never uses them).
ROOT = _project_root()
BOOK = ROOT / "book"
NOTEBOOKS = ROOT / "notebooks"
PARAMS = ROOT / "params"
#: The library whose code is part of every input hash.
LIB_DIR = Path(__file__).resolve().parent
#: File suffixes of notebook sources (jupytext MyST markdown and percent scripts).
SOURCE_SUFFIXES = (".md", ".py")
#: Key of the runner's record in the executed notebook's metadata.
METADATA_KEY = "bgrobust"
#: Suffixes of the runner's own files next to the pages (excluded by ``_config.yml``).
RUNNING_SUFFIX = ".running.ipynb"
FAILED_SUFFIX = ".failed.ipynb"
#: Environment variable that tells the kernel which profile it runs under.
PROFILE_ENV = "BGROBUST_PROFILE"
#: The kernel every notebook runs in (the Python that runs this module).
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
#: ipykernel >= 7.3 warns on every start unless the kernel channels are encrypted.
KERNEL_CONFIG = Config({"KernelManager": {"transport_encryption": "auto"}})
#: Tags that already hide or remove a cell's input on the page.
_HIDING_TAGS = {"hide-input", "hide-cell", "remove-input", "remove-cell"}
#: Cell metadata that Jupyter and its extensions write while a notebook is open (ids, folding,
#: scrolling, execution times, slide types); none of it changes a page, so none of it is part of
#: the input hash (:func:`canonical_source`).
EDITOR_CELL_METADATA = frozenset({"id", "collapsed", "scrolled", "jupyter", "execution", "editable",
                                  "deletable", "slideshow", "trusted", "ExecuteTime", "vscode"})
#: Environment of the kernels the runner starts: progress bars off (a page is not a terminal;
#: the runner prints which chapter runs and for how long).
KERNEL_ENV = {"TQDM_DISABLE": "1"}
#: Defaults of the kernels' environment that the caller's own values override: how the
#: kernels wait and allocate, never what they compute.
#:
#: * ``OMP_WAIT_POLICY``: OpenMP threads that spin while waiting slow torch down several-fold
#:   on a busy 2-core machine; passive waiting costs nothing when the machine is idle.
#: * ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` (glibc; ignored elsewhere): by
#:   default glibc hands the freed top of its heap back to the kernel once 2x the last freed
#:   mmap size (at most 64 MiB) is free, so every training step and extraction batch re-faults
#:   the pages of its activations (37.5 M minor page faults and 173 s of system time in the
#:   demo's chapters 1-6).  Heap blocks up to 32 MiB (glibc's largest mmap threshold) and no
#:   trimming keep those pages mapped for reuse: on the 2-core development machine bf16
#:   training steps ran 1.03-1.09x and extraction 1.09-1.57x faster, peak RSS within 4%
#:   (``benchmarks/results/malloc.json``); the demo's chapters 1-6 took 910 s instead of
#:   1000 s (5.3 M page faults, 99 s of system time; ``benchmarks/results/demo_book.json``).
KERNEL_ENV_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "MALLOC_MMAP_THRESHOLD_": "33554432",
                       "MALLOC_TRIM_THRESHOLD_": "17179869184"}
#: Code every kernel the runner starts runs before the notebook (IPython ``exec_lines``), so
#: that a page shows results, not a terminal:
#:
#: * figures are shown where a notebook displays or glues them, never a second time by the
#:   inline backend at the end of the cell;
#: * ``tqdm.auto`` progress bars are off (also those created with an explicit ``disable=``),
#:   and ``tqdm.auto`` is imported without its warning that ipywidgets is missing;
#: * a warning is one line of text in the cell's output, ``UserWarning: message``, instead
#:   of a stderr block naming the kernel's temporary file and source line.
#:
#: Opened in Jupyter instead, a notebook keeps Jupyter's behaviour (figures at the end of
#: each cell, progress bars, warnings on stderr).
KERNEL_STARTUP = """\
import sys as _bgr_sys, warnings as _bgr_warnings
import matplotlib.pyplot as _bgr_plt
_bgr_plt.close(_bgr_plt.figure())  # loads the inline backend, which turns interactive mode on
_bgr_plt.ioff()
with _bgr_warnings.catch_warnings():
    _bgr_warnings.simplefilter("ignore")
    import tqdm.auto as _bgr_auto, tqdm.std as _bgr_std
class _bgr_quiet_tqdm(_bgr_std.tqdm):
    def __init__(self, *args, **kwargs):
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)
def _bgr_trange(*args, **kwargs):
    return _bgr_quiet_tqdm(range(*args), **kwargs)
_bgr_auto.tqdm, _bgr_auto.trange = _bgr_quiet_tqdm, _bgr_trange
def _bgr_showwarning(message, category, filename, lineno, file=None, line=None):
    print(f"{category.__name__}: {message}", file=_bgr_sys.stdout)
_bgr_warnings.showwarning = _bgr_showwarning
del _bgr_plt, _bgr_auto
"""


class RunbookError(Exception):
    """A problem with the command line, a profile or a notebook source (exit code 2)."""


@dataclass(eq=False)
class NotebookFailed(Exception):
    """A notebook raised while it was executed.

    Attributes
    ----------
    name : str
        Notebook stem.
    cell : int or None
        1-based number of the failing code cell, counting the code cells of the
        source (the injected-parameters cell is not counted).
    first_line : str
        First line of the failing cell's source.
    ename, evalue : str
        Exception name and message.
    failed_path : Path or None
        Where the partial output was kept.
    """

    name: str
    cell: int | None
    first_line: str
    ename: str
    evalue: str
    failed_path: Path | None = None

    def __str__(self) -> str:
        where = f"code cell {self.cell}" if self.cell else "an unknown cell"
        line = f" `{self.first_line}`" if self.first_line else ""
        return (f"{self.name} failed in {where}{line} (code cells counted from 1, the "
                f"injected-parameters cell not counted): {self.ename}: {self.evalue}")


@dataclass
class Outcome:
    """What happened to one notebook: ``status`` is ``ok``, ``skip`` or ``FAIL``."""

    name: str
    status: str
    seconds: float = 0.0


# --------------------------------------------------------------------------- sources
def find_sources(src_dir: Path = NOTEBOOKS, names: Sequence[str] | None = None) -> list[Path]:
    """List notebook sources, sorted by name.

    Hidden files, files starting with ``_`` and ``README.*`` are not notebooks.

    Parameters
    ----------
    src_dir : Path
        Folder holding ``NN_name.md`` / ``NN_name.py`` jupytext sources.
    names : sequence of str, optional
        Stems to select (``01_dataset``); all sources when empty.

    Returns
    -------
    list of Path

    Raises
    ------
    RunbookError
        If a name matches no source, or two sources share a stem.
    """
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise RunbookError(f"notebook folder {src_dir} does not exist")
    sources = sorted(p for p in src_dir.iterdir()
                     if p.is_file() and p.suffix in SOURCE_SUFFIXES
                     and not p.name.startswith((".", "_")) and p.stem.upper() != "README")
    stems = [p.stem for p in sources]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise RunbookError(f"several sources share the name(s) {duplicates} in {src_dir}")
    if not names:
        return sources
    unknown = [n for n in names if n not in stems]
    if unknown:
        raise RunbookError(f"unknown notebook(s) {unknown}; available: {', '.join(stems) or '(none)'}")
    return [p for p in sources if p.stem in set(names)]


def read_source(src: Path) -> nbformat.NotebookNode:
    """Read a jupytext source into a notebook that runs in the ``python3`` kernel.

    Raises
    ------
    RunbookError
        If the source holds no code cell (a MyST file whose jupytext header is
        missing or wrong is read as plain markdown and would "run" silently).
    """
    nb = jupytext.read(src)
    if not any(cell.cell_type == "code" for cell in nb.cells):
        raise RunbookError(f"{src}: no code cells found; a MyST notebook needs a jupytext header "
                           f"(text_representation: extension .md, format_name myst)")
    nb.metadata["kernelspec"] = dict(KERNEL)
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def canonical_source(src: Path) -> bytes:
    """What of a notebook source decides its page, as bytes for :func:`input_hash`.

    The cells in order, each with its type, text and metadata, as sorted JSON; left out
    are the notebook's header (jupytext version, kernel display name, pairing: the runner
    sets the kernel itself) and the cell metadata an editor writes
    (:data:`EDITOR_CELL_METADATA`).  So opening a chapter in Jupyter and saving it
    unchanged, which rewrites the header, does not make the runner run it again; editing
    a cell's text or tags does.

    Parameters
    ----------
    src : Path
        A jupytext source (``notebooks/NN_name.md``).

    Returns
    -------
    bytes

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> cell = "```{code-cell} ipython3\\nx = 1\\n```\\n"
    >>> a, b = folder / "a.md", folder / "b.md"
    >>> _ = a.write_text("---\\njupytext:\\n  text_representation: {extension: .md, format_name: myst}\\n---\\n" + cell)
    >>> _ = b.write_text("---\\njupytext:\\n  text_representation: {extension: .md, format_name: myst,"
    ...                  " jupytext_version: 1.19.6}\\n---\\n" + cell)
    >>> canonical_source(a) == canonical_source(b)
    True
    """
    nb = jupytext.read(src)
    cells = [{"type": cell.cell_type, "source": cell.source,
              "metadata": {k: v for k, v in cell.metadata.items() if k not in EDITOR_CELL_METADATA}}
             for cell in nb.cells]
    return json.dumps(cells, sort_keys=True, ensure_ascii=False, default=str).encode()


def declared_parameters(nb: nbformat.NotebookNode) -> dict[str, str]:
    """The parameters a notebook declares, ``{name: default source text}``.

    Parameters
    ----------
    nb : NotebookNode
        A notebook read with :func:`read_source`.

    Returns
    -------
    dict
        Empty when the notebook has no cell tagged ``parameters``.
    """
    return {name: info["default"] for name, info in pm.inspect_notebook(nb).items()}


def _path_values(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _path_values(value, f"{name}.")
        elif is_path_parameter(name) and isinstance(value, str) and value:
            yield name, value


def _path_digest(path: Path) -> str:
    """Contents of a file (a manifest with the images it names), or size and mtime of a folder's files."""
    from bgrobust.cache import file_digest, files_digest, folder_digest

    if path.is_file():
        if path.suffix.lower() in (".csv", ".parquet"):
            from bgrobust.io import DataError
            from bgrobust.io.manifest import manifest_files

            try:
                return "manifest " + files_digest(manifest_files(path))
            except (DataError, OSError):
                pass  # not a (valid) manifest: its bytes alone; the notebook reports the problem
        return "file " + file_digest(path)
    if path.is_dir():
        return "folder " + folder_digest(path)
    return "missing"


def input_files(params: Mapping[str, Any]) -> dict[str, str]:
    """``{parameter: digest}`` of what every path parameter points to (see :func:`resolve_paths`).

    A file's digest is of its bytes; a manifest's (``.csv`` / ``.parquet``) covers the image
    files it names too (:func:`bgrobust.io.manifest.manifest_files`); a folder's covers the
    relative path, size and modification time of every file in it.  Part of :func:`input_hash`,
    so editing a file in place (even an image under the same name) re-runs the notebook.
    """
    return {name: _path_digest(Path(value)) for name, value in _path_values(params)}


def parse_overrides(pairs: Iterable[Sequence[str]] | None) -> dict[str, Any]:
    """Turn ``-p KEY VALUE`` pairs into ``{key: value}``, values parsed as YAML.

    ``-p n_cells 50`` gives an int, ``-p layer conv8`` a string, ``-p pooling
    "[max, mean]"`` a list.  Keys may be dotted (``screen.fields_per_strain``).
    """
    overrides: dict[str, Any] = {}
    for key, value in pairs or ():
        if not key or any(not part.isidentifier() for part in key.split(".")):
            raise RunbookError(f"-p {key!r}: a parameter name, optionally dotted, is expected")
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise RunbookError(f"-p {key}: cannot parse {value!r} as YAML ({exc})") from None
    return overrides


def _default_value(name: str, default: str, stem: str) -> Any:
    try:
        return ast.literal_eval(default)
    except (ValueError, SyntaxError):
        raise RunbookError(f"{stem}: the default of {name!r} ({default}) is not a literal, so a "
                           f"dotted key cannot update it; set the whole value instead") from None


def _set_dotted(params: dict, key: str, value: Any, declared: Mapping[str, str], stem: str) -> None:
    """Set ``key`` (``a`` or ``a.b.c``) in ``params``; a dotted key updates a copy of the dict."""
    top, *path = key.split(".")
    if not path:
        params[top] = copy.deepcopy(value)
        return
    base = copy.deepcopy(params[top] if top in params else _default_value(top, declared[top], stem))
    node = base
    for depth, part in enumerate(path):
        if not isinstance(node, dict):
            where = ".".join([top, *path[:depth]])
            raise RunbookError(f"{stem}: cannot set {key!r}: {where} is {node!r}, not a mapping")
        if depth == len(path) - 1:
            node[part] = copy.deepcopy(value)
        else:
            node = node.setdefault(part, {})
    params[top] = base


def resolve_parameters(stem: str, declared: Mapping[str, str], profile: Profile,
                       overrides: Mapping[str, Any] | None = None) -> dict:
    """The parameters one notebook receives.

    Precedence, lowest first: the profile's top-level keys, its ``notebooks: {stem:}``
    entry, then the command-line overrides.  Only declared parameters are kept;
    dotted keys update a copy of a dict-valued parameter (taken from the profile or,
    failing that, from the notebook's literal default).

    Parameters
    ----------
    stem : str
        Notebook name.
    declared : mapping
        ``{name: default source}`` from :func:`declared_parameters`.
    profile : Profile
    overrides : mapping, optional
        From :func:`parse_overrides`; keys the notebook does not declare are ignored
        here (see :func:`check_overrides`).

    Raises
    ------
    RunbookError
        If the profile's entry for this notebook sets an undeclared parameter.
    """
    own = profile.notebooks.get(stem, {})
    undeclared = sorted(str(k) for k in own if str(k).split(".")[0] not in declared)
    if undeclared:
        raise RunbookError(f"{profile.path}: notebooks.{stem} sets {undeclared}, which {stem} does not "
                           f"declare in its parameters cell (declared: {sorted(declared) or 'none'})")
    params: dict = {}
    layers = (profile.defaults, own, overrides or {})
    for key, value in (item for layer in layers for item in layer.items()):
        if str(key).split(".")[0] in declared:
            _set_dotted(params, str(key), value, declared, stem)
    return params


def check_overrides(overrides: Mapping[str, Any], declared_by: Mapping[str, Mapping[str, str]]) -> None:
    """Fail if a ``-p`` key is declared by none of the selected notebooks.

    Parameters
    ----------
    overrides : mapping
        From :func:`parse_overrides`.
    declared_by : mapping
        ``{stem: declared parameters}`` of the selected notebooks.
    """
    unused = [k for k in overrides
              if not any(k.split(".")[0] in declared for declared in declared_by.values())]
    if unused:
        listing = "; ".join(f"{stem}: {', '.join(sorted(d)) or '(none)'}" for stem, d in declared_by.items())
        raise RunbookError(f"-p {', '.join(unused)}: not declared by any selected notebook "
                           f"({', '.join(declared_by) or 'none'}). Declared parameters -- {listing}")


def check_profile_notebooks(profile: Profile, stems: Iterable[str]) -> None:
    """Fail if the profile's ``notebooks:`` mapping names a notebook that does not exist."""
    stems = list(stems)
    unknown = sorted(set(profile.notebooks) - set(stems))
    if unknown:
        raise RunbookError(f"{profile.path}: notebooks: {unknown} match no source; "
                           f"available: {', '.join(stems) or '(none)'}")


# --------------------------------------------------------------------------- hashing
def library_digest(lib_dir: Path = LIB_DIR) -> str:
    """:func:`bgrobust.cache.source_digest` of the library (part of every notebook's input hash)."""
    from bgrobust.cache import source_digest

    return source_digest(lib_dir)


def input_hash(source: bytes | Path, params: Mapping[str, Any], profile: str, lib_digest: str) -> str:
    """The key that decides whether a notebook must run again.

    Parameters
    ----------
    source : bytes or Path
        The notebook source: bytes as they are, or a file, read as
        :func:`canonical_source` (its cells, not its header).
    params : mapping
        The final parameters, serialised as sorted JSON, and the contents of the files
        their path parameters point to (:func:`input_files`).
    profile : str
        Profile name.
    lib_digest : str
        :func:`library_digest` of the library.

    Returns
    -------
    str
        A 16-hex-digit digest.
    """
    data = canonical_source(Path(source)) if isinstance(source, Path) else bytes(source)
    h = hashlib.sha256()
    files = json.dumps(input_files(params), sort_keys=True).encode()
    for part in (data, json.dumps(params, sort_keys=True, default=str).encode(),
                 lib_digest.encode(), profile.encode(), files):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def stored_hash(out: Path) -> str | None:
    """The input hash recorded in an executed notebook, or None if there is none."""
    try:
        nb = nbformat.read(out, as_version=4)
    except Exception:  # noqa: BLE001 - unreadable means "not up to date"
        return None
    return nb.metadata.get(METADATA_KEY, {}).get("input_hash")


# --------------------------------------------------------------------------- running
def failed_path(out: Path) -> Path:
    """``book/NAME.ipynb`` -> ``book/NAME.failed.ipynb``."""
    return out.with_name(out.stem + FAILED_SUFFIX)


def running_path(out: Path) -> Path:
    """``book/NAME.ipynb`` -> ``book/NAME.running.ipynb`` (the temporary output)."""
    return out.with_name(out.stem + RUNNING_SUFFIX)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables (inherited by the kernel) and restore them after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def fold_parameter_cells(nb: nbformat.NotebookNode) -> None:
    """Fold the input of the ``injected-parameters`` cell (and of the superseded
    ``parameters`` cell) on the page with the ``hide-input`` tag."""
    injected = any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        wanted = "injected-parameters" in tags or (injected and "parameters" in tags)
        if wanted and not _HIDING_TAGS & set(tags):
            tags.append("hide-input")


def _failure(name: str, nb: nbformat.NotebookNode | None, exc: BaseException) -> NotebookFailed:
    """Describe a failed run from the partial notebook and the exception."""
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None)
    if evalue is None:
        evalue = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    number, first_line, count = None, "", 0
    for cell in (nb.cells if nb is not None else []):
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code" or "injected-parameters" in tags:
            continue
        count += 1
        meta = cell.metadata.get("papermill", {})
        errored = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        if errored or meta.get("exception") or meta.get("status") == "running":
            number, first_line = count, (cell.source.strip().splitlines() or [""])[0]
            break
    return NotebookFailed(name, number, first_line, str(ename), str(evalue))


def _read_partial(path: Path) -> nbformat.NotebookNode | None:
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - a half-written file is no reason to crash
        return None


def _source_label(src: Path) -> str:
    src = Path(src).resolve()
    return src.relative_to(ROOT).as_posix() if src.is_relative_to(ROOT) else str(src)


def run_notebook(src: Path, out: Path, params: Mapping[str, Any], *, profile: str,
                 digest: str | None = None, timeout: float | None = None,
                 cwd: Path | None = None) -> float:
    """Execute one notebook source into ``out``.

    The kernel runs in ``cwd`` (default: ``out``'s folder) with ``BGROBUST_PROFILE``
    and :data:`KERNEL_ENV` set (and :data:`KERNEL_ENV_DEFAULTS` where the caller's environment
    does not set them), and runs :data:`KERNEL_STARTUP` first.  The output is
    written under a temporary name and renamed into place only on
    success; a stale ``NAME.failed.ipynb`` is then removed.

    Parameters
    ----------
    src : Path
        jupytext source.
    out : Path
        Executed notebook to write (``book/NAME.ipynb``).
    params : mapping
        Parameters to inject (already filtered to the declared ones).
    profile : str
        Profile name, exported as ``BGROBUST_PROFILE`` and recorded in the metadata.
    digest : str, optional
        Input hash to record (default: computed from ``src``, ``params``, the library).
    timeout : float, optional
        Per-cell time limit in seconds (default: none).
    cwd : Path, optional
        Working directory of the kernel.

    Returns
    -------
    float
        Wall time in seconds.

    Raises
    ------
    NotebookFailed
        If a cell raised (or the kernel died or timed out).  ``out`` is then removed
        and the partial output kept as ``NAME.failed.ipynb``.
    """
    src, out = Path(src), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cwd = Path(cwd) if cwd is not None else out.parent
    if digest is None:
        digest = input_hash(src, params, profile, library_digest())
    tmp, failed = running_path(out), failed_path(out)
    tmp.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        defaults = {k: os.environ.get(k, v) for k, v in KERNEL_ENV_DEFAULTS.items()}
        # every chapter shares the book's run folder, whatever the kernel's working directory
        runs = {RUNS_ENV: os.environ.get(RUNS_ENV) or str(ROOT / "runs")}
        with _environ(**{PROFILE_ENV: profile}, **defaults, **KERNEL_ENV, **runs):
            nb = pm.execute_notebook(
                read_source(src), str(tmp), parameters=dict(params), kernel_name=KERNEL["name"],
                language="python", cwd=str(cwd), progress_bar=False, log_output=False,
                execution_timeout=timeout, config=KERNEL_CONFIG,
                extra_arguments=[f"--IPKernelApp.exec_lines={KERNEL_STARTUP}"])
    except Exception as exc:  # noqa: BLE001 - any failure leaves the same traces
        partial = _read_partial(tmp) if tmp.exists() else None
        error = _failure(src.stem, partial, exc)
        out.unlink(missing_ok=True)
        if partial is not None:
            _fix_papermill_paths(partial, src, failed)
            partial.metadata[METADATA_KEY] = _record(src, params, profile, None, time.perf_counter() - start)
            nbformat.write(partial, failed)
            error.failed_path = failed
        tmp.unlink(missing_ok=True)
        raise error from exc
    except BaseException:  # KeyboardInterrupt: keep the last good page, drop the partial one
        tmp.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - start
    fold_parameter_cells(nb)
    _fix_papermill_paths(nb, src, out)
    nb.metadata[METADATA_KEY] = _record(src, params, profile, digest, seconds)
    nbformat.write(nb, tmp)
    os.replace(tmp, out)
    failed.unlink(missing_ok=True)
    return seconds


def _fix_papermill_paths(nb: nbformat.NotebookNode, src: Path, out: Path) -> None:
    """Record the real source and output in papermill's metadata (it saw a notebook
    object and a temporary name)."""
    meta = nb.metadata.setdefault("papermill", {})
    meta["input_path"] = _source_label(src)
    meta["output_path"] = Path(out).name


def _record(src: Path, params: Mapping[str, Any], profile: str, digest: str | None,
            seconds: float) -> dict:
    return {"input_hash": digest, "profile": profile, "parameters": json.loads(json.dumps(params, default=str)),
            "source": _source_label(src), "runtime_seconds": round(seconds, 2)}


# --------------------------------------------------------------------------- command line
@dataclass
class Plan:
    """One selected notebook with everything needed to run it."""

    src: Path
    out: Path
    params: dict
    digest: str

    @property
    def name(self) -> str:
        return self.src.stem

    def is_fresh(self) -> bool:
        """True if ``out`` was produced from exactly these inputs."""
        return self.out.is_file() and stored_hash(self.out) == self.digest


def plan_runs(profile: Profile, sources: Sequence[Path], all_stems: Sequence[str],
              overrides: Mapping[str, Any], out_dir: Path, lib_dir: Path = LIB_DIR) -> list[Plan]:
    """Resolve parameters and input hashes of the selected notebooks, checking all keys.

    Raises
    ------
    RunbookError
        On per-notebook overrides or ``-p`` keys that no notebook declares, or profile
        entries for notebooks that do not exist.
    """
    check_profile_notebooks(profile, all_stems)
    declared_by = {src.stem: declared_parameters(read_source(src)) for src in sources}
    check_overrides(overrides, declared_by)
    lib = library_digest(lib_dir)
    plans = []
    for src in sources:
        params = resolve_parameters(src.stem, declared_by[src.stem], profile, overrides)
        plans.append(Plan(src, Path(out_dir) / f"{src.stem}.ipynb", params,
                          input_hash(src, params, profile.name, lib)))
    return plans


def _display(path: Path) -> str:
    path = Path(path).resolve()
    cwd = Path.cwd().resolve()
    return path.relative_to(cwd).as_posix() if path.is_relative_to(cwd) else str(path)


def _summary(outcomes: Sequence[Outcome]) -> str:
    width = max([len("notebook")] + [len(o.name) for o in outcomes])
    lines = [f"{'notebook':<{width}}  status  seconds", f"{'-' * width}  ------  -------"]
    lines += [f"{o.name:<{width}}  {o.status:<6}  {o.seconds:7.1f}" for o in outcomes]
    lines.append(f"{'total':<{width}}  {'':<6}  {sum(o.seconds for o in outcomes):7.1f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (``python -m bgrobust.runbook``)."""
    parser = argparse.ArgumentParser(
        prog="python -m bgrobust.runbook",
        description="Execute the book's notebooks (notebooks/*.md) with papermill under a "
                    "parameter profile (params/<profile>.yml) into book/<name>.ipynb, "
                    "skipping those whose inputs are unchanged.",
        epilog="Exit status: 0 all notebooks ran or were up to date, 1 a notebook failed, "
               "2 a usage or configuration error.")
    parser.add_argument("--profile", default="demo",
                        help="parameter profile: the name of a file params/<profile>.yml "
                             "(ci, demo or paper; default: %(default)s)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=[],
                        help="run only these notebooks (stems such as 01_dataset)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"),
                        dest="overrides", default=[],
                        help="override a parameter; VALUE is parsed as YAML and KEY may be "
                             "dotted (-p screen.fields_per_strain 2); a relative path given to a "
                             "*_path, *_dir or *_file parameter is read from the current "
                             "directory; repeatable")
    parser.add_argument("--force", action="store_true", help="run even if the inputs are unchanged")
    parser.add_argument("--out", type=Path, default=BOOK, metavar="DIR",
                        help="folder of the executed notebooks, also the kernels' working "
                             "directory (default: book/)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="time limit per cell (default: none)")
    parser.add_argument("--list", action="store_true",
                        help="list the notebooks, their status and parameters, and run nothing")
    parser.add_argument("--src-dir", type=Path, default=NOTEBOOKS, help=argparse.SUPPRESS)
    parser.add_argument("--params-dir", type=Path, default=PARAMS, help=argparse.SUPPRESS)
    return parser


def _status(plan: Plan) -> str:
    if plan.is_fresh():
        return "fresh"
    if failed_path(plan.out).exists():
        return "failed"
    return "stale" if plan.out.exists() else "missing"


def list_plans(plans: Sequence[Plan], profile: Profile) -> None:
    """Print each notebook's status (fresh/stale/missing/failed) and parameters."""
    print(f"profile {profile.name} ({_display(profile.path)})")
    width = max([len(p.name) for p in plans] + [8])
    for plan in plans:
        params = json.dumps(plan.params, default=str)
        print(f"  {plan.name:<{width}}  {_status(plan):<7}  {params}")


def execute_plans(plans: Sequence[Plan], profile: str, *, force: bool = False,
                  timeout: float | None = None) -> list[Outcome]:
    """Run (or skip) each plan in order, printing progress; failures do not stop the rest."""
    outcomes = []
    for plan in plans:
        if not force and plan.is_fresh():
            failed_path(plan.out).unlink(missing_ok=True)
            print(f"[skip] {plan.name} (profile {profile}, unchanged)", flush=True)
            outcomes.append(Outcome(plan.name, "skip"))
            continue
        print(f"[run ] {plan.name} (profile {profile}) ...", flush=True)
        start = time.perf_counter()
        try:
            seconds = run_notebook(plan.src, plan.out, plan.params, profile=profile,
                                   digest=plan.digest, timeout=timeout)
        except NotebookFailed as exc:
            seconds = time.perf_counter() - start
            print(f"[FAIL] {plan.name} after {seconds:.1f} s", flush=True)
            kept = f"; partial output kept in {_display(exc.failed_path)}" if exc.failed_path else ""
            print(f"error: {exc}{kept}", file=sys.stderr, flush=True)
            outcomes.append(Outcome(plan.name, "FAIL", seconds))
            continue
        print(f"[ ok ] {plan.name} in {seconds:.1f} s -> {_display(plan.out)}", flush=True)
        outcomes.append(Outcome(plan.name, "ok", seconds))
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 a notebook failed, 2 usage error)."""
    args = build_parser().parse_args(argv)
    try:
        profile = load_profile(args.profile, args.params_dir)
        all_sources = find_sources(args.src_dir)
        sources = find_sources(args.src_dir, args.only)
        overrides = resolve_paths(parse_overrides(args.overrides), Path.cwd())
        plans = plan_runs(profile, sources, [s.stem for s in all_sources], overrides, args.out)
    except (RunbookError, ProfileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        list_plans(plans, profile)
        return 0
    outcomes = execute_plans(plans, profile.name, force=args.force, timeout=args.timeout)
    print(_summary(outcomes), flush=True)
    failed = [o.name for o in outcomes if o.status == "FAIL"]
    if failed:
        print(f"error: {len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
