"""Declared constraints of parameter classes, checked at construction, with the field named.

Every parameter dataclass of the library (:class:`~bgrobust.dataset.DatasetParams`,
:class:`~bgrobust.segment.SegmentationParams`, :class:`~bgrobust.synth.ScreenConfig`,
:class:`~bgrobust.classify.SVMProtocol`, :class:`~bgrobust.train.TrainParams`, ...)
declares, scikit-learn style, a ``_parameter_constraints`` mapping ``field ->
constraint`` and calls :func:`check_params` from ``__post_init__``.  A bad value fails
at once, where the user set it, with a :class:`ParameterError` that names the class,
the field, what it must be and what it got::

    DatasetParams.crop_size must be an integer >= 8, got -3

Examples
--------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class P:
...     n: int = 1
...     mode: str = "a"
...     _parameter_constraints = {"n": Integer(1), "mode": Choice(["a", "b"])}
...     def __post_init__(self):
...         check_params(self)
>>> P(n=0)
Traceback (most recent call last):
...
bgrobust.constraints.ParameterError: P.n must be an integer >= 1, got 0
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["ParameterError", "Constraint", "Integer", "Real", "Choice", "Boolean", "String", "Pair",
           "Optional", "Instance", "check_params", "check_value"]


class ParameterError(ValueError, TypeError):
    """A parameter has the wrong type, is out of range or is not one of the choices.

    A subclass of both ``ValueError`` and ``TypeError``, so either ``except`` catches it.
    """


class Constraint:
    """What one parameter must be: :meth:`ok` tests a value, :meth:`describe` says it in words."""

    def ok(self, value) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


def _interval(lo, hi, lo_open, hi_open) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi}"
    return ""


def _within(v, lo, hi, lo_open, hi_open) -> bool:
    if lo is not None and (v <= lo if lo_open else v < lo):
        return False
    if hi is not None and (v >= hi if hi_open else v > hi):
        return False
    return True


class Integer(Constraint):
    """An integer (not a bool) in an interval.

    >>> Integer(1).ok(3), Integer(1).ok(0), Integer(1).ok(2.0), Integer(0, 3).describe()
    (True, False, False, 'an integer in [0, 3]')
    """

    def __init__(self, lo=None, hi=None):
        self.lo, self.hi = lo, hi

    def ok(self, value) -> bool:
        return (isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))
                and _within(value, self.lo, self.hi, False, False))

    def describe(self) -> str:
        return f"an integer {_interval(self.lo, self.hi, False, False)}".rstrip()


class Real(Constraint):
    """A finite number (int or float, not a bool) in an interval.

    >>> Real(0, lo_open=True).ok(0.0), Real(0, 1).ok(0.5), Real(0, 1).ok("0.5"), Real(0, 1).describe()
    (False, True, False, 'a number in [0, 1]')
    """

    def __init__(self, lo=None, hi=None, *, lo_open: bool = False, hi_open: bool = False):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def ok(self, value) -> bool:
        return (isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, np.bool_))
                and math.isfinite(value) and _within(value, self.lo, self.hi, self.lo_open, self.hi_open))

    def describe(self) -> str:
        return f"a number {_interval(self.lo, self.hi, self.lo_open, self.hi_open)}".rstrip()


class Choice(Constraint):
    """One of a fixed set of values.

    >>> Choice(["drop", "pad"]).ok("banana"), Choice(["drop", "pad"]).describe()
    (False, "one of ['drop', 'pad']")
    """

    def __init__(self, options: Iterable):
        self.options = list(options)

    def ok(self, value) -> bool:
        is_bool = isinstance(value, (bool, np.bool_))  # True is not the choice 1
        try:
            return any(value == o and is_bool == isinstance(o, bool) for o in self.options)
        except Exception:  # noqa: BLE001 - an uncomparable value is not a choice
            return False

    def describe(self) -> str:
        return f"one of {sorted(self.options, key=str) if all(isinstance(o, str) for o in self.options) else self.options}"


class Boolean(Constraint):
    """``True`` or ``False`` (numpy booleans too; not 0/1 or strings)."""

    def ok(self, value) -> bool:
        return isinstance(value, (bool, np.bool_))

    def describe(self) -> str:
        return "True or False"


class String(Constraint):
    """A non-empty string."""

    def ok(self, value) -> bool:
        return isinstance(value, str) and bool(value)

    def describe(self) -> str:
        return "a non-empty string"


class Instance(Constraint):
    """An instance of a class."""

    def __init__(self, cls: type, description: str | None = None):
        self.cls, self.description = cls, description

    def ok(self, value) -> bool:
        return isinstance(value, self.cls)

    def describe(self) -> str:
        return self.description or f"a {self.cls.__name__}"


class Pair(Constraint):
    """Two values (a list or tuple), each meeting ``item``; with ``ordered`` the first <= the second.

    >>> Pair(Integer(1), ordered=True).ok((3, 2)), Pair(Integer(1)).describe()
    (False, 'two values, each an integer >= 1')
    """

    def __init__(self, item: Constraint, *, ordered: bool = False):
        self.item, self.ordered = item, ordered

    def ok(self, value) -> bool:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
            return False
        if not all(self.item.ok(v) for v in value):
            return False
        return not self.ordered or value[0] <= value[1]

    def describe(self) -> str:
        text = f"two values, each {self.item.describe()}"
        return text + " (low <= high)" if self.ordered else text


class Optional(Constraint):
    """``None`` or a value meeting ``inner``."""

    def __init__(self, inner: Constraint):
        self.inner = inner

    def ok(self, value) -> bool:
        return value is None or self.inner.ok(value)

    def describe(self) -> str:
        return f"{self.inner.describe()} or None"


def check_value(value, constraint: Constraint, name: str) -> Any:
    """Return ``value`` if it meets ``constraint``; else raise :class:`ParameterError` naming ``name``.

    >>> check_value(3, Integer(1), "n_cells")
    3
    >>> check_value(0, Integer(1), "robustness_report: n_cells")
    Traceback (most recent call last):
    ...
    bgrobust.constraints.ParameterError: robustness_report: n_cells must be an integer >= 1, got 0
    """
    if not constraint.ok(value):
        raise ParameterError(f"{name} must be {constraint.describe()}, got {value!r}")
    return value


def check_params(obj, constraints: Mapping[str, Constraint] | None = None, *, name: str | None = None,
                 rules: Sequence[tuple[str, Callable[[Any], bool], str]] | None = None) -> None:
    """Check every declared field of ``obj``; the first bad one raises :class:`ParameterError`.

    Parameters
    ----------
    obj : object
        A parameter object (usually a dataclass, from its ``__post_init__``).
    constraints : mapping, optional
        ``field -> Constraint``; default ``type(obj)._parameter_constraints``.  Fields
        without a constraint are not checked.
    name : str, optional
        The name in messages (default: the class name).
    rules : sequence of (field, predicate, message), optional
        Checks across fields, run after the single-field ones (default
        ``type(obj)._parameter_rules`` if declared): ``predicate(obj)`` must hold, else
        ``"<name>.<field> <message>"`` is raised (``message`` is formatted with ``p=obj``).
    """
    name = name or type(obj).__name__
    constraints = constraints if constraints is not None else getattr(type(obj), "_parameter_constraints", {})
    for field, constraint in constraints.items():
        check_value(getattr(obj, field), constraint, f"{name}.{field}")
    rules = rules if rules is not None else getattr(type(obj), "_parameter_rules", ())
    for field, predicate, message in rules:
        if not predicate(obj):
            raise ParameterError(f"{name}.{field} {message.format(p=obj)}")
