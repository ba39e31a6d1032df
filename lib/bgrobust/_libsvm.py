"""libsvm called directly with exactly the arguments ``sklearn.svm.SVC`` passes it.

``SVC.fit`` / ``SVC.predict`` spend most of their time on a small problem (a few hundred
rows) in Python: parameter validation, ``validate_data``, target encoding, class weights,
warnings, attribute bookkeeping.  The solver itself, ``sklearn.svm._libsvm.fit``, is only
a small part of it.  :func:`fit_predict` performs the same steps as ``SVC(...).fit(X, y)``
followed by ``.predict(X_test)`` for dense, finite, two-class input, with the same
arguments to libsvm (taken from the estimator's own parameters), so the predictions are
bit-identical; it skips only the checks that the callers in :mod:`bgrobust.classify`
have already made at their boundary.

Examples
--------
>>> import numpy as np
>>> from sklearn.svm import SVC
>>> rng = np.random.default_rng(0)
>>> X = np.vstack([rng.normal(0, 1, (20, 3)), rng.normal(1, 1, (20, 3))])
>>> y = np.repeat([0, 1], 20)
>>> svc = SVC(kernel="linear", C=1.0, random_state=42)
>>> pred, stopped = fit_predict(svc, X[::2], y[::2], X[1::2])
>>> bool((pred == svc.fit(X[::2], y[::2]).predict(X[1::2])).all()), stopped
(True, False)
"""
from __future__ import annotations

import numpy as np
from sklearn.svm import _libsvm as libsvm
from sklearn.svm._base import LIBSVM_IMPL
from sklearn.utils import check_random_state


def _gamma(svc, X: np.ndarray) -> float:
    """``SVC._gamma`` as ``BaseLibSVM.fit`` computes it for dense input."""
    if isinstance(svc.gamma, str):
        if svc.gamma == "scale":
            var = X.var()
            return 1.0 / (X.shape[1] * var) if var != 0 else 1.0
        return 1.0 / X.shape[1]  # "auto"
    return float(svc.gamma)


def fit_predict(svc, X_train, y_train, X_test) -> tuple[np.ndarray, bool]:
    """Fit ``svc``'s libsvm problem on ``(X_train, y_train)`` and predict ``X_test``.

    Equivalent to ``svc.fit(X_train, y_train).predict(X_test)`` for an unfitted
    ``sklearn.svm.SVC`` with ``class_weight=None``, ``probability`` off, a string kernel
    (not ``"precomputed"`` or a callable) and dense, finite input with two classes; ``svc``
    itself is not modified.

    Parameters
    ----------
    svc : sklearn.svm.SVC
        Supplies every libsvm argument (``C``, ``kernel``, ``degree``, ``gamma``,
        ``coef0``, ``tol``, ``shrinking``, ``cache_size``, ``max_iter``,
        ``random_state``).
    X_train : array-like, shape (n, d)
    y_train : array-like, shape (n,)
        Two distinct labels.
    X_test : array-like, shape (m, d)

    Returns
    -------
    pred : ndarray, shape (m,)
        Predicted labels (values of ``y_train``).
    stopped : bool
        Whether libsvm stopped at ``max_iter`` (``SVC`` then issues a
        ``ConvergenceWarning``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.svm import SVC
    >>> X = np.array([[0.0], [1.0], [3.0], [4.0]]); y = np.array([0, 0, 1, 1])
    >>> fit_predict(SVC(kernel="linear"), X, y, np.array([[0.5], [3.5]]))[0].tolist()
    [0, 1]
    """
    if svc.kernel == "precomputed" or callable(svc.kernel):
        raise ValueError("fit_predict: only string kernels other than 'precomputed' are supported")
    if svc.class_weight is not None or svc.probability not in ("deprecated", False):
        raise ValueError("fit_predict: class_weight and probability are not supported")
    X = np.ascontiguousarray(X_train, dtype=np.float64)
    classes, codes = np.unique(np.asarray(y_train), return_inverse=True)
    if len(classes) != 2:
        raise ValueError(f"fit_predict: expected two classes, got {len(classes)}")
    y = np.asarray(codes, dtype=np.float64, order="C")
    # BaseLibSVM.fit: one draw from check_random_state(random_state) seeds libsvm.
    seed = check_random_state(svc.random_state).randint(np.iinfo("i").max)
    svm_type = LIBSVM_IMPL.index(svc._impl)
    gamma = _gamma(svc, X)
    libsvm.set_verbosity_wrap(svc.verbose)
    support, support_vectors, n_support, dual_coef, intercept, prob_a, prob_b, status, _ = libsvm.fit(
        X, y, svm_type=svm_type, sample_weight=np.empty(0, dtype=np.float64),
        class_weight=np.ones(2, dtype=np.float64),  # compute_class_weight(None, ...)
        kernel=svc.kernel, C=svc.C, nu=svc.nu, probability=False, degree=svc.degree,
        shrinking=svc.shrinking, tol=svc.tol, cache_size=svc.cache_size, coef0=svc.coef0,
        gamma=gamma, epsilon=svc.epsilon, max_iter=svc.max_iter, random_seed=seed)
    if not (np.isfinite(intercept).all() and np.isfinite(dual_coef).all()):
        raise ValueError("The dual coefficients or intercepts are not finite. The input data may contain "
                         "large values and need to be preprocessed.")
    codes_pred = libsvm.predict(
        np.ascontiguousarray(X_test, dtype=np.float64), support, support_vectors, n_support, dual_coef,
        intercept, prob_a, prob_b, svm_type=svm_type, kernel=svc.kernel, degree=svc.degree,
        coef0=svc.coef0, gamma=gamma, cache_size=svc.cache_size)
    return classes.take(np.asarray(codes_pred, dtype=np.intp)), bool(status == 1)
