"""The plate batch-effect test of chapter 5 and its controls (bgrobust.platecontrol, issue 14)."""
import numpy as np
import pandas as pd
import pytest

from bgrobust import platecontrol as pc
from bgrobust.synth import ScreenConfig, generate_screen, make_strains

SMALL = dict(proteins_per_class=2, n_multi=4, fields_per_strain=1, field_shape=(256, 256), n_plates=3)


@pytest.fixture(scope="module")
def screens():
    return {name: generate_screen(ScreenConfig(**SMALL, **extra, seed=0), n_jobs=1, progress=False)
            for name, extra in (("null", pc.NEUTRAL_PLATES), ("planted", pc.PLANTED_PLATES))}


def test_planted_plate_effect_detected_and_null_not(screens):
    report = pc.plate_effect_report(screens, n_permutations=499)
    assert report.loc["planted", "detected"]
    assert report.loc["planted", "accuracy"] > report.loc["planted", "null_95"]
    assert not report.loc["null", "detected"]
    assert report.loc["null", "p_value"] > 0.05
    assert (report["n_plates"] == 3).all() and (report["n_proteins"] > 20).all()


def test_background_patches_hold_no_cell(screens):
    s = screens["null"]
    patches, table = pc.background_patches(s, size=32, margin=4, per_field=8)
    assert patches.shape[1:] == (3, 32, 32) and len(table) == len(patches)
    assert table.groupby("field").size().max() <= 8
    # every patch lies on truth background: its pixels equal a cell-free region of the field
    f = int(table.field.iloc[0])
    image = np.asarray(s.images[f], np.float32)
    labels = np.asarray(s.labels[f])
    hits = [(y, x) for y in range(0, 256 - 31, 32) for x in range(0, 256 - 31, 32)
            if np.array_equal(image[:, y:y + 32, x:x + 32], patches[0])]
    assert hits and not (labels[hits[0][0]:hits[0][0] + 32, hits[0][1]:hits[0][1] + 32] > 0).any()
    assert set(table.stratum) <= set(s.strains.localization) | {"multi"}


def test_descriptors_ignore_offset_and_gain_per_protein():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"strain": np.repeat(["a", "b"], 5), "plate": np.repeat([1, 2], 5), "stratum": "ER"})
    x = rng.normal(size=(10, 3, 16, 16)).astype(np.float32)
    y = x.copy()
    y[5:] = y[5:] * 7.0 + 300.0          # protein b: another offset and gain
    assert np.allclose(pc.patch_descriptors(x, table), pc.patch_descriptors(y, table), atol=1e-4)
    with pytest.raises(ValueError, match="rows for"):
        pc.patch_descriptors(x, table.iloc[:3])


def test_plate_effect_test_inputs():
    table = pd.DataFrame({"strain": list("abcd"), "plate": [1, 1, 1, 1], "stratum": "ER"})
    with pytest.raises(ValueError, match="fewer than 2 plates"):
        pc.plate_effect_test(np.zeros((4, 3)), table)
    bad = pd.DataFrame({"strain": list("aabb"), "plate": [1, 2, 1, 1], "stratum": "ER"})
    with pytest.raises(ValueError, match="more than one plate"):
        pc.plate_effect_test(np.zeros((4, 3)), bad)
    with pytest.raises(ValueError, match="alpha"):
        pc.plate_effect_test(np.zeros((4, 3)), table.assign(plate=[1, 2, 1, 2]), alpha=1.5)


def test_surviving_plate_effects_are_their_own_stream_and_off_by_default():
    off = ScreenConfig(**SMALL)
    on = ScreenConfig(**SMALL, plate_noise_sd=0.8, plate_focus_sd=0.3, plate_texture_max=0.5)
    s_off, fx_off = make_strains(off)
    s_on, fx_on = make_strains(on)
    pd.testing.assert_frame_equal(s_off, s_on)                       # the same strains and plates
    for a, b in zip(fx_off, fx_on):
        assert (a.offset, a.gain, a.vignette, a.tilt) == (b.offset, b.gain, b.vignette, b.tilt)
        assert (a.focus, a.noise, a.texture) == (1.0, 1.0, 0.0)       # neutral when off
    assert len({round(e.noise, 6) for e in fx_on}) == 3
    with pytest.raises(ValueError, match="plate_noise_sd"):
        ScreenConfig(plate_noise_sd=-1.0)


def test_plate_noise_survives_standardisation():
    """Two screens differing only in one plate's read noise: the standardised background differs."""
    from bgrobust.synth.optics import PlateEffects
    from bgrobust.synth.screen import render_field
    cfg = ScreenConfig(**SMALL)
    strain = make_strains(cfg)[0].iloc[0].to_dict()
    base = PlateEffects(220.0, 1.0, 0.0, (0.5, 0.5), 0.0, 0.0)
    loud = PlateEffects(220.0, 1.0, 0.0, (0.5, 0.5), 0.0, 0.0, noise=4.0)
    img_a, lab_a, _ = render_field(cfg, strain, base, np.random.default_rng(3))
    img_b, lab_b, _ = render_field(cfg, strain, loud, np.random.default_rng(3))
    bg = lab_a == 0
    assert np.array_equal(lab_a, lab_b)

    def fine_share(img):
        z = (img[0].astype(float) - img[0][bg].mean()) / img[0][bg].std()
        return np.mean(np.diff(z, axis=1)[bg[:, 1:]] ** 2)   # pixel-to-pixel variation after standardising
    assert fine_share(img_b) > 1.2 * fine_share(img_a)
