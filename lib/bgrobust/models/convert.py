"""Turn the original models' weight files into state dicts of :mod:`bgrobust.models`.

None of the original weights can be downloaded from the project's machines, and TensorFlow is
not a dependency; these converters are for a user who has the files. Each returns a plain
``{key: torch.Tensor}`` state dict that ``model.load_state_dict`` accepts (strictly: the
``num_batches_tracked`` counters, which have no TensorFlow counterpart, are set to 0). Save it
with :func:`save_state_dict` and load it later with ``build(name, weights=path)``, which uses
``torch.load(..., weights_only=True)``.

Layout changes
--------------
* convolution kernels: TensorFlow/Keras ``[kh, kw, in, out]`` (HWIO) -> PyTorch
  ``[out, in, kh, kw]`` (OIHW);
* dense kernels: ``[in, out]`` -> ``nn.Linear.weight`` ``[out, in]``;
* BatchNorm: ``gamma, beta, moving_mean, moving_variance`` -> ``weight, bias, running_mean,
  running_var``;
* the first dense layer after the convolutions (PIFiA ``d1``, DeepLoc ``fc_1``) needs no input
  permutation: our models flatten the last feature map in TensorFlow's (H, W, C) order (see
  :mod:`~bgrobust.models.pifia`), so the transposed kernel maps one to one. (A model that
  flattened in PyTorch's (C, H, W) order would need the columns of ``d1.weight`` permuted.)

Reading TensorFlow checkpoints (offline, where TensorFlow is installed)
-----------------------------------------------------------------------
PIFiA (TF2 object checkpoint ``pifia_weights_i0``) and DeepLoc (TF1 checkpoint
``model.ckpt-5000``) are both read with ``tf.train.load_checkpoint``; dump every variable to a
``.npz`` file::

    import numpy as np, tensorflow as tf
    reader = tf.train.load_checkpoint("model/pretrained_weights/pifia_weights_i0")
    names = [k for k in reader.get_variable_to_shape_map() if k != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    np.savez("pifia_weights_i0.npz", **{k: reader.get_tensor(k) for k in names})

then, in this project::

    from bgrobust.models import build, convert
    state = convert.pifia_from_tf(convert.read_npz("pifia_weights_i0.npz"))
    convert.save_state_dict(state, "pifia.pt")
    model = build("pifia", weights="pifia.pt").eval()

PCI's Keras ``model_weights.h5`` is read directly with :func:`pci_from_keras_h5` (needs ``h5py``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

__all__ = [
    "TF2_SUFFIX",
    "PIFIA_TF_NAMES",
    "DEEPLOC_TF_LAYERS",
    "DEEPLOC_TF_PATTERNS",
    "PCI_KERAS_CONVS",
    "PCI_BN_CREATION_ORDER",
    "pifia_from_tf",
    "deeploc_from_tf",
    "pci_from_keras_h5",
    "read_npz",
    "save_state_dict",
]

#: Suffix of every variable in a TF2 object-based checkpoint.
TF2_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"

_BN_PARAMS = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
              ("moving_variance", "running_var"))


def _pifia_names() -> dict[str, tuple[str, str]]:
    table: dict[str, tuple[str, str]] = {}
    for k in range(1, 9):
        table[f"conv{k}/kernel"] = (f"conv{k}.weight", "conv")
        table[f"conv{k}/bias"] = (f"conv{k}.bias", "vector")
        for tf_name, torch_name in _BN_PARAMS:
            table[f"bn{k}/{tf_name}"] = (f"bn{k}.{torch_name}", "vector")
    for k in range(1, 4):
        table[f"d{k}/kernel"] = (f"d{k}.weight", "dense")
        table[f"d{k}/bias"] = (f"d{k}.bias", "vector")
    return table


#: PIFiA checkpoint variable (without :data:`TF2_SUFFIX`) -> (state-dict key, layout), where
#: layout is ``"conv"`` (HWIO -> OIHW), ``"dense"`` (transpose) or ``"vector"`` (as is).
#: Names as in ``arazd/pifia`` ``model/pretrained_weights/pifia_weights_i0.index``.
PIFIA_TF_NAMES: Mapping[str, tuple[str, str]] = _pifia_names()

_PIFIA_IGNORED = re.compile(r"^(_CHECKPOINTABLE_OBJECT_GRAPH|save_counter|optimizer/|.*OPTIMIZER_SLOT)")


# ------------------------------------------------------------------------------ helpers
def _to_torch(array: np.ndarray, layout: str, name: str) -> torch.Tensor:
    a = np.asarray(array)
    expected_ndim = {"conv": 4, "dense": 2, "vector": 1}[layout]
    if a.ndim != expected_ndim:
        raise ValueError(
            f"variable {name!r}: expected a {expected_ndim}-d array ({layout}), got shape {a.shape}"
        )
    if layout == "conv":
        a = a.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    elif layout == "dense":
        a = a.T  # [in, out] -> [out, in]
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _clean_tf_name(name: str) -> str:
    name = name[:-2] if name.endswith(":0") else name
    return name[: -len(TF2_SUFFIX)] if name.endswith(TF2_SUFFIX) else name


def _bn_counter() -> torch.Tensor:
    return torch.tensor(0, dtype=torch.long)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``.npz`` dump of checkpoint variables into a ``{name: array}`` dict.

    Pickled objects are refused (``allow_pickle=False``).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.npz"
    >>> np.savez(path, **{"conv1/bias/.ATTRIBUTES/VARIABLE_VALUE": np.zeros(3)})
    >>> list(read_npz(path))
    ['conv1/bias/.ATTRIBUTES/VARIABLE_VALUE']
    """
    with np.load(Path(path), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | Path) -> Path:
    """Save a converted state dict with :func:`torch.save` (load it with ``weights_only=True``).

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> path = save_state_dict({"w": torch.zeros(2)}, pathlib.Path(tempfile.mkdtemp()) / "w.pt")
    >>> torch.load(path, weights_only=True)["w"].shape
    torch.Size([2])
    """
    path = Path(path)
    torch.save(dict(state), path)
    return path


