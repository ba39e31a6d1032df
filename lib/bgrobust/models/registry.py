"""The three feature extractors by name: what they read, how they normalise, where to tap them.

:func:`get_spec` returns a frozen :class:`ModelSpec` per model (``"pifia"``, ``"pci"``,
``"deeploc"``); :func:`build` builds a network from it, optionally loading a state dict saved with
:func:`save_weights` (``torch.load(..., weights_only=True)``).

Channels are named as in the project's crop stacks, :data:`bgrobust.screen.CHANNELS` =
``("gfp", "nucleus", "cytoplasm")``. The "marker" channel of PCI and DeepLoc (RFP / brightfield in
the originals) is the cytoplasm marker here.

Layer tables
------------
``ModelSpec.layers`` lists every named feature point in computation order with its per-crop
output shape at width 1.0 (native input size, default number of classes) and where it sits
relative to BatchNorm:

* ``"pre"``: the output *before* the layer's BatchNorm (PCI's ``convK_1``: Conv -> ReLU, the BN
  comes next; PIFiA/DeepLoc ``convK_prebn``);
* ``"post"``: after it (PIFiA/DeepLoc ``convK`` = Conv -> BN -> ReLU, pooling of such outputs,
  DeepLoc's dense layers, PCI's ``convK_1_bn``);
* ``"none"``: the layer has no BatchNorm (PIFiA's dense layers).

PIFiA's and DeepLoc's ``flatten`` (of a post-BN map) is reported as ``"post"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..vocabulary import CHANNELS, MODEL_TITLES
from .deeploc import build_deeploc
from .pci import build_pci
from .pifia import build_pifia
from .preprocess import deeploc_preprocess, pci_preprocess, pifia_preprocess

__all__ = [
    "LayerInfo",
    "ModelSpec",
    "MODEL_NAMES",
    "get_spec",
    "build",
    "feature_maps",
    "prepare_input",
    "save_weights",
    "load_weights",
]


@dataclass(frozen=True)
class LayerInfo:
    """One named feature point of a model.

    Attributes
    ----------
    name : str
        The name passed to ``model.features(x, name)``.
    shape : tuple of int
        Per-crop output shape at width 1.0 and the model's native input size: ``(C, H, W)`` or
        ``(D,)``.
    bn : {"pre", "post", "none"}
        Whether the output is taken before or after the layer's BatchNorm, or the layer has none.
    description : str
        What the output is, in words.
    """

    name: str
    shape: tuple[int, ...]
    bn: str
    description: str


@dataclass(frozen=True)
class ModelSpec:
    """Everything the pipeline needs to know about one model.

    Attributes
    ----------
    name : str
        Registry key (``"pifia"``, ``"pci"``, ``"deeploc"``).
    title : str
        Display name.
    reference : str
        Original publication and code base.
    input_channels : tuple of str
        Crop channels fed to the network, in order (names from :data:`bgrobust.screen.CHANNELS`).
    input_size : int
        Side of the network input (64, or 60 for DeepLoc).
    crop_size : int
        Side of the stored crops the preprocessing is applied to (64).
    preprocess : callable
        Per-crop transform ``(..., C, H, W) -> float32`` (see :mod:`bgrobust.models.preprocess`).
    layers : tuple of LayerInfo
        Named feature points in computation order.
    paper_layer : str
        The layer Gupta et al. took features from (PIFiA ``conv8``, PCI ``conv4_1``, DeepLoc ``conv5``).
    builder : callable
        ``builder(width=..., [n_classes=...,] generator=..., **kwargs) -> nn.Module``.
    default_n_classes : int or None
        Classes of the released model's head; ``None`` when the model has no classifier (PCI).
    target_channels : tuple of str
        PCI only: the target cell's channel fed to the target-marker encoder.
    five_crop_test : bool
        DeepLoc only: evaluate on five 60x60 crops of the 64x64 crop and average.
    """

    name: str
    title: str
    reference: str
    input_channels: tuple[str, ...]
    input_size: int
    crop_size: int
    preprocess: Callable[[Any], np.ndarray]
    layers: tuple[LayerInfo, ...]
    paper_layer: str
    builder: Callable[..., nn.Module]
    default_n_classes: int | None
    target_channels: tuple[str, ...] = ()
    five_crop_test: bool = False

    @property
    def feature_layers(self) -> tuple[str, ...]:
        """Names of the feature points, in computation order.

        Examples
        --------
        >>> get_spec("pci").feature_layers[:3]
        ('conv1_1', 'conv1_1_bn', 'pool1')
        """
        return tuple(info.name for info in self.layers)

    def layer(self, name: str) -> LayerInfo:
        """The :class:`LayerInfo` of a named layer.

        Examples
        --------
        >>> get_spec("pci").layer("conv4_1").bn
        'pre'
        """
        for info in self.layers:
            if info.name == name:
                return info
        raise ValueError(
            f"{self.title} has no feature layer {name!r}; known layers: {', '.join(self.feature_layers)}"
        )

    def channel_indices(self, channels: Sequence[str] = CHANNELS, target: bool = False) -> tuple[int, ...]:
        """Positions of the model's input (or PCI target) channels in a crop stack.

        Parameters
        ----------
        channels : sequence of str
            Channel names of the crop stack (default :data:`bgrobust.screen.CHANNELS`).
        target : bool
            Return the PCI target-marker channels instead of the input channels.

        Examples
        --------
        >>> get_spec("deeploc").channel_indices()
        (0, 2)
        """
        wanted = self.target_channels if target else self.input_channels
        if target and not wanted:
            raise ValueError(f"{self.title} has no target input")
        missing = [c for c in wanted if c not in channels]
        if missing:
            raise ValueError(
                f"{self.title} needs channels {wanted}; the crop stack has {tuple(channels)} "
                f"(missing {missing})"
            )
        return tuple(list(channels).index(c) for c in wanted)


# ------------------------------------------------------------------------------ layer tables
def _conv_block(name: str, channels: int, side: int, order: str) -> tuple[LayerInfo, ...]:
    """The three feature points of a Conv -> BN -> ReLU block (PIFiA, DeepLoc)."""
    shape = (channels, side, side)
    return (
        LayerInfo(f"{name}_prebn", shape, "pre", f"{name} convolution output (with bias), before BN"),
        LayerInfo(f"{name}_prerelu", shape, "post", f"{name} after BN, before ReLU"),
        LayerInfo(name, shape, "post", f"{name} block output: {order}"),
    )


def _pool(name: str, channels: int, side: int) -> LayerInfo:
    return LayerInfo(name, (channels, side, side), "post", "2x2 max-pool of the previous block output")


_PIFIA_LAYERS = (
    *_conv_block("conv1", 64, 62, "Conv -> BN -> ReLU"),
    *_conv_block("conv2", 64, 60, "Conv -> BN -> ReLU"),
    _pool("pool1", 64, 30),
    *_conv_block("conv3", 128, 28, "Conv -> BN -> ReLU"),
    *_conv_block("conv4", 128, 26, "Conv -> BN -> ReLU"),
    _pool("pool2", 128, 13),
    *_conv_block("conv5", 256, 11, "Conv -> BN -> ReLU"),
    *_conv_block("conv6", 256, 9, "Conv -> BN -> ReLU"),
    *_conv_block("conv7", 256, 7, "Conv -> BN -> ReLU"),
    *_conv_block("conv8", 256, 5, "Conv -> BN -> ReLU (Gupta et al.'s PIFiA layer)"),
    _pool("pool3", 256, 2),
    LayerInfo("flatten", (1024,), "post", "pool3 flattened in TensorFlow's (H, W, C) order"),
    LayerInfo("d1", (128,), "none", "dense d1 after ReLU"),
    LayerInfo("d2", (64,), "none", "dense d2 after ReLU: PIFiA's 64-d feature profile"),
    LayerInfo("d3", (4049,), "none", "logits over the training proteins"),
)

def _pci_conv(name: str, channels: int, side: int, note: str = "") -> tuple[LayerInfo, ...]:
    """The two feature points of a PCI Conv -> ReLU -> BN stage."""
    shape = (channels, side, side)
    return (
        LayerInfo(name, shape, "pre", f"{name} Conv2D output (Conv -> ReLU), before BN{note}"),
        LayerInfo(f"{name}_bn", shape, "post", f"{name} after the BN that follows it"),
    )


_PCI_LAYERS = (
    *_pci_conv("conv1_1", 96, 64),
    LayerInfo("pool1", (96, 32, 32), "post", "2x2 max-pool of conv1_1_bn"),
    *_pci_conv("conv2_1", 256, 32),
    LayerInfo("pool2", (256, 16, 16), "post", "2x2 max-pool of conv2_1_bn"),
    *_pci_conv("conv3_1", 384, 16),
    *_pci_conv("conv4_1", 384, 16, " (Gupta et al.'s PCI layer)"),
    *_pci_conv("conv5_1", 256, 16),
)

_DEEPLOC_LAYERS = (
    *_conv_block("conv1", 64, 60, "Conv -> BN -> ReLU"),
    *_conv_block("conv2", 64, 60, "Conv -> BN -> ReLU"),
    _pool("pool1", 64, 30),
    *_conv_block("conv3", 128, 30, "Conv -> BN -> ReLU"),
    *_conv_block("conv4", 128, 30, "Conv -> BN -> ReLU"),
    _pool("pool2", 128, 15),
    *_conv_block("conv5", 256, 15, "Conv -> BN -> ReLU (Gupta et al.'s DeepLoc layer)"),
    *_conv_block("conv6", 256, 15, "Conv -> BN -> ReLU"),
    *_conv_block("conv7", 256, 15, "Conv -> BN -> ReLU"),
    *_conv_block("conv8", 256, 15, "Conv -> BN -> ReLU"),
    _pool("pool3", 256, 8),
    LayerInfo("flatten", (16384,), "post", "pool3 flattened in TensorFlow's (H, W, C) order"),
    LayerInfo("fc1", (512,), "post", "dense fc1: Linear -> BN -> ReLU"),
    LayerInfo("fc2", (512,), "post", "dense fc2: Linear -> BN -> ReLU"),
    LayerInfo("final", (19,), "post", "logits: Linear -> BN (when logit_bn)"),
)


_SPECS = MappingProxyType({
    "pifia": ModelSpec(
        name="pifia",
        title=MODEL_TITLES["pifia"],
        reference="Razdaibiedina et al., Mol Syst Biol 2024; github.com/arazd/pifia",
        input_channels=("gfp",),
        input_size=64,
        crop_size=64,
        preprocess=pifia_preprocess,
        layers=_PIFIA_LAYERS,
        paper_layer="conv8",
        builder=build_pifia,
        default_n_classes=4049,
    ),
    "pci": ModelSpec(
        name="pci",
        title=MODEL_TITLES["pci"],
        reference="Lu et al., PLoS Comput Biol 2019; github.com/alexxijielu/paired_cell_inpainting",
        input_channels=("gfp", "cytoplasm"),
        input_size=64,
        crop_size=64,
        preprocess=pci_preprocess,
        layers=_PCI_LAYERS,
        paper_layer="conv4_1",
        builder=build_pci,
        default_n_classes=None,
        target_channels=("cytoplasm",),
    ),
    "deeploc": ModelSpec(
        name="deeploc",
        title=MODEL_TITLES["deeploc"],
        reference="Kraus et al., Mol Syst Biol 2017; github.com/okraus/DeepLoc",
        input_channels=("gfp", "cytoplasm"),
        input_size=60,
        crop_size=64,
        preprocess=deeploc_preprocess,
        layers=_DEEPLOC_LAYERS,
        paper_layer="conv5",
        builder=build_deeploc,
        default_n_classes=19,
        five_crop_test=True,
    ),
})

#: Registered model names, in the paper's order.
MODEL_NAMES: tuple[str, ...] = tuple(_SPECS)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a registered model.

    Parameters
    ----------
    name : str
        ``"pifia"``, ``"pci"`` or ``"deeploc"`` (case-insensitive).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.

    Examples
    --------
    >>> spec = get_spec("pifia")
    >>> spec.input_channels, spec.input_size, spec.paper_layer
    (('gfp',), 64, 'conv8')
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in _SPECS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    return _SPECS[key]


def _generator(random_state: int | torch.Generator | None) -> torch.Generator | None:
    if random_state is None or isinstance(random_state, torch.Generator):
        return random_state
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return torch.Generator().manual_seed(int(random_state))
    raise TypeError(
        f"random_state must be None, an int or a torch.Generator, got {type(random_state).__name__}"
    )


def build(
    name: str,
    width: float = 1.0,
    n_classes: int | None = None,
    *,
    random_state: int | torch.Generator | None = None,
    weights: str | Path | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model, randomly initialised as the original or loaded from weights.

    Parameters
    ----------
    name : str
        ``"pifia"``, ``"pci"`` or ``"deeploc"``.
    width : float
        Width multiplier for every convolution / hidden dense layer (``1.0`` = original shapes).
    n_classes : int, optional
        Size of the classifier head (default: the released model's, 4049 for PIFiA and 19 for
        DeepLoc). PCI has no head; passing ``n_classes`` for it is an error.
    random_state : int or torch.Generator, optional
        Seed or generator for the initialisation; ``None`` uses PyTorch's global generator (so
        ``torch.manual_seed`` makes it reproducible).
    weights : path, optional
        A state dict saved with :func:`save_weights` (or by :mod:`bgrobust.models.convert`),
        loaded with ``torch.load(..., weights_only=True)`` after building.
    **kwargs
        Passed to the builder: ``dropout`` (PIFiA), ``logit_bn`` (DeepLoc).

    Returns
    -------
    torch.nn.Module
        In training mode, as PyTorch modules start; call ``.eval()`` for features.

    Examples
    --------
    >>> model = build("deeploc", width=0.5, n_classes=15, random_state=0)
    >>> model.final.out_features, model.conv1.out_channels
    (15, 32)
    """
    spec = get_spec(name)
    if spec.default_n_classes is None:
        if n_classes is not None:
            raise ValueError(f"{spec.title} has no classifier head; do not pass n_classes (got {n_classes})")
        model = spec.builder(width=width, generator=_generator(random_state), **kwargs)
    else:
        n = spec.default_n_classes if n_classes is None else int(n_classes)
        model = spec.builder(width=width, n_classes=n, generator=_generator(random_state), **kwargs)
    if weights is not None:
        load_weights(model, weights)
    return model


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save ``model.state_dict()`` with :func:`torch.save` (tensors only).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pifia.pt"
    >>> _ = save_weights(build("pifia", width=0.25), path)
    >>> _ = build("pifia", width=0.25, weights=path)
    """
    path = Path(path)
    torch.save(model.state_dict(), path)
    return path


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    """Load a state dict file into ``model`` with ``torch.load(..., weights_only=True)``.

    Parameters
    ----------
    model : torch.nn.Module
    path : path
        File written by :func:`save_weights` or a converter.
    strict : bool
        Passed to :meth:`torch.nn.Module.load_state_dict`.

    Returns
    -------
    torch.nn.Module
        ``model``, with its weights replaced.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = save_weights(build("pci", width=0.25), pathlib.Path(tempfile.mkdtemp()) / "pci.pt")
    >>> _ = load_weights(build("pci", width=0.25), path)
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=strict)
    return model


