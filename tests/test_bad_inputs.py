"""Bad inputs and damaged caches: every user-reachable call fails at the door, naming the problem.

Each case is a call a user can make (a parameter class, a reader, a chapter helper, the
runner, a cached loader) and the message it must give.  Before issue 15 most of these
were accepted and failed far away (matplotlib's ``Number of rows must be a positive
integer, not 0``), fell back silently to a profile, or read damaged caches as zeros.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from bgrobust import cache as C
from bgrobust.vocabulary import CLASSES
from bgrobust.classify import SVMProtocol, evaluate_pairs, pairwise_accuracy
from bgrobust.dataset import DatasetParams, build_dataset, load_or_build, open_screen
from bgrobust.io import DataError, HUH_LOCALIZATIONS, load_screen, write_manifest
from bgrobust.vocabulary import CHANNELS
from bgrobust.screen import Screen
from bgrobust.segment import SegmentationParams
from bgrobust.synth import ScreenConfig, load_or_generate


# --------------------------------------------------------------------------- parameter classes
def _settings(**kw):
    from bgrobust.settings import generate_settings
    return generate_settings(None, **kw)


def _report(**kw):
    from bgrobust.robustness import robustness_report
    return robustness_report(lambda x: x.mean(axis=(2, 3)), **kw)


def _train(**kw):
    from bgrobust.train import TrainParams
    return TrainParams.from_dict(kw)


def _vae(**kw):
    from bgrobust.vae import VAEParams
    return VAEParams(**kw)


PARAMETER_CASES = [
    # the examples
    (lambda: DatasetParams(crop_size=-3), r"DatasetParams\.crop_size must be an integer >= 8, got -3"),
    (lambda: DatasetParams.from_dict({"edge": "banana"}),
     r"DatasetParams\.edge must be one of \['drop', 'pad'\], got 'banana'"),
    (lambda: DatasetParams.from_dict({"segmentation": {"threshold": "nope"}}),
     r"DatasetParams\.segmentation: SegmentationParams\.threshold must be one of \['li', 'otsu', 'triangle'\], "
     r"got 'nope'"),
    (lambda: SegmentationParams(threshold="nope"), r"SegmentationParams\.threshold must be one of"),
    # (the ScreenConfig messages are matched in this branch's words and in those of main's own
    #  ScreenConfig checks, "ScreenConfig.<field>: must be ...", which replace them on merging)
    (lambda: ScreenConfig.from_dict({"n_multi": -1}), r"ScreenConfig\.n_multi:? must be (an integer )?>= 0, got -1"),
    # types, ranges and choices of the other fields
    (lambda: DatasetParams(crop_size="64"), r"DatasetParams\.crop_size must be an integer >= 8, got '64'"),
    (lambda: DatasetParams(gfp_percentile=150), r"DatasetParams\.gfp_percentile must be a number in \[0, 100\]"),
    (lambda: DatasetParams(gfp_reference="median"), r"DatasetParams\.gfp_reference must be one of"),
    (lambda: DatasetParams(min_mask_fraction=0.9, max_mask_fraction=0.5),
     r"DatasetParams\.max_mask_fraction must be at least min_mask_fraction \(0\.9\), got 0\.5"),
    (lambda: DatasetParams(cellfree_variance_factor=0), r"DatasetParams\.cellfree_variance_factor must be a number > 0"),
    (lambda: DatasetParams.from_dict({"segmentation": {"min_area": 0}}), r"SegmentationParams\.min_area must be"),
    (lambda: DatasetParams.from_dict({"segmentation": {"smoothing": 1}}),
     r"segmentation parameters: unknown key\(s\) \['smoothing'\]"),
    (lambda: DatasetParams.from_dict({"crop": 64}), r"dataset parameters: unknown key\(s\) \['crop'\]"),
    (lambda: ScreenConfig(p_budded=1.5), r"ScreenConfig\.p_budded:? must be (a number )?in \[0(\.0)?, 1(\.0)?\], got 1\.5"),
    (lambda: ScreenConfig(cells_per_field=(70, 12)),
     r"ScreenConfig\.cells_per_field:? .*(low <= high\), got \(70, 12\)|low 70 is above high 12)"),
    (lambda: ScreenConfig(proteins_per_class="4"), r"ScreenConfig\.proteins_per_class:? must be an integer.*got '4'"),
    (lambda: SVMProtocol(n_splits=1), r"SVMProtocol\.n_splits must be an integer >= 2, got 1"),
    (lambda: SVMProtocol(kernel="banana"), r"SVMProtocol\.kernel must be one of"),
    (lambda: SVMProtocol(shuffle="yes"), r"SVMProtocol\.shuffle must be True or False, got 'yes'"),
    (lambda: SVMProtocol(n_per_class=-1), r"SVMProtocol\.n_per_class must be an integer >= 1 or None, got -1"),
    (lambda: _train(epochs=0), r"TrainParams\.epochs must be an integer >= 1 or None, got 0"),
    (lambda: _train(flips="yes"), r"TrainParams\.flips must be True or False or None, got 'yes'"),
    (lambda: _vae(channels=("gfp", "dapi")), r"VAEParams\.channels must be distinct names from"),
    (lambda: _vae(epochs="3"), r"VAEParams\.epochs must be an integer >= 1, got '3'"),
    (lambda: _settings(n_cells=0), r"generate_settings: n_cells must be an integer >= 1, got 0"),
    # robustness_report: explicit values are checked, never replaced by the profile's
    (lambda: _report(n_cells=0), r"robustness_report: n_cells must be an integer >= 1 or None, got 0"),
    (lambda: _report(n_cells=-5), r"robustness_report: n_cells must be an integer >= 1 or None, got -5"),
    (lambda: _report(classes=[]), r"robustness_report: classes must name at least 2 classes.*got \[\]"),
    (lambda: _report(classes=["ER", "banana"]), r"robustness_report: classes: unknown localization class.*banana"),
    (lambda: _report(channels=("dapi",)), r"robustness_report: unknown channel\(s\) \['dapi'\]"),
    (lambda: _report(channels=()), r"robustness_report: channels must be a non-empty sequence"),
]


@pytest.mark.parametrize("call, message", PARAMETER_CASES,
                         ids=[f"param{i:02d}" for i in range(len(PARAMETER_CASES))])
def test_bad_parameters_fail_at_the_door_naming_the_field(call, message):
    with pytest.raises(ValueError, match=message):  # ParameterError is a ValueError (and a TypeError)
        call()


def test_parameter_errors_are_value_and_type_errors():
    with pytest.raises(ValueError):
        DatasetParams(crop_size=-3)
    with pytest.raises(TypeError):
        DatasetParams(crop_size="64")


# --------------------------------------------------------------------------- readers
def _manifest(folder, images, orfs=None):
    """A manifest screen: one strain per field; ``images`` is (F, 3, H, W)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, image in enumerate(images):
        row = {"strain": f"s{i}", "orf": (orfs or [f"YAL{i:03d}W" for i in range(len(images))])[i],
               "plate": 1, "well": f"A{i + 1:02d}", "field": 0}
        for c, channel in enumerate(CHANNELS):
            name = f"f{i}_{channel}.tif"
            tifffile.imwrite(folder / name, image[c])
            row[channel] = name
        rows.append(row)
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _cells(n, size=128, seed=0):
    """Fields with a few bright discs (cells) on a dim background, uint16."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.full((n, 3, size, size), 100, np.uint16)
    for f in range(n):
        for _ in range(3):
            margin = min(30, size // 3)
            cy, cx = rng.integers(margin, size - margin, 2)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 12 ** 2
            out[f][:, disc] = 2000
    return out + rng.integers(0, 20, out.shape).astype(np.uint16)


def _huh(path, orfs_and_classes):
    """A yeastgfp-format table: rows of (ORF, class)."""
    head = ["orfid", "yORF", "gene name", "ambiguous", *HUH_LOCALIZATIONS]
    lines = ["\t".join(head)]
    for n, (orf, cls) in enumerate(orfs_and_classes):
        lines.append("\t".join([str(n), orf, f"G{n}", "F", *("T" if c == cls else "F" for c in HUH_LOCALIZATIONS)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_all_zero_image_is_rejected_naming_the_file(tmp_path):
    images = _cells(2)
    images[1, 0] = 0
    screen = load_screen(_manifest(tmp_path, images))
    with pytest.raises(DataError, match=r"gfp image of field 1 .*f1_gfp\.tif: every pixel is 0"):
        build_dataset(screen, progress=False)


def test_a_nan_image_is_rejected_naming_the_file(tmp_path):
    path = _manifest(tmp_path, _cells(2))
    tifffile.imwrite(tmp_path / "f0_nucleus.tif", np.full((128, 128), np.nan, np.float32))
    with pytest.raises(DataError, match=r"nucleus image of field 0 .*f0_nucleus\.tif: 16384 NaN or infinite"):
        build_dataset(load_screen(path), progress=False)


def test_a_field_smaller_than_a_crop_is_rejected_naming_the_manifest(tmp_path):
    path = _manifest(tmp_path, _cells(2, size=48))
    with pytest.raises(DataError, match=r"field 0 \(strain 's0', site 0\) of manifest .*manifest\.csv: "
                                        r"the field is 48 x 48 px, smaller than a crop \(DatasetParams.crop_size=64\)"):
        build_dataset(load_screen(path), progress=False)


def test_a_synthetic_field_smaller_than_a_crop_is_rejected(tmp_path):
    screen = Screen(pd.DataFrame({"strain": ["s0"], "kind": ["single"], "localization": ["ER"]}),
                    pd.DataFrame({"field": [0], "strain": ["s0"], "plate": [1], "well": ["A01"], "site": [0]}),
                    _cells(1, size=64))
    with pytest.raises(DataError, match=r"field 0 \(strain 's0'\).*smaller than a crop \(DatasetParams.crop_size=96\)"):
        build_dataset(screen, DatasetParams(crop_size=96), progress=False)


def test_fields_without_cells_are_rejected_before_any_plot(tmp_path):
    flat = np.full((2, 3, 96, 96), 500, np.uint16)
    with pytest.raises(DataError, match=r"manifest\.csv: no crop in any of its 2 field\(s\): no cell was segmented"):
        build_dataset(load_screen(_manifest(tmp_path, flat)), progress=False)


@pytest.mark.filterwarnings("ignore:.*excluded class")
def test_a_label_file_that_matches_no_orf_is_rejected(tmp_path):
    path = _manifest(tmp_path / "screen", _cells(2))
    labels = _huh(tmp_path / "allOrfData.txt", [(f"YOTHER{i}", "ER") for i in range(8)])
    with pytest.warns(UserWarning, match="2 of 2 strain"), \
            pytest.raises(DataError, match=r"labels .*allOrfData\.txt: no ORF of manifest .*manifest\.csv has a label"):
        open_screen("manifest", manifest_path=path, labels_path=labels)


def test_a_manifest_that_is_not_there_is_named(tmp_path):
    with pytest.raises(DataError, match=r"manifest .*nothing\.csv: file not found"):
        open_screen("manifest", manifest_path=tmp_path / "nothing.csv")


def test_write_manifest_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    screen = load_screen(_manifest(tmp_path / "src", _cells(1)))
    with pytest.raises(FileExistsError, match=r"out is not empty \(1 entries: notes\.txt\)"):
        write_manifest(screen, tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- the runner
def test_a_malformed_profile_exits_2_with_file_and_line(tmp_path, capsys):
    from bgrobust import runbook

    (tmp_path / "bad.yml").write_text("seed: 0\nscreen:\n  n_multi: [1, 2\nclasses: [ER]\n")
    assert runbook.main(["--profile", "bad", "--params-dir", str(tmp_path), "--list"]) == 2
    err = capsys.readouterr().err
    assert "bad.yml:4:" in err and "malformed YAML" in err and "Traceback" not in err


def test_a_bad_command_line_value_exits_2(capsys):
    from bgrobust import runbook

    assert runbook.main(["--profile", "ci", "--list", "-p", "seed", "[1, 2"]) == 2
    assert "-p seed: cannot parse '[1, 2' as YAML" in capsys.readouterr().err


# --------------------------------------------------------------------------- damaged caches
@pytest.fixture(scope="module")
def tiny_config():
    return ScreenConfig(proteins_per_class=1, n_multi=1, fields_per_strain=1, field_shape=(128, 128),
                        cells_per_field=(5, 12), n_plates=1)


def test_a_missing_zarr_chunk_is_found_and_the_screen_rebuilt(tmp_path, tiny_config):
    screen = load_or_generate(tiny_config, tmp_path, progress=False)
    reference = screen.image(3).copy()
    (entry,) = tmp_path.glob("screen-*")
    chunk = next(p for p in sorted((entry / "images.zarr").rglob("*")) if p.is_file() and "/c/" in p.as_posix())
    chunk.unlink()
    with pytest.raises(C.DamagedEntry, match=rf"cache entry {entry} is damaged: images\.zarr/c/.*: missing"):
        Screen.load(entry)
    with pytest.warns(C.CacheWarning, match=rf"synthetic screen {entry} is damaged \(images\.zarr/c/.*missing\)"):
        again = load_or_generate(tiny_config, tmp_path, progress=False)
    np.testing.assert_array_equal(again.image(3), reference)


@pytest.mark.parametrize("damage", ["zero", "truncate"])
def test_a_damaged_dataset_is_rebuilt_with_a_warning_naming_its_folder(tmp_path, tiny_config, damage):
    screen = load_or_generate(tiny_config, tmp_path, progress=False)
    ds = load_or_build(screen, cache_dir=tmp_path, progress=False)
    n, first = len(ds.crops), np.array(ds.crops.images[:5])
    (entry,) = tmp_path.glob("dataset-*")
    target = entry / "crops" / "images.npy"
    data = target.read_bytes()
    del ds
    target.write_bytes(data[:128] + bytes(len(data) - 128) if damage == "zero" else data[: len(data) // 2])
    with pytest.warns(C.CacheWarning, match=rf"dataset {entry} is damaged \(crops/images\.npy: "):
        again = load_or_build(screen, cache_dir=tmp_path, progress=False)
    assert len(again.crops) == n
    np.testing.assert_array_equal(again.crops.images[:5], first)


def test_damaged_features_and_svm_results_are_recomputed(tmp_path):
    import torch

    from bgrobust import features as FE
    from bgrobust import models

    model = models.build("pci", width=0.125, random_state=0)
    crops = np.random.default_rng(0).integers(0, 4000, (4, 3, 64, 64)).astype(np.uint16)
    with torch.inference_mode():
        first = FE.extract(model, crops, cache_dir=tmp_path, progress=False)
    (entry,) = tmp_path.glob("features-*")
    (entry / "features.npy").write_bytes((entry / "features.npy").read_bytes()[:-8] + bytes(8))
    with pytest.warns(C.CacheWarning, match=rf"feature cache entry {entry} is damaged"):
        np.testing.assert_array_equal(FE.extract(model, crops, cache_dir=tmp_path, progress=False), first)

    rng = np.random.default_rng(0)
    feats = {c: rng.normal(i, 1, (10, 3)) for i, c in enumerate(["actin", "ER"])}
    proto = SVMProtocol(n_per_class=10)
    df = evaluate_pairs(feats, proto, classes=["actin", "ER"], progress=False, cache_dir=tmp_path / "svm")
    (record,) = (tmp_path / "svm").rglob("*.json")
    stored = json.loads(record.read_text())
    stored["value"][0] = 0.123  # bit rot in the accuracy; the checksum is the old one
    record.write_text(json.dumps(stored))
    with pytest.warns(C.CacheWarning, match=rf"SVM cache entry {record} is damaged"):
        again = evaluate_pairs(feats, proto, classes=["actin", "ER"], progress=False, cache_dir=tmp_path / "svm")
    assert again.equals(df)


def test_damaged_trained_weights_are_trained_again(tmp_path):
    from bgrobust import train as T
    from bgrobust.crops import CropSet

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"strain": np.repeat(["a", "b"], 4), "field": 0, "valid": True})
    cs = CropSet(rng.integers(0, 999, (8, 3, 64, 64)), np.zeros((8, 64, 64), bool), table)
    params = dict(epochs=1, batch_size=4, width=0.125)
    a = T.load_or_train("pifia", cs, params, cache_dir=tmp_path, progress=False)
    a.path.write_bytes(a.path.read_bytes()[:-16] + bytes(16))
    with pytest.warns(C.CacheWarning, match=rf"trained model {a.path.parent} is damaged \(weights\.pt: "):
        b = T.load_or_train("pifia", cs, params, cache_dir=tmp_path, progress=False)
    for key, value in a.model.state_dict().items():
        assert np.array_equal(value.numpy(), b.model.state_dict()[key].numpy())


# --------------------------------------------------------------------------- small n
@pytest.mark.parametrize("n", [6, 7, 8, 9, 12, 13])
def test_a_constant_extractor_scores_exactly_chance_at_small_n(n):
    constant = np.ones((n, 4))
    assert pairwise_accuracy(constant, constant, SVMProtocol(n_per_class=n)) == (0.5, 0.0)


def test_the_papers_folds_are_unchanged_when_n_divides():
    from sklearn.model_selection import StratifiedKFold

    from bgrobust.classify import balanced_folds

    for n1, n2, k in [(1000, 1000, 5), (40, 40, 5), (15, 25, 5), (12, 12, 3)]:
        y = np.r_[np.zeros(n1, int), np.ones(n2, int)]
        for shuffle in (False, True):
            p = SVMProtocol(n_splits=k, shuffle=shuffle)
            ours = balanced_folds(y, p)
            theirs = StratifiedKFold(k, shuffle=shuffle, random_state=p.random_state if shuffle else None).split(y, y)
            for (a_train, a_test), (b_train, b_test) in zip(ours, theirs, strict=True):
                assert np.array_equal(a_train, b_train) and np.array_equal(a_test, b_test)