# ------------------------------------------------------------------------------ PIFiA
def pifia_from_tf(variables: Mapping[str, Any], strict: bool = True) -> dict[str, torch.Tensor]:
    """Convert PIFiA's TF2 checkpoint variables into a :class:`~bgrobust.models.PIFiA` state dict.

    Parameters
    ----------
    variables : mapping of str to array
        ``{checkpoint variable name: array}``, e.g. from :func:`read_npz` of the dump described in
        the module docstring. Names may carry :data:`TF2_SUFFIX` and/or ``":0"`` or neither.
        The object graph, ``save_counter`` and optimizer slots are ignored.
    strict : bool
        Raise on variables that are neither in :data:`PIFIA_TF_NAMES` nor ignored.

    Returns
    -------
    dict of str to torch.Tensor
        Loadable with ``build("pifia", n_classes=state["d3.weight"].shape[0]).load_state_dict``
        (width 1.0 for the released checkpoint).

    Examples
    --------
    >>> PIFIA_TF_NAMES["conv1/kernel"], PIFIA_TF_NAMES["bn1/moving_variance"]
    (('conv1.weight', 'conv'), ('bn1.running_var', 'vector'))
    """
    cleaned: dict[str, Any] = {}
    unknown: list[str] = []
    for raw, value in variables.items():
        if _PIFIA_IGNORED.match(raw):
            continue
        name = _clean_tf_name(raw)
        if name in PIFIA_TF_NAMES:
            cleaned[name] = value
        else:
            unknown.append(raw)
    if strict and unknown:
        raise ValueError(f"pifia_from_tf: variables not in PIFIA_TF_NAMES: {sorted(unknown)}")
    missing = sorted(set(PIFIA_TF_NAMES) - set(cleaned))
    if missing:
        raise ValueError(f"pifia_from_tf: checkpoint lacks {missing}")
    state: dict[str, torch.Tensor] = {}
    for tf_name, (key, layout) in PIFIA_TF_NAMES.items():
        state[key] = _to_torch(cleaned[tf_name], layout, tf_name)
    for k in range(1, 9):
        state[f"bn{k}.num_batches_tracked"] = _bn_counter()
    return state


# ------------------------------------------------------------------------------ DeepLoc
#: DeepLoc layer scopes (``DeepLoc_train.py``) -> (our layer, our BN, layout of the weights).
DEEPLOC_TF_LAYERS: tuple[tuple[str, str, str, str], ...] = (
    *((f"conv_{k}", f"conv{k}", f"bn{k}", "conv") for k in range(1, 9)),
    ("fc_1", "fc1", "bn_fc1", "dense"),
    ("fc_2", "fc2", "bn_fc2", "dense"),
    ("final_layer", "final", "bn_final", "dense"),
)

