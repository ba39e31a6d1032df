"""Tests of the remedies for background-sensitive features (the paper's discussion).

Training options of :mod:`bgrobust.train` (background-swap augmentation, masked input, starting
from saved weights) and read-out options of :mod:`bgrobust.features` (masked input, centre-weighted
pooling). Tiny CPU tests: width-0.125 networks, a dozen random crops with distinct centre masks.
"""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from bgrobust import features as FE
from bgrobust import models as M
from bgrobust import train as T
from bgrobust.cache import code_key, content_key
from bgrobust.crops import CropSet
from bgrobust.models import MODEL_NAMES

# the fixture has one protein per class: no DeepLoc training proteins under the disjoint split
# (tested in test_protein_split_*), so these trainings use every protein
TINY = dict(width=0.125, batch_size=4, epochs=2, train_proteins="all")
SWAP = dict(TINY, augment="background_swap")


def _cropset(n_per_strain: int = 4, seed: int = 0) -> CropSet:
    """Three strains (two single-localized, one multi), two fields each, one invalid crop;
    every crop has its own disc-shaped centre mask."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, (strain, kind, loc) in enumerate([("YAL1", "single", "ER"), ("YBR2", "single", "vacuole"),
                                             ("YCL3", "multi", "multi")]):
        for i in range(n_per_strain):
            rows.append({"strain": strain, "kind": kind, "localization": loc, "field": 10 * s + i % 2,
                         "valid": True})
    table = pd.DataFrame(rows)
    table.loc[1, "valid"] = False
    n = len(table)
    images = rng.integers(0, 3000, size=(n, 3, 64, 64)).astype(np.uint16)
    images += (np.arange(n) // n_per_strain * 1000).astype(np.uint16)[:, None, None, None]
    yy, xx = np.mgrid[:64, :64]
    masks = np.stack([(yy - 31 - i % 3) ** 2 + (xx - 30 - i % 5) ** 2 < (6 + i % 7) ** 2 for i in range(n)])
    return CropSet(images, masks, table)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP synchronisation costs on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cs():
    return _cropset()


def _assert_same_state(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _differs(a: dict, b: dict) -> bool:
    return not all(torch.equal(a[k], b[k]) for k in a)


def _standardised(cs: CropSet) -> np.ndarray:
    """Every crop standardised with its strain's per-channel mean / std (valid crops), written out."""
    out = np.empty(cs.images.shape, np.float64)
    valid = cs.table.valid.to_numpy()
    for strain in cs.table.strain.unique():
        own = cs.table.strain.to_numpy() == strain
        pixels = cs.images[own & valid].astype(np.float64)
        mean, std = pixels.mean(axis=(0, 2, 3)), pixels.std(axis=(0, 2, 3))
        out[own] = (cs.images[own] - mean[:, None, None]) / std[:, None, None]
    return out


def _spy_inputs(monkeypatch):
    """Record every raw array the training hands to ``prepare_input``: (crops, target)."""
    seen = []
    real = T.prepare_input

    def spy(name, crops, *args, **kwargs):
        seen.append((np.array(crops, copy=True), bool(kwargs.get("target", False))))
        return real(name, crops, *args, **kwargs)

    monkeypatch.setattr(T, "prepare_input", spy)
    return seen


def _identify_swap(crop, cs, std, train_index):
    """(centre, background): the training crops whose standardised centre / surround ``crop`` shows."""
    centres = [j for j in train_index if np.allclose(crop[:, cs.masks[j]], std[j][:, cs.masks[j]], atol=1e-5)]
    assert len(centres) == 1, f"centre cell not found standardised (candidates {centres})"
    j = centres[0]
    outside = ~cs.masks[j]
    backgrounds = [k for k in train_index if np.allclose(crop[:, outside], std[k][:, outside], atol=1e-5)]
    assert len(backgrounds) == 1, f"background not a standardised training crop (candidates {backgrounds})"
    return j, backgrounds[0]


