"""The install files agree: environment.yml (conda) lists the packages of
pyproject.toml (pip), and constraints.txt holds the pins the toolchain relies on."""
from __future__ import annotations

import re
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import ROOT

#: pip name -> conda-forge name, where they differ.
CONDA_NAMES = {"torch": "pytorch"}
#: conda-only entries of environment.yml that are not Python package requirements.
CONDA_ONLY = {"python", "pip"}


def normalise(name: str) -> str:
    """PEP 503 normalised name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_requirements() -> dict[str, str]:
    """``{conda name: version specifier}`` of pyproject's dependencies and all extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    result = {}
    for line in reqs:
        req = Requirement(line)
        name = normalise(req.name)
        result[CONDA_NAMES.get(name, name)] = str(req.specifier)
    return result


def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def conda_requirements() -> dict[str, str]:
    """``{name: version specifier}`` of environment.yml's conda dependencies."""
    result = {}
    for dep in environment()["dependencies"]:
        if not isinstance(dep, str):
            continue
        name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", dep).groups()
        result[normalise(name)] = spec.replace(" ", "")
    return result


def constraints() -> dict[str, Requirement]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    reqs = [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]
    return {normalise(r.name): r for r in reqs}


def test_environment_yml_lists_the_packages_of_pyproject():
    want = set(pip_requirements())
    have = set(conda_requirements()) - CONDA_ONLY
    assert want == have, (f"only in pyproject.toml: {sorted(want - have)}; "
                          f"only in environment.yml: {sorted(have - want)}")


def test_environment_yml_uses_the_same_version_bounds():
    pip, conda = pip_requirements(), conda_requirements()
    differ = {name: (spec, conda[name]) for name, spec in pip.items()
              if name in conda and sorted(spec.split(",")) != sorted(conda[name].split(","))}
    assert not differ, f"version bounds differ (pyproject, environment.yml): {differ}"


def test_environment_yml_channel_python_and_no_editable_install():
    """Binder creates the environment before it copies the repository: `-e .` there fails."""
    env = environment()
    assert env["channels"] == ["conda-forge"]
    assert "python=3.11" in env["dependencies"] and "pip" in env["dependencies"]
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert not any("-e ." in " ".join(section) for section in pip_sections)


def test_postbuild_installs_the_library_and_opens_md_as_notebooks(tmp_path):
    """postBuild (run by Binder and by conda users) installs the package without touching the
    environment's dependencies, and sets JupyterLab to open notebooks/*.md with jupytext."""
    import json
    import os
    import subprocess
    import sys

    text = (ROOT / "postBuild").read_text()
    assert os.access(ROOT / "postBuild", os.X_OK), "postBuild must be executable (Binder runs it as is)"
    assert '-m pip install --no-deps -e .' in text
    # run the settings part against a scratch prefix: a venv-like python whose sys.prefix is tmp_path
    fake = tmp_path / "python"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.prefix = {str(tmp_path)!r}\nexec(sys.stdin.read())\n")
    fake.chmod(0o755)
    settings = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"other-plugin": {"x": 1}}))
    proc = subprocess.run(["bash", str(ROOT / "postBuild"), "--settings-only"], env={**os.environ, "PYTHON": str(fake)},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(settings.read_text())
    assert got["other-plugin"] == {"x": 1}, "postBuild dropped existing JupyterLab settings"
    assert got["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["markdown"] == "Jupytext Notebook"


def test_lab_extra_and_make_lab():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lab = {normalise(Requirement(r).name) for r in project["optional-dependencies"]["lab"]}
    assert {"jupyterlab", "jupytext"} <= lab
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lab:", makefile, re.M) and '".[book,test,lab]"' in makefile


@pytest.mark.parametrize("name", ["anndata", "pyarrow", "jupyterlab", "sphinxcontrib-bibtex"])
def test_constraints_pin_the_export_book_and_lab_packages(name):
    pins = constraints()
    assert name in pins and str(pins[name].specifier).startswith("=="), f"constraints.txt does not pin {name}"
    declared = pip_requirements()
    assert Requirement(f"{name}{declared[name]}").specifier.contains(str(pins[name].specifier)[2:]), (
        f"the pin of {name} is outside pyproject's bounds")


def test_license_and_citation_files():
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert cff["version"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    (paper,) = [r for r in cff["references"] if "Background Cells" in r["title"]]
    assert [a["family-names"] for a in paper["authors"]] == ["Gupta", "Moses", "Lu"]


@pytest.mark.parametrize("name", ["torch", "jupyter-book"])
def test_constraints_pin_the_toolchain(name):
    pins = constraints()
    assert name in pins, f"constraints.txt does not pin {name}"
    if name == "torch":  # an unpinned torch pulls a multi-GB CUDA build
        assert str(pins[name].specifier) == "==2.13.0"
    else:                # Jupyter Book 2 is a different tool (mystmd) that builds nothing offline
        spec = pins[name].specifier
        assert not spec.contains(Version("2.0.0")) and not spec.contains(Version("2.1.7"))
        assert spec.contains(Version("1.0.4.post1"))
