"""DeepLoc (Kraus et al., Mol Syst Biol 2017).

A PyTorch re-implementation of ``DeepLocModel`` from ``okraus/DeepLoc`` (``DeepLoc_train.py``
with the layers of ``nn_layers.py``), written from the architecture description.

Architecture (width 1.0, 60x60 GFP + marker crops in)::

    input                        2 x 60 x 60
    conv1 -> bn1 -> ReLU        64 x 60 x 60     3x3, SAME (padding 1)
    conv2 -> bn2 -> ReLU        64 x 60 x 60
    pool1 (max 2x2/2, SAME)     64 x 30 x 30
    conv3, conv4 (+bn, ReLU)   128 x 30 x 30
    pool2                      128 x 15 x 15
    conv5 (+bn5, ReLU)         256 x 15 x 15     <- the paper's layer ("conv5")
    conv6, conv7, conv8        256 x 15 x 15
    pool3 (SAME: rounds up)    256 x  8 x  8
    flatten (H, W, C order)  16384
    fc1 -> bn_fc1 -> ReLU      512
    fc2 -> bn_fc2 -> ReLU      512
    final -> bn_final         n_classes logits (19 in the released model)

Faithfulness notes
------------------
* Every layer is ``x @ W + b`` followed by BatchNorm (``nn_layers.conv_layer`` / ``nn_layer``
  with ``use_batch_norm=True``), including the logits: ``logit_bn=True`` (default) keeps that
  BN on the logits; ``logit_bn=False`` drops it (no ``bn_final`` in the state dict).
* DeepLoc's BatchNorm is hand-written: ``eps=1e-3`` and an exponential moving average with decay
  0.5 for the inference statistics, i.e. PyTorch ``momentum=0.5``. Its EMA shadow variables start
  at 0 in TensorFlow (moving variance 0); here they start at PyTorch's defaults (mean 0,
  variance 1), which only matters for a never-trained network in ``eval()`` mode.
* TensorFlow's SAME max-pooling of a 15x15 map gives 8x8: PyTorch ``ceil_mode=True`` (the extra
  window covers only the last row/column, as TF's right/bottom padding does).
* The flatten before ``fc1`` runs in TensorFlow's NHWC order, so ``fc1.weight`` is the transpose of
  the original ``fc_1/weights`` (:func:`bgrobust.models.convert.deeploc_from_tf`).
* Initialisation as ``nn_layers.weight_variable`` / ``bias_variable``: weights from a normal with
  std 0.1 truncated at two standard deviations, biases 0.1; BN gamma 1, beta 0.

Named feature points (see :attr:`DeepLoc.feature_layers`): for each conv block ``convK`` the
block output (after BN and ReLU), ``convK_prebn`` and ``convK_prerelu``; ``pool1``..``pool3``;
``flatten``; ``fc1``, ``fc2`` (after BN and ReLU) and ``final`` (the logits, after their BN when
``logit_bn``).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DeepLoc", "build_deeploc"]

BN_EPS = 1e-3
BN_MOMENTUM = 0.5  # TF ExponentialMovingAverage(decay=0.5)
INIT_STD = 0.1
INIT_BIAS = 0.1


def _scaled(channels: int, width: float) -> int:
    """Scale a layer width by ``width`` (rounded, at least 1)."""
    return max(1, int(round(channels * width)))


def _flatten_hwc(x: torch.Tensor) -> torch.Tensor:
    """Flatten (B, C, H, W) in TensorFlow's (H, W, C) order, giving (B, H*W*C)."""
    return x.permute(0, 2, 3, 1).flatten(1)


