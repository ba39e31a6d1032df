"""Inference-time batch-norm folding: a ``Conv2d -> BatchNorm2d`` pair becomes one ``Conv2d``.

In eval mode a BatchNorm is the per-channel affine map
``y = gamma * (x - mean) / sqrt(var + eps) + beta``; when it directly follows a convolution,
scaling the convolution's output channels by ``s = gamma / sqrt(var + eps)`` and setting its
bias to ``(b - mean) * s + beta`` gives the same output with one pass over the feature map
instead of two.  The result equals the unfolded network up to float32 rounding (about 1e-6
relative; the folded weights are computed in float64).

Only pairs that are *adjacent steps* of the model's feature path are folded (PIFiA's and
DeepLoc's ``convN -> bnN``); PCI's order is Conv -> ReLU -> BN, where the BN cannot be folded
into the convolution before it, so PCI is left unchanged.  A pair whose intermediate output
(``convN_prebn``) is one of the ``keep`` layers is not folded, since that output would no
longer exist.

Examples
--------
>>> import torch
>>> from bgrobust.models import build
>>> model = build("pifia", width=0.25, random_state=0, n_classes=15).eval()
>>> x = torch.randn(2, 1, 64, 64)
>>> ref = model.features(x, "conv8")
>>> folded = fold_batchnorm(model, keep=["conv8"])
>>> len(folded), bool((model.features(x, "conv8") - ref).abs().max() < 1e-4)
(8, True)
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def _feature_steps(model: nn.Module):
    """The model's feature path as (name, operation) pairs (current or older model API)."""
    if hasattr(model, "feature_steps"):
        return model.feature_steps()
    if hasattr(model, "_source_steps"):  # PCI: the source encoder
        return model._source_steps()
    return model._steps()


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` (eval-mode statistics) into ``conv``'s weight and bias, in place."""
    with torch.no_grad():
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        weight = conv.weight.double() * scale.reshape(-1, *([1] * (conv.weight.ndim - 1)))
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        bias = (bias - bn.running_mean.double()) * scale + bn.bias.double()
        conv.weight.copy_(weight.to(conv.weight.dtype))
        if conv.bias is None:
            conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)
        else:
            conv.bias.copy_(bias.to(conv.bias.dtype))


def fold_batchnorm(model: nn.Module, keep: Iterable[str] = ()) -> list[str]:
    """Fold every ``Conv2d -> BatchNorm2d`` pair of ``model``'s feature path, in place.

    Parameters
    ----------
    model : nn.Module
        A PIFiA, PCI or DeepLoc in eval mode (fold a copy: the model is changed; the folded
        BatchNorm modules are replaced by ``nn.Identity``, so it can no longer be trained).
    keep : iterable of str
        Feature layers that must stay available: a pair whose convolution output is one of
        them is left as it is.

    Returns
    -------
    list of str
        Names of the convolutions that were folded (empty for PCI).

    Raises
    ------
    ValueError
        If ``model`` is in training mode (batch statistics cannot be folded).

    Examples
    --------
    >>> from bgrobust.models import build
    >>> m = build("deeploc", width=0.25, random_state=0, n_classes=15).eval()
    >>> fold_batchnorm(m, keep=["conv5_prebn"])[:5]
    ['conv1', 'conv2', 'conv3', 'conv4', 'conv6']
    >>> fold_batchnorm(build("pci", width=0.25).eval())
    []
    """
    if model.training:
        raise ValueError("fold_batchnorm: the model is in training mode; call .eval() on a copy first")
    keep = set(keep)
    names = {id(m): n for n, m in model.named_modules()}
    steps = list(_feature_steps(model))
    folded = []
    for (name, op), (_, nxt) in zip(steps, steps[1:]):
        if not (isinstance(op, nn.Conv2d) and isinstance(nxt, nn.BatchNorm2d)) or name in keep:
            continue
        if nxt.running_mean is None or nxt.running_var is None:
            continue  # no running statistics: eval mode uses batch statistics
        _fold_into(op, nxt)
        parent_name, _, attr = names[id(nxt)].rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, nn.Identity())
        folded.append(names[id(op)])
    return folded
