"""The 15 localization patterns of a GFP-tagged protein inside one cell.

Each pattern is a function ``f(frame, rng) -> density`` on the cell's bounding box
(:class:`~bgrobust.synth.geometry.CellFrame`): non-negative, zero outside the cell,
in arbitrary units (the renderer rescales it to the protein's abundance).  The
shapes follow the yeast cell biology behind the Huh et al. (2003) classes, and the
pairs that are hard for people and models stay hard here: ER and nuclear periphery
share the nuclear ring, the three punctate classes differ only in number, brightness
and position of their puncta, vacuole and vacuolar membrane are lumen vs rim of the
same organelle after blur, bud neck in an unbudded cell is a single dot at the rim.
Lengths are written for a 0.2 um pixel and scaled by ``frame.scale`` (pixels per
0.2 um), so the same biology renders at any pixel size.  Organelles have a physical
thickness: thin structures (tubules, puncta, membranes) are drawn with a width of
about 0.25-0.4 um before the optics blur them further.

Examples
--------
>>> import numpy as np
>>> from bgrobust.synth.geometry import sample_cell, rasterise
>>> rng = np.random.default_rng(0)
>>> frame = rasterise(sample_cell(rng, 32, 32), (64, 64))
>>> density = PATTERNS["nucleus"](frame, rng)
>>> bool((density[~frame.mask] == 0).all())
True
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..vocabulary import CLASSES
from .geometry import CellFrame


def soft_disc(dist: np.ndarray, r: float, edge: float = 0.6) -> np.ndarray:
    """A filled disc of radius ``r`` with a logistic edge of width ``edge`` px."""
    return 1.0 / (1.0 + np.exp(np.clip((dist - r) / edge, -30, 30)))


def ring(dist: np.ndarray, r: float, width: float = 0.8) -> np.ndarray:
    """A Gaussian rim of radius ``r`` and standard deviation ``width`` px."""
    return np.exp(-0.5 * ((dist - r) / width) ** 2)


def _to_box(frame: CellFrame, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = frame.geom
    c, s = np.cos(g.theta), np.sin(g.theta)
    row = g.cy + u * s + v * c - frame.sl[0].start
    col = g.cx + u * c - v * s - frame.sl[1].start
    return row, col


def splat(shape: tuple[int, int], rows, cols, weights) -> np.ndarray:
    """Add point masses at sub-pixel positions with bilinear weights."""
    out = np.zeros(shape, np.float32)
    rows, cols, weights = (np.atleast_1d(np.asarray(x, np.float64)) for x in (rows, cols, weights))
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    for dr, dc, wgt in ((0, 0, (1 - fr) * (1 - fc)), (1, 0, fr * (1 - fc)),
                        (0, 1, (1 - fr) * fc), (1, 1, fr * fc)):
        rr, cc = r0 + dr, c0 + dc
        ok = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
        np.add.at(out, (rr[ok], cc[ok]), (weights * wgt)[ok])
    return out


def _sample_pixels(rng, region: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.flatnonzero(region)
    if idx.size == 0:
        return np.empty(0), np.empty(0)
    pick = rng.choice(idx, size=n, replace=idx.size < n)
    rows, cols = np.unravel_index(pick, region.shape)
    return rows + rng.uniform(-0.5, 0.5, n), cols + rng.uniform(-0.5, 0.5, n)


def thicken(density: np.ndarray, frame: CellFrame, width: float) -> np.ndarray:
    """Give point or line structures a physical width (Gaussian sd ``width`` reference px)."""
    from scipy import ndimage as ndi

    sigma = width * frame.scale
    return ndi.gaussian_filter(density, sigma, mode="constant") if sigma > 0.3 else density


def _puncta(frame: CellFrame, rng, region: np.ndarray, n: int, brightness_sd: float = 0.3,
            width: float = 0.8):
    rows, cols = _sample_pixels(rng, region & frame.mask, n)
    w = rng.lognormal(0.0, brightness_sd, rows.size)
    return thicken(splat(frame.mask.shape, rows, cols, w), frame, width) * frame.mask


def _nucleus(frame):
    """The nucleoplasm, both daughter nuclei in a dividing cell."""
    s = frame.scale
    disc = soft_disc(frame.nucleus_distance, frame.geom.nuc[2], 0.6 * s)
    if frame.geom.nuc2 is not None:
        disc = np.maximum(disc, soft_disc(frame.nucleus2_distance, frame.geom.nuc2[2], 0.6 * s))
    return disc


def _vacuole(frame):
    return soft_disc(frame.vacuole_distance, frame.geom.vac[2], 0.6 * frame.scale)


def _cytosol_region(frame):
    return frame.mask & (_nucleus(frame) < 0.5) & (_vacuole(frame) < 0.5)


# --------------------------------------------------------------------------- the 15 classes
def cytoplasm(frame, rng):
    """Diffuse throughout the cell, excluded from the vacuole, partly from the nucleus."""
    return frame.mask * (1 - 0.9 * _vacuole(frame)) * (1 - 0.35 * _nucleus(frame))


def nucleus(frame, rng):
    """The nucleoplasm: a filled disc."""
    return frame.mask * _nucleus(frame)


def nucleolus(frame, rng):
    """A crescent occupying one side of the nucleus, against the nuclear envelope."""
    un, vn, rn = frame.geom.nuc
    phi = rng.uniform(0, 2 * np.pi)
    side = ((frame.u - un) * np.cos(phi) + (frame.v - vn) * np.sin(phi)) / rn
    cap = 1.0 / (1.0 + np.exp(-(side - 0.25) / 0.12))
    return frame.mask * soft_disc(frame.nucleus_distance, rn, 0.6 * frame.scale) * cap


def _beaded(rng, angle: np.ndarray, n_beads: int, contrast: float) -> np.ndarray:
    phases = rng.uniform(0, 2 * np.pi, 2)
    return 1 + contrast * 0.5 * (np.sin(n_beads * angle + phases[0])
                                 + np.sin((n_beads + 3) * angle + phases[1]))


def nuclear_periphery(frame, rng):
    """The nuclear envelope: a thin, slightly beaded rim around the nucleus."""
    un, vn, rn = frame.geom.nuc
    angle = np.arctan2(frame.v - vn, frame.u - un)
    return frame.mask * ring(frame.nucleus_distance, rn, 0.8 * frame.scale) * _beaded(rng, angle, 7, 0.3)


def er(frame, rng):
    """Nuclear envelope plus patchy cortical ER under the plasma membrane."""
    un, vn, rn = frame.geom.nuc
    s = frame.scale
    nuclear = ring(frame.nucleus_distance, rn, 0.8 * s)
    angle = np.arctan2(frame.v, frame.u)
    patches = np.clip(_beaded(rng, angle, 4, 1.4), 0, None)
    cortical = ring(frame.depth, 1.2 * s, 0.8 * s) * patches
    return frame.mask * (nuclear + 0.8 * cortical)


def cell_periphery(frame, rng):
    """The plasma membrane: a continuous rim of mother and bud."""
    return frame.mask * ring(frame.depth, 0.8 * frame.scale, 0.8 * frame.scale)


def bud_neck(frame, rng):
    """A band across the mother-bud junction; a dot at the incipient bud site if unbudded."""
    g = frame.geom
    if g.budded:
        # midway between the mother's tip (u = a) and the bud's inner edge
        u_neck = 0.5 * (g.a + g.bud_offset - g.bud_r)
        band = np.exp(-0.5 * ((frame.u - u_neck) / (0.9 * frame.scale)) ** 2)
        return frame.mask * band * (frame.depth < 3.5 * frame.scale)
    rows, cols = _to_box(frame, np.array([g.a - 1.5 * frame.scale]), np.array([0.0]))
    return thicken(splat(frame.mask.shape, rows, cols, [1.0]), frame, 0.9) * frame.mask


def actin(frame, rng):
    """Cortical patches, concentrated in the bud when there is one."""
    cortex = (frame.depth >= 0.5 * frame.scale) & (frame.depth <= 2.5 * frame.scale)
    if frame.geom.budded:
        n_bud, n_mother = rng.integers(5, 10), rng.integers(1, 4)
        return (_puncta(frame, rng, cortex & frame.bud, n_bud)
                + _puncta(frame, rng, cortex & ~frame.bud, n_mother))
    return _puncta(frame, rng, cortex, rng.integers(5, 10))


def spindle_pole(frame, rng):
    """One or two dots on the nuclear envelope (two, facing the bud, in budded cells)."""
    un, vn, rn = frame.geom.nuc
    if frame.geom.budded:
        phis = np.array([0.0, np.pi]) + rng.normal(0, 0.3, 2)
    else:
        phis = rng.uniform(0, 2 * np.pi, 1)
    rows, cols = _to_box(frame, un + rn * np.cos(phis), vn + rn * np.sin(phis))
    return thicken(splat(frame.mask.shape, rows, cols, np.ones(phis.size)), frame, 0.7) * frame.mask


def mitochondrion(frame, rng):
    """A tubular network: persistent random walks along the cortex, avoiding the vacuole.

    Tubules are about 0.3-0.4 um thick and branch into a reticulum; how fragmented
    and how long they are varies from cell to cell.
    """
    s = frame.scale
    # yeast mitochondria lie mostly in the cortex, under the plasma membrane
    allowed = frame.mask & (_vacuole(frame) < 0.5) & (frame.depth <= rng.uniform(3.5, 6.0) * s)
    start_region = allowed & (frame.depth <= 3.0 * s)
    n_tubes = rng.integers(3, 7) + (rng.integers(1, 3) if frame.geom.budded else 0)
    starts_r, starts_c = _sample_pixels(rng, start_region, n_tubes)
    rows, cols = [], []
    h, w = allowed.shape
    for r, c in zip(starts_r, starts_c):
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.uniform(20, 60) * s)):
            for _ in range(6):
                nr, nc = r + 0.5 * np.sin(heading), c + 0.5 * np.cos(heading)
                ir, ic = int(round(nr)), int(round(nc))
                if 0 <= ir < h and 0 <= ic < w and allowed[ir, ic]:
                    break
                heading += rng.uniform(np.pi / 2, 3 * np.pi / 2)
            else:
                break
            r, c = nr, nc
            rows.append(r)
            cols.append(c)
            heading += rng.normal(0, 0.25)
    if not rows:
        return cytoplasm(frame, rng)
    tubes = thicken(splat(allowed.shape, rows, cols, np.ones(len(rows))), frame, 0.5)
    return tubes * frame.mask


def vacuole(frame, rng):
    """The vacuolar lumen: a large filled disc."""
    return frame.mask * _vacuole(frame)


def vacuolar_membrane(frame, rng):
    """The tonoplast: a rim around the vacuole."""
    return frame.mask * ring(frame.vacuole_distance, frame.geom.vac[2], 0.8 * frame.scale)


def golgi(frame, rng):
    """Many (8-15) moderately bright puncta scattered through the cytosol."""
    return _puncta(frame, rng, _cytosol_region(frame), rng.integers(8, 16), 0.4)


def endosome(frame, rng):
    """A few (2-5) puncta next to the vacuole."""
    rv = frame.geom.vac[2]
    s = frame.scale
    near = (frame.vacuole_distance > rv + 0.5 * s) & (frame.vacuole_distance < rv + 3.0 * s)
    return _puncta(frame, rng, near & _cytosol_region(frame), rng.integers(2, 6), 0.3)


def peroxisome(frame, rng):
    """A few (2-6) bright puncta anywhere in the cytosol."""
    return _puncta(frame, rng, _cytosol_region(frame), rng.integers(2, 7), 0.2)


PATTERNS: dict[str, Callable[[CellFrame, np.random.Generator], np.ndarray]] = {
    "actin": actin,
    "bud neck": bud_neck,
    "cell periphery": cell_periphery,
    "cytoplasm": cytoplasm,
    "endosome": endosome,
    "ER": er,
    "Golgi": golgi,
    "mitochondrion": mitochondrion,
    "nucleus": nucleus,
    "nuclear periphery": nuclear_periphery,
    "nucleolus": nucleolus,
    "spindle pole": spindle_pole,
    "peroxisome": peroxisome,
    "vacuolar membrane": vacuolar_membrane,
    "vacuole": vacuole,
}
assert tuple(PATTERNS) == CLASSES
