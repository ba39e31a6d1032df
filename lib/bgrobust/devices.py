"""Where the networks run: CPU by default, a CUDA GPU when asked for.

Training of the three models (:func:`bgrobust.train.train`) and feature extraction
(:func:`bgrobust.features.extract`) take a ``device`` argument (the VAE and the structural
baseline run on the CPU):

* ``None`` or ``"cpu"``: the CPU (the default, and what the tests and CI use);
* ``"auto"``: the first CUDA GPU when PyTorch sees one, else the CPU;
* ``"cuda"``, ``"cuda:1"``, a :class:`torch.device`: that device, an error if it is absent.

The device is an execution detail, like ``n_jobs``: it is not part of any cache key, so
weights trained on a GPU are reused by a CPU run with the same parameters (and the other
way round). Random draws (batch order, flips, dropout masks, background swaps) are made
on the CPU from the seeded generators, so a GPU run sees the same batches; its results
still differ from the CPU's in the last bits, as GPU kernels round differently.

Precision
---------
The networks compute in float32 by default, as the originals do. ``precision="bfloat16"``
(CPU or GPU), ``"float16"`` (GPU only) or ``"auto"`` (bfloat16 where the device runs it
natively, else float32; :func:`check_precision`) runs the convolutions and dense layers under
:func:`torch.autocast` (:func:`autocast`): weights, batch-norm statistics, losses and the
returned features stay float32. Unlike the device, the precision changes the numbers (a
bfloat16 feature differs from the float32 one by ~1% of its range;
``benchmarks/bench_precision.py`` records the speed and the difference), so it is part of
the training and feature cache keys.
"""
from __future__ import annotations

import contextlib

import torch

DEVICES = ("cpu", "auto", "cuda")
PRECISIONS = ("float32", "bfloat16", "float16")


def resolve_device(device=None) -> torch.device:
    """The :class:`torch.device` that ``device`` names.

    Parameters
    ----------
    device : None, str or torch.device
        ``None``/``"cpu"``, ``"auto"``, ``"cuda"``/``"cuda:<index>"``, or a ``torch.device``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        For a name PyTorch does not know, or a CUDA device this machine does not have.

    Examples
    --------
    >>> resolve_device()
    device(type='cpu')
    >>> resolve_device("auto").type in ("cpu", "cuda")
    True
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be None, a str or a torch.device, got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device: {device!r} is not a device name (use one of {DEVICES} or 'cuda:<index>')") \
            from exc
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device: {device!r} is not supported (use one of {DEVICES} or 'cuda:<index>')")
    if not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked for a CUDA GPU, but PyTorch sees none on this machine "
                         f"(torch {torch.__version__}); use device='cpu' or 'auto'")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device: {device!r} does not exist; this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s)")
    return dev


def check_precision(precision, device=None, *, where: str = "precision") -> str:
    """``precision`` checked against :data:`PRECISIONS` and the device, with ``"auto"`` resolved.

    ``"auto"`` is ``"bfloat16"`` where the device computes it natively or nearly so (a CUDA GPU
    that supports it; a CPU on which oneDNN runs bfloat16, i.e. AVX-512 or AMX), else
    ``"float32"``. The resolved name is returned, so it is what enters the cache keys and what
    a page reports.

    Examples
    --------
    >>> check_precision("bfloat16")
    'bfloat16'
    >>> check_precision("auto") in ("bfloat16", "float32")
    True
    >>> check_precision("float16")
    Traceback (most recent call last):
    ...
    ValueError: precision: 'float16' needs a CUDA device (autocast float16 on the CPU is not supported here); use 'bfloat16' or 'float32'
    """
    if precision == "auto":
        dev = resolve_device(device)
        if dev.type == "cuda":
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
        native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        return "bfloat16" if native else "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"{where}: must be 'auto' or one of {PRECISIONS}, got {precision!r}")
    if precision == "float16" and resolve_device(device).type != "cuda":
        raise ValueError(f"{where}: 'float16' needs a CUDA device (autocast float16 on the CPU is not "
                         "supported here); use 'bfloat16' or 'float32'")
    return precision


def autocast(device, precision: str = "float32"):
    """The :func:`torch.autocast` context of ``precision`` on ``device`` (a no-op for float32).

    Examples
    --------
    >>> import torch
    >>> with autocast(torch.device("cpu"), "bfloat16"):
    ...     y = torch.nn.Linear(4, 2)(torch.ones(1, 4))
    >>> y.dtype
    torch.bfloat16
    """
    precision = check_precision(precision, device)
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(resolve_device(device).type, dtype=getattr(torch, precision))
