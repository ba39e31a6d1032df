from bgrobust.vocabulary import CLASSES, CLASS_COLORS, SORTED_CLASSES, check_classes, class_index

import pytest


def test_orders_match_the_original_code():
    assert len(CLASSES) == 15 and CLASSES[0] == "actin" and CLASSES[-1] == "vacuole"
    # LR-head order: pandas category (lexicographic, upper case first)
    assert SORTED_CLASSES[:4] == ("ER", "Golgi", "actin", "bud neck")
    assert set(CLASS_COLORS) == set(CLASSES)


def test_unknown_class_names_are_reported():
    with pytest.raises(ValueError, match="unknown localization class 'nucleous'"):
        class_index("nucleous")
    with pytest.raises(ValueError, match="labels.csv"):
        check_classes(["ER", "Er"], where="labels.csv")


# --------------------------------------------------------------------------- one home for every name
import ast  # noqa: E402
import re  # noqa: E402

from conftest import ROOT  # noqa: E402

from bgrobust import vocabulary  # noqa: E402

NAMES = ("CLASSES", "SORTED_CLASSES", "CLASS_TITLES", "CLASS_COLORS", "CHANNELS", "EXPERIMENTS",
         "EXPERIMENT_TITLES", "PAIR_EXPERIMENTS", "TRIPLET_EXPERIMENTS", "MODELS", "MODEL_TITLES", "MODEL_COLORS",
         "CHALLENGE_MEASURES", "CHALLENGE_TITLES")
LIBRARY = sorted((ROOT / "lib" / "bgrobust").rglob("*.py"))
CHAPTERS = sorted((ROOT / "notebooks").glob("*.md"))


def _docstrings(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _code_cells(md: str) -> str:
    return "\n".join(re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", md, flags=re.S))


def test_every_vocabulary_name_is_importable_from_its_home():
    for name in NAMES:
        assert hasattr(vocabulary, name), name
    assert list(vocabulary.EXPERIMENT_TITLES) == list(vocabulary.EXPERIMENTS)
    assert set(vocabulary.PAIR_EXPERIMENTS) | set(vocabulary.TRIPLET_EXPERIMENTS) == set(vocabulary.EXPERIMENTS)
    assert list(vocabulary.MODEL_TITLES) == list(vocabulary.MODELS) == list(vocabulary.MODEL_COLORS)
    assert list(vocabulary.CHALLENGE_TITLES) == list(vocabulary.CHALLENGE_MEASURES)


def test_no_other_module_or_chapter_defines_a_vocabulary_name():
    pattern = re.compile(rf"^\s*({'|'.join(NAMES)})\s*(:[^=]*)?=", re.M)
    offenders = []
    for path in LIBRARY:
        if path.name == "vocabulary.py":
            continue
        offenders += [f"{path.relative_to(ROOT)}: {m.group(1)}" for m in pattern.finditer(path.read_text())]
    for path in CHAPTERS:
        offenders += [f"{path.relative_to(ROOT)}: {m.group(1)}" for m in pattern.finditer(_code_cells(path.read_text()))]
    assert not offenders, offenders


def test_no_other_module_or_chapter_spells_a_title_or_order_out():
    titles = set(vocabulary.EXPERIMENT_TITLES.values()) | set(vocabulary.MODEL_TITLES.values())
    titles |= set(vocabulary.CHALLENGE_TITLES.values())
    titles |= {"Different Loc Swap", "Cell-Free Different Loc Swap"}   # the old second spellings
    orders = {tuple(vocabulary.MODELS), tuple(vocabulary.CHANNELS), tuple(vocabulary.EXPERIMENTS)}
    offenders = []
    for path in LIBRARY:
        if path.name in ("vocabulary.py", "published.py"):   # published.py: the paper's own data files
            continue
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree) | {id(c) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                                    and any(getattr(t, "id", None) == "__all__" for t in node.targets)
                                    for c in ast.walk(node.value)}   # class names such as PIFiA
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in titles and id(node) not in skip:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
            if isinstance(node, (ast.Tuple, ast.List)) and all(isinstance(e, ast.Constant) for e in node.elts) \
                    and tuple(e.value for e in node.elts) in orders:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {[e.value for e in node.elts]}")
    for path in CHAPTERS:
        code = _code_cells(path.read_text())
        offenders += [f"{path.relative_to(ROOT)}: {t!r}" for t in titles if re.search(rf"[\"']{re.escape(t)}[\"']", code)]
    assert not offenders, offenders
