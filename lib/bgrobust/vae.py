"""A convolutional VAE with an adversarial similarity term, after Lafarge et al. (MIDL 2019).

An unsupervised feature extractor that, unlike the three models of the paper, is trained on
nothing but the crops themselves: it learns to reconstruct the whole 64x64 crop, background cells
included, so its features are a natural test of how much of a representation is spent on the
background. The design follows ``tueimage/cytoVAE`` ("VAEPlus"; written from the description in
``shared/reference/anchors-models.md`` section 5, not from the original code):

* a beta-VAE (beta = 2) with a pixel-wise L2 reconstruction loss and the KL divergence to N(0, I);
* plus an *adversarial-driven similarity constraint*: an L2 between the hidden activations of a
  small discriminator for the original crop and for its reconstruction (feature matching), one
  term per hidden discriminator layer, each switched on by a delayed linear ramp (progressive
  training);
* the discriminator itself learns to tell an independent batch of real crops from the
  reconstructions (sigmoid cross-entropy).

The features are the posterior means ``mu`` (:func:`vae_features`), as in the original
``Trainer.image2embedding`` (noise 0, BatchNorm in inference mode).

Architecture (width 1.0, two channels, 64x64 crops; the network runs at the original 68x68 size
on the crop zero-padded by 2 px on each side, and the output is cut back to 64x64)::

    input (zero-padded)               C x 68 x 68
    encoder                                                     5x5 VALID convs, no bias
      conv1 -> bn1 -> pool -> lrelu     32 x 32 x 32   (68 -> 64 -> 32)
      conv2 -> bn2 -> pool -> lrelu     32 x 14 x 14   (32 -> 28 -> 14)
      conv3 -> bn3 -> pool -> lrelu     32 x  5 x  5   (14 -> 10 ->  5)
      conv_embed -> bn_embed          2L x  1 x  1   -> mu, logvar (L = latent_dim = 256)
    z = mu + eps * exp(logvar / 2)      L x  1 x  1
    decoder                                                     pad 4, 5x5 VALID conv, no bias
      dec1: conv -> bn -> lrelu -> up   32 x 10 x 10   (1 -> 9 -> 5 -> 10)
      dec2: conv -> bn -> lrelu -> up   32 x 28 x 28   (10 -> 18 -> 14 -> 28)
      dec3: conv -> bn -> lrelu -> up   32 x 64 x 64   (28 -> 36 -> 32 -> 64)
      dec4: conv -> bn -> lrelu         32 x 68 x 68   (64 -> 72 -> 68)
      rec: 1x1 conv -> bn -> lrelu       C x 68 x 68   -> centre 64 x 64 = the reconstruction
    discriminator (training only; input zero-padded like the encoder's)
      conv1..conv3 -> bn -> pool -> lrelu   as the encoder            <- matched layers 1-3
      conv4 -> bn4 -> lrelu                 64 x 1 x 1                  <- matched layer 4
      conv_logit (1x1) -> bn_logit           1 x 1 x 1   the logit

Faithfulness notes
------------------
* Every convolution is followed by BatchNorm, which replaces the bias (``bias=False``), with the
  original's ``eps = 1e-8`` and moving-average coefficient 0.9 (PyTorch ``momentum=0.1``). The
  embedding layer and the discriminator's logit layer have BatchNorm as well, and no activation.
* Leaky ReLU (slope 0.01) comes *after* max-pooling, as in the original.
* Kernels are initialised from N(0, sqrt(2 / (k*k*C_in + C_out))); BatchNorm scale 1, shift 0.
* The discriminator's BatchNorm statistics come from the first ``2 B`` samples of its input
  ``[independent real batch, reconstructions, originals]`` only (:class:`SubsetBatchNorm2d`).
* The original applies a 1x1 reconstructor to every decoder scale but only the last one enters a
  loss; only that one is built here (the others had no effect on training).
* The original reads 68x68 crops. Here the 64x64 crop is zero-padded by 2 px (after
  normalisation, where the background is ~0), which reproduces every layer shape; the losses are
  computed on the 64x64 crop and the adversarial term is rescaled by ``C * 64 * 64`` (the
  original: 68 * 68 * 3, the input size).
* Optimisation as the released code *actually runs* (see :class:`VAEParams`): Adam at lr 0.01
  (beta1 0.9, beta2 0.999, eps 1e-7) for encoder and decoder, SGD with momentum 0.9 at lr 0.001
  for the discriminator (the original swaps the two learning-rate names), an explicit weight
  decay ``kernel *= 1 - 1e-4`` after every step, all three networks updated every step.
* The adversarial schedule: layer ``k`` (1-based) has weight
  ``clip((step - delay - (k-1) * stagger) / ramp, 0, 1)`` with ``delay = stagger = ramp = 2500``
  steps in the original (:func:`adversarial_schedule`).
* Input normalisation: per-channel **min-max** per crop, not the original's division by the
  channel maximum (``normalization="max"`` restores it). Raw camera images carry an offset
  (~100-200 counts here), so max-division leaves a crop-dependent pedestal under every crop
  whose height depends on the brightness of the brightest pixel; min-max maps the background to
  ~0 and the brightest pixel to 1, so every crop uses the full [0, 1] range, and it is the same
  transform PCI uses, so the two models see identical inputs.
* Input channels: the original reconstructs every channel of its data (DNA, tubulin and actin
  in BBBC021). The default here is GFP + the cytoplasm marker, the input of PCI and DeepLoc; pass
  ``channels=("gfp", "nucleus", "cytoplasm")`` for all three, or ``("gfp",)`` for PIFiA's input.

Typical use::

    from bgrobust.vae import VAEParams, fit_vae, vae_features
    model, history = fit_vae(crops.images, VAEParams.demo())
    features = vae_features(model, crops.images)          # (N, latent_dim) posterior means
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .constraints import Choice, Integer, Optional, Pair, Real, check_params
from .models.preprocess import minmax_scale
from .vocabulary import CHANNELS

__all__ = [
    "VAE",
    "Discriminator",
    "SubsetBatchNorm2d",
    "VAEParams",
    "build_vae",
    "vae_preprocess",
    "kl_divergence",
    "reconstruction_loss",
    "feature_matching_loss",
    "discriminator_loss",
    "adversarial_schedule",
    "fit_vae",
    "vae_features",
    "save_vae",
    "load_vae",
]

#: Side of the crops the model reads and reconstructs.
INPUT_SIZE = 64
#: Side of the original network (cytoVAE reads 68x68 crops); the crop is zero-padded to it.
NATIVE_SIZE = 68
_PAD = (NATIVE_SIZE - INPUT_SIZE) // 2

#: cytoVAE's BatchNorm: eps 1e-8, moving-average coefficient 0.9 (= PyTorch momentum 0.1).
BN_EPS = 1e-8
BN_MOMENTUM = 0.1
#: Leaky ReLU slope of every activation.
LEAK = 0.01
#: Filters of every hidden convolution at width 1.0 (``nbUnits`` in the original).
N_UNITS = 32
#: Units of the discriminator's last hidden layer at width 1.0.
N_DISC_UNITS = 64


def _scaled(channels: int, width: float) -> int:
    """Scale a layer width by ``width`` (rounded, at least 1)."""
    return max(1, int(round(channels * width)))


def _init_kernels(module: nn.Module, generator: torch.Generator | None) -> None:
    """cytoVAE's initialisation: kernels from N(0, sqrt(2 / (k*k*C_in + C_out))), identity BN."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            cout, cin, kh, kw = m.weight.shape
            std = math.sqrt(2.0 / (kh * kw * cin + cout))
            with torch.no_grad():
                m.weight.normal_(0.0, std, generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()


def _conv(cin: int, cout: int, k: int = 5, pad: int = 0) -> nn.Conv2d:
    """A bias-free convolution; ``pad`` zero-pads first (the same as padding, then VALID)."""
    return nn.Conv2d(cin, cout, kernel_size=k, stride=1, padding=pad, bias=False)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LEAK)