class DeepLoc(nn.Module):
    """The DeepLoc network: eight SAME 3x3 convolutions, three dense layers, BN everywhere.

    Parameters
    ----------
    n_classes : int
        Number of output classes (19 in the released model: 17 localizations, dead, ghost).
    width : float
        Multiplier applied to every convolution and hidden dense width; ``1.0`` gives the
        original shapes. Input channels and ``n_classes`` are not scaled.
    logit_bn : bool
        Apply BatchNorm to the logits, as the original does (default ``True``).
    generator : torch.Generator, optional
        Random source for the initialisation (default: PyTorch's global generator).

    Examples
    --------
    >>> import torch
    >>> from bgrobust.models import build_deeploc
    >>> model = build_deeploc(width=0.25).eval()
    >>> model.features(torch.zeros(2, 2, 60, 60), "conv5").shape
    torch.Size([2, 64, 15, 15])
    """

    name = "deeploc"
    in_channels = 2
    input_size = 60

    def __init__(
        self,
        n_classes: int = 19,
        width: float = 1.0,
        logit_bn: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"DeepLoc: n_classes must be >= 1, got {n_classes}")
        if width <= 0:
            raise ValueError(f"DeepLoc: width must be > 0, got {width}")
        self.n_classes = int(n_classes)
        self.width = float(width)
        self.logit_bn = bool(logit_bn)
        c64, c128, c256, c512 = (_scaled(c, width) for c in (64, 128, 256, 512))

        def conv(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=True)

        def bn2d(c: int) -> nn.BatchNorm2d:
            return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)

        def bn1d(c: int) -> nn.BatchNorm1d:
            return nn.BatchNorm1d(c, eps=BN_EPS, momentum=BN_MOMENTUM)

        # block 1: 60 -> pool 30
        self.conv1, self.bn1 = conv(self.in_channels, c64), bn2d(c64)
        self.conv2, self.bn2 = conv(c64, c64), bn2d(c64)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        # block 2: 30 -> pool 15
        self.conv3, self.bn3 = conv(c64, c128), bn2d(c128)
        self.conv4, self.bn4 = conv(c128, c128), bn2d(c128)
        self.pool2 = nn.MaxPool2d(2, 2, ceil_mode=True)
        # block 3: 15 -> pool 8
        self.conv5, self.bn5 = conv(c128, c256), bn2d(c256)
        self.conv6, self.bn6 = conv(c256, c256), bn2d(c256)
        self.conv7, self.bn7 = conv(c256, c256), bn2d(c256)
        self.conv8, self.bn8 = conv(c256, c256), bn2d(c256)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        # head
        self.fc1, self.bn_fc1 = nn.Linear(8 * 8 * c256, c512), bn1d(c512)
        self.fc2, self.bn_fc2 = nn.Linear(c512, c512), bn1d(c512)
        self.final = nn.Linear(c512, self.n_classes)
        self.bn_final = bn1d(self.n_classes) if self.logit_bn else None

        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """DeepLoc's initialisation: truncated normal (std 0.1, cut at 2 std) weights, biases 0.1.

        Examples
        --------
        >>> import torch
        >>> from bgrobust.models import build_deeploc
        >>> build_deeploc(width=0.25).reset_parameters(torch.Generator().manual_seed(0))
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(
                    module.weight, mean=0.0, std=INIT_STD,
                    a=-2 * INIT_STD, b=2 * INIT_STD, generator=generator,
                )
                nn.init.constant_(module.bias, INIT_BIAS)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.reset_parameters()

    def feature_steps(self) -> tuple[tuple[str, Callable[[torch.Tensor], torch.Tensor]], ...]:
        """``(name, op)`` pairs of the feature path, in order: run them to read several layers in one pass."""
        return self._steps()

    def _steps(self) -> tuple[tuple[str, Callable[[torch.Tensor], torch.Tensor]], ...]:
        """The network, top to bottom, as (name of the output, operation) pairs."""
        relu = F.relu
        logits_bn = self.bn_final if self.bn_final is not None else (lambda x: x)
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
            ("fc1", lambda x: relu(self.bn_fc1(self.fc1(x)))),
            ("fc2", lambda x: relu(self.bn_fc2(self.fc2(x)))),
            ("final", lambda x: logits_bn(self.final(x))),
        )

    @property
    def feature_layers(self) -> tuple[str, ...]:
        """Names accepted by :meth:`features`, in the order the network computes them."""
        return tuple(name for name, _ in self._steps() if not name.startswith("_"))

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.in_channels, self.input_size, self.input_size)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"DeepLoc expects a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            hint = ""
            if x.ndim == 4 and x.shape[-1] == 64:
                hint = " (use five_crops / random_crop to cut 60x60 crops)"
            raise ValueError(
                f"DeepLoc expects input of shape (B, {expected[0]}, {expected[1]}, {expected[2]}) "
                f"(GFP + marker){hint}; got {tuple(x.shape)}"
            )

    def _run(self, x: torch.Tensor, stop: str | None) -> torch.Tensor:
        for name, step in self._steps():
            x = step(x)
            if name == stop:
                break
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for preprocessed 60x60 crops ``(B, 2, 60, 60)``.

        Examples
        --------
        >>> import torch
        >>> from bgrobust.models import build_deeploc
        >>> build_deeploc(width=0.25).eval()(torch.zeros(2, 2, 60, 60)).shape
        torch.Size([2, 19])
        """
        self._check_input(x)
        return self._run(x, None)

    def features(self, x: torch.Tensor, layer: str = "conv5") -> torch.Tensor:
        """The output at a named layer, computing only the layers up to it.

        Parameters
        ----------
        x : torch.Tensor
            Preprocessed 60x60 crops ``(B, 2, 60, 60)`` (GFP, marker).
        layer : str
            One of :attr:`feature_layers`.

        Returns
        -------
        torch.Tensor
            ``(B, C, H, W)`` for convolution and pooling layers, ``(B, D)`` for the rest. Put
            the model in ``eval()`` mode first for inference.

        Examples
        --------
        >>> import torch
        >>> from bgrobust.models import build_deeploc
        >>> build_deeploc(width=0.25).eval().features(torch.zeros(1, 2, 60, 60), "fc2").shape
        torch.Size([1, 128])
        """
        if layer not in self.feature_layers:
            raise ValueError(
                f"DeepLoc has no feature layer {layer!r}; known layers: {', '.join(self.feature_layers)}"
            )
        self._check_input(x)
        return self._run(x, layer)


def build_deeploc(
    width: float = 1.0,
    n_classes: int = 19,
    logit_bn: bool = True,
    generator: torch.Generator | None = None,
) -> DeepLoc:
    """Build a randomly initialised DeepLoc network (DeepLoc's own initialisation).

    Parameters
    ----------
    width : float
        Width multiplier (``1.0`` = original shapes).
    n_classes : int
        Number of classes (19 in the released model).
    logit_bn : bool
        Keep the original BatchNorm on the logits.
    generator : torch.Generator, optional
        Random source for the initialisation.

    Returns
    -------
    DeepLoc

    Examples
    --------
    >>> from bgrobust.models import build_deeploc
    >>> sum(p.numel() for p in build_deeploc().parameters())
    10991417
    """
    return DeepLoc(n_classes=n_classes, width=width, logit_bn=logit_bn, generator=generator)
