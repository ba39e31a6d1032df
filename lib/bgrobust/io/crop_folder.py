"""Folders of single-cell crops cut elsewhere, with their proteins and localization labels.

Two layouts are read into one :class:`CropFiles` (pixels, optional masks, one table row
per crop), which :func:`bgrobust.dataset.from_crops` turns into a ``Dataset``
(:func:`bgrobust.dataset.read_crop_folder` and :func:`bgrobust.dataset.from_pci_folder`
do both steps):

* the PCI layout (:func:`read_pci_files`, pixels by :func:`bgrobust.io.read_pci_crops`):
  ``images/<GENE>/<GENE>_<field>_rfp_<k>_{gfp,rfp}.tif``, GFP plus a whole-cell
  cytoplasmic RFP marker, so the channels are ``("gfp", "cytoplasm")``;
* a generic folder (:func:`read_crop_files`) with a CSV, one row per crop:

  ==============  ==================================================================
  column          meaning
  ==============  ==================================================================
  ``crop``        the crop's id (unique)
  ``protein``     the protein's gene name or ORF
  ``orf``         optional: the ORF (labels are joined by ORF)
  ``label``       optional: the localization class (a name of ``vocabulary.CLASSES``)
  ``mask``        optional: a file holding the centre cell's mask (non-zero = cell)
  ``file``        one multi-channel image per crop (planes in ``channels`` order) ...
  ``<channel>``   ... or one file per channel, e.g. ``gfp`` and ``cytoplasm``
  ``field``       optional: the source image field (crops of one field share it)
  ==============  ==================================================================

  File paths are relative to the CSV's folder.

Labels come from the ``label`` column, from an explicit ``labels`` mapping, or from the
Huh et al. (2003) yeastgfp table joined by ORF (:func:`attach_labels`).

Examples
--------
>>> import tempfile, pathlib, numpy as np, tifffile, pandas as pd
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> for i in range(2):
...     tifffile.imwrite(folder / f"c{i}.tif", np.ones((2, 16, 16), np.uint16), compression="lzw")
>>> pd.DataFrame({"crop": ["a", "b"], "protein": ["P1", "P2"], "label": ["actin", "ER"],
...               "file": ["c0.tif", "c1.tif"]}).to_csv(folder / "crops.csv", index=False)
>>> files = read_crop_files(folder)
>>> files.images.shape, files.channels, files.table["localization"].tolist()
((2, 2, 16, 16), ('gfp', 'cytoplasm'), ['actin', 'ER'])
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..vocabulary import CHANNELS, CLASSES
from .images import DataError, read_image, read_stack, read_text_table
from .pci import read_pci_crops

#: How a protein with several of the classes is labelled: ``"unlabelled"`` (the paper:
#: single-localized proteins only) or ``"first"`` (its first class in ``CLASSES`` order,
#: e.g. cytoplasm for a cytoplasm+nucleus protein; the full set stays in ``localizations``).
MULTI_RULES: tuple[str, ...] = ("unlabelled", "first")
#: The PCI crops' planes (``io.pci.PCI_CHANNELS`` = gfp, rfp) by vocabulary name: the RFP is
#: a whole-cell cytoplasmic marker.
PCI_CROP_CHANNELS: tuple[str, str] = tuple(c for c in CHANNELS if c != "nucleus")
CROP_TABLE = "crops.csv"


@dataclass
class CropFiles:
    """Crops read from disk, before they become a ``Dataset``.

    ``images`` ``(N, C, H, W)`` in ``channels`` order; ``masks`` ``(N, H, W)`` bool or
    ``None``; ``table`` one row per crop with at least ``crop``, ``protein``, ``orf``,
    ``field``, ``kind`` and ``localization`` (``None`` when unlabelled); ``source``
    names the folder or CSV for messages.
    """

    images: np.ndarray
    masks: np.ndarray | None
    table: pd.DataFrame
    channels: tuple
    source: str

    def labelled(self) -> int:
        """The number of crops with a localization class."""
        return int(self.table["localization"].notna().sum())


def _orf_of_gene(genes: pd.Series, gene_table) -> pd.Series:
    from .pci import gene_to_orf

    lookup = gene_to_orf(gene_table)
    return genes.astype(str).str.strip().str.upper().map(lookup)


def attach_labels(table: pd.DataFrame, *, huh_table=None, gene_table=None, labels=None,
                  multi_localized: str = "unlabelled", min_proteins: int = 5,
                  source: str = "crops") -> pd.DataFrame:
    """Fill ``kind``, ``localization`` and ``localizations`` of a crop table.

    Parameters
    ----------
    table : DataFrame
        One row per crop with ``protein`` and optionally ``orf`` and ``label``.
    huh_table : path or DataFrame, optional
        The yeastgfp table (``allOrfData.txt`` or :func:`~bgrobust.io.read_huh_table`'s
        result); labels are joined by ORF (:func:`~bgrobust.io.join_by_orf`).
    gene_table : path, optional
        An SGD gene -> ORF table (``Sce.csv.xz``) for rows without an ``orf``: the
        ``protein`` is then taken as a gene name.  Without it ``protein`` must be an ORF.
    labels : mapping protein -> class, optional
        Explicit labels; they override the others.
    multi_localized : {"unlabelled", "first"}
        A protein with several classes in the yeastgfp table (see :data:`MULTI_RULES`).
    min_proteins : int
        The paper's rule on the yeastgfp table: classes with fewer single-localized
        proteins are dropped (:func:`~bgrobust.io.single_localized`).
    source : str
        Named in error messages.

    Raises
    ------
    DataError
        When a ``huh_table`` shares no ORF with the crops (naming the table), or a
        label is not a known class.

    Examples
    --------
    >>> t = pd.DataFrame({"protein": ["A", "B"], "label": ["actin", None]})
    >>> attach_labels(t)["kind"].tolist()
    ['single', 'unlabelled']
    """
    from .yeastgfp import huh_labels, join_by_orf, read_huh_table

    if multi_localized not in MULTI_RULES:
        raise ValueError(f"attach_labels: multi_localized must be one of {MULTI_RULES}, got {multi_localized!r}")
    out = table.copy()
    out["localization"] = out["label"].where(out["label"].notna(), None) if "label" in out.columns else None
    out["localization"] = out["localization"].astype(object)
    out["localizations"] = [(v,) if isinstance(v, str) else () for v in out["localization"]]
    if huh_table is not None:
        huh = huh_table if isinstance(huh_table, pd.DataFrame) else read_huh_table(huh_table)
        name = str(huh.attrs.get("source", "yeastgfp table"))
        if "orf" not in out.columns or out["orf"].isna().all():
            out["orf"] = _orf_of_gene(out["protein"], gene_table) if gene_table is not None else out["protein"]
        elif gene_table is not None:
            out["orf"] = out["orf"].where(out["orf"].notna(), _orf_of_gene(out["protein"], gene_table))
        keyed = out.assign(orf=out["orf"].fillna(""))
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the overlap is checked (and reported) here
            joined = join_by_orf(keyed, huh_labels(huh, min_proteins=min_proteins))
        if joined.attrs["join"]["matched"] == 0:
            raise DataError(f"label table {name}: no ORF in common with the {len(out)} crop(s) of {source} "
                            f"(crop ORFs e.g. {', '.join(map(str, out['orf'].dropna().unique()[:3]))}); "
                            "are the proteins gene names? pass gene_table= or an orf column")
        for i, (kind, loc, locs) in enumerate(zip(joined["kind"], joined["localization"],
                                                  joined["localizations"])):
            if isinstance(out["localization"].iat[i], str):
                continue  # a label given in the crop table wins
            if kind == "single":
                out.iat[i, out.columns.get_loc("localization")] = loc
            elif kind == "multi" and multi_localized == "first" and locs:
                first = next(c for c in CLASSES if c in locs)
                out.iat[i, out.columns.get_loc("localization")] = first
            out.iat[i, out.columns.get_loc("localizations")] = tuple(locs)
    if labels is not None:
        mapped = out["protein"].map(dict(labels))
        out["localization"] = mapped.where(mapped.notna(), out["localization"]).astype(object)
        out["localizations"] = [(v,) if isinstance(v, str) and p in labels else old
                                for v, p, old in zip(out["localization"], out["protein"], out["localizations"])]
    bad = sorted({str(v) for v in out["localization"] if isinstance(v, str)} - set(CLASSES))
    if bad:
        raise DataError(f"{source}: unknown localization class(es) {bad}; expected names from "
                        f"{', '.join(CLASSES)}")
    out["localization"] = [v if isinstance(v, str) else None for v in out["localization"]]
    out["kind"] = ["single" if isinstance(v, str) else "unlabelled" for v in out["localization"]]
    return out


def _require_labelled(files: CropFiles) -> CropFiles:
    if files.labelled() == 0:
        raise DataError(f"{files.source}: none of the {files.table['protein'].nunique()} protein(s) "
                        f"({', '.join(map(str, files.table['protein'].unique()[:5]))}) has a localization label; "
                        "give a label column, labels=, or a yeastgfp table (huh_table=) whose ORFs match")
    return files


def read_pci_files(folder, *, huh_table=None, gene_table=None, labels=None,
                   multi_localized: str = "unlabelled", min_proteins: int = 5,
                   require_labels: bool = True) -> CropFiles:
    """The crops of a PCI crop folder with their labels.

    Parameters
    ----------
    folder : path
        The folder holding ``images/<GENE>/`` (see :func:`bgrobust.io.read_pci_crops`).
    huh_table, gene_table, labels, multi_localized, min_proteins
        As in :func:`attach_labels`; the folder names are gene names, so a ``huh_table``
        needs a ``gene_table`` (``Sce.csv.xz``) to find their ORFs.
    require_labels : bool
        Raise :class:`DataError` when no crop has a label.

    Returns
    -------
    CropFiles
        Channels ``("gfp", "cytoplasm")`` (the RFP is a whole-cell cytoplasmic
        marker), no masks; ``field`` is ``<GENE>_<field>`` (the source image).

    Examples
    --------
    >>> # SHARED_DATA: the folder of the real third-party data (``../shared/data`` beside the checkout)
    >>> f = read_pci_files(SHARED_DATA / "pci-toy-subset", labels={"AAC1": "mitochondrion"})
    >>> f.images.shape
    (300, 2, 64, 64)
    """
    images, pci = read_pci_crops(folder)
    table = pd.DataFrame({
        "crop": [f"{g}_{f}_rfp_{c}" for g, f, c in zip(pci["gene"], pci["field"], pci["cell"])],
        "protein": pci["gene"].astype(str),
        "field": [f"{g}_{f}" for g, f in zip(pci["gene"], pci["field"])],
        "gfp_path": pci["gfp_path"], "rfp_path": pci["rfp_path"],
    })
    table = attach_labels(table, huh_table=huh_table, gene_table=gene_table, labels=labels,
                          multi_localized=multi_localized, min_proteins=min_proteins,
                          source=f"PCI crop folder {folder}")
    files = CropFiles(images, None, table, PCI_CROP_CHANNELS, f"PCI crop folder {folder}")
    return _require_labelled(files) if require_labels else files


def _read_table(path: Path) -> pd.DataFrame:
    table = read_text_table(path, "crop table")
    for column in ("crop", "protein"):
        if column not in table.columns:
            raise DataError(f"crop table {path}: missing column {column!r} (columns: {list(table.columns)})")
    if table.empty:
        raise DataError(f"crop table {path}: no rows")
    table = table.apply(lambda s: s.str.strip())
    table = table.replace("", None)
    for column in ("crop", "protein"):
        empty = table.index[table[column].isna()]
        if len(empty):
            raise DataError(f"crop table {path}: empty {column!r} on line(s) {', '.join(str(i + 2) for i in empty[:5])}")
    duplicated = table.loc[table["crop"].duplicated(), "crop"].unique()
    if len(duplicated):
        raise DataError(f"crop table {path}: crop id(s) listed more than once: {', '.join(duplicated[:5])}")
    return table


def read_crop_files(folder, table: str = CROP_TABLE, *, channels=PCI_CROP_CHANNELS, huh_table=None,
                    gene_table=None, labels=None, multi_localized: str = "unlabelled", min_proteins: int = 5,
                    require_labels: bool = True, progress: bool = True) -> CropFiles:
    """The crops listed by a generic crop table (see the module's column list).

    Parameters
    ----------
    folder : path
        The folder of the CSV (file paths in it are relative to this folder), or the CSV
        itself.
    table : str
        The CSV's name inside ``folder``.
    channels : sequence of str
        The channel names of each crop, names of :data:`bgrobust.vocabulary.CHANNELS`
        (default GFP + a whole-cell cytoplasmic marker).  With a ``file`` column a file's
        planes are in this order; otherwise the CSV needs one column per channel.
    huh_table, gene_table, labels, multi_localized, min_proteins
        As in :func:`attach_labels` (a ``label`` column wins over them).
    require_labels : bool
        Raise :class:`DataError` when no crop has a label.
    progress : bool
        Show a progress bar while reading.

    Raises
    ------
    DataError
        Naming the file: the CSV missing or lacking a column; a channel file missing or
        unreadable; a crop with the wrong number of planes or a shape different from the
        first crop's; a mask of the wrong shape; no labelled protein; a label table with
        no ORF in common with the crops.
    """
    folder = Path(folder)
    csv = folder if folder.is_file() else folder / table
    base = csv.parent
    channels = tuple(channels)
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown or not channels:
        raise ValueError(f"read_crop_files: channels must be names from {CHANNELS}, got {channels}")
    rows = _read_table(csv)
    per_channel = all(c in rows.columns for c in channels)
    if "file" not in rows.columns and not per_channel:
        missing = [c for c in channels if c not in rows.columns]
        raise DataError(f"crop table {csv}: needs a 'file' column (one multi-channel image per crop) or one "
                        f"column per channel {list(channels)}; missing {missing}")
    shape = None
    images, masks = [], []
    has_masks = "mask" in rows.columns and rows["mask"].notna().any()
    order = rows.itertuples(index=False)
    if progress:
        order = tqdm(order, total=len(rows), desc=f"reading {csv.name}", unit="crop")
    for row in order:
        row = row._asdict()
        if "file" in rows.columns and row.get("file"):
            path = base / row["file"]
            stack = read_stack(path, what=f"crop {row['crop']!r} ({csv.name})")
            if stack.shape[0] != len(channels):
                raise DataError(f"crop {row['crop']!r} ({csv.name}) {path}: {stack.shape[0]} plane(s), expected "
                                f"{len(channels)} for channels {list(channels)}")
        else:
            planes = []
            for c in channels:
                if not row.get(c):
                    raise DataError(f"crop table {csv}: crop {row['crop']!r} has no {c!r} file")
                planes.append(read_image(base / row[c], what=f"{c} image of crop {row['crop']!r} ({csv.name})"))
            plane_shapes = {p.shape for p in planes}
            if len(plane_shapes) > 1:
                raise DataError(f"crop table {csv}: the channel files of crop {row['crop']!r} differ in shape "
                                f"{sorted(plane_shapes)}")
            stack = np.stack(planes)
            path = base / row[channels[0]]
        if shape is None:
            shape = stack.shape[1:]
        elif stack.shape[1:] != shape:
            raise DataError(f"crop {row['crop']!r} ({csv.name}) {path}: shape {stack.shape[1:]}, expected {shape} "
                            "like the first crop")
        images.append(stack)
        if has_masks:
            if not row.get("mask"):
                raise DataError(f"crop table {csv}: crop {row['crop']!r} has no mask file while others have one")
            mask = read_image(base / row["mask"], expect_shape=shape, what=f"mask of crop {row['crop']!r}")
            masks.append(mask != 0)
    dtype = np.result_type(*{im.dtype for im in images})
    out = rows[["crop", "protein"] + [c for c in ("orf", "label", "field") if c in rows.columns]].copy()
    out = attach_labels(out, huh_table=huh_table, gene_table=gene_table, labels=labels,
                        multi_localized=multi_localized, min_proteins=min_proteins, source=f"crop table {csv}")
    if "field" not in out.columns:
        out["field"] = out["crop"]
    files = CropFiles(np.stack(images).astype(dtype, copy=False), np.stack(masks) if has_masks else None,
                      out.reset_index(drop=True), channels, f"crop table {csv}")
    return _require_labelled(files) if require_labels else files