# ---------------------------------------------------------------------------- background swap
@pytest.mark.parametrize("name", ["pifia", "deeploc"])
def test_background_swap_pastes_the_standardised_cell_on_another_protein(cs, name, monkeypatch):
    data = T.training_data(name, cs)
    seen = _spy_inputs(monkeypatch)
    labels_seen = []
    real_ce = T.F.cross_entropy
    monkeypatch.setattr(T.F, "cross_entropy", lambda logits, y, *a, **k: (labels_seen.append(y.numpy().copy()),
                                                                          real_ce(logits, y, *a, **k))[1])
    T.train(name, cs, dict(SWAP, swap_probability=1.0), progress=False)
    assert len(seen) == len(labels_seen) > 0
    std = _standardised(cs)
    strain = cs.table.strain.to_numpy()
    label_of = dict(zip(data.index, data.labels))
    for (batch, _), labels in zip(seen, labels_seen):
        for crop, label in zip(batch, labels):
            j, k = _identify_swap(crop, cs, std, data.index)
            assert strain[k] != strain[j]           # another protein's crop
            assert label == label_of[j]             # the target stays the centre cell's


def test_background_swap_pci_augments_the_source_only(cs, monkeypatch):
    data = T.training_data("pci", cs)
    seen = _spy_inputs(monkeypatch)
    T.train("pci", cs, dict(SWAP, swap_probability=1.0), progress=False)
    assert len(seen) % 3 == 0 and [t for _, t in seen[:3]] == [False, False, True]
    std = _standardised(cs)
    strain = cs.table.strain.to_numpy()
    for b in range(0, len(seen), 3):
        sources, partners = seen[b][0], seen[b + 1][0]
        np.testing.assert_array_equal(partners, seen[b + 2][0])
        for source, partner in zip(sources, partners):
            j, k = _identify_swap(source, cs, std, data.index)
            assert strain[k] != strain[j]
            # the partner (target) is a raw, unswapped crop of the centre cell's own protein
            same = [p for p in data.index if np.array_equal(partner, cs.images[p])]
            assert len(same) == 1 and same[0] != j and strain[same[0]] == strain[j]


