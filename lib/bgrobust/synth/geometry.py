"""Budding-yeast cell geometry and its placement in a field of view.

A cell is a mother ellipse, optionally with a round bud attached at the end of its
major axis (the bud neck), a round nucleus on the bud side of the mother and a round
vacuole on the other side.  The cell cycle shows in the nucleus: unbudded (G1) cells
have one round nucleus; in large-budded cells the nucleus may have divided, one
daughter nucleus sitting in the bud (anaphase/telophase).  The functions here work in
pixels; :mod:`bgrobust.synth.screen` converts the biology (micrometres) with the
screen's pixel size.

Cells are placed in loose colonies (Gaussian clusters of varying spread) with a
density that varies from field to field, so that dense, touching groups and
cell-free regions both occur.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: The pixel size (um) at which the patterns' lengths are written; a screen of another
#: pixel size scales them by ``REFERENCE_PIXEL_SIZE / pixel_size``.
REFERENCE_PIXEL_SIZE = 0.2


@dataclass(frozen=True)
class CellGeometry:
    """One cell in field coordinates (pixels, float).

    ``cy, cx``: mother centre; ``a, b``: mother semi-axes (``a >= b``); ``theta``:
    angle of the major axis (radians, from the x axis); ``bud_r``: bud radius (0 =
    unbudded), the bud centre lies on the +major axis; ``nuc``/``vac``: (u, v, r) of
    nucleus and vacuole in the mother's frame (u along the major axis); ``nuc2``: the
    daughter nucleus in the bud of a dividing cell (``None`` otherwise).
    """

    cy: float
    cx: float
    a: float
    b: float
    theta: float
    bud_r: float
    nuc: tuple[float, float, float]
    vac: tuple[float, float, float]
    nuc2: tuple[float, float, float] | None = None

    @property
    def budded(self) -> bool:
        return self.bud_r > 0

    @property
    def dividing(self) -> bool:
        return self.nuc2 is not None

    @property
    def bud_offset(self) -> float:
        """Distance from the mother centre to the bud centre along the major axis."""
        return self.a + 0.55 * self.bud_r

    @property
    def extent(self) -> float:
        """Radius of a disc around the mother centre that contains the whole cell."""
        return max(self.a, self.bud_offset + self.bud_r if self.budded else 0.0) + 1.0

    def bud_centre(self) -> tuple[float, float]:
        d = self.bud_offset
        return self.cy + d * np.sin(self.theta), self.cx + d * np.cos(self.theta)


def sample_cell(rng: np.random.Generator, cy: float, cx: float, *,
                size: tuple[float, float] = (10.0, 14.0), p_budded: float = 0.5,
                p_divided: float = 0.35) -> CellGeometry:
    """Draw the shape of one cell centred at ``(cy, cx)``.

    Parameters
    ----------
    rng : numpy.random.Generator
    cy, cx : float
        Mother centre in field pixels.
    size : (float, float)
        Range of the mother's semi-major axis in pixels.
    p_budded : float
        Probability that the cell carries a bud.
    p_divided : float
        Probability that a large-budded cell (bud radius above 0.55 of the mother's
        semi-major axis) has already divided its nucleus into the bud.
    """
    a = rng.uniform(*size)
    b = a * rng.uniform(0.78, 0.95)
    theta = rng.uniform(0, 2 * np.pi)
    bud_r = a * rng.uniform(0.35, 0.7) if rng.random() < p_budded else 0.0
    rn = b * rng.uniform(0.32, 0.40)
    nuc = (a * rng.uniform(0.15, 0.35), b * rng.uniform(-0.2, 0.2), rn)
    rv = b * rng.uniform(0.38, 0.52)
    vac = (-a * rng.uniform(0.25, 0.4), b * rng.uniform(-0.2, 0.2), rv)
    nuc2 = None
    if bud_r > 0.55 * a and rng.random() < p_divided:
        # anaphase/telophase: the nucleus has moved to the neck and divided
        r2 = min(rn * rng.uniform(0.75, 0.9), 0.6 * bud_r)
        nuc = (a - 1.1 * rn, nuc[1] * 0.3, rn * 0.85)
        nuc2 = (a + 0.55 * bud_r + rng.uniform(-0.2, 0.1) * bud_r, 0.0, r2)
    return CellGeometry(cy, cx, a, b, theta, bud_r, nuc, vac, nuc2)


def place_cells(rng: np.random.Generator, shape: tuple[int, int], n_cells: int, *,
                size: tuple[float, float] = (10.0, 14.0), p_budded: float = 0.5,
                p_divided: float = 0.35, cluster_spread: tuple[float, float] = (25.0, 70.0),
                cells_per_cluster: float = 8.0, overlap: float = 0.9,
                max_tries: int = 40) -> list[CellGeometry]:
    """Place up to ``n_cells`` non-overlapping cells in loose colonies.

    Two cells may touch (their bounding discs may overlap by ``1 - overlap`` of the
    sum of radii) but never cover each other.  Fewer cells than asked are returned when
    a colony is full.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> cells = place_cells(rng, (256, 256), 20)
    >>> 0 < len(cells) <= 20
    True
    """
    h, w = shape
    n_clusters = max(1, int(round(n_cells / cells_per_cluster)))
    centres = rng.uniform((0, 0), (h, w), size=(n_clusters, 2))
    spreads = rng.uniform(*cluster_spread, size=n_clusters)
    cells: list[CellGeometry] = []
    discs: list[tuple[float, float, float]] = []  # (y, x, r) of mothers and buds
    for _ in range(n_cells):
        for _ in range(max_tries):
            k = rng.integers(n_clusters)
            cy, cx = rng.normal(centres[k], spreads[k])
            if not (0 <= cy < h and 0 <= cx < w):
                continue
            cell = sample_cell(rng, cy, cx, size=size, p_budded=p_budded, p_divided=p_divided)
            new = [(cy, cx, cell.a)]
            if cell.budded:
                new.append((*cell.bud_centre(), cell.bud_r))
            if all(np.hypot(y - y2, x - x2) >= overlap * (r + r2)
                   for (y, x, r) in new for (y2, x2, r2) in discs):
                cells.append(cell)
                discs.extend(new)
                break
    return cells


@dataclass
class CellFrame:
    """A cell rasterised in its own bounding box of the field.

    ``sl``: the (row, col) slices of the box in the field; ``u, v``: mother-frame
    coordinates of every box pixel; ``mask``: the cell (mother + bud); ``bud``: the
    bud part; ``depth``: distance of each cell pixel to the cell boundary (px);
    ``scale``: pixels per reference pixel of 0.2 um (:data:`REFERENCE_PIXEL_SIZE`), by
    which the patterns scale their lengths.
    """

    geom: CellGeometry
    sl: tuple[slice, slice]
    u: np.ndarray
    v: np.ndarray
    mask: np.ndarray
    bud: np.ndarray
    depth: np.ndarray
    scale: float = 1.0

    def disc_distance(self, du: float, dv: float) -> np.ndarray:
        """Distance (px) of every box pixel to the point ``(du, dv)`` of the mother frame."""
        return np.hypot(self.u - du, self.v - dv)

    @property
    def nucleus_distance(self) -> np.ndarray:
        return self.disc_distance(*self.geom.nuc[:2])

    @property
    def vacuole_distance(self) -> np.ndarray:
        return self.disc_distance(*self.geom.vac[:2])

    @property
    def nucleus2_distance(self) -> np.ndarray | None:
        """Distance to the daughter nucleus of a dividing cell (``None`` otherwise)."""
        return None if self.geom.nuc2 is None else self.disc_distance(*self.geom.nuc2[:2])


def rasterise(geom: CellGeometry, shape: tuple[int, int], scale: float = 1.0) -> CellFrame | None:
    """Rasterise one cell into its bounding box; ``None`` if it lies outside the field.

    ``scale`` is the number of pixels per reference pixel (see :class:`CellFrame`).
    """
    h, w = shape
    e = geom.extent + 2
    y0, y1 = max(0, int(np.floor(geom.cy - e))), min(h, int(np.ceil(geom.cy + e)) + 1)
    x0, x1 = max(0, int(np.floor(geom.cx - e))), min(w, int(np.ceil(geom.cx + e)) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - geom.cy, xx - geom.cx
    c, s = np.cos(geom.theta), np.sin(geom.theta)
    u = dx * c + dy * s
    v = -dx * s + dy * c
    mother = (u / geom.a) ** 2 + (v / geom.b) ** 2 <= 1.0
    if geom.budded:
        bud = np.hypot(u - geom.bud_offset, v) <= geom.bud_r
        bud &= ~mother
    else:
        bud = np.zeros_like(mother)
    mask = mother | bud
    if not mask.any():
        return None
    depth = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1].astype(np.float32)
    return CellFrame(geom, (slice(y0, y1), slice(x0, x1)), u, v, mask, bud, depth, float(scale))
