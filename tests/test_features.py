"""Tests of bgrobust.features: pooling, DeepLoc's five crops, multi-layer extraction, the cache.

Tiny CPU tests: width-0.125 networks on a handful of random crops.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bgrobust import features as FE
from bgrobust import models as M
from bgrobust.cache import array_digest
from bgrobust.crops import CropSet

WIDTH = 0.125



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP synchronisation costs on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(0).integers(0, 4000, size=(5, 3, 64, 64)).astype(np.uint16)


@pytest.fixture(scope="module")
def nets():
    out = {}
    for i, name in enumerate(M.MODEL_NAMES):
        kwargs = {} if name == "pci" else {"n_classes": 7}
        model = M.build(name, width=WIDTH, random_state=i, **kwargs)
        # non-trivial BN statistics, so that eval vs train mode matters
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.running_mean.uniform_(-0.1, 0.1, generator=torch.Generator().manual_seed(i))
                    m.running_var.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(i + 1))
        out[name] = model.eval()
    return out


def _centre_pool(z, sigma=0.25):
    """Gaussian weights centred on the map's centre, sd = sigma x side, summing to 1."""
    h, w = z.shape[-2:]
    i = torch.arange(h, dtype=torch.float64) - (h - 1) / 2
    j = torch.arange(w, dtype=torch.float64) - (w - 1) / 2
    g = torch.exp(-(i[:, None] ** 2 / (2 * (sigma * h) ** 2) + j[None, :] ** 2 / (2 * (sigma * w) ** 2)))
    return (z * (g / g.sum()).to(z.dtype)).sum(dim=(-2, -1))


def _manual(model, crops, layer, pooling, five_crop):
    """The definition, written out: preprocess, network, pool (and DeepLoc's crop average)."""
    x = M.prepare_input(model.name, crops)
    pool = {"max": lambda z: z.amax(dim=(-2, -1)), "mean": lambda z: z.mean(dim=(-2, -1)),
            "none": lambda z: z.flatten(1), "centre": _centre_pool}[pooling]

    def f(z):
        out = M.feature_maps(model, z, layer)
        return out if out.ndim == 2 else pool(out)

    with torch.no_grad():
        if model.name == "deeploc":
            if five_crop:
                return M.five_crop_mean(f, x).numpy()
            return f(x[:, :, 2:62, 2:62]).numpy()
        return f(x).numpy()


# ---------------------------------------------------------------------------- extract
@pytest.mark.parametrize("name", M.MODEL_NAMES)
@pytest.mark.parametrize("pooling", FE.POOLINGS)
def test_extract_matches_the_definition_at_the_paper_layer(nets, crops, name, pooling):
    model = nets[name]
    got = FE.extract(model, crops, pooling=pooling, progress=False)
    want = _manual(model, crops, M.get_spec(name).paper_layer, pooling, five_crop=True)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)  # channels-last vs default layout


def test_shapes_per_pooling_and_vector_layers_are_not_pooled(nets, crops):
    pifia = nets["pifia"]
    c = M.get_spec("pifia").layer("conv8").shape[0] * WIDTH
    assert FE.extract(pifia, crops, progress=False).shape == (5, c)
    assert FE.extract(pifia, crops, pooling="none", progress=False).shape == (5, c * 25)
    d2_max = FE.extract(pifia, crops, "d2", pooling="max", progress=False)
    d2_none = FE.extract(pifia, crops, "d2", pooling="none", progress=False)
    assert d2_max.shape == (5, 8)
    np.testing.assert_array_equal(d2_max, d2_none)


def test_deeploc_five_crop_option(nets, crops):
    model = nets["deeploc"]
    five = FE.extract(model, crops, "conv5", progress=False)
    centre = FE.extract(model, crops, "conv5", five_crop=False, progress=False)
    np.testing.assert_allclose(centre, _manual(model, crops, "conv5", "max", False), rtol=1e-4, atol=1e-5)
    assert not np.allclose(five, centre)
    with pytest.raises(ValueError, match="five_crop applies only"):
        FE.extract(nets["pifia"], crops, five_crop=True, progress=False)