def feature_maps(model: nn.Module, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
    """The output of ``model`` at a named layer: ``(B, C, H, W)`` maps or ``(B, D)`` vectors.

    Runs only as far as ``layer``. The caller chooses ``eval()`` mode and ``torch.no_grad()``.

    Parameters
    ----------
    model : PIFiA, PairedCellInpainting or DeepLoc
    x : torch.Tensor
        Preprocessed network input (for PCI the source crops; no target is needed).
    layer : str, optional
        A name from ``get_spec(model.name).feature_layers``; default: the paper's layer.

    Examples
    --------
    >>> import torch
    >>> model = build("pci", width=0.25).eval()
    >>> feature_maps(model, torch.zeros(2, 2, 64, 64)).shape  # conv4_1
    torch.Size([2, 96, 16, 16])
    """
    if not hasattr(model, "features") or not hasattr(model, "name"):
        raise TypeError(f"feature_maps expects a bgrobust model, got {type(model).__name__}")
    if layer is None:
        layer = get_spec(model.name).paper_layer
    return model.features(x, layer)


def prepare_input(
    name: str,
    crops,
    channels: Sequence[str] = CHANNELS,
    target: bool = False,
) -> torch.Tensor:
    """Select a model's channels from a crop stack and apply its preprocessing.

    Parameters
    ----------
    name : str
        Model name.
    crops : array_like, shape (N, len(channels), crop_size, crop_size)
        Raw crops (any numeric dtype).
    channels : sequence of str
        Channel names of ``crops`` (default :data:`bgrobust.screen.CHANNELS`).
    target : bool
        PCI only: prepare the target-marker input instead of the source input.

    Returns
    -------
    torch.Tensor
        float32 ``(N, C_model, crop_size, crop_size)``. DeepLoc inputs stay 64x64: cut them with
        :func:`~bgrobust.models.preprocess.five_crops` or
        :func:`~bgrobust.models.preprocess.random_crop`.

    Examples
    --------
    >>> import numpy as np
    >>> crops = np.random.default_rng(0).integers(0, 4000, size=(4, 3, 64, 64))
    >>> prepare_input("deeploc", crops).shape
    torch.Size([4, 2, 64, 64])
    """
    spec = get_spec(name)
    arr = np.asarray(crops)
    expected = (len(channels), spec.crop_size, spec.crop_size)
    if arr.ndim != 4 or tuple(arr.shape[1:]) != expected:
        raise ValueError(
            f"{spec.title}: prepare_input expects crops of shape "
            f"(N, {expected[0]}, {expected[1]}, {expected[2]}) for channels {tuple(channels)}; "
            f"got {arr.shape}"
        )
    idx = list(spec.channel_indices(channels, target=target))
    return torch.from_numpy(np.ascontiguousarray(spec.preprocess(arr[:, idx])))
