"""A screen: strains on plates, fields of view with three channels, and (when known) the truth.

Both the synthetic screen (:mod:`bgrobust.synth`) and a real screen read from a
manifest (:mod:`bgrobust.io.manifest`) are :class:`Screen` objects, so every later
step (segmentation, crops, models, experiments) works on either.

Tables
------
``strains``
    one row per strain: ``strain`` (str id), ``orf``, ``gene``, ``plate`` (int),
    ``well`` (e.g. ``"B07"``), ``kind`` (``"single"``, ``"multi"`` or ``"unlabelled"``),
    ``localization`` (the class of a single-localized protein, else ``None``) and,
    when the truth is known, one proportion column per class (``p:<class>``).
``fields``
    one row per field of view, in image order: ``field`` (0..F-1), ``strain``,
    ``plate``, ``well``, ``site``.
``cells`` (synthetic screens only: the truth)
    one row per cell: ``field``, ``label`` (its value in the truth label image),
    ``y``, ``x`` (centroid, px), ``localization``, ``budded``, ``area``.

Images are ``(3, H, W)`` arrays in the channel order :data:`bgrobust.vocabulary.CHANNELS`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .cache import atomic_dir, verify_if_sealed
from .vocabulary import CLASSES

PROPORTION_COLUMNS: tuple[str, ...] = tuple(f"p:{c}" for c in CLASSES)


@dataclass
class Screen:
    """Strains, fields and images of one screen (synthetic or real).

    Parameters
    ----------
    strains, fields : pandas.DataFrame
        The tables described in the module docstring.
    images : sequence of arrays
        ``images[i]`` is the ``(3, H, W)`` image of field ``i`` (a zarr array, a numpy
        array or a lazy reader with ``__getitem__`` and ``__len__``).
    cells : pandas.DataFrame, optional
        The per-cell truth (synthetic screens).
    labels : sequence of arrays, optional
        ``labels[i]`` is the ``(H, W)`` truth instance-label image of field ``i``.
    meta : dict
        Free-form provenance (generator parameters, source folder, ...).
    """

    strains: pd.DataFrame
    fields: pd.DataFrame
    images: Any
    cells: pd.DataFrame | None = None
    labels: Any = None
    meta: dict = field(default_factory=dict)

    @property
    def n_fields(self) -> int:
        return len(self.fields)

    @property
    def has_truth(self) -> bool:
        return self.cells is not None and self.labels is not None

    def image(self, i: int) -> np.ndarray:
        """The ``(3, H, W)`` image of field ``i`` as a numpy array."""
        return np.asarray(self.images[int(i)])

    def label_image(self, i: int) -> np.ndarray:
        """The truth instance labels of field ``i`` (synthetic screens only)."""
        if self.labels is None:
            raise ValueError("this screen has no truth labels (real screens never do)")
        return np.asarray(self.labels[int(i)])

    def describe_field(self, i: int) -> str:
        """What field ``i`` is, for messages: where its images come from, when known."""
        describe = getattr(self.images, "describe", None)
        if callable(describe):
            return describe(i)
        row = self.fields.iloc[int(i)]
        return f"field {int(i)} (strain {row['strain']!r}) of the {self.meta.get('source', 'screen')} screen"

    def strain_of_field(self, i: int) -> pd.Series:
        sid = self.fields.iloc[int(i)]["strain"]
        return self.strains.set_index("strain").loc[sid]

    # ------------------------------------------------------------------ storage
    def save(self, path) -> Path:
        """Write the screen to ``path`` (a folder; zarr images, parquet tables), atomically.

        Fields are written one at a time (one zarr chunk per field), so a lazily read screen
        is never held whole. The folder is a sealed cache entry
        (:func:`bgrobust.cache.atomic_dir`): its manifest lists every zarr chunk, so a
        missing chunk is found on load instead of read as zeros.
        """
        fields = ((self.image(i), self.label_image(i) if self.labels is not None else None)
                  for i in range(self.n_fields))
        return write_screen(path, fields, self.n_fields, strains=self.strains, fields=self.fields,
                            cells=lambda: self.cells, meta=self.meta)

    @classmethod
    def load(cls, path) -> "Screen":
        """Read a screen written by :meth:`save` (images stay on disk, read lazily).

        A sealed folder is first checked against its manifest.

        Raises
        ------
        FileNotFoundError
            When ``path`` holds no saved screen.
        bgrobust.cache.DamagedEntry
            When a file (e.g. a zarr chunk) is missing, truncated or altered; the message
            names the folder.
        """
        import zarr

        path = Path(path)
        if not (path / "images.zarr").exists():
            raise FileNotFoundError(f"{path}: not a saved screen (no images.zarr inside)")
        verify_if_sealed(path)
        images = zarr.open_array(str(path / "images.zarr"), mode="r")
        labels = (
            zarr.open_array(str(path / "labels.zarr"), mode="r")
            if (path / "labels.zarr").exists() else None
        )
        cells = pd.read_parquet(path / "cells.parquet") if (path / "cells.parquet").exists() else None
        meta = json.loads((path / "meta.json").read_text()) if (path / "meta.json").exists() else {}
        return cls(
            strains=pd.read_parquet(path / "strains.parquet"),
            fields=pd.read_parquet(path / "fields.parquet"),
            images=images, cells=cells, labels=labels, meta=meta,
        )


def write_screen(path, images, n_fields: int, *, strains: pd.DataFrame, fields: pd.DataFrame, cells=None,
                 meta: dict | None = None) -> Path:
    """Write a screen folder (what :meth:`Screen.save` writes) from fields that arrive one at a time.

    Parameters
    ----------
    path : path-like
        The folder, written atomically and sealed.
    images : iterable of (image, labels)
        Field ``i``'s ``(C, H, W)`` image and its ``(H, W)`` truth labels (or None), in order;
        each is written as it arrives, so at most one field is held here.
    n_fields : int
        How many fields ``images`` yields.
    strains, fields : pandas.DataFrame
    cells : DataFrame or callable, optional
        The per-cell truth, or a callable returning it once every field has arrived (a
        generator that renders fields can collect their cells as it goes).
    meta : dict, optional
    """
    import zarr

    path = Path(path)
    with atomic_dir(path, seal=True) as tmp:
        z = zl = None
        count = 0
        for i, (image, label) in enumerate(images):
            image = np.asarray(image)
            if z is None:
                z = zarr.create_array(store=str(tmp / "images.zarr"), shape=(n_fields, *image.shape),
                                      dtype=image.dtype, chunks=(1, *image.shape))
                if label is not None:
                    label = np.asarray(label)
                    zl = zarr.create_array(store=str(tmp / "labels.zarr"), shape=(n_fields, *label.shape),
                                           dtype=label.dtype, chunks=(1, *label.shape))
            z[i] = image
            if zl is not None:
                zl[i] = label
            count += 1
        if count != n_fields:
            raise ValueError(f"write_screen: {path}: {count} field(s) arrived, {n_fields} expected")
        cells = cells() if callable(cells) else cells
        strains.to_parquet(tmp / "strains.parquet", index=False)
        fields.to_parquet(tmp / "fields.parquet", index=False)
        if cells is not None:
            cells.to_parquet(tmp / "cells.parquet", index=False)
        (tmp / "meta.json").write_text(json.dumps(meta or {}, indent=2, default=str))
    return path


class LazyImages:
    """A read-on-demand sequence of field images (for real screens on disk).

    Parameters
    ----------
    n : int
        Number of fields.
    reader : callable
        ``reader(i)`` returns the ``(3, H, W)`` image of field ``i``.
    names : sequence of str, optional
        A description of each field for messages (:meth:`describe`).
    """

    def __init__(self, n: int, reader: Callable[[int], np.ndarray], names: Sequence[str] | None = None):
        self._n = int(n)
        self._reader = reader
        self._names = list(names) if names is not None else None

    def __len__(self) -> int:
        return self._n

    def describe(self, i: int) -> str:
        """What field ``i`` is, for messages (e.g. its strain, site and manifest)."""
        return self._names[int(i)] if self._names is not None else f"field {int(i)}"

    def __getitem__(self, i: int) -> np.ndarray:
        i = int(i)
        if not 0 <= i < self._n:
            raise IndexError(f"field {i} out of range (0..{self._n - 1})")
        return self._reader(i)


def single_localized(strains: pd.DataFrame, classes: Sequence[str] = CLASSES) -> pd.DataFrame:
    """The single-localized strains whose class is in ``classes``."""
    keep = (strains["kind"] == "single") & strains["localization"].isin(list(classes))
    return strains[keep]


def plate_distribution(strains: pd.DataFrame, classes: Sequence[str] = CLASSES) -> pd.DataFrame:
    """Share of each class's single-localized proteins on each plate (rows sum to 1).

    This is the paper's Supp. Fig. 3: a skewed row means the class was imaged mostly
    under one plate's conditions.

    Examples
    --------
    >>> s = pd.DataFrame({"kind": ["single"] * 3, "localization": ["ER", "ER", "actin"],
    ...                   "plate": [1, 2, 2]})
    >>> plate_distribution(s, classes=["actin", "ER"]).loc["ER"].tolist()
    [0.5, 0.5]
    """
    single = single_localized(strains, classes)
    counts = pd.crosstab(single["localization"], single["plate"])
    counts = counts.reindex(index=[c for c in classes if c in counts.index])
    return counts.div(counts.sum(axis=1), axis=0)


def neighbour_mismatch(screen, table: pd.DataFrame, half_window: int = 32) -> np.ndarray:
    """Per crop: the fraction of the other true cells in its window whose class differs.

    Uses the synthetic screen's truth (``screen.cells``: field, label, y, x,
    localization). A neighbour is a true cell whose centre lies within the crop window
    (``|dy|, |dx| < half_window``). NaN for crops without a matched true cell or without
    neighbours.

    Parameters
    ----------
    screen : bgrobust.screen.Screen
        A screen with truth.
    table : DataFrame
        Crop table with ``field``, ``y``, ``x``, ``truth_label`` and ``true_localization``.
    """
    if not screen.has_truth:
        raise ValueError("neighbour_mismatch needs a screen with truth (a synthetic screen)")
    for col in ("field", "y", "x", "truth_label", "true_localization"):
        if col not in table.columns:
            raise ValueError(f"neighbour_mismatch: crop table lacks column {col!r}")
    out = np.full(len(table), np.nan)
    cells = screen.cells.groupby("field")
    positions = table.reset_index(drop=True).groupby("field").indices
    for field_id, rows in positions.items():
        if field_id not in cells.groups:
            continue
        c = cells.get_group(field_id)
        cy, cx = c["y"].to_numpy(float), c["x"].to_numpy(float)
        clab, cloc = c["label"].to_numpy(), c["localization"].to_numpy()
        for i in rows:
            r = table.iloc[i]
            if pd.isna(r.true_localization):
                continue
            near = (np.abs(cy - r.y) < half_window) & (np.abs(cx - r.x) < half_window) & (clab != r.truth_label)
            if near.any():
                out[i] = float(np.mean(cloc[near] != r.true_localization))
    return out
