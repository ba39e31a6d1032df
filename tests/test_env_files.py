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


def test_environment_yml_channel_python_and_editable_install():
    env = environment()
    assert env["channels"] == ["conda-forge"]
    assert "python=3.11" in env["dependencies"] and "pip" in env["dependencies"]
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert pip_sections == [["-e ."]]


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
