"""A real screen on disk: one manifest row per field of view, one image file per channel.

Layout
------
A manifest is a CSV (``.csv``) or parquet (``.parquet``) table with one row per field
of view and the columns

=============  ==============================================================
``strain``     strain id (any string; one strain = one tagged protein)
``orf``        systematic ORF name of the tagged protein (e.g. ``YMR056C``)
``plate``      plate number (integer)
``well``       well name: a row letter A-P and a column 1-24 (``B7`` and ``b07``
               are read as ``B07``)
``field``      field of view within the strain (integer; unique per strain)
``gfp``        the GFP (protein) image of the field
``nucleus``    optional: the nuclear marker image
``cytoplasm``  optional: the cytoplasmic marker image
``gene``       optional: the gene name
=============  ==============================================================

A manifest may omit either marker column (or both): the screen's images then hold only
the channels present, in :data:`bgrobust.vocabulary.CHANNELS` order, and
``screen.meta["channels"]`` names them (no plane is invented).  Without a nuclear
marker the cells are seeded from the cytoplasm's distance map; without either marker
:func:`bgrobust.dataset.build_dataset` segments from the GFP alone
(:func:`bgrobust.segment.segment_gfp`).

Image paths are relative to the manifest's folder (absolute paths also work); each
file holds one 2-D plane (TIFF or ``.npy``, see :func:`bgrobust.io.read_image`).
:func:`load_screen` turns a manifest into a :class:`bgrobust.screen.Screen`;
:func:`write_manifest` writes any screen in this layout.

Examples
--------
>>> import tempfile, pathlib, numpy as np, pandas as pd
>>> from bgrobust.screen import Screen
>>> strains = pd.DataFrame({"strain": ["s0"], "orf": ["YAL001C"], "gene": ["TFC3"],
...                         "plate": [1], "well": ["A01"], "kind": ["unlabelled"],
...                         "localization": [None]})
>>> fields = pd.DataFrame({"field": [0], "strain": ["s0"], "plate": [1], "well": ["A01"],
...                        "site": [0]})
>>> screen = Screen(strains, fields, np.ones((1, 3, 8, 8), np.uint16))
>>> path = write_manifest(screen, pathlib.Path(tempfile.mkdtemp()) / "screen")
>>> load_screen(path).image(0).shape
(3, 8, 8)
"""
from __future__ import annotations

import functools
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..cache import files_digest, tmp_sibling
from ..screen import LazyImages, Screen
from ..vocabulary import CHANNELS
from .images import DataError, read_image
from .yeastgfp import join_by_orf

#: Columns of a full manifest (the two marker channels are optional, see :data:`REQUIRED_COLUMNS`).
MANIFEST_COLUMNS: tuple[str, ...] = ("strain", "orf", "plate", "well", "field", *CHANNELS)
#: Columns every manifest must have.
REQUIRED_COLUMNS: tuple[str, ...] = ("strain", "orf", "plate", "well", "field", "gfp")
#: Channels a manifest may leave out.
OPTIONAL_CHANNELS: tuple[str, ...] = ("nucleus", "cytoplasm")


def manifest_channels(manifest: pd.DataFrame) -> tuple[str, ...]:
    """The channels a manifest table has, in :data:`~bgrobust.vocabulary.CHANNELS` order.

    >>> manifest_channels(pd.DataFrame(columns=["strain", "gfp", "cytoplasm"]))
    ('gfp', 'cytoplasm')
    """
    return tuple(c for c in CHANNELS if c in manifest.columns)
_WELL = re.compile(r"^([A-P])0?([1-9]|1[0-9]|2[0-4])$")
_SHOW = 5


def _line(i: int, suffix: str) -> str:
    """Where row ``i`` of a table is, for messages (CSV line numbers count the header)."""
    return f"line {i + 2}" if suffix == ".csv" else f"row {i + 1}"


def _listing(items: list[str]) -> str:
    more = f" ... ({len(items)} in all)" if len(items) > _SHOW else ""
    return "; ".join(items[:_SHOW]) + more


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise DataError(f"manifest {path}: unsupported file type {suffix!r} (use .csv or .parquet)")
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except Exception as exc:
        raise DataError(f"manifest {path}: cannot be read ({type(exc).__name__}: {exc})") from exc