def test_eval_mode_batch_independence_and_model_untouched(nets, crops):
    model = nets["pci"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    strides = [p.stride() for p in model.parameters()]
    model.train()
    try:
        whole = FE.extract(model, crops, batch_size=256, progress=False)
        ones = FE.extract(model, crops, batch_size=1, progress=False)
        assert model.training  # mode untouched
    finally:
        model.eval()
    np.testing.assert_allclose(whole, ones, rtol=1e-4, atol=1e-5)  # BN in eval mode: no batch effect
    assert [p.stride() for p in model.parameters()] == strides
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # BN stats unchanged


def test_accepts_cropsets_float_composites_and_empty_input(nets, crops):
    model = nets["pifia"]
    cs = CropSet(crops, np.zeros((5, 64, 64), bool), __import__("pandas").DataFrame({"strain": list("abcde")}))
    np.testing.assert_array_equal(FE.extract(model, cs, progress=False), FE.extract(model, crops, progress=False))
    composite = crops.astype(np.float32) - 1000.0  # negative values, float32
    assert np.isfinite(FE.extract(model, composite, progress=False)).all()
    empty = FE.extract(model, crops[:0], progress=False)
    assert empty.shape == (0, FE.extract(model, crops[:1], progress=False).shape[1])
    assert empty.dtype == np.float32


def test_clear_errors(nets, crops):
    with pytest.raises(ValueError, match="no feature layer 'conv9'"):
        FE.extract(nets["pifia"], crops, "conv9", progress=False)
    with pytest.raises(ValueError, match="pooling must be one of"):
        FE.extract(nets["pifia"], crops, pooling="sum", progress=False)
    with pytest.raises(TypeError, match="bgrobust model"):
        FE.extract(torch.nn.Conv2d(3, 3, 3), crops, progress=False)
    with pytest.raises(ValueError, match=r"shape \(N, 3, 64, 64\)"):
        FE.extract(nets["pifia"], crops[:, :2], progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        FE.extract(nets["pifia"], crops, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="duplicates"):
        FE.extract_layers(nets["pifia"], crops, ["conv8", "conv8"], progress=False)


# ---------------------------------------------------------------------------- extract_layers
@pytest.mark.parametrize("name", M.MODEL_NAMES)
def test_extract_layers_equals_per_layer_extract(nets, crops, name):
    model = nets[name]
    layers = list(M.get_spec(name).feature_layers)[::-1]  # any order, all layers
    together = FE.extract_layers(model, crops[:3], layers, "mean", progress=False)
    assert list(together) == layers
    for layer in layers:
        # Requesting a "_prebn" layer keeps its Conv -> BN pair unfolded (models.fold), so the
        # one-pass and the per-layer runs may fold different pairs: equal up to float rounding.
        single = FE.extract(model, crops[:3], layer, "mean", progress=False)
        np.testing.assert_allclose(together[layer], single, rtol=1e-5, atol=1e-5, err_msg=layer)


@pytest.mark.parametrize("name,layers", [("deeploc", ["conv5_prerelu", "conv5"]), ("pifia", ["conv8_prerelu", "conv8"]),
                                         ("pci", ["conv4_1", "conv4_1_bn"])])
def test_in_place_relu_and_five_crop_batch_match_the_plain_forward_pass(nets, crops, name, layers):
    # the extraction's in-place ReLU must not overwrite a kept pre-ReLU output, and DeepLoc's
    # channels-last five-crop batch must hold the crops of five_crops in its order
    from bgrobust.models.preprocess import five_crops
    from bgrobust.models.registry import prepare_input

    model = nets[name].eval()
    got = FE.extract_layers(model, crops, layers, "mean", progress=False)
    x = prepare_input(name, crops)
    with torch.no_grad():
        for layer in layers:
            if name == "deeploc":
                z = five_crops(x, 60)
                want = model.features(z.reshape(-1, *z.shape[2:]), layer).mean(dim=(-2, -1))
                want = want.reshape(len(crops), 5, -1).mean(dim=1)
            else:
                want = model.features(x, layer).mean(dim=(-2, -1))
            np.testing.assert_allclose(got[layer], want.numpy(), rtol=1e-5, atol=1e-5, err_msg=layer)


def test_extract_layers_runs_one_pass_per_batch(nets, crops):
    model = nets["pifia"]
    calls = []
    handle = model.conv1.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        FE.extract_layers(model, crops, ["conv2", "conv8", "d2"], batch_size=2, progress=False)
    finally:
        handle.remove()
    assert len(calls) == 3  # ceil(5 / 2) batches, one pass each


# ---------------------------------------------------------------------------- cache
def test_cache_hits_and_every_input_invalidates(nets, crops, tmp_path, monkeypatch):
    model = nets["pifia"]
    first = FE.extract(model, crops, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("features-*/features.npy"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(FE, "_features_batch", boom)
    np.testing.assert_array_equal(FE.extract(model, crops, cache_dir=tmp_path, progress=False), first)
    # the same entry serves extract_layers
    FE.extract_layers(model, crops, ["conv8"], cache_dir=tmp_path, progress=False)
    monkeypatch.undo()

    changed_crops = crops.copy()
    changed_crops[0, 0, 0, 0] += 1
    other = M.build("pifia", width=WIDTH, n_classes=7, random_state=0).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.conv8.weight[0, 0, 0, 0] += 1e-3
    variants = [
        dict(model=model, crops=crops, layer="conv7", pooling="max"),
        dict(model=model, crops=crops, layer="conv8", pooling="mean"),
        dict(model=model, crops=changed_crops, layer="conv8", pooling="max"),
        dict(model=other, crops=crops, layer="conv8", pooling="max"),
    ]
    for i, v in enumerate(variants, start=2):
        FE.extract(v["model"], v["crops"], v["layer"], v["pooling"], cache_dir=tmp_path, progress=False)
        assert len(list(tmp_path.glob("features-*/features.npy"))) == i, v
    dl = nets["deeploc"]
    FE.extract(dl, crops, cache_dir=tmp_path, progress=False)
    FE.extract(dl, crops, five_crop=False, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("features-*/features.npy"))) == 7
    # the remedies' read-out options: centre_sigma counts with pooling="centre" only
    FE.extract(model, crops, pooling="centre", cache_dir=tmp_path, progress=False)
    FE.extract(model, crops, pooling="centre", centre_sigma=0.5, cache_dir=tmp_path, progress=False)
    FE.extract(model, crops, centre_sigma=0.5, cache_dir=tmp_path, progress=False)  # max: cached
    assert len(list(tmp_path.glob("features-*/features.npy"))) == 9
    masks = np.zeros((5, 64, 64), bool)
    masks[:, 20:44, 20:44] = True
    FE.extract(model, crops, mask_input=True, masks=masks, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("features-*/features.npy"))) == 10
    masks[0, 0, 0] = True  # other masks, other key
    FE.extract(model, crops, mask_input=True, masks=masks, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("features-*/features.npy"))) == 11
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave nothing behind


def test_array_digest_memmap_and_copies_agree(tmp_path, crops):
    path = tmp_path / "a.npy"
    np.save(path, crops)
    mm = np.load(path, mmap_mode="r")
    assert array_digest(mm) == array_digest(crops) == array_digest(np.asfortranarray(crops))
    assert array_digest(crops[:4]) != array_digest(crops)
    assert array_digest(crops.reshape(5, 3, 4096)) != array_digest(crops)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_inplace_relu_is_bit_identical_to_torch(dtype):
    """The 16-bit fast path (clamping the bit patterns as int16) gives relu's values, on
    channels-last maps too, with -0.0 and the infinities included (relu keeps -0.0, the fast
    path writes +0.0: equal values)."""
    from bgrobust.models._ops import relu_ as _relu_inplace

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 8, 6, 6, generator=g) * 100).to(dtype).contiguous(memory_format=torch.channels_last)
    x[0, :4, 0, 0] = torch.tensor([-0.0, float("inf"), float("-inf"), 0.0], dtype=dtype)
    want = torch.relu(x.clone())
    got = _relu_inplace(x)
    assert got.data_ptr() == x.data_ptr()   # in place
    assert torch.equal(got, want)
    assert not torch.signbit(got[got == 0]).any() or dtype == torch.float32
    y = torch.randn(5, generator=g).to(dtype).requires_grad_()   # tracked by autograd: torch's own relu
    z = y.clone()
    _relu_inplace(z).sum().backward()
    assert torch.equal(y.grad, (y > 0).to(dtype))


