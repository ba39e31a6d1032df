"""Where the project keeps things.

``ROOT`` is the repository root (the library is installed editable from ``lib/``).
Generated artefacts live in the run folder ``RUNS`` (``runs/`` at the root, or the
directory named by the environment variable ``BGROBUST_RUNS``), one sub-folder per
profile; it is git-ignored and everything in it can be regenerated.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
FIGURES = BOOK / "figures"
PARAMS = ROOT / "params"
NOTEBOOKS = ROOT / "notebooks"
#: Real third-party data used by some tests and optional book sections (never committed).
SHARED_DATA = ROOT.parent / "shared" / "data"


def runs_dir() -> Path:
    """The root of all run folders (``$BGROBUST_RUNS`` or ``<repo>/runs``)."""
    return Path(os.environ.get("BGROBUST_RUNS", ROOT / "runs"))


def run_dir(profile: str) -> Path:
    """The run folder of one parameter profile, created on first use."""
    path = runs_dir() / profile
    path.mkdir(parents=True, exist_ok=True)
    return path
