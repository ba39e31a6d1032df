"""PIFiA: Protein Image-based Functional Annotation (Razdaibiedina et al., MSB 2024).

A PyTorch re-implementation of ``pifia_network`` from ``arazd/pifia`` (``model/models.py``),
written from the architecture description, not from the original code.

Architecture (width 1.0, one 64x64 GFP crop in)::

    input                      1 x 64 x 64
    conv1 -> bn1 -> ReLU      64 x 62 x 62      3x3, VALID (no padding)
    conv2 -> bn2 -> ReLU      64 x 60 x 60
    pool1 (max 2x2/2)         64 x 30 x 30
    conv3 -> bn3 -> ReLU     128 x 28 x 28
    conv4 -> bn4 -> ReLU     128 x 26 x 26
    pool2                    128 x 13 x 13
    conv5 -> bn5 -> ReLU     256 x 11 x 11
    conv6 -> bn6 -> ReLU     256 x  9 x  9
    conv7 -> bn7 -> ReLU     256 x  7 x  7
    conv8 -> bn8 -> ReLU     256 x  5 x  5      <- the paper's layer ("conv8")
    pool3                    256 x  2 x  2
    flatten (H, W, C order)  1024
    d1 -> ReLU                128
    d2 -> ReLU                 64               <- PIFiA's own feature ("d2")
    dropout (p = 0.02)         64
    d3                       n_classes logits  (4049 proteins in the released model)

Faithfulness notes
------------------
* Every convolution has a bias *and* is followed by BatchNorm, as in the original (Keras
  ``Conv2D`` default ``use_bias=True``).
* BatchNorm uses the Keras defaults: ``eps=1e-3`` and moving-average momentum 0.99, which is
  PyTorch ``momentum=0.01``.
* The flatten before ``d1`` runs in TensorFlow's NHWC order (height, width, channel), so
  ``d1.weight`` is exactly the transpose of the original Keras kernel ``d1/kernel`` and an
  original checkpoint maps one to one (:func:`bgrobust.models.convert.pifia_from_tf`).
* Initialisation is Keras' default: Glorot-uniform kernels, zero biases, BN gamma 1 / beta 0,
  moving mean 0 / variance 1.
* ``state_dict()`` keys are ``conv1.weight, conv1.bias, bn1.weight, bn1.bias,
  bn1.running_mean, bn1.running_var, bn1.num_batches_tracked, ..., d3.bias``; the
  ``num_batches_tracked`` counters have no counterpart in the original (converters set them to 0).

Named feature points (see :attr:`PIFiA.feature_layers`): for each conv block ``convK`` the block
output (after BN and ReLU), ``convK_prebn`` (the convolution output with bias, before BN) and
``convK_prerelu`` (after BN, before ReLU); ``pool1``..``pool3``; ``flatten``; ``d1``, ``d2``
(after ReLU) and ``d3`` (logits).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PIFiA", "build_pifia"]

#: Keras BatchNormalization defaults, written in PyTorch terms.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # = 1 - 0.99


def _scaled(channels: int, width: float) -> int:
    """Scale a layer width by ``width`` (rounded, at least 1)."""
    return max(1, int(round(channels * width)))


def _flatten_hwc(x: torch.Tensor) -> torch.Tensor:
    """Flatten (B, C, H, W) in TensorFlow's (H, W, C) order, giving (B, H*W*C)."""
    return x.permute(0, 2, 3, 1).flatten(1)


