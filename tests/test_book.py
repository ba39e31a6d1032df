"""End to end: every real notebook at the `ci` profile, then a warning-free book build.

Works on a scratch copy of the book (``_config.yml``, ``_toc.yml`` and the
hand-written pages of ``book/``) so the user's ``book/`` and ``_build/`` are never
touched.  This catches broken glue keys, missing figures and table-of-contents errors.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from bgrobust import runbook
from conftest import ROOT

BOOK = ROOT / "book"

pytestmark = pytest.mark.slow


def glue_keys(nb) -> set[str]:
    """Names glued in an executed notebook (myst-nb stores them under ``scrapbook``)."""
    return {out.get("metadata", {}).get("scrapbook", {}).get("name")
            for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", [])} - {None}


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """Execute all notebooks at `ci` scale into a scratch book and build its HTML."""
    root = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(BOOK, root / "book",
                    ignore=shutil.ignore_patterns("*.ipynb", "figures", ".ipynb_checkpoints"))
    rc = runbook.main(["--profile", "ci", "--out", str(root / "book"), "--force"])
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jupyter_book), "build", str(root), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True) if rc == 0 else None
    return root, rc, proc


def test_every_notebook_runs_at_ci_scale_and_glues_results(built_book):
    root, rc, _ = built_book
    assert rc == 0, "a notebook failed at the ci profile (see the captured stderr)"
    sources = runbook.find_sources()
    assert sources, "no notebook sources in notebooks/"
    for src in sources:
        nb = nbformat.read(root / "book" / f"{src.stem}.ipynb", as_version=4)
        assert nb.metadata["bgrobust"]["profile"] == "ci"
        assert glue_keys(nb), f"{src.stem} glues nothing for the paper pages"


def test_book_builds_without_warnings(built_book):
    root, rc, proc = built_book
    assert rc == 0 and proc is not None, "the notebooks did not run; nothing to build"
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = root / "_build" / "html"
    assert (html / "book" / "intro.html").exists()
    for src in runbook.find_sources():
        assert (html / "book" / f"{src.stem}.html").exists(), f"no page for {src.stem}"


def test_chapter_1_without_real_crops_says_what_it_needs(tmp_path):
    """The realism section's other path: no real crops, a message, and the chapter still runs."""
    out = tmp_path / "book"
    out.mkdir()
    rc = runbook.main(["--profile", "ci", "--out", str(out), "--only", "01_dataset", "--force",
                       "-p", "pci_crops_path", str(tmp_path / "no-such-folder")])
    assert rc == 0
    nb = nbformat.read(out / "01_dataset.ipynb", as_version=4)
    texts = [out_.get("data", {}).get("application/papermill.record/text/plain", "")
             for cell in nb.cells if cell.cell_type == "code" for out_ in cell.get("outputs", [])
             if out_.get("metadata", {}).get("scrapbook", {}).get("name") == "realism_note"]
    assert texts and "they were not found, so it is skipped" in texts[0]
    acc = [out_ for cell in nb.cells if cell.cell_type == "code" for out_ in cell.get("outputs", [])
           if out_.get("metadata", {}).get("scrapbook", {}).get("name") == "realism_acc"]
    assert acc and "n/a" in str(acc[0]["data"])
