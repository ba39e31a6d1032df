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
    assert (root / "book" / "references.bib").is_file(), "the bibliography did not travel with the pages"
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


def _outputs(root, stem):
    nb = nbformat.read(root / "book" / f"{stem}.ipynb", as_version=4)
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]


def test_no_page_has_stderr_output(built_book):
    """Progress bars, the TqdmWarning and warnings' file paths stay off the pages."""
    root, rc, _ = built_book
    assert rc == 0
    for src in runbook.find_sources():
        stderr = [o.text[:200] for o in _outputs(root, src.stem) if o.get("name") == "stderr"]
        assert not stderr, f"{src.stem} has stderr output on its page: {stderr[:3]}"
        text = "".join(o.get("text", "") for o in _outputs(root, src.stem))
        assert str(ROOT / ".venv") not in text and "/tmp/ipykernel_" not in text, src.stem


def test_every_figure_is_on_its_page_once(built_book):
    """A glued figure is not also shown by the inline backend at the end of its cell."""
    import hashlib

    root, rc, _ = built_book
    assert rc == 0
    for src in runbook.find_sources():
        images = [hashlib.sha1(data.encode()).hexdigest() for o in _outputs(root, src.stem)
                  for key, data in o.get("data", {}).items() if key.endswith("image/png")]
        twice = len(images) - len(set(images))
        assert images and not twice, f"{src.stem}: {twice} figure(s) stored twice among {len(images)}"


def test_tables_are_numbered_as_tables_and_the_api_reference_is_built(built_book):
    import re

    root, rc, proc = built_book
    assert rc == 0 and proc is not None and proc.returncode == 0
    html = root / "_build" / "html" / "book"
    page = (html / "04_five_experiments.html").read_text()
    table1 = re.search(r'<figure class="bg-table[^"]*" id="tab-table1">.*?caption-number">([^<]*)<', page, re.S)
    assert table1 and table1.group(1).startswith("Table "), "Table 1 is not numbered as a table"
    figure = re.search(r'<figure[^>]* id="fig-2">.*?caption-number">([^<]*)<', page, re.S)
    assert figure and figure.group(1).startswith("Fig. ")
    api = (html / "api.html").read_text()
    assert 'id="bgrobust.export.write_h5ad"' in api and 'id="bgrobust.settings.generate_settings"' in api
    intro = (html / "intro.html").read_text()
    assert "Gupta <em>et al.</em>, 2025" in intro, "the paper is not cited from the bibliography"


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


def test_chapter_8_without_real_crops_says_what_it_needs(tmp_path):
    """The real-cell chapter without its data: a message naming what it needs, and the page still builds."""
    out = tmp_path / "book"
    out.mkdir()
    rc = runbook.main(["--profile", "ci", "--out", str(out), "--only", "08_real_cells", "--force",
                       "-p", "real_crops_dir", str(tmp_path / "no-such-folder")])
    assert rc == 0
    nb = nbformat.read(out / "08_real_cells.ipynb", as_version=4)
    streams = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                      if o.get("output_type") == "stream")
    assert "they were not found" in streams and "paired_cell_inpainting" in streams
    assert any("n/a (no real crops)" in str(o.get("data", {})) for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []) if o.get("metadata", {}).get("scrapbook", {}).get("name") == "n_reading")