#: Assumed TF1 variable names, as regular expressions with ``{scope}`` = the layer scope.
#: ``nn_layers.py`` creates unnamed ``tf.Variable`` s inside ``name_scope(scope)/weights`` and
#: ``/biases`` (-> ``conv_1/weights/Variable``), ``gamma`` / ``beta`` inside
#: ``variable_scope(scope + "_batch_norm")``, and the inference statistics as
#: ``ExponentialMovingAverage`` shadows of the batch mean and variance, whose names embed the
#: TF version's op names for ``tf.nn.moments`` (``moments/Squeeze`` and ``moments/Squeeze_1``, or
#: ``.../mean`` and ``.../variance``). The two shadows of a scope are told apart by sorting their
#: names: the mean sorts first under both conventions. Unverified against a real checkpoint: fix
#: the table, or pass ``overrides`` to :func:`deeploc_from_tf`.
DEEPLOC_TF_PATTERNS: Mapping[str, str] = {
    "weights": r"(^|/){scope}/weights/Variable$",
    "biases": r"(^|/){scope}/biases/Variable$",
    "gamma": r"(^|/){scope}_batch_norm/gamma$",
    "beta": r"(^|/){scope}_batch_norm/beta$",
    "moving_stats": r"(^|/){scope}_batch_norm/.*ExponentialMovingAverage$",
}


def _one_match(pattern: str, names: list[str], what: str) -> str:
    hits = [n for n in names if re.search(pattern, n)]
    if len(hits) != 1:
        raise ValueError(f"deeploc_from_tf: {what}: expected one variable matching {pattern!r}, found {hits}")
    return hits[0]


def deeploc_from_tf(
    variables: Mapping[str, Any],
    logit_bn: bool = True,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, torch.Tensor]:
    """Convert DeepLoc's TF1 checkpoint variables into a :class:`~bgrobust.models.DeepLoc` state dict.

    Parameters
    ----------
    variables : mapping of str to array
        ``{checkpoint variable name: array}`` (see the module docstring for the dump snippet).
        Optimizer slots (``.../Adam``), ``global_step`` and the like are ignored.
    logit_bn : bool
        The checkpoint has BatchNorm on the logits (``final_layer``), as the released model.
    overrides : mapping of str to str, optional
        ``{state-dict key: checkpoint name}`` for entries the assumed names
        (:data:`DEEPLOC_TF_PATTERNS`) get wrong, e.g. ``{"bn1.running_mean": "..."}``.

    Returns
    -------
    dict of str to torch.Tensor

    Examples
    --------
    >>> DEEPLOC_TF_PATTERNS["weights"].format(scope="conv_1")
    '(^|/)conv_1/weights/Variable$'
    """
    arrays = {_clean_tf_name(k): v for k, v in variables.items()}
    names = sorted(arrays)
    overrides = dict(overrides or {})
    known = {f"{layer}.{p}" for _s, layer, _b, _l in DEEPLOC_TF_LAYERS for p in ("weight", "bias")}
    known |= {f"{bn}.{p}" for _s, _l, bn, _x in DEEPLOC_TF_LAYERS
              for p in ("weight", "bias", "running_mean", "running_var")}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"deeploc_from_tf: overrides for unknown state-dict keys {unknown}")
    chosen: dict[str, str] = {}  # state-dict key -> checkpoint name

    for scope, layer, bn, _layout in DEEPLOC_TF_LAYERS:
        has_bn = logit_bn or layer != "final"
        scope_re = re.escape(scope)
        p = {k: v.format(scope=scope_re) for k, v in DEEPLOC_TF_PATTERNS.items()}
        wanted = {f"{layer}.weight": ("weights", p["weights"]), f"{layer}.bias": ("biases", p["biases"])}
        if has_bn:
            wanted[f"{bn}.weight"] = ("gamma", p["gamma"])
            wanted[f"{bn}.bias"] = ("beta", p["beta"])
        for key, (what, pattern) in wanted.items():
            chosen[key] = overrides.get(key) or _one_match(pattern, names, f"{scope} {what}")
        if has_bn:
            mean_key, var_key = f"{bn}.running_mean", f"{bn}.running_var"
            if mean_key in overrides and var_key in overrides:
                chosen[mean_key], chosen[var_key] = overrides[mean_key], overrides[var_key]
            else:
                shadows = sorted(n for n in names if re.search(p["moving_stats"], n))
                if len(shadows) != 2:
                    raise ValueError(
                        f"deeploc_from_tf: {scope}: expected two moving-average shadows matching "
                        f"{p['moving_stats']!r}, found {shadows}; pass overrides"
                    )
                chosen[mean_key], chosen[var_key] = shadows
    final_gamma = DEEPLOC_TF_PATTERNS["gamma"].format(scope="final_layer")
    if not logit_bn and any(re.search(final_gamma, n) for n in names):
        raise ValueError("deeploc_from_tf: the checkpoint has a BatchNorm on the logits; use logit_bn=True")

    layouts = {}
    for _scope, layer, _bn, layout in DEEPLOC_TF_LAYERS:
        layouts[f"{layer}.weight"] = layout
    state: dict[str, torch.Tensor] = {}
    for key, tf_name in chosen.items():
        if tf_name not in arrays:
            raise ValueError(f"deeploc_from_tf: {key}: checkpoint has no variable {tf_name!r}")
        state[key] = _to_torch(arrays[tf_name], layouts.get(key, "vector"), tf_name)
    for _scope, layer, bn, _layout in DEEPLOC_TF_LAYERS:
        if logit_bn or layer != "final":
            state[f"{bn}.num_batches_tracked"] = _bn_counter()
    return state