class PIFiA(nn.Module):
    """The PIFiA network: eight VALID 3x3 convolutions, three dense layers.

    Parameters
    ----------
    n_classes : int
        Number of output classes of ``d3`` (4049 proteins in the released model).
    width : float
        Multiplier applied to every convolution and dense width (``d1``, ``d2``); ``1.0``
        gives the original shapes. The input channel count and ``n_classes`` are not scaled.
    dropout : float
        Dropout rate between ``d2`` and ``d3`` (0.02 in the released configuration).
    generator : torch.Generator, optional
        Random source for the initialisation (default: PyTorch's global generator).

    Examples
    --------
    >>> import torch
    >>> from bgrobust.models import build_pifia
    >>> model = build_pifia(width=0.25, n_classes=10).eval()
    >>> model.features(torch.zeros(2, 1, 64, 64), "conv8").shape
    torch.Size([2, 64, 5, 5])
    """

    name = "pifia"
    in_channels = 1
    input_size = 64

    def __init__(
        self,
        n_classes: int = 4049,
        width: float = 1.0,
        dropout: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"PIFiA: n_classes must be >= 1, got {n_classes}")
        if width <= 0:
            raise ValueError(f"PIFiA: width must be > 0, got {width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"PIFiA: dropout must be in [0, 1), got {dropout}")
        self.n_classes = int(n_classes)
        self.width = float(width)
        c64, c128, c256 = (_scaled(c, width) for c in (64, 128, 256))

        def conv(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=0, bias=True)

        def bn(c: int) -> nn.BatchNorm2d:
            return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)

        # block 1: 64 -> 62 -> 60 -> pool 30
        self.conv1, self.bn1 = conv(self.in_channels, c64), bn(c64)
        self.conv2, self.bn2 = conv(c64, c64), bn(c64)
        self.pool1 = nn.MaxPool2d(2, 2)
        # block 2: 30 -> 28 -> 26 -> pool 13
        self.conv3, self.bn3 = conv(c64, c128), bn(c128)
        self.conv4, self.bn4 = conv(c128, c128), bn(c128)
        self.pool2 = nn.MaxPool2d(2, 2)
        # block 3: 13 -> 11 -> 9 -> 7 -> 5 -> pool 2
        self.conv5, self.bn5 = conv(c128, c256), bn(c256)
        self.conv6, self.bn6 = conv(c256, c256), bn(c256)
        self.conv7, self.bn7 = conv(c256, c256), bn(c256)
        self.conv8, self.bn8 = conv(c256, c256), bn(c256)
        self.pool3 = nn.MaxPool2d(2, 2)
        # head
        self.d1 = nn.Linear(2 * 2 * c256, _scaled(128, width))
        self.d2 = nn.Linear(_scaled(128, width), _scaled(64, width))
        self.dropout = nn.Dropout(dropout)
        self.d3 = nn.Linear(_scaled(64, width), self.n_classes)

        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Keras default initialisation: Glorot-uniform kernels, zero biases, identity BN.

        Parameters
        ----------
        generator : torch.Generator, optional
            Random source (default: PyTorch's global generator).

        Examples
        --------
        >>> import torch
        >>> from bgrobust.models import build_pifia
        >>> build_pifia(width=0.25).reset_parameters(torch.Generator().manual_seed(0))
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight, generator=generator)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()

    def feature_steps(self) -> tuple[tuple[str, Callable[[torch.Tensor], torch.Tensor]], ...]:
        """``(name, op)`` pairs of the feature path, in order: run them to read several layers in one pass."""
        return self._steps()

    def _steps(self) -> tuple[tuple[str, Callable[[torch.Tensor], torch.Tensor]], ...]:
        """The network, top to bottom, as (name of the output, operation) pairs.

        Names starting with ``_`` are internal and not offered as feature layers.
        """
        relu = F.relu
        return (
            ("conv1_prebn", self.conv1), ("conv1_prerelu", self.bn1), ("conv1", relu),
            ("conv2_prebn", self.conv2), ("conv2_prerelu", self.bn2), ("conv2", relu),
            ("pool1", self.pool1),
            ("conv3_prebn", self.conv3), ("conv3_prerelu", self.bn3), ("conv3", relu),
            ("conv4_prebn", self.conv4), ("conv4_prerelu", self.bn4), ("conv4", relu),
            ("pool2", self.pool2),
            ("conv5_prebn", self.conv5), ("conv5_prerelu", self.bn5), ("conv5", relu),
            ("conv6_prebn", self.conv6), ("conv6_prerelu", self.bn6), ("conv6", relu),
            ("conv7_prebn", self.conv7), ("conv7_prerelu", self.bn7), ("conv7", relu),
            ("conv8_prebn", self.conv8), ("conv8_prerelu", self.bn8), ("conv8", relu),
            ("pool3", self.pool3),
            ("flatten", _flatten_hwc),
            ("d1", lambda x: relu(self.d1(x))),
            ("d2", lambda x: relu(self.d2(x))),
            ("_dropout", self.dropout),
            ("d3", self.d3),
        )

    @property
    def feature_layers(self) -> tuple[str, ...]:
        """Names accepted by :meth:`features`, in the order the network computes them."""
        return tuple(name for name, _ in self._steps() if not name.startswith("_"))

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.in_channels, self.input_size, self.input_size)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"PIFiA expects a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"PIFiA expects input of shape (B, {expected[0]}, {expected[1]}, {expected[2]}) "
                f"(GFP only); got {tuple(x.shape)}"
            )

    def _run(self, x: torch.Tensor, stop: str | None) -> torch.Tensor:
        for name, step in self._steps():
            x = step(x)
            if name == stop:
                break
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for a batch of preprocessed crops ``(B, 1, 64, 64)``.

        Examples
        --------
        >>> import torch
        >>> from bgrobust.models import build_pifia
        >>> build_pifia(width=0.25, n_classes=3).eval()(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 3])
        """
        self._check_input(x)
        return self._run(x, None)

    def features(self, x: torch.Tensor, layer: str = "conv8") -> torch.Tensor:
        """The output at a named layer, computing only the layers up to it.

        Parameters
        ----------
        x : torch.Tensor
            Preprocessed crops ``(B, 1, 64, 64)``.
        layer : str
            One of :attr:`feature_layers`. ``"convK"`` is the block output (Conv -> BN -> ReLU),
            ``"convK_prebn"`` the convolution output before BN, ``"convK_prerelu"`` the BN output
            before ReLU.

        Returns
        -------
        torch.Tensor
            ``(B, C, H, W)`` for convolution and pooling layers, ``(B, D)`` for ``flatten`` and
            the dense layers. Put the model in ``eval()`` mode first for inference.

        Examples
        --------
        >>> import torch
        >>> from bgrobust.models import build_pifia
        >>> model = build_pifia(width=0.25).eval()
        >>> model.features(torch.zeros(1, 1, 64, 64), "d2").shape
        torch.Size([1, 16])
        """
        if layer not in self.feature_layers:
            raise ValueError(
                f"PIFiA has no feature layer {layer!r}; known layers: {', '.join(self.feature_layers)}"
            )
        self._check_input(x)
        return self._run(x, layer)


def build_pifia(
    width: float = 1.0,
    n_classes: int = 4049,
    dropout: float = 0.02,
    generator: torch.Generator | None = None,
) -> PIFiA:
    """Build a randomly initialised PIFiA network (Keras default initialisation).

    Parameters
    ----------
    width : float
        Width multiplier for every convolution and dense layer (``1.0`` = original shapes).
    n_classes : int
        Number of classes of the ``d3`` head (4049 in the released model).
    dropout : float
        Dropout rate between ``d2`` and ``d3`` (original 0.02).
    generator : torch.Generator, optional
        Random source for the initialisation.

    Returns
    -------
    PIFiA

    Examples
    --------
    >>> from bgrobust.models import build_pifia
    >>> model = build_pifia()
    >>> sum(p.numel() for p in model.parameters())
    2729873
    """
    return PIFiA(n_classes=n_classes, width=width, dropout=dropout, generator=generator)
