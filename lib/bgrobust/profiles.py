"""Parameter profiles: ``ci``, ``demo`` and ``paper`` (and your own).

A profile is a YAML file of parameters. Top-level keys are parameters for every chapter; the
optional ``notebooks:`` mapping overrides keys for single chapters (``{stem: {key: value}}``).
Keys ending in ``_path``, ``_dir`` or ``_file`` are paths, resolved against the profile's folder.

Where profiles are found (:func:`profiles_dir`): ``$BGROBUST_PROFILES`` when set, else the
profiles shipped inside the package (``bgrobust/params/``, a link to the repository's ``params/``
that the wheel carries as package data), so an
installed package finds them from any folder. The book runner (:mod:`bgrobust.runbook`) reads
the repository's ``params/``.

Examples
--------
>>> p = load_profile("ci")
>>> p.name, "seed" in p.defaults
('ci', True)
>>> sorted(available_profiles())[:2]
['ci', 'demo']
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

#: Environment variable naming a folder of profiles that replaces the packaged ones.
PROFILES_ENV = "BGROBUST_PROFILES"


class ProfileError(ValueError):
    """A profile that does not exist or is not shaped like one (the message names the file)."""


def profiles_dir() -> Path:
    """The folder profiles are read from (``$BGROBUST_PROFILES``, else the packaged ``params/``)."""
    return Path(os.environ.get(PROFILES_ENV) or (Path(__file__).parent / "params").resolve())


@dataclass(frozen=True)
class Profile:
    """A parameter profile read from ``<profiles_dir>/<name>.yml``.

    Attributes
    ----------
    name : str
        Profile name (the file's stem).
    path : Path
        The YAML file it was read from.
    defaults : dict
        Top-level keys: parameters offered to every notebook that declares them.
    notebooks : dict
        ``{stem: {key: value}}`` overrides for single notebooks.
    """

    name: str
    path: Path
    defaults: dict = field(default_factory=dict)
    notebooks: dict = field(default_factory=dict)

    def parameters(self, chapter: str | None = None) -> dict:
        """The parameters one chapter receives: the top-level ones, updated by ``notebooks.<chapter>``
        (dotted keys update one entry of a dict-valued parameter)."""
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.defaults.items()}
        for key, value in (self.notebooks.get(chapter) or {}).items() if chapter else ():
            head, _, rest = str(key).partition(".")
            if rest and isinstance(out.get(head), dict):
                out[head] = {**out[head], rest: value}
            else:
                out[key] = value
        return out


# --------------------------------------------------------------------------- path parameters
#: Parameters whose name ends like this hold a path (``manifest_path``, ``labels_path``, ...).
PATH_SUFFIXES = ("_path", "_dir", "_file")


def is_path_parameter(key: str) -> bool:
    """Whether the (possibly dotted) parameter ``key`` names a path, by its last part."""
    return str(key).split(".")[-1].endswith(PATH_SUFFIXES)


def _absolute(value: str, base: Path) -> str:
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded
    return os.path.normpath(os.path.join(os.fspath(base), expanded))


def resolve_paths(values: Mapping[str, Any], base: Path) -> dict:
    """A copy of ``values`` in which every relative path parameter is made absolute against ``base``.

    Path parameters are those whose name ends in ``_path``, ``_dir`` or ``_file`` (at any
    depth of nested mappings, and for dotted keys by their last part), with a non-empty
    string value.  The kernels run in ``book/``, so without this a relative path would be
    read from there: ``-p`` values resolve against the directory the command was run in,
    profile values against the profile's folder.

    Examples
    --------
    >>> resolve_paths({"manifest_path": "my.csv", "layer": "conv8"}, Path("/data"))
    {'manifest_path': '/data/my.csv', 'layer': 'conv8'}
    """
    out: dict = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            value = resolve_paths(value, base)
        elif is_path_parameter(key) and isinstance(value, str) and value:
            value = _absolute(value, base)
        out[key] = value
    return out


def available_profiles(params_dir=None) -> list[str]:
    """Names of the profiles in ``params_dir`` (the stems of its ``*.yml`` files)."""
    return sorted(p.stem for p in Path(params_dir or profiles_dir()).glob("*.yml"))


def load_profile(name: str, params_dir=None) -> Profile:
    """Read ``<params_dir>/<name>.yml`` (default folder: :func:`profiles_dir`), or a YAML file given by path.

    Top-level keys are parameters for every notebook; the optional ``notebooks:``
    mapping holds ``{stem: {key: value}}`` overrides for single notebooks.

    Raises
    ------
    ProfileError
        If the profile does not exist or is not shaped like that.
    """
    params_dir = Path(params_dir or profiles_dir())
    path = Path(name) if str(name).endswith((".yml", ".yaml")) else params_dir / f"{name}.yml"
    name = path.stem
    if not path.is_file():
        raise ProfileError(f"unknown profile {name!r}; available: "
                           f"{', '.join(available_profiles(params_dir)) or '(none)'} (in {params_dir})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProfileError(f"{_yaml_where(path, exc)}: malformed YAML: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping of parameters at the top level")
    per_notebook = data.pop("notebooks", None) or {}
    if not isinstance(per_notebook, dict) or not all(
            isinstance(v, dict) or v is None for v in per_notebook.values()):
        raise ProfileError(f"{path}: 'notebooks' must map notebook names to mappings of parameters")
    per_notebook = {str(stem): resolve_paths(dict(v or {}), path.parent) for stem, v in per_notebook.items()}
    return Profile(name=name, path=path, defaults=resolve_paths(data, path.parent), notebooks=per_notebook)


def _yaml_where(path: Path, exc: yaml.YAMLError) -> str:
    """``file:line:column`` of a YAML error (1-based), or the file alone."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = "; ".join(str(p) for p in parts if p)
    return text or str(exc).splitlines()[0]


