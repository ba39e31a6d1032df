"""Tests of bgrobust.train: parameters, objectives, determinism, resuming, the cache.

Tiny CPU trainings: width-0.125 networks, a dozen random crops, batches of 4.
"""
from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

matplotlib.use("Agg")

from bgrobust import train as T  # noqa: E402
from bgrobust.vocabulary import CLASSES  # noqa: E402
from bgrobust.crops import CropSet  # noqa: E402
from bgrobust.models import MODEL_NAMES  # noqa: E402

# the fixture has one protein per class: no DeepLoc training proteins under the disjoint split
# (tested in test_protein_split_*), so these trainings use every protein
TINY = dict(width=0.125, batch_size=4, epochs=2, train_proteins="all")


def _cropset(n_per_strain: int = 4, seed: int = 0) -> CropSet:
    """Three strains (two single-localized, one multi), two fields each, one invalid crop."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, (strain, kind, loc) in enumerate([("YAL1", "single", "ER"), ("YBR2", "single", "vacuole"),
                                             ("YCL3", "multi", "multi")]):
        for i in range(n_per_strain):
            rows.append({"strain": strain, "kind": kind, "localization": loc, "field": 10 * s + i % 2,
                         "plate": 0, "well": "A1", "valid": True})
    table = pd.DataFrame(rows)
    table.loc[1, "valid"] = False
    n = len(table)
    images = rng.integers(0, 3000, size=(n, 3, 64, 64)).astype(np.uint16)
    images[:, 0, 24:40, 24:40] += (np.arange(n) // n_per_strain * 2000).astype(np.uint16)[:, None, None]
    return CropSet(images, np.zeros((n, 64, 64), bool), table)



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


# ---------------------------------------------------------------------------- parameters
def test_original_defaults():
    p = T.TrainParams.for_model("pifia")
    assert (p.epochs, p.batch_size, p.lr, p.schedule, p.dropout, p.flips, p.rot90) == \
        (30, 128, 3e-4, "cosine", 0.02, True, ())
    p = T.TrainParams.for_model("pci")
    assert (p.batch_size, p.lr, p.betas, p.schedule, p.independent_flips, p.pair_scope) == \
        (64, 1e-4, (0.5, 0.999), "constant", True, "field")
    p = T.default_params("deeploc")
    assert (p.batch_size, p.lr, p.schedule, p.decay_rate, p.decay_steps, p.max_steps) == \
        (128, 0.1, "exponential", 0.96, 25, 5000)
    assert p.random_crop and p.rot90 == (0, 1, 2) and p.logit_bn
    assert T.TrainParams.for_model("pifia", lr=1e-3, width=0.25).lr == 1e-3
    # a profile dict: lists become tuples, None fields are resolved per model
    p = T.TrainParams.from_dict({"betas": [0.8, 0.9], "rot90": [0, 2]}, model="pifia")
    assert p.betas == (0.8, 0.9) and p.rot90 == (0, 2) and p.lr == 3e-4


@pytest.mark.parametrize("bad, match", [
    ({"epoch": 3}, "unknown key"),
    ({"lr": -1.0}, "lr must be"),
    ({"batch_size": 1}, "batch_size must be"),
    ({"dropout": 1.0}, "dropout must be"),
    ({"schedule": "linear"}, "schedule must be"),
    ({"betas": [0.9]}, "betas must be"),
    ({"rot90": [5]}, "rot90 must"),
    ({"flips": "yes"}, "flips must be"),
    ({"augment": "mixup"}, "augment must be one of"),
    ({"augment": "background_swap", "swap_probability": 0.0}, "swap_probability must be"),
    ({"swap_probability": 1.5}, "swap_probability must be"),
    ({"input": "cells"}, "input must be one of"),
    ({"augment": "background_swap", "input": "masked"}, "cannot be combined with input='masked'"),
    ({"init_from": 3}, "init_from must be a path"),
    ({"init_from": "/nonexistent/weights.pt"}, "init_from: no such file"),
])
def test_bad_parameters_are_named(bad, match):
    with pytest.raises((ValueError, TypeError, FileNotFoundError), match=match):
        T.TrainParams.from_dict(bad)


@pytest.mark.parametrize("name, field", [("pci", "dropout"), ("pifia", "pair_scope"), ("pifia", "logit_bn"),
                                         ("pci", "random_crop"), ("deeploc", "independent_flips")])
def test_fields_of_other_models_are_refused(name, field):
    value = {"dropout": 0.1, "pair_scope": "field"}.get(field, True)
    with pytest.raises(ValueError, match=f"{field} applies only"):
        T.TrainParams(**{field: value}).resolve(name)


def test_learning_rate_schedules():
    cos = T.TrainParams.for_model("pifia", lr=1.0)
    assert T.lr_at(0, cos, 10) == 1.0 and abs(T.lr_at(10, cos, 10)) < 1e-12
    exp = T.TrainParams.for_model("deeploc")
    assert [round(T.lr_at(s, exp, 1000), 6) for s in (0, 24, 25, 50)] == [0.1, 0.1, 0.096, 0.09216]
    assert T.lr_at(123, T.TrainParams.for_model("pci"), 200) == 1e-4


# ---------------------------------------------------------------------------- objectives
def test_training_data_per_model(cs):
    pifia = T.training_data("pifia", cs)
    assert pifia.classes == ("YAL1", "YBR2", "YCL3")  # every strain, multi-localized included
    assert len(pifia.index) == 11 and 1 not in pifia.index  # invalid crop dropped
    deeploc = T.training_data("deeploc", cs)
    assert deeploc.classes == CLASSES
    assert set(deeploc.labels) == {CLASSES.index("ER"), CLASSES.index("vacuole")}
    assert (cs.table.kind.to_numpy()[deeploc.index] == "single").all()
    assert len(T.training_data("pifia", cs, valid_only=False).index) == 12
    with pytest.raises(ValueError, match="lacks column"):
        T.training_data("pci", CropSet(cs.images, cs.masks, cs.table.drop(columns="field")))


def test_pci_partners_same_strain_same_field_never_self():
    table = pd.DataFrame({"strain": list("aaaab") + ["c", "c"], "field": [0, 0, 1, 2, 0, 0, 1], "valid": True})
    cs = CropSet(np.zeros((7, 3, 64, 64), np.uint16), np.zeros((7, 64, 64), bool), table)
    data = T.training_data("pci", cs)
    assert list(data.strain) == list("aaaacc")  # strain "b" has no partner
    sources = np.repeat(np.arange(len(data.index)), 50)
    for scope in ("field", "strain"):
        partners = T._partners(data, sources, scope, torch.Generator().manual_seed(0))
        assert (partners != sources).all()
        assert (data.strain[partners] == data.strain[sources]).all()
    partners = T._partners(data, sources, "field", torch.Generator().manual_seed(0))
    same_field = data.field[partners] == data.field[sources]
    # crops 0 and 1 share field 0: always paired there; crops 2, 3 and the c's fall back to the strain
    assert same_field[sources < 2].all()
    assert set(partners[sources == 2]) == {0, 1, 3}


def test_pci_learns_the_inpainting_target(cs):
    res = T.train("pci", cs, dict(width=0.125, batch_size=4, epochs=1, max_steps=1), progress=False)
    assert list(res.history.columns) == ["epoch", "step", "loss", "lr"]
    assert res.labels == () and res.n_train == 11


def test_pifia_loss_decreases_on_separable_strains():
    cs = _cropset(n_per_strain=8, seed=1)
    res = T.train("pifia", cs, dict(width=0.125, batch_size=8, epochs=12, lr=3e-3), progress=False)
    per_epoch = res.history.groupby("epoch").loss.mean()
    assert per_epoch.iloc[-3:].mean() < 0.7 * per_epoch.iloc[:3].mean()
    assert res.history.lr.iloc[-1] < res.history.lr.iloc[0]  # cosine decay
    assert res.model.d3.out_features == 3 and not res.model.training


# ---------------------------------------------------------------------------- determinism, resume
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_deterministic_and_global_rng_untouched(cs, name):
    before = torch.random.get_rng_state()
    a = T.train(name, cs, TINY, progress=False)
    b = T.train(name, cs, TINY, progress=False)
    assert torch.equal(before, torch.random.get_rng_state())
    _assert_same_state(a.model.state_dict(), b.model.state_dict())
    pd.testing.assert_frame_equal(a.history, b.history)
    c = T.train(name, cs, dict(TINY, seed=1), progress=False)
    assert not all(torch.equal(c.model.state_dict()[k], v) for k, v in a.model.state_dict().items())


class _Crash(Exception):
    pass


def _crash_after_first_epoch(epochs_done, history):
    if epochs_done == 1:
        raise _Crash


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_resume_after_a_crash_equals_an_uninterrupted_run(cs, name, tmp_path):
    whole = T.train(name, cs, TINY, checkpoint_dir=tmp_path / "whole", progress=False)
    with pytest.raises(_Crash):
        T.train(name, cs, TINY, checkpoint_dir=tmp_path / "resumed", progress=False,
                callback=_crash_after_first_epoch)
    assert len(list((tmp_path / "resumed").glob("checkpoint-e00001-*.pt"))) == 1
    assert not (tmp_path / "resumed" / "weights.pt").exists()
    epochs_seen = []
    resumed = T.train(name, cs, TINY, checkpoint_dir=tmp_path / "resumed", progress=False,
                      callback=lambda e, h: epochs_seen.append(e))
    assert epochs_seen == [2]  # only the missing epoch ran
    _assert_same_state(whole.model.state_dict(), resumed.model.state_dict())
    pd.testing.assert_frame_equal(whole.history, resumed.history)
    # final weights load back with weights_only=True; the checkpoint is gone
    state = torch.load(resumed.path, weights_only=True)
    _assert_same_state(state, whole.model.state_dict())
    assert not list((tmp_path / "resumed").glob("checkpoint-*"))


def test_foreign_or_corrupt_checkpoints_are_ignored(cs, tmp_path):
    fresh = T.train("pifia", cs, TINY, progress=False)
    # a checkpoint of another training (other seed) in the same folder
    with pytest.raises(_Crash):
        T.train("pifia", cs, dict(TINY, seed=5), checkpoint_dir=tmp_path, progress=False,
                callback=_crash_after_first_epoch)
    epochs_seen = []
    res = T.train("pifia", cs, TINY, checkpoint_dir=tmp_path, progress=False,
                  callback=lambda e, h: epochs_seen.append(e))
    assert epochs_seen == [1, 2]
    _assert_same_state(fresh.model.state_dict(), res.model.state_dict())
    # a truncated checkpoint file
    with pytest.raises(_Crash):
        T.train("pifia", cs, TINY, checkpoint_dir=tmp_path, progress=False, callback=_crash_after_first_epoch)
    (ckpt,) = tmp_path.glob("checkpoint-e00001-*.pt")
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="unreadable checkpoint .*checkpoint-e00001"):
        res = T.train("pifia", cs, TINY, checkpoint_dir=tmp_path, progress=False)
    _assert_same_state(fresh.model.state_dict(), res.model.state_dict())


def test_work_per_epoch_is_bounded(cs):
    res = T.train("deeploc", cs, dict(TINY, epochs=3, max_crops_per_epoch=4), progress=False)
    assert len(res.history) == 3 and res.history.epoch.tolist() == [1, 2, 3]
    res = T.train("deeploc", cs, dict(TINY, epochs=5, max_steps=3), progress=False)
    assert len(res.history) == 3 and res.history.step.tolist() == [1, 2, 3]


# ---------------------------------------------------------------------------- cache
def test_load_or_train_caches_by_key(cs, tmp_path, monkeypatch):
    a = T.load_or_train("pifia", cs, TINY, cache_dir=tmp_path, progress=False)
    assert a.path.parent.name == f"pifia-{a.key}"
    meta = json.loads((a.path.parent / "meta.json").read_text())
    assert meta["labels"] == ["YAL1", "YBR2", "YCL3"] and meta["n_train"] == 11
    monkeypatch.setattr(T, "train", lambda *a, **k: pytest.fail("retrained although cached"))
    b = T.load_or_train("pifia", cs, TINY, cache_dir=tmp_path, progress=False)
    _assert_same_state(a.model.state_dict(), b.model.state_dict())
    assert b.labels == a.labels and not b.model.training
    np.testing.assert_allclose(b.history.loss, a.history.loss, rtol=1e-12)
    # what changes the key: parameters, pixels, labels
    other = T.training_key("pifia", cs, dict(TINY, lr=1e-3))
    pixels = cs.images.copy()
    pixels[3, 1, 5, 5] += 1
    relabelled = cs.table.copy()
    relabelled.loc[0, "strain"] = "YBR2"
    keys = {a.key, other, T.training_key("pifia", CropSet(pixels, cs.masks, cs.table), TINY),
            T.training_key("pifia", CropSet(cs.images, cs.masks, relabelled), TINY)}
    assert len(keys) == 4
    # columns the model does not read do not matter
    extra = cs.table.assign(note="x")
    assert T.training_key("pifia", CropSet(cs.images, cs.masks, extra), TINY) == a.key


def test_plot_history(cs):
    res = T.train("deeploc", cs, dict(TINY, max_steps=3), progress=False)
    ax = T.plot_history(res.history, label="DeepLoc")
    assert ax.get_xlabel() == "optimizer step" and ax.get_ylabel() == "training loss"
    with pytest.raises(ValueError, match="lacks column"):
        T.plot_history(res.history.drop(columns="loss"))


# ---------------------------------------------------------------------------- no leakage (issue 14)
def _split_cropset(per_class: int = 4, n_per_strain: int = 3) -> CropSet:
    rows = []
    for loc in ("ER", "vacuole", "nucleus"):
        for p in range(per_class):
            for i in range(n_per_strain):
                rows.append({"strain": f"{loc}-{p}", "kind": "single", "localization": loc,
                             "field": p, "valid": True})
    for i in range(n_per_strain):
        rows.append({"strain": "multi-0", "kind": "multi", "localization": "ER", "field": 99, "valid": True})
    table = pd.DataFrame(rows)
    rng = np.random.default_rng(0)
    n = len(table)
    return CropSet(rng.integers(0, 999, (n, 3, 64, 64)).astype(np.uint16), np.ones((n, 64, 64), bool), table)


def test_protein_split_deeploc_trains_on_proteins_disjoint_from_evaluation():
    cs = _split_cropset()
    params = T.TrainParams.for_model("deeploc")
    assert params.train_proteins == "disjoint"          # DeepLoc's default: no leakage
    data = T.training_data("deeploc", cs, train_proteins=params.train_proteins,
                           fraction=params.train_protein_fraction, split_seed=params.split_seed)
    trained_on = set(data.strain)
    evaluated = set(T.evaluation_proteins(cs.table, params))
    assert trained_on and evaluated
    assert trained_on.isdisjoint(evaluated)
    assert trained_on | evaluated == set(cs.table.strain)
    assert "multi-0" in evaluated
    # every class keeps training and evaluation proteins (2 of 4 each at fraction 0.5)
    for loc in ("ER", "vacuole", "nucleus"):
        assert sum(s.startswith(loc) for s in trained_on) == 2
        assert sum(s.startswith(loc) for s in evaluated) == 2
    # the "all" option is the old behaviour, which evaluates on the training proteins
    everything = T.training_data("deeploc", cs)
    assert set(everything.strain) & evaluated


def test_protein_split_deterministic_order_free_and_seeded():
    cs = _split_cropset()
    a = T.protein_split(cs.table)
    b = T.protein_split(cs.table.sample(frac=1.0, random_state=3))
    assert a.equals(b)
    seeds = {tuple(T.protein_split(cs.table, seed=s).eq("train")) for s in range(6)}
    assert len(seeds) > 1                                   # the split seed chooses the proteins
    assert (T.protein_split(cs.table, fraction=0.75) == "train").sum() == 9
    with pytest.raises(ValueError, match="train_protein_fraction"):
        T.protein_split(cs.table, fraction=1.0)
    with pytest.raises(ValueError, match="lacks column"):
        T.protein_split(cs.table.drop(columns="kind"))


def test_protein_split_in_key_and_trained_model_never_sees_evaluation_proteins():
    cs = _split_cropset(per_class=2, n_per_strain=4)
    base = dict(width=0.125, batch_size=4, epochs=1)
    k = T.training_key("deeploc", cs, base)
    assert k != T.training_key("deeploc", cs, dict(base, train_proteins="all"))
    assert k != T.training_key("deeploc", cs, dict(base, split_seed=1))
    assert k != T.training_key("deeploc", cs, dict(base, train_protein_fraction=0.7))
    # PIFiA / PCI keep the paper's practice, and their keys do not change
    assert T.TrainParams.for_model("pifia").train_proteins == "all"
    assert T.TrainParams.for_model("pci").train_proteins == "all"
    assert T.training_key("pifia", cs, base) == T.training_key("pifia", cs, dict(base, split_seed=5))
    assert T.evaluation_proteins(cs.table, base, model="pci") == sorted(set(cs.table.strain))
    with pytest.raises(ValueError, match="train_proteins"):
        T.TrainParams(train_proteins="some")
    res = T.train("deeploc", cs, base, progress=False)
    assert res.history is not None
    seen = set(T.training_data("deeploc", cs, train_proteins="disjoint").strain)
    assert len(seen) == 3 and seen.isdisjoint(T.evaluation_proteins(cs.table, base))