# ------------------------------------------------------------------------------ PCI
#: Keras layer names of PCI's convolutions (``pair_model.py``); our attributes use the same
#: names. The BatchNorm layers are anonymous in Keras (``batch_normalization_N``).
PCI_KERAS_CONVS: tuple[str, ...] = (
    "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1",
    "rfpconv1_1", "rfpconv2_1", "rfpconv3_1",
    "conv6_1", "conv7_1", "conv8_1", "conv9_1", "conv10_1", "y_gfp",
)

#: The convolutions followed by a BatchNorm, in the order ``pair_model.py`` creates the BN
#: layers (so ``batch_normalization_1`` follows ``conv1_1``, ``_3`` follows ``rfpconv1_1``, ...).
PCI_BN_CREATION_ORDER: tuple[str, ...] = (
    "conv1_1", "conv2_1", "rfpconv1_1", "rfpconv2_1", "conv3_1", "conv4_1", "conv5_1", "rfpconv3_1",
)


def _pci_bn_attr(conv: str) -> str:
    """Our BN attribute following a PCI convolution: conv1_1 -> bn1_1, rfpconv2_1 -> rfpbn2_1."""
    return conv.replace("conv", "bn", 1)


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, (bytes, bytearray, np.bytes_)) else str(value)


def _import_h5py():
    try:
        import h5py  # noqa: PLC0415 (optional dependency)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "pci_from_keras_h5 needs h5py to read Keras .h5 files: pip install 'h5py>=3.9'"
        ) from err
    return h5py


def _inbound_layer(node: Any) -> str | None:
    """The first inbound layer name in a Keras ``inbound_nodes`` entry (old or new format)."""
    if isinstance(node, dict):
        if "keras_history" in node:
            return node["keras_history"][0]
        for value in node.values():
            found = _inbound_layer(value)
            if found:
                return found
        return None
    if isinstance(node, (list, tuple)) and node:
        if isinstance(node[0], str):  # Keras 2: ["conv1_1", 0, 0, {}]
            return node[0]
        for item in node:
            found = _inbound_layer(item)
            if found:
                return found
    return None


def _bn_from_config(config_text: str) -> dict[str, str]:
    """{conv name: BN layer name} from the ``model_config`` JSON of a full-model file."""
    config = json.loads(config_text)
    layers = config.get("config", config).get("layers", [])
    pairs = {}
    for layer in layers:
        if layer.get("class_name") == "BatchNormalization":
            source = _inbound_layer(layer.get("inbound_nodes", []))
            if source in PCI_BN_CREATION_ORDER:
                pairs[source] = layer.get("name") or layer["config"]["name"]
    return pairs