@pytest.mark.parametrize("name", ["pifia", "pci", "deeploc"])
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_fast_inference_ops_give_the_plain_forward_pass(name, precision):
    """_forward_layers (ReLU in place, 16-bit ReLU as int16, max pooling as four views) gives
    every layer exactly as running each step of feature_steps() as it is (equal values)."""
    from bgrobust.devices import autocast
    from bgrobust.models._ops import fast_pool, max_pool_2x2

    m = M.build(name, width=0.25, random_state=0, **({} if name == "pci" else {"n_classes": 15}))
    net = FE._inference_copy(m)
    spec = M.get_spec(name)
    x = torch.rand(6, len(spec.input_channels), spec.input_size, spec.input_size,
                   generator=torch.Generator().manual_seed(1)).contiguous(memory_format=torch.channels_last)
    layers = [n for n, _ in net.feature_steps()]
    with torch.inference_mode(), autocast(torch.device("cpu"), precision):
        fast = FE._forward_layers(net, x, layers)
        z, plain = x, {}
        for n, step in net.feature_steps():
            z = step(z)
            plain[n] = z.clone()
    assert any(isinstance(s, torch.nn.MaxPool2d) for _, s in net.feature_steps())
    for n in layers:
        assert torch.equal(fast[n], plain[n]), n
    z = torch.randn(2, 3, 5, 6)
    assert fast_pool(torch.nn.MaxPool2d(2, 2), z) is None   # odd height: torch's own pooling
    assert fast_pool(torch.nn.MaxPool2d(3, 2), torch.randn(2, 3, 6, 6)) is None
    with pytest.raises(ValueError, match="must be even"):
        max_pool_2x2(z)
