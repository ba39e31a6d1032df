"""PyTorch re-implementations of the three single-cell feature extractors the paper benchmarks.

* ``"pifia"``: :class:`PIFiA` (:func:`build_pifia`); GFP, 64x64; paper layer ``conv8``;
  head: 4049 proteins.
* ``"pci"``: :class:`PairedCellInpainting` (:func:`build_pci`); GFP + marker, 64x64 (and the
  target cell's marker); paper layer ``conv4_1``; no classifier (it inpaints the target's GFP).
* ``"deeploc"``: :class:`DeepLoc` (:func:`build_deeploc`); GFP + marker, 60x60 crops of the 64x64
  crop (five at test time); paper layer ``conv5``; head: 19 classes.

Typical use::

    from bgrobust import models
    spec = models.get_spec("pci")
    model = models.build("pci", width=0.5, random_state=0).eval()
    x = models.prepare_input("pci", crops)             # (N, 3, 64, 64) crops -> (N, 2, 64, 64)
    with torch.no_grad():
        maps = models.feature_maps(model, x, spec.paper_layer)   # (N, C, 16, 16)

Every model has ``features(x, layer)`` (PCI also ``encode``), which runs only as far as the
named layer; the layer names and their position relative to BatchNorm are listed in
``get_spec(name).layers``. Weights are plain state dicts: :func:`save_weights`, and
``build(name, weights=path)`` loads them with ``torch.load(..., weights_only=True)``. Converters
for the original TensorFlow / Keras files are in :mod:`bgrobust.models.convert`.
"""
from __future__ import annotations

from . import convert
from .deeploc import DeepLoc, build_deeploc
from .pci import PairedCellInpainting, build_pci
from .pifia import PIFiA, build_pifia
from .preprocess import (
    FIVE_CROP_OFFSETS,
    deeploc_preprocess,
    five_crop_mean,
    five_crop_offsets,
    five_crops,
    minmax_scale,
    per_image_standardize,
    percentile_stretch,
    pci_preprocess,
    pifia_preprocess,
    random_crop,
)
from .registry import (
    MODEL_NAMES,
    LayerInfo,
    ModelSpec,
    build,
    feature_maps,
    get_spec,
    load_weights,
    prepare_input,
    save_weights,
)

__all__ = [
    "MODEL_NAMES",
    "LayerInfo",
    "ModelSpec",
    "get_spec",
    "build",
    "feature_maps",
    "prepare_input",
    "save_weights",
    "load_weights",
    "PIFiA",
    "PairedCellInpainting",
    "DeepLoc",
    "build_pifia",
    "build_pci",
    "build_deeploc",
    "minmax_scale",
    "per_image_standardize",
    "percentile_stretch",
    "pifia_preprocess",
    "pci_preprocess",
    "deeploc_preprocess",
    "FIVE_CROP_OFFSETS",
    "five_crop_offsets",
    "five_crops",
    "five_crop_mean",
    "random_crop",
    "convert",
]