def test_background_draws_follow_the_probability_and_avoid_the_own_protein():
    codes = np.repeat(np.arange(4), [5, 1, 30, 4])
    sources = np.tile(np.arange(len(codes)), 200)
    bg = T._backgrounds(codes, sources, 0.3, torch.Generator().manual_seed(0))
    swapped = bg >= 0
    assert 0.27 < swapped.mean() < 0.33
    assert (codes[bg[swapped]] != codes[sources[swapped]]).all()
    assert set(bg[swapped]) == set(range(len(codes)))  # every crop serves as a background
    again = T._backgrounds(codes, sources, 0.3, torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(bg, again)
    assert (T._backgrounds(codes, sources, 1.0, torch.Generator().manual_seed(1)) >= 0).all()


def test_swap_probability_below_one_keeps_some_crops_raw(cs, monkeypatch):
    seen = _spy_inputs(monkeypatch)
    T.train("pifia", cs, dict(SWAP, epochs=3), progress=False)
    crops = np.concatenate([b for b, _ in seen])
    raw = np.array([any(np.array_equal(c, cs.images[i]) for i in range(len(cs))) for c in crops])
    assert 0 < raw.sum() < len(raw)


def test_remedies_need_centre_masks(cs):
    empty = CropSet(cs.images, np.zeros_like(cs.masks), cs.table)
    T.train("pifia", empty, dict(TINY, max_steps=1), progress=False)  # masks are not read by default
    for extra in (dict(augment="background_swap"), dict(input="masked")):
        with pytest.raises(ValueError, match="empty centre mask"):
            T.train("pifia", empty, dict(TINY, **extra), progress=False)
    one = CropSet(cs.images, cs.masks, cs.table.assign(strain="YAL1"))
    with pytest.raises(ValueError, match="at least 2 proteins"):
        T.train("pifia", one, SWAP, progress=False)


# ---------------------------------------------------------------------------- keys, defaults
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_default_params_keep_their_key_and_weights(cs, name):
    explicit = dict(TINY, augment="none", swap_probability=0.5, input="crop", init_from=None)
    key = T.training_key(name, cs, TINY)
    assert key == T.training_key(name, cs, explicit)
    # the key written out as before the remedies existed: no remedy field, no masks
    params = T.TrainParams.from_dict(TINY, model=name)
    split_fields = ("train_proteins", "train_protein_fraction", "split_seed")  # "all": no split in the key
    before = {k: v for k, v in params.to_dict().items() if k not in T._REMEDY_DEFAULTS and k not in split_fields}
    assert key == content_key("train", name, before, T.data_fingerprint(cs, name),
                              code_key("bgrobust.train", "bgrobust.models"))
    # without augmentation the masks and swap_probability do not count
    other_masks = CropSet(cs.images, ~cs.masks, cs.table)
    assert T.training_key(name, other_masks, TINY) == key
    assert T.training_key(name, cs, dict(TINY, swap_probability=0.9)) == key
    a = T.train(name, cs, TINY, progress=False)
    b = T.train(name, cs, explicit, progress=False)
    _assert_same_state(a.model.state_dict(), b.model.state_dict())
    pd.testing.assert_frame_equal(a.history, b.history)


def test_remedy_fields_and_masks_change_the_key(cs):
    keys = {T.training_key("pifia", cs, p) for p in (
        TINY, SWAP, dict(SWAP, swap_probability=0.9), dict(TINY, input="masked"))}
    assert len(keys) == 4
    other_masks = CropSet(cs.images, np.roll(cs.masks, 1, axis=-1), cs.table)
    assert T.training_key("pifia", other_masks, SWAP) != T.training_key("pifia", cs, SWAP)
    assert T.training_key("pifia", other_masks, dict(TINY, input="masked")) != \
        T.training_key("pifia", cs, dict(TINY, input="masked"))


# ---------------------------------------------------------------------------- masked input
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_masked_training_input_is_zero_outside_the_mask(cs, name, monkeypatch):
    seen = _spy_inputs(monkeypatch)
    T.train(name, cs, dict(TINY, input="masked", epochs=1), progress=False)
    masked = cs.images * cs.masks[:, None]
    n_checked = 0
    for batch, _ in seen:  # PCI: sources, partners and partner targets
        for crop in batch:
            match = [i for i in range(len(cs)) if np.array_equal(crop, masked[i])]
            assert len(match) == 1, "a training input is not a masked crop"
            assert not crop[:, ~cs.masks[match[0]]].any()
            n_checked += 1
    assert n_checked >= 4 * (3 if name == "pci" else 1)


# ---------------------------------------------------------------------------- determinism, resume
class _Crash(Exception):
    pass


def _crash_after_first_epoch(epochs_done, history):
    if epochs_done == 1:
        raise _Crash


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_augmented_training_is_deterministic_and_resumes_exactly(cs, name, tmp_path):
    before = torch.random.get_rng_state()
    a = T.train(name, cs, SWAP, progress=False)
    b = T.train(name, cs, SWAP, progress=False)
    assert torch.equal(before, torch.random.get_rng_state())
    _assert_same_state(a.model.state_dict(), b.model.state_dict())
    pd.testing.assert_frame_equal(a.history, b.history)
    assert _differs(a.model.state_dict(), T.train(name, cs, TINY, progress=False).model.state_dict())
    whole = T.train(name, cs, SWAP, checkpoint_dir=tmp_path / "whole", progress=False)
    _assert_same_state(whole.model.state_dict(), a.model.state_dict())
    with pytest.raises(_Crash):
        T.train(name, cs, SWAP, checkpoint_dir=tmp_path / "resumed", progress=False,
                callback=_crash_after_first_epoch)
    epochs_seen = []
    resumed = T.train(name, cs, SWAP, checkpoint_dir=tmp_path / "resumed", progress=False,
                      callback=lambda e, h: epochs_seen.append(e))
    assert epochs_seen == [2]
    _assert_same_state(whole.model.state_dict(), resumed.model.state_dict())
    pd.testing.assert_frame_equal(whole.history, resumed.history)


def test_masked_training_resumes_exactly(cs, tmp_path):
    params = dict(TINY, input="masked")
    whole = T.train("pci", cs, params, progress=False)
    with pytest.raises(_Crash):
        T.train("pci", cs, params, checkpoint_dir=tmp_path, progress=False, callback=_crash_after_first_epoch)
    resumed = T.train("pci", cs, params, checkpoint_dir=tmp_path, progress=False)
    _assert_same_state(whole.model.state_dict(), resumed.model.state_dict())


# ---------------------------------------------------------------------------- init_from
def test_init_from_loads_the_weights_and_changes_the_key(cs, tmp_path):
    base = T.train("pifia", cs, TINY, checkpoint_dir=tmp_path / "base", progress=False)
    tuned_params = dict(TINY, epochs=1, max_steps=1, lr=1e-30, init_from=str(base.path))
    tuned = T.train("pifia", cs, tuned_params, progress=False)
    scratch = T.train("pifia", cs, dict(tuned_params, init_from=None), progress=False)
    start = dict(base.model.named_parameters())
    for pname, value in tuned.model.named_parameters():  # a step of 1e-30 leaves the start as it was
        torch.testing.assert_close(value, start[pname], rtol=0, atol=1e-20, msg=pname)
    assert any((dict(scratch.model.named_parameters())[p] - v).abs().max() > 1e-5 for p, v in start.items())
    # the key: the weights' content counts, not the path
    key = T.training_key("pifia", cs, tuned_params)
    assert key != T.training_key("pifia", cs, dict(tuned_params, init_from=None))
    copy = shutil.copy(base.path, tmp_path / "copy.pt")
    assert T.training_key("pifia", cs, dict(tuned_params, init_from=copy)) == key
    M.save_weights(scratch.model, tmp_path / "other.pt")
    assert T.training_key("pifia", cs, dict(tuned_params, init_from=tmp_path / "other.pt")) != key
    assert tuned.params.init_from == str(base.path)


def test_init_from_errors_name_the_field(cs, tmp_path):
    pci = T.train("pci", cs, dict(TINY, max_steps=1), checkpoint_dir=tmp_path / "pci", progress=False)
    with pytest.raises(ValueError, match="init_from: .* does not fit PIFiA"):
        T.train("pifia", cs, dict(TINY, init_from=pci.path), progress=False)
    (tmp_path / "junk.pt").write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match="init_from: cannot read"):
        T.training_key("pifia", cs, dict(TINY, init_from=tmp_path / "junk.pt"))
    with pytest.raises(FileNotFoundError, match="init_from: no such file"):
        T.TrainParams(init_from=tmp_path / "missing.pt")


