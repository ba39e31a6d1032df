"""Tests of bgrobust.vae: the cytoVAE-style VAE, its losses, schedule, training and features.

All on CPU in seconds: narrow networks (width 0.125-0.5), a few crops, a few steps.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bgrobust import vae as V

TINY = dict(batch_size=8, width=0.125, latent_dim=8)


def _crops(n: int = 24, seed: int = 0) -> np.ndarray:
    """Raw uint16 crops with a bright blob on an offset background, 3 channels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    out = rng.normal(150, 10, size=(n, 3, 64, 64))
    for i in range(n):
        cy, cx, r = rng.uniform(24, 40), rng.uniform(24, 40), rng.uniform(6, 14)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r ** 2))
        out[i] += blob * rng.uniform(300, 1500, size=(3, 1, 1))
    return np.clip(out, 0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    return _crops()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run fastest single-threaded, and far faster on a machine with busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------- architecture
@pytest.mark.parametrize("width, c", [(0.25, 8), (1.0, 32)])
def test_shapes_at_two_widths(width, c):
    model = V.build_vae(width=width, latent_dim=16).eval()
    x = torch.rand(2, 2, 64, 64)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        assert mu.shape == logvar.shape == (2, 16)
        assert model.decode(mu).shape == (2, 2, 64, 64)
        recon, mu2, _ = model(x)
        assert recon.shape == (2, 2, 64, 64) and torch.equal(mu, mu2)
        assert model.features(x, "enc1").shape == (2, c, 32, 32)
        assert model.features(x, "enc2").shape == (2, c, 14, 14)
        assert model.features(x, "enc3").shape == (2, c, 5, 5)
        assert model.features(x, "embedding").shape == (2, 32)
        logits, hidden = V.Discriminator(2, width=width).eval()(x)
    assert logits.shape == (2,)
    assert [tuple(h.shape[1:]) for h in hidden] == [(c, 32, 32), (c, 14, 14), (c, 5, 5), (2 * c, 1, 1)]


def test_original_layer_sizes_and_channel_options():
    model = V.build_vae()
    assert model.conv1.weight.shape == (32, 2, 5, 5)
    assert model.conv_embed.weight.shape == (512, 32, 5, 5)
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    bn = model.bn1
    assert bn.eps == 1e-8 and bn.momentum == pytest.approx(0.1)
    assert V.build_vae(in_channels=1).channels == ("gfp",)
    assert V.build_vae(channels=("gfp", "nucleus", "cytoplasm")).in_channels == 3
    assert model.feature_layers == ("enc1", "enc2", "enc3", "embedding", "mu", "logvar")


def test_init_is_seeded_and_follows_the_original_scale():
    a = V.build_vae(width=0.5, generator=torch.Generator().manual_seed(3))
    b = V.build_vae(width=0.5, generator=torch.Generator().manual_seed(3))
    for (k, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), k
    w = V.build_vae(generator=torch.Generator().manual_seed(0)).conv2.weight
    assert w.std().item() == pytest.approx(np.sqrt(2 / (25 * 32 + 32)), rel=0.05)


def test_bad_inputs_are_errors():
    model = V.build_vae(width=0.25, latent_dim=4)
    with pytest.raises(ValueError, match=r"\(B, 2, 64, 64\)"):
        model.encode(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        model.decode(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="no feature layer"):
        model.features(torch.zeros(1, 2, 64, 64), "conv9")
    with pytest.raises(ValueError, match="width"):
        V.build_vae(width=0)


# ---------------------------------------------------------------------------- losses, schedule
def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    zeros = torch.zeros(4, 8)
    assert V.kl_divergence(zeros, zeros).item() == 0.0
    assert V.kl_divergence(torch.ones(4, 8), zeros).item() == pytest.approx(4.0)   # 0.5 * 8 * 1
    assert V.kl_divergence(zeros, torch.full((4, 8), 1.0)).item() > 0


def test_reconstruction_and_feature_matching_scales():
    x = torch.ones(2, 2, 4, 4)
    assert V.reconstruction_loss(x, x).item() == 0.0
    assert V.reconstruction_loss(x, torch.zeros_like(x)).item() == pytest.approx(0.5 * 32)
    h = torch.ones(3, 5, 2, 2)
    assert V.feature_matching_loss(h, torch.zeros_like(h), base_size=8192).item() == pytest.approx(0.5 * 8192)
    assert V.discriminator_loss(torch.full((4,), 20.0), torch.full((4,), -20.0)).item() < 1e-6


def test_schedule_ramps_layers_in_one_after_another():
    assert V.adversarial_schedule(0).tolist() == [0, 0, 0, 0]
    assert V.adversarial_schedule(2500).tolist() == [0, 0, 0, 0]
    assert V.adversarial_schedule(3750).tolist() == [0.5, 0, 0, 0]
    assert V.adversarial_schedule(6250).tolist() == [1, 0.5, 0, 0]
    assert V.adversarial_schedule(12500).tolist() == [1, 1, 1, 1]
    assert V.adversarial_schedule(80000).tolist() == [1, 1, 1, 1]
    w = V.adversarial_schedule(np.arange(0, 40), delay=5, stagger=5, ramp=10)
    assert w.shape == (40, 4)
    assert np.all(np.diff(w, axis=0) >= 0) and np.all((w >= 0) & (w <= 1))
    assert V.adversarial_schedule(7, delay=5, stagger=0, ramp=0).tolist() == [1, 1, 1, 1]


def test_subset_batchnorm_uses_the_first_samples_only():
    bn = V.SubsetBatchNorm2d(2).train()
    x = torch.randn(6, 2, 3, 3)
    x[4:] += 100.0
    y = bn(x, n_stats=4)
    ref = torch.nn.functional.batch_norm(x[:4], None, None, training=True, eps=bn.eps)
    torch.testing.assert_close(y[:4], ref)
    assert y[4:].mean() > 10
    assert bn.running_mean.abs().max() < 1.0
    torch.testing.assert_close(bn.eval()(x, n_stats=4), bn(x))


# ---------------------------------------------------------------------------- preprocessing
def test_preprocess_min_max_and_max():
    raw = np.array([[[[100, 300], [200, 500]]]], np.uint16)
    np.testing.assert_allclose(V.vae_preprocess(raw), [[[[0, 0.5], [0.25, 1]]]])
    np.testing.assert_allclose(V.vae_preprocess(raw, "max"), [[[[0.2, 0.6], [0.4, 1]]]])
    assert V.vae_preprocess(np.full((1, 1, 2, 2), 7.0)).tolist() == [[[[0.0, 0.0], [0.0, 0.0]]]]
    with pytest.raises(ValueError, match="normalization"):
        V.vae_preprocess(raw, "zscore")


# ---------------------------------------------------------------------------- training
def test_tiny_fit_losses_are_finite_and_decrease(crops):
    params = V.VAEParams(epochs=4, adv_delay=2, adv_stagger=1, adv_ramp=2, **TINY)
    model, history = V.fit_vae(crops, params, progress=False)
    assert len(history) == 4 * (24 // 8)
    assert not model.training
    cols = ["loss_rgb", "loss_kl", "loss_enc", "loss_disc"]
    assert np.isfinite(history[cols].to_numpy()).all()
    on = history[history.w_adv_1 > 0]
    assert len(on) and np.isfinite(on[[f"adv_{k}" for k in range(1, 5)]].to_numpy()).all()
    assert history.loss_rgb.iloc[-3:].mean() < history.loss_rgb.iloc[:3].mean()
    np.testing.assert_allclose(history.w_adv_1, np.clip((history.step - 2) / 2, 0, 1))
    assert history.attrs["params"]["width"] == 0.125


def test_fit_is_deterministic_given_the_seed(crops):
    params = V.VAEParams(epochs=1, adv_delay=0, adv_stagger=1, adv_ramp=1, **TINY)
    a, ha = V.fit_vae(crops, params, progress=False)
    b, hb = V.fit_vae(crops, params, progress=False)
    for (k, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), k
    pd.testing.assert_frame_equal(ha.drop(columns="seconds"), hb.drop(columns="seconds"))
    c, _ = V.fit_vae(crops, V.VAEParams(epochs=1, seed=1, **TINY), progress=False)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_max_crops_per_epoch_and_max_steps(crops):
    params = V.VAEParams(epochs=3, max_crops_per_epoch=16, max_steps=5, **TINY)
    torch.set_num_threads(2)
    try:
        _, history = V.fit_vae(crops, params, progress=False, num_threads=1)
        assert torch.get_num_threads() == 2     # the thread setting is restored
    finally:
        torch.set_num_threads(1)
    assert len(history) == 5
    assert history.epoch.tolist() == [0, 0, 1, 1, 2]


def test_params_are_checked():
    with pytest.raises(ValueError, match="channels"):
        V.VAEParams(channels=("gfp", "brightfield"))
    with pytest.raises(ValueError, match="max_crops_per_epoch"):
        V.VAEParams(batch_size=104, max_crops_per_epoch=50)
    with pytest.raises(ValueError, match="normalization"):
        V.VAEParams(normalization="zscore")
    assert V.VAEParams().lr == 0.01 and V.VAEParams().beta == 2.0 and V.VAEParams().batch_size == 104
    assert V.VAEParams.demo().width == 0.25 and V.VAEParams.demo().latent_dim == 256


def test_fit_rejects_bad_stacks(crops):
    with pytest.raises(ValueError, match="fewer than one batch"):
        V.fit_vae(crops[:4], V.VAEParams(**TINY), progress=False)
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 64\)"):
        V.fit_vae(crops[:, :2], V.VAEParams(**TINY), progress=False)
    with pytest.raises(TypeError, match="VAEParams"):
        V.fit_vae(crops, {"epochs": 1}, progress=False)


# ---------------------------------------------------------------------------- features, saving
def test_features_are_posterior_means_independent_of_batching(crops):
    model = V.build_vae(width=0.25, latent_dim=6, generator=torch.Generator().manual_seed(0))
    model.train()
    f = V.vae_features(model, crops[:10], batch_size=4)
    assert f.shape == (10, 6) and f.dtype == np.float32
    assert model.training            # mode restored
    np.testing.assert_allclose(f, V.vae_features(model, crops[:10], batch_size=256), rtol=1e-5, atol=1e-6)
    x = torch.from_numpy(V.vae_preprocess(crops[:10, [0, 2]]))
    with torch.no_grad():
        mu, _ = model.eval().encode(x)
    np.testing.assert_allclose(f, mu.numpy(), rtol=1e-5, atol=1e-6)


def test_features_check_the_channels(crops):
    model = V.build_vae(width=0.25, latent_dim=4)
    with pytest.raises(ValueError, match="missing"):
        V.vae_features(model, crops[:, :2], image_channels=("gfp", "nucleus"))
    f = V.vae_features(model, crops[:, [0, 2]], image_channels=("gfp", "cytoplasm"))
    np.testing.assert_allclose(f, V.vae_features(model, crops), rtol=1e-6)


def test_save_and_load_round_trip(tmp_path, crops):
    model = V.build_vae(width=0.25, latent_dim=4, normalization="max",
                        generator=torch.Generator().manual_seed(0)).eval()
    path = V.save_vae(model, tmp_path / "vae.pt")
    loaded = V.load_vae(path)
    assert loaded.normalization == "max" and loaded.channels == ("gfp", "cytoplasm")
    np.testing.assert_array_equal(V.vae_features(model, crops[:3]), V.vae_features(loaded, crops[:3]))
