"""The notebook runner (bgrobust.runbook) on tiny fixture notebooks.

Every test builds its own notebooks and profiles under ``tmp_path`` and passes them
with the hidden ``--src-dir`` / ``--params-dir`` options; the executed notebooks only
print, so one execution takes about a second.
"""
from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml

from bgrobust import profiles, runbook
from bgrobust.runbook import RunbookError

HEADER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def code(source: str, *tags: str) -> str:
    """A MyST code cell."""
    meta = f":tags: [{', '.join(tags)}]\n" if tags else ""
    return f"```{{code-cell}} ipython3\n{meta}{textwrap.dedent(source).strip()}\n```\n"


def write_notebook(path: Path, *cells: str) -> Path:
    """Write a jupytext MyST notebook made of ``cells`` (markdown text or :func:`code`)."""
    path.write_text(HEADER + "\n".join(cells))
    return path


ECHO = (
    "# Echo\n",
    code("""
        n_cells = 10  # cells per class
        layer = "conv5"
        screen = {"fields_per_strain": 4, "size": 64}
        seed = 1
        """, "parameters"),
    code("""
        import os, pathlib
        print("params", n_cells, layer, screen, seed)
        print("profile", os.environ.get("BGROBUST_PROFILE"))
        print("cwd", os.getcwd())
        pathlib.Path("figures").mkdir(exist_ok=True)
        pathlib.Path("figures/echo.txt").write_text(str(n_cells))
        """),
)
FAIL = (
    "# Fail\n",
    code("seed = 1", "parameters"),
    code("""
        x = seed + 1
        raise ValueError(f"boom {x}")
        """),
    code("print('never')"),
)
OTHER = (
    "# Other\n",
    code('seed = 1\npooling = ["max"]', "parameters"),
    code("print('other', seed, pooling)"),
)


@pytest.fixture
def project(tmp_path):
    """A notebook folder, a params folder with a `ci` profile and an output folder."""
    src, params, out = tmp_path / "notebooks", tmp_path / "params", tmp_path / "book"
    src.mkdir()
    params.mkdir()
    write_notebook(src / "01_echo.md", *ECHO)
    write_notebook(src / "02_fail.md", *FAIL)
    write_notebook(src / "03_other.md", *OTHER)
    write_profile(params, "ci", {"profile": "ci", "seed": 0, "n_cells": 2,
                                 "notebooks": {"01_echo": {"n_cells": 3}}})
    return src, params, out


def write_profile(params_dir: Path, name: str, data: dict) -> None:
    (params_dir / f"{name}.yml").write_text(yaml.safe_dump(data))


@pytest.fixture
def library(monkeypatch):
    """Pin the library digest: others may edit lib/ while the tests run.

    Returns a dict whose ``"digest"`` entry the test may change to simulate an edit.
    """
    state = {"digest": "lib-v1"}
    monkeypatch.setattr(runbook, "library_digest", lambda lib_dir=None: state["digest"])
    return state


def run(project, *args: str) -> int:
    src, params, out = project
    return runbook.main(["--profile", "ci", "--src-dir", str(src), "--params-dir", str(params),
                         "--out", str(out), *args])


def plans(project, overrides=None, only=None, profile="ci") -> dict[str, runbook.Plan]:
    src, params, out = project
    sources = runbook.find_sources(src, only)
    result = runbook.plan_runs(profiles.load_profile(profile, params), sources,
                               [s.stem for s in runbook.find_sources(src)],
                               overrides or {}, out)
    return {p.name: p for p in result}


def outputs_text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


# ----------------------------------------------------------------- selection and profiles
def test_sources_sorted_and_selected(project):
    src = project[0]
    assert [p.stem for p in runbook.find_sources(src)] == ["01_echo", "02_fail", "03_other"]
    assert [p.stem for p in runbook.find_sources(src, ["03_other", "01_echo"])] == ["01_echo", "03_other"]