def test_fine_tuning_with_a_remedy_resumes_exactly(cs, tmp_path):
    base = T.train("deeploc", cs, dict(TINY, epochs=1), checkpoint_dir=tmp_path / "base", progress=False)
    params = dict(SWAP, init_from=str(base.path))
    whole = T.train("deeploc", cs, params, progress=False)
    assert _differs(whole.model.state_dict(), T.train("deeploc", cs, SWAP, progress=False).model.state_dict())
    with pytest.raises(_Crash):
        T.train("deeploc", cs, params, checkpoint_dir=tmp_path / "r", progress=False,
                callback=_crash_after_first_epoch)
    resumed = T.train("deeploc", cs, params, checkpoint_dir=tmp_path / "r", progress=False)
    _assert_same_state(whole.model.state_dict(), resumed.model.state_dict())


# ---------------------------------------------------------------------------- features: masked input
@pytest.fixture(scope="module")
def nets():
    return {name: M.build(name, width=0.125, random_state=i, **({} if name == "pci" else {"n_classes": 5})).eval()
            for i, name in enumerate(MODEL_NAMES)}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_mask_input_features_equal_features_of_masked_crops(cs, nets, name):
    model, sub = nets[name], cs.subset(np.arange(5))
    want = FE.extract(model, sub.images * sub.masks[:, None], progress=False)
    np.testing.assert_array_equal(FE.extract(model, sub, mask_input=True, progress=False), want)
    np.testing.assert_array_equal(FE.extract(model, sub.images, mask_input=True, masks=sub.masks, progress=False),
                                  want)
    np.testing.assert_allclose(  # masks sliced with the batches (batch size changes the float sums only)
        FE.extract(model, sub.images, mask_input=True, masks=sub.masks, batch_size=2, progress=False), want,
        rtol=1e-5, atol=1e-6)
    assert not np.allclose(FE.extract(model, sub, progress=False), want)
    layers = list(M.get_spec(name).feature_layers)[:2]
    both = FE.extract_layers(model, sub, layers, "mean", mask_input=True, progress=False)
    for layer in layers:
        # a "_prebn" layer keeps its Conv -> BN pair unfolded (models.fold): equal up to rounding
        np.testing.assert_allclose(both[layer], FE.extract(model, sub.images * sub.masks[:, None], layer,
                                                           "mean", progress=False), rtol=1e-5, atol=1e-5)


