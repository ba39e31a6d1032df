"""Proportions of cells for multi-localized proteins (paper sections 3.6, 4.5, appendix E).

The paper trains two multinomial logistic-regression heads on the 64-d PIFiA features of
single-localized proteins, one on original crops and one on background-masked crops,
applies both to the cells of multi-localized proteins, turns each protein's predictions
into a distribution over the 15 classes and measures how far the two distributions are
apart with the Kullback-Leibler divergence (Figure 3A).  This module holds every step
after the features, on plain arrays and data frames:

* :class:`LogisticHead`, :class:`MultinomialLR`: ``nn.Linear(d, 15)`` trained with
  cross-entropy and Adam on shuffled mini-batches (``train_lr.py``), with an optional
  held-out split and its per-class report (appendix E.1, Supplementary Table 4).
* :func:`load_head`, :func:`load_paper_head`: read a state dict (the paper's two ``.pth``
  files or one written by :meth:`MultinomialLR.save`) into a fitted :class:`MultinomialLR`.
* :func:`protein_distributions`: per-protein predicted distributions, by counting cells
  (the paper's text), from the first crop (the paper's code) or by averaging softmaxes.
* :func:`kl_divergence`, :func:`total_variation`, :func:`uniform_baseline`,
  :func:`kl_summary`: the comparison of Figure 3A and the "exceeds the uniform
  baseline" share of section 4.5.
* :func:`true_distributions`, :func:`truth_errors`, :func:`disagreement_table`,
  :func:`error_by_covariate`: comparisons with the synthetic screen's true proportions
  (beyond the paper, which could only ask a blinded annotator).

Class orders
------------
A head's output columns follow its ``classes_``.  The paper's heads were trained on a
pandas ``category`` label, whose codes are the lexicographic order of the class strings
(:data:`~bgrobust.vocabulary.SORTED_CLASSES`, ``'ER', 'Golgi', 'actin', ...``); heads trained
here default to :data:`~bgrobust.vocabulary.CLASSES`.  :meth:`MultinomialLR.predict` returns
class names and :meth:`MultinomialLR.predict_proba_frame` returns named columns in any
requested order, so downstream code never depends on a head's internal order.

Examples
--------
>>> import numpy as np
>>> P = np.array([[0.5, 0.5, 0.0]])
>>> Q = np.array([[0.25, 0.25, 0.5]])
>>> round(float(kl_divergence(P, Q)[0]), 6)  # ln 2 (the clipped zero adds ~ -2e-9)
0.693147
>>> float(total_variation(P, Q)[0])
0.5
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from .cache import atomic_file
from .vocabulary import CLASSES, CLASS_TITLES, SORTED_CLASSES

#: Keys of the paper's state dicts (``LogisticRegressionTorch.linear``).
STATE_KEYS: tuple[str, str] = ("linear.weight", "linear.bias")
#: The clipping floor of the paper's ``kl_divergence`` (``analyze_lr.ipynb``).
EPS = 1e-10
METHODS = ("cells", "first_crop", "mean_proba")
SPLITS = ("cells", "proteins")
#: Prefix of the true-proportion columns of a synthetic screen's strain table.
TRUTH_PREFIX = "p:"
#: How :func:`macro_f1` treats a class whose F1 is undefined (no predictions or no true rows).
F1_UNDEFINED = ("zero", "skip")

__all__ = [
    "LogisticHead", "MultinomialLR", "classification_report", "compare_reports",
    "load_head", "load_paper_head", "protein_distributions", "kl_divergence",
    "total_variation", "uniform_baseline", "kl_summary", "true_distributions",
    "truth_errors", "disagreement_table", "error_by_covariate", "macro_f1", "chance_accuracy",
    "head_summary", "estimator_table", "F1_UNDEFINED",
]


# ---------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------
def _show(values, limit: int = 10) -> str:
    """A list of ids for an error message (numpy scalars shown as plain values)."""
    items = [v.item() if isinstance(v, np.generic) else v for v in list(values)]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return f"{items[:limit]}{more}"


def _class_tuple(classes, where: str) -> tuple[str, ...]:
    if isinstance(classes, str) or not isinstance(classes, Sequence | np.ndarray | pd.Index):
        raise ValueError(f"{where}: expected a sequence of class names, got {classes!r}")
    out = tuple(str(c) for c in classes)
    if len(out) < 2:
        raise ValueError(f"{where}: need at least 2 classes, got {list(out)}")
    dup = sorted({c for c in out if out.count(c) > 1})
    if dup:
        raise ValueError(f"{where}: duplicate class names {dup}")
    return out


def _features(X, where: str = "X") -> np.ndarray:
    arr = X.to_numpy() if isinstance(X, pd.DataFrame) else np.asarray(X)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: expected a numeric feature matrix, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{where}: expected a 2-d array (rows x features), got shape {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{where}: no rows")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise ValueError(f"{where}: {len(bad)} row(s) contain NaN or inf (first: row {bad[0]})")
    return arr


def _labels(y, n: int | None, where: str) -> np.ndarray:
    arr = np.asarray(y.to_numpy() if isinstance(y, pd.Series | pd.Index) else y, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"{where}: expected a 1-d array of class names, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{where}: has {len(arr)} entries but there are {n} rows")
    if pd.isna(arr).any():
        raise ValueError(f"{where}: {int(pd.isna(arr).sum())} missing label(s)")
    return arr.astype(str)


def _codes(labels: np.ndarray, classes: tuple[str, ...], where: str) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(labels.tolist()) - set(lookup))
    if unknown:
        raise ValueError(f"{where}: label(s) {_show(unknown)} are not among the classes {list(classes)}")
    return np.fromiter((lookup[v] for v in labels), dtype=np.int64, count=len(labels))


def _ids(values, n: int, where: str) -> np.ndarray:
    arr = np.asarray(values.to_numpy() if isinstance(values, pd.Series | pd.Index) else values,
                     dtype=object)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{where}: expected one id per row ({n}), got shape {arr.shape}")
    if pd.isna(arr).any():
        raise ValueError(f"{where}: {int(pd.isna(arr).sum())} missing id(s)")
    return arr


def _rng(random_state) -> np.random.Generator:
    if random_state is None or isinstance(random_state, numbers.Integral | np.random.Generator):
        return np.random.default_rng(random_state)
    raise ValueError(f"random_state: expected an int, None or a numpy Generator, got {random_state!r}")


# ---------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------
class LogisticHead(nn.Module):
    """A single linear layer; its state dict has the paper's keys ``linear.weight/bias``.

    Parameters
    ----------
    n_features : int, default 64
        Input dimension (the 64-d PIFiA embedding in the paper).
    n_classes : int, default 15

    Examples
    --------
    >>> head = LogisticHead(64, 15)
    >>> sorted(head.state_dict())
    ['linear.bias', 'linear.weight']
    """

    def __init__(self, n_features: int = 64, n_classes: int = 15):
        super().__init__()
        self.linear = nn.Linear(n_features, n_classes)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """PyTorch's default ``nn.Linear`` initialisation, U(-1/sqrt(d), 1/sqrt(d)), drawn
        from ``generator`` instead of the global random state."""
        bound = 1.0 / np.sqrt(self.linear.in_features)
        with torch.no_grad():
            nn.init.uniform_(self.linear.weight, -bound, bound, generator=generator)
            nn.init.uniform_(self.linear.bias, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, ``(n, n_classes)``."""
        return self.linear(x)


