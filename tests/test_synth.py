"""The synthetic screen: structure, truth, determinism, and the 15 patterns."""
import json

import numpy as np
import pandas as pd
import pytest

from bgrobust.vocabulary import CLASSES
from bgrobust.screen import PROPORTION_COLUMNS, Screen
from bgrobust.synth import PATTERNS, ScreenConfig, generate_screen, load_or_generate, make_strains
from bgrobust.synth.screen import FRACTION_COLUMNS
from bgrobust.synth.geometry import place_cells, rasterise, sample_cell
from bgrobust.synth.optics import PlateEffects, camera, illumination

SMALL = ScreenConfig(proteins_per_class=1, n_multi=3, fields_per_strain=1, field_shape=(128, 128),
                     cells_per_field=(6, 12), n_plates=2)


@pytest.fixture(scope="module")
def screen():
    return generate_screen(SMALL, progress=False)


def test_strains_cover_every_class_and_multi_proportions_sum_to_one():
    strains, effects = make_strains(SMALL)
    single = strains[strains.kind == "single"]
    assert sorted(single.localization) == sorted(CLASSES)
    props = strains[list(PROPORTION_COLUMNS)].to_numpy()
    np.testing.assert_allclose(props.sum(axis=1), 1.0)
    multi = strains[strains.kind == "multi"]
    assert len(multi) == 3 and ((props[strains.kind == "multi"] > 0).sum(axis=1) >= 2).all()
    assert strains.orf.is_unique and len(effects) == 2
    assert strains.well.str.match(r"^[A-H](0[1-9]|1[0-2])$").all()


def test_images_are_uint16_three_channels_with_truth(screen):
    assert screen.n_fields == 15 + 3
    img = screen.image(0)
    assert img.shape == (3, 128, 128) and img.dtype == np.uint16
    lab = screen.label_image(0)
    cells = screen.cells[screen.cells.field == 0]
    assert set(np.unique(lab)) - {0} == set(cells.label)
    # every cell's truth class is its protein's class for single-localized proteins
    merged = screen.cells.merge(screen.strains[["strain", "kind", "localization"]], on="strain",
                                suffixes=("", "_protein"))
    single = merged[merged.kind == "single"]
    assert (single.localization == single.localization_protein).all()


def _multi_screen(p_within_cell):
    cfg = ScreenConfig(proteins_per_class=1, n_multi=2, fields_per_strain=3, field_shape=(384, 384),
                       cells_per_field=(40, 60), n_plates=2, seed=3, p_within_cell=p_within_cell)
    return generate_screen(cfg, progress=False)


def test_between_cell_proteins_put_each_cell_in_one_class_drawn_from_the_proportions():
    scr = _multi_screen(0.0)
    multi = scr.strains[scr.strains.kind == "multi"]
    assert (multi.mixing == "between_cells").all()
    for _, s in multi.iterrows():
        cells = scr.cells[scr.cells.strain == s.strain]
        shares = cells[list(FRACTION_COLUMNS)].to_numpy()
        assert set(np.unique(shares)) <= {0.0, 1.0} and (shares.sum(axis=1) == 1).all()
        observed = cells.localization.value_counts(normalize=True)
        for c in CLASSES:
            p = s[f"p:{c}"]
            if p == 0:
                assert c not in observed.index
            else:  # binomial tolerance: 4 sd
                sd = np.sqrt(p * (1 - p) / len(cells))
                assert abs(observed.get(c, 0.0) - p) < 4 * sd + 1e-9


def test_within_cell_mixtures_light_every_compartment_in_every_cell():
    scr = _multi_screen(1.0)
    multi = scr.strains[scr.strains.kind == "multi"]
    assert (multi.mixing == "within_cell").all()
    for _, s in multi.iterrows():
        cells = scr.cells[scr.cells.strain == s.strain]
        props = s[list(PROPORTION_COLUMNS)].to_numpy(float)
        shares = cells[list(FRACTION_COLUMNS)].to_numpy()
        np.testing.assert_allclose(shares.sum(axis=1), 1.0)
        on = props > 0
        assert (shares[:, on] > 0).all() and (shares[:, ~on] == 0).all()
        # the per-cell ratio varies around the protein's proportions (its truth)
        assert shares[:, on].std(axis=0).min() > 0
        mean = shares.mean(axis=0)
        sd = np.sqrt(props * (1 - props) / (1 + 20.0) / len(cells))  # Dirichlet, concentration 20
        assert (np.abs(mean - props)[on] < 5 * sd[on] + 1e-9).all()
        # the truth class of a cell is its largest compartment
        assert (cells.localization.to_numpy() == np.asarray(CLASSES)[shares.argmax(axis=1)]).all()


