"""Shared test setup (tests and doctests): keep every test away from the user's run folder.

``BGROBUST_RUNS`` (see :mod:`bgrobust.paths`) points at a fresh temporary folder for
the whole session, set before any test module is imported and removed at the end.
Kernels started by papermill inherit it.  ``ROOT`` and ``SHARED_DATA`` are imported by the
test modules (``from conftest import SHARED_DATA``); the doctests get ``SHARED_DATA`` in
their namespace.  Fixtures belong in the test files.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

#: The repository (the book's root) and the real third-party data beside it (never committed;
#: ``$BGROBUST_SHARED_DATA`` overrides). Tests that read it skip with a reason when it is absent.
ROOT = Path(__file__).resolve().parent
SHARED_DATA = Path(os.environ.get("BGROBUST_SHARED_DATA") or ROOT.parent / "shared" / "data")

_SAVED: dict[str, str | None] = {}


def pytest_configure(config):
    _SAVED["BGROBUST_RUNS"] = os.environ.get("BGROBUST_RUNS")
    os.environ["BGROBUST_RUNS"] = tempfile.mkdtemp(prefix="bgrobust-test-runs-")
    # see bgrobust.runbook: spinning OpenMP threads slow torch on a busy 2-core machine
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_unconfigure(config):
    runs = os.environ.get("BGROBUST_RUNS")
    if runs and os.path.basename(runs).startswith("bgrobust-test-runs-"):
        shutil.rmtree(runs, ignore_errors=True)
    old = _SAVED.pop("BGROBUST_RUNS", None)
    if old is None:
        os.environ.pop("BGROBUST_RUNS", None)
    else:
        os.environ["BGROBUST_RUNS"] = old


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _doctest_names(request, doctest_namespace):
    """Doctests see ``SHARED_DATA``; those that read it are skipped (with the reason) where it is absent."""
    doctest_namespace["SHARED_DATA"] = SHARED_DATA
    test = getattr(request.node, "dtest", None)
    if test is not None and not SHARED_DATA.is_dir() and any("SHARED_DATA" in e.source for e in test.examples):
        pytest.skip(f"the shared real data folder {SHARED_DATA} is absent")
