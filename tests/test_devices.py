"""Tests of bgrobust.devices and the ``device`` argument of training and feature extraction.

CI has no GPU: these tests check the CPU path (an explicit ``device`` gives exactly the
default's result), the resolution rules (with ``torch.cuda.is_available`` patched) and
the errors. Nothing here needs a GPU, and nothing is skipped without one.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from bgrobust import features as FE
from bgrobust import models as M
from bgrobust import train as T
from bgrobust.crops import CropSet
from bgrobust.devices import resolve_device
from bgrobust.robustness import as_extractor


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture(scope="module")
def cs():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"strain": list("aaabbb"), "field": [0, 0, 1, 2, 2, 3], "valid": True,
                          "kind": "single", "localization": ["ER"] * 3 + ["vacuole"] * 3})
    return CropSet(rng.integers(0, 3000, (6, 3, 64, 64)).astype(np.uint16), np.zeros((6, 64, 64), bool), table)


@pytest.mark.parametrize("device", [None, "cpu", torch.device("cpu")])
def test_cpu_names_resolve_to_the_cpu(device):
    assert resolve_device(device) == torch.device("cpu")


def test_auto_follows_cuda_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_cuda_without_a_gpu_is_a_clear_error(no_gpu):
    with pytest.raises(ValueError, match="device: 'cuda' asked for a CUDA GPU, but PyTorch sees none"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="CUDA GPU"):
        resolve_device(torch.device("cuda", 0))


def test_a_missing_cuda_index_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match=r"'cuda:3' does not exist; this machine has 1 CUDA device"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("bad", ["gpu", "tpu9", "meta"])
def test_unknown_or_unsupported_names_are_errors(bad):
    with pytest.raises(ValueError, match=rf"device: '{bad}' is not"):
        resolve_device(bad)


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="device must be None, a str or a torch.device, got int"):
        resolve_device(0)


@pytest.mark.parametrize("name", M.MODEL_NAMES)
def test_training_on_an_explicit_cpu_equals_the_default(cs, name, tmp_path):
    # the fixture has one protein per class: DeepLoc's disjoint split would leave it nothing to train on
    params = T.TrainParams(width=0.125, batch_size=2, epochs=1, max_crops_per_epoch=4, train_proteins="all")
    a = T.train(name, cs, params, progress=False)
    b = T.train(name, cs, params, progress=False, device="cpu", checkpoint_dir=tmp_path)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    assert next(b.model.parameters()).device.type == "cpu"
    assert json.loads((tmp_path / "meta.json").read_text())["device"] == "cpu"


def test_training_and_cached_loading_check_the_device(cs, tmp_path, no_gpu):
    params = T.TrainParams(width=0.125, batch_size=2, epochs=1, max_crops_per_epoch=4)
    with pytest.raises(ValueError, match="CUDA GPU"):
        T.train("pifia", cs, params, progress=False, device="cuda")
    T.load_or_train("pifia", cs, params, cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="CUDA GPU"):  # even when the weights are cached
        T.load_or_train("pifia", cs, params, cache_dir=tmp_path, progress=False, device="cuda")


@pytest.mark.parametrize("pooling", ["max", "centre"])
def test_features_on_an_explicit_cpu_equal_the_default(cs, pooling, no_gpu):
    model = M.build("deeploc", width=0.125, n_classes=2, random_state=0)
    a = FE.extract(model, cs.images, "conv5", pooling, progress=False)
    b = FE.extract(model, cs.images, "conv5", pooling, progress=False, device="auto")
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="CUDA GPU"):
        FE.extract(model, cs.images, "conv5", pooling, progress=False, device="cuda")


def test_as_extractor_moves_a_module_to_the_named_device():
    net = torch.nn.Conv2d(3, 4, 3)
    run = as_extractor(net, device="cpu")
    assert run(np.ones((2, 3, 64, 64), np.float32)).shape == (2, 4)
    with pytest.raises(TypeError, match="device must be"):
        as_extractor(net, device=1)


# ---------------------------------------------------------------------------- precision
def test_bfloat16_features_are_close_to_float32_and_cached_under_their_own_key(tmp_path):
    model = M.build("pifia", width=0.25, random_state=0)
    x = np.random.default_rng(1).integers(100, 3000, (8, 3, 64, 64)).astype(np.uint16)
    ref = FE.extract(model, x, progress=False, cache_dir=tmp_path)
    low = FE.extract(model, x, progress=False, cache_dir=tmp_path, precision="bfloat16")
    assert low.dtype == np.float32 and low.shape == ref.shape
    span = ref.max() - ref.min()
    # bfloat16 keeps 8 bits of mantissa (~0.4% per value); benchmarks/results/precision.json measures
    # <= 0.9% of the range at the paper layer, so 5% separates rounding from a wrong computation
    assert 0 < np.abs(low - ref).max() < 0.05 * span
    assert len(list(tmp_path.glob("features-*"))) == 2  # two entries, neither read for the other
    assert np.array_equal(FE.extract(model, x, progress=False, cache_dir=tmp_path), ref)
    digest = FE.array_digest(x)
    assert FE.feature_key(model, "conv8", "max", False, digest) == \
        FE.feature_key(model, "conv8", "max", False, digest, precision="float32")


def test_bfloat16_training_runs_and_has_its_own_key(cs):
    base = T.TrainParams(epochs=1, batch_size=3, width=0.125)
    low = T.TrainParams(epochs=1, batch_size=3, width=0.125, precision="bfloat16")
    assert T.training_key("pifia", cs, base) != T.training_key("pifia", cs, low)
    assert T.training_key("pifia", cs, base) == T.training_key("pifia", cs, T.TrainParams(
        epochs=1, batch_size=3, width=0.125, precision="float32"))
    res = T.train("pifia", cs, low, progress=False)
    assert np.isfinite(res.history.loss).all() and len(res.history) == 2
    assert all(p.dtype == torch.float32 for p in res.model.parameters())


def test_unknown_or_unsupported_precision_is_a_clear_error(cs, no_gpu):
    with pytest.raises(ValueError, match="precision"):
        T.TrainParams(precision="int8")
    with pytest.raises(ValueError, match="'float16' needs a CUDA device"):
        T.train("pifia", cs, T.TrainParams(epochs=1, batch_size=3, width=0.125, precision="float16"),
                progress=False)
    model = M.build("pifia", width=0.25, random_state=0)
    with pytest.raises(ValueError, match="'float16' needs a CUDA device"):
        FE.extract(model, np.zeros((2, 3, 64, 64), np.float32), progress=False, precision="float16")
    from bgrobust.extractors import ModelFeatures
    with pytest.raises(ValueError, match="ModelFeatures: precision"):
        ModelFeatures(model, precision="half")


def test_auto_precision_follows_what_the_device_runs_natively(monkeypatch):
    from bgrobust.devices import check_precision

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert check_precision("auto") == "bfloat16"
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert check_precision("auto") == "float32"  # emulated bfloat16 would be slower than float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert check_precision("auto", "cuda") == "float32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert check_precision("auto", "cuda") == "bfloat16"
