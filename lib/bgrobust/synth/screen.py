"""The synthetic ORF-GFP screen: strains on plates, fields of view, and the truth.

Every strain is one GFP-tagged protein on one plate well, imaged in a few fields of
view with three channels (GFP, a nuclear marker, a cytoplasm marker).  All cells of
a field express the same protein.  A single-localized protein puts every cell in its
class; a multi-localized protein draws each cell's class from the protein's true
proportions (cell-to-cell heterogeneity, the paper's section 4.5).  The truth
(every cell's class and mask, every protein's proportions) is stored with the images.

Everything is deterministic given ``ScreenConfig.seed``: each field has its own
random stream, so the screen is identical whatever the number of parallel workers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields as dc_fields
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from ..cache import code_key, content_key, load_or_create
from ..classes import CLASSES
from ..constraints import check_screen_config
from ..screen import PROPORTION_COLUMNS, Screen
from .geometry import place_cells, rasterise
from .optics import PlateEffects, blur, camera, illumination, sample_plate_effects
from .patterns import PATTERNS, soft_disc

#: Relative frequency of each class among the compartments of multi-localized proteins
#: (cytoplasm and nucleus dominate, as among Huh et al.'s multi-localized proteins).
MULTI_CLASS_WEIGHTS: dict[str, float] = {c: 1.0 for c in CLASSES} | {
    "cytoplasm": 6.0, "nucleus": 5.0, "mitochondrion": 2.0, "ER": 1.5,
    "vacuole": 1.5, "cell periphery": 1.5,
}


@dataclass(frozen=True)
class ScreenConfig:
    """Every parameter of the synthetic screen (all have defaults; see ``params/*.yml``).

    Attributes
    ----------
    seed : int
        Seed of the whole screen.
    proteins_per_class : int
        Single-localized proteins per class.
    n_multi : int
        Multi-localized proteins (2 or 3 classes each, proportions ~ Dirichlet).
    fields_per_strain : int
        Fields of view per strain.
    field_shape : (int, int)
        Field size in pixels.
    cells_per_field : (int, int)
        Range of the number of cells per field, drawn log-uniformly per field so that
        dense fields and sparse, cell-free regions both occur.
    cell_size : (float, float)
        Range of the mother cell's semi-major axis (px).
    p_budded : float
        Fraction of budded cells.
    cell_overlap : float
        Placement tolerance: two cells' bounding discs must be at least this fraction
        of the sum of their radii apart (below 1, neighbours touch).
    plate_format : int
        96 or 384 wells per plate.
    n_plates : int
        Number of plates.
    plate_skew : float
        Dirichlet concentration of each class's distribution over plates: small values
        concentrate a class on few plates (the paper's Supp. Fig. 3 skew).
    abundance_median, abundance_sigma : float
        Log-normal protein abundance (mean photons per cell pixel before gain).
    cell_abundance_sd : float
        Log-normal cell-to-cell variation of expression.
    diffuse_fraction : float
        Fraction of every non-cytoplasmic protein that is a diffuse cytosolic pool.
    autofluorescence : float
        GFP-channel photons per cell pixel from the cell itself.
    nuclear_marker, cytoplasm_marker : float
        Photons per pixel of the two marker channels.
    psf_sigma : float
        Standard deviation (px) of the Gaussian point-spread function.
    read_noise : float
        Camera read noise (ADU).
    offset_mean, offset_sd, gain_sd, vignette_max, tilt_max : float
        Plate batch effects: camera offset, gain, illumination fall-off and gradient.
    """

    seed: int = 0
    proteins_per_class: int = 4
    n_multi: int = 15
    fields_per_strain: int = 3
    field_shape: tuple[int, int] = (384, 384)
    cells_per_field: tuple[int, int] = (12, 70)
    cell_size: tuple[float, float] = (10.0, 14.0)
    p_budded: float = 0.5
    cell_overlap: float = 0.85
    plate_format: int = 96
    n_plates: int = 6
    plate_skew: float = 0.5
    abundance_median: float = 250.0
    abundance_sigma: float = 1.0
    cell_abundance_sd: float = 0.3
    diffuse_fraction: float = 0.08
    autofluorescence: float = 15.0
    nuclear_marker: float = 400.0
    cytoplasm_marker: float = 300.0
    psf_sigma: float = 1.2
    read_noise: float = 6.0
    offset_mean: float = 220.0
    offset_sd: float = 30.0
    gain_sd: float = 0.15
    vignette_max: float = 0.35
    tilt_max: float = 0.15

    def __post_init__(self):
        for name in ("field_shape", "cells_per_field", "cell_size"):
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(value) if isinstance(value, (list, tuple)) else value)
        check_screen_config(self)
        if self.plate_format not in (96, 384):
            raise ValueError(f"ScreenConfig.plate_format: must be 96 or 384, got {self.plate_format}")
        if self.proteins_per_class < 1:
            raise ValueError("ScreenConfig.proteins_per_class: need at least 1 protein per class")
        if min(self.field_shape) < 64:
            raise ValueError(f"ScreenConfig.field_shape: fields must be at least 64 px, got {self.field_shape}")
        n_strains = self.proteins_per_class * len(CLASSES) + self.n_multi
        if n_strains > self.n_plates * self.plate_format:
            raise ValueError(
                f"ScreenConfig: {n_strains} strains do not fit on {self.n_plates} plates "
                f"of {self.plate_format} wells; raise n_plates"
            )

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
    """The strain table (with true proportions and abundance) and each plate's effects."""
    rng = np.random.default_rng([config.seed, 0])
    rows = []
    for cls_ in CLASSES:
        for _ in range(config.proteins_per_class):
            props = np.zeros(len(CLASSES))
            props[CLASSES.index(cls_)] = 1.0
            rows.append(("single", cls_, props))
    weights = np.array([MULTI_CLASS_WEIGHTS[c] for c in CLASSES])
    for _ in range(config.n_multi):
        k = rng.choice([2, 3], p=[0.7, 0.3])
        chosen = rng.choice(len(CLASSES), size=k, replace=False, p=weights / weights.sum())
        props = np.zeros(len(CLASSES))
        props[chosen] = rng.dirichlet(np.full(k, 2.0))
        rows.append(("multi", None, props))

    # plates: each class prefers a few plates (Supp. Fig. 3); multi-localized are uniform
    prefs = {c: rng.dirichlet(np.full(config.n_plates, config.plate_skew)) for c in CLASSES}
    uniform = np.full(config.n_plates, 1.0 / config.n_plates)
    wells = _well_names(config.plate_format)
    free = {p: list(rng.permutation(wells)) for p in range(config.n_plates)}
    records = []
    for i in rng.permutation(len(rows)):
        kind, loc, props = rows[i]
        pref = prefs[loc] if loc else uniform
        pref = pref * np.array([len(free[p]) > 0 for p in range(config.n_plates)])
        plate = int(rng.choice(config.n_plates, p=pref / pref.sum()))
        records.append({
            "row": int(i), "plate": plate + 1, "well": free[plate].pop(), "kind": kind,
            "localization": loc,
            "abundance": float(config.abundance_median * rng.lognormal(0, config.abundance_sigma)),
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
    return strains, effects


def render_field(config: ScreenConfig, strain: dict, effects: PlateEffects,
                 rng: np.random.Generator):
    """Render one field of view of one strain.

    Returns
    -------
    image : ndarray, (3, H, W) uint16
        GFP, nuclear marker, cytoplasm marker.
    labels : ndarray, (H, W) int32
        Truth instance labels (0 = background).
    cells : list of dict
        Per-cell truth: label, centroid y/x, localization, budded, area.
    """
    shape = config.field_shape
    lo, hi = config.cells_per_field
    n_cells = int(round(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
    geoms = place_cells(rng, shape, n_cells, size=config.cell_size, p_budded=config.p_budded,
                         overlap=config.cell_overlap)
    props = np.array([strain[c] for c in PROPORTION_COLUMNS], dtype=float)

    labels = np.zeros(shape, np.int32)
    frames = []
    for geom in geoms:
        frame = rasterise(geom, shape)
        if frame is None:
            continue
        lab = len(frames) + 1
        own = frame.mask & (labels[frame.sl] == 0)
        if not own.any():
            continue
        labels[frame.sl][own] = lab
        frames.append((lab, frame))

    density = np.zeros((3,) + tuple(shape), np.float32)
    cells = []
    for lab, frame in frames:
        own = labels[frame.sl] == lab
        loc = CLASSES[rng.choice(len(CLASSES), p=props)]
        expr = strain["abundance"] * rng.lognormal(0.0, config.cell_abundance_sd)
        pattern = PATTERNS[loc](frame, rng) * own
        if pattern.sum() <= 0:  # a pattern clipped away by a touching neighbour
            pattern = PATTERNS["cytoplasm"](frame, rng) * own
        pattern = pattern / pattern[own].mean()
        if loc != "cytoplasm" and config.diffuse_fraction > 0:
            pool = PATTERNS["cytoplasm"](frame, rng) * own
            pattern = (1 - config.diffuse_fraction) * pattern + config.diffuse_fraction * pool / pool[own].mean()
        g = frame.geom
        nucleus = soft_disc(frame.nucleus_distance, g.nuc[2]) * own
        vacuole = soft_disc(frame.vacuole_distance, g.vac[2])
        density[0][frame.sl] += expr * pattern + config.autofluorescence * own
        density[1][frame.sl] += config.nuclear_marker * rng.lognormal(0, 0.2) * nucleus
        density[2][frame.sl] += config.cytoplasm_marker * rng.lognormal(0, 0.2) * own * (1 - 0.6 * vacuole)
        ys, xs = np.nonzero(own)
        cells.append({
            "label": lab, "y": float(ys.mean() + frame.sl[0].start),
            "x": float(xs.mean() + frame.sl[1].start), "localization": loc,
            "budded": bool(g.budded), "area": int(own.sum()),
        })
    photons = blur(density, config.psf_sigma) * illumination(shape, effects)[None]
    image = np.stack([camera(photons[c], rng, effects, read_noise=config.read_noise) for c in range(3)])
    return image, labels, cells


def _field_table(strains: pd.DataFrame, config: ScreenConfig) -> pd.DataFrame:
    rows = []
    for _, s in strains.iterrows():
        for site in range(config.fields_per_strain):
            rows.append({"strain": s["strain"], "plate": s["plate"], "well": s["well"], "site": site + 1})
    table = pd.DataFrame(rows)
    table.insert(0, "field", np.arange(len(table)))
    return table


def generate_screen(config: ScreenConfig | None = None, *, n_jobs: int = 1,
                    progress: bool = True) -> Screen:
    """Render the whole synthetic screen in memory.

    Parameters
    ----------
    config : ScreenConfig, optional
        Defaults to ``ScreenConfig()``.
    n_jobs : int
        Parallel workers (joblib); the result does not depend on it.
    progress : bool
        Show a progress bar over fields.

    Examples
    --------
    >>> cfg = ScreenConfig(proteins_per_class=1, n_multi=1, fields_per_strain=1,
    ...                    field_shape=(96, 96), cells_per_field=(3, 5))
    >>> screen = generate_screen(cfg, progress=False)
    >>> screen.image(0).shape, screen.image(0).dtype.name
    ((3, 96, 96), 'uint16')
    """
    config = config or ScreenConfig()
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
    results = Parallel(n_jobs=n_jobs)(delayed(one)(i) for i in order)
    images = np.stack([r[0] for r in results])
    labels = np.stack([r[1] for r in results])
    cells = pd.DataFrame([{"field": i, **c} for i, r in enumerate(results) for c in r[2]])
    cells = cells.merge(fields[["field", "strain"]], on="field")
    meta = {"source": "synthetic", "config": asdict(config),
            "plate_effects": [asdict(e) for e in effects]}
    return Screen(strains=strains, fields=fields, images=images, cells=cells, labels=labels, meta=meta)


def screen_key(config: ScreenConfig) -> str:
    """Cache key of a synthetic screen: its parameters and the generator's code."""
    return content_key(asdict(config), code_key("bgrobust.synth", "bgrobust.screen"))


def load_or_generate(config: ScreenConfig | None = None, cache_dir=None, *, n_jobs: int = 1,
                     progress: bool = True) -> Screen:
    """Return the screen for ``config``, rendering and caching it on first use.

    The screen is stored in ``cache_dir/screen-<key>`` (zarr images, parquet tables)
    where the key covers every parameter and the generator's source code.
    """
    from ..paths import run_dir

    config = config or ScreenConfig()
    cache_dir = Path(cache_dir) if cache_dir is not None else run_dir("shared")
    path = cache_dir / f"screen-{screen_key(config)}"
    return load_or_create(path, lambda p: generate_screen(config, n_jobs=n_jobs, progress=progress).save(p),
                          Screen.load, what="synthetic screen")
