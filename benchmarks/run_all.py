"""Run every ``bench_*.py`` in this folder; each records its results under ``results/``."""
import runpy
import sys
from pathlib import Path

here = Path(__file__).parent
names = sys.argv[1:] or sorted(p.stem for p in here.glob("bench_*.py"))
for name in names:
    print(f"== {name}")
    runpy.run_path(str(here / f"{name}.py"), run_name="__main__")