def test_mask_input_errors(cs, nets):
    model = nets["pifia"]
    with pytest.raises(ValueError, match="mask_input=True needs the centre masks"):
        FE.extract(model, cs.images, mask_input=True, progress=False)
    with pytest.raises(ValueError, match="masks= is used only with mask_input=True"):
        FE.extract(model, cs.images, masks=cs.masks, progress=False)
    with pytest.raises(ValueError, match=r"masks must have shape \(12, 64, 64\)"):
        FE.extract(model, cs.images, mask_input=True, masks=cs.masks[:3], progress=False)
    with pytest.raises(ValueError, match="masks must be boolean"):
        FE.extract(model, cs.images, mask_input=True, masks=cs.masks.astype(np.uint8), progress=False)


def test_mask_input_is_part_of_the_feature_cache_key(cs, nets, tmp_path):
    model, sub = nets["pci"], cs.subset(np.arange(4))
    plain = FE.extract(model, sub, cache_dir=tmp_path, progress=False)
    masked = FE.extract(model, sub, mask_input=True, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("features-*/features.npy"))) == 2 and not np.allclose(plain, masked)
    np.testing.assert_array_equal(FE.extract(model, sub, mask_input=True, cache_dir=tmp_path, progress=False),
                                  masked)
    assert len(list(tmp_path.glob("features-*/features.npy"))) == 2


# ---------------------------------------------------------------------------- features: centre pooling
def test_centre_weights_are_a_normalised_centred_gaussian():
    for h, w in [(5, 5), (4, 4), (3, 7), (1, 1)]:
        wt = FE.centre_weights(h, w)
        assert wt.shape == (h, w) and abs(wt.sum() - 1) < 1e-12 and (wt > 0).all()
        np.testing.assert_allclose(wt, wt[::-1, ::-1])  # symmetric about the map's centre
    w4 = FE.centre_weights(4, 4)
    assert np.allclose(w4[1:3, 1:3], w4.max())  # even side: the four central pixels share the peak
    w5 = FE.centre_weights(5, 5, 0.25)
    np.testing.assert_allclose(w5[2, 0] / w5[2, 2], np.exp(-0.5 * (2 / 1.25) ** 2))
    with pytest.raises(ValueError, match="centre_sigma must be"):
        FE.centre_weights(5, 5, 0)


def test_centre_pooling_prefers_the_centre_and_tends_to_the_mean():
    z = torch.zeros(2, 3, 5, 5)
    z[0, :, 2, 2] = 1.0   # hot pixel at the centre
    z[1, :, 0, 0] = 1.0   # ... and at a corner
    centre = FE._pool(z, "centre", 0.25)
    assert (centre[0] > 5 * centre[1]).all()
    mean = FE._pool(z, "mean")
    torch.testing.assert_close(mean[0], mean[1])      # mean pooling cannot tell them apart
    torch.testing.assert_close(FE._pool(z, "centre", 1e4), mean, rtol=1e-6, atol=1e-9)
    assert (FE._pool(z, "centre", 0.1)[0] > centre[0]).all()  # narrower: more weight at the centre
    vec = torch.randn(2, 7)
    assert FE._pool(vec, "centre") is vec  # vector layers are never pooled


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_centre_pooling_in_extract(cs, nets, name):
    model, sub = nets[name], cs.images[:3]
    centre = FE.extract(model, sub, pooling="centre", progress=False)
    mean = FE.extract(model, sub, pooling="mean", progress=False)
    assert centre.shape == mean.shape and not np.allclose(centre, mean)
    np.testing.assert_allclose(FE.extract(model, sub, pooling="centre", centre_sigma=1e4, progress=False), mean,
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="centre_sigma must be"):
        FE.extract(model, sub, pooling="centre", centre_sigma=-1, progress=False)
