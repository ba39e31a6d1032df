"""The synthetic ORF-GFP screen: strains on plates, fields of view, and the truth.

Every strain is one GFP-tagged protein on one plate well, imaged in a few fields of
view with three channels (GFP, a nuclear marker, a cytoplasm marker).  All cells of
a field express the same protein.  A single-localized protein puts every cell in its
class.  Multi-localized proteins come in the two kinds seen in yeast: *within-cell
mixtures* (a cytoplasm+nucleus protein lights both compartments in every cell, with
a per-cell ratio) and *between-cell* heterogeneity (each cell in one compartment,
drawn from the protein's proportions; the paper's section 4.5).  The truth (every
cell's class, compartment shares and mask, every protein's proportions) is stored
with the images.  The defaults are calibrated against real crops
(:mod:`bgrobust.synth.realism`).

Everything is deterministic given ``ScreenConfig.seed``: each field has its own
random stream, so the screen is identical whatever the number of parallel workers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields as dc_fields
from typing import ClassVar
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from ..cache import code_key, content_key, load_or_create
from ..vocabulary import CLASSES
from ..constraints import Choice, Integer, Pair, Real, check_params
from ..screen import PROPORTION_COLUMNS, Screen, write_screen
from .biology import sample_abundance, sample_multi_localization
from .geometry import REFERENCE_PIXEL_SIZE, place_cells, rasterise
from .optics import PlateEffects, blur, camera, illumination, sample_plate_effects, sample_surviving_effects
from .patterns import PATTERNS, soft_disc

#: Per-cell truth columns: the share of the cell's GFP in each class's compartment.
FRACTION_COLUMNS: tuple[str, ...] = tuple(f"f:{c}" for c in CLASSES)

#: The two kinds of multi-localized protein.
MIXINGS = ("within_cell", "between_cells")

@dataclass(frozen=True)
class ScreenConfig:
    """Every parameter of the synthetic screen (all have defaults; see ``params/*.yml``).

    The defaults are calibrated against real cells of the WT2 ORF-GFP screen (the PCI
    crops, 64 x 64 px with cells of ~35 px diameter; see
    :mod:`bgrobust.synth.realism`) and the biology of budding yeast; sizes are in
    micrometres and converted with ``pixel_size``.  ``ScreenConfig(pixel_size=0.2)``
    renders cells at the smaller scale of earlier versions (~23 px).

    Attributes
    ----------
    seed : int
        Seed of the whole screen.
    proteins_per_class : int
        Single-localized proteins per class.
    n_multi : int
        Multi-localized proteins; their classes are drawn with the frequencies of the
        real combinations (:data:`bgrobust.synth.biology.MULTI_LOCALIZATIONS`).
    p_within_cell : float
        Share of the multi-localized proteins that are *within-cell mixtures* (every
        cell lights all the protein's compartments, with a per-cell ratio); the others
        are *between-cell* (each cell in one compartment, drawn from the proportions).
    mixture_concentration : float
        Dirichlet concentration of a within-cell mixture's per-cell ratio around the
        protein's proportions (large: every cell alike).
    fields_per_strain : int
        Fields of view per strain.
    field_shape : (int, int)
        Field size in pixels.
    pixel_size : float
        Micrometres per pixel in the sample plane (0.13: 64-px crops of ~35-px cells).
    cells_per_field : (int, int)
        Range of the number of cells per field, drawn log-uniformly per field so that
        dense fields and sparse, cell-free regions both occur.
    cell_size : (float, float)
        Range of the mother cell's semi-major axis (um).
    p_budded, p_divided : float
        Fraction of budded cells; fraction of large-budded cells whose nucleus has
        divided into the bud.
    cell_overlap : float
        Placement tolerance: two cells' bounding discs must be at least this fraction
        of the sum of their radii apart (below 1, neighbours touch and clump).
    plate_format : int
        96 or 384 wells per plate.
    n_plates : int
        Number of plates.
    plate_skew : float
        Dirichlet concentration of each class's distribution over plates: small values
        concentrate a class on few plates (the paper's Supp. Fig. 3 skew).
    gfp_brightness : float
        Mean GFP photons per cell pixel of a protein at 1,000 molecules per cell;
        abundances (molecules per cell) follow the real proteome
        (:func:`bgrobust.synth.biology.sample_abundance`).
    brightness_exponent : float
        Brightness grows as ``abundance ** brightness_exponent``: GFP intensity and
        TAP-tag abundance are correlated but not proportional (calibrated on the four
        real strains of known abundance: AAC3 1,080, AAR2 7,330, AAH1 20,700 and AAP1
        77,000 molecules per cell).
    cell_abundance_sd : float
        Log-normal cell-to-cell variation of expression.
    diffuse_fraction : (float, float)
        Range of the per-protein fraction of a non-cytoplasmic protein that is a
        diffuse cytosolic pool (under the organelle pattern).
    autofluorescence : float
        GFP-channel photons per cell pixel from the cell itself.
    medium : float
        GFP-channel photons per pixel from the medium (everywhere).
    nuclear_marker, cytoplasm_marker : float
        Photons per pixel of the two marker channels.
    marker_vacuole_contrast : float
        How much darker the vacuole is than the cytosol in the cytoplasm marker.
    texture : float
        Amplitude of the fine granular texture of the cytosol (markers and diffuse GFP).
    psf_sigma : float
        Standard deviation (um) of the Gaussian in-focus point-spread function.
    defocus_fraction : float
        Share of each cell's light that comes from out-of-focus planes of the cell.
    defocus_sigma : float
        Blur (um) of that out-of-focus light and of out-of-focus cells.
    p_out_of_focus, p_dead : float
        Share of cells out of the focal plane; share of dead cells (shrunken, bright
        uniform autofluorescence, no marker pattern).
    debris_per_field : float
        Mean number of autofluorescent debris particles per field.
    read_noise : float
        Camera read noise (ADU).
    offset_mean, offset_sd, gain_sd, vignette_max, tilt_max : float
        Plate batch effects: camera offset, gain, illumination fall-off and gradient.
    plate_focus_sd, plate_noise_sd, plate_texture_max : float
        Plate batch effects that survive per-protein standardisation
        (:func:`~bgrobust.synth.optics.sample_surviving_effects`): log-normal sd of a
        per-plate factor on the point-spread function (and the defocus blur), log-normal sd
        of a per-plate factor on the read noise, and the largest amplitude (share of the
        medium) of a per-plate background texture. 0 (default) turns each off and leaves the
        screen exactly as without them; they are drawn from their own random stream, so
        turning them on changes nothing else. Off by default because their size on the
        paper's screen is not known: the default screen keeps only the affine plate effects
        (offset, gain) and the illumination field, and chapter 5 plants strong ones to show
        that its test would see them.
    """

    seed: int = 0
    proteins_per_class: int = 6
    n_multi: int = 15
    p_within_cell: float = 0.6
    mixture_concentration: float = 20.0
    fields_per_strain: int = 2
    field_shape: tuple[int, int] = (512, 512)
    pixel_size: float = 0.13
    cells_per_field: tuple[int, int] = (12, 45)
    cell_size: tuple[float, float] = (2.0, 2.8)
    p_budded: float = 0.5
    p_divided: float = 0.35
    cell_overlap: float = 0.85
    plate_format: int = 96
    n_plates: int = 6
    plate_skew: float = 0.5
    gfp_brightness: float = 40.0
    brightness_exponent: float = 0.6
    cell_abundance_sd: float = 0.3
    diffuse_fraction: tuple[float, float] = (0.1, 0.4)
    autofluorescence: float = 10.0
    medium: float = 20.0
    nuclear_marker: float = 100.0
    cytoplasm_marker: float = 130.0
    marker_vacuole_contrast: float = 0.6
    texture: float = 0.18
    psf_sigma: float = 0.3
    defocus_fraction: float = 0.5
    defocus_sigma: float = 0.8
    p_out_of_focus: float = 0.04
    p_dead: float = 0.02
    debris_per_field: float = 2.0
    read_noise: float = 6.0
    offset_mean: float = 220.0
    offset_sd: float = 30.0
    gain_sd: float = 0.15
    vignette_max: float = 0.35
    tilt_max: float = 0.15
    plate_focus_sd: float = 0.0
    plate_noise_sd: float = 0.0
    plate_texture_max: float = 0.0

    _parameter_constraints: ClassVar[dict] = {
        "seed": Integer(0), "proteins_per_class": Integer(1), "n_multi": Integer(0),
        "p_within_cell": Real(0, 1), "mixture_concentration": Real(0, lo_open=True),
        "fields_per_strain": Integer(1), "field_shape": Pair(Integer(64)),
        "pixel_size": Real(0.02, 2.0), "cells_per_field": Pair(Integer(1), ordered=True),
        "cell_size": Pair(Real(0.1), ordered=True), "p_budded": Real(0, 1), "p_divided": Real(0, 1),
        "cell_overlap": Real(0.3, 1.5), "plate_format": Choice([96, 384]), "n_plates": Integer(1),
        "plate_skew": Real(0, lo_open=True), "gfp_brightness": Real(0), "brightness_exponent": Real(0, 2),
        "cell_abundance_sd": Real(0, 3), "diffuse_fraction": Pair(Real(0, 1), ordered=True),
        "autofluorescence": Real(0), "medium": Real(0), "nuclear_marker": Real(0),
        "cytoplasm_marker": Real(0), "marker_vacuole_contrast": Real(0, 1), "texture": Real(0, 2),
        "psf_sigma": Real(0, 2), "defocus_fraction": Real(0, 1), "defocus_sigma": Real(0, 5),
        "p_out_of_focus": Real(0, 1), "p_dead": Real(0, 1), "debris_per_field": Real(0),
        "read_noise": Real(0), "offset_mean": Real(0, 60000), "offset_sd": Real(0), "gain_sd": Real(0, 3),
        "vignette_max": Real(0, 1, hi_open=True), "tilt_max": Real(0, 1, hi_open=True),
        "plate_focus_sd": Real(0, 2), "plate_noise_sd": Real(0, 2), "plate_texture_max": Real(0, 2),
    }

    def __post_init__(self):
        for name in ("field_shape", "cells_per_field", "cell_size", "diffuse_fraction"):
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(value) if isinstance(value, (list, tuple)) else value)
        check_params(self)
        n_strains = self.proteins_per_class * len(CLASSES) + self.n_multi
        if n_strains > self.n_plates * self.plate_format:
            raise ValueError(
                f"ScreenConfig: {n_strains} strains do not fit on {self.n_plates} plates "
                f"of {self.plate_format} wells; raise n_plates"
            )

    @property
    def scale(self) -> float:
        """Pixels per reference pixel (:data:`~bgrobust.synth.geometry.REFERENCE_PIXEL_SIZE`)."""
        return REFERENCE_PIXEL_SIZE / self.pixel_size

    @classmethod
    def from_dict(cls, params: dict | None) -> "ScreenConfig":
        """Build from a (profile) dictionary; unknown keys are an error naming them."""
        params = dict(params or {})
        known = {f.name for f in dc_fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"screen parameters: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**params)


def _well_names(plate_format: int) -> list[str]:
    rows, cols = (8, 12) if plate_format == 96 else (16, 24)
    return [f"{chr(65 + r)}{c + 1:02d}" for r in range(rows) for c in range(cols)]


def make_strains(config: ScreenConfig) -> tuple[pd.DataFrame, list[PlateEffects]]:
    """The strain table (true proportions, mixing kind, abundance) and each plate's effects.

    ``abundance`` is in molecules per cell; ``diffuse`` is the protein's diffuse
    cytosolic fraction; ``mixing`` is ``"within_cell"`` or ``"between_cells"`` for a
    multi-localized protein and missing for a single-localized one.
    """
    rng = np.random.default_rng([config.seed, 0])
    rows = []
    for cls_ in CLASSES:
        for _ in range(config.proteins_per_class):
            props = np.zeros(len(CLASSES))
            props[CLASSES.index(cls_)] = 1.0
            rows.append(("single", cls_, None, props))
    for _ in range(config.n_multi):
        chosen = [CLASSES.index(c) for c in sample_multi_localization(rng)]
        props = np.zeros(len(CLASSES))
        mixing = MIXINGS[0] if rng.random() < config.p_within_cell else MIXINGS[1]
        # a within-cell mixture's weights are relative concentrations: rarely extreme
        # (a cytoplasm+nucleus protein is about as bright in both compartments)
        props[chosen] = rng.dirichlet(np.full(len(chosen), 6.0 if mixing == MIXINGS[0] else 2.0))
        rows.append(("multi", None, mixing, props))

    # plates: each class prefers a few plates (Supp. Fig. 3); multi-localized are uniform
    prefs = {c: rng.dirichlet(np.full(config.n_plates, config.plate_skew)) for c in CLASSES}
    uniform = np.full(config.n_plates, 1.0 / config.n_plates)
    wells = _well_names(config.plate_format)
    free = {p: list(rng.permutation(wells)) for p in range(config.n_plates)}
    records = []
    for i in rng.permutation(len(rows)):
        kind, loc, mixing, props = rows[i]
        pref = prefs[loc] if loc else uniform
        pref = pref * np.array([len(free[p]) > 0 for p in range(config.n_plates)])
        plate = int(rng.choice(config.n_plates, p=pref / pref.sum()))
        main = loc or CLASSES[int(np.argmax(props))]
        records.append({
            "row": int(i), "plate": plate + 1, "well": free[plate].pop(), "kind": kind,
            "localization": loc, "mixing": mixing,
            "abundance": float(sample_abundance(rng, main)),
            "diffuse": float(rng.uniform(*config.diffuse_fraction)),
            **dict(zip(PROPORTION_COLUMNS, props)),
        })
    strains = pd.DataFrame(records).sort_values("row").drop(columns="row").reset_index(drop=True)
    ids = [f"S{i + 1:04d}" for i in range(len(strains))]
    strains.insert(0, "strain", ids)
    strains.insert(1, "orf", [f"YSYN{i + 1:04d}" for i in range(len(strains))])
    strains.insert(2, "gene", [f"SYN{i + 1}" for i in range(len(strains))])
    effects = [
        sample_plate_effects(rng, offset=(config.offset_mean, config.offset_sd),
                             gain_sd=config.gain_sd, vignette_max=config.vignette_max,
                             tilt_max=config.tilt_max)
        for _ in range(config.n_plates)
    ]
    # the effects that survive standardisation: their own stream, so the draws above are
    # the same whether they are on or off
    surviving = np.random.default_rng([config.seed, 2])
    effects = [sample_surviving_effects(surviving, e, focus_sd=config.plate_focus_sd,
                                        noise_sd=config.plate_noise_sd, texture_max=config.plate_texture_max)
               for e in effects]
    return strains, effects


def _unit_mean(density: np.ndarray, own: np.ndarray) -> np.ndarray | None:
    total = density[own].mean() if own.any() else 0.0
    return density / total if total > 0 else None


def _gfp_pattern(loc: str, frame, own, rng, diffuse: float, texture: np.ndarray) -> np.ndarray:
    """One compartment's GFP density in one cell, mean 1 over the cell (with its cytosolic pool)."""
    pattern = _unit_mean(PATTERNS[loc](frame, rng) * own, own)
    if pattern is None:  # a pattern clipped away by a touching neighbour
        pattern = _unit_mean(PATTERNS["cytoplasm"](frame, rng) * own, own)
    if loc == "cytoplasm":
        return _unit_mean(pattern * texture, own)
    pool = _unit_mean(PATTERNS["cytoplasm"](frame, rng) * own * texture, own)
    return (1 - diffuse) * pattern + diffuse * pool


def _cell_fractions(config: ScreenConfig, strain: dict, props: np.ndarray, rng) -> np.ndarray:
    """One cell's weights over the classes (the per-cell truth, summing to 1).

    Between-cell proteins put the cell in one class drawn from the proportions; a
    within-cell mixture gives every compartment of the protein a per-cell weight
    drawn around the proportions (Dirichlet, ``mixture_concentration``).
    """
    f = np.zeros(len(CLASSES))
    if strain.get("mixing") == "within_cell":
        on = np.flatnonzero(props > 0)
        f[on] = rng.dirichlet(np.maximum(props[on] * config.mixture_concentration, 1e-3))
    else:
        f[rng.choice(len(CLASSES), p=props)] = 1.0
    return f


def _peak_unit(density: np.ndarray) -> np.ndarray:
    peak = density.max()
    return density / peak if peak > 0 else density


def render_field(config: ScreenConfig, strain: dict, effects: PlateEffects,
                 rng: np.random.Generator):
    """Render one field of view of one strain.

    Image formation, per cell: the protein's pattern (one compartment, or a per-cell
    mixture of several) over its diffuse cytosolic pool, scaled by the protein's
    abundance and the cell's expression; the cell's autofluorescence; a nuclear marker
    whose brightness follows DNA content (budded cells have replicated) and a textured
    cytoplasm marker with a dark vacuole.  In-focus light is blurred by the PSF, a
    share of it comes from out-of-focus planes (wider blur), a few cells are out of
    focus or dead, a few debris particles lie between cells; then uneven
    illumination, photon noise, gain, offset and read noise.

    Returns
    -------
    image : ndarray, (3, H, W) uint16
        GFP, nuclear marker, cytoplasm marker.
    labels : ndarray, (H, W) int32
        Truth instance labels (0 = background).
    cells : list of dict
        Per-cell truth: label, centroid y/x, localization (the compartment with the
        largest share of the cell's protein), budded, dividing, dead, in_focus, area,
        and the shares ``f:<class>``.
    """
    shape = tuple(config.field_shape)
    scale = config.scale
    lo, hi = config.cells_per_field
    n_cells = int(round(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
    size_px = tuple(s / config.pixel_size for s in config.cell_size)
    geoms = place_cells(rng, shape, n_cells, size=size_px, p_budded=config.p_budded,
                        p_divided=config.p_divided, overlap=config.cell_overlap,
                        cluster_spread=(25.0 * scale, 70.0 * scale))
    props = np.array([strain[c] for c in PROPORTION_COLUMNS], dtype=float)
    diffuse = float(strain.get("diffuse", np.mean(config.diffuse_fraction)))

    labels = np.zeros(shape, np.int32)
    frames = []
    for geom in geoms:
        frame = rasterise(geom, shape, scale)
        if frame is None:
            continue
        lab = len(frames) + 1
        own = frame.mask & (labels[frame.sl] == 0)
        if not own.any():
            continue
        labels[frame.sl][own] = lab
        frames.append((lab, frame))

    # fine granular texture of the cytosol, one field each for the markers and GFP
    grain = 0.7 * scale
    tex = [np.clip(1 + config.texture * _unit_noise(rng, shape, grain), 0.05, None) for _ in range(2)]
    sharp = np.zeros((3,) + shape, np.float32)
    defocused = np.zeros((3,) + shape, np.float32)
    cells = []
    for lab, frame in frames:
        own = labels[frame.sl] == lab
        g = frame.geom
        fractions = _cell_fractions(config, strain, props, rng)
        expr = (config.gfp_brightness * (strain["abundance"] / 1000.0) ** config.brightness_exponent
                * rng.lognormal(0.0, config.cell_abundance_sd))
        dead = bool(rng.random() < config.p_dead)
        in_focus = bool(rng.random() >= config.p_out_of_focus)
        gfp_tex = tex[1][frame.sl]
        vacuole = soft_disc(frame.vacuole_distance, g.vac[2], 0.6 * scale)
        nucleus = PATTERNS["nucleus"](frame, rng) * own
        if dead:
            gfp = own * config.autofluorescence * rng.uniform(2, 6)
            nuc = own * 0.15 * config.nuclear_marker
            cyto = own * 0.15 * config.cytoplasm_marker
        elif np.count_nonzero(fractions) == 1:
            pattern = _gfp_pattern(CLASSES[int(np.argmax(fractions))], frame, own, rng, diffuse, gfp_tex)
        else:
            # a within-cell mixture: the weights are relative concentrations of the
            # compartments (a cytoplasm+nucleus protein at equal weights is about as
            # bright in the nucleus as in the cytosol), then scaled to mean 1
            parts = {CLASSES[k]: _peak_unit(_gfp_pattern(CLASSES[k], frame, own, rng, diffuse, gfp_tex))
                     for k in np.flatnonzero(fractions)}
            if "cytoplasm" in parts and "nucleus" in parts:
                # compartments share the cell: the cytosolic part stops at the nucleus
                parts["cytoplasm"] = _peak_unit(parts["cytoplasm"] * (1 - nucleus / max(nucleus.max(), 1e-6)))
            mix = sum(fractions[CLASSES.index(c)] * part for c, part in parts.items())
            pattern = _unit_mean(mix, own)
        if not dead:
            gfp = expr * pattern + config.autofluorescence * own * gfp_tex * (1 - 0.5 * vacuole)
            dna = 1.0 + (min(1.0, g.bud_r / g.a) if g.budded else 0.0)   # replication during S
            nuc = config.nuclear_marker * rng.lognormal(0, 0.2) * dna * nucleus / (2 if g.dividing else 1)
            cyto = (config.cytoplasm_marker * rng.lognormal(0, 0.25) * own * tex[0][frame.sl]
                    * (1 - config.marker_vacuole_contrast * vacuole))
        target = sharp if in_focus else defocused
        for c, plane in enumerate((gfp, nuc, cyto)):
            target[c][frame.sl] += plane
        ys, xs = np.nonzero(own)
        cells.append({
            "label": lab, "y": float(ys.mean() + frame.sl[0].start),
            "x": float(xs.mean() + frame.sl[1].start),
            "localization": CLASSES[int(np.argmax(fractions))],
            "budded": bool(g.budded), "dividing": bool(g.dividing), "dead": dead,
            "in_focus": in_focus, "area": int(own.sum()),
            **dict(zip(FRACTION_COLUMNS, fractions.tolist())),
        })
    _add_debris(rng, sharp, config, scale)
    psf = config.psf_sigma / config.pixel_size * effects.focus
    wide = config.defocus_sigma / config.pixel_size * effects.focus
    h = config.defocus_fraction
    photons = blur(sharp, psf) * (1 - h) + blur(sharp * h + defocused, wide)
    if effects.texture > 0:
        # the plate's background texture of the medium (all three channels: the medium and
        # the plate bottom scatter and fluoresce in each)
        pattern = np.clip(1 + effects.texture * _unit_noise(rng, shape, effects.texture_grain * scale), 0.0, None)
        photons[0] += config.medium * pattern
        photons[1:] += 0.25 * config.medium * (pattern - 1).clip(0, None)[None]
    else:
        photons[0] += config.medium
    photons *= illumination(shape, effects)[None]
    image = np.stack([camera(photons[c], rng, effects, read_noise=config.read_noise) for c in range(3)])
    return image, labels, cells


def _unit_noise(rng, shape, sigma: float) -> np.ndarray:
    """Gaussian noise smoothed with ``sigma`` px and rescaled to unit standard deviation."""
    from scipy import ndimage as ndi

    noise = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    sd = noise.std()
    return noise / sd if sd > 0 else noise


def _add_debris(rng, planes: np.ndarray, config: ScreenConfig, scale: float) -> None:
    """Small autofluorescent particles (dust, dead-cell fragments) between the cells."""
    n = rng.poisson(config.debris_per_field)
    h, w = planes.shape[1:]
    yy, xx = np.ogrid[:h, :w]
    for _ in range(n):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(1.5, 4.0) * scale
        blob = np.exp(-0.5 * ((yy - cy) ** 2 + (xx - cx) ** 2) / r ** 2).astype(np.float32)
        planes[0] += config.autofluorescence * rng.uniform(1, 4) * blob
        planes[2] += config.cytoplasm_marker * rng.uniform(0, 0.3) * blob


def _field_table(strains: pd.DataFrame, config: ScreenConfig) -> pd.DataFrame:
    rows = []
    for _, s in strains.iterrows():
        for site in range(config.fields_per_strain):
            rows.append({"strain": s["strain"], "plate": s["plate"], "well": s["well"], "site": site + 1})
    table = pd.DataFrame(rows)
    table.insert(0, "field", np.arange(len(table)))
    return table


def _render(config: ScreenConfig, n_jobs: int, progress: bool):
    """(strains, fields, effects, fields rendered one at a time, the cells table once they are all out)."""
    strains, effects = make_strains(config)
    fields = _field_table(strains, config)
    by_id = strains.set_index("strain")

    def one(i):
        f = fields.iloc[i]
        s = by_id.loc[f["strain"]].to_dict()
        rng = np.random.default_rng([config.seed, 1, int(i)])
        return render_field(config, s, effects[int(f["plate"]) - 1], rng)

    order = range(len(fields))
    if progress:
        order = tqdm(order, desc="rendering fields", unit="field")
    cell_rows: list = []

    def rendered():
        # fields arrive one at a time, in order (benchmarks/bench_memory.py)
        for i, (image, label, field_cells) in enumerate(
                Parallel(n_jobs=n_jobs, return_as="generator")(delayed(one)(i) for i in order)):
            cell_rows.extend({"field": i, **c} for c in field_cells)
            yield image, label

    def cells():
        return pd.DataFrame(cell_rows).merge(fields[["field", "strain"]], on="field")

    if len(fields) == 0:
        raise ValueError("generate_screen: the screen has no fields (check the ScreenConfig's strains and "
                         "fields_per_strain)")
    meta = {"source": "synthetic", "config": asdict(config), "plate_effects": [asdict(e) for e in effects]}
    return strains, fields, meta, rendered(), cells


def _write_synthetic(config: ScreenConfig, path, n_jobs: int, progress: bool) -> Path:
    strains, fields, meta, rendered, cells = _render(config, n_jobs, progress)
    return write_screen(path, rendered, len(fields), strains=strains, fields=fields, cells=cells, meta=meta)


def generate_screen(config: ScreenConfig | None = None, *, n_jobs: int = 1, progress: bool = True,
                    out=None) -> Screen:
    """Render the whole synthetic screen, in memory or field by field into a folder.

    Parameters
    ----------
    config : ScreenConfig, optional
        Defaults to ``ScreenConfig()``.
    n_jobs : int
        Parallel workers (joblib); the result does not depend on it.
    progress : bool
        Show a progress bar over fields.
    out : path-like, optional
        Write the screen there as it is rendered (:func:`bgrobust.screen.write_screen`: one
        field held at a time) and return it read back lazily (:meth:`Screen.load`); by
        default the screen is held in memory.

    Examples
    --------
    >>> cfg = ScreenConfig(proteins_per_class=1, n_multi=1, fields_per_strain=1,
    ...                    field_shape=(96, 96), cells_per_field=(3, 5))
    >>> screen = generate_screen(cfg, progress=False)
    >>> screen.image(0).shape, screen.image(0).dtype.name
    ((3, 96, 96), 'uint16')
    """
    config = config or ScreenConfig()
    if out is not None:
        return Screen.load(_write_synthetic(config, out, n_jobs, progress))
    strains, fields, meta, rendered, cells = _render(config, n_jobs, progress)
    # copied into preallocated arrays as they arrive: the screen is held once, not as a list
    # of fields plus its stacked copy
    images = labels = None
    for i, (image, label) in enumerate(rendered):
        if images is None:
            images = np.empty((len(fields), *image.shape), image.dtype)
            labels = np.empty((len(fields), *label.shape), label.dtype)
        images[i], labels[i] = image, label
    return Screen(strains=strains, fields=fields, images=images, cells=cells(), labels=labels, meta=meta)


def screen_key(config: ScreenConfig) -> str:
    """Cache key of a synthetic screen: its parameters and the generator's code."""
    return content_key(asdict(config), code_key("bgrobust.synth", "bgrobust.screen"))


def load_or_generate(config: ScreenConfig | None = None, cache_dir=None, *, n_jobs: int = 1,
                     progress: bool = True) -> Screen:
    """Return the screen for ``config``, rendering and caching it on first use.

    The screen is stored in ``cache_dir/screen-<key>`` (zarr images, one chunk per field;
    parquet tables) where the key covers every parameter and the generator's source code;
    fields are written as they are rendered, so the screen is never held whole.
    """
    from ..paths import run_dir

    config = config or ScreenConfig()
    cache_dir = Path(cache_dir) if cache_dir is not None else run_dir("shared")
    path = cache_dir / f"screen-{screen_key(config)}"
    return load_or_create(path, lambda p: _write_synthetic(config, p, n_jobs, progress), Screen.load,
                          what="synthetic screen")