def test_multi_localized_combinations_follow_yeast():
    strains, _ = make_strains(ScreenConfig(n_multi=200, n_plates=8, proteins_per_class=1))
    multi = strains[strains.kind == "multi"]
    combos = multi[list(PROPORTION_COLUMNS)].gt(0).apply(
        lambda r: tuple(c[2:] for c, v in r.items() if v), axis=1)
    share = (combos == ("cytoplasm", "nucleus")).mean()
    assert 0.6 < share < 0.88  # 838 of 1,136 in Huh et al. (74 %)
    assert set(multi.mixing) == {"within_cell", "between_cells"}


def test_cells_have_the_real_size_at_the_default_pixel_size():
    cfg = ScreenConfig(proteins_per_class=1, n_multi=0, fields_per_strain=1)
    scr = generate_screen(cfg, progress=False)
    area = scr.cells.area.median()
    assert 800 < area < 1200  # real WT2 crops: ~975 px (equivalent diameter ~35 px)
    old = generate_screen(ScreenConfig(**{**cfg.__dict__, "pixel_size": 0.2}), progress=False)
    ratio = area / old.cells.area.median()
    assert ratio == pytest.approx((0.2 / 0.13) ** 2, rel=0.2)


def test_screen_is_deterministic_and_independent_of_workers():
    a = generate_screen(SMALL, progress=False)
    b = generate_screen(SMALL, n_jobs=2, progress=False)
    np.testing.assert_array_equal(a.images, b.images)
    pd.testing.assert_frame_equal(a.cells, b.cells)
    c = generate_screen(ScreenConfig(**{**SMALL.__dict__, "seed": 1}), progress=False)
    assert not np.array_equal(a.images[0], c.images[0])


def test_cell_free_regions_and_touching_cells_occur():
    cfg = ScreenConfig(proteins_per_class=1, n_multi=0, fields_per_strain=1, cells_per_field=(10, 90))
    scr = generate_screen(cfg, progress=False)
    counts = scr.cells.groupby("field").size()
    assert counts.max() > 3 * counts.min()  # density varies between fields
    from skimage.morphology import dilation, disk
    touching = 0
    for i in range(scr.n_fields):
        lab = scr.label_image(i)
        grown = dilation(lab, disk(1))
        touching += int(((grown != lab) & (lab > 0)).any())
    assert touching > 0


@pytest.mark.parametrize("name", CLASSES)
def test_every_pattern_is_non_negative_inside_the_cell_and_not_empty(name):
    rng = np.random.default_rng(1)
    for budded in (0.0, 1.0):
        frame = rasterise(sample_cell(rng, 40, 40, p_budded=budded), (80, 80))
        d = PATTERNS[name](frame, rng)
        assert d.shape == frame.mask.shape
        assert (d >= 0).all() and d.sum() > 0
        assert d[~frame.mask].sum() == 0


def test_patterns_sit_where_biology_puts_them():
    rng = np.random.default_rng(2)
    frame = rasterise(sample_cell(rng, 40, 40, p_budded=0.0), (80, 80))
    nuc_d, rn = frame.nucleus_distance, frame.geom.nuc[2]
    nucleus = PATTERNS["nucleus"](frame, rng)
    periphery = PATTERNS["nuclear periphery"](frame, rng)
    # nucleoplasm peaks at the nucleus centre, nuclear periphery on its rim
    assert nucleus[nuc_d < 1].mean() > 5 * nucleus[nuc_d > rn + 3].mean()
    assert periphery[np.abs(nuc_d - rn) < 0.7].mean() > 3 * periphery[nuc_d < rn / 2].mean()
    # the cell periphery is brightest at the membrane, the cytoplasm avoids the vacuole
    membrane = PATTERNS["cell periphery"](frame, rng)
    assert membrane[frame.mask & (frame.depth < 1.5)].mean() > 5 * membrane[frame.depth > 4].mean()
    cyto = PATTERNS["cytoplasm"](frame, rng)
    vac_d, rv = frame.vacuole_distance, frame.geom.vac[2]
    assert cyto[vac_d < rv / 2].mean() < 0.3 * cyto[frame.mask & (vac_d > rv + 2)].mean()


def test_placement_never_covers_cells():
    rng = np.random.default_rng(0)
    cells = place_cells(rng, (200, 200), 60, overlap=0.9)
    for i, a in enumerate(cells):
        for b in cells[i + 1:]:
            assert np.hypot(a.cy - b.cy, a.cx - b.cx) >= 0.9 * (a.a + b.a) - 1e-9


