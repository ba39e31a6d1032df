"""The paper's binary linear-SVM protocol (section 3.4; ``swap_experiments/run_svm.py``).

For two localization classes, an SVM separates the feature vectors of crops whose
centre cell has class ``c1`` from those of class ``c2``; its 5-fold cross-validated
accuracy measures how well the representation tells the two classes apart.  The
defaults of :class:`SVMProtocol` are exactly the paper code's
(``get_nn_score_svc``): the *first* 1000 rows of each class (no shuffling, no
resampling), ``SVC(kernel="linear", C=1.0, max_iter=100000)``, no feature scaling,
``StratifiedKFold(n_splits=5)`` without shuffling (contiguous blocks), and the mean and
population standard deviation (``ddof=0``) of the 5 fold accuracies.  The folds are made
by :func:`balanced_folds`, which gives exactly ``StratifiedKFold``'s folds when each
class's row count is divisible by the number of folds (the paper's 1000 and 5) and keeps
every fold balanced otherwise (at small ``n``, where ``StratifiedKFold``'s unbalanced
folds make a constant feature extractor score 0.367 instead of 0.5).

* :func:`pairwise_accuracy`: one SVM.
* :func:`evaluate_pairs`: the 105 unordered pairs ``i < j`` of the classes (base, mask,
  same), in the paper's row order.
* :func:`evaluate_triplets`: every pair on every background class (diff, batch).
* :func:`protein_held_out_accuracy`, :func:`evaluate_pairs_held_out`: appendix D.3's
  80/20 split with disjoint proteins, beside the 5-fold CV (Supplementary Table 3).

The batch evaluations run the SVMs with joblib (``n_jobs``), show a tqdm bar
(``progress``) and, given ``cache_dir``, store each result under a key made from the
rows the SVM sees, the protocol, the scikit-learn version and this module's code, so
an interrupted run resumes where it stopped and a re-run costs nothing.  Fits that
stop at ``max_iter`` (libsvm's ``ConvergenceWarning``; the paper's code has the same
cap) are counted and reported in one warning per call instead of one per fit.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(0, 1, (50, 4)), rng.normal(8, 1, (50, 4))
>>> pairwise_accuracy(a, b, SVMProtocol(n_per_class=50))
(1.0, 0.0)
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import warnings
import zlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils import check_random_state
from tqdm.auto import tqdm

from ._libsvm import fit_predict
from .cache import CacheWarning, atomic_file, clean_stale_once, code_key, content_key
from .vocabulary import CLASSES
from .constraints import Boolean, Choice, Integer, Optional, Real, check_params

#: The paper code's ``SEED`` (``run_svm.py``); it has no effect on a linear SVC without
#: ``probability=True`` and is only used by :class:`SVMProtocol` when ``shuffle=True``.
PAPER_SEED = 42
SHORTFALL_POLICIES = ("min", "error")
#: How a fit is run: ``"libsvm"`` calls ``sklearn.svm._libsvm`` directly with ``SVC``'s
#: arguments (:mod:`bgrobust._libsvm`; bit-identical, several times faster on small
#: problems); ``"sklearn"`` goes through ``SVC.fit`` / ``SVC.predict`` as the paper's code.
BACKENDS = ("libsvm", "sklearn")
BACKGROUND_MODES = ("valid", "all")


@dataclass(frozen=True)
class SVMProtocol:
    """Every setting of the pairwise SVM, with the paper's values as defaults.

    Parameters
    ----------
    n_per_class : int or None, default 1000
        Rows used per class: the *first* ``n_per_class`` rows, in the order given (the
        paper slices ``[:1000]``; no shuffling or random subsampling).  ``None`` uses
        every row.
    kernel : str, default "linear"
        ``sklearn.svm.SVC`` kernel.
    C : float, default 1.0
        SVC regularisation (sklearn's default; the paper does not set it).
    max_iter : int, default 100000
        SVC iteration cap (the paper's value; ``-1`` = no cap).
    n_splits : int, default 5
        Folds of the stratified cross-validation (:func:`balanced_folds`: the paper's
        ``StratifiedKFold`` whenever each class's rows divide into the folds evenly, and
        equal class counts in every fold otherwise).
    shuffle : bool, default False
        Shuffle before splitting into folds (the paper does not: each fold's test set is
        a contiguous block of each class's rows).
    random_state : int, default 42
        Seeds the fold shuffle when ``shuffle=True`` and is passed to ``SVC`` (the
        paper's ``SEED``; it changes nothing for a linear SVC).
    scale : bool, default False
        Standardise features (``StandardScaler`` fitted on each training fold).  The
        paper feeds raw features.
    shortfall : {"min", "error"}, default "min"
        When a class has fewer than ``n_per_class`` rows: ``"min"`` uses all of them
        (``min(n, available)`` per class, as the paper's results for the cell-free
        vacuole sets were evidently made; the two classes may then differ in size),
        ``"error"`` raises.
    backend : {"libsvm", "sklearn"}, default "libsvm"
        How each fit runs (not *what* is fitted): ``"libsvm"`` calls libsvm directly with
        exactly the arguments ``SVC.fit`` passes it and gives bit-identical accuracies
        (tested) without SVC's per-fit Python overhead; ``"sklearn"`` is the paper's
        ``SVC(...).fit(...).predict(...)`` path.

    Examples
    --------
    >>> p = SVMProtocol()
    >>> p.n_per_class, p.kernel, p.C, p.max_iter, p.n_splits, p.shuffle, p.scale
    (1000, 'linear', 1.0, 100000, 5, False, False)
    >>> SVMProtocol(n_per_class=40).n_rows(30)
    30
    """

    n_per_class: int | None = 1000
    kernel: str = "linear"
    C: float = 1.0
    max_iter: int = 100_000
    n_splits: int = 5
    shuffle: bool = False
    random_state: int = PAPER_SEED
    scale: bool = False
    shortfall: str = "min"
    backend: str = "libsvm"

    _parameter_constraints = {
        "n_per_class": Optional(Integer(1)),
        "kernel": Choice(("linear", "poly", "rbf", "sigmoid")),
        "C": Real(0, lo_open=True),
        "max_iter": Integer(-1),
        "n_splits": Integer(2),
        "shuffle": Boolean(),
        "random_state": Integer(),
        "scale": Boolean(),
        "shortfall": Choice(SHORTFALL_POLICIES),
        "backend": Choice(BACKENDS),
    }
    _parameter_rules = (("max_iter", lambda p: p.max_iter != 0, "must be a positive integer or -1, got 0"),)

    def __post_init__(self):
        check_params(self)

    def n_rows(self, available: int, *, where: str = "features") -> int:
        """Rows of a class with ``available`` rows that the SVM uses (applies ``shortfall``)."""
        if self.n_per_class is None:
            return available
        if available < self.n_per_class and self.shortfall == "error":
            raise ValueError(f"{where}: {available} rows, fewer than n_per_class={self.n_per_class} "
                             f"(SVMProtocol.shortfall='error'; use 'min' to use all available rows)")
        return min(self.n_per_class, available)

    def classifier(self):
        """A fresh, unfitted estimator (``SVC``, behind a ``StandardScaler`` if ``scale``)."""
        svc = SVC(kernel=self.kernel, C=self.C, max_iter=self.max_iter, random_state=self.random_state)
        return make_pipeline(StandardScaler(), svc) if self.scale else svc

    def to_dict(self) -> dict:
        """The settings as a plain dict (for cache keys and reports)."""
        return dataclasses.asdict(self)


def _protocol(protocol) -> SVMProtocol:
    if protocol is None:
        return SVMProtocol()
    if isinstance(protocol, Mapping):
        return SVMProtocol(**protocol)
    if not isinstance(protocol, SVMProtocol):
        raise TypeError(f"protocol: expected an SVMProtocol, a dict of its fields or None, "
                        f"got {type(protocol).__name__}")
    return protocol


def _as_features(X, where: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{where}: expected a 2-D array (rows = crops, columns = features), "
                         f"got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise ValueError(f"{where}: expected numeric features, got dtype {X.dtype}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{where}: empty feature array, shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{where}: contains NaN or infinite values")
    return X


def _take(X, protocol: SVMProtocol, where: str) -> np.ndarray:
    X = _as_features(X, where)
    n = protocol.n_rows(len(X), where=where)
    if n < protocol.n_splits:
        raise ValueError(f"{where}: {n} rows, fewer than n_splits={protocol.n_splits} "
                         f"(each fold needs a row of each class)")
    return X[:n]


def _fit(protocol: SVMProtocol, X, y):
    """Fit a fresh classifier; also say whether libsvm stopped at ``max_iter``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf = protocol.classifier().fit(X, y)
    stopped = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return clf, stopped


def _fit_predict(protocol: SVMProtocol, X_train, y_train, X_test) -> tuple[np.ndarray, bool]:
    """Predictions for ``X_test`` of a fresh classifier fitted on the training rows, and
    whether libsvm stopped at ``max_iter``; the same numbers with either ``backend``."""
    if protocol.backend == "sklearn":
        clf, stopped = _fit(protocol, X_train, y_train)
        return clf.predict(X_test), stopped
    if protocol.scale:
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    svc = SVC(kernel=protocol.kernel, C=protocol.C, max_iter=protocol.max_iter,
              random_state=protocol.random_state)
    return fit_predict(svc, X_train, y_train, X_test)


def balanced_folds(y, protocol: SVMProtocol | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The protocol's cross-validation folds: ``(train, test)`` row indices, sorted.

    Like ``StratifiedKFold(n_splits, shuffle, random_state)``, each class's rows go to
    the folds in contiguous blocks (shuffled with ``shuffle=True``), but every class
    gives fold ``i`` ``n_c // n_splits`` rows, plus one for the first ``n_c % n_splits``
    folds.  Two classes of the same size therefore have the same number of rows in
    every test fold, and the training set of every fold is balanced.

    What this changes: ``StratifiedKFold`` allocates the rows of all classes together,
    round-robin over the sorted labels, so at small ``n`` a test fold can hold 2 rows of
    one class and 1 of the other; its training set then has a majority, which an
    uninformative (e.g. constant) feature extractor predicts, and such an extractor
    scored 0.367 instead of 0.5 at 8 rows per class.  When every class's row count is
    divisible by ``n_splits`` (the paper: 1000 rows, 5 folds) both allocations are
    ``n_c / n_splits`` per fold and the folds, the fits and the accuracies are
    bit-identical to ``StratifiedKFold``'s.

    Parameters
    ----------
    y : array-like, shape (n,)
        Class labels (each class needs at least ``n_splits`` rows).
    protocol : SVMProtocol, optional

    Returns
    -------
    list of (train, test)

    Examples
    --------
    >>> y = [0] * 8 + [1] * 8
    >>> [int((np.asarray(y)[test] == 0).sum()) for _, test in balanced_folds(y)]
    [2, 2, 2, 1, 1]
    >>> [int((np.asarray(y)[test] == 1).sum()) for _, test in balanced_folds(y)]
    [2, 2, 2, 1, 1]
    """
    protocol = _protocol(protocol)
    y = np.asarray(y)
    k = protocol.n_splits
    rng = check_random_state(protocol.random_state if protocol.shuffle else None)
    _, first, codes = np.unique(y, return_index=True, return_inverse=True)
    test_folds = np.empty(len(y), dtype=int)
    for cls in np.argsort(first):  # classes in order of appearance, as StratifiedKFold
        rows = codes == cls
        n = int(rows.sum())
        if n < k:
            raise ValueError(f"balanced_folds: a class has {n} rows, fewer than n_splits={k}")
        sizes = np.full(k, n // k) + (np.arange(k) < n % k)
        folds_for_class = np.arange(k).repeat(sizes)
        if protocol.shuffle:
            rng.shuffle(folds_for_class)
        test_folds[rows] = folds_for_class
    index = np.arange(len(y))
    return [(index[test_folds != i], index[test_folds == i]) for i in range(k)]


def _cv(X1: np.ndarray, X2: np.ndarray, protocol: SVMProtocol) -> tuple[float, float, int]:
    """Mean and std (ddof=0) of the fold accuracies, and the number of fits stopped at max_iter."""
    # get_nn_score_svc: stack, labels 0/1, StratifiedKFold, accuracy per fold.
    X = np.vstack([X1, X2])
    y = np.concatenate([np.zeros(len(X1), int), np.ones(len(X2), int)])
    scores, stopped = [], 0
    # Inputs were checked at the boundary; skipping sklearn's per-call re-validation
    # halves the cost of small SVMs (results are unchanged).
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        for train, test in balanced_folds(y, protocol):
            pred, hit = _fit_predict(protocol, X[train], y[train], X[test])
            stopped += hit
            scores.append(float(np.mean(pred == y[test])))  # = accuracy_score
    return float(np.mean(scores)), float(np.std(scores)), stopped


def _warn_stopped(stopped: int, total: int, protocol: SVMProtocol, stacklevel: int = 3) -> None:
    if stopped:
        warnings.warn(f"{stopped} of {total} SVM fits stopped at max_iter={protocol.max_iter} before "
                      f"converging (the paper's code has the same cap; results are kept)",
                      ConvergenceWarning, stacklevel=stacklevel)


def pairwise_predictions(X1, X2, protocol: SVMProtocol | None = None) -> np.ndarray:
    """Out-of-fold predictions of the protocol's SVMs: which rows are misclassified.

    Same rows, folds and classifier as :func:`pairwise_accuracy`; each row is predicted by
    the fold model that did not see it (the crops of Supp. Fig. 2).

    Returns
    -------
    ndarray of int, shape (n1 + n2,)
        Predicted label per row: 0 for ``X1``'s class, 1 for ``X2``'s; rows of ``X1`` come first.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> X1, X2 = rng.normal(size=(20, 3)), rng.normal(size=(20, 3)) + [10, 0, 0]
    >>> pred = pairwise_predictions(X1, X2, SVMProtocol(n_per_class=20, n_splits=4))
    >>> int((pred[:20] == 0).sum()), int((pred[20:] == 1).sum())
    (20, 20)
    """
    protocol = _protocol(protocol)
    X1 = _take(X1, protocol, "X1")
    X2 = _take(X2, protocol, "X2")
    if X1.shape[1] != X2.shape[1]:
        raise ValueError(f"X1 has {X1.shape[1]} features but X2 has {X2.shape[1]}")
    X = np.vstack([X1, X2])
    y = np.concatenate([np.zeros(len(X1), int), np.ones(len(X2), int)])
    pred = np.empty(len(y), int)
    for train, test in balanced_folds(y, protocol):
        pred[test], _ = _fit_predict(protocol, X[train], y[train], X[test])
    return pred


def pairwise_accuracy(X1, X2, protocol: SVMProtocol | None = None) -> tuple[float, float]:
    """Cross-validated accuracy of a linear SVM separating ``X1`` from ``X2``.

    Parameters
    ----------
    X1, X2 : array-like, shape (n_rows, n_features)
        Features of the two classes; the first ``protocol.n_per_class`` rows of each
        are used.
    protocol : SVMProtocol, optional
        Defaults to the paper's protocol.

    Returns
    -------
    mean, std : float
        Mean and population standard deviation (``ddof=0``) of the fold accuracies
        (the paper's ``Accuracy`` and ``StdDev`` columns).

    Raises
    ------
    ValueError
        Non-2-D, non-finite or mismatched inputs; fewer rows than folds; a shortfall
        under ``shortfall="error"``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> X1, X2 = rng.normal(size=(20, 3)), rng.normal(size=(20, 3)) + [10, 0, 0]
    >>> pairwise_accuracy(X1, X2, SVMProtocol(n_per_class=20, n_splits=4))
    (1.0, 0.0)
    """
    protocol = _protocol(protocol)
    X1 = _take(X1, protocol, "X1")
    X2 = _take(X2, protocol, "X2")
    if X1.shape[1] != X2.shape[1]:
        raise ValueError(f"X1 has {X1.shape[1]} features but X2 has {X2.shape[1]}")
    mean, std, stopped = _cv(X1, X2, protocol)
    _warn_stopped(stopped, protocol.n_splits, protocol)
    return mean, std


def pairwise_fit_predict(X1, X2, X_test, protocol: SVMProtocol | None = None) -> tuple[np.ndarray, bool]:
    """Fit the protocol's SVM on ``X1`` (label 0) against ``X2`` (label 1) and label other rows.

    The same classifier as :func:`pairwise_accuracy` (the first ``n_per_class`` rows of each
    class, the protocol's kernel, C and scaling), fitted once on all of those rows instead of
    fold by fold, then applied to ``X_test``: for a classifier fitted on unaltered crops and
    asked about altered ones (:mod:`bgrobust.challenge`).

    Returns
    -------
    pred : ndarray of int, shape (len(X_test),)
        0 for ``X1``'s class, 1 for ``X2``'s.
    stopped : bool
        Whether libsvm stopped at ``max_iter`` (no warning is issued; the caller counts).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> X1, X2 = rng.normal(size=(10, 2)), rng.normal(size=(10, 2)) + [6, 0]
    >>> pairwise_fit_predict(X1, X2, [[0.0, 0.0], [6.0, 0.0]], SVMProtocol(n_per_class=10))[0].tolist()
    [0, 1]
    """
    protocol = _protocol(protocol)
    X1 = _take(X1, protocol, "X1")
    X2 = _take(X2, protocol, "X2")
    X_test = _as_features(X_test, "X_test")
    if not (X1.shape[1] == X2.shape[1] == X_test.shape[1]):
        raise ValueError(f"X1, X2 and X_test must have the same number of features, got "
                         f"{X1.shape[1]}, {X2.shape[1]} and {X_test.shape[1]}")
    X = np.vstack([X1, X2])
    y = np.concatenate([np.zeros(len(X1), int), np.ones(len(X2), int)])
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        pred, stopped = _fit_predict(protocol, X, y, X_test)
    return np.asarray(pred, int), bool(stopped)


# --------------------------------------------------------------------------- protein-held-out split


def _as_groups(groups, n: int, where: str) -> np.ndarray:
    g = np.asarray(groups)
    if g.ndim != 1 or len(g) != n:
        raise ValueError(f"{where}: expected one protein id per row ({n}), got shape {g.shape}")
    if g.dtype == object or g.dtype.kind in "SU":
        g = g.astype(str)
    return g


def _rng(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    return check_random_state(random_state)


def held_out_proteins(groups, test_fraction: float = 0.2, random_state=None) -> np.ndarray:
    """The proteins of one class to hold out: ``round(test_fraction * n)`` of them at random.

    At least one and at most all but one protein is held out.

    Parameters
    ----------
    groups : array-like, shape (n_rows,)
        Protein (strain) id of each row of one class.
    test_fraction : float in (0, 1)
    random_state : int, RandomState, Generator or None

    Returns
    -------
    ndarray
        The held-out protein ids, sorted.

    Examples
    --------
    >>> held_out_proteins(["a", "a", "b", "c", "d", "e"], 0.2, random_state=0).size
    1
    """
    if not (isinstance(test_fraction, numbers.Real) and 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    proteins = np.unique(_as_groups(groups, len(np.asarray(groups)), "groups"))
    if len(proteins) < 2:
        raise ValueError(f"groups: {len(proteins)} protein(s); a protein-held-out split needs at least 2 "
                         f"per class")
    k = min(max(1, int(round(test_fraction * len(proteins)))), len(proteins) - 1)
    return np.sort(_rng(random_state).permutation(proteins)[:k])


def held_out_split(y, groups, test_fraction: float = 0.2, random_state=None) -> tuple[np.ndarray, np.ndarray]:
    """Train/test row indices with disjoint proteins, stratified by class.

    For each class (in order of first appearance), :func:`held_out_proteins` picks the
    proteins whose rows all go to the test set.  Doing it per class keeps both classes
    in both sets, which a plain ``GroupShuffleSplit`` does not guarantee with few
    proteins.

    Parameters
    ----------
    y : array-like, shape (n,)
        Class labels.
    groups : array-like, shape (n,)
        Protein (strain) id of each row; a protein must belong to one class only.
    test_fraction : float in (0, 1)
    random_state : int, RandomState, Generator or None

    Returns
    -------
    train, test : ndarray of int

    Examples
    --------
    >>> y = [0, 0, 0, 0, 1, 1, 1, 1]
    >>> g = ["a", "a", "b", "c", "d", "e", "e", "f"]
    >>> train, test = held_out_split(y, g, 0.34, random_state=0)
    >>> sorted(set(g[i] for i in train) & set(g[i] for i in test))
    []
    """
    y = np.asarray(y)
    groups = _as_groups(groups, len(y), "groups")
    rng = _rng(random_state)
    frame = pd.DataFrame({"y": y, "g": groups})
    per_group = frame.groupby("g")["y"].nunique()
    shared = per_group.index[per_group > 1]
    if len(shared):
        raise ValueError(f"groups: protein(s) {list(shared[:5])} have rows of more than one class; "
                         f"a protein-held-out split needs each protein in one class")
    is_test = np.zeros(len(y), bool)
    for label in pd.unique(y):
        rows = y == label
        try:
            held = held_out_proteins(groups[rows], test_fraction, rng)
        except ValueError as err:
            raise ValueError(f"class {label}: {err}") from None
        is_test |= rows & np.isin(groups, held)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def protein_held_out_accuracy(X, y, groups, protocol: SVMProtocol | None = None, test_fraction: float = 0.2,
                              random_state=0) -> float:
    """Accuracy on one train/test split whose proteins are disjoint (appendix D.3).

    Parameters
    ----------
    X : array-like, shape (n, n_features)
        Features, used as given (no ``n_per_class`` truncation here; see
        :func:`evaluate_pairs_held_out`).
    y : array-like, shape (n,)
        Class labels.
    groups : array-like, shape (n,)
        Protein id of each row.
    protocol : SVMProtocol, optional
        The classifier settings (kernel, C, max_iter, scale).
    test_fraction : float, default 0.2
        Share of each class's proteins held out (the paper's 80/20), see
        :func:`held_out_split`.
    random_state : int, RandomState, Generator or None, default 0
        Which proteins are held out.

    Returns
    -------
    float
        Test-set accuracy.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 1, (40, 3)), rng.normal(4, 1, (40, 3))])
    >>> y = np.repeat([0, 1], 40); groups = np.repeat(np.arange(8), 10)
    >>> protein_held_out_accuracy(X, y, groups, random_state=0)
    1.0
    """
    protocol = _protocol(protocol)
    X = _as_features(X, "X")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"y: expected one label per row of X ({len(X)}), got shape {y.shape}")
    train, test = held_out_split(y, groups, test_fraction, random_state)
    accuracy, stopped = _fit_score(X, y, train, test, protocol)
    _warn_stopped(stopped, 1, protocol)
    return accuracy


def _fit_score(X, y, train, test, protocol: SVMProtocol) -> tuple[float, int]:
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        pred, stopped = _fit_predict(protocol, X[train], y[train], X[test])
        return float(np.mean(pred == y[test])), int(stopped)  # = accuracy_score


def _held_out_task(X1, X2, T1, T2, protocol: SVMProtocol) -> tuple[float, float, float, int]:
    """Held-out accuracy (rows flagged in T1/T2 are the test set), the CV mean and std, fits stopped."""
    X = np.vstack([X1, X2])
    y = np.concatenate([np.zeros(len(X1), int), np.ones(len(X2), int)])
    is_test = np.concatenate([T1, T2])
    held, stopped = _fit_score(X, y, np.flatnonzero(~is_test), np.flatnonzero(is_test), protocol)
    mean, std, cv_stopped = _cv(X1, X2, protocol)
    return held, mean, std, stopped + cv_stopped


# --------------------------------------------------------------------------- batch runner


class _Cache:
    """One small JSON file per SVM result, ``<dir>/<key[:2]>/<key>.json``.

    Each file holds the value and its CRC-32 (``{"value": [...], "crc32": "..."}``) and is
    written under a unique temporary name, then renamed into place (``os.replace``, atomic),
    so concurrent writers of one key leave one complete file.  A file that cannot be
    parsed or whose checksum does not match is recomputed with a
    :class:`~bgrobust.cache.CacheWarning` naming it; temporaries of killed runs are
    removed the first time a folder is used.
    """

    def __init__(self, folder):
        self.folder = Path(folder) if folder is not None else None

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    @staticmethod
    def _crc(value) -> str:
        return f"{zlib.crc32(json.dumps(list(value)).encode()) & 0xFFFFFFFF:08x}"

    def get(self, key: str):
        if self.folder is None:
            return None
        path = self._path(key)
        clean_stale_once(path.parent)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            value = tuple(record["value"])
            ok = record["crc32"] == self._crc(value)
        except (ValueError, KeyError, TypeError, OSError):
            ok = False
        if not ok:
            warnings.warn(f"SVM cache entry {path} is damaged (unreadable or checksum mismatch); "
                          f"recomputing it", CacheWarning, stacklevel=4)
            return None
        return value

    def put(self, key: str, value) -> None:
        if self.folder is None:
            return
        with atomic_file(self._path(key)) as tmp:
            tmp.write_text(json.dumps({"value": list(value), "crc32": self._crc(value)}))


def _run_chunk(fn, items, arrays, kwargs):
    return [(i, fn(*(arrays[k] for k in keys), **kwargs)) for i, keys in items]


def _run_tasks(tasks, arrays, fn, kwargs, *, n_jobs, progress, cache_dir, desc, fits_per_task):
    """Run ``fn(*arrays[keys], **kwargs)`` for each ``(keys, cache_key)`` in ``tasks``.

    Cached results are read first; the rest run in chunks of consecutive tasks (which
    share arrays) with joblib, and are cached as they come back.  The last value of
    every result is its number of fits stopped at ``max_iter``; one warning sums them.
    """
    cache = _Cache(cache_dir)
    results: list = [None] * len(tasks)
    todo = []
    for i, (keys, key) in enumerate(tasks):
        hit = cache.get(key)
        if hit is None:
            todo.append(i)
        else:
            results[i] = hit
    workers = max(1, effective_n_jobs(n_jobs))
    size = max(1, min(64, math.ceil(len(todo) / (8 * workers)))) if todo else 1
    chunks = [todo[s:s + size] for s in range(0, len(todo), size)]

    def payload(chunk):
        items = [(i, tasks[i][0]) for i in chunk]
        needed = {k for _, keys in items for k in keys}
        return items, {k: arrays[k] for k in needed}

    with tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=desc, unit="svm",
              disable=not progress) as bar:
        if workers == 1:
            outputs = (_run_chunk(fn, *payload(c), kwargs) for c in chunks)
        else:
            outputs = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_run_chunk)(fn, *payload(c), kwargs) for c in chunks)
        for out in outputs:
            for i, value in out:
                results[i] = tuple(value)
                cache.put(tasks[i][1], value)
            bar.update(len(out))
    _warn_stopped(sum(int(v[-1]) for v in results), fits_per_task * len(tasks), kwargs["protocol"],
                  stacklevel=4)
    return results


def _task_salt(protocol: SVMProtocol, kind: str, **extra) -> str:
    return content_key({"kind": kind, "protocol": protocol.to_dict(), "sklearn": sklearn.__version__,
                        "code": code_key("bgrobust.classify"), **extra})


def _class_list(classes, where: str, minimum: int = 2) -> list:
    classes = list(classes)
    if len(classes) < minimum:
        raise ValueError(f"{where}: need at least {minimum} class(es), got {classes}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"{where}: duplicate class names in {classes}")
    return classes


def _prepare(features: Mapping, keys, protocol: SVMProtocol, *, where: str) -> tuple[dict, dict]:
    """Truncated arrays and their content keys, for every key in ``keys`` (order kept)."""
    if not isinstance(features, Mapping):
        raise TypeError(f"{where}: expected a mapping, got {type(features).__name__}")
    missing = [k for k in keys if k not in features]
    if missing:
        shown = ", ".join(map(repr, missing[:6])) + (" ..." if len(missing) > 6 else "")
        raise KeyError(f"{where}: no features for {len(missing)} key(s): {shown}")
    arrays, digests, width = {}, {}, None
    for k in keys:
        X = _take(features[k], protocol, f"{where}[{k!r}]")
        if width is None:
            width = X.shape[1]
        elif X.shape[1] != width:
            raise ValueError(f"{where}[{k!r}]: {X.shape[1]} features, but other sets have {width}")
        arrays[k] = X
        digests[k] = content_key(X)
    return arrays, digests


# --------------------------------------------------------------------------- pair and triplet evaluations


def evaluate_pairs(features: Mapping[Hashable, np.ndarray], protocol: SVMProtocol | None = None, *,
                   classes: Sequence = CLASSES, n_jobs: int = 1, progress: bool = True,
                   cache_dir=None) -> pd.DataFrame:
    """The SVM for every unordered pair of classes: the base, mask and same layout.

    Parameters
    ----------
    features : mapping class -> array (n_rows, n_features)
        Features of crops whose centre cell has that class.  For "same", pass the
        features of centre-``c``-on-background-``c`` crops under key ``c``.
    protocol : SVMProtocol, optional
        Defaults to the paper's.
    classes : sequence, default :data:`~bgrobust.vocabulary.CLASSES`
        Classes to pair, in the order that fixes the pairs ``i < j`` (the paper's
        ``LOC_KEYS`` order by default: 105 pairs).
    n_jobs : int, default 1
        joblib workers.
    progress : bool, default True
        Show a tqdm bar.
    cache_dir : path, optional
        Cache every result on disk there (resumable; reused across calls).

    Returns
    -------
    DataFrame
        ``Location1, Location2, Accuracy, StdDev``, one row per pair, in the paper's
        file order.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> feats = {c: rng.normal(i, 1, (10, 3)) for i, c in enumerate(["actin", "ER", "Golgi"])}
    >>> df = evaluate_pairs(feats, SVMProtocol(n_per_class=10), classes=list(feats), progress=False)
    >>> df[["Location1", "Location2"]].values.tolist()
    [['actin', 'ER'], ['actin', 'Golgi'], ['ER', 'Golgi']]
    """
    protocol = _protocol(protocol)
    classes = _class_list(classes, "classes")
    arrays, digests = _prepare(features, classes, protocol, where="features")
    salt = _task_salt(protocol, "cv")
    pairs = list(combinations(classes, 2))
    tasks = [((a, b), content_key(salt, digests[a], digests[b])) for a, b in pairs]
    values = _run_tasks(tasks, arrays, _cv, {"protocol": protocol}, n_jobs=n_jobs, progress=progress,
                        cache_dir=cache_dir, desc="pairwise SVMs",
                        fits_per_task=protocol.n_splits)
    return pd.DataFrame({"Location1": [a for a, _ in pairs], "Location2": [b for _, b in pairs],
                         "Accuracy": [v[0] for v in values], "StdDev": [v[1] for v in values]})


def _triplets(classes, background_classes, backgrounds: str) -> list[tuple]:
    if backgrounds not in BACKGROUND_MODES:
        raise ValueError(f"backgrounds must be one of {BACKGROUND_MODES}, got {backgrounds!r}")
    return [(a, b, bg) for a, b in combinations(classes, 2) for bg in background_classes
            if backgrounds == "all" or bg not in (a, b)]


def evaluate_triplets(features: Mapping[tuple, np.ndarray], protocol: SVMProtocol | None = None, *,
                      classes: Sequence = CLASSES, background_classes: Sequence | None = None,
                      backgrounds: str = "valid", n_jobs: int = 1, progress: bool = True,
                      cache_dir=None) -> pd.DataFrame:
    """The SVM for every pair of centre classes on every background class (diff, batch).

    For pair ``(c1, c2)`` and background ``b`` the SVM separates
    ``features[(c1, b)]`` from ``features[(c2, b)]``.

    Parameters
    ----------
    features : mapping (centre, background) -> array (n_rows, n_features)
    protocol : SVMProtocol, optional
    classes : sequence, default CLASSES
        Centre classes; their order fixes the pairs ``i < j``.
    background_classes : sequence, optional
        Background classes, in row order (default: ``classes``).
    backgrounds : {"valid", "all"}, default "valid"
        ``"valid"`` computes only backgrounds ``b`` not in ``{c1, c2}`` (the ones the
        paper uses: 105 x 13 = 1365 rows for 15 classes).  ``"all"`` computes every
        background like the paper's code and files (1575 rows, including ``b == c1`` or
        ``b == c2``, which aggregation drops); it needs the ``(c, c)`` keys.
    n_jobs, progress, cache_dir
        As in :func:`evaluate_pairs`.

    Returns
    -------
    DataFrame
        ``Location1, Location2, Background, Accuracy, StdDev`` in the paper's file
        order (pair-major, background-minor), so the paper's "first valid background per
        pair" aggregation picks the same rows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> cl = ["actin", "ER", "Golgi"]
    >>> feats = {(c, b): rng.normal(i, 1, (10, 3)) for i, c in enumerate(cl) for b in cl}
    >>> df = evaluate_triplets(feats, SVMProtocol(n_per_class=10), classes=cl, progress=False)
    >>> df[["Location1", "Location2", "Background"]].values.tolist()
    [['actin', 'ER', 'Golgi'], ['actin', 'Golgi', 'ER'], ['ER', 'Golgi', 'actin']]
    """
    protocol = _protocol(protocol)
    classes = _class_list(classes, "classes")
    background_classes = classes if background_classes is None else _class_list(
        background_classes, "background_classes", minimum=1)
    rows = _triplets(classes, background_classes, backgrounds)
    needed = list(dict.fromkeys(k for a, b, bg in rows for k in ((a, bg), (b, bg))))
    arrays, digests = _prepare(features, needed, protocol, where="features")
    salt = _task_salt(protocol, "cv")
    # Run background by background so that a chunk of consecutive tasks shares its arrays.
    order = sorted(range(len(rows)), key=lambda i: background_classes.index(rows[i][2]))
    tasks = [(((rows[i][0], rows[i][2]), (rows[i][1], rows[i][2])),
              content_key(salt, digests[(rows[i][0], rows[i][2])], digests[(rows[i][1], rows[i][2])]))
             for i in order]
    values = _run_tasks(tasks, arrays, _cv, {"protocol": protocol}, n_jobs=n_jobs, progress=progress,
                        cache_dir=cache_dir, desc="triplet SVMs",
                        fits_per_task=protocol.n_splits)
    by_row = dict(zip(order, values))
    return pd.DataFrame({"Location1": [r[0] for r in rows], "Location2": [r[1] for r in rows],
                         "Background": [r[2] for r in rows],
                         "Accuracy": [by_row[i][0] for i in range(len(rows))],
                         "StdDev": [by_row[i][1] for i in range(len(rows))]})


def _centre(key):
    return key[0] if isinstance(key, tuple) else key


def evaluate_pairs_held_out(features: Mapping, groups: Mapping, protocol: SVMProtocol | None = None, *,
                            classes: Sequence = CLASSES, background_classes: Sequence | None = None,
                            backgrounds: str = "valid", test_fraction: float = 0.2, random_state: int = 0,
                            n_jobs: int = 1, progress: bool = True, cache_dir=None) -> pd.DataFrame:
    """Protein-held-out 80/20 accuracy beside the 5-fold CV, per pair (appendix D.3).

    The paper evaluates "one 80/20 split of data" whose training and test proteins
    differ.  Here every feature set (one class, or one centre class on one background)
    gets one split of its rows: :func:`held_out_proteins` holds out
    ``round(test_fraction * n_proteins)`` of its proteins, drawn with a generator seeded
    by ``random_state`` and the centre class, so a class holds out the same proteins in
    every pair (and on every background, when its sets share proteins).  Each pair then
    trains on the training rows of both classes and is scored on their test rows; the
    5-fold CV of :func:`pairwise_accuracy` runs on the same rows (the first
    ``n_per_class`` of each set).

    Parameters
    ----------
    features : mapping
        Keyed by class (pairs, like :func:`evaluate_pairs`) or by
        ``(centre, background)`` tuples (triplets, like :func:`evaluate_triplets`; the
        paper's Supp. Table 3 is the cell-free "batch" experiment).
    groups : mapping
        Same keys; for each, the protein id of every row of ``features[key]``.  The two
        sets of a pair must not share a protein.
    protocol : SVMProtocol, optional
    classes, background_classes, backgrounds
        As in :func:`evaluate_pairs` / :func:`evaluate_triplets`.
    test_fraction : float, default 0.2
    random_state : int, default 0
    n_jobs, progress, cache_dir
        As in :func:`evaluate_pairs`.

    Returns
    -------
    DataFrame
        ``Location1, Location2, [Background,] HeldOutAccuracy, Accuracy, StdDev``;
        ``Accuracy`` and ``StdDev`` are the 5-fold CV values.  Per-class layout:
        :func:`bgrobust.tables.held_out_per_class`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> cl = ["actin", "ER", "Golgi"]
    >>> feats = {c: rng.normal(2 * i, 1, (20, 3)) for i, c in enumerate(cl)}
    >>> prots = {c: [f"{c}-{k // 5}" for k in range(20)] for c in cl}
    >>> df = evaluate_pairs_held_out(feats, prots, SVMProtocol(n_per_class=20), classes=cl,
    ...                              progress=False)
    >>> list(df.columns)
    ['Location1', 'Location2', 'HeldOutAccuracy', 'Accuracy', 'StdDev']
    """
    protocol = _protocol(protocol)
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise ValueError(f"random_state must be an integer (it is part of the cache key), got {random_state!r}")
    if not (isinstance(test_fraction, numbers.Real) and 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if not isinstance(groups, Mapping):
        raise TypeError(f"groups: expected a mapping like features, got {type(groups).__name__}")
    classes = _class_list(classes, "classes")
    triplet = isinstance(features, Mapping) and bool(features) and all(isinstance(k, tuple) for k in features)
    if triplet:
        background_classes = classes if background_classes is None else _class_list(
            background_classes, "background_classes", minimum=1)
        rows = _triplets(classes, background_classes, backgrounds)
        pairs = [((a, bg), (b, bg)) for a, b, bg in rows]
    else:
        rows = list(combinations(classes, 2))
        pairs = list(rows)
    needed = list(dict.fromkeys(k for p in pairs for k in p))
    arrays, digests = _prepare(features, needed, protocol, where="features")
    missing = [k for k in needed if k not in groups]
    if missing:
        raise KeyError(f"groups: no protein ids for {len(missing)} key(s), e.g. {missing[0]!r}")
    test_key, proteins = {}, {}
    for k in needed:
        where = f"groups[{k!r}]"
        g = _as_groups(groups[k], len(np.asarray(features[k])), where)[: len(arrays[k])]
        seed = np.random.SeedSequence([int(random_state), int(content_key(str(_centre(k)), length=8), 16)])
        try:
            held = held_out_proteins(g, test_fraction, np.random.default_rng(seed))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        is_test = np.isin(g, held)
        test_key[k] = ("held-out rows", k)
        arrays[test_key[k]] = is_test
        digests[test_key[k]] = content_key(is_test)
        proteins[k] = set(g.tolist())
    for a, b in pairs:
        shared = proteins[a] & proteins[b]
        if shared:
            raise ValueError(f"groups[{a!r}] and groups[{b!r}] share protein(s) {sorted(shared)[:5]}; "
                             f"the two sets of a pair must come from different proteins")
    salt = _task_salt(protocol, "held_out")
    tasks = [((a, b, test_key[a], test_key[b]),
              content_key(salt, digests[a], digests[b], digests[test_key[a]], digests[test_key[b]]))
             for a, b in pairs]
    values = _run_tasks(tasks, arrays, _held_out_task, {"protocol": protocol}, n_jobs=n_jobs,
                        progress=progress, cache_dir=cache_dir, desc="held-out SVMs",
                        fits_per_task=protocol.n_splits + 1)
    out = {"Location1": [r[0] for r in rows], "Location2": [r[1] for r in rows]}
    if triplet:
        out["Background"] = [r[2] for r in rows]
    out.update({"HeldOutAccuracy": [v[0] for v in values], "Accuracy": [v[1] for v in values],
                "StdDev": [v[2] for v in values]})
    return pd.DataFrame(out)