def _stratified_split(codes: np.ndarray, groups: np.ndarray | None, test_fraction: float,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Train/test row indices: per class, ``round(test_fraction * n)`` units (rows, or the
    proteins in ``groups``) -- at least one and at most all but one when the class has two
    or more -- go to the test set."""
    if test_fraction == 0:
        return np.arange(len(codes)), np.array([], dtype=np.int64)
    units = np.arange(len(codes)) if groups is None else groups
    is_test = np.zeros(len(codes), dtype=bool)
    for c in np.unique(codes):
        members = np.unique(units[codes == c])
        n = len(members)
        k = 0 if n < 2 else min(max(1, int(round(test_fraction * n))), n - 1)
        chosen = rng.permutation(members)[:k]
        is_test |= (codes == c) & np.isin(units, chosen)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


class MultinomialLR(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression as in the paper (``train_lr.py``), reproducibly.

    ``nn.Linear(d, n_classes)`` trained with ``nn.CrossEntropyLoss`` and ``Adam(lr)``
    (no weight decay, no feature standardisation, no class balancing) on mini-batches
    reshuffled every epoch -- the paper's section 3.6 ("Adam optimizer, a learning rate of
    1e-3, and a cross-entropy loss ... 5 epochs"; batch size 128 in the code).  Unlike the
    original script, which sets no seed, every random choice (the held-out split, the
    initial weights, the batch order) comes from ``random_state``.

    Parameters
    ----------
    epochs : int, default 5
    batch_size : int, default 128
    lr : float, default 1e-3
    test_fraction : float in [0, 1), default 0.2
        Share held out before training (appendix E.1: "holding out 20% of the
        single-localization data as a test set").  ``0`` trains on every row, as
        ``train_lr.py`` does.
    split : {"cells", "proteins"}, default "cells"
        ``"cells"``: the held-out rows are drawn per class (stratified), the literal
        reading of "20% of the data".  ``"proteins"``: whole proteins (``groups`` in
        :meth:`fit`) are held out, per class, so no protein has cells on both sides.
    classes : sequence of str, default :data:`~bgrobust.vocabulary.CLASSES`
        The output order of the head (``classes_``).  Every class must occur in the
        training labels.
    random_state : int, numpy Generator or None, default 0
        ``None`` draws fresh entropy; a Generator is consumed (two fits differ).
    early_stopping : bool, default False
        ``False``: train exactly ``epochs`` epochs (the paper's 5).  ``True``: ``epochs`` is
        the most epochs; after each one the loss on the held-out rows is measured, training
        stops once it has not improved for ``patience`` epochs and the weights of the best
        epoch are kept (needs ``test_fraction > 0``).  The held-out rows then choose the
        stopping epoch *and* give :attr:`report_`, so the report is slightly optimistic.
    patience : int, default 10
        Epochs without a better held-out loss before stopping (with ``early_stopping``).
    n_threads : int or None, default 1
        Torch CPU threads during :meth:`fit` (restored afterwards).  One thread is the
        fastest for a 64 x 15 layer: more threads only add synchronisation per tiny step.
        ``None`` keeps torch's setting.

    Attributes
    ----------
    classes_ : tuple of str
    n_features_in_ : int
    head_ : LogisticHead
    history_ : pandas.DataFrame
        One row per epoch: ``epoch``, ``steps`` (optimizer steps so far), ``train_loss``
        (mean batch loss), ``test_loss``, ``test_accuracy`` (NaN without a held-out set).
    best_epoch_, n_steps_ : int
        The epoch whose weights the head holds (the last one without early stopping) and
        the optimizer steps up to it.
    best_test_loss_ : float
        The held-out loss of that epoch (NaN without a held-out set).
    stopped_early_ : bool
        Whether training stopped before ``epochs`` for want of improvement.
    report_ : pandas.DataFrame or None
        :func:`classification_report` of the held-out rows (``None`` without them).
    train_index_, test_index_ : ndarray of int or None
        Row positions of the two parts (``None`` for a head read from a file).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(m, 0.3, (40, 2)) for m in (0, 2)])
    >>> y = ["ER"] * 40 + ["nucleus"] * 40
    >>> lr = MultinomialLR(epochs=20, batch_size=16, lr=0.05, classes=("ER", "nucleus"))
    >>> lr.fit(X, y).score(X, y) > 0.9
    True
    >>> lr.predict([[2.0, 2.0]])
    array(['nucleus'], dtype='<U7')
    """

    def __init__(self, epochs: int = 5, batch_size: int = 128, lr: float = 1e-3,
                 test_fraction: float = 0.2, split: str = "cells", classes=CLASSES,
                 random_state=0, n_threads: int | None = 1, early_stopping: bool = False,
                 patience: int = 10):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.test_fraction = test_fraction
        self.split = split
        self.classes = classes
        self.random_state = random_state
        self.n_threads = n_threads
        self.early_stopping = early_stopping
        self.patience = patience

    # -- checks --------------------------------------------------------------------------
    def _check_params(self) -> tuple[str, ...]:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, numbers.Real) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.test_fraction, numbers.Real) and 0 <= self.test_fraction < 1):
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction!r}")
        if self.n_threads is not None and not (isinstance(self.n_threads, numbers.Integral)
                                               and self.n_threads >= 1):
            raise ValueError(f"n_threads must be a positive integer or None, got {self.n_threads!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise ValueError(f"early_stopping must be True or False, got {self.early_stopping!r}")
        if not isinstance(self.patience, numbers.Integral) or isinstance(self.patience, bool) or self.patience < 1:
            raise ValueError(f"patience must be a positive integer, got {self.patience!r}")
        if self.early_stopping and self.test_fraction == 0:
            raise ValueError("early_stopping=True needs held-out rows to stop on: set test_fraction > 0")
        return _class_tuple(self.classes, "classes")

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise RuntimeError("this MultinomialLR is not fitted yet; call fit() or load_head()")

    # -- training ------------------------------------------------------------------------
    def fit(self, X, y, groups=None) -> "MultinomialLR":
        """Train on features ``X`` (n, d) and class names ``y`` (n,).

        Parameters
        ----------
        X : array-like or DataFrame, shape (n, d)
        y : array-like of str, shape (n,)
            Class names; each must be in ``classes`` and each of ``classes`` must occur.
        groups : array-like, shape (n,), optional
            Protein id of each row; required with ``split="proteins"`` (each protein must
            have a single class), unused otherwise.

        Returns
        -------
        self
        """
        classes = self._check_params()
        X = _features(X, "X")
        labels = _labels(y, len(X), "y")
        codes = _codes(labels, classes, "y")
        missing = [c for i, c in enumerate(classes) if not (codes == i).any()]
        if missing:
            raise ValueError(f"y: class(es) {missing} have no training rows; train on data that "
                             f"covers every class or pass classes=... without them")
        g = None
        if self.split == "proteins":
            if groups is None:
                raise ValueError("groups: split='proteins' needs the protein id of every row")
            g = _ids(groups, len(X), "groups").astype(str)
            per_protein = pd.Series(codes).groupby(g).nunique()
            shared = per_protein.index[per_protein > 1]
            if len(shared):
                raise ValueError(f"groups: protein(s) {_show(shared, 5)} have rows of more than one class; "
                                 f"split='proteins' needs one class per protein")
        rng = _rng(self.random_state)
        torch_seed = int(rng.integers(2**63 - 1))
        train, test = _stratified_split(codes, g, float(self.test_fraction), rng)
        saved_threads = torch.get_num_threads()
        if self.n_threads is not None:
            torch.set_num_threads(int(self.n_threads))
        try:
            head, rows, best = self._train(X, codes, train, test, classes, torch_seed)
        finally:
            torch.set_num_threads(saved_threads)
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self.head_ = head
        self.history_ = pd.DataFrame(rows)
        best_row = self.history_.iloc[best]
        self.best_epoch_ = int(best_row["epoch"])
        self.n_steps_ = int(best_row["steps"])
        self.best_test_loss_ = float(best_row["test_loss"])
        self.stopped_early_ = bool(len(rows) < self.epochs)
        self.train_index_, self.test_index_ = train, test
        self.report_ = None
        if len(test):
            self.report_ = classification_report(labels[test], self.predict(X[test]), classes)
        return self

    def _train(self, X, codes, train, test, classes, torch_seed):
        gen = torch.Generator().manual_seed(torch_seed)
        head = LogisticHead(X.shape[1], len(classes))
        head.reset_parameters(gen)
        optimizer = torch.optim.Adam(head.parameters(), lr=float(self.lr))
        loss_fn = nn.CrossEntropyLoss()
        Xtr, ytr = torch.from_numpy(X[train]), torch.from_numpy(codes[train])
        Xte, yte = torch.from_numpy(X[test]), torch.from_numpy(codes[test])
        rows = []
        steps = 0
        best, best_loss, best_state = len(rows), np.inf, None
        for epoch in range(1, self.epochs + 1):
            head.train()
            order = torch.randperm(len(Xtr), generator=gen)
            total, batches = 0.0, 0
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                optimizer.zero_grad()
                loss = loss_fn(head(Xtr[idx]), ytr[idx])
                loss.backward()
                optimizer.step()
                total += float(loss.item())
                batches += 1
                steps += 1
            test_loss = test_acc = np.nan
            if len(test):
                head.eval()
                with torch.no_grad():
                    logits = head(Xte)
                    test_loss = float(loss_fn(logits, yte))
                    test_acc = float((logits.argmax(1) == yte).float().mean())
            rows.append({"epoch": epoch, "steps": steps, "train_loss": total / batches,
                         "test_loss": test_loss, "test_accuracy": test_acc})
            if not self.early_stopping:
                continue
            if test_loss < best_loss:
                best, best_loss = len(rows) - 1, test_loss
                best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
            elif len(rows) - 1 - best >= self.patience:
                break
        if self.early_stopping and best_state is not None:
            head.load_state_dict(best_state)
        else:
            best = len(rows) - 1
        head.eval()
        return head, rows, best

    # -- state dicts ---------------------------------------------------------------------
    @classmethod
    def from_state_dict(cls, state_dict: Mapping, classes=CLASSES, *, source: str = "state dict",
                        n_features: int | None = None, **params) -> "MultinomialLR":
        """A fitted estimator from a ``{'linear.weight', 'linear.bias'}`` state dict.

        ``classes`` names the head's outputs in order; ``source`` names the origin in
        error messages; ``n_features`` (optional) checks the input dimension; ``params``
        go to the constructor.
        """
        classes = _class_tuple(classes, "classes")
        if not isinstance(state_dict, Mapping):
            raise ValueError(f"{source}: expected a state dict, got {type(state_dict).__name__}")
        keys = sorted(map(str, state_dict))
        if keys != sorted(STATE_KEYS):
            raise ValueError(f"{source}: expected exactly the keys {list(STATE_KEYS)}, got {keys}")
        weight, bias = state_dict["linear.weight"], state_dict["linear.bias"]
        if not (isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)):
            raise ValueError(f"{source}: linear.weight and linear.bias must be tensors")
        k = len(classes)
        if weight.ndim != 2 or weight.shape[0] != k or bias.shape != (k,):
            raise ValueError(f"{source}: expected linear.weight ({k}, d) and linear.bias ({k},) for "
                             f"{k} classes, got {tuple(weight.shape)} and {tuple(bias.shape)}")
        if n_features is not None and weight.shape[1] != n_features:
            raise ValueError(f"{source}: linear.weight has {weight.shape[1]} input features, "
                             f"expected {n_features}")
        if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
            raise ValueError(f"{source}: weights contain NaN or inf")
        model = cls(classes=classes, **params)
        head = LogisticHead(weight.shape[1], k)
        head.load_state_dict({"linear.weight": weight.float(), "linear.bias": bias.float()})
        head.eval()
        model.classes_ = classes
        model.n_features_in_ = int(weight.shape[1])
        model.head_ = head
        model.history_ = pd.DataFrame(columns=["epoch", "steps", "train_loss", "test_loss", "test_accuracy"])
        model.best_epoch_ = model.n_steps_ = 0
        model.best_test_loss_ = float("nan")
        model.stopped_early_ = False
        model.report_ = None
        model.train_index_ = model.test_index_ = None
        return model

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The head's weights, with the paper's keys (copies)."""
        self._check_fitted()
        return {k: v.detach().clone() for k, v in self.head_.state_dict().items()}

    def save(self, path) -> Path:
        """Write the state dict with ``torch.save`` (the paper's ``.pth`` format), atomically.

        The class order is not stored (as in the paper's files): read it back with
        ``load_head(path, classes=model.classes_)``.
        """
        path = Path(path)
        with atomic_file(path) as tmp:
            torch.save(self.state_dict(), tmp)
        return path

    # -- prediction ----------------------------------------------------------------------
    @property
    def coef_(self) -> np.ndarray:
        """``(n_classes, d)`` weights, rows in ``classes_`` order."""
        self._check_fitted()
        return self.head_.linear.weight.detach().numpy().copy()

    @property
    def intercept_(self) -> np.ndarray:
        """``(n_classes,)`` biases in ``classes_`` order."""
        self._check_fitted()
        return self.head_.linear.bias.detach().numpy().copy()

    def decision_function(self, X) -> np.ndarray:
        """Logits ``(n, n_classes)``, columns in ``classes_`` order."""
        self._check_fitted()
        X = _features(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X: has {X.shape[1]} features, the head expects {self.n_features_in_}")
        out = []
        with torch.no_grad():
            for start in range(0, len(X), 65536):
                out.append(self.head_(torch.from_numpy(X[start:start + 65536])).numpy())
        return np.concatenate(out)

    def predict_proba(self, X) -> np.ndarray:
        """Softmax probabilities ``(n, n_classes)``, columns in ``classes_`` order."""
        logits = torch.from_numpy(self.decision_function(X))
        return torch.softmax(logits, dim=1).numpy()

    def predict_proba_frame(self, X, order=CLASSES, index=None) -> pd.DataFrame:
        """Probabilities as a DataFrame with class-name columns in ``order``.

        ``order`` must be a permutation of ``classes_`` (default: the book's
        :data:`~bgrobust.vocabulary.CLASSES`, whatever the head's internal order).
        """
        self._check_fitted()
        order = _class_tuple(order, "order")
        if sorted(order) != sorted(self.classes_):
            raise ValueError(f"order: must be a permutation of the head's classes {list(self.classes_)}, "
                             f"got {list(order)}")
        frame = pd.DataFrame(self.predict_proba(X), columns=list(self.classes_), index=index)
        return frame[list(order)]

    def predict(self, X) -> np.ndarray:
        """Class names of the most probable class, ``(n,)``."""
        return np.asarray(self.classes_)[self.decision_function(X).argmax(axis=1)]


def load_head(path, classes, *, n_features: int | None = None, **params) -> MultinomialLR:
    """Read a state dict written by ``torch.save`` into a fitted :class:`MultinomialLR`.

    The file must hold exactly ``linear.weight (k, d)`` and ``linear.bias (k,)`` with
    ``k = len(classes)``; it is read with ``torch.load(weights_only=True)``.  Our own heads
    (:meth:`MultinomialLR.save`) and the paper's go through this same function.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable state dict or has other keys or shapes (the message
        names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a bad file
        raise ValueError(f"{path}: not a readable torch state dict ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    return MultinomialLR.from_state_dict(state, classes, source=str(path), n_features=n_features,
                                         **params)


def load_paper_head(path, classes=SORTED_CLASSES, *, n_features: int | None = 64) -> MultinomialLR:
    """One of the paper's trained heads (``trained_models/{original,masked}_crops_model.pth``).

    The files store no class order.  ``train_lr.py`` turns the label into a pandas
    ``category``, whose codes follow the lexicographic order of the strings, so output
    ``i`` is ``SORTED_CLASSES[i]`` (``'ER', 'Golgi', 'actin', ...``).  The biases agree:
    the two largest are ``cytoplasm`` and ``nucleus``, the largest single-localization
    classes of Huh et al. (2003), in both heads.

    Examples
    --------
    >>> # SHARED_DATA: the folder of the real third-party data (``../shared/data`` beside the checkout)
    >>> f = SHARED_DATA / "paper-results/pifia_logistic_regression/trained_models/original_crops_model.pth"
    >>> load_paper_head(f).classes_[:2] if f.exists() else ('ER', 'Golgi')
    ('ER', 'Golgi')
    """
    return load_head(path, classes, n_features=n_features, test_fraction=0.0)


# ---------------------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------------------
def classification_report(y_true, y_pred, classes=CLASSES) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support (Supplementary Table 4, one model).

    Parameters
    ----------
    y_true, y_pred : array-like of str, same length
    classes : sequence of str
        The rows, in this order (pass :data:`~bgrobust.vocabulary.SORTED_CLASSES` for the
        paper's row order).  Labels outside ``classes`` raise.

    Returns
    -------
    pandas.DataFrame
        Index ``class``; columns ``precision``, ``recall``, ``f1`` (NaN where undefined:
        no predictions, no true rows, or both zero) and ``support`` (true rows).

    Examples
    --------
    >>> rep = classification_report(["ER", "ER", "Golgi"], ["ER", "Golgi", "Golgi"], ["ER", "Golgi"])
    >>> rep[["precision", "recall", "support"]].to_dict("index")
    {'ER': {'precision': 1.0, 'recall': 0.5, 'support': 2}, 'Golgi': {'precision': 0.5, 'recall': 1.0, 'support': 1}}
    """
    classes = _class_tuple(classes, "classes")
    t = _codes(_labels(y_true, None, "y_true"), classes, "y_true")
    p = _codes(_labels(y_pred, len(t), "y_pred"), classes, "y_pred")
    k = len(classes)
    tp = np.bincount(t[t == p], minlength=k).astype(float)
    support = np.bincount(t, minlength=k)
    predicted = np.bincount(p, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        f1 = 2 * precision * recall / (precision + recall)
    return pd.DataFrame({"precision": precision, "recall": recall, "f1": f1, "support": support},
                        index=pd.Index(classes, name="class"))


def compare_reports(reports: Mapping[str, pd.DataFrame], *, display_names: bool = True,
                    metrics: Sequence[str] = ("precision", "recall", "f1")) -> pd.DataFrame:
    """Side-by-side reports, e.g. ``{"Original-Crop Model": r1, "Masked-Crop Model": r2}``.

    Rows follow the first report; columns are ``(model, metric)``.  With
    ``display_names`` the rows use the paper's spelling (``Bud neck``, ``ER``).
    """
    if not reports:
        raise ValueError("reports: empty mapping")
    first = next(iter(reports.values())).index
    parts = {}
    for name, rep in reports.items():
        missing = [m for m in metrics if m not in rep.columns]
        if missing:
            raise ValueError(f"reports[{name!r}]: missing column(s) {missing}")
        if sorted(rep.index) != sorted(first):
            raise ValueError(f"reports[{name!r}]: classes differ from the first report's")
        parts[name] = rep.loc[first, list(metrics)]
    out = pd.concat(parts, axis=1)
    if display_names:
        out.index = pd.Index([CLASS_TITLES.get(c, c) for c in out.index], name="Localization")
    return out


def macro_f1(report: pd.DataFrame, undefined: str = "zero") -> float:
    """Mean F1 over the classes of a :func:`classification_report`.

    Parameters
    ----------
    report : DataFrame
        With an ``f1`` column (NaN where F1 is undefined: the class was never predicted,
        has no true rows, or precision and recall are both 0).
    undefined : {"zero", "skip"}
        ``"zero"`` (default, scikit-learn's ``zero_division=0``): an undefined F1 counts as 0,
        so a head that never predicts a class is penalised for it. ``"skip"`` averages the
        defined values only, which flatters such a head.

    Examples
    --------
    >>> rep = classification_report(["ER", "ER", "Golgi", "actin"], ["ER", "ER", "ER", "actin"],
    ...                             ["ER", "Golgi", "actin"])
    >>> round(macro_f1(rep), 3), round(macro_f1(rep, "skip"), 3)
    (0.6, 0.9)
    """
    if undefined not in F1_UNDEFINED:
        raise ValueError(f"macro_f1: undefined must be one of {F1_UNDEFINED}, got {undefined!r}")
    if not isinstance(report, pd.DataFrame) or "f1" not in report.columns:
        raise ValueError("macro_f1: report must be a DataFrame with an 'f1' column (classification_report)")
    f1 = report["f1"].astype(float)
    if len(f1) == 0:
        raise ValueError("macro_f1: empty report")
    if undefined == "zero":
        return float(f1.fillna(0.0).mean())
    if f1.isna().all():
        return float("nan")
    return float(f1.mean())


def chance_accuracy(labels) -> float:
    """Accuracy of always guessing the most frequent class: the chance level of a head.

    Examples
    --------
    >>> chance_accuracy(["ER", "ER", "ER", "actin"])
    0.75
    """
    labels = _labels(labels, None, "labels")
    if len(labels) == 0:
        raise ValueError("chance_accuracy: no labels")
    return float(pd.Series(labels).value_counts(normalize=True).iloc[0])


def head_summary(heads: Mapping[str, "MultinomialLR"], alpha: float = 0.05) -> pd.DataFrame:
    """How each fitted head trained and how it does on its held-out rows, against chance.

    Parameters
    ----------
    heads : mapping name -> fitted :class:`MultinomialLR`
        Fitted with a held-out part (``test_fraction > 0``).
    alpha : float in (0, 1)
        A head beats chance when a one-sided binomial test of its held-out correct count
        against the chance level gives ``p < alpha``.

    Returns
    -------
    DataFrame
        Index head; ``epochs_run``, ``best_epoch``, ``steps`` (optimizer steps to the kept
        weights), ``stopped_early``, ``held_out_loss``, ``held_out_accuracy``, ``chance``
        (the held-out share of the most frequent class: the accuracy of always guessing it),
        ``p_vs_chance`` (the binomial test), ``beats_chance``, ``macro_f1`` (undefined F1 = 0) and ``macro_f1_defined``
        (undefined skipped), all from the head's held-out :attr:`~MultinomialLR.report_`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(m, 0.3, (40, 2)) for m in (0, 2)])
    >>> y = ["ER"] * 40 + ["nucleus"] * 40
    >>> h = MultinomialLR(epochs=200, batch_size=16, lr=0.05, classes=("ER", "nucleus"),
    ...                   early_stopping=True, patience=5).fit(X, y)
    >>> row = head_summary({"h": h}).loc["h"]
    >>> bool(row["beats_chance"]), float(row["chance"]), int(row["steps"]) == 4 * int(row["best_epoch"])
    (True, 0.5, True)
    """
    from scipy.stats import binomtest

    if not heads:
        raise ValueError("head_summary: no heads")
    if not (isinstance(alpha, numbers.Real) and 0 < alpha < 1):
        raise ValueError(f"head_summary: alpha must be in (0, 1), got {alpha!r}")
    rows = {}
    for name, head in heads.items():
        head._check_fitted()
        rep = head.report_
        if rep is None or int(rep["support"].sum()) == 0:
            raise ValueError(f"head_summary: head {name!r} has no held-out rows (fit with test_fraction > 0)")
        support = rep["support"].to_numpy(float)
        correct = (rep["recall"].fillna(0.0).to_numpy(float) * support).sum()
        acc = float(correct / support.sum())
        chance = float(support.max() / support.sum())
        n = int(support.sum())
        p = float(binomtest(int(round(correct)), n, chance, alternative="greater").pvalue) if chance < 1 else 1.0
        rows[name] = {"epochs_run": int(len(head.history_)), "best_epoch": head.best_epoch_,
                      "steps": head.n_steps_, "stopped_early": head.stopped_early_,
                      "held_out_loss": head.best_test_loss_, "held_out_accuracy": acc, "chance": chance,
                      "p_vs_chance": p, "beats_chance": bool(p < alpha), "macro_f1": macro_f1(rep, "zero"),
                      "macro_f1_defined": macro_f1(rep, "skip")}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "head"
    return out


def estimator_table(original: Mapping[str, pd.DataFrame], masked: Mapping[str, pd.DataFrame],
                    eps: float = EPS) -> pd.DataFrame:
    """The KL between the two heads' distributions, one row per estimator of a distribution.

    Parameters
    ----------
    original, masked : mapping method -> DataFrame proteins x classes
        :func:`protein_distributions` of the original-crops and masked-crops heads, by the
        same methods (e.g. ``"first_crop"``, the paper code's estimator and so the one to set
        beside the published KL; ``"cells"``, the paper text's; ``"mean_proba"``).
    eps : float
        The paper's clipping floor.

    Returns
    -------
    DataFrame
        Index method; ``n_proteins``, ``kl_median`` and ``kl_mean`` (the paper's KL:
        clipped, not renormalised), ``kl_renorm_median`` (clipped and renormalised),
        ``baseline_median`` (KL of the original head to the uniform distribution) and
        ``share_exceeds`` (share of proteins whose KL exceeds their baseline, section 4.5).

    Examples
    --------
    >>> P = pd.DataFrame({"ER": [0.9, 0.5], "actin": [0.1, 0.5]}, index=["a", "b"])
    >>> Q = pd.DataFrame({"ER": [0.5, 0.5], "actin": [0.5, 0.5]}, index=["a", "b"])
    >>> t = estimator_table({"cells": P}, {"cells": Q})
    >>> round(float(t.loc["cells", "kl_mean"]), 4), float(t.loc["cells", "share_exceeds"])
    (0.184, 0.0)
    """
    if not original or sorted(original) != sorted(masked):
        raise ValueError(f"estimator_table: original and masked need the same methods, got "
                         f"{sorted(original)} and {sorted(masked)}")
    rows = {}
    for method in original:
        P, Q = original[method], masked[method]
        kl = kl_divergence(P, Q, eps)
        base = uniform_baseline(P, eps)
        summary = kl_summary(kl, base)
        rows[method] = {"n_proteins": int(summary["count"]), "kl_median": float(summary["50%"]),
                        "kl_mean": float(summary["mean"]),
                        "kl_renorm_median": float(np.median(kl_divergence(P, Q, eps, renormalize_after_clip=True))),
                        "baseline_median": float(np.median(base)), "share_exceeds": float(summary["share_exceeds"])}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "method"
    return out


# ---------------------------------------------------------------------------------------
# per-protein distributions
# ---------------------------------------------------------------------------------------
def protein_distributions(values, proteins, classes=CLASSES, method: str = "cells", *,
                          valid=None, index=None, on_empty: str = "raise") -> pd.DataFrame:
    """Each protein's predicted distribution over the classes.

    Parameters
    ----------
    values : array-like (n, k), DataFrame, or array-like of str (n,)
        Per-cell softmax probabilities (columns in ``classes`` order, or a DataFrame with
        class-name columns in any order), or per-cell predicted class names (``"cells"``
        only).
    proteins : array-like, shape (n,)
        The protein (strain) of each cell.
    classes : sequence of str, default CLASSES
        The class names: the columns of an array ``values`` and the output columns.
    method : {"cells", "first_crop", "mean_proba"}
        ``"cells"``: share of the protein's cells whose most probable class is each class
        (section 4.5: the classifier "is used to assign localization labels to individual
        cells, and then aggregated to estimate the proportion of cells in each
        compartment").  ``"first_crop"``: the softmax of the protein's first row in the
        given order (``analyze_lr.ipynb`` keeps one row per yORF with
        ``drop_duplicates``).  ``"mean_proba"``: the mean softmax over its cells.
    valid : array-like of bool, shape (n,), optional
        Rows to use (e.g. the crop table's ``valid``); the others are ignored.
    index : sequence, optional
        The proteins to report, in this order (default: every protein in ``proteins``, in
        order of first appearance).
    on_empty : {"raise", "drop"}
        What to do with a protein of ``index`` (or ``proteins``) with no valid row.

    Returns
    -------
    pandas.DataFrame
        Proteins x classes; every row sums to 1.

    Examples
    --------
    >>> proba = np.array([[0.6, 0.4], [0.2, 0.8], [0.9, 0.1]])
    >>> protein_distributions(proba, ["A", "A", "B"], ["ER", "Golgi"], "cells").to_dict("index")
    {'A': {'ER': 0.5, 'Golgi': 0.5}, 'B': {'ER': 1.0, 'Golgi': 0.0}}
    >>> protein_distributions(proba, ["A", "A", "B"], ["ER", "Golgi"], "first_crop").loc["A"].tolist()
    [0.6, 0.4]
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if on_empty not in ("raise", "drop"):
        raise ValueError(f"on_empty must be 'raise' or 'drop', got {on_empty!r}")
    classes = _class_tuple(classes, "classes")
    k = len(classes)
    if isinstance(values, pd.DataFrame):
        cols = [str(c) for c in values.columns]
        if sorted(cols) != sorted(classes):
            raise ValueError(f"values: columns {cols} are not a permutation of classes {list(classes)}")
        values = values.set_axis(cols, axis=1)[list(classes)].to_numpy()
    arr = np.asarray(values)
    if arr.ndim == 1:
        if method != "cells":
            raise ValueError(f"values: method={method!r} needs per-cell probabilities (n, {k}); "
                             f"class labels only allow method='cells'")
        codes = _codes(_labels(arr, None, "values"), classes, "values")
        proba = None
    elif arr.ndim == 2:
        if arr.shape[1] != k:
            raise ValueError(f"values: has {arr.shape[1]} columns but {k} classes were given")
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"values: expected numeric probabilities, got dtype {arr.dtype}")
        proba = arr.astype(float)
        if not np.isfinite(proba).all() or (proba < 0).any():
            raise ValueError("values: probabilities must be finite and non-negative")
        codes = proba.argmax(axis=1)
    else:
        raise ValueError(f"values: expected 1-d labels or a 2-d (n, {k}) array, got shape {arr.shape}")
    n = len(codes)
    prot = _ids(proteins, n, "proteins")
    keep = np.ones(n, dtype=bool)
    if valid is not None:
        keep = np.asarray(valid)
        if keep.ndim != 1 or len(keep) != n or keep.dtype != bool:
            raise ValueError(f"valid: expected a boolean array of length {n}, got shape "
                             f"{keep.shape} and dtype {keep.dtype}")
    wanted = pd.unique(prot) if index is None else np.asarray(list(index), dtype=object)
    if len(wanted) == 0:
        raise ValueError("index: no proteins requested")
    present = set(prot[keep])
    empty = [p for p in wanted if p not in present]
    if empty and on_empty == "raise":
        raise ValueError(f"protein(s) {_show(empty)} have no valid cells; pass "
                         f"on_empty='drop' to leave them out")
    wanted = [p for p in wanted if p in present]
    prot, codes = prot[keep], codes[keep]
    if proba is not None:
        proba = proba[keep]
    frame = pd.DataFrame({"protein": prot, "code": codes})
    if method == "cells":
        counts = pd.crosstab(frame["protein"], frame["code"]).reindex(columns=range(k), fill_value=0)
        out = counts.div(counts.sum(axis=1), axis=0)
    elif method == "first_crop":
        first = frame.reset_index(drop=True).drop_duplicates("protein")
        out = pd.DataFrame(proba[first.index], index=first["protein"].to_numpy())
        out = out.div(out.sum(axis=1), axis=0)
    else:
        out = pd.DataFrame(proba).groupby(prot).mean()
        out = out.div(out.sum(axis=1), axis=0)
    out = out.reindex(wanted).astype(float)
    out.columns = list(classes)
    out.index.name = "protein"
    return out


def true_distributions(strains: pd.DataFrame, classes=CLASSES, *, kinds=("multi",)) -> pd.DataFrame:
    """The true proportions of a synthetic screen's strains (columns ``p:<class>``).

    Parameters
    ----------
    strains : DataFrame
        ``Screen.strains``: ``strain``, ``kind`` and one ``p:<class>`` column per class.
    classes : sequence of str
        Output column order.
    kinds : sequence of str or None
        Keep strains of these kinds (default the multi-localized ones); ``None`` keeps all.

    Returns
    -------
    pandas.DataFrame
        Index ``protein`` (the strain id), columns ``classes``.
    """
    classes = _class_tuple(classes, "classes")
    cols = [TRUTH_PREFIX + c for c in classes]
    missing = [c for c in ["strain", *cols] if c not in strains.columns]
    if missing:
        raise ValueError(f"strains: missing column(s) {missing[:5]}; only a synthetic screen "
                         f"stores the true proportions")
    rows = strains
    if kinds is not None:
        if "kind" not in strains.columns:
            raise ValueError("strains: no 'kind' column to select kinds by")
        rows = strains[strains["kind"].isin(list(kinds))]
    out = rows.set_index("strain")[cols].astype(float)
    out.columns = list(classes)
    out.index.name = "protein"
    return out


# ---------------------------------------------------------------------------------------
# divergences
# ---------------------------------------------------------------------------------------
def _dist(P, where: str) -> tuple[np.ndarray, pd.Index | None, list | None]:
    index = columns = None
    if isinstance(P, pd.Series):  # one distribution, class names in its index
        columns = [str(c) for c in P.index]
        P = P.to_numpy()
    elif isinstance(P, pd.DataFrame):
        index, columns = P.index, [str(c) for c in P.columns]
        P = P.to_numpy()
    arr = np.asarray(P)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: expected numeric distributions, got dtype {arr.dtype}")
    arr = arr.astype(float)
    if arr.ndim not in (1, 2) or arr.shape[-1] < 2:
        raise ValueError(f"{where}: expected a distribution (k,) or rows of distributions (n, k) "
                         f"with k >= 2, got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{where}: entries must be finite and non-negative")
    sums = arr.sum(axis=-1)
    if (sums <= 0).any():
        bad = np.flatnonzero(np.atleast_1d(sums <= 0))[0]
        raise ValueError(f"{where}: row {bad if index is None else index[bad]!r} sums to 0")
    return arr, index, columns


def _pair(P, Q, names=("P", "Q")) -> tuple[np.ndarray, np.ndarray, pd.Index | None]:
    """Aligned (normalised) arrays; frames are matched by column name and protein index."""
    if isinstance(P, pd.DataFrame) and isinstance(Q, pd.DataFrame):
        if sorted(map(str, P.columns)) != sorted(map(str, Q.columns)):
            raise ValueError(f"{names[0]}, {names[1]}: different class columns "
                             f"{list(P.columns)} vs {list(Q.columns)}")
        only_p = P.index.difference(Q.index)
        only_q = Q.index.difference(P.index)
        if len(only_p) or len(only_q):
            raise ValueError(f"{names[0]}, {names[1]}: proteins differ: {_show(only_p, 5)} only in "
                             f"{names[0]}, {_show(only_q, 5)} only in {names[1]} (select the "
                             f"common proteins first)")
        if P.index.has_duplicates:
            raise ValueError(f"{names[0]}: duplicate protein index")
        Q = Q.set_axis([str(c) for c in Q.columns], axis=1).loc[P.index, [str(c) for c in P.columns]]
    elif isinstance(P, pd.Series) and isinstance(Q, pd.Series):
        if sorted(map(str, P.index)) != sorted(map(str, Q.index)):
            raise ValueError(f"{names[0]}, {names[1]}: different classes {list(P.index)} vs {list(Q.index)}")
        Q = Q.set_axis([str(c) for c in Q.index]).loc[[str(c) for c in P.index]]
    p, index, _ = _dist(P, names[0])
    q, index_q, _ = _dist(Q, names[1])
    if p.shape != q.shape:
        raise ValueError(f"{names[0]}, {names[1]}: shapes differ, {p.shape} vs {q.shape}")
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    return p, q, index if index is not None else index_q


def _wrap(values: np.ndarray, index, name: str):
    if values.ndim == 0:
        return float(values)
    if index is not None:
        return pd.Series(values, index=index, name=name)
    return values


def _kl(p: np.ndarray, q: np.ndarray, eps: float, renormalize_after_clip: bool) -> np.ndarray:
    if not (isinstance(eps, numbers.Real) and 0 < eps < 1):
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    p, q = np.clip(p, eps, 1.0), np.clip(q, eps, 1.0)
    if renormalize_after_clip:
        p = p / p.sum(axis=-1, keepdims=True)
        q = q / q.sum(axis=-1, keepdims=True)
    return np.sum(p * np.log(p / q), axis=-1)


def kl_divergence(P, Q, eps: float = EPS, *, renormalize_after_clip: bool = False):
    """D_KL(P || Q) in nats, row-wise, exactly as the paper's ``analyze_lr.ipynb``.

    Each row is normalised to sum 1, then both are clipped to ``[eps, 1]`` and
    ``sum p * ln(p / q)`` is taken.  This is the original order: ``kl_divergence(p /
    np.sum(p), q / np.sum(q))`` with ``np.clip`` inside and no renormalisation after the
    clip.  ``renormalize_after_clip=True`` renormalises the clipped vectors as well (the
    difference is of order ``k * eps``).  The paper's direction is P = original-crops
    model, Q = masked-crops model.

    Parameters
    ----------
    P, Q : array-like (k,) or (n, k), or DataFrames proteins x classes
        Non-negative rows with a positive sum.  Two DataFrames are aligned by protein and
        class name (both must hold the same proteins and classes).
    eps : float, default 1e-10

    Returns
    -------
    float, ndarray (n,) or Series (for DataFrame input, indexed by protein)

    Examples
    --------
    >>> bool(np.isclose(kl_divergence([1.0, 0.0], [0.5, 0.5]), np.log(2) + 1e-10 * np.log(2e-10),
    ...                 rtol=1e-14, atol=0))
    True
    """
    p, q, index = _pair(P, Q)
    return _wrap(_kl(p, q, eps, renormalize_after_clip), index, "kl")


def total_variation(P, Q):
    """Total-variation distance, ``0.5 * sum |p - q|`` per row (in [0, 1]; no clipping).

    Inputs as in :func:`kl_divergence` (rows are normalised to sum 1 first).

    Examples
    --------
    >>> total_variation([1.0, 0.0], [0.0, 1.0])
    1.0
    """
    p, q, index = _pair(P, Q)
    return _wrap(0.5 * np.abs(p - q).sum(axis=-1), index, "tv")


def uniform_baseline(P, eps: float = EPS, *, renormalize_after_clip: bool = False):
    """D_KL(P || uniform) per row, with the clipping of :func:`kl_divergence`.

    The paper's "baseline KL divergence between the original-crops model predictions and
    a uniform distribution over localization classes" (section 4.5); it equals
    ``ln k - H(P)``, from 0 (uniform P) to about ``ln k`` (one-hot P).

    Examples
    --------
    >>> round(uniform_baseline(np.eye(15)[0]), 6), round(float(np.log(15)), 6)
    (2.70805, 2.70805)
    """
    p, index, _ = _dist(P, "P")
    u = np.full_like(p, 1.0 / p.shape[-1])
    p = p / p.sum(axis=-1, keepdims=True)
    return _wrap(_kl(p, u, eps, renormalize_after_clip), index, "uniform_baseline")


def _series(values, where: str) -> pd.Series:
    if isinstance(values, pd.Series):
        s = values.astype(float)
    else:
        arr = np.asarray(values, dtype=float)
        if arr.ndim != 1:
            raise ValueError(f"{where}: expected a 1-d array, got shape {arr.shape}")
        s = pd.Series(arr)
    if s.isna().any():
        raise ValueError(f"{where}: {int(s.isna().sum())} missing value(s)")
    return s


def kl_summary(kl, baseline=None) -> pd.Series:
    """Figure 3A's ``describe()`` and, with ``baseline``, the share above it (section 4.5).

    Parameters
    ----------
    kl : array-like or Series
        Per-protein D_KL(P_original || P_masked).
    baseline : array-like or Series, optional
        Per-protein :func:`uniform_baseline` of the *original-crops* model's distribution,
        i.e. D_KL(P_original || uniform).  Series are aligned by protein.

    Returns
    -------
    pandas.Series
        ``count, mean, std`` (ddof=1, as pandas), ``min, 25%, 50%, 75%, max`` and, with a
        baseline, ``n_exceeds`` and ``share_exceeds``: the number and share of proteins
        whose KL between the two models is *strictly greater* than their own baseline.
        This is the paper's "for 223 out of 1,531 proteins (14.6%), the KL divergence
        between the two models exceeded this baseline": a per-protein comparison of
        D_KL(P_orig || P_mask) with D_KL(P_orig || U), both with P_orig first, the
        direction of the paper code's KL.  The baseline itself is not in the paper's code.

    Examples
    --------
    >>> kl_summary([0.1, 0.5, 2.0, 3.0], [1.0, 1.0, 1.0, 3.0])[["n_exceeds", "share_exceeds"]].tolist()
    [1.0, 0.25]
    """
    s = _series(kl, "kl")
    if len(s) == 0:
        raise ValueError("kl: empty")
    out = s.describe()
    if baseline is not None:
        b = _series(baseline, "baseline")
        if isinstance(kl, pd.Series) and isinstance(baseline, pd.Series):
            if sorted(map(str, s.index)) != sorted(map(str, b.index)):
                raise ValueError("kl, baseline: the two Series hold different proteins")
            b = b.loc[s.index]
        elif len(b) != len(s):
            raise ValueError(f"kl, baseline: lengths differ ({len(s)} vs {len(b)})")
        exceeds = s.to_numpy() > b.to_numpy()
        out["n_exceeds"] = float(exceeds.sum())
        out["share_exceeds"] = float(exceeds.mean())
    return out


# ---------------------------------------------------------------------------------------
# comparisons with the truth (synthetic screens)
# ---------------------------------------------------------------------------------------
def _frames(named: Mapping[str, pd.DataFrame]) -> None:
    for name, frame in named.items():
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"{name}: expected a DataFrame proteins x classes, got "
                             f"{type(frame).__name__}")


def truth_errors(P_original: pd.DataFrame, P_masked: pd.DataFrame, P_true: pd.DataFrame,
                 eps: float = EPS, *, by: str = "tv", tol: float = 1e-12) -> pd.DataFrame:
    """Per-protein error of both models against the true proportions.

    Parameters
    ----------
    P_original, P_masked, P_true : DataFrame, proteins x classes
        Aligned by protein and class name (all three must hold the same proteins).
    eps : float
        Clipping of the KL (see :func:`kl_divergence`).
    by : {"tv", "kl"}
        The error that decides ``closer``.  TV is the default: KL(true || pred) with the
        clipping jumps to ~23 nats whenever a model gives 0 to a true class (e.g. a class
        no counted cell was assigned to), so it ranks such misses by ``eps``.
    tol : float
        Differences up to ``tol`` count as a ``"tie"``.

    Returns
    -------
    pandas.DataFrame
        Index protein; ``kl_original``, ``kl_masked`` (D_KL(true || model)),
        ``tv_original``, ``tv_masked``, ``gain`` (original error minus masked error, by
        ``by``; positive = masking helped) and ``closer`` (``"original"``, ``"masked"``
        or ``"tie"``).
    """
    _frames({"P_original": P_original, "P_masked": P_masked, "P_true": P_true})
    if by not in ("tv", "kl"):
        raise ValueError(f"by must be 'tv' or 'kl', got {by!r}")
    index = P_true.index
    out = pd.DataFrame(index=index)
    for name, P in (("original", P_original), ("masked", P_masked)):
        t, p, _ = _pair(P_true, P, names=("P_true", f"P_{name}"))
        out[f"kl_{name}"] = _kl(t, p, eps, False)
        out[f"tv_{name}"] = 0.5 * np.abs(t - p).sum(axis=1)
    gain = out[f"{by}_original"] - out[f"{by}_masked"]
    out["gain"] = gain
    out["closer"] = np.where(gain > tol, "masked", np.where(gain < -tol, "original", "tie"))
    out.index.name = P_true.index.name or "protein"
    return out


def disagreement_table(P_original: pd.DataFrame, P_masked: pd.DataFrame,
                       P_true: pd.DataFrame | None = None, n: int = 10,
                       eps: float = EPS) -> pd.DataFrame:
    """The ``n`` proteins on which the two models disagree most, by D_KL(P_orig || P_mask).

    Section 4.5 examines "the ten proteins with the largest KL divergence"; there a
    blinded annotator judged which model looked right.  With ``P_true`` (a synthetic
    screen) the table says which model is closer to the truth.

    Returns
    -------
    pandas.DataFrame
        Sorted by ``kl`` (descending): ``kl``, ``tv`` (between the models),
        ``top_original``, ``top_masked`` (most probable class of each) and, with the
        truth, ``top_true`` and the columns of :func:`truth_errors`.
    """
    _frames({"P_original": P_original, "P_masked": P_masked})
    if not (isinstance(n, numbers.Integral) and n >= 1):
        raise ValueError(f"n must be a positive integer, got {n!r}")
    p, q, _ = _pair(P_original, P_masked, names=("P_original", "P_masked"))
    cols = np.asarray([str(c) for c in P_original.columns])
    out = pd.DataFrame({"kl": _kl(p, q, eps, False), "tv": 0.5 * np.abs(p - q).sum(axis=1),
                        "top_original": cols[p.argmax(axis=1)], "top_masked": cols[q.argmax(axis=1)]},
                       index=P_original.index)
    if P_true is not None:
        errors = truth_errors(P_original, P_masked, P_true, eps)
        t = P_true.set_axis([str(c) for c in P_true.columns], axis=1).loc[out.index, list(cols)]
        out["top_true"] = cols[t.to_numpy().argmax(axis=1)]
        out = out.join(errors.loc[out.index])
    out.index.name = P_original.index.name or "protein"
    return out.sort_values("kl", ascending=False, kind="stable").head(n)


def error_by_covariate(errors, covariate, bins=4, *, strategy: str = "width",
                       dropna: bool = True) -> pd.DataFrame:
    """Summaries of one or more error columns within bins of a covariate.

    Generic: ``errors`` may be per protein (e.g. :func:`truth_errors` columns) or per cell
    (e.g. 0/1 misclassification), and ``covariate`` any number per row, e.g. the fraction
    of a cell's neighbours whose true class differs from its own, averaged per protein.

    Parameters
    ----------
    errors : array-like (n,), Series or DataFrame (n rows)
    covariate : array-like or Series, shape (n,)
        Aligned with ``errors`` by position (a Series with the same index is aligned by
        index).
    bins : int or sequence of float
        Bin edges, or the number of bins: equal-width over the observed range
        (``strategy="width"``) or equal-count (``strategy="quantile"``).  Edges include
        the lowest value.
    dropna : bool
        Drop rows whose covariate is NaN (otherwise they raise).

    Returns
    -------
    pandas.DataFrame
        One row per bin (an interval index): ``n`` and, for each error column, its
        ``mean``, ``median`` and ``sem`` (columns ``(error, statistic)``).

    Examples
    --------
    >>> t = error_by_covariate([0.1, 0.2, 0.5, 0.7], [0.0, 0.1, 0.8, 0.9], bins=[0, 0.5, 1])
    >>> t[("error", "mean")].round(2).tolist()
    [0.15, 0.6]
    """
    if isinstance(errors, pd.DataFrame):
        E = errors.astype(float)
    elif isinstance(errors, pd.Series):
        E = errors.astype(float).to_frame(errors.name or "error")
    else:
        arr = np.asarray(errors, dtype=float)
        if arr.ndim != 1:
            raise ValueError(f"errors: expected 1-d values or a DataFrame, got shape {arr.shape}")
        E = pd.DataFrame({"error": arr})
    if isinstance(covariate, pd.Series) and covariate.index.equals(E.index):
        c = covariate.to_numpy(dtype=float)
    else:
        c = np.asarray(covariate, dtype=float)
    if c.ndim != 1 or len(c) != len(E):
        raise ValueError(f"covariate: expected {len(E)} values (one per error row), got shape {c.shape}")
    if strategy not in ("width", "quantile"):
        raise ValueError(f"strategy must be 'width' or 'quantile', got {strategy!r}")
    missing = np.isnan(c)
    if missing.any():
        if not dropna:
            raise ValueError(f"covariate: {int(missing.sum())} NaN value(s); pass dropna=True to drop them")
        E, c = E.loc[~missing], c[~missing]
    if len(c) == 0:
        raise ValueError("covariate: no rows left")
    if isinstance(bins, numbers.Integral):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        cut = (pd.qcut(c, bins, duplicates="drop") if strategy == "quantile"
               else pd.cut(c, bins, include_lowest=True))
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or len(edges) < 2 or (np.diff(edges) <= 0).any():
            raise ValueError(f"bins: expected increasing edges, got {list(edges)}")
        outside = (c < edges[0]) | (c > edges[-1])
        if outside.any():
            raise ValueError(f"covariate: {int(outside.sum())} value(s) outside the bin edges "
                             f"[{edges[0]}, {edges[-1]}]")
        cut = pd.cut(c, edges, include_lowest=True)
    grouped = E.groupby(cut, observed=False)
    out = grouped.agg(["mean", "median", "sem"])
    out.insert(0, ("n", ""), grouped.size())
    out.index.name = "bin"
    return out
