"""The image settings of the paper's five experiments (sections 3.2-3.3, appendix D.1).

Every experiment trains linear classifiers on features of crops whose *centre cell*
has a known localization class, while the rest of the crop (the *background*) is
varied:

========  ==============================  ==============================================
setting   display name                    crops of centre class ``c``
========  ==============================  ==============================================
base      Baseline                        real crops (raw intensities)
mask      Masked Background               the same real crops, every pixel outside the
                                          centre cell set to 0
same      Same Loc Swap                   centre cell of protein ``p1`` pasted on a crop of
                                          another protein ``p2`` of class ``c``
diff      Diff Loc Swap                   pasted on a cell crop of a protein of class
                                          ``b != c``
batch     Cell-Free Diff Loc Swap         pasted on a cell-free crop of proteins of class
                                          ``b != c`` (appendix D.1)
========  ==============================  ==============================================

The short names are the file names of the paper's result CSVs
(``results_{base,mask,same,diff,batch}.csv``).

With ``swap_backgrounds="all"`` the ``diff`` and ``batch`` settings also hold the
pairs ``(c, c)``: the *other-class background* design for few classes.  The paper's
``eval_triplet`` already computes every pair ``(c1, c2)`` on every background ``b``,
including ``b in {c1, c2}``, and drops those rows when aggregating; with two classes
A and B they are the only rows: A-centres and B-centres on A-backgrounds, then on
B-backgrounds.  A classifier that separates A from B on one shared background class
measures what the centre cell alone carries (it is the diff swap with ``b`` chosen
among the pair itself).  The ``diff`` set ``(c, c)`` is built exactly like the
``same`` set of ``c`` (background of another protein of class ``c``).

Compositing (:func:`bgrobust.imageops.composite`) is the paper notebook's
``impose_foreground_on_background``: a copy of the background crop with the centre
cell's pixels pasted where its segmentation mask is true; the donor's own centre
cell is *not* removed.  Before pasting, the centre-cell pixels are standardised with
the mean and standard deviation of all pixels of its protein's crops and the
background pixels with those of the background's protein (section 3.2,
:func:`bgrobust.imageops.protein_stats`, :func:`bgrobust.imageops.standardize`).
``swap="clean"`` (not the paper's) first erases the donor's own centre cell
(:func:`bgrobust.imageops.remove_centre_cell`: its mask, grown a little, filled from
the donor's background pixels), so no second cell shows around the pasted one;
:func:`compositing_artefacts` measures seams and donor residue of either variant.

:func:`generate_settings` builds every set the experiments need, deterministically
from ``random_state``, and caches them as one array plus an index table
(:class:`SettingSets`).

"""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .cache import atomic_dir, code_key, content_key, dataset_fingerprint, load_or_create, verify_if_sealed
from .constraints import Boolean, Choice, Integer, check_value
from .vocabulary import CHANNELS, CLASSES, EXPERIMENTS, check_classes
from .crops import CropSet
from .imageops import (CentreRemoval, composite, donor_coverage, donor_residue, protein_stats, remove_centre_cells,
                       seam_contrast, standardize)

#: The :class:`SettingSets` accessor of each setting.
SET_GROUPS: dict[str, str] = {"base": "base", "mask": "mask", "same": "same",
                              "diff": "swap", "batch": "cellfree"}

_SAMPLING = ("random", "first")
_SHORTFALL = ("min", "error")
_BASE_PROTEINS = ("all", "one", "same")
_CELLFREE_SAMPLING = ("two_step", "one_protein")
_CENTRE_PROTEINS = ("one", "all", "pooled")
_SWAP_BACKGROUNDS = ("other", "all")
_SWAPS = ("paper", "clean")
_DONORS = ("random", "covered")


# --------------------------------------------------------------------------------------
# the generated sets
# --------------------------------------------------------------------------------------

class _View(Mapping):
    """``sets.base["actin"]``, ``sets.swap[("actin", "ER")]``, ... (read-only mapping)."""

    def __init__(self, owner: "SettingSets", setting: str):
        self._owner, self._setting = owner, setting

    def _key(self, key):
        if self._setting in ("base", "mask", "same"):
            return (self._setting, key, key)
        if not (isinstance(key, tuple) and len(key) == 2):
            raise KeyError(f"{SET_GROUPS[self._setting]}: key must be (centre_class, background_class), "
                           f"got {key!r}")
        return (self._setting,) + key

    def __getitem__(self, key) -> CropSet:
        return self._owner[self._key(key)]

    def __iter__(self):
        for s, c, b in self._owner.keys():
            if s == self._setting:
                yield c if s in ("base", "mask", "same") else (c, b)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"<{SET_GROUPS[self._setting]}: {len(self)} sets>"


