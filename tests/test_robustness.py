"""The public entry point for any extractor (bgrobust.robustness) on extractors whose behaviour is known."""
import warnings

import numpy as np
import pytest
import torch

from bgrobust.extractors import as_extractor, minmax_per_channel
from bgrobust.robustness import robustness_report

CLASSES4 = ("cytoplasm", "nucleus", "mitochondrion", "vacuole")


@pytest.fixture(scope="module")
def sets():
    from bgrobust.dataset import load_or_build, open_screen
    from bgrobust.settings import generate_settings
    screen = open_screen("synthetic", {"seed": 1, "proteins_per_class": 2, "n_multi": 0, "fields_per_strain": 2,
                                       "field_shape": [256, 256], "n_plates": 2}, progress=False)
    ds = load_or_build(screen, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate_settings(ds, 12, classes=CLASSES4, random_state=0, progress=False)


def background_only(crops):
    """Texture of the GFP outside a central disc of radius 22 px: reads the background only.

    Per-crop standardised quantiles and bright-pixel fractions (the settings standardise
    intensities per protein, so the pattern, not the level, carries the class).
    """
    yy, xx = np.mgrid[:64, :64]
    ring = (yy - 31.5) ** 2 + (xx - 31.5) ** 2 > 22 ** 2   # centre cells are up to ~45 px across
    g = crops[:, 0][:, ring]
    g = (g - g.mean(1, keepdims=True)) / (g.std(1, keepdims=True) + 1e-6)
    qs = np.quantile(g, [0.5, 0.75, 0.9, 0.95, 0.99], axis=1).T
    return np.c_[qs, (g > 2).mean(1), (g > 4).mean(1)]


def test_constant_extractor_is_at_chance_with_no_effect(sets):
    rep = robustness_report(lambda x: np.zeros((len(x), 2)), sets=sets, classes=CLASSES4, n_jobs=1,
                            progress=False, name="constant")
    assert np.allclose(rep.table["mean"], rep.table["mean"].iloc[0])   # the same in every setting
    assert rep.table["mean"].iloc[0] <= 0.5                               # no better than chance
    assert rep.drop["mean"] == pytest.approx(0.0)
    assert "no background effect" in rep.verdict


def test_background_only_extractor_is_flagged(sets):
    rep = robustness_report(background_only, sets=sets, classes=CLASSES4, n_jobs=1, progress=False,
                            preprocess=None, name="background only")
    t = rep.table.set_index("experiment")["mean"]
    assert t["base"] > 0.7 and t["same"] > 0.7          # neighbours of the centre's class carry it
    assert t["mask"] < 0.6 and t["batch"] < 0.6         # no background cells: chance
    assert t["same"] > t["diff"] + 0.15                 # a background of a third class misleads
    assert "reads the background" in rep.verdict
    assert set(rep.per_class.columns) >= {"base", "mask", "same", "diff", "batch"}
    assert rep.scatter() is not None


def test_module_extractor_is_pooled_and_batched():
    conv = torch.nn.Conv2d(1, 4, 3)
    torch.nn.init.constant_(conv.weight, 1.0)
    torch.nn.init.zeros_(conv.bias)
    run = as_extractor(conv, channels=("gfp",), batch_size=3)
    crops = np.random.default_rng(0).random((7, 3, 64, 64)).astype(np.float32)
    out = run(crops)
    assert out.shape == (7, 4)
    x = minmax_per_channel(crops[:, :1])
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.ones(1, 1, 3, 3)).mean(dim=(2, 3))
    assert np.allclose(out[:, 0], expected[:, 0].numpy(), atol=1e-5)


def test_bad_extractors_get_clear_errors():
    crops = np.zeros((4, 3, 64, 64), np.float32)
    with pytest.raises(TypeError, match="torch.nn.Module, a callable"):
        as_extractor(42)
    with pytest.raises(ValueError, match="subset of"):
        as_extractor(lambda x: x, channels=("dapi",))
    with pytest.raises(ValueError, match="one feature vector per crop"):
        as_extractor(lambda x: np.zeros((2, 3)))(crops)
    with pytest.raises(ValueError, match="NaN"):
        as_extractor(lambda x: np.full((len(x), 2), np.nan))(crops)


def test_report_round_trips_through_save_and_load(sets, tmp_path):
    from bgrobust.robustness import RobustnessReport

    rep = robustness_report(background_only, sets=sets, classes=CLASSES4, n_jobs=1, progress=False,
                            preprocess=None, name="background only")
    folder = rep.save(tmp_path / "report")
    back = RobustnessReport.load(folder)
    assert back.name == rep.name and back.verdict == rep.verdict and back.drop == pytest.approx(rep.drop)
    assert back.bg_gap.keys() == rep.bg_gap.keys()
    for exp, df in rep.results.items():
        np.testing.assert_allclose(back.results[exp]["Accuracy"], df["Accuracy"])
    np.testing.assert_allclose(back.table["mean"], rep.table["mean"])
    np.testing.assert_allclose(back.per_class.to_numpy(), rep.per_class.to_numpy())
    assert list(back.per_class.columns) == list(rep.per_class.columns)
    assert back.summary == rep.summary
    frame = rep.to_frame()
    assert list(frame.columns[:2]) == ["extractor", "experiment"] and (frame.extractor == rep.name).all()
    assert len(frame) == len(rep.table) and frame["verdict"].eq(rep.verdict).all()
    # saving again replaces the folder; a folder that is not a report is refused with its name
    rep.save(folder)
    (tmp_path / "other").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks"):
        RobustnessReport.load(tmp_path / "other")
    (folder / "report.json").write_text("{not json")
    with pytest.raises(ValueError, match="report.json"):
        RobustnessReport.load(folder)
