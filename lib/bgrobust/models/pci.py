"""Paired Cell Inpainting (Lu, Kraus, Cooper & Moses, PLoS Comput Biol 2019), yeast model.

A PyTorch re-implementation of ``Pair_Model.create_model`` from
``alexxijielu/paired_cell_inpainting`` (``yeast_model/pair_model.py``), written from the
architecture description. The network predicts the protein (GFP) channel of a *target* cell
from a *source* cell of the same strain (GFP + marker) and the target cell's own marker channel.

Architecture (width 1.0; all convolutions 3x3 'same' with ReLU as their activation)::

    source encoder  (GFP + marker, 2 x 64 x 64)
        conv1_1 (ReLU) -> bn1_1 -> pool1          96 x 64 x 64 -> 32 x 32
        conv2_1 (ReLU) -> bn2_1 -> pool2         256 x 32 x 32 -> 16 x 16
        conv3_1 (ReLU) -> bn3_1                  384 x 16 x 16
        conv4_1 (ReLU) -> bn4_1                  384 x 16 x 16   <- the paper's layer ("conv4_1")
        conv5_1 (ReLU) -> bn5_1                  256 x 16 x 16
    target-marker encoder  (marker, 1 x 64 x 64)
        rfpconv1_1 (ReLU) -> rfpbn1_1 -> pool     16 x 32 x 32
        rfpconv2_1 (ReLU) -> rfpbn2_1 -> pool     32 x 16 x 16
        rfpconv3_1 (ReLU) -> rfpbn3_1             32 x 16 x 16
    concatenate (source first)                   288 x 16 x 16
    decoder (no BatchNorm)
        conv6_1, conv7_1, conv8_1 (ReLU)         256, 384, 384 x 16 x 16
        upsample x2 (nearest) -> conv9_1 (ReLU)  256 x 32 x 32
        upsample x2 (nearest) -> conv10_1 (ReLU)  96 x 64 x 64
        y_gfp: 1x1 convolution, linear             1 x 64 x 64   (predicted target GFP)

Faithfulness notes
------------------
* The order is **Conv -> ReLU -> BN** (Keras ``Conv2D(..., activation='relu')`` followed by a
  separate ``BatchNormalization`` layer). The original feature extraction reads the ``Conv2D``
  layer output, so the feature ``"conv4_1"`` is the post-ReLU, **pre-BN** map. The BN output is
  offered as ``"conv4_1_bn"``.
* BatchNorm uses the Keras defaults ``eps=1e-3`` and momentum 0.99 (PyTorch ``momentum=0.01``).
* The final 1x1 layer is called ``y_gfp`` as in the original; the BN layers, which Keras named
  ``batch_normalization_N``, are called ``bn1_1`` .. ``bn5_1`` and ``rfpbn1_1`` .. ``rfpbn3_1``
  after the convolution they follow.
* Initialisation is Keras' default: Glorot-uniform kernels, zero biases, identity BN.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import _ops

__all__ = ["PairedCellInpainting", "build_pci"]

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # Keras momentum 0.99


def _scaled(channels: int, width: float) -> int:
    """Scale a layer width by ``width`` (rounded, at least 1)."""
    return max(1, int(round(channels * width)))


class PairedCellInpainting(nn.Module):
    """The yeast Paired Cell Inpainting network (two encoders and a decoder).

    Parameters
    ----------
    width : float
        Multiplier applied to every convolution width; ``1.0`` gives the original shapes. The
        input channels and the 1-channel output are not scaled.
    generator : torch.Generator, optional
        Random source for the initialisation (default: PyTorch's global generator).

    Examples
    --------
    >>> import torch
    >>> from bgrobust.models import build_pci
    >>> model = build_pci(width=0.25).eval()
    >>> source, target_marker = torch.zeros(2, 2, 64, 64), torch.zeros(2, 1, 64, 64)
    >>> model(source, target_marker).shape
    torch.Size([2, 1, 64, 64])
    >>> model.encode(source, "conv4_1").shape
    torch.Size([2, 96, 16, 16])
    """

    name = "pci"
    in_channels = 2
    target_channels = 1
    input_size = 64

    def __init__(self, width: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"PCI: width must be > 0, got {width}")
        self.width = float(width)
        w = lambda c: _scaled(c, width)  # noqa: E731

        def conv(cin: int, cout: int, kernel: int = 3) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size=kernel, padding=kernel // 2, bias=True)

        def bn(c: int) -> nn.BatchNorm2d:
            return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)

        # source-cell encoder (GFP + marker)
        self.conv1_1, self.bn1_1 = conv(self.in_channels, w(96)), bn(w(96))
        self.conv2_1, self.bn2_1 = conv(w(96), w(256)), bn(w(256))
        self.conv3_1, self.bn3_1 = conv(w(256), w(384)), bn(w(384))
        self.conv4_1, self.bn4_1 = conv(w(384), w(384)), bn(w(384))
        self.conv5_1, self.bn5_1 = conv(w(384), w(256)), bn(w(256))
        # target-marker encoder
        self.rfpconv1_1, self.rfpbn1_1 = conv(self.target_channels, w(16)), bn(w(16))
        self.rfpconv2_1, self.rfpbn2_1 = conv(w(16), w(32)), bn(w(32))
        self.rfpconv3_1, self.rfpbn3_1 = conv(w(32), w(32)), bn(w(32))
        # decoder (no BatchNorm)
        self.conv6_1 = conv(w(256) + w(32), w(256))
        self.conv7_1 = conv(w(256), w(384))
        self.conv8_1 = conv(w(384), w(384))
        self.conv9_1 = conv(w(384), w(256))
        self.conv10_1 = conv(w(256), w(96))
        self.y_gfp = conv(w(96), 1, kernel=1)

        self.pool = nn.MaxPool2d(2, 2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Keras default initialisation: Glorot-uniform kernels, zero biases, identity BN.

        Examples
        --------
        >>> import torch
        >>> from bgrobust.models import build_pci
        >>> build_pci(width=0.25).reset_parameters(torch.Generator().manual_seed(0))
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight, generator=generator)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()

    # ----------------------------------------------------------------- the three streams
    def feature_steps(self) -> tuple[tuple[str, Callable[[torch.Tensor], torch.Tensor]], ...]:
        """``(name, op)`` pairs of the feature path, in order: run them to read several layers in one pass."""
        return self._source_steps()

    def _source_steps(self) -> tuple[tuple[str, Callable[[torch.Tensor], torch.Tensor]], ...]:
        """Source encoder, top to bottom, as (name of the output, operation) pairs."""
        relu_ = _ops.relu_  # the convolution's output is never kept: ReLU in place

        return (
            ("conv1_1", lambda x: relu_(self.conv1_1(x))), ("conv1_1_bn", self.bn1_1),
            ("pool1", self.pool),
            ("conv2_1", lambda x: relu_(self.conv2_1(x))), ("conv2_1_bn", self.bn2_1),
            ("pool2", self.pool),
            ("conv3_1", lambda x: relu_(self.conv3_1(x))), ("conv3_1_bn", self.bn3_1),
            ("conv4_1", lambda x: relu_(self.conv4_1(x))), ("conv4_1_bn", self.bn4_1),
            ("conv5_1", lambda x: relu_(self.conv5_1(x))), ("conv5_1_bn", self.bn5_1),
        )

    def _encode_target_marker(self, y: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.rfpbn1_1(F.relu(self.rfpconv1_1(y))))
        y = self.pool(self.rfpbn2_1(F.relu(self.rfpconv2_1(y))))
        return self.rfpbn3_1(F.relu(self.rfpconv3_1(y)))

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        z = F.relu(self.conv6_1(z))
        z = F.relu(self.conv7_1(z))
        z = F.relu(self.conv8_1(z))
        z = F.relu(self.conv9_1(self.upsample(z)))
        z = F.relu(self.conv10_1(self.upsample(z)))
        return self.y_gfp(z)

    # ----------------------------------------------------------------- public interface
    @property
    def feature_layers(self) -> tuple[str, ...]:
        """Names accepted by :meth:`encode` / :meth:`features`, in computation order."""
        return tuple(name for name, _ in self._source_steps())

    def _check(self, x: torch.Tensor, channels: int, what: str) -> None:
        expected = (channels, self.input_size, self.input_size)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"PCI expects a torch.Tensor for the {what}, got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"PCI expects the {what} of shape (B, {expected[0]}, {expected[1]}, {expected[2]}); "
                f"got {tuple(x.shape)}"
            )

    def forward(self, source: torch.Tensor, target_marker: torch.Tensor) -> torch.Tensor:
        """Predict the target cell's GFP channel.

        Parameters
        ----------
        source : torch.Tensor
            Source crops ``(B, 2, 64, 64)``: GFP, marker (each min-max scaled).
        target_marker : torch.Tensor
            The target crops' marker channel ``(B, 1, 64, 64)``.

        Returns
        -------
        torch.Tensor
            The predicted target GFP ``(B, 1, 64, 64)`` (linear output).

        Examples
        --------
        >>> import torch
        >>> from bgrobust.models import build_pci
        >>> build_pci(width=0.25)(torch.zeros(1, 2, 64, 64), torch.zeros(1, 1, 64, 64)).shape
        torch.Size([1, 1, 64, 64])
        """
        self._check(source, self.in_channels, "source (GFP + marker)")
        self._check(target_marker, self.target_channels, "target marker")
        if source.shape[0] != target_marker.shape[0]:
            raise ValueError(
                f"PCI: source and target marker batch sizes differ "
                f"({source.shape[0]} vs {target_marker.shape[0]})"
            )
        z = source
        for _, step in self._source_steps():
            z = step(z)
        z = torch.cat([z, self._encode_target_marker(target_marker)], dim=1)
        return self._decode(z)

    def encode(self, source: torch.Tensor, layer: str = "conv4_1") -> torch.Tensor:
        """Source-encoder output at a named layer (no target needed).

        Parameters
        ----------
        source : torch.Tensor
            Source crops ``(B, 2, 64, 64)``: GFP, marker.
        layer : str
            One of :attr:`feature_layers`. ``"convK_1"`` is the ``Conv2D`` output (after ReLU,
            **before** BN) as read by the original extraction; ``"convK_1_bn"`` is after BN.

        Returns
        -------
        torch.Tensor
            ``(B, C, H, W)``. Put the model in ``eval()`` mode first for inference.

        Examples
        --------
        >>> import torch
        >>> from bgrobust.models import build_pci
        >>> build_pci(width=0.25).eval().encode(torch.zeros(1, 2, 64, 64), "conv1_1").shape
        torch.Size([1, 24, 64, 64])
        """
        if layer not in self.feature_layers:
            raise ValueError(
                f"PCI has no feature layer {layer!r}; known layers: {', '.join(self.feature_layers)}"
            )
        self._check(source, self.in_channels, "source (GFP + marker)")
        z = source
        for name, step in self._source_steps():
            z = step(z)
            if name == layer:
                break
        return z

    def features(self, x: torch.Tensor, layer: str = "conv4_1") -> torch.Tensor:
        """Uniform feature hook: the same as :meth:`encode`.

        Examples
        --------
        >>> import torch
        >>> from bgrobust.models import build_pci
        >>> build_pci(width=0.25).eval().features(torch.zeros(1, 2, 64, 64)).shape
        torch.Size([1, 96, 16, 16])
        """
        return self.encode(x, layer)


def build_pci(width: float = 1.0, generator: torch.Generator | None = None) -> PairedCellInpainting:
    """Build a randomly initialised yeast Paired Cell Inpainting network.

    Parameters
    ----------
    width : float
        Width multiplier for every convolution (``1.0`` = original shapes).
    generator : torch.Generator, optional
        Random source for the initialisation.

    Returns
    -------
    PairedCellInpainting

    Examples
    --------
    >>> from bgrobust.models import build_pci
    >>> sum(p.numel() for p in build_pci().parameters())
    7320609
    """
    return PairedCellInpainting(width=width, generator=generator)
