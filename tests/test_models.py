"""Tests of bgrobust.models: architectures, feature hooks, preprocessing, registry, converters.

Fast CPU tests: full-width models are built once per module; converters are exercised on
weights the tests write themselves in the original (TensorFlow / Keras) layouts.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bgrobust import models as M
from bgrobust.models import convert
from bgrobust.vocabulary import CHANNELS

INPUTS = {"pifia": (1, 64), "pci": (2, 64), "deeploc": (2, 60)}


def _randomise_bn_stats(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN non-trivial affine parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model


def _x(name: str, batch: int = 2, seed: int = 0) -> torch.Tensor:
    c, s = INPUTS[name]
    return torch.randn(batch, c, s, s, generator=torch.Generator().manual_seed(seed))


def _assert_state_equal(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key].shape == b[key].shape, key
        assert torch.equal(a[key].to(b[key].dtype), b[key]), key


@pytest.fixture(scope="module")
def full_models():
    torch.manual_seed(0)
    return {name: M.build(name).eval() for name in M.MODEL_NAMES}


# ---------------------------------------------------------------------------- shapes and sizes
@pytest.mark.parametrize("name", M.MODEL_NAMES)
def test_every_named_layer_has_the_documented_shape(full_models, name):
    model, spec = full_models[name], M.get_spec(name)
    assert model.feature_layers == spec.feature_layers
    x = _x(name, batch=1)
    with torch.no_grad():
        for info in spec.layers:
            out = model.features(x, info.name)
            assert tuple(out.shape) == (1, *info.shape), info.name


def test_key_shapes_from_the_brief(full_models):
    with torch.no_grad():
        assert full_models["pifia"].features(_x("pifia"), "conv8").shape == (2, 256, 5, 5)
        assert full_models["pifia"].features(_x("pifia"), "d2").shape == (2, 64)
        assert full_models["pci"].encode(_x("pci"), "conv4_1").shape == (2, 384, 16, 16)
        assert full_models["deeploc"].features(_x("deeploc"), "conv5").shape == (2, 256, 15, 15)
        assert full_models["deeploc"].features(_x("deeploc"), "pool3").shape == (2, 256, 8, 8)
        assert full_models["pifia"](_x("pifia")).shape == (2, 4049)
        assert full_models["deeploc"](_x("deeploc")).shape == (2, 19)
        target = torch.randn(2, 1, 64, 64)
        assert full_models["pci"](_x("pci"), target).shape == (2, 1, 64, 64)


def _counts(model: nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stats = sum(b.numel() for k, b in model.named_buffers() if not k.endswith("num_batches_tracked"))
    return trainable, trainable + stats


def test_parameter_counts(full_models):
    # PIFiA: exactly the original's 2,729,873 trainable / 2,732,689 floats (checkpoint size / 4)
    assert _counts(full_models["pifia"]) == (2_729_873, 2_732_689)
    # PCI yeast: 7.32 M, of which 3.32 M trainable in the source encoder up to conv5_1
    assert _counts(full_models["pci"]) == (7_320_609, 7_323_521)
    source = ("conv1_1", "bn1_1", "conv2_1", "bn2_1", "conv3_1", "bn3_1", "conv4_1", "bn4_1", "conv5_1", "bn5_1")
    n_source = sum(p.numel() for k, p in full_models["pci"].named_parameters() if k.split(".")[0] in source)
    assert n_source == 3_323_616
    # DeepLoc (19 classes): 11.0 M, 8.4 M of them in fc1
    assert _counts(full_models["deeploc"]) == (10_991_417, 10_996_319)
    assert sum(p.numel() for p in full_models["deeploc"].fc1.parameters()) == 8_389_120


def test_pifia_state_dict_keys(full_models):
    keys = list(full_models["pifia"].state_dict())
    expected = []
    for k in range(1, 9):
        expected += [f"conv{k}.weight", f"conv{k}.bias"]
        bn_keys = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        expected += [f"bn{k}.{p}" for p in bn_keys]
    expected += [f"d{k}.{p}" for k in (1, 2, 3) for p in ("weight", "bias")]
    assert sorted(keys) == sorted(expected)


def test_batchnorm_hyperparameters(full_models):
    expected = {"pifia": (1e-3, 0.01), "pci": (1e-3, 0.01), "deeploc": (1e-3, 0.5)}
    for name, model in full_models.items():
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert bns
        assert {(m.eps, m.momentum) for m in bns} == {expected[name]}
    assert full_models["deeploc"].bn_final is not None
    assert "bn_final.weight" not in M.build("deeploc", width=0.1, logit_bn=False).state_dict()


# ---------------------------------------------------------------------------- layer order
def test_pci_features_are_post_relu_pre_bn():
    model = _randomise_bn_stats(M.build("pci", width=0.25, random_state=0)).eval()
    x = _x("pci")
    with torch.no_grad():
        c1 = F.relu(F.conv2d(x, model.conv1_1.weight, model.conv1_1.bias, padding=1))
        assert torch.allclose(model.encode(x, "conv1_1"), c1, atol=1e-6)
        bn = model.bn1_1
        c1_bn = (c1 - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + 1e-3)
        c1_bn = c1_bn * bn.weight[:, None, None] + bn.bias[:, None, None]
        assert torch.allclose(model.encode(x, "conv1_1_bn"), c1_bn, atol=1e-5)
        c2 = F.relu(F.conv2d(F.max_pool2d(c1_bn, 2), model.conv2_1.weight, model.conv2_1.bias, padding=1))
        assert torch.allclose(model.encode(x, "conv2_1"), c2, atol=1e-5)
        assert (model.encode(x, "conv4_1") >= 0).all()
        assert (model.encode(x, "conv4_1_bn") < 0).any()


@pytest.mark.parametrize("name", ["pifia", "deeploc"])
def test_conv_blocks_are_conv_bn_relu(name):
    model = _randomise_bn_stats(M.build(name, width=0.25, random_state=0)).eval()
    x = _x(name)
    pad = 0 if name == "pifia" else 1
    with torch.no_grad():
        conv = F.conv2d(x, model.conv1.weight, model.conv1.bias, padding=pad)
        bn = F.batch_norm(conv, model.bn1.running_mean, model.bn1.running_var, model.bn1.weight,
                          model.bn1.bias, training=False, eps=1e-3)
        assert torch.allclose(model.features(x, "conv1_prebn"), conv, atol=1e-6)
        assert torch.allclose(model.features(x, "conv1_prerelu"), bn, atol=1e-5)
        assert torch.allclose(model.features(x, "conv1"), F.relu(bn), atol=1e-5)


def test_deeploc_same_pooling_matches_tensorflow_padding():
    model = M.build("deeploc", width=0.25, random_state=0).eval()
    x = _x("deeploc")
    with torch.no_grad():
        conv8 = model.features(x, "conv8")
        # TF SAME 2x2/2 pooling of 15x15: one -inf row/column of padding at the bottom/right
        tf_pool = F.max_pool2d(F.pad(conv8, (0, 1, 0, 1), value=-math.inf), 2)
        assert torch.equal(model.features(x, "pool3"), tf_pool)


def test_features_stop_at_the_requested_layer():
    model = M.build("pifia", width=0.25, random_state=0).eval()
    called = []
    model.conv3.register_forward_hook(lambda *args: called.append("conv3"))
    model.features(_x("pifia"), "pool1")
    assert called == []
    model.features(_x("pifia"), "conv3")
    assert called == ["conv3"]
    pci = M.build("pci", width=0.25, random_state=0).eval()
    pci.conv6_1.register_forward_hook(lambda *args: called.append("conv6_1"))
    pci.rfpconv1_1.register_forward_hook(lambda *args: called.append("rfpconv1_1"))
    pci.encode(_x("pci"), "conv5_1_bn")
    assert "conv6_1" not in called and "rfpconv1_1" not in called


def test_feature_maps_defaults_to_the_paper_layer():
    for name, layer, channels in (("pifia", "conv8", 64), ("pci", "conv4_1", 96), ("deeploc", "conv5", 64)):
        spec = M.get_spec(name)
        assert spec.paper_layer == layer
        model = M.build(name, width=0.25, random_state=0).eval()
        with torch.no_grad():
            out = M.feature_maps(model, _x(name))
            assert torch.equal(out, model.features(_x(name), layer))
        assert out.shape[1] == channels


# ---------------------------------------------------------------------------- preprocessing
def test_minmax_scale_per_channel_and_constant_guard():
    x = np.array([[[[1.0, 3.0], [5.0, 9.0]], [[-2.0, -2.0], [-2.0, -2.0]]]])  # (1, 2, 2, 2)
    out = M.minmax_scale(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(out[0, 1], np.zeros((2, 2)))  # constant channel -> 0, not NaN
    np.testing.assert_array_equal(M.pci_preprocess(x), out)
    np.testing.assert_allclose(M.minmax_scale(np.full((3, 3), 7.0), constant=0.5), np.full((3, 3), 0.5))


def test_per_image_standardize_including_the_floor():
    x = np.array([[[0.0, 2.0], [4.0, 6.0]]])  # mean 3, population std sqrt(5) > 1/2
    np.testing.assert_allclose(M.per_image_standardize(x), (x - 3.0) / math.sqrt(5.0), rtol=1e-6)
    small = np.array([[[0.0, 0.1], [0.0, 0.1]]])  # std 0.05 < 1/sqrt(4)
    np.testing.assert_allclose(M.per_image_standardize(small), (small - 0.05) / 0.5, rtol=1e-6)
    # the whole (C, H, W) image is standardised together
    two = np.stack([np.zeros((2, 2)), np.ones((2, 2))])[None]  # (1, 2, 2, 2): mean .5, std .5
    floor = 1 / math.sqrt(8)
    np.testing.assert_allclose(M.per_image_standardize(two), (two - 0.5) / max(0.5, floor), rtol=1e-6)


def test_pifia_preprocess():
    rng = np.random.default_rng(0)
    crop = rng.integers(100, 5000, size=(3, 1, 64, 64)).astype(np.uint16)
    out = M.pifia_preprocess(crop)
    mm = (crop - crop.min(axis=(2, 3), keepdims=True)) / np.ptp(crop, axis=(2, 3), keepdims=True)
    expected = (mm - mm.mean(axis=(1, 2, 3), keepdims=True)) / np.maximum(
        mm.std(axis=(1, 2, 3), keepdims=True), 1 / 64)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    blank = M.pifia_preprocess(np.full((1, 1, 64, 64), 300))
    assert np.isfinite(blank).all() and (blank == 0).all()


def test_deeploc_percentile_stretch_both_branches():
    x = np.arange(100.0).reshape(10, 10)
    lo, hi = 0.001 * 99, 99 - 0.001 * 99  # numpy's linear interpolation: 0.099 and 98.901
    expected = (np.minimum(x, hi) - lo) / (hi - lo)
    out = M.deeploc_preprocess(x)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    assert out.min() < 0  # values below the low percentile are not clipped
    assert out.max() == pytest.approx(1.0)
    small = x / 100.0  # range 0.98802 <= 1: shift only, no division
    lo_s, hi_s = lo / 100.0, hi / 100.0
    np.testing.assert_allclose(M.deeploc_preprocess(small), np.minimum(small, hi_s) - lo_s, rtol=1e-6, atol=1e-7)
    # per crop and channel
    both = np.stack([x, small])[None]
    np.testing.assert_allclose(M.deeploc_preprocess(both)[0, 1], M.deeploc_preprocess(small), atol=1e-7)


def test_preprocess_rejects_bad_arrays():
    with pytest.raises(ValueError):
        M.minmax_scale(np.zeros(5))
    with pytest.raises(ValueError):
        M.per_image_standardize(np.zeros((4, 4)))
    with pytest.raises(ValueError):
        M.percentile_stretch(np.zeros((4, 4)), low=50, high=10)


def test_five_crops_and_their_mean():
    x = torch.arange(2 * 1 * 64 * 64, dtype=torch.float32).reshape(2, 1, 64, 64)
    crops = M.five_crops(x)
    assert crops.shape == (2, 5, 1, 60, 60)
    assert M.FIVE_CROP_OFFSETS == ((2, 2), (0, 0), (0, 4), (4, 0), (4, 4))
    for k, (r, c) in enumerate(M.FIVE_CROP_OFFSETS):
        assert torch.equal(crops[:, k], x[:, :, r:r + 60, c:c + 60])
    np.testing.assert_array_equal(M.five_crops(x.numpy()), crops.numpy())
    mean = M.five_crop_mean(lambda z: z.sum(dim=(1, 2, 3)), x)
    assert torch.allclose(mean, crops.sum(dim=(2, 3, 4)).mean(dim=1))
    model = M.build("deeploc", width=0.1, random_state=0).eval()
    with torch.no_grad():
        probs = M.five_crop_mean(lambda z: model(z).softmax(-1), torch.randn(3, 2, 64, 64))
    assert probs.shape == (3, 19) and torch.allclose(probs.sum(-1), torch.ones(3))


def test_random_crop_is_seeded_and_excludes_the_last_offset_by_default():
    x = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 1, 64, 64).repeat(400, 1, 1, 1)
    a = M.random_crop(x, generator=torch.Generator().manual_seed(3))
    b = M.random_crop(x, generator=torch.Generator().manual_seed(3))
    assert a.shape == (400, 1, 60, 60) and torch.equal(a, b)
    rows, cols = (a[:, 0, 0, 0] // 64).long(), (a[:, 0, 0, 0] % 64).long()
    assert set(rows.tolist()) == {0, 1, 2, 3} and set(cols.tolist()) == {0, 1, 2, 3}
    for i in range(0, 400, 37):
        r, c = rows[i].item(), cols[i].item()
        assert torch.equal(a[i], x[i, :, r:r + 60, c:c + 60])
    c = M.random_crop(x, generator=torch.Generator().manual_seed(3), include_last=True)
    assert 4 in set((c[:, 0, 0, 0] // 64).long().tolist())


def test_prepare_input_selects_the_model_channels():
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 4000, size=(3, len(CHANNELS), 64, 64))
    pifia = M.prepare_input("pifia", crops)
    assert pifia.dtype == torch.float32 and pifia.shape == (3, 1, 64, 64)
    np.testing.assert_allclose(pifia.numpy(), M.pifia_preprocess(crops[:, [0]]), atol=1e-6)
    pci = M.prepare_input("pci", crops)
    np.testing.assert_allclose(pci.numpy(), M.minmax_scale(crops[:, [0, 2]]))
    target = M.prepare_input("pci", crops, target=True)
    np.testing.assert_allclose(target.numpy(), M.minmax_scale(crops[:, [2]]))
    deeploc = M.prepare_input("deeploc", crops)
    assert deeploc.shape == (3, 2, 64, 64)
    assert M.get_spec("deeploc").channel_indices() == (0, 2)
    with pytest.raises(ValueError, match="PIFiA"):
        M.prepare_input("pifia", crops[:, :2])
    with pytest.raises(ValueError, match="no target"):
        M.prepare_input("pifia", crops, target=True)
    with pytest.raises(ValueError, match="cytoplasm"):
        M.get_spec("pci").channel_indices(("gfp", "nucleus"))


# ---------------------------------------------------------------------------- width, registry
def test_width_scaling():
    pifia = M.build("pifia", width=0.5, n_classes=10)
    assert (pifia.conv1.out_channels, pifia.conv3.out_channels, pifia.conv8.out_channels) == (32, 64, 128)
    assert (pifia.d1.in_features, pifia.d1.out_features) == (512, 64)
    assert (pifia.d2.out_features, pifia.d3.out_features) == (32, 10)
    pci = M.build("pci", width=0.5)
    assert (pci.conv1_1.out_channels, pci.conv4_1.out_channels, pci.rfpconv1_1.out_channels) == (48, 192, 8)
    assert pci.conv6_1.in_channels == 128 + 16 and pci.y_gfp.out_channels == 1
    deeploc = M.build("deeploc", width=0.5, n_classes=15)
    assert deeploc.conv5.out_channels == 128
    assert (deeploc.fc1.in_features, deeploc.fc1.out_features) == (8 * 8 * 128, 256)
    assert deeploc.final.out_features == 15
    for name in M.MODEL_NAMES:  # a tiny width keeps at least one channel everywhere and still runs
        model = M.build(name, width=0.001).eval()
        assert min(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)) == 1
        with torch.no_grad():
            out = model.features(_x(name), M.get_spec(name).paper_layer)
        assert out.shape[1] == 1


def test_registry_and_input_errors():
    with pytest.raises(ValueError, match="pifia, pci, deeploc"):
        M.get_spec("resnet")
    with pytest.raises(ValueError, match="pifia, pci, deeploc"):
        M.build("vae")
    assert M.get_spec("PIFiA") is M.get_spec("pifia")
    with pytest.raises(ValueError, match="no classifier"):
        M.build("pci", n_classes=3)
    with pytest.raises(TypeError):
        M.build("pifia", width=0.1, random_state=1.5)
    with pytest.raises(ValueError, match="conv4_1"):
        M.get_spec("pci").layer("conv9")
    pifia = M.build("pifia", width=0.1)
    with pytest.raises(ValueError, match=r"PIFiA.*\(B, 1, 64, 64\).*got \(2, 2, 64, 64\)"):
        pifia(torch.zeros(2, 2, 64, 64))
    with pytest.raises(ValueError, match="no feature layer 'conv9'"):
        pifia.features(torch.zeros(1, 1, 64, 64), "conv9")
    deeploc = M.build("deeploc", width=0.1)
    with pytest.raises(ValueError, match=r"DeepLoc.*\(B, 2, 60, 60\).*got \(1, 2, 64, 64\)"):
        deeploc.features(torch.zeros(1, 2, 64, 64), "conv5")
    pci = M.build("pci", width=0.1)
    with pytest.raises(ValueError, match=r"PCI.*target marker.*got \(1, 2, 64, 64\)"):
        pci(torch.zeros(1, 2, 64, 64), torch.zeros(1, 2, 64, 64))
    with pytest.raises(ValueError, match=r"PCI.*source.*got \(1, 1, 64, 64\)"):
        pci.encode(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="batch sizes"):
        pci(torch.zeros(2, 2, 64, 64), torch.zeros(1, 1, 64, 64))
    with pytest.raises(TypeError):
        pifia(np.zeros((1, 1, 64, 64), dtype=np.float32))
    with pytest.raises(TypeError):
        M.feature_maps(nn.Linear(2, 2), torch.zeros(1, 2))


def test_specs_describe_the_inputs():
    assert M.get_spec("pifia").input_channels == ("gfp",)
    assert M.get_spec("pci").input_channels == ("gfp", "cytoplasm")
    assert M.get_spec("pci").target_channels == ("cytoplasm",)
    assert M.get_spec("deeploc").input_size == 60 and M.get_spec("deeploc").five_crop_test
    assert M.get_spec("pci").layer("conv4_1").bn == "pre"
    assert M.get_spec("pifia").layer("conv8").bn == "post"
    assert M.get_spec("deeploc").layer("conv5").bn == "post"
    for name in M.MODEL_NAMES:
        spec = M.get_spec(name)
        assert set(spec.input_channels) <= set(CHANNELS)
        assert spec.paper_layer in spec.feature_layers
        assert {info.bn for info in spec.layers} <= {"pre", "post", "none"}
        with pytest.raises(Exception):
            spec.name = "other"  # frozen


# ---------------------------------------------------------------------------- initialisation, weights
@pytest.mark.parametrize("name", M.MODEL_NAMES)
def test_initialisation_is_deterministic(name):
    torch.manual_seed(5)
    a = M.build(name, width=0.25).state_dict()
    torch.manual_seed(5)
    b = M.build(name, width=0.25).state_dict()
    _assert_state_equal(a, b)
    c = M.build(name, width=0.25, random_state=7).state_dict()
    d = M.build(name, width=0.25, random_state=torch.Generator().manual_seed(7)).state_dict()
    _assert_state_equal(c, d)
    e = M.build(name, width=0.25, random_state=8).state_dict()
    assert not torch.equal(c["conv1.weight" if name != "pci" else "conv1_1.weight"],
                           e["conv1.weight" if name != "pci" else "conv1_1.weight"])


def test_original_initialisers():
    pifia = M.build("pifia", width=0.5, random_state=0)
    for m in pifia.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight
            fan_in = w.shape[1] * w[0, 0].numel()
            fan_out = w.shape[0] * w[0, 0].numel()
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
            assert torch.all(m.bias == 0)
    deeploc = M.build("deeploc", width=0.5, random_state=0)
    w = deeploc.conv5.weight
    assert w.abs().max() <= 0.2 and abs(w.std().item() - 0.088) < 0.005  # truncated N(0, 0.1) at 2 sd
    assert torch.all(deeploc.fc1.bias == 0.1) and torch.all(deeploc.conv1.bias == 0.1)
    assert torch.all(deeploc.bn5.weight == 1) and torch.all(deeploc.bn5.bias == 0)


@pytest.mark.parametrize("name", M.MODEL_NAMES)
def test_weights_only_save_and_load(tmp_path, name):
    model = _randomise_bn_stats(M.build(name, width=0.25, random_state=1)).eval()
    path = M.save_weights(model, tmp_path / f"{name}.pt")
    state = torch.load(path, weights_only=True)
    _assert_state_equal(state, model.state_dict())
    loaded = M.build(name, width=0.25, random_state=2, weights=path).eval()
    x = _x(name)
    with torch.no_grad():
        if name == "pci":
            t = torch.randn(2, 1, 64, 64)
            assert torch.equal(loaded(x, t), model(x, t))
        else:
            assert torch.equal(loaded(x), model(x))


# ---------------------------------------------------------------------------- converters
def _pifia_tf_variables(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's weights written as PIFiA's TF2 checkpoint would hold them."""
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {"_CHECKPOINTABLE_OBJECT_GRAPH": np.array(b"graph")}
    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    for k in range(1, 9):
        out[f"conv{k}/kernel{suffix}"] = sd[f"conv{k}.weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
        out[f"conv{k}/bias{suffix}"] = sd[f"conv{k}.bias"]
        out[f"bn{k}/gamma{suffix}"] = sd[f"bn{k}.weight"]
        out[f"bn{k}/beta{suffix}"] = sd[f"bn{k}.bias"]
        out[f"bn{k}/moving_mean{suffix}"] = sd[f"bn{k}.running_mean"]
        out[f"bn{k}/moving_variance{suffix}"] = sd[f"bn{k}.running_var"]
    for k in range(1, 4):
        out[f"d{k}/kernel{suffix}"] = sd[f"d{k}.weight"].T  # [out, in] -> [in, out]
        out[f"d{k}/bias{suffix}"] = sd[f"d{k}.bias"]
    return out


def test_pifia_tf_round_trip(tmp_path):
    model = _randomise_bn_stats(M.build("pifia", width=0.25, n_classes=7, random_state=3)).eval()
    variables = _pifia_tf_variables(model)
    np.savez(tmp_path / "pifia.npz", **{k: v for k, v in variables.items() if k != "_CHECKPOINTABLE_OBJECT_GRAPH"})
    for source in (variables, convert.read_npz(tmp_path / "pifia.npz")):
        state = convert.pifia_from_tf(source)
        _assert_state_equal(state, model.state_dict())
    fresh = M.build("pifia", width=0.25, n_classes=7, random_state=4).eval()
    fresh.load_state_dict(state)
    x = _x("pifia")
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    # names without the TF2 suffix, with ":0", plus optimizer slots, are accepted
    plain = {k.replace("/.ATTRIBUTES/VARIABLE_VALUE", ":0"): v for k, v in variables.items()}
    plain["d1/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE"] = np.zeros(1)
    plain["save_counter/.ATTRIBUTES/VARIABLE_VALUE"] = np.array(1)
    _assert_state_equal(convert.pifia_from_tf(plain), model.state_dict())
    with pytest.raises(ValueError, match="not in PIFIA_TF_NAMES"):
        convert.pifia_from_tf({**variables, "conv9/kernel": np.zeros((3, 3, 1, 1))})
    with pytest.raises(ValueError, match="lacks"):
        convert.pifia_from_tf({k: v for k, v in variables.items() if not k.startswith("bn3/gamma")})


def test_pifia_tf_layout_against_an_nhwc_reference():
    """Check the converted kernels against TensorFlow-layout arithmetic done independently."""
    model = _randomise_bn_stats(M.build("pifia", width=0.25, n_classes=5, random_state=6)).eval()
    tf = {k.split("/.")[0]: v for k, v in _pifia_tf_variables(model).items()}
    converted = M.build("pifia", width=0.25, n_classes=5)
    converted.load_state_dict(convert.pifia_from_tf(tf))
    converted.eval()
    x = _x("pifia")
    with torch.no_grad():
        # conv1 as a VALID cross-correlation in NHWC with the HWIO kernel
        nhwc = x.permute(0, 2, 3, 1).numpy()
        windows = np.lib.stride_tricks.sliding_window_view(nhwc, (3, 3), axis=(1, 2))  # B,62,62,C,3,3
        ref = np.einsum("bijcyx,yxco->bijo", windows, tf["conv1/kernel"]) + tf["conv1/bias"]
        ours = converted.features(x, "conv1_prebn").permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
        # d1 on the NHWC flatten of pool3 with the [in, out] kernel
        pool3 = converted.features(x, "pool3")
        flat_nhwc = pool3.permute(0, 2, 3, 1).reshape(x.shape[0], -1).numpy()
        ref_d1 = np.maximum(flat_nhwc @ tf["d1/kernel"] + tf["d1/bias"], 0)
        np.testing.assert_allclose(converted.features(x, "d1").numpy(), ref_d1, rtol=1e-4, atol=1e-5)


def _deeploc_tf_variables(model: nn.Module, moments: str = "squeeze") -> dict[str, np.ndarray]:
    """The model's weights under DeepLoc's (assumed) TF1 variable names, plus optimizer clutter."""
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    mean_op, var_op = {"squeeze": ("moments/Squeeze", "moments/Squeeze_1"),
                       "normalize": ("moments/normalize/mean", "moments/normalize/variance")}[moments]
    out: dict[str, np.ndarray] = {"global_step": np.array(5000), "beta1_power": np.array(0.9)}
    layers = [(f"conv_{k}", f"conv{k}", f"bn{k}") for k in range(1, 9)]
    layers += [("fc_1", "fc1", "bn_fc1"), ("fc_2", "fc2", "bn_fc2"), ("final_layer", "final", "bn_final")]
    for scope, layer, bn in layers:
        w = sd[f"{layer}.weight"]
        out[f"{scope}/weights/Variable"] = w.transpose(2, 3, 1, 0) if w.ndim == 4 else w.T
        out[f"{scope}/weights/Variable/Adam"] = np.zeros(1)
        out[f"{scope}/biases/Variable"] = sd[f"{layer}.bias"]
        if f"{bn}.weight" not in sd:
            continue
        bn_scope = f"{scope}/batch_norm/{scope}_batch_norm"
        out[f"{bn_scope}/gamma"] = sd[f"{bn}.weight"]
        out[f"{bn_scope}/gamma/Adam_1"] = np.zeros(1)
        out[f"{bn_scope}/beta"] = sd[f"{bn}.bias"]
        ema = f"{scope}_batch_norm/{bn_scope}"
        out[f"{ema}/{var_op}/ExponentialMovingAverage"] = sd[f"{bn}.running_var"]
        out[f"{ema}/{mean_op}/ExponentialMovingAverage"] = sd[f"{bn}.running_mean"]
        out[f"{ema}/{mean_op}/ExponentialMovingAverage/local_step"] = np.array(1.0)
    return out


@pytest.mark.parametrize("moments", ["squeeze", "normalize"])
def test_deeploc_tf_round_trip(moments):
    model = _randomise_bn_stats(M.build("deeploc", width=0.125, n_classes=6, random_state=3)).eval()
    variables = _deeploc_tf_variables(model, moments)
    state = convert.deeploc_from_tf(variables)
    _assert_state_equal(state, model.state_dict())
    fresh = M.build("deeploc", width=0.125, n_classes=6).eval()
    fresh.load_state_dict(state)
    x = _x("deeploc")
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
        pool3 = fresh.features(x, "pool3").permute(0, 2, 3, 1).reshape(2, -1).numpy()
        fc1_pre = pool3 @ variables["fc_1/weights/Variable"] + variables["fc_1/biases/Variable"]
        bn = fresh.bn_fc1
        ref = np.maximum((fc1_pre - bn.running_mean.numpy()) / np.sqrt(bn.running_var.numpy() + 1e-3)
                         * bn.weight.numpy() + bn.bias.numpy(), 0)
        np.testing.assert_allclose(fresh.features(x, "fc1").numpy(), ref, rtol=1e-4, atol=1e-4)


def test_deeploc_tf_without_logit_bn_and_with_overrides():
    model = _randomise_bn_stats(M.build("deeploc", width=0.125, logit_bn=False, random_state=3)).eval()
    variables = _deeploc_tf_variables(model)
    _assert_state_equal(convert.deeploc_from_tf(variables, logit_bn=False), model.state_dict())
    with pytest.raises(ValueError, match="final_layer"):
        convert.deeploc_from_tf(variables, logit_bn=True)
    renamed = dict(variables)
    renamed["my/odd/name"] = renamed.pop("conv_3/weights/Variable")
    with pytest.raises(ValueError, match="conv_3 weights"):
        convert.deeploc_from_tf(renamed, logit_bn=False)
    with pytest.raises(ValueError, match="unknown state-dict keys"):
        convert.deeploc_from_tf(renamed, logit_bn=False, overrides={"conv9.weight": "my/odd/name"})
    state = convert.deeploc_from_tf(renamed, logit_bn=False, overrides={"conv3.weight": "my/odd/name"})
    _assert_state_equal(state, model.state_dict())


def _write_keras_h5(path, model: nn.Module, full_model: bool, bn_names: dict[str, str]) -> None:
    """Write PCI weights as Keras 2 would: one group per layer, kernels HWIO, BN anonymous."""
    h5py = pytest.importorskip("h5py")
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    convs = ["conv1_1", "conv2_1", "rfpconv1_1", "rfpconv2_1", "conv3_1", "conv4_1", "conv5_1", "rfpconv3_1",
             "conv6_1", "conv7_1", "conv8_1", "conv9_1", "conv10_1", "y_gfp"]
    layers: list[tuple[str, dict[str, np.ndarray]]] = [("x_in", {}), ("y_rfp", {})]
    config_layers = [{"name": "x_in", "class_name": "InputLayer", "config": {}, "inbound_nodes": []},
                     {"name": "y_rfp", "class_name": "InputLayer", "config": {}, "inbound_nodes": []}]
    for conv in convs:
        layers.append((conv, {"kernel": sd[f"{conv}.weight"].transpose(2, 3, 1, 0), "bias": sd[f"{conv}.bias"]}))
        config_layers.append({"name": conv, "class_name": "Conv2D", "config": {"name": conv},
                              "inbound_nodes": [[["previous", 0, 0, {}]]]})
        if conv in bn_names:
            attr = conv.replace("conv", "bn", 1)
            bn = bn_names[conv]
            layers.append((bn, {"gamma": sd[f"{attr}.weight"], "beta": sd[f"{attr}.bias"],
                                "moving_mean": sd[f"{attr}.running_mean"],
                                "moving_variance": sd[f"{attr}.running_var"]}))
            config_layers.append({"name": bn, "class_name": "BatchNormalization", "config": {"name": bn},
                                  "inbound_nodes": [[[conv, 0, 0, {}]]]})
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if full_model else f
        root.attrs["layer_names"] = np.array([name.encode() for name, _ in layers])
        for name, weights in layers:
            g = root.create_group(name)
            names = [f"{name}/{w}:0" for w in weights]
            g.attrs["weight_names"] = np.array([n.encode() for n in names])
            for full, (w, value) in zip(names, weights.items()):
                g.create_dataset(full, data=value)
        if full_model:
            config = {"class_name": "Model", "config": {"layers": config_layers}}
            f.attrs["model_config"] = json.dumps(config).encode()


def test_pci_keras_h5_round_trip(tmp_path):
    pytest.importorskip("h5py")
    model = _randomise_bn_stats(M.build("pci", width=0.125, random_state=3)).eval()
    order = convert.PCI_BN_CREATION_ORDER
    x, t = _x("pci"), torch.randn(2, 1, 64, 64)
    # full-model file whose BN numbering does NOT follow creation order: resolved through the graph
    scrambled = {conv: f"batch_normalization_{20 - i}" for i, conv in enumerate(order)}
    _write_keras_h5(tmp_path / "full.h5", model, full_model=True, bn_names=scrambled)
    state = convert.pci_from_keras_h5(tmp_path / "full.h5")
    _assert_state_equal(state, model.state_dict())
    fresh = M.build("pci", width=0.125).eval()
    fresh.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(fresh(x, t), model(x, t))
    # weights-only file: BN layers matched by creation order (batch_normalization_1 .. _8)
    in_order = {conv: f"batch_normalization_{i + 1}" for i, conv in enumerate(order)}
    _write_keras_h5(tmp_path / "weights.h5", model, full_model=False, bn_names=in_order)
    _assert_state_equal(convert.pci_from_keras_h5(tmp_path / "weights.h5"), model.state_dict())
    # without the graph, scrambled numbering is caught by the channel check ... unless told
    _write_keras_h5(tmp_path / "scrambled.h5", model, full_model=False, bn_names=scrambled)
    with pytest.raises(ValueError, match="channels"):
        convert.pci_from_keras_h5(tmp_path / "scrambled.h5")
    state = convert.pci_from_keras_h5(tmp_path / "scrambled.h5", bn_layers=scrambled)
    _assert_state_equal(state, model.state_dict())


# --------------------------------------------------------------------------- batch-norm folding


def _with_random_bn(name, seed=0):
    """A width-0.25 model whose BatchNorms have non-trivial statistics and affine parameters."""
    from bgrobust.models import build

    kwargs = {} if name == "pci" else {"n_classes": 15}
    model = build(name, width=0.25, random_state=seed, **kwargs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.1)
                m.weight.copy_(torch.randn(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g) * 0.3)
    return model.eval()


@pytest.mark.parametrize("name", ["pifia", "pci", "deeploc"])
def test_fold_batchnorm_keeps_features_within_1e5(name):
    import copy

    from bgrobust.models import get_spec
    from bgrobust.models.fold import fold_batchnorm

    spec = get_spec(name)
    model = _with_random_bn(name)
    x = torch.randn(4, len(spec.input_channels), spec.input_size, spec.input_size,
                    generator=torch.Generator().manual_seed(1))
    folded = copy.deepcopy(model)
    names = fold_batchnorm(folded, keep=[spec.paper_layer])
    with torch.inference_mode():
        ref, out = model.features(x, spec.paper_layer), folded.features(x, spec.paper_layer)
    assert ref.abs().max() > 0.1  # the check is not on an all-zero map
    assert (out - ref).abs().max() < 1e-5
    if name == "pci":
        assert names == []  # Conv -> ReLU -> BN: nothing to fold
    else:
        assert len(names) == 8 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()
                                           if m is not getattr(folded, "bn_final", None))


