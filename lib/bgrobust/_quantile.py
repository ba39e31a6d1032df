"""An exact percentile of values that arrive in chunks, without holding them all.

:func:`streamed_percentile` gives ``np.percentile(np.concatenate(list(chunks())), q)``
(numpy's default ``"linear"`` method) while holding at most ``max_values`` values. It finds
the two order statistics the linear interpolation needs by narrowing: a first pass counts
the values and finds their range; integers spanning fewer than 65,536 values (16-bit
images) are then counted value by value in one more pass. Otherwise a pass histograms the range in question into 65,536 bins
and picks the bin that holds the wanted rank; if that bin holds few enough values, one more
pass keeps and sorts them, else the next two passes find the bin's exact value range and
histogram it again. Memory does not grow with the number of chunks. Used for the paper's
low-GFP filter (a percentile of every field's GFP pixels, :func:`bgrobust.crops.gfp_threshold`)
on screens whose pixels would not fit in memory at once.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

__all__ = ["streamed_percentile"]

_BINS = 65536


def _bin_of(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Bin of every value of ``v`` in ``[lo, hi]``; monotone in ``v``, so each bin is an interval."""
    scaled = (v.astype(np.float64) - lo) * (_BINS / (hi - lo))
    return np.clip(scaled.astype(np.int64), 0, _BINS - 1)


def _inside(chunks, lo, hi):
    for c in chunks():
        v = np.asarray(c).ravel()
        yield v[(v >= lo) & (v <= hi)]


def _select(chunks, rank: int, lo: float, hi: float, below: int, max_values: int) -> tuple:
    """The values of rank ``rank`` and ``rank + 1`` (0-based, over all values), given that
    rank ``rank`` lies in ``[lo, hi]`` and ``below`` values are under ``lo``. The second is
    None when it is not in the same final bin."""
    while lo != hi:
        counts = np.zeros(_BINS, np.int64)
        for v in _inside(chunks, lo, hi):
            counts += np.bincount(_bin_of(v, lo, hi), minlength=_BINS)
        cum = below + np.cumsum(counts)
        b = int(np.searchsorted(cum, rank, side="right"))
        start = below + int(counts[:b].sum())
        if counts[b] <= max_values:
            kept = np.sort(np.concatenate([v[_bin_of(v, lo, hi) == b] for v in _inside(chunks, lo, hi)]))
            i = rank - start
            return kept[i], (kept[i + 1] if i + 1 < len(kept) else None)
        new_lo, new_hi = np.inf, -np.inf   # the exact value range of bin b
        for v in _inside(chunks, lo, hi):
            v = v[_bin_of(v, lo, hi) == b]
            if v.size:
                new_lo, new_hi = min(new_lo, float(v.min())), max(new_hi, float(v.max()))
        lo, hi, below = new_lo, new_hi, start
    return lo, (lo if rank + 1 < below + _count(chunks, lo, hi) else None)


def _count(chunks, lo, hi) -> int:
    return sum(int(v.size) for v in _inside(chunks, lo, hi))


def streamed_percentile(chunks: Callable[[], Iterable[np.ndarray]], percentile: float, *,
                        max_values: int = 1 << 22) -> float:
    """``np.percentile`` of every value of every chunk, exactly, in a few passes over the chunks.

    Parameters
    ----------
    chunks : callable
        Returns a fresh iterable of arrays (any shape, one real dtype, finite values) each
        time it is called; it is called once per pass (three on most image data).
    percentile : float
        In [0, 100].
    max_values : int
        The most values kept at once (in the last pass).

    Returns
    -------
    float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> parts = [rng.normal(size=1000).astype(np.float32) for _ in range(5)]
    >>> bool(streamed_percentile(lambda: parts, 5.0) == np.percentile(np.concatenate(parts), 5.0))
    True
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"streamed_percentile: percentile must be in [0, 100], got {percentile!r}")
    n, lo, hi, dtype = 0, np.inf, -np.inf, None
    for c in chunks():
        c = np.asarray(c)
        if c.size == 0:
            continue
        if dtype is None:
            dtype = c.dtype
        elif c.dtype != dtype:
            raise ValueError(f"streamed_percentile: the chunks mix dtypes {dtype} and {c.dtype}")
        if c.dtype.kind == "f" and not np.isfinite(c).all():
            raise ValueError("streamed_percentile: the values hold NaN or infinity")
        n += c.size
        lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
    if n == 0:
        raise ValueError("streamed_percentile: no values")
    # numpy's linear method: virtual index (n - 1) q between the order statistics k and k + 1
    virtual = (n - 1) * np.true_divide(percentile, 100)
    k = int(np.floor(virtual))
    gamma = float(virtual - k)
    if dtype.kind in "iub" and hi - lo < _BINS:   # integers: one count per value, one pass
        counts = np.zeros(int(hi - lo) + 1, np.int64)
        for c in chunks():
            v = np.asarray(c).ravel()
            counts += np.bincount((v.astype(np.int64) - int(lo)), minlength=len(counts))
        cum = np.cumsum(counts)
        a, b = (lo + int(np.searchsorted(cum, r, side="right")) for r in (k, min(k + 1, n - 1)))
    else:
        a, b = _select(chunks, k, lo, hi, 0, max_values)
    if k + 1 >= n:
        b = a
    elif b is None:
        b, _ = _select(chunks, k + 1, lo, hi, 0, max_values)
    a, b = np.asarray(a, dtype=dtype)[()], np.asarray(b, dtype=dtype)[()]
    diff = b - a
    return float(a + diff * gamma if gamma < 0.5 else b - diff * (1 - gamma))