def _integers(table: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(table[column].astype("string").str.strip(), errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        where = [f"{_line(i, path.suffix)}: {table[column].iloc[i]!r}" for i in np.flatnonzero(bad)]
        raise DataError(f"manifest {path}: column {column!r} must hold integers, got {_listing(where)}")
    return values.astype("int64")


def _wells(table: pd.DataFrame, path: Path) -> pd.Series:
    names = table["well"].astype("string").str.strip().str.upper()
    parsed = names.str.extract(_WELL)
    bad = parsed[0].isna().to_numpy()
    if bad.any():
        where = [f"{_line(i, path.suffix)}: {table['well'].iloc[i]!r}" for i in np.flatnonzero(bad)]
        raise DataError(
            f"manifest {path}: malformed well name(s) {_listing(where)}; "
            "expected a row letter A-P and a column 1-24, e.g. 'B07'"
        )
    return (parsed[0] + parsed[1].astype(int).map("{:02d}".format)).astype(str)


def read_manifest(path) -> pd.DataFrame:
    """Read and check a screen manifest (see the module docstring for the layout).

    Parameters
    ----------
    path : str or path-like
        The manifest (``.csv`` or ``.parquet``).

    Returns
    -------
    manifest : pandas.DataFrame
        The rows in file order: ``plate`` and ``field`` as integers, ``well`` as e.g.
        ``"B07"``, ``strain``/``orf``/``gene`` as stripped strings (``gene`` empty when
        absent) and the channel columns as absolute paths (strings).

    Raises
    ------
    DataError
        If the file is missing or unreadable, is empty, lacks a column, has an empty
        strain or ORF, a non-integer plate or field, a malformed well, a duplicate
        ``(strain, field)``, a strain with two ORFs, plates or wells, or image paths that
        point at nothing (the message lists the first few).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest {path}: file not found")
    table = _read_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if len(table.columns) and missing:
        raise DataError(
            f"manifest {path}: missing column(s) {missing}; a manifest needs {', '.join(REQUIRED_COLUMNS)} "
            f"(and optionally {', '.join(OPTIONAL_CHANNELS)})"
        )
    if table.empty:
        raise DataError(f"manifest {path}: no fields (the table is empty)")
    table = table.reset_index(drop=True)

    out = pd.DataFrame(index=table.index)
    for column in ("strain", "orf", "gene"):
        values = table[column] if column in table.columns else pd.Series("", index=table.index)
        out[column] = values.fillna("").astype(str).str.strip()
        if column != "gene" and (out[column] == "").any():
            rows = [_line(i, path.suffix) for i in np.flatnonzero(out[column] == "")]
            raise DataError(f"manifest {path}: empty {column!r} on {_listing(rows)}")
    out["plate"] = _integers(table, "plate", path)
    out["well"] = _wells(table, path)
    out["field"] = _integers(table, "field", path)

    duplicated = out.duplicated(["strain", "field"], keep=False)
    if duplicated.any():
        pairs = out.loc[duplicated, ["strain", "field"]].drop_duplicates()
        listed = [f"strain {s!r} field {f}" for s, f in pairs.itertuples(index=False)]
        raise DataError(f"manifest {path}: duplicate (strain, field): {_listing(listed)}")
    per_strain = out.groupby("strain", sort=False)[["orf", "plate", "well"]].nunique()
    clashing = per_strain.index[(per_strain > 1).any(axis=1)].tolist()
    if clashing:
        raise DataError(
            f"manifest {path}: strain(s) {_listing(clashing)} have rows with different orf, plate or well"
        )

    folder = path.parent
    channels = manifest_channels(table)
    names = table[list(channels)].fillna("").astype(str).apply(lambda c: c.str.strip())
    missing_files = [
        f"{_line(i, path.suffix)} {channel}: {name or '(empty)'}"
        for i, row in enumerate(names.itertuples(index=False))
        for channel, name in zip(channels, row)
        if not name or not (folder / name).is_file()
    ]
    if missing_files:
        raise DataError(
            f"manifest {path}: {len(missing_files)} image path(s) point at no file "
            f"(relative to {folder}): {_listing(missing_files)}"
        )
    for channel in channels:
        out[channel] = [str((folder / name).resolve()) for name in names[channel]]
    return out


def _read_field(paths: tuple[str, ...], what: str, channels: tuple[str, ...] = CHANNELS) -> np.ndarray:
    """Read the channel files of one field and stack them as ``(len(paths), H, W)``.

    A plane whose pixels are all 0 (an empty or failed acquisition) is an error naming
    its file.
    """
    planes = [read_image(p, what=f"{ch} image of {what}") for p, ch in zip(paths, channels)]
    for p, ch, plane in zip(paths, channels, planes):
        if plane.size and not plane.any():
            raise DataError(f"{ch} image of {what} {p}: every pixel is 0 (an empty or failed acquisition)")
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        listed = ", ".join(f"{ch} {plane.shape}" for ch, plane in zip(channels, planes))
        raise DataError(f"{what}: channel images differ in shape ({listed}); files: {', '.join(paths)}")
    dtypes = {p.dtype for p in planes}
    dtype = dtypes.pop() if len(dtypes) == 1 and planes[0].dtype.kind in "ui" else np.float32
    return np.stack([p.astype(dtype, copy=False) for p in planes])


def load_screen(path, labels: pd.DataFrame | None = None) -> Screen:
    """Open a screen from its manifest; images are read lazily, one field at a time.

    Parameters
    ----------
    path : str or path-like
        The manifest (see the module docstring).
    labels : pandas.DataFrame, optional
        A label table (e.g. :func:`bgrobust.io.huh_labels` of the yeastgfp table),
        attached to the strains by ORF with :func:`bgrobust.io.join_by_orf`.  Without
        it every strain has kind ``"unlabelled"``.

    Returns
    -------
    screen : bgrobust.screen.Screen
        ``strains`` (one row per strain, in order of first appearance), ``fields`` (one
        row per manifest row, in file order; the manifest's ``field`` is ``site``) and
        ``images``, a :class:`bgrobust.screen.LazyImages`; ``meta["content"]`` is the digest
        of the manifest and image files (:func:`manifest_files`).  ``screen.image(i)`` reads
        the three files of field ``i`` with :func:`bgrobust.io.read_image`, checks that
        their shapes agree and stacks them in the order
        :data:`bgrobust.screen.CHANNELS`.  The stack keeps the files' integer dtype when
        all three share it; otherwise (floats, or mixed types) it is float32.

    Raises
    ------
    DataError
        From :func:`read_manifest` when the manifest is invalid; when ``labels`` match no
        ORF of the manifest; and when a field is read, if one of its files is unreadable,
        all zeros or the shapes differ.
    """
    path = Path(path)
    manifest = read_manifest(path)
    strains = (
        manifest.groupby("strain", sort=False)[["orf", "gene", "plate", "well"]].first().reset_index()
    )
    if labels is not None:
        strains = join_by_orf(strains, labels)
        if strains.attrs["join"]["matched"] == 0:
            source = labels.attrs.get("source", "the label table")
            raise DataError(
                f"labels {source}: no ORF of manifest {path} has a label, so every strain would be "
                f"unlabelled (ORFs in the manifest: {_listing(sorted(strains['orf'].astype(str).unique()))}); "
                "is it the label table of this screen?"
            )
    else:
        strains["kind"] = "unlabelled"
        strains["localization"] = None
    fields = pd.DataFrame({
        "field": np.arange(len(manifest)),
        "strain": manifest["strain"].to_numpy(),
        "plate": manifest["plate"].to_numpy(),
        "well": manifest["well"].to_numpy(),
        "site": manifest["field"].to_numpy(),
    })
    names = [f"field {i} (strain {row['strain']!r}, site {row['field']}) of manifest {path}"
             for i, row in manifest.iterrows()]
    channels = manifest_channels(manifest)
    readers = [functools.partial(_read_field, tuple(row[list(channels)]), name, channels)
               for (_, row), name in zip(manifest.iterrows(), names)]
    images = LazyImages(len(readers), lambda i: readers[i](), names=names)
    meta = {"source": "manifest", "manifest": str(path.resolve()),
            "content": files_digest(_files(path, manifest))}
    if channels != CHANNELS:
        meta["channels"] = list(channels)  # only when a marker is left out: full screens keep their key
    return Screen(strains=strains, fields=fields, images=images, meta=meta)


def manifest_files(path) -> list[Path]:
    """The manifest and every image file it names, in manifest order (checked by :func:`read_manifest`).

    Their contents make up a manifest screen's identity: ``load_screen(path).meta["content"]``
    is their digest (:func:`bgrobust.cache.files_digest`), part of the dataset's cache key, so
    an image rewritten under the same name gives a new key.
    """
    return _files(Path(path), read_manifest(path))


def _files(path: Path, manifest: pd.DataFrame) -> list[Path]:
    channels = list(manifest_channels(manifest))
    return [path, *(Path(p) for row in manifest[channels].itertuples(index=False) for p in row)]


#: The names :func:`write_manifest` gives the image files (relative to the folder).
_WRITTEN_IMAGE = re.compile(r"^images/field\d{5}_(%s)\.tif$" % "|".join(CHANNELS))


def write_manifest(screen: Screen, folder, *, overwrite: bool = False) -> Path:
    """Write ``screen`` as one TIFF per field and channel plus ``manifest.csv``.

    Images go to ``folder/images/field<i>_<channel>.tif`` in the screen's own dtype
    (floats come back as float32 from :func:`load_screen`).  Truth labels and cells, if
    any, are not written: a manifest describes what a microscope gives.  Everything is
    written into a temporary folder first, so a failure leaves ``folder`` as it was.

    Parameters
    ----------
    screen : bgrobust.screen.Screen
        Any screen (synthetic or real) with ``(3, H, W)`` field images.
    folder : str or path-like
        The output folder: new, or empty, unless ``overwrite``.
    overwrite : bool, default False
        Write into a folder that is not empty.  Only the files an earlier
        ``write_manifest`` wrote there are removed (its ``manifest.csv`` and the
        ``images/field<i>_<channel>.tif`` that manifest names); everything else (notes,
        raw data, other images) stays.

    Returns
    -------
    path : pathlib.Path
        ``folder/manifest.csv``.

    Raises
    ------
    FileExistsError
        If ``folder`` is not empty and ``overwrite`` is False, or if one of the new files
        would replace a file that ``write_manifest`` did not write.
    DataError
        If a field image is not ``(3, H, W)``.
    """
    import tifffile

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"write_manifest: {folder} is a file, not a folder")
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if present and not overwrite:
        raise FileExistsError(
            f"write_manifest: {folder} is not empty ({len(present)} entries: {_listing(present)}); "
            "choose a new folder, or pass overwrite=True to replace only the files an earlier "
            "write_manifest wrote there"
        )
    strains = screen.strains.set_index("strain")
    fields = screen.fields
    sites = (
        fields["site"] if "site" in fields.columns else fields.groupby("strain", sort=False).cumcount()
    )
    rows = []
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(folder)
    (tmp / "images").mkdir(parents=True)
    try:
        for i in range(screen.n_fields):
            image = screen.image(i)
            if image.ndim != 3 or image.shape[0] != len(CHANNELS):
                raise DataError(f"field {i}: image shape {image.shape}, expected ({len(CHANNELS)}, H, W)")
            strain = fields["strain"].iloc[i]
            info = strains.loc[strain]
            row = {
                "strain": strain, "orf": info["orf"],
                "gene": info["gene"] if "gene" in strains.columns else "",
                "plate": int(info["plate"]), "well": info["well"], "field": int(sites.iloc[i]),
            }
            for c, channel in enumerate(CHANNELS):
                name = f"images/field{i:05d}_{channel}.tif"
                tifffile.imwrite(tmp / name, np.ascontiguousarray(image[c]))
                row[channel] = name
            rows.append(row)
        columns = [*MANIFEST_COLUMNS[:5], "gene", *CHANNELS]
        pd.DataFrame(rows, columns=columns).to_csv(tmp / "manifest.csv", index=False)
        if present:
            _replace_written(folder, tmp, [r[c] for r in rows for c in CHANNELS])
        else:
            if folder.is_dir():
                folder.rmdir()  # empty
            os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / "manifest.csv"


def _written_before(folder: Path) -> list[str]:
    """The files an earlier :func:`write_manifest` wrote in ``folder`` (relative paths)."""
    old = folder / "manifest.csv"
    if not old.is_file():
        return []
    try:
        table = pd.read_csv(old, dtype=str, keep_default_na=False)
    except Exception:  # noqa: BLE001 - not ours if it cannot be read
        return []
    if not set(CHANNELS) <= set(table.columns):
        return []
    names = {n for c in CHANNELS for n in table[c] if _WRITTEN_IMAGE.match(n)}
    return ["manifest.csv", *sorted(n for n in names if (folder / n).is_file())]


def _replace_written(folder: Path, staged: Path, images: list[str]) -> None:
    """Move the staged files into ``folder``, removing only what write_manifest wrote there before."""
    ours = set(_written_before(folder))
    clash = [n for n in [*images, "manifest.csv"] if (folder / n).exists() and n not in ours]
    if clash:
        raise FileExistsError(
            f"write_manifest: {folder} holds {_listing(clash)}, which an earlier write_manifest did not "
            "write; it is left alone: choose a new folder"
        )
    for name in sorted(ours):
        (folder / name).unlink()
    (folder / "images").mkdir(exist_ok=True)
    for name in images:
        os.replace(staged / name, folder / name)
    os.replace(staged / "manifest.csv", folder / "manifest.csv")  # last: the manifest names only new files