def test_unknown_notebook_lists_available(project, capsys):
    assert run(project, "--only", "01_echo", "09_nope") == 2
    err = capsys.readouterr().err
    assert "09_nope" in err and "01_echo, 02_fail, 03_other" in err


def test_unknown_profile_lists_available(project, capsys):
    write_profile(project[1], "demo", {"seed": 0})
    assert runbook.main(["--profile", "nope", "--src-dir", str(project[0]),
                         "--params-dir", str(project[1])]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "ci, demo" in err


def test_source_without_code_cells_is_an_error(tmp_path):
    (tmp_path / "01_plain.md").write_text("# only markdown, no jupytext header\n")
    with pytest.raises(RunbookError, match="no code cells"):
        runbook.read_source(tmp_path / "01_plain.md")


# ----------------------------------------------------------------- parameters
def test_each_notebook_gets_only_declared_parameters(project):
    p = plans(project)
    # top level: profile, seed, n_cells; per notebook: 01_echo.n_cells = 3
    assert p["01_echo"].params == {"seed": 0, "n_cells": 3}
    assert p["02_fail"].params == {"seed": 0}
    assert p["03_other"].params == {"seed": 0}


def test_overrides_are_parsed_as_yaml():
    parsed = runbook.parse_overrides([("n_cells", "50"), ("layer", "conv8"),
                                      ("pooling", "[max, mean]"), ("ratio", "0.5"), ("flag", "true")])
    assert parsed == {"n_cells": 50, "layer": "conv8", "pooling": ["max", "mean"],
                      "ratio": 0.5, "flag": True}
    with pytest.raises(RunbookError, match="parameter name"):
        runbook.parse_overrides([("not-a-name", "1")])


def test_command_line_overrides_win(project):
    p = plans(project, runbook.parse_overrides([("n_cells", "50"), ("pooling", "[max, mean]")]))
    assert p["01_echo"].params == {"seed": 0, "n_cells": 50}
    assert p["03_other"].params == {"seed": 0, "pooling": ["max", "mean"]}


def test_dotted_key_updates_the_notebook_default(project):
    p = plans(project, {"screen.fields_per_strain": 2})
    assert p["01_echo"].params["screen"] == {"fields_per_strain": 2, "size": 64}


def test_dotted_key_updates_the_profile_value(project):
    write_profile(project[1], "ci", {"seed": 0, "screen": {"fields_per_strain": 8, "size": 16},
                                     "notebooks": {"01_echo": {"screen.size": 32}}})
    p = plans(project, {"screen.fields_per_strain": 2})
    assert p["01_echo"].params["screen"] == {"fields_per_strain": 2, "size": 32}


def test_dotted_key_into_a_non_mapping_fails(project):
    with pytest.raises(RunbookError, match="layer.*not a mapping"):
        plans(project, {"layer.depth": 2})


def test_undeclared_command_line_key_is_an_error(project, capsys):
    assert run(project, "-p", "n_epochs", "3") == 2
    err = capsys.readouterr().err
    assert "n_epochs" in err and "01_echo" in err and "03_other" in err
    # declared by 01_echo, which is not selected
    with pytest.raises(RunbookError, match="n_cells.*03_other"):
        plans(project, {"n_cells": 5}, only=["03_other"])


def test_undeclared_per_notebook_key_is_an_error(project):
    write_profile(project[1], "ci", {"seed": 0, "notebooks": {"03_other": {"n_cells": 5}}})
    with pytest.raises(RunbookError, match=r"notebooks\.03_other.*n_cells"):
        plans(project)


def test_per_notebook_entry_for_a_missing_notebook_is_an_error(project):
    write_profile(project[1], "ci", {"seed": 0, "notebooks": {"04_typo": {"seed": 1}}})
    with pytest.raises(RunbookError, match="04_typo"):
        plans(project)


def test_input_hash_depends_on_every_input(tmp_path):
    lib = runbook.library_digest()
    base = runbook.input_hash(b"source", {"a": 1, "b": 2}, "ci", lib)
    assert base == runbook.input_hash(b"source", {"b": 2, "a": 1}, "ci", lib)
    assert base != runbook.input_hash(b"source!", {"a": 1, "b": 2}, "ci", lib)
    assert base != runbook.input_hash(b"source", {"a": 1, "b": 3}, "ci", lib)
    assert base != runbook.input_hash(b"source", {"a": 1, "b": 2}, "demo", lib)
    (tmp_path / "mod.py").write_text("x = 1\n")
    other_lib = runbook.library_digest(tmp_path)
    assert base != runbook.input_hash(b"source", {"a": 1, "b": 2}, "ci", other_lib)


def test_list_runs_nothing(project, capsys):
    assert run(project, "--list") == 0
    out = capsys.readouterr().out
    assert "01_echo" in out and "missing" in out and '"n_cells": 3' in out
    assert not project[2].exists()


# ----------------------------------------------------------------- execution
def test_run_skip_and_rerun(project, library, capsys):
    src, _, out = project
    env_before = os.environ.get(runbook.PROFILE_ENV)
    page = out / "01_echo.ipynb"

    assert run(project, "--only", "01_echo") == 0
    log = capsys.readouterr().out
    assert "[run ] 01_echo (profile ci) ..." in log and "[ ok ] 01_echo" in log
    nb = nbformat.read(page, as_version=4)
    text = outputs_text(nb)
    assert "params 3 conv5 {'fields_per_strain': 4, 'size': 64} 0" in text
    assert "profile ci" in text                                   # BGROBUST_PROFILE in the kernel
    assert f"cwd {out.resolve()}" in text                          # the kernel runs in the output folder
    assert (out / "figures" / "echo.txt").read_text() == "3"
    assert os.environ.get(runbook.PROFILE_ENV) == env_before      # not leaked into this process
    assert not list(out.glob("*.running.ipynb"))

    meta = nb.metadata["bgrobust"]
    assert meta["profile"] == "ci" and meta["parameters"] == {"seed": 0, "n_cells": 3}
    assert meta["source"].endswith("01_echo.md") and meta["runtime_seconds"] > 0
    assert len(meta["input_hash"]) == 16
    assert nb.metadata["papermill"]["input_path"] == meta["source"]
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "hide-input" in injected[0].metadata.tags

    assert run(project, "--only", "01_echo") == 0
    assert "[skip] 01_echo" in capsys.readouterr().out

    assert run(project, "--only", "01_echo", "-p", "n_cells", "4") == 0   # a parameter changed
    assert "[run ] 01_echo" in capsys.readouterr().out
    assert run(project, "--only", "01_echo", "-p", "n_cells", "4") == 0
    assert "[skip] 01_echo" in capsys.readouterr().out

    (src / "01_echo.md").write_text((src / "01_echo.md").read_text() + "\nA new paragraph.\n")
    assert run(project, "--only", "01_echo", "-p", "n_cells", "4") == 0   # the source changed
    assert "[run ] 01_echo" in capsys.readouterr().out

    library["digest"] = "lib-v2"                                          # the library changed
    assert run(project, "--only", "01_echo", "-p", "n_cells", "4") == 0
    assert "[run ] 01_echo" in capsys.readouterr().out

    assert run(project, "--only", "01_echo", "-p", "n_cells", "4", "--force") == 0
    assert "[run ] 01_echo" in capsys.readouterr().out


def test_failure_leaves_no_page_and_the_others_still_run(project, library, capsys):
    src, _, out = project
    out.mkdir()
    stale = out / "02_fail.ipynb"
    stale.write_text("{}")

    assert run(project, "--only", "02_fail", "03_other") == 1
    captured = capsys.readouterr()
    assert not stale.exists()
    failed = out / "02_fail.failed.ipynb"
    assert failed.exists()
    assert (out / "03_other.ipynb").exists()                     # the run went on
    err = captured.err
    assert "02_fail" in err and "code cell 2" in err and "x = seed + 1" in err
    assert "ValueError: boom 1" in err
    assert "notebook(s) failed: 02_fail" in err
    assert "[FAIL] 02_fail" in captured.out
    assert "03_other" in captured.out.split("status")[-1]           # in the summary table
    partial = nbformat.read(failed, as_version=4)
    assert any(o.output_type == "error" for c in partial.cells if c.cell_type == "code"
               for o in c.outputs)

    write_notebook(src / "02_fail.md", FAIL[0], FAIL[1], code("print('fixed')"))
    assert run(project, "--only", "02_fail") == 0
    assert (out / "02_fail.ipynb").exists() and not failed.exists()


@pytest.mark.parametrize("profile", ["ci", "demo", "paper"])
def test_every_profile_key_reaches_a_notebook(profile):
    """A key no notebook declares (e.g. a parameters line papermill cannot parse) would be dropped silently."""
    declared = set()
    for src in runbook.find_sources():
        declared |= set(runbook.declared_parameters(runbook.read_source(src)))
    unused = set(profiles.load_profile(profile).defaults) - declared
    assert not unused, f"params/{profile}.yml keys declared by no notebook: {sorted(unused)}"


# ----------------------------------------------------------------- paths and file contents
MANIFEST_NB = (
    "# Manifest\n",
    code('manifest_path = None\nlabels_path = None\nseed = 1', "parameters"),
    code("print('manifest', manifest_path)"),
)


@pytest.fixture
def data_project(project, tmp_path):
    """The project plus a notebook with path parameters and a tiny manifest screen on disk."""
    import numpy as np
    import tifffile

    src, params, out = project
    write_notebook(src / "04_manifest.md", *MANIFEST_NB)
    data = tmp_path / "mydata"
    data.mkdir()
    for channel in ("gfp", "nucleus", "cytoplasm"):
        tifffile.imwrite(data / f"f0_{channel}.tif", np.full((8, 8), 7, np.uint16))
    (data / "my_manifest.csv").write_text("strain,orf,plate,well,field,gfp,nucleus,cytoplasm\n"
                                          "s0,YAL001C,1,A01,0,f0_gfp.tif,f0_nucleus.tif,f0_cytoplasm.tif\n")
    return project, data


def test_relative_path_parameters_resolve_against_the_current_directory(data_project, monkeypatch, capsys):
    project, data = data_project
    monkeypatch.chdir(data)
    assert run(project, "--only", "04_manifest", "-p", "manifest_path", "my_manifest.csv", "--list") == 0
    assert f'"manifest_path": "{data / "my_manifest.csv"}"' in capsys.readouterr().out
    # a dotted key is resolved by its last part; other strings are left alone
    assert profiles.resolve_paths({"labels_path": "../x.txt", "layer": "conv8"}, data) == {
        "labels_path": str(data.parent / "x.txt"), "layer": "conv8"}


def test_relative_paths_in_a_profile_resolve_against_its_folder(data_project):
    (src, params, out), data = data_project
    write_profile(params, "mine", {"manifest_path": "../mydata/my_manifest.csv"})
    assert profiles.load_profile("mine", params).defaults["manifest_path"] == str(data / "my_manifest.csv")


def test_editing_a_manifest_or_one_of_its_images_in_place_reruns(data_project):
    import numpy as np
    import tifffile

    project, data = data_project
    overrides = {"manifest_path": str(data / "my_manifest.csv")}
    first = plans(project, overrides, only=["04_manifest"])["04_manifest"].digest
    assert plans(project, overrides, only=["04_manifest"])["04_manifest"].digest == first
    time_ns = (data / "f0_gfp.tif").stat().st_mtime_ns
    tifffile.imwrite(data / "f0_gfp.tif", np.full((8, 8), 9, np.uint16))  # same name, new pixels
    os.utime(data / "f0_gfp.tif", ns=(time_ns + 10**9, time_ns + 10**9))
    second = plans(project, overrides, only=["04_manifest"])["04_manifest"].digest
    assert second != first
    text = (data / "my_manifest.csv").read_text()
    (data / "my_manifest.csv").write_text(text.replace("A01", "B02"))  # the manifest itself
    assert plans(project, overrides, only=["04_manifest"])["04_manifest"].digest not in (first, second)


# ----------------------------------------------------------------- notebooks opened in Jupyter
@pytest.mark.parametrize("src", runbook.find_sources(), ids=lambda p: p.stem)
def test_parameters_cell_holds_the_demo_values(src):
    """Opened in Jupyter (no runner), a chapter runs exactly what the demo profile runs."""
    import ast

    declared = runbook.declared_parameters(runbook.read_source(src))
    injected = runbook.resolve_parameters(src.stem, declared, profiles.load_profile("demo", runbook.PARAMS))

    def cell_value(k):   # a relative path in a cell is read from the kernel's folder, book/
        v = ast.literal_eval(declared[k])
        if profiles.is_path_parameter(k) and isinstance(v, str) and v:
            return os.path.normpath(runbook.BOOK / v)
        return v

    differ = {k: (declared[k], v) for k, v in injected.items() if cell_value(k) != v}
    assert not differ, f"{src.name}: parameters cell (cell value, params/demo.yml value) differ: {differ}"


def _save_from_jupyter(path: Path, root: Path) -> None:
    """Do what Jupyter with jupytext does when a user opens ``path`` and saves it: the
    notebook gains a kernel display name, language_info, the pairing, cell ids, outputs and
    editor metadata, and is written back through the project's jupytext.toml."""
    from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file
    import jupytext

    config = load_jupytext_configuration_file(find_jupytext_configuration_file(str(path.parent)))
    assert Path(find_jupytext_configuration_file(str(path.parent))).parent == root
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.9", "mimetype": "text/x-python"}
    nb.metadata.setdefault("jupytext", {})["formats"] = "notebooks///md:myst,notebooks///ipynb"
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
        cell.metadata["jupyter"] = {"source_hidden": True}
        if cell.cell_type == "code":
            cell.execution_count = i + 1
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n")]
            cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00.000Z"}
            cell.metadata["scrolled"] = True
    path.write_text(jupytext.writes(nb, fmt={"extension": ".md", "format_name": "myst"}, config=config))


def test_saving_a_chapter_from_jupyter_leaves_the_input_hash_unchanged(tmp_path):
    from bgrobust.runbook import NOTEBOOKS, ROOT

    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    src = tmp_path / "notebooks" / "02_layer_selection.md"
    shutil.copy(NOTEBOOKS / src.name, src)
    params, lib = {"profile": "demo", "seed": 0}, "lib-v1"
    before = runbook.input_hash(src, params, "demo", lib)
    original = src.read_text()

    _save_from_jupyter(src, tmp_path)
    assert runbook.input_hash(src, params, "demo", lib) == before
    changed = [line for line in set(src.read_text().splitlines()) ^ set(original.splitlines())]
    assert all("display_name" in line for line in changed), f"saving rewrote more than the kernel name: {changed}"

    # ... while an edit of a cell (here: one parameter) does change it
    src.write_text(src.read_text().replace("seed = 0", "seed = 1", 1))
    assert runbook.input_hash(src, params, "demo", lib) != before


def test_jupytext_toml_pairs_the_sources_with_ipynb_that_git_ignores():
    from jupytext.config import load_jupytext_configuration_file
    from bgrobust.runbook import ROOT

    config = load_jupytext_configuration_file(str(ROOT / "jupytext.toml"))
    formats = ",".join([config.formats] if isinstance(config.formats, str) else config.formats)
    assert set(formats.split(",")) == {"notebooks///md:myst", "notebooks///ipynb"}
    assert "notebooks/*.ipynb" in (ROOT / ".gitignore").read_text().splitlines()


KERNEL_NB = (
    "# Kernel\n",
    code("seed = 1", "parameters"),
    code("""
        import warnings
        from tqdm.auto import tqdm
        import matplotlib.pyplot as plt
        from myst_nb import glue
        total = sum(i for i in tqdm(range(50), desc="looping"))
        total += sum(i for i in tqdm(range(50), desc="explicit", disable=False))
        warnings.warn("only 3 crops in one set")
        fig, ax = plt.subplots()
        ax.plot([0, seed])
        glue("fig_once", fig, display=False)
        print("total", total)
        """),
)


def test_pages_show_no_progress_bars_no_tqdm_warning_and_each_figure_once(project, library):
    src, _, out = project
    write_notebook(src / "05_kernel.md", *KERNEL_NB)
    assert run(project, "--only", "05_kernel") == 0
    nb = nbformat.read(out / "05_kernel.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    stderr = [o.text for o in outputs if o.get("name") == "stderr"]
    assert not stderr, f"stderr on the page: {stderr}"
    assert "total 2450" in outputs_text(nb)
    assert "UserWarning: only 3 crops in one set" in outputs_text(nb)   # the warning, as one line of text
    images = [k for o in outputs for k in o.get("data", {}) if k.endswith("image/png")]
    assert images == ["application/papermill.record/image/png"], images   # the glued figure, once


def test_saving_through_jupyters_contents_manager_keeps_the_input_hash(tmp_path):
    """The same, through the contents manager Jupyter itself uses (needs the lab extra)."""
    pytest.importorskip("jupyter_server")
    from jupytext import TextFileContentsManager
    from bgrobust.runbook import NOTEBOOKS, ROOT

    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    src = tmp_path / "notebooks" / "02_layer_selection.md"
    shutil.copy(NOTEBOOKS / src.name, src)
    before = runbook.input_hash(src, {}, "demo", "lib-v1")
    cm = TextFileContentsManager(root_dir=str(tmp_path))
    model = cm.get("notebooks/02_layer_selection.md")
    nb = model["content"]
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.9"}
    for i, cell in enumerate(nb.cells):
        cell.metadata["jupyter"] = {"outputs_hidden": True}
        if cell.cell_type == "code":
            cell.execution_count = i + 1
            cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    cm.save(model, "notebooks/02_layer_selection.md")
    assert (tmp_path / "notebooks" / "02_layer_selection.ipynb").is_file(), "the pairing wrote no .ipynb"
    assert runbook.input_hash(src, {}, "demo", "lib-v1") == before


ENV_NB = (
    "# Env\n",
    code("seed = 1", "parameters"),
    code("""
        import os
        for key in ("OMP_WAIT_POLICY", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
            print(key, "=", os.environ.get(key))
        """),
)


def test_kernels_get_the_allocation_defaults_unless_the_caller_sets_them(project, library, monkeypatch):
    src, _, out = project
    write_notebook(src / "06_env.md", *ENV_NB)
    for key in runbook.KERNEL_ENV_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    assert run(project, "--only", "06_env") == 0
    text = outputs_text(nbformat.read(out / "06_env.ipynb", as_version=4))
    for key, value in runbook.KERNEL_ENV_DEFAULTS.items():
        assert f"{key} = {value}" in text
        assert key not in os.environ                                   # not leaked into this process
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")             # the caller's value wins
    assert run(project, "--only", "06_env", "--force") == 0
    text = outputs_text(nbformat.read(out / "06_env.ipynb", as_version=4))
    assert "MALLOC_TRIM_THRESHOLD_ = 131072" in text
    assert f"MALLOC_MMAP_THRESHOLD_ = {runbook.KERNEL_ENV_DEFAULTS['MALLOC_MMAP_THRESHOLD_']}" in text
