"""The library stands alone: a built wheel, installed non-editable, runs ``robustness_report(profile="ci")``
from a folder outside the repository, finds its profiles in the package and writes its cache into the
working directory's ``runs/``, never into site-packages.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import pathlib, sys
    import bgrobust
    from bgrobust.robustness import robustness_report
    assert pathlib.Path(bgrobust.__file__).is_relative_to(pathlib.Path(sys.argv[1])), bgrobust.__file__
    rep = robustness_report(lambda x: x.mean(axis=(2, 3)), profile="ci", n_jobs=1, progress=False)
    print("VERDICT", rep.verdict)
    print("EXPERIMENTS", sorted(rep.results))
""")


def test_wheel_runs_robustness_report_from_any_folder(tmp_path):
    src = tmp_path / "src"   # a copy: building writes build/ and *.egg-info next to the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "params", src / "params")
    shutil.copytree(ROOT / "lib", src / "lib", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(src)], check=True, capture_output=True, text=True)
    (wheel,) = wheels.glob("bgrobust-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"bgrobust/params/ci.yml", "bgrobust/params/demo.yml", "bgrobust/params/paper.yml"} <= set(names)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("BGROBUST_RUNS", "BGROBUST_PROFILES", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(site)], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "VERDICT" in proc.stdout and "'diff'" in proc.stdout
    assert (work / "runs").is_dir() and any((work / "runs").rglob("*"))
    assert not list(site.rglob("runs"))