@dataclass
class SettingSets:
    """Every crop set of the five experiments: one array plus an index table.

    Attributes
    ----------
    images : (N, C, S, S) float32 array (memory-mapped when loaded)
    masks : (N, S, S) bool array
        The pasted centre-cell mask of every crop.
    table : DataFrame
        One row per crop: ``set``, ``setting``, ``centre_class``, ``background_class``,
        ``centre_strain``, ``background_strain`` (the proteins of this crop's centre
        cell and background), ``centre_index`` (position in ``dataset.crops``),
        ``background_index`` and ``background_source``
        (``"crops"`` or ``"cell_free"``: which CropSet of the dataset it indexes),
        plus ``strain`` and ``localization`` (the centre's, for code that expects a
        crop table).
    sets : DataFrame
        One row per set: ``set``, ``setting``, ``centre_class``, ``background_class``,
        ``centre_strain``, ``background_strain`` (several are joined by ``";"``),
        ``start``, ``stop``, ``n``, ``n_requested``, ``n_background_unique``,
        ``shortfall`` (fewer than ``n_requested`` crops) and ``background_reused``.
    meta : dict
        Parameters, cache key and timing.

    Sets are addressed by ``(setting, centre_class, background_class)``; for base,
    mask and same the background class is the centre class (an aligned background).
    The accessors ``base``, ``mask``, ``same`` (keyed by class) and ``swap``,
    ``cellfree`` (keyed by ``(centre, background)``) are read-only mappings.

    Examples
    --------
    >>> # sets = generate_settings(dataset, 40)
    >>> # sets.swap[("actin", "ER")].images.shape  ->  (40, 3, 64, 64)
    >>> # for (setting, centre, background), crops in sets.items(): ...
    """

    images: np.ndarray
    masks: np.ndarray
    table: pd.DataFrame
    sets: pd.DataFrame
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self):
        if not (len(self.images) == len(self.masks) == len(self.table)):
            raise ValueError(f"SettingSets: {len(self.images)} images, {len(self.masks)} masks and "
                             f"{len(self.table)} table rows must agree")
        self._index = {(r.setting, r.centre_class, r.background_class): (int(r.start), int(r.stop))
                       for r in self.sets.itertuples()}

    # mapping-like access -------------------------------------------------------------
    @property
    def channels(self) -> tuple[str, ...]:
        """The channel names of the images (those of the dataset's crops)."""
        return tuple(self.meta.get("channels") or CHANNELS)

    def keys(self) -> list[tuple[str, str, str]]:
        """All ``(setting, centre_class, background_class)`` keys, in storage order."""
        return list(self._index)

    def __iter__(self):
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key) -> bool:
        return key in self._index

    def __getitem__(self, key) -> CropSet:
        if not (isinstance(key, tuple) and len(key) == 3):
            raise KeyError(f"SettingSets: key must be (setting, centre_class, background_class), got {key!r}")
        if key[0] not in EXPERIMENTS:
            raise KeyError(f"SettingSets: unknown setting {key[0]!r}; expected one of {EXPERIMENTS}")
        if key not in self._index:
            have = sorted({k[0] for k in self._index})
            hint = ("; diff/batch sets with background == centre exist only with swap_backgrounds='all'"
                    if key[0] in ("diff", "batch") and key[1] == key[2] else "")
            raise KeyError(f"SettingSets: no set {key!r} (settings generated: {have}){hint}")
        start, stop = self._index[key]
        return CropSet(self.images[start:stop], self.masks[start:stop],
                       self.table.iloc[start:stop].reset_index(drop=True))

    def get(self, setting: str, centre: str, background: str | None = None) -> CropSet:
        """One set; ``background`` defaults to ``centre`` (base, mask, same)."""
        return self[(setting, centre, centre if background is None else background)]

    def items(self):
        """Iterate ``((setting, centre, background), CropSet)`` over all sets."""
        for key in self._index:
            yield key, self[key]

    @property
    def base(self) -> _View:
        return _View(self, "base")

    @property
    def mask(self) -> _View:
        return _View(self, "mask")

    @property
    def same(self) -> _View:
        return _View(self, "same")

    @property
    def swap(self) -> _View:
        return _View(self, "diff")

    @property
    def cellfree(self) -> _View:
        return _View(self, "batch")

    @property
    def n_crops(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        counts = self.sets.groupby("setting", sort=False).size().to_dict()
        return f"SettingSets({self.n_crops} crops; sets per setting {counts})"

    # storage ---------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write to a folder (npy arrays, parquet tables, meta.json), atomically."""
        path = Path(path)
        with atomic_dir(path, seal=True) as tmp:
            _write(tmp, self.images, self.masks, self.table, self.sets, self.meta)
        return path

    @classmethod
    def load(cls, path, mmap: bool = True) -> "SettingSets":
        """Read a folder written by :meth:`save` or :func:`generate_settings`."""
        path = Path(path)
        if not (path / "meta.json").is_file():
            raise FileNotFoundError(f"SettingSets.load: {path} holds no generated settings (no meta.json)")
        verify_if_sealed(path)
        mode = "r" if mmap else None
        return cls(np.load(path / "images.npy", mmap_mode=mode), np.load(path / "masks.npy", mmap_mode=mode),
                   pd.read_parquet(path / "table.parquet"), pd.read_parquet(path / "sets.parquet"),
                   json.loads((path / "meta.json").read_text()), path)


def _write(folder: Path, images, masks, table, sets, meta) -> None:
    if images is not None:
        np.save(folder / "images.npy", np.asarray(images))
        np.save(folder / "masks.npy", np.asarray(masks))
    table.to_parquet(folder / "table.parquet", index=False)
    sets.to_parquet(folder / "sets.parquet", index=False)
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=str))


# --------------------------------------------------------------------------------------
# planning: which proteins and crops go into which set
# --------------------------------------------------------------------------------------

def _rng(random_state: int, *key) -> np.random.Generator:
    """An independent stream per set, so a set does not depend on which others are built."""
    digest = hashlib.sha256(json.dumps([int(random_state), *key]).encode()).digest()
    return np.random.default_rng(np.frombuffer(digest[:16], dtype=np.uint32))