def _bn_by_creation_order(
    layer_names: list[str], weights: dict[str, dict[str, np.ndarray]]
) -> dict[str, str]:
    def order(name: str) -> int:
        tail = re.search(r"_(\d+)$", name)
        return int(tail.group(1)) if tail else 0

    bn_layers = sorted((n for n in layer_names if "gamma" in weights[n]), key=order)
    if len(bn_layers) != len(PCI_BN_CREATION_ORDER):
        raise ValueError(
            f"pci_from_keras_h5: expected {len(PCI_BN_CREATION_ORDER)} BatchNormalization layers, "
            f"found {bn_layers}"
        )
    return dict(zip(PCI_BN_CREATION_ORDER, bn_layers))


def pci_from_keras_h5(
    path: str | Path, bn_layers: Mapping[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Convert PCI's Keras ``.h5`` weights into a :class:`~bgrobust.models.PairedCellInpainting` state dict.

    Reads both full-model files (``model.save``: weights under ``model_weights/``, graph in the
    ``model_config`` attribute; the original ``model_weights.h5``) and weights-only files
    (``model.save_weights``). Convolutions are found by their Keras names
    (:data:`PCI_KERAS_CONVS`). Each anonymous BatchNormalization layer is matched to the
    convolution feeding it: from the graph in ``model_config`` when present, else by creation
    order (:data:`PCI_BN_CREATION_ORDER`, the ``_N`` suffix of ``batch_normalization_N``).
    Channel counts are checked either way.

    Parameters
    ----------
    path : path
        The ``.h5`` file.
    bn_layers : mapping of str to str, optional
        Explicit ``{convolution name: BN layer name}``, e.g. ``{"conv1_1": "batch_normalization_9", ...}``.

    Returns
    -------
    dict of str to torch.Tensor

    Raises
    ------
    ImportError
        When ``h5py`` is not installed.

    Examples
    --------
    >>> PCI_BN_CREATION_ORDER[:3]
    ('conv1_1', 'conv2_1', 'rfpconv1_1')
    """
    h5py = _import_h5py()
    with h5py.File(Path(path), "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        layer_names = [_text(n) for n in root.attrs["layer_names"]]
        weights: dict[str, dict[str, np.ndarray]] = {}
        for layer in layer_names:
            group = root[layer]
            weights[layer] = {}
            for wname in (_text(n) for n in group.attrs.get("weight_names", [])):
                short = wname.split("/")[-1].split(":")[0]  # "conv1_1/kernel:0" -> "kernel"
                weights[layer][short] = np.asarray(group[wname])
        config = f.attrs.get("model_config")
        config_text = _text(config) if config is not None else None

    missing = [c for c in PCI_KERAS_CONVS if c not in weights or "kernel" not in weights[c]]
    if missing:
        raise ValueError(
            f"pci_from_keras_h5: {path} lacks convolution layers {missing}; layers: {layer_names}"
        )
    if bn_layers is not None:
        bn_for = dict(bn_layers)
    else:
        bn_for = _bn_from_config(config_text) if config_text else {}
        if len(bn_for) != len(PCI_BN_CREATION_ORDER):
            bn_for = _bn_by_creation_order(layer_names, weights)

    state: dict[str, torch.Tensor] = {}
    for conv in PCI_KERAS_CONVS:
        state[f"{conv}.weight"] = _to_torch(weights[conv]["kernel"], "conv", f"{conv}/kernel")
        state[f"{conv}.bias"] = _to_torch(weights[conv]["bias"], "vector", f"{conv}/bias")
    for conv in PCI_BN_CREATION_ORDER:
        if conv not in bn_for or bn_for[conv] not in weights:
            raise ValueError(f"pci_from_keras_h5: no BatchNormalization layer found for {conv}")
        bn = weights[bn_for[conv]]
        n_out = state[f"{conv}.bias"].shape[0]
        attr = _pci_bn_attr(conv)
        for keras_name, torch_name in _BN_PARAMS:
            value = _to_torch(bn[keras_name], "vector", f"{bn_for[conv]}/{keras_name}")
            if value.shape[0] != n_out:
                raise ValueError(
                    f"pci_from_keras_h5: {bn_for[conv]} has {value.shape[0]} channels but {conv} "
                    f"has {n_out}; pass bn_layers"
                )
            state[f"{attr}.{torch_name}"] = value
        state[f"{attr}.num_batches_tracked"] = _bn_counter()
    return state