def test_camera_and_illumination():
    rng = np.random.default_rng(0)
    fx = PlateEffects(offset=100.0, gain=2.0, vignette=0.3, centre=(0.5, 0.5), tilt=0.0, tilt_angle=0.0)
    ill = illumination((65, 65), fx)
    assert ill[32, 32] == pytest.approx(1.0, abs=1e-3) and ill[0, 0] < ill[32, 32]
    img = camera(np.full((200, 200), 50.0), rng, fx, read_noise=0.0)
    assert img.mean() == pytest.approx(100 + 2 * 50, rel=0.02)
    # the plate gain scales the expected photon count (lamp, exposure), so the noise stays Poisson
    assert np.var(img.astype(float)) == pytest.approx(2 * 50, rel=0.15)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="plate_format"):
        ScreenConfig(plate_format=100)
    with pytest.raises(ValueError, match="do not fit"):
        ScreenConfig(proteins_per_class=100, n_plates=1)
    with pytest.raises(ValueError, match="unknown key"):
        ScreenConfig.from_dict({"n_protein": 3})


def test_cached_screen_round_trips(tmp_path, screen):
    loaded = load_or_generate(SMALL, tmp_path, progress=False)
    assert isinstance(loaded, Screen) and loaded.has_truth
    np.testing.assert_array_equal(loaded.image(3), screen.image(3))
    np.testing.assert_array_equal(loaded.label_image(3), screen.label_image(3))
    pd.testing.assert_frame_equal(loaded.strains, screen.strains)
    # a second call reuses the folder (no re-render): same path, no temp leftovers
    again = load_or_generate(SMALL, tmp_path, progress=False)
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".")]) == 0
    np.testing.assert_array_equal(again.image(0), screen.image(0))


def test_a_screen_rendered_into_a_folder_is_the_screen_rendered_in_memory(tmp_path, screen):
    """generate_screen(out=) writes field by field (never the whole screen held) and gives the
    same images, labels and tables; Screen.save of the in-memory screen writes the same folder."""
    streamed = generate_screen(SMALL, progress=False, out=tmp_path / "streamed", n_jobs=2)
    saved = Screen.load(screen.save(tmp_path / "saved"))
    assert not isinstance(streamed.images, np.ndarray)   # read back lazily (zarr)
    for other in (streamed, saved):
        assert other.n_fields == screen.n_fields
        for i in range(screen.n_fields):
            np.testing.assert_array_equal(other.image(i), screen.image(i))
            np.testing.assert_array_equal(other.label_image(i), screen.label_image(i))
        for table in ("strains", "fields", "cells"):
            pd.testing.assert_frame_equal(getattr(other, table), getattr(screen, table))
        assert other.meta == json.loads(json.dumps(screen.meta, default=str))   # as JSON holds it


def test_write_screen_checks_the_number_of_fields(tmp_path, screen):
    from bgrobust.screen import write_screen

    with pytest.raises(ValueError, match="1 field\\(s\\) arrived, 3 expected"):
        write_screen(tmp_path / "s", iter([(screen.image(0), None)]), 3, strains=screen.strains,
                     fields=screen.fields)
    assert not (tmp_path / "s").exists()   # nothing half-written is left


@pytest.mark.parametrize("params, field, message", [
    ({"pixel_size": 0.0}, "pixel_size", "must be a number in"),
    ({"pixel_size": "big"}, "pixel_size", "must be a number"),
    ({"n_multi": -1}, "n_multi", "must be an integer >= 0"),
    ({"proteins_per_class": 2.5}, "proteins_per_class", "must be an integer"),
    ({"p_within_cell": 1.5}, "p_within_cell", "must be a number in"),
    ({"cell_size": (3.0, 2.0)}, "cell_size", "low <= high"),
    ({"cell_size": 2.0}, "cell_size", "must be two values"),
    ({"diffuse_fraction": (0.1, 1.4)}, "diffuse_fraction", "must be two values"),
    ({"field_shape": (32, 32)}, "field_shape", ">= 64"),
    ({"psf_sigma": float("nan")}, "psf_sigma", "must be a number in"),
    ({"p_dead": -0.1}, "p_dead", "must be a number in"),
    ({"seed": -3}, "seed", "must be an integer >= 0"),
])
def test_config_names_the_bad_parameter(params, field, message):
    with pytest.raises(ValueError, match=rf"ScreenConfig\.{field} .*{message}"):
        ScreenConfig(**params)