def test_fold_batchnorm_keeps_a_requested_prebn_layer_and_refuses_training_mode():
    import copy

    from bgrobust.models.fold import fold_batchnorm

    model = _with_random_bn("pifia")
    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    folded = copy.deepcopy(model)
    names = fold_batchnorm(folded, keep=["conv3_prebn"])
    assert "conv3" not in names and len(names) == 7
    with torch.inference_mode():
        assert (folded.features(x, "conv3_prebn") - model.features(x, "conv3_prebn")).abs().max() < 1e-5
    with pytest.raises(ValueError, match="training mode"):
        fold_batchnorm(copy.deepcopy(model).train())


@pytest.mark.parametrize("name", ["pifia", "deeploc"])
def test_extract_with_folded_batchnorm_equals_unfolded(name, monkeypatch):
    import numpy as np

    from bgrobust import features as FE
    from bgrobust.models import get_spec

    model = _with_random_bn(name)
    crops = np.random.default_rng(0).integers(0, 4000, (6, 3, 64, 64)).astype(np.uint16)
    layer = get_spec(name).paper_layer
    fast = FE.extract(model, crops, progress=False)
    unfolded = FE._inference_copy
    monkeypatch.setattr(FE, "_inference_copy", lambda m, layers=(), fold_bn=True: unfolded(m, layers, False))
    slow = FE.extract(model, crops, progress=False)
    assert np.abs(slow).max() > 0.1 and np.abs(fast - slow).max() < 1e-5, layer
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the model itself is untouched
