"""Where the library keeps what it generates.

Every generated artefact lives in the *run folder*: ``$BGROBUST_RUNS`` when set, else
``runs/`` in the current working directory. It holds one sub-folder per profile
(:func:`run_dir`) and the content-keyed caches shared by all profiles (:func:`cache_folder`);
everything in it can be regenerated and may be deleted. Nothing here points into the
repository, so an installed package (a wheel) works from any folder.

Examples
--------
>>> import os, tempfile
>>> os.environ["BGROBUST_RUNS"] = tempfile.mkdtemp()
>>> run_dir("ci").name, cache_folder("svm").parent.name
('ci', 'shared')
>>> del os.environ["BGROBUST_RUNS"]
"""
from __future__ import annotations

import os
from pathlib import Path

#: The environment variable that names the run folder.
RUNS_ENV = "BGROBUST_RUNS"


def runs_dir() -> Path:
    """The root of all run folders (``$BGROBUST_RUNS``, else ``./runs``)."""
    return Path(os.environ.get(RUNS_ENV) or Path.cwd() / "runs")


def run_dir(profile: str) -> Path:
    """The run folder of one parameter profile, created on first use."""
    path = runs_dir() / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_folder(kind: str) -> Path:
    """A cache shared by every profile (``<runs>/shared/<kind>``); its contents are keyed by content."""
    path = runs_dir() / "shared" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(profile: str, name: str = "results") -> Path:
    """Where a profile's per-pair results are written (the paper's folder layout)."""
    path = run_dir(profile) / name
    path.mkdir(parents=True, exist_ok=True)
    return path
