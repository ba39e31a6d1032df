"""The house: no stage imports a later one (the order in which data flows through the library)."""
import ast

from conftest import ROOT

#: Modules in data-flow order; a module may import only modules listed before it.
ORDER = ["vocabulary", "constraints", "_quantile", "_npy", "cache", "paths", "profiles", "devices", "cluster", "published", "screen", "_segment_gfp", "segment",
         "synth", "io", "crops", "dataset", "imageops", "models", "train", "features", "vae", "baselines",
         "settings", "extractors", "_libsvm", "classify", "layers", "tables", "claims", "experiments", "replicates",
         "challenge", "platecontrol", "proportions",
         "robustness", "plots", "export", "sphinxext", "runbook"]
LIB = ROOT / "lib" / "bgrobust"


def _stage(path) -> str:
    rel = path.relative_to(LIB).parts
    return rel[0] if len(rel) > 1 else path.stem


def _imports(path) -> set[str]:
    """The bgrobust stages a module imports (top-level or inside functions)."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(LIB).parts) - 1
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:   # relative: resolve against the package
                up = node.level - 1
                if up > depth:
                    continue
                base = list(path.relative_to(LIB).parts[:depth - up]) if depth - up > 0 else []
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:   # from . import x, y
                    out |= {a.name for a in node.names}
                else:
                    out.add(parts[0])
            elif node.module and node.module.split(".")[0] == "bgrobust":
                parts = node.module.split(".")
                out |= ({a.name for a in node.names} if len(parts) == 1 else {parts[1]})
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("bgrobust.")}
    return out


def test_every_module_has_a_place_in_the_order():
    stages = {_stage(p) for p in LIB.rglob("*.py") if p.name != "__init__.py" or p.parent != LIB}
    assert stages <= set(ORDER), sorted(stages - set(ORDER))


def test_no_stage_imports_a_later_stage():
    rank = {name: i for i, name in enumerate(ORDER)}
    offenders = []
    for path in sorted(LIB.rglob("*.py")):
        if path.parent == LIB and path.name == "__init__.py":
            continue
        me = _stage(path)
        for other in _imports(path):
            if other in rank and other != me and rank[other] > rank[me]:
                offenders.append(f"{path.relative_to(ROOT)} ({me}) imports {other}")
    assert not offenders, offenders