def _pools(table: pd.DataFrame, classes, rows: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """class -> {protein: positions}, single-localized proteins only, proteins sorted.

    ``table`` must have a default RangeIndex (positions); ``rows`` selects the usable rows.
    """
    sub = table.iloc[rows]
    sub = sub[(sub["kind"] == "single") & sub["localization"].isin(list(classes))]
    pools: dict[str, dict[str, np.ndarray]] = {c: {} for c in classes}
    for (loc, strain), group in sub.groupby(["localization", "strain"], sort=True):
        pools[loc][strain] = group.index.to_numpy()
    return pools


def _take(rng, positions: np.ndarray, n: int, sampling: str) -> np.ndarray:
    """Up to ``n`` distinct positions: a random sample or the first ``n``."""
    if sampling == "first":
        return positions[:n]
    k = min(n, len(positions))
    return rng.choice(positions, size=k, replace=False)


def _cycle(rng, positions: np.ndarray, n: int, sampling: str) -> np.ndarray:
    """Exactly ``n`` positions, all distinct first, then reused cyclically."""
    order = positions if sampling == "first" else rng.permutation(positions)
    return np.resize(order, n)


def _check_int(value, name: str, minimum: int) -> int:
    return int(check_value(value, Integer(minimum), f"generate_settings: {name}"))


def _check_choice(value, name: str, allowed) -> str:
    return check_value(value, Choice(allowed), f"generate_settings: {name}")


def _check_table(table: pd.DataFrame, columns, where: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"generate_settings: {where} table lacks column(s) {missing}")


def _shortfall(policy: str, message: str) -> None:
    if policy == "error":
        raise ValueError(message + " (shortfall='error'; use shortfall='min' to keep fewer crops)")


@dataclass
class _Plan:
    setting: str
    centre_class: str
    background_class: str
    n_requested: int
    centre_index: np.ndarray
    centre_strain: np.ndarray
    background_index: np.ndarray
    background_strain: np.ndarray
    background_source: str

    @property
    def n(self) -> int:
        return len(self.centre_index)


def _plan_centres(rng, pool: dict[str, np.ndarray], n: int, sampling: str, shortfall: str,
                  where: str) -> tuple[str, np.ndarray]:
    proteins = sorted(pool)
    p1 = proteins[int(rng.integers(len(proteins)))]
    if len(pool[p1]) < n:
        _shortfall(shortfall, f"{where}: centre protein {p1!r} has {len(pool[p1])} valid crops, "
                              f"fewer than n_cells={n}")
    return p1, _take(rng, pool[p1], n, sampling)


def _plan_centres_all(rng, pool: dict[str, np.ndarray], n: int, sampling: str, shortfall: str,
                      where: str) -> tuple[np.ndarray, np.ndarray]:
    """Centre crops of one class pooled over all its proteins: ``(positions, strains)``.

    Up to ``n`` distinct crops drawn from the valid crops of every protein of the
    class together (a random sample, or the first in dataset order for
    ``sampling="first"``).  When the class has several proteins but the draw hit only
    one (small ``n``, very unequal proteins, or ``"first"``), its last crop is replaced
    by a crop of another protein, so that a protein-held-out split of the set is
    possible (appendix D.3).
    """
    proteins = sorted(pool)
    positions = np.concatenate([np.asarray(pool[p], np.int64) for p in proteins])
    owner = np.repeat(np.arange(len(proteins)), [len(pool[p]) for p in proteins])
    order = np.argsort(positions, kind="stable")
    positions, owner = positions[order], owner[order]
    if len(positions) < n:
        _shortfall(shortfall, f"{where}: its proteins {proteins} have {len(positions)} valid crops "
                              f"together, fewer than n_cells={n}")
    pick = np.array(_take(rng, np.arange(len(positions)), n, sampling), dtype=np.int64)
    if len(proteins) > 1 and len(pick) > 1 and np.all(owner[pick] == owner[pick[0]]):
        others = np.flatnonzero(owner != owner[pick[0]])
        pick[-1] = _take(rng, others, 1, sampling)[0]
    return positions[pick], np.array(proteins, dtype=object)[owner[pick]]


def _plan_cellfree(rng, pool: dict[str, np.ndarray], n: int, sampling: str, mode: str,
                   reuse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Background crops of one class: appendix D.1's two-step sampling or one protein.

    two_step: per crop, pick a protein with crops left uniformly at random, then the
    next of its crops (a random order, or table order for ``sampling="first"``); a
    protein with no crop left is re-drawn ("we repeated the sampling").  When every
    crop has been used once, the pool is refilled (``reuse``) or sampling stops.
    """
    proteins = sorted(pool)
    if mode == "one_protein":
        p = proteins[int(rng.integers(len(proteins)))]
        positions = pool[p]
        k = n if reuse else min(n, len(positions))
        chosen = _cycle(rng, positions, k, sampling)
        return chosen, np.array([p] * len(chosen), dtype=object)
    chosen, strains = [], []
    while len(chosen) < n:
        queues = {p: pool[p] if sampling == "first" else rng.permutation(pool[p]) for p in proteins}
        used = dict.fromkeys(proteins, 0)
        alive = list(proteins)
        while len(chosen) < n and alive:
            j = int(rng.integers(len(alive)))
            p = alive[j]
            chosen.append(queues[p][used[p]])
            strains.append(p)
            used[p] += 1
            if used[p] == len(queues[p]):
                alive.pop(j)
        if not reuse:
            break
    return np.asarray(chosen, dtype=np.int64), np.array(strains, dtype=object)


def _covering(all_masks, centres: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """Donor crops for ``centres`` that maximise the total coverage of the donors' cells.

    An optimal one-to-one assignment (``scipy.optimize.linear_sum_assignment``) of the
    centre cells to distinct candidates, by blocks of ``len(candidates)`` centres when
    there are more centres than candidates (background reuse).
    """
    from scipy.optimize import linear_sum_assignment

    pasted = np.asarray(all_masks[np.asarray(centres)], bool)
    donor = np.asarray(all_masks[np.asarray(candidates)], bool)
    cover = donor_coverage(pasted, donor)
    chosen = np.empty(k, np.int64)
    step = len(candidates)
    for start in range(0, k, step):
        rows, cols = linear_sum_assignment(cover[start:start + step], maximize=True)
        chosen[start + rows] = np.asarray(candidates)[cols]
    return chosen


def _plan(dataset, n: int, classes, settings, random_state: int, sampling: str, shortfall: str,
          base_proteins: str, cellfree_sampling: str, reuse_backgrounds: bool,
          centre_proteins: str = "one", swap_backgrounds: str = "other",
          shared_backgrounds: bool = False, donors: str = "random") -> list[_Plan]:
    crops_table = dataset.crops.table
    _check_table(crops_table, ["strain", "localization", "kind", "valid"], "dataset.crops")
    valid = np.flatnonzero(crops_table["valid"].to_numpy(bool))
    cells = _pools(crops_table.reset_index(drop=True), classes, valid)
    for c in classes:
        if not cells[c]:
            raise ValueError(f"generate_settings: class {c!r} has no single-localized protein with "
                             f"valid crops in the dataset; drop it from classes=")
    if "same" in settings or base_proteins == "same":
        for c in classes:
            if len(cells[c]) < 2:
                what, fix = (("setting 'same'", "drop 'same' from settings=") if "same" in settings
                             else ("base_proteins='same'", "choose another base_proteins="))
                raise ValueError(f"generate_settings: {what} needs two single-localized proteins "
                                 f"of class {c!r}, found {sorted(cells[c])}; {fix} or drop {c!r} from classes=")
    if any(s in settings for s in ("diff", "batch")) and len(classes) < 2:
        raise ValueError("generate_settings: settings 'diff' and 'batch' need at least two classes")
    free = {c: {} for c in classes}
    if "batch" in settings:
        free_table = dataset.cell_free.table.reset_index(drop=True)
        _check_table(free_table, ["strain", "localization", "kind"], "dataset.cell_free")
        free = _pools(free_table, classes, np.arange(len(free_table)))
        # a cell-free crop is standardised with its protein's cell-crop statistics
        free = {c: {p: v for p, v in pool.items() if p in cells[c]} for c, pool in free.items()}

    plans: list[_Plan] = []

    def one_protein_background(rng, c, b, p1, centres, centre_strains):
        # p1: the centre protein (None for centres of several proteins); a background of the
        # centre's own class (same, or diff with swap_backgrounds="all") is of another protein
        exclude = {p1, *centre_strains} if b == c else {p1}
        candidates = {p: v for p, v in cells[b].items() if p not in exclude}
        if b == c and p1 is None and (b, b) in reserved:
            candidates = {reserved[(b, b)]: cells[b][reserved[(b, b)]]}
        if not candidates:
            raise ValueError(f"generate_settings: a background of class {b!r} for centres of the same class "
                             f"needs a protein other than the centre's; class {b!r} has only "
                             f"{sorted(cells[b])}")
        p2 = sorted(candidates)[int(rng.integers(len(candidates)))]
        pos = candidates[p2]
        k = len(centres)
        if len(pos) < k and not reuse_backgrounds:
            _shortfall(shortfall, f"generate_settings: background protein {p2!r} of class {b!r} has "
                                  f"{len(pos)} valid crops, fewer than the {k} needed for centre {c!r}")
            k = len(pos)
        if donors == "covered":  # every crop of the protein is a candidate
            order = pos if sampling == "first" else rng.permutation(pos)
            chosen = _covering(dataset.crops.masks, centres[:k], order, k)
        else:
            chosen = _cycle(rng, pos, k, sampling)
        return chosen, np.array([p2] * k, dtype=object)

    def centres_of(setting, c, b):
        """(p1 or None, positions, strains); one stream per pair, so diff and batch share them."""
        pooled = centre_proteins == "pooled" or (centre_proteins == "all" and setting != "same")
        key = ("all" if pooled else "one", c, b)
        if key not in centre_choice:
            where = f"generate_settings: {setting} centre class {c!r}"
            rng = _rng(random_state, "centre", c, b)
            if key[0] == "all":
                pool = cells[c]
                if c == b:
                    # centres of several proteins on their own class: keep one protein back
                    # for the backgrounds (drawn first, from the same stream)
                    if len(pool) < 2:
                        raise ValueError(f"generate_settings: {setting} ({c!r}, {c!r}) needs two "
                                         f"single-localized proteins of class {c!r}, found {sorted(pool)}")
                    names = sorted(pool)
                    reserved[(c, c)] = names[int(rng.integers(len(names)))]
                    pool = {p: v for p, v in pool.items() if p != reserved[(c, c)]}
                idx, strains = _plan_centres_all(rng, pool, n, sampling, shortfall, where)
                centre_choice[key] = (None, idx, strains)
            else:
                p1, idx = _plan_centres(rng, cells[c], n, sampling, shortfall, where)
                centre_choice[key] = (p1, idx, np.array([p1] * len(idx), dtype=object))
        return centre_choice[key]

    base_choice, centre_choice, reserved, shared = {}, {}, {}, {}
    for setting in settings:
        if setting in ("base", "mask"):
            for c in classes:
                if c not in base_choice:
                    rng = _rng(random_state, "base", c)
                    if base_proteins == "same":
                        # the same-swap's centre cells, unaltered: base and same differ only in
                        # the background (claim 4.1 paired on identical cells)
                        idx = centres_of("same", c, c)[1]
                    elif base_proteins == "one":
                        p, idx = _plan_centres(rng, cells[c], n, sampling, shortfall,
                                               f"generate_settings: base/mask class {c!r}")
                    else:
                        pooled = np.sort(np.concatenate(list(cells[c].values())))
                        if len(pooled) < n:
                            _shortfall(shortfall, f"generate_settings: base/mask class {c!r} has "
                                                  f"{len(pooled)} valid crops over proteins "
                                                  f"{sorted(cells[c])}, fewer than n_cells={n}")
                        idx = _take(rng, pooled, n, sampling)
                    base_choice[c] = idx
                idx = base_choice[c]
                strains = crops_table["strain"].to_numpy()[idx].astype(object)
                plans.append(_Plan(setting, c, c, n, idx, strains, idx, strains, "crops"))
            continue
        pairs = ([(c, c) for c in classes] if setting == "same"
                 else [(c, b) for c in classes for b in classes if b != c or swap_backgrounds == "all"])
        for c, b in pairs:
            # the centre cells of a pair (c, b) are shared by diff and batch (paired design)
            p1, centres, centre_strains = centres_of(setting, c, b)
            if setting == "diff" and shared_backgrounds:
                if b not in shared:
                    # the backgrounds of (b, b), drawn as for that set, are every centre's on b
                    p1_b, centres_b, strains_b = centres_of(setting, b, b)
                    shared[b] = one_protein_background(_rng(random_state, "background", b, b), b, b, p1_b,
                                                       centres_b, strains_b)
                bg, bg_strain = (v[:len(centres)] for v in shared[b])
                source = "crops"
            elif setting in ("same", "diff"):
                bg, bg_strain = one_protein_background(_rng(random_state, "background", c, b), c, b, p1, centres,
                                                       centre_strains)
                source = "crops"
            elif shared_backgrounds and free[b]:
                if ("cell_free", b) not in shared:
                    shared[("cell_free", b)] = _plan_cellfree(_rng(random_state, "cellfree", b, b), free[b], n,
                                                              sampling, cellfree_sampling, reuse_backgrounds)
                bg, bg_strain = (v[:len(centres)] for v in shared[("cell_free", b)])
                source = "cell_free"
            else:
                if not free[b]:
                    _shortfall(shortfall, f"generate_settings: background class {b!r} has no cell-free "
                                          f"crops of a single-localized protein (batch, centre {c!r})")
                    bg, bg_strain = np.zeros(0, np.int64), np.zeros(0, object)
                else:
                    bg, bg_strain = _plan_cellfree(_rng(random_state, "cellfree", c, b), free[b],
                                                   len(centres), sampling, cellfree_sampling,
                                                   reuse_backgrounds)
                    if len(bg) < len(centres):
                        _shortfall(shortfall, f"generate_settings: background class {b!r} has {len(bg)} "
                                              f"cell-free crops, fewer than the {len(centres)} needed "
                                              f"for centre {c!r} (reuse_backgrounds=False)")
                source = "cell_free"
            k = len(bg)
            plans.append(_Plan(setting, c, b, n, centres[:k], centre_strains[:k],
                               np.asarray(bg, np.int64), bg_strain, source))
    return plans


# --------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------

def _stats_table(stats: pd.DataFrame) -> dict:
    """protein -> (mean, std) arrays, for fast lookups."""
    means = [c for c in stats.columns if c.startswith("mean_")]
    stds = [c for c in stats.columns if c.startswith("std_")]
    m, s = stats[means].to_numpy(np.float64), stats[stds].to_numpy(np.float64)
    return {p: (m[i], s[i]) for i, p in enumerate(stats.index)}


def _fill(plan: _Plan, dataset, stats: dict | None, standardize_pixels: bool, swap: str = "paper",
          removal: CentreRemoval | None = None, random_state: int = 0):
    crops = dataset.crops
    centre = np.asarray(crops.images[plan.centre_index])
    masks = np.asarray(crops.masks[plan.centre_index]).astype(bool)
    if plan.setting == "base":
        return centre.astype(np.float32), masks
    if plan.setting == "mask":
        return (centre * masks[:, None]).astype(np.float32), masks
    source = crops if plan.background_source == "crops" else dataset.cell_free
    background = np.asarray(source.images[plan.background_index])
    if standardize_pixels:
        # per crop: the centre cells of a set may come from several proteins
        m1 = np.stack([stats[p][0] for p in plan.centre_strain])
        s1 = np.stack([stats[p][1] for p in plan.centre_strain])
        centre = standardize(centre, m1, s1)
        m2 = np.stack([stats[p][0] for p in plan.background_strain])
        s2 = np.stack([stats[p][1] for p in plan.background_strain])
        background = standardize(background, m2, s2)
    if swap == "clean" and plan.background_source == "crops":
        donor_masks = np.asarray(crops.masks[plan.background_index]).astype(bool)
        rng = _rng(random_state, "clean", plan.setting, plan.centre_class, plan.background_class)
        background, _ = remove_centre_cells(background.astype(np.float32), donor_masks, rng, removal)
    return composite(centre.astype(np.float32), masks, background.astype(np.float32)), masks


def _tables(plans: list[_Plan]) -> tuple[pd.DataFrame, pd.DataFrame]:
    sizes = np.array([p.n for p in plans], dtype=np.int64)
    stops = np.cumsum(sizes)

    def cat(values, dtype=object):
        return np.concatenate([np.asarray(v, dtype) for v in values]) if plans else np.zeros(0, dtype)

    table = pd.DataFrame({
        "set": np.repeat(np.arange(len(plans)), sizes),
        "setting": np.repeat([p.setting for p in plans], sizes).astype(object),
        "centre_class": np.repeat([p.centre_class for p in plans], sizes).astype(object),
        "background_class": np.repeat([p.background_class for p in plans], sizes).astype(object),
        "centre_strain": cat([p.centre_strain.astype(str) for p in plans]),
        "background_strain": cat([p.background_strain.astype(str) for p in plans]),
        "centre_index": cat([p.centre_index for p in plans], np.int64),
        "background_index": cat([p.background_index for p in plans], np.int64),
        "background_source": np.repeat([p.background_source for p in plans], sizes).astype(object),
    })
    table["strain"] = table["centre_strain"]
    table["localization"] = table["centre_class"]
    sets = []
    for i, p in enumerate(plans):
        unique_bg = len(np.unique(p.background_index))
        sets.append({
            "set": i, "setting": p.setting, "centre_class": p.centre_class,
            "background_class": p.background_class,
            "centre_strain": ";".join(sorted(set(p.centre_strain.astype(str)))),
            "background_strain": ";".join(sorted(set(p.background_strain.astype(str)))),
            "start": int(stops[i] - p.n), "stop": int(stops[i]), "n": p.n, "n_requested": p.n_requested,
            "n_background_unique": unique_bg, "shortfall": p.n < p.n_requested,
            "background_reused": unique_bg < p.n,
        })
    return table, pd.DataFrame(sets)


def settings_key(dataset, n_cells: int, random_state: int, params: dict, *,
                 fingerprint: str | None = None) -> str:
    """Cache key: the dataset's content, the parameters and this module's code."""
    fingerprint = fingerprint or dataset_fingerprint(dataset)
    return content_key(fingerprint, int(n_cells), int(random_state), params, code_key("bgrobust.settings"))


def generate_settings(dataset, n_cells: int, *, classes=CLASSES, settings=EXPERIMENTS, random_state: int = 0,
                      sampling: str = "random", base_proteins: str = "all",
                      cellfree_sampling: str = "two_step", centre_proteins: str = "one",
                      shortfall: str = "min", reuse_backgrounds: bool = True, standardize: bool = True,
                      swap_backgrounds: str = "other", shared_backgrounds: bool = False, swap: str = "paper",
                      donors: str = "random",
                      removal: CentreRemoval | None = None, progress: bool = True,
                      cache_dir=None) -> SettingSets:
    """Every crop set of the five experiments, cached on disk.

    For every ordered pair of classes ``(c, b)`` (section 3.2): a protein ``p1`` of
    class ``c`` and a protein ``p2`` of class ``b`` (``p2 != p1`` when ``b == c``)
    are drawn at random among the single-localized strains; the centre cells of
    ``n_cells`` crops of ``p1`` (their segmentation masks) are pasted on crops of
    ``p2``, after standardising the centre pixels with ``p1``'s and the background
    pixels with ``p2``'s per-channel mean and std (:func:`protein_stats`).  Only
    valid crops (``table.valid``) are used.  With ``centre_proteins="all"`` the centre
    cells of the swap and cell-free sets come from all proteins of class ``c`` instead
    of one ``p1`` (for protein-held-out evaluation, appendix D.3).

    Only the requested ``settings`` are planned and generated (e.g. ``("batch",)``
    alone builds just the cell-free sets), and the per-protein statistics are computed
    only for the proteins those sets use.  A set does not depend on which other sets
    are generated.

    Parameters
    ----------
    dataset : bgrobust.dataset.Dataset
        Cell crops (``dataset.crops``) and cell-free crops (``dataset.cell_free``).
    n_cells : int
        Crops per set (the paper: 1000).
    classes : sequence of str
        Localization classes (default: all 15, in the paper's order).
    settings : sequence of str
        A subset of :data:`EXPERIMENTS`.
    random_state : int
        Seed.  Every set has its own stream derived from ``random_state`` and its key,
        so a set is the same whichever other sets are generated.
    sampling : {"random", "first"}
        ``"random"`` draws crops at random without replacement (section 3.2: "we
        randomly selected two single-cell GFP images"); ``"first"`` takes them in
        dataset order (like ``run_svm.py``'s first 1000 rows).
    base_proteins : {"all", "one"}
        Baseline (and masked) crops of class ``c``: drawn from the pooled valid crops
        of *all* its single-localized proteins (default; the paper draws proteins
        only for the synthetic images, section 3.2, and calls the baseline "real
        single-cell crops"), from one random protein like the swaps' ``p1``
        (``"one"``), or ``"same"``: exactly the centre crops of the ``same`` set of
        ``c``, unaltered, so that baseline and same-localization swap hold the same
        cells of the same proteins and differ only in the background (a paired
        design for claim 4.1; the set ``same`` need not be generated).
        The masked set uses exactly the baseline crops.
    cellfree_sampling : {"two_step", "one_protein"}
        Cell-free backgrounds of class ``b``: appendix D.1's two-step sampling (for
        each crop a random protein of class ``b``, then one of its cell-free crops;
        proteins without any crop left are re-drawn), or one protein per pair.
    centre_proteins : {"one", "all", "pooled"}
        Centre cells of the swap (``diff``) and cell-free (``batch``) sets of a pair
        ``(c, b)``: ``n_cells`` crops of one random protein ``p1`` of class ``c``
        (default; section 3.2), or ``n_cells`` crops drawn from the pooled valid crops
        of *all* single-localized proteins of class ``c`` (without replacement, like
        ``base_proteins="all"``), so that a protein-held-out split (appendix D.3,
        Supp. Table 3) can give training and test sets disjoint centre proteins.  With
        ``"all"``, a set of a class that has several proteins always spans at least two
        of them (when it has two or more crops).  Each crop's protein is its
        ``table.centre_strain``; ``sets.centre_strain`` lists the set's proteins joined
        by ``";"``.  Either way, ``diff`` and ``batch`` of the same pair share their
        centre cells (paired design), each centre pixel is standardised with its own
        protein's statistics, and the ``same`` sets keep one centre protein (their
        background protein must be another protein of the same class).  ``"pooled"``
        is ``"all"`` for the ``same`` sets too: their centre cells are pooled over every
        protein of ``c`` but one, which is kept back for their backgrounds (the design
        of ``diff[(c, c)]`` with ``"all"``); it reaches more cells per set than one
        protein holds.
    shortfall : {"min", "error"}
        When a protein has fewer valid crops than ``n_cells`` (or a class no cell-free
        crops): keep what there is and record it in ``sets.shortfall`` (like the
        paper's cell-free result rows with fewer than 1000 crops), or raise.
    reuse_backgrounds : bool
        Reuse background crops cyclically (after all distinct ones) when there are
        fewer than the centre cells; otherwise that is a shortfall too.
    standardize : bool
        Standardise centre and background pixels per protein (all three channels).
        ``False`` pastes raw intensities, like the paper's example notebook.
    swap_backgrounds : {"other", "all"}
        Background classes of the ``diff`` and ``batch`` sets of centre class ``c``:
        every ``b != c`` (default; the pairs section 3.2 aggregates), or every class
        including ``c`` itself, which adds the sets ``(c, c)``: the *other-class
        background* design that works with two classes.  For a pair ``(c1, c2)`` and a
        background ``b in {c1, c2}``, :func:`bgrobust.classify.evaluate_triplets` with
        ``backgrounds="all"`` separates c1-centres from c2-centres on backgrounds of
        ``b``: the paper's ``eval_triplet`` rows with ``Background`` equal to
        ``Location1`` or ``Location2``, which its aggregation drops.  ``diff[(c, c)]``
        is built like ``same[c]`` (with the default ``centre_proteins="one"`` it *is*
        the same set: same streams); with ``centre_proteins="all"`` one protein of
        ``c`` is kept back for the backgrounds, so centre and background proteins
        stay disjoint (the class needs two proteins).  ``batch[(c, c)]`` pastes on
        cell-free crops of class ``c``.
    shared_backgrounds : bool
        ``False`` (default; section 3.2): every pair ``(c, b)`` draws its own
        background protein and crops.  ``True``: every ``diff`` set of background
        class ``b`` pastes on the *same* background crops, those of the set
        ``(b, b)`` (one protein of ``b`` other than that set's centre protein), and every
        ``batch`` set of ``b`` on the same cell-free crops; then two centre classes on
        one background class differ only in the centre cells (and in the background
        pixels their masks cover), which is what the other-class background design
        is meant to measure.  Without it, the two sets on ``b`` usually come from two
        different proteins of ``b``, and a background-only extractor can tell them
        apart by protein.
    swap : {"paper", "clean"}
        Compositing of the sets on cell crops (``same``, ``diff``): the paper's
        (default; the donor crop's own centre cell stays, hidden only where the pasted
        mask covers it), or ``"clean"``: the donor's centre cell (its mask grown by
        ``removal.dilation``) is first filled from the donor's own background pixels
        (:func:`bgrobust.imageops.remove_centre_cell`).  Centre-cell pixels are the same
        in both; cell-free backgrounds (``batch``) have no centre cell and are the same
        too.  The variant is part of the cache key.
    donors : {"random", "covered"}
        Donor (background) crops of the ``same`` and ``diff`` sets, among the crops of
        the drawn background protein: in random order (default; section 3.2), or
        ``"covered"``: the centre cells are matched one to one with the protein's crops
        so that the pasted masks cover as much of the donors' own centre cells as
        possible (optimal assignment of :func:`bgrobust.imageops.donor_coverage`), so less
        of the donor cell shows around the pasted one (with either ``swap``).
    removal : CentreRemoval, optional
        Parameters of the clean swap (default ``CentreRemoval()``); only with
        ``swap="clean"``.
    progress : bool
        Show a tqdm progress bar.
    cache_dir : path, optional
        Cache folder (default: the run folder ``run_dir("shared")``, like
        :func:`bgrobust.dataset.load_or_build`); the result lives in
        ``cache_dir/settings-<key>``.

    Returns
    -------
    SettingSets
        ``base[c]``, ``mask[c]``, ``same[c]`` (the pair ``(c, c)``), ``swap[(c, b)]``
        and ``cellfree[(c, b)]`` for every ``b != c`` (and ``b == c`` with
        ``swap_backgrounds="all"``); images are float32 ``(n, 3, 64, 64)``,
        memory-mapped.

    Examples
    --------
    >>> # ds = load_or_build(open_screen("synthetic"))
    >>> # sets = generate_settings(ds, 40, random_state=0)
    >>> # crops = sets.swap[("actin", "ER")]; crops.table.centre_index  # into ds.crops
    >>> # held = generate_settings(ds, 40, settings=("batch",), centre_proteins="all")
    >>> # held.cellfree[("actin", "ER")].table.centre_strain  # several actin proteins
    >>> # two = generate_settings(ds, 40, classes=("cytoplasm", "mitochondrion"),
    >>> #                         settings=("diff",), swap_backgrounds="all", swap="clean")
    >>> # evaluate_triplets({k[1:]: extract(c.images) for k, c in two.items()},
    >>> #                   classes=("cytoplasm", "mitochondrion"), backgrounds="all")
    """
    from .paths import run_dir

    n_cells = _check_int(n_cells, "n_cells", 1)
    random_state = _check_int(random_state, "random_state", 0)
    classes = list(classes)
    if not classes:
        raise ValueError("generate_settings: classes is empty")
    check_classes(classes, where="generate_settings: classes")
    if len(set(classes)) != len(classes):
        raise ValueError(f"generate_settings: classes has duplicates: {classes}")
    settings = list(settings)
    unknown = [s for s in settings if s not in EXPERIMENTS]
    if unknown or not settings or len(set(settings)) != len(settings):
        raise ValueError(f"generate_settings: settings must be distinct names from {EXPERIMENTS}, got {settings}")
    params = {
        "classes": classes, "settings": settings,
        "sampling": _check_choice(sampling, "sampling", _SAMPLING),
        "base_proteins": _check_choice(base_proteins, "base_proteins", _BASE_PROTEINS),
        "cellfree_sampling": _check_choice(cellfree_sampling, "cellfree_sampling", _CELLFREE_SAMPLING),
        "centre_proteins": _check_choice(centre_proteins, "centre_proteins", _CENTRE_PROTEINS),
        "shortfall": _check_choice(shortfall, "shortfall", _SHORTFALL),
        "reuse_backgrounds": bool(reuse_backgrounds), "standardize": bool(standardize),
        "swap_backgrounds": _check_choice(swap_backgrounds, "swap_backgrounds", _SWAP_BACKGROUNDS),
        "shared_backgrounds": bool(check_value(shared_backgrounds, Boolean(),
                                               "generate_settings: shared_backgrounds")),
        "swap": _check_choice(swap, "swap", _SWAPS),
        "donors": _check_choice(donors, "donors", _DONORS),
    }
    if params["donors"] == "covered" and params["shared_backgrounds"]:
        raise ValueError("generate_settings: donors='covered' picks each centre cell's own donor crop; it "
                         "cannot be combined with shared_backgrounds=True")
    if removal is not None and not isinstance(removal, CentreRemoval):
        raise TypeError(f"generate_settings: removal must be a bgrobust.imageops.CentreRemoval, "
                        f"got {type(removal).__name__}")
    if removal is not None and params["swap"] != "clean":
        raise ValueError("generate_settings: removal= is used only with swap='clean'")
    if params["swap"] == "clean":
        params["removal"] = (removal or CentreRemoval()).to_dict()
    cache_dir = Path(cache_dir) if cache_dir is not None else run_dir("shared")
    fingerprint = dataset_fingerprint(dataset)
    key = settings_key(dataset, n_cells, random_state, params, fingerprint=fingerprint)
    path = cache_dir / f"settings-{key}"

    def build(path):
        _build_settings(path, dataset, n_cells, classes, settings, random_state, params, standardize,
                        key, fingerprint, progress)

    return load_or_create(path, build, SettingSets.load, what="generated settings")


def _build_settings(path, dataset, n_cells, classes, settings, random_state, params, standardize, key,
                    fingerprint, progress) -> None:
    """Plan and write the sets of :func:`generate_settings` into the sealed entry ``path``."""
    t0 = time.perf_counter()
    plans = _plan(dataset, n_cells, classes, settings, random_state, params["sampling"], params["shortfall"],
                  params["base_proteins"], params["cellfree_sampling"], params["reuse_backgrounds"],
                  params["centre_proteins"], params["swap_backgrounds"], params["shared_backgrounds"],
                  params["donors"])
    removal = CentreRemoval(**params["removal"]) if params["swap"] == "clean" else None
    # statistics only of the proteins the composited sets use (a full pass over the crops otherwise)
    used = {p for plan in plans if plan.setting in ("same", "diff", "batch")
            for p in (*plan.centre_strain, *plan.background_strain)}
    stats = _stats_table(protein_stats(dataset.crops, proteins=sorted(used))) if standardize and used else None
    table, sets = _tables(plans)
    n_total, size = len(table), dataset.crops.images.shape[-1]
    n_channels = dataset.crops.images.shape[1]
    short = sets[sets.shortfall]
    if len(short):
        warnings.warn(f"generate_settings: {len(short)} of {len(sets)} sets have fewer than "
                      f"{n_cells} crops (see sets.shortfall)", stacklevel=5)
    with atomic_dir(path, seal=True) as tmp:
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.float32,
                                           shape=(n_total, n_channels, size, size))
        masks = np.lib.format.open_memmap(tmp / "masks.npy", mode="w+", dtype=bool,
                                          shape=(n_total, size, size))
        order = tqdm(plans, desc="generating settings", unit="set") if progress else plans
        start = 0
        for plan in order:
            if plan.n:
                images[start:start + plan.n], masks[start:start + plan.n] = _fill(
                    plan, dataset, stats, standardize, params["swap"], removal, random_state)
            start += plan.n
        images.flush()
        masks.flush()
        del images, masks
        meta = {"key": key, "n_cells": n_cells, "random_state": random_state, **params,
                "channels": list(getattr(dataset.crops, "channels", None) or CHANNELS), "dataset": fingerprint, "n_crops": int(n_total), "n_sets": len(sets),
                "n_shortfall": int(len(short)), "seconds": round(time.perf_counter() - t0, 3)}
        _write(tmp, None, None, table, sets, meta)


# --------------------------------------------------------------------------------------
# helpers for the image-generation chapter
# --------------------------------------------------------------------------------------

def compositing_artefacts(sets: SettingSets, dataset, *, settings=("same", "diff"), channel: str = "gfp",
                          max_crops: int | None = None) -> pd.DataFrame:
    """Pixel-level artefact diagnostics of the swapped sets: seams and donor residue.

    The paper's artefact check compares the accuracies of ``same`` and ``base``
    (``|same - baseline| < 0.02``), which needs a feature extractor and the SVMs (the
    runner's job).  This is its pixel-level counterpart, for the paper's and the clean
    compositing alike (:func:`generate_settings` ``swap=``):

    * ``seam``: :func:`bgrobust.imageops.seam_contrast` of the composite along the
      pasted mask, and ``seam_source``: the same measure of the centre cell in its own
      source crop (a ratio, so per-channel standardisation does not change it), so
      ``seam_ratio`` (their ratio per crop) near 1 means the paste adds no visible edge;
    * ``donor_visible``: the share of the donor crop's own centre-cell pixels left
      outside the pasted mask (the same for both variants: it is where the donor cell
      *was*), and ``donor_level``: the mean of the composite over those pixels minus
      the median of the composite outside both masks (the donor cell's contrast in
      the paper's compositing; at or a little below 0 once the clean swap erased it,
      since the fill has the level of cell-free pixels while that median also holds
      neighbouring cells).

    Parameters
    ----------
    sets : SettingSets
        From :func:`generate_settings`.
    dataset : Dataset
        The dataset ``sets`` was generated from.
    settings : sequence of str
        Settings on cell-crop backgrounds to measure (``same``, ``diff``).
    channel : str
        One of :data:`~bgrobust.vocabulary.CHANNELS`.
    max_crops : int, optional
        Measure at most the first ``max_crops`` crops of each set.

    Returns
    -------
    DataFrame
        One row per set: ``setting``, ``centre_class``, ``background_class``, ``swap``,
        ``donors``, ``n``, ``seam``, ``seam_source``, ``seam_ratio``, ``donor_visible``,
        ``donor_level`` (means over the set's crops; NaN where undefined).

    Examples
    --------
    >>> # paper = generate_settings(ds, 40, settings=("same",))
    >>> # clean = generate_settings(ds, 40, settings=("same",), swap="clean")
    >>> # pd.concat([compositing_artefacts(s, ds) for s in (paper, clean)])
    """
    if channel not in CHANNELS:
        raise ValueError(f"compositing_artefacts: channel must be one of {CHANNELS}, got {channel!r}")
    bad = [s for s in settings if s not in ("same", "diff")]
    if bad:
        raise ValueError(f"compositing_artefacts: settings must be among ('same', 'diff') (composites on cell "
                         f"crops), got {bad}")
    if max_crops is not None:
        max_crops = int(check_value(max_crops, Integer(1), "compositing_artefacts: max_crops"))
    ch = CHANNELS.index(channel)
    swap, donors = sets.meta.get("swap", "paper"), sets.meta.get("donors", "random")
    rows = []
    for (setting, centre, background), crops in sets.items():
        if setting not in settings or not len(crops):
            continue
        k = len(crops) if max_crops is None else min(max_crops, len(crops))
        t = crops.table.iloc[:k]
        images = np.asarray(crops.images[:k], np.float64)
        masks = np.asarray(crops.masks[:k], bool)
        source = np.asarray(dataset.crops.images[t["centre_index"].to_numpy()], np.float64)
        donor = np.asarray(dataset.crops.masks[t["background_index"].to_numpy()], bool)
        seam = seam_contrast(images, masks)[:, ch]
        seam_source = seam_contrast(source, masks)[:, ch]
        residue = donor_residue(images, masks, donor)
        level = residue.iloc[:, 2 + ch]  # the level_<channel> column
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: no seam / no residue
            rows.append({"setting": setting, "centre_class": centre, "background_class": background,
                         "swap": swap, "donors": donors, "n": k, "seam": float(np.nanmean(seam)),
                         "seam_source": float(np.nanmean(seam_source)),
                         "seam_ratio": float(np.nanmean(seam / seam_source)),
                         "donor_visible": float(np.nanmean(residue["visible_fraction"])),
                         "donor_level": float(np.nanmean(level))})
    return pd.DataFrame(rows, columns=["setting", "centre_class", "background_class", "swap", "donors", "n", "seam",
                                       "seam_source", "seam_ratio", "donor_visible", "donor_level"])


def pixel_values(dataset, crops: CropSet, *, channel: str = "gfp", max_pixels: int = 20000,
                 random_state: int = 0) -> pd.DataFrame:
    """Centre-cell and background pixel values of a generated set, before and after.

    Parameters
    ----------
    dataset : Dataset
        The source of the set (``centre_index`` and ``background_index`` point into it).
    crops : CropSet
        One set of :class:`SettingSets` (e.g. ``sets.swap[("actin", "ER")]``).
    channel : str
        One of :data:`~bgrobust.screen.CHANNELS`.
    max_pixels : int
        At most this many pixels per part (the same pixels for both stages).

    Returns
    -------
    DataFrame
        Columns ``part`` ("centre cell" or "background"), ``stage`` ("raw": the source
        crops, "generated": the set's values) and ``value``.
    """
    if channel not in CHANNELS:
        raise ValueError(f"pixel_values: channel must be one of {CHANNELS}, got {channel!r}")
    for col in ("centre_index", "background_index", "background_source"):
        if col not in crops.table.columns:
            raise ValueError(f"pixel_values: crops.table lacks {col!r}; pass a set of generate_settings")
    ch = CHANNELS.index(channel)
    t = crops.table
    masks = np.asarray(crops.masks, bool)
    raw_centre = np.asarray(dataset.crops.images[t["centre_index"].to_numpy()][:, ch], np.float64)
    source = dataset.cell_free if (t["background_source"] == "cell_free").any() else dataset.crops
    raw_bg = np.asarray(source.images[t["background_index"].to_numpy()][:, ch], np.float64)
    generated = np.asarray(crops.images[:, ch], np.float64)
    rng = np.random.default_rng(random_state)
    frames = []
    for part, where, raw in (("centre cell", masks, raw_centre), ("background", ~masks, raw_bg)):
        flat = np.flatnonzero(where)
        if len(flat) > max_pixels:
            flat = np.sort(rng.choice(flat, max_pixels, replace=False))
        for stage, values in (("raw", raw.ravel()[flat]), ("generated", generated.ravel()[flat])):
            frames.append(pd.DataFrame({"part": part, "stage": stage, "value": values}))
    return pd.concat(frames, ignore_index=True)


def standardisation_histograms(dataset, crops: CropSet, *, channel: str = "gfp", bins: int = 50,
                               max_pixels: int = 20000, random_state: int = 0) -> pd.DataFrame:
    """Histograms of :func:`pixel_values` (density), shared bins within each stage.

    Returns
    -------
    DataFrame
        Columns ``part``, ``stage``, ``left``, ``right``, ``density``; plot e.g. with
        ``ax.stairs(density, edges)`` per (stage, part).

    Examples
    --------
    >>> # h = standardisation_histograms(ds, sets.swap[("actin", "ER")])
    >>> # h.groupby(["stage", "part"]).density.sum()
    """
    values = pixel_values(dataset, crops, channel=channel, max_pixels=max_pixels, random_state=random_state)
    frames = []
    for stage, group in values.groupby("stage", sort=False):
        edges = np.histogram_bin_edges(group["value"], bins=bins)
        for part, sub in group.groupby("part", sort=False):
            density, _ = np.histogram(sub["value"], bins=edges, density=True)
            frames.append(pd.DataFrame({"part": part, "stage": stage, "left": edges[:-1],
                                        "right": edges[1:], "density": density}))
    return pd.concat(frames, ignore_index=True)


def example_per_setting(sets: SettingSets, centre_class: str, background_class: str,
                        index: int = 0) -> dict[str, CropSet]:
    """One crop of each setting for a centre class and a (different) background class (Fig. 1A).

    ``diff`` and ``batch`` of the same pair share their centre cells, so with the same
    ``index`` they show the same cell on two backgrounds; base, mask and same show
    crops of class ``centre_class`` (base and mask the same crop).

    Returns
    -------
    dict
        setting -> CropSet of one crop, in :data:`EXPERIMENTS` order; settings that were
        not generated or whose set is shorter than ``index + 1`` are left out.
    """
    check_classes([centre_class, background_class], where="example_per_setting")
    if centre_class == background_class:
        raise ValueError("example_per_setting: background_class must differ from centre_class "
                         "(the diff and batch settings)")
    out = {}
    for setting in EXPERIMENTS:
        key = (setting, centre_class, background_class if setting in ("diff", "batch") else centre_class)
        if key in sets:
            crop_set = sets[key]
            if len(crop_set) > index:
                out[setting] = crop_set.subset([index])
    return out


def read_example_pair(folder) -> tuple[np.ndarray, np.ndarray]:
    """The paper code's example ``(foreground, background)`` pair (64 x 64 uint16 GFP).

    Parameters
    ----------
    folder : path
        Folder holding ``foreground_example.tiff`` and ``background_example.tiff``
        (``generate_data_example/`` of the paper's repository).
    """
    import tifffile

    folder = Path(folder)
    paths = [folder / "foreground_example.tiff", folder / "background_example.tiff"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"read_example_pair: missing {missing} (the example pair of the "
                                f"paper's repository generate_data_example/)")
    return tifffile.imread(paths[0]), tifffile.imread(paths[1])