def _check_crops(x: torch.Tensor, channels: int, who: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor, got {type(x).__name__}")
    expected = (channels, INPUT_SIZE, INPUT_SIZE)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"{who} expects preprocessed crops of shape (B, {channels}, {INPUT_SIZE}, {INPUT_SIZE}); "
            f"got {tuple(x.shape)}"
        )


# ---------------------------------------------------------------------------------- networks
class VAE(nn.Module):
    """cytoVAE's encoder and decoder for 64x64 crops.

    Parameters
    ----------
    in_channels : int
        Channels of the (preprocessed) crops; the reconstruction has as many.
    latent_dim : int
        Size of the latent code (``embeddingSize``; 256 in the original).
    width : float
        Multiplier for every hidden convolution (32 filters at ``1.0``).
    channels : sequence of str, optional
        Names of the crop channels the model reads (for :func:`vae_features`); default
        ``("gfp", "cytoplasm")`` when ``in_channels == 2``, ``("gfp",)`` for 1 and
        :data:`~bgrobust.screen.CHANNELS` for 3.
    normalization : {"minmax", "max"}
        Per-crop input transform the model was trained with (see :func:`vae_preprocess`).
    generator : torch.Generator, optional
        Random source for the initialisation.

    Examples
    --------
    >>> import torch
    >>> from bgrobust.vae import build_vae
    >>> model = build_vae(width=0.25, latent_dim=8).eval()
    >>> mu, logvar = model.encode(torch.rand(3, 2, 64, 64))
    >>> mu.shape, model.decode(mu).shape
    (torch.Size([3, 8]), torch.Size([3, 2, 64, 64]))
    """

    name = "vae"
    input_size = INPUT_SIZE

    def __init__(
        self,
        in_channels: int = 2,
        latent_dim: int = 256,
        width: float = 1.0,
        channels: Sequence[str] | None = None,
        normalization: str = "minmax",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if int(in_channels) < 1:
            raise ValueError(f"VAE: in_channels must be >= 1, got {in_channels}")
        if int(latent_dim) < 1:
            raise ValueError(f"VAE: latent_dim must be >= 1, got {latent_dim}")
        if not width > 0:
            raise ValueError(f"VAE: width must be > 0, got {width}")
        if normalization not in ("minmax", "max"):
            raise ValueError(f"VAE: normalization must be 'minmax' or 'max', got {normalization!r}")
        if channels is None:
            channels = {1: ("gfp",), 2: ("gfp", "cytoplasm"), 3: CHANNELS}.get(int(in_channels))
        if channels is not None and len(channels) != int(in_channels):
            raise ValueError(f"VAE: {len(channels)} channel names for in_channels={in_channels}")
        self.in_channels = int(in_channels)
        self.latent_dim = int(latent_dim)
        self.width = float(width)
        self.channels = tuple(channels) if channels is not None else None
        self.normalization = normalization
        c = _scaled(N_UNITS, width)

        # encoder: 68 -> 64 -> 32 -> 28 -> 14 -> 10 -> 5 -> 1
        # (the 64x64 crop is zero-padded to the original 68x68 by conv1's padding)
        self.conv1, self.bn1 = _conv(self.in_channels, c, pad=_PAD), _bn(c)
        self.conv2, self.bn2 = _conv(c, c), _bn(c)
        self.conv3, self.bn3 = _conv(c, c), _bn(c)
        self.conv_embed, self.bn_embed = _conv(c, 2 * self.latent_dim), _bn(2 * self.latent_dim)
        # decoder: 1 -> 5 -> 10 -> 14 -> 28 -> 32 -> 64 -> 68
        # (each pads its input by 4 px with zeros, then a VALID 5x5 convolution)
        self.dec_conv1, self.dec_bn1 = _conv(self.latent_dim, c, pad=4), _bn(c)
        self.dec_conv2, self.dec_bn2 = _conv(c, c, pad=4), _bn(c)
        self.dec_conv3, self.dec_bn3 = _conv(c, c, pad=4), _bn(c)
        self.dec_conv4, self.dec_bn4 = _conv(c, c, pad=4), _bn(c)
        # reconstructor: 1x1 to the input channels
        self.rec_conv, self.rec_bn = _conv(c, self.in_channels, k=1), _bn(self.in_channels)

        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-draw the kernels (cytoVAE's initialisation) and reset every BatchNorm.

        Examples
        --------
        >>> import torch
        >>> from bgrobust.vae import build_vae
        >>> build_vae(width=0.25).reset_parameters(torch.Generator().manual_seed(0))
        """
        _init_kernels(self, generator)

    # -- encoder ---------------------------------------------------------------------------
    def _encoder_steps(self) -> tuple[tuple[str, Callable[[torch.Tensor], torch.Tensor]], ...]:
        """The encoder, top to bottom, as (name of the output, operation) pairs."""
        return (
            ("enc1", lambda x: _lrelu(F.max_pool2d(self.bn1(self.conv1(x)), 2))),
            ("enc2", lambda x: _lrelu(F.max_pool2d(self.bn2(self.conv2(x)), 2))),
            ("enc3", lambda x: _lrelu(F.max_pool2d(self.bn3(self.conv3(x)), 2))),
            ("embedding", lambda x: self.bn_embed(self.conv_embed(x)).flatten(1)),
        )

    @property
    def feature_layers(self) -> tuple[str, ...]:
        """Names accepted by :meth:`features`, in the order the encoder computes them."""
        names = tuple(n for n, _ in self._encoder_steps() if not n.startswith("_"))
        return names + ("mu", "logvar")

    def features(self, x: torch.Tensor, layer: str = "mu") -> torch.Tensor:
        """The encoder output at a named layer.

        Parameters
        ----------
        x : torch.Tensor
            Preprocessed crops ``(B, in_channels, 64, 64)``.
        layer : str
            ``"enc1"``, ``"enc2"``, ``"enc3"`` (block outputs, after pooling and leaky ReLU),
            ``"embedding"`` (``mu`` and ``logvar`` side by side), ``"mu"`` (the feature) or
            ``"logvar"``.

        Examples
        --------
        >>> import torch
        >>> from bgrobust.vae import build_vae
        >>> model = build_vae(width=0.25, latent_dim=8).eval()
        >>> model.features(torch.zeros(1, 2, 64, 64), "enc2").shape
        torch.Size([1, 8, 14, 14])
        """
        if layer not in self.feature_layers:
            raise ValueError(
                f"VAE has no feature layer {layer!r}; known layers: {', '.join(self.feature_layers)}"
            )
        _check_crops(x, self.in_channels, "VAE")
        stop = "embedding" if layer in ("mu", "logvar") else layer
        for name, step in self._encoder_steps():
            x = step(x)
            if name == stop:
                break
        if layer == "mu":
            return x[:, : self.latent_dim]
        if layer == "logvar":
            return x[:, self.latent_dim :]
        return x

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters ``(mu, logvar)``, each ``(B, latent_dim)``.

        Examples
        --------
        >>> import torch
        >>> from bgrobust.vae import build_vae
        >>> mu, logvar = build_vae(width=0.25, latent_dim=4).eval().encode(torch.zeros(2, 2, 64, 64))
        >>> tuple(mu.shape), tuple(logvar.shape)
        ((2, 4), (2, 4))
        """
        h = self.features(x, "embedding")
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    # -- decoder ---------------------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruct crops ``(B, in_channels, 64, 64)`` from latent codes ``(B, latent_dim)``.

        Examples
        --------
        >>> import torch
        >>> from bgrobust.vae import build_vae
        >>> build_vae(width=0.25, latent_dim=4).eval().decode(torch.zeros(2, 4)).shape
        torch.Size([2, 2, 64, 64])
        """
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != self.latent_dim:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"VAE.decode expects codes of shape (B, {self.latent_dim}); got {shape}")
        h = z[:, :, None, None]                                                   # 1
        h = F.interpolate(_lrelu(self.dec_bn1(self.dec_conv1(h))), size=10)       # 5 -> 10
        h = F.interpolate(_lrelu(self.dec_bn2(self.dec_conv2(h))), size=28)       # 14 -> 28
        h = F.interpolate(_lrelu(self.dec_bn3(self.dec_conv3(h))), size=64)       # 32 -> 64
        h = _lrelu(self.dec_bn4(self.dec_conv4(h)))                                 # 68
        out = _lrelu(self.rec_bn(self.rec_conv(h)))
        return out[:, :, _PAD : _PAD + INPUT_SIZE, _PAD : _PAD + INPUT_SIZE]

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reconstruction, mu, logvar)``; ``z`` is sampled in training mode, ``mu`` in eval mode.

        Parameters
        ----------
        x : torch.Tensor
            Preprocessed crops ``(B, in_channels, 64, 64)``.
        generator : torch.Generator, optional
            Random source of the reparameterisation noise (training mode only).

        Examples
        --------
        >>> import torch
        >>> from bgrobust.vae import build_vae
        >>> recon, mu, logvar = build_vae(width=0.25, latent_dim=4).eval()(torch.rand(2, 2, 64, 64))
        >>> recon.shape
        torch.Size([2, 2, 64, 64])
        """
        mu, logvar = self.encode(x)
        z = self.sample(mu, logvar, generator) if self.training else mu
        return self.decode(z), mu, logvar

    @staticmethod
    def sample(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterisation: ``mu + eps * exp(logvar / 2)`` with ``eps ~ N(0, I)``."""
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + eps * torch.exp(0.5 * logvar)

    def config(self) -> dict[str, Any]:
        """The constructor arguments (without the generator), for saving with the weights."""
        return {"in_channels": self.in_channels, "latent_dim": self.latent_dim, "width": self.width,
                "channels": list(self.channels) if self.channels else None,
                "normalization": self.normalization}


class SubsetBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics come from the first ``n_stats`` samples of the batch.

    cytoVAE's discriminator reads ``[real batch, reconstructions, originals]`` but normalises all
    three with the statistics of the first two, so the originals never shift the statistics the
    feature-matching term compares against. With ``n_stats=None`` (or in eval mode) it is an
    ordinary :class:`torch.nn.BatchNorm2d`.

    Examples
    --------
    >>> import torch
    >>> bn = SubsetBatchNorm2d(1)
    >>> x = torch.tensor([0.0, 2.0, 100.0]).reshape(3, 1, 1, 1)
    >>> bn(x, n_stats=2).flatten().round().tolist()   # mean 1, std 1 from the first two
    [-1.0, 1.0, 99.0]
    """

    def forward(self, x: torch.Tensor, n_stats: int | None = None) -> torch.Tensor:  # type: ignore[override]
        if not self.training or n_stats is None or n_stats >= x.shape[0]:
            return super().forward(x)
        ref = x[:n_stats]
        mean = ref.mean(dim=(0, 2, 3))
        var = ref.var(dim=(0, 2, 3), unbiased=False)
        if self.track_running_stats:
            n = ref.numel() / ref.shape[1]
            with torch.no_grad():
                self.num_batches_tracked += 1
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
                unbiased = var.detach() * (n / max(n - 1, 1))
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return x * scale[None, :, None, None] + (self.bias - mean * scale)[None, :, None, None]


class Discriminator(nn.Module):
    """cytoVAE's discriminator: three conv-pool blocks, a 5x5 conv to 64 units, a 1x1 logit.

    Parameters
    ----------
    in_channels : int
        Channels of the crops.
    width : float
        Multiplier for the hidden layers (32 filters and 64 units at ``1.0``).
    generator : torch.Generator, optional
        Random source for the initialisation.

    Examples
    --------
    >>> import torch
    >>> disc = Discriminator(2, width=0.25).eval()
    >>> logits, hidden = disc(torch.rand(4, 2, 64, 64))
    >>> logits.shape, [tuple(h.shape[1:]) for h in hidden]
    (torch.Size([4]), [(8, 32, 32), (8, 14, 14), (8, 5, 5), (16, 1, 1)])
    """

    #: Number of hidden layers whose activations enter the feature-matching loss.
    n_hidden = 4

    def __init__(self, in_channels: int = 2, width: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not width > 0:
            raise ValueError(f"Discriminator: width must be > 0, got {width}")
        self.in_channels = int(in_channels)
        c, c4 = _scaled(N_UNITS, width), _scaled(N_DISC_UNITS, width)

        def bn(n: int) -> SubsetBatchNorm2d:
            return SubsetBatchNorm2d(n, eps=BN_EPS, momentum=BN_MOMENTUM)

        self.conv1, self.bn1 = _conv(self.in_channels, c, pad=_PAD), bn(c)   # 64 + 2 * 2 = 68
        self.conv2, self.bn2 = _conv(c, c), bn(c)
        self.conv3, self.bn3 = _conv(c, c), bn(c)
        self.conv4, self.bn4 = _conv(c, c4), bn(c4)
        self.conv_logit, self.bn_logit = _conv(c4, 1, k=1), bn(1)
        _init_kernels(self, generator)

    def forward(self, x: torch.Tensor, n_stats: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits ``(B,)`` and the four hidden activations, for crops ``(B, C, 64, 64)``.

        Parameters
        ----------
        x : torch.Tensor
            Preprocessed crops (or reconstructions), ``(B, in_channels, 64, 64)``.
        n_stats : int, optional
            In training mode, take the BatchNorm statistics from the first ``n_stats`` samples.
        """
        _check_crops(x, self.in_channels, "Discriminator")
        hidden = []
        h = _lrelu(F.max_pool2d(self.bn1(self.conv1(x), n_stats), 2)); hidden.append(h)   # 32
        h = _lrelu(F.max_pool2d(self.bn2(self.conv2(h), n_stats), 2)); hidden.append(h)   # 14
        h = _lrelu(F.max_pool2d(self.bn3(self.conv3(h), n_stats), 2)); hidden.append(h)   # 5
        h = _lrelu(self.bn4(self.conv4(h), n_stats)); hidden.append(h)                     # 1
        logits = self.bn_logit(self.conv_logit(h), n_stats)
        return logits.flatten(), hidden


def build_vae(
    width: float = 1.0,
    latent_dim: int = 256,
    in_channels: int = 2,
    *,
    channels: Sequence[str] | None = None,
    normalization: str = "minmax",
    generator: torch.Generator | None = None,
) -> VAE:
    """Build a randomly initialised :class:`VAE` (cytoVAE's initialisation).

    Parameters
    ----------
    width : float
        Width multiplier (32 filters per hidden convolution at ``1.0``).
    latent_dim : int
        Size of the latent code (256 in the original).
    in_channels : int
        Crop channels (2 = GFP + cytoplasm marker by default).
    channels, normalization, generator
        See :class:`VAE`.

    Examples
    --------
    >>> model = build_vae()
    >>> sum(p.numel() for p in model.parameters())
    745540
    """
    if channels is not None and in_channels != len(channels):
        in_channels = len(channels)
    return VAE(in_channels=in_channels, latent_dim=latent_dim, width=width, channels=channels,
               normalization=normalization, generator=generator)


# ---------------------------------------------------------------------------------- losses
def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over the latent dimensions, averaged over the batch.

    ``0.5 * sum(exp(logvar) + mu**2 - 1 - logvar)``; zero exactly when ``mu = 0`` and
    ``logvar = 0``.

    Examples
    --------
    >>> import torch
    >>> kl_divergence(torch.zeros(3, 5), torch.zeros(3, 5)).item()
    0.0
    >>> kl_divergence(torch.ones(1, 2), torch.zeros(1, 2)).item()   # 0.5 * (1 + 1)
    1.0
    """
    return (0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar).sum(dim=1)).mean()


def reconstruction_loss(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Pixel-wise L2: ``0.5 * sum((x - recon)**2)`` per crop, averaged over the batch.

    Examples
    --------
    >>> import torch
    >>> reconstruction_loss(torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)).item()
    2.0
    """
    return (0.5 * (x - recon).pow(2).flatten(1).sum(dim=1)).mean()


def feature_matching_loss(h_original: torch.Tensor, h_recon: torch.Tensor, base_size: int) -> torch.Tensor:
    """cytoVAE's similarity term for one discriminator layer.

    ``0.5 * base_size * mean((h_original - h_recon)**2)`` over each sample's activations,
    averaged over the batch; ``base_size`` (the number of input values, ``C * 64 * 64``) puts it
    on the scale of :func:`reconstruction_loss`.

    Examples
    --------
    >>> import torch
    >>> feature_matching_loss(torch.ones(2, 3, 1, 1), torch.zeros(2, 3, 1, 1), base_size=10).item()
    5.0
    """
    return (0.5 * base_size * (h_original - h_recon).pow(2).flatten(1).mean(dim=1)).mean()


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy: real crops -> 1, reconstructions -> 0, averaged over both.

    Examples
    --------
    >>> import torch
    >>> round(discriminator_loss(torch.zeros(4), torch.zeros(4)).item(), 4)   # log 2
    0.6931
    """
    logits = torch.cat([logits_real, logits_fake])
    target = torch.cat([torch.ones_like(logits_real), torch.zeros_like(logits_fake)])
    return F.binary_cross_entropy_with_logits(logits, target)


def adversarial_schedule(
    step, n_layers: int = 4, delay: float = 2500.0, stagger: float = 2500.0, ramp: float = 2500.0
) -> np.ndarray:
    """Weights of the feature-matching terms at a training step (progressive training).

    Layer ``k = 1..n_layers`` switches on linearly between steps ``delay + (k-1) * stagger`` and
    ``delay + (k-1) * stagger + ramp`` and stays at 1 afterwards. The original uses
    ``delay = stagger = ramp = 2500`` (``adv_schedule_slope``), so the layers reach full weight
    at steps 5000, 7500, 10000 and 12500 of 80000.

    Parameters
    ----------
    step : int or array_like
        Number of completed training steps.
    n_layers : int
        Number of discriminator layers matched (4).
    delay, stagger, ramp : float
        Start of the first ramp, offset between consecutive layers, ramp length (steps).

    Returns
    -------
    numpy.ndarray
        ``(n_layers,)`` for a scalar step, ``(len(step), n_layers)`` for an array.

    Examples
    --------
    >>> adversarial_schedule(3750).tolist()
    [0.5, 0.0, 0.0, 0.0]
    >>> adversarial_schedule(8750).tolist()
    [1.0, 1.0, 0.5, 0.0]
    >>> adversarial_schedule(5, delay=0, stagger=5, ramp=10).tolist()
    [0.5, 0.0, 0.0, 0.0]
    """
    if not ramp >= 0 or not stagger >= 0 or not delay >= 0:
        raise ValueError(f"adversarial_schedule needs delay, stagger, ramp >= 0; got {delay}, {stagger}, {ramp}")
    steps = np.asarray(step, dtype=np.float64)
    starts = delay + stagger * np.arange(n_layers)
    t = steps[..., None] - starts
    if ramp == 0:
        return (t >= 0).astype(np.float64)
    return np.clip(t / ramp, 0.0, 1.0)


# ---------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class VAEParams:
    """Hyper-parameters of :func:`fit_vae`; defaults are the original's where it has one.

    Attributes
    ----------
    epochs : int
        Passes over the (sub-sampled) training crops. The original runs 80,000 steps of 104 crops
        (``exp_cytoVAE_demo/config.py``); set ``max_steps`` to cap the run by steps instead.
    batch_size : int
        Crops per step (104).
    lr : float
        Adam learning rate of encoder and decoder: 0.01, what the released code runs (its
        ``optimization.py`` gives Adam the value named ``sgd_learningRate``).
    adam_betas : tuple of float
        Adam's (beta1, beta2): (0.9, 0.999); beta1 is the original's ``momentum``.
    adam_eps : float
        Adam's epsilon (1e-7).
    disc_lr : float
        Learning rate of the discriminator's momentum SGD (0.001, see ``lr``).
    disc_momentum : float
        Its momentum (0.9).
    weight_decay : float
        Explicit decay ``kernel *= 1 - weight_decay`` after every step, all networks (1e-4).
    latent_dim : int
        Size of the latent code (256).
    width : float
        Width multiplier of all three networks (1.0 = 32 filters).
    beta : float
        Weight of the KL term in the encoder loss (2.0).
    adv_weight : float
        Overall weight of the feature-matching terms (1.0).
    adv_delay, adv_stagger, adv_ramp : float
        The progressive schedule in steps (2500 each; see :func:`adversarial_schedule`).
    channels : tuple of str
        Crop channels the VAE reads (``("gfp", "cytoplasm")``).
    normalization : {"minmax", "max"}
        Per-crop input transform (see :func:`vae_preprocess`; the original divides by the max).
    seed : int
        Seeds the initialisation, the batch order, the independent real batches and the
        reparameterisation noise (one :class:`torch.Generator` each).
    max_crops_per_epoch : int, optional
        Each epoch uses a fresh random subset of at most this many crops (``None``: all).
    max_steps : int, optional
        Stop after this many steps whatever ``epochs`` says.
    """

    epochs: int = 20
    batch_size: int = 104
    lr: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-7
    disc_lr: float = 0.001
    disc_momentum: float = 0.9
    weight_decay: float = 1e-4
    latent_dim: int = 256
    width: float = 1.0
    beta: float = 2.0
    adv_weight: float = 1.0
    adv_delay: float = 2500.0
    adv_stagger: float = 2500.0
    adv_ramp: float = 2500.0
    channels: tuple[str, ...] = ("gfp", "cytoplasm")
    normalization: str = "minmax"
    seed: int = 0
    max_crops_per_epoch: int | None = None
    max_steps: int | None = None

    _parameter_constraints = {
        "epochs": Integer(1), "batch_size": Integer(2), "lr": Real(0, lo_open=True),
        "adam_betas": Pair(Real(0, 1, hi_open=True)), "adam_eps": Real(0, lo_open=True),
        "disc_lr": Real(0, lo_open=True), "disc_momentum": Real(0, 1, hi_open=True),
        "weight_decay": Real(0, 1, hi_open=True), "latent_dim": Integer(1), "width": Real(0, lo_open=True),
        "beta": Real(0), "adv_weight": Real(0), "adv_delay": Real(0), "adv_stagger": Real(0),
        "adv_ramp": Real(0), "normalization": Choice(("minmax", "max")), "seed": Integer(0),
        "max_crops_per_epoch": Optional(Integer(2)), "max_steps": Optional(Integer(1)),
    }
    _parameter_rules = (
        ("channels", lambda p: isinstance(p.channels, tuple) and bool(p.channels) and all(c in CHANNELS for c in p.channels)
         and len(set(p.channels)) == len(p.channels),
         "must be distinct names from " + str(CHANNELS) + ", got {p.channels}"),
        ("max_crops_per_epoch", lambda p: p.max_crops_per_epoch is None or p.max_crops_per_epoch >= p.batch_size,
         "({p.max_crops_per_epoch}) must be >= batch_size ({p.batch_size})"),
    )

    def __post_init__(self) -> None:
        if isinstance(self.channels, (list, tuple)):
            object.__setattr__(self, "channels", tuple(self.channels))
        betas = self.adam_betas
        if isinstance(betas, (list, tuple)) and all(isinstance(b, (int, float)) and not isinstance(b, bool)
                                                    for b in betas):
            object.__setattr__(self, "adam_betas", tuple(float(b) for b in betas))
        check_params(self)

    @classmethod
    def demo(cls, **overrides: Any) -> "VAEParams":
        """The CPU demo setting: width 0.25, 3 epochs of 3,120 random crops (90 steps of 104).

        The cost does not grow with the data set (each epoch draws 30 batches), every crop of a
        ~6,000-crop set is seen about 1.5 times, and the progressive schedule is compressed to
        the short run: the first matched layer ramps in over steps 9-27, the last one is at full
        weight from step 54 of 90. Everything else keeps the original's values (latent 256,
        beta 2, batch 104, the optimisers). Measured on 5,857 crops on a 2-core machine:
        about 0.4 s per step before the ramp and 0.7 s after (~55-60 s in all) with 2 threads
        and the cores free; 0.5 s and 1.0-1.1 s (85-95 s) with ``num_threads=1``; with 2
        threads while other jobs keep the cores busy, 3-4 s per step (use ``num_threads=1``
        then). At this budget (90 steps against the original's 80,000) the features vary with
        the seed: a linear probe of 15 localisations scored 0.43-0.56 over seeds 0-2, against
        ~0.50 for the untrained network; ``lr=0.001`` (the value the original *meant* for Adam)
        gives a steadier ~0.50.

        Examples
        --------
        >>> VAEParams.demo().width, VAEParams.demo(epochs=2).epochs
        (0.25, 2)
        """
        base = dict(epochs=3, width=0.25, max_crops_per_epoch=3120,
                    adv_delay=9.0, adv_stagger=9.0, adv_ramp=18.0)
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for cache keys and saving)."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["adam_betas"] = list(self.adam_betas)
        return d


def vae_preprocess(crops, normalization: str = "minmax") -> np.ndarray:
    """Per-crop, per-channel input transform of the VAE.

    Parameters
    ----------
    crops : array_like, shape (N, C, H, W)
        Raw crops (any numeric dtype), already restricted to the model's channels.
    normalization : {"minmax", "max"}
        ``"minmax"`` (default): each channel of each crop linearly to [0, 1] by its own min and
        max (a constant channel becomes 0). ``"max"``: divided by its own max, as cytoVAE
        (a channel with max <= 0 becomes 0). Min-max removes the camera offset, which
        max-division would keep as a crop-dependent pedestal (see the module notes).

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Examples
    --------
    >>> vae_preprocess([[[[100.0, 300.0]]]]).tolist()
    [[[[0.0, 1.0]]]]
    >>> vae_preprocess([[[[100.0, 400.0]]]], "max").tolist()
    [[[[0.25, 1.0]]]]
    """
    arr = np.asarray(crops)
    if arr.ndim != 4:
        raise ValueError(f"vae_preprocess expects crops of shape (N, C, H, W), got {arr.shape}")
    if normalization == "minmax":
        return minmax_scale(arr)
    if normalization == "max":
        x = arr.astype(np.float64)
        top = x.max(axis=(-2, -1), keepdims=True)
        ok = top > 0
        return np.where(ok, x / np.where(ok, top, 1.0), 0.0).astype(np.float32)
    raise ValueError(f"vae_preprocess: normalization must be 'minmax' or 'max', got {normalization!r}")


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """Run the block with ``n`` intra-op threads (``None``: leave PyTorch's setting alone)."""
    if n is None:
        yield
        return
    if int(n) < 1:
        raise ValueError(f"num_threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _select_channels(images, channels: Sequence[str], image_channels: Sequence[str], who: str) -> tuple[Any, list[int]]:
    """Check a crop stack and return it with the positions of ``channels`` in it."""
    if not hasattr(images, "shape") or not hasattr(images, "ndim"):
        images = np.asarray(images)
    shape = tuple(images.shape)
    if images.ndim != 4 or shape[1] != len(image_channels) or shape[2:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(
            f"{who} expects crops of shape (N, {len(image_channels)}, {INPUT_SIZE}, {INPUT_SIZE}) with "
            f"channels {tuple(image_channels)}; got {shape}"
        )
    missing = [c for c in channels if c not in image_channels]
    if missing:
        raise ValueError(f"{who}: the model reads channels {tuple(channels)}; the crops have "
                         f"{tuple(image_channels)} (missing {missing})")
    return images, [list(image_channels).index(c) for c in channels]


def _batch(images, index: np.ndarray, idx: list[int], normalization: str) -> torch.Tensor:
    """Preprocessed float32 tensor of the crops at ``index`` (read in sorted order)."""
    order = np.sort(index)
    raw = np.asarray(images[order])[:, idx]
    x = torch.from_numpy(vae_preprocess(raw, normalization))
    return x.contiguous(memory_format=torch.channels_last)


def fit_vae(
    images,
    params: VAEParams | None = None,
    progress: bool = True,
    *,
    image_channels: Sequence[str] = CHANNELS,
    num_threads: int | None = None,
) -> tuple[VAE, pd.DataFrame]:
    """Train a VAE with cytoVAE's objective on a stack of crops.

    Every step: encode a batch, sample ``z``, decode; run the discriminator once on
    ``[independent real batch, reconstructions, originals]`` (BatchNorm statistics from the
    first two); update encoder and decoder on ``L_adv + L_rgb + beta * KL`` (Adam) and the
    discriminator on its cross-entropy (momentum SGD) from that one forward pass; then decay all
    kernels. While every schedule weight is 0 the discriminator sees only
    ``[real, reconstructions]`` (detached), which saves the originals' forward pass and the
    backward pass into the VAE and changes nothing else.

    Deterministic on CPU for a given ``params.seed`` and thread count: initialisation,
    batch order, independent batches and noise each draw from their own seeded
    :class:`torch.Generator`.

    Parameters
    ----------
    images : array_like, shape (N, len(image_channels), 64, 64)
        Raw crops (uint16 or float; a numpy memmap is read batch by batch).
    params : VAEParams, optional
        Hyper-parameters (default :class:`VAEParams`).
    progress : bool
        Show a tqdm progress bar over the steps.
    image_channels : sequence of str
        Channel names of ``images`` (default :data:`~bgrobust.screen.CHANNELS`).
    num_threads : int, optional
        PyTorch intra-op threads for the run (restored afterwards); ``None`` keeps the current
        setting. On a machine whose cores are busy with other work, 1 thread avoids OpenMP
        threads waiting on each other and can be several times faster than 2.

    Returns
    -------
    model : VAE
        The trained network, in eval mode.
    history : pandas.DataFrame
        One row per step: ``step``, ``epoch``, ``loss_rgb``, ``loss_kl``, ``loss_adv`` (weighted
        sum), ``loss_enc`` (the encoder's objective), ``loss_disc``, ``adv_1``..``adv_4``
        (unweighted feature-matching terms; NaN before the first ramp starts), ``w_adv_1``..``w_adv_4`` (schedule weights),
        ``disc_acc`` (discriminator accuracy on real vs reconstructed) and ``seconds``.

    Examples
    --------
    >>> import numpy as np
    >>> crops = np.random.default_rng(0).integers(100, 900, size=(16, 3, 64, 64)).astype(np.uint16)
    >>> params = VAEParams(epochs=1, batch_size=8, width=0.125, latent_dim=4)
    >>> model, history = fit_vae(crops, params, progress=False)
    >>> len(history), vae_features(model, crops).shape
    (2, (16, 4))
    """
    params = params or VAEParams()
    if not isinstance(params, VAEParams):
        raise TypeError(f"fit_vae: params must be a VAEParams, got {type(params).__name__}")
    images, idx = _select_channels(images, params.channels, image_channels, "fit_vae")
    n = int(images.shape[0])
    if n < params.batch_size:
        raise ValueError(f"fit_vae: {n} crops are fewer than one batch of {params.batch_size}")
    per_epoch = n if params.max_crops_per_epoch is None else min(n, params.max_crops_per_epoch)
    steps_per_epoch = per_epoch // params.batch_size       # drop the last, incomplete batch
    total = steps_per_epoch * params.epochs
    if params.max_steps is not None:
        total = min(total, params.max_steps)

    seed = int(params.seed)
    g_init = torch.Generator().manual_seed(seed)
    g_order = torch.Generator().manual_seed(seed + 1)
    g_real = torch.Generator().manual_seed(seed + 2)
    g_noise = torch.Generator().manual_seed(seed + 3)

    c = len(params.channels)
    model = build_vae(width=params.width, latent_dim=params.latent_dim, in_channels=c,
                      channels=params.channels, normalization=params.normalization, generator=g_init)
    disc = Discriminator(c, width=params.width, generator=g_init)
    # channels-last tensors let oneDNN run the narrow 5x5 convolutions 2-4x faster on CPU
    model.to(memory_format=torch.channels_last).train()
    disc.to(memory_format=torch.channels_last).train()
    vae_params = list(model.parameters())
    disc_params = list(disc.parameters())
    opt_vae = torch.optim.Adam(vae_params, lr=params.lr, betas=params.adam_betas, eps=params.adam_eps)
    opt_disc = torch.optim.SGD(disc_params, lr=params.disc_lr, momentum=params.disc_momentum)
    kernels = [m.weight for net in (model, disc) for m in net.modules() if isinstance(m, nn.Conv2d)]
    base_size = c * INPUT_SIZE * INPUT_SIZE
    b = params.batch_size

    rows: list[dict[str, float]] = []
    bar = tqdm(total=total, desc="training VAE", unit="step", disable=not progress)
    start = time.perf_counter()
    step = 0
    with contextlib.ExitStack() as stack:
        stack.enter_context(_torch_threads(num_threads))
        stack.callback(bar.close)
        for epoch in range(params.epochs):
            if step >= total:
                break
            perm = torch.randperm(n, generator=g_order).numpy()[:per_epoch]
            for k in range(steps_per_epoch):
                if step >= total:
                    break
                x = _batch(images, perm[k * b:(k + 1) * b], idx, params.normalization)
                real = _batch(images, torch.randperm(n, generator=g_real)[:b].numpy(), idx,
                              params.normalization)
                weights = adversarial_schedule(step, disc.n_hidden, params.adv_delay,
                                               params.adv_stagger, params.adv_ramp) * params.adv_weight
                adversarial = bool(np.any(weights > 0))

                mu, logvar = model.encode(x)
                z = VAE.sample(mu, logvar, g_noise)
                recon = model.decode(z)
                if adversarial:
                    logits, hidden = disc(torch.cat([real, recon, x]), n_stats=2 * b)
                else:
                    # no feature matching yet: the discriminator only learns, so it needs neither
                    # the originals nor a gradient path into the reconstructions
                    logits, hidden = disc(torch.cat([real, recon.detach()]), n_stats=2 * b)

                loss_rgb = reconstruction_loss(x, recon)
                loss_kl = kl_divergence(mu, logvar)
                adv_terms = [feature_matching_loss(h[2 * b:], h[b:2 * b], base_size) if adversarial
                             else torch.full((), float("nan")) for h in hidden]
                loss_adv = sum(float(w) * t for w, t in zip(weights, adv_terms) if w > 0)
                loss_enc = loss_rgb + params.beta * loss_kl + loss_adv
                loss_disc = discriminator_loss(logits[:b], logits[b:2 * b])
                if not torch.isfinite(loss_enc) or not torch.isfinite(loss_disc):
                    raise FloatingPointError(
                        f"fit_vae: non-finite loss at step {step} (rgb {loss_rgb.item():.4g}, "
                        f"kl {loss_kl.item():.4g}, disc {loss_disc.item():.4g}); lower lr"
                    )

                # encoder and decoder: loss_enc (the decoder's loss_adv + loss_rgb has the same
                # gradient, as the KL term does not depend on the decoder)
                opt_vae.zero_grad(set_to_none=True)
                opt_disc.zero_grad(set_to_none=True)
                loss_enc.backward(inputs=vae_params, retain_graph=True)
                loss_disc.backward(inputs=disc_params)
                opt_vae.step()
                opt_disc.step()
                if params.weight_decay:
                    with torch.no_grad():
                        for w in kernels:
                            w.mul_(1.0 - params.weight_decay)

                with torch.no_grad():
                    acc = 0.5 * ((logits[:b] > 0).float().mean() + (logits[b:2 * b] <= 0).float().mean())
                row = {"step": step, "epoch": epoch, "loss_rgb": loss_rgb.item(), "loss_kl": loss_kl.item(),
                       "loss_adv": float(loss_adv.detach()) if torch.is_tensor(loss_adv) else 0.0, "loss_enc": loss_enc.item(), "loss_disc": loss_disc.item()}
                for j, (w, t) in enumerate(zip(weights, adv_terms), start=1):
                    row[f"adv_{j}"] = t.item()
                    row[f"w_adv_{j}"] = float(w)
                row["disc_acc"] = acc.item()
                row["seconds"] = time.perf_counter() - start
                rows.append(row)
                step += 1
                bar.update(1)
                if progress and step % 10 == 0:
                    bar.set_postfix(rgb=f"{row['loss_rgb']:.1f}", kl=f"{row['loss_kl']:.1f}",
                                    adv=f"{row['loss_adv']:.1f}", disc=f"{row['loss_disc']:.2f}")
    model.to(memory_format=torch.contiguous_format).eval()
    history = pd.DataFrame(rows)
    history.attrs["params"] = params.to_dict()
    return model, history


def vae_features(
    model: VAE,
    images,
    batch_size: int = 256,
    *,
    image_channels: Sequence[str] = CHANNELS,
    progress: bool = False,
    num_threads: int | None = None,
) -> np.ndarray:
    """Posterior means ``mu`` of every crop: the VAE's features.

    Selects the model's channels, applies its per-crop normalisation and runs the encoder in
    eval mode under :func:`torch.inference_mode` (the model's train/eval mode is restored).

    Parameters
    ----------
    model : VAE
    images : array_like, shape (N, len(image_channels), 64, 64)
        Raw crops.
    batch_size : int
        Crops per forward pass.
    image_channels : sequence of str
        Channel names of ``images`` (default :data:`~bgrobust.screen.CHANNELS`).
    progress : bool
        Show a tqdm progress bar.
    num_threads : int, optional
        PyTorch intra-op threads for the call (see :func:`fit_vae`).

    Returns
    -------
    numpy.ndarray
        float32 ``(N, latent_dim)``.

    Examples
    --------
    >>> import numpy as np
    >>> model = build_vae(width=0.25, latent_dim=6)
    >>> vae_features(model, np.zeros((5, 3, 64, 64), np.uint16), batch_size=2).shape
    (5, 6)
    """
    if not isinstance(model, VAE):
        raise TypeError(f"vae_features expects a bgrobust.vae.VAE, got {type(model).__name__}")
    if batch_size < 1:
        raise ValueError(f"vae_features: batch_size must be >= 1, got {batch_size}")
    channels = model.channels or tuple(image_channels[: model.in_channels])
    images, idx = _select_channels(images, channels, image_channels, "vae_features")
    n = int(images.shape[0])
    out = np.empty((n, model.latent_dim), np.float32)
    was_training = model.training
    model.eval()
    try:
        with _torch_threads(num_threads), torch.inference_mode():
            starts = range(0, n, batch_size)
            for s in tqdm(starts, desc="VAE features", unit="batch", disable=not progress):
                raw = np.asarray(images[s:s + batch_size])[:, idx]
                x = torch.from_numpy(vae_preprocess(raw, model.normalization))
                out[s:s + len(x)] = model.features(x, "mu").numpy()
    finally:
        model.train(was_training)
    return out


def save_vae(model: VAE, path) -> Path:
    """Save the weights (a plain state dict) and the constructor arguments, atomically.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = save_vae(build_vae(width=0.25, latent_dim=4), pathlib.Path(tempfile.mkdtemp()) / "vae.pt")
    >>> load_vae(path).latent_dim
    4
    """
    from .cache import atomic_file

    path = Path(path)
    with atomic_file(path) as tmp:
        torch.save({"config": model.config(), "state_dict": model.state_dict()}, tmp)
    return path


def load_vae(path) -> VAE:
    """Load a VAE saved with :func:`save_vae` (``torch.load(..., weights_only=True)``), in eval mode."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "config" not in blob or "state_dict" not in blob:
        raise ValueError(f"load_vae: {path} is not a file written by save_vae")
    model = VAE(**blob["config"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def load_or_fit_vae(dataset, params: dict | None = None, *, cache_dir=None, progress: bool = True):
    """The VAE baseline (:mod:`bgrobust.vae`) fitted on the valid crops, cached on disk.

    ``params`` are :class:`bgrobust.vae.VAEParams` fields; ``preset: demo`` starts from
    :meth:`~bgrobust.vae.VAEParams.demo` (the short CPU run) instead of the original's values.

    Returns
    -------
    model : bgrobust.vae.VAE
    history : DataFrame
    seconds : float
        Wall time of the fit (of the original fit when loaded from the cache).
    """
    import json

    from .cache import atomic_dir, code_key, content_key, load_or_create
    from .paths import cache_folder
    from .train import data_fingerprint

    params = dict(params or {})
    preset = params.pop("preset", None)
    if preset not in (None, "demo"):
        raise ValueError(f"vae.preset must be 'demo' or absent, got {preset!r}")
    vp = VAEParams.demo(**params) if preset == "demo" else VAEParams(**params)
    valid = dataset.valid_crops()
    key = content_key(repr(vp), data_fingerprint(valid, "pifia"), code_key("bgrobust.vae"))
    folder = Path(cache_dir or cache_folder("models")) / f"vae-{key}"

    def build(path):
        start = time.perf_counter()
        model, history = fit_vae(valid.images, vp, progress=progress)
        seconds = time.perf_counter() - start
        with atomic_dir(path, seal=True) as tmp:
            save_vae(model, tmp / "vae.pt")
            history.to_csv(tmp / "history.csv", index=False)
            (tmp / "info.json").write_text(json.dumps({"seconds": seconds, "params": repr(vp)}))

    def load(path):
        info = json.loads((path / "info.json").read_text())
        return load_vae(path / "vae.pt"), pd.read_csv(path / "history.csv"), info["seconds"]

    return load_or_create(folder, build, load, what="fitted VAE")
