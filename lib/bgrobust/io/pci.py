"""Single-cell crops in the layout of Paired Cell Inpainting (Lu et al. 2019).

Each protein has a folder ``images/<GENE>/`` of 64x64 float32 TIFF pairs
``<GENE>_<field>_rfp_<cell>_gfp.tif`` (the tagged protein) and ``..._rfp.tif`` (a
whole-cell cytoplasmic marker), scaled to [0, 1] per image.  Neighbouring cells are
visible in the crops (they are not masked).

Examples
--------
>>> # SHARED_DATA: the folder of the real third-party data (``../shared/data`` beside the checkout)
>>> folder = SHARED_DATA / "pci-toy-subset"
>>> if folder.exists():                                  # doctest: +SKIP
...     crops, table = read_pci_crops(folder)
...     crops.shape
(300, 2, 64, 64)
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .images import DataError, read_image, read_text_table

#: Channel order of the crops returned by :func:`read_pci_crops`.
PCI_CHANNELS: tuple[str, str] = ("gfp", "rfp")
PCI_SHAPE: tuple[int, int] = (64, 64)
_NAME = re.compile(r"^(?P<gene>.+)_(?P<field>\d+)_rfp_(?P<cell>\d+)_(?P<channel>gfp|rfp)\.tif$")


def _crop_files(images: Path) -> pd.DataFrame:
    """One row per crop file under ``images/<GENE>/`` whose name follows the PCI pattern."""
    rows = []
    for gene_dir in sorted(p for p in images.iterdir() if p.is_dir()):
        for file in sorted(gene_dir.glob("*.tif")):
            match = _NAME.match(file.name)
            if match is None:
                continue
            if match["gene"] != gene_dir.name:
                raise DataError(f"PCI crop {file}: named for gene {match['gene']!r} but in folder {gene_dir.name!r}")
            rows.append({"gene": match["gene"], "field": int(match["field"]), "cell": int(match["cell"]),
                         "channel": match["channel"], "path": str(file)})
    return pd.DataFrame(rows, columns=["gene", "field", "cell", "channel", "path"])


def read_pci_crops(folder, *, shape=PCI_SHAPE, value_range=(0.0, 1.0)) -> tuple[np.ndarray, pd.DataFrame]:
    """Read every GFP/RFP crop pair of a PCI crop folder.

    Parameters
    ----------
    folder : str or path-like
        The folder holding ``images/`` (or the ``images`` folder itself).
    shape : tuple of int
        The required crop shape.
    value_range : tuple of float or None
        Pixels outside ``[low, high]`` raise :class:`DataError`; ``None`` skips the check.

    Returns
    -------
    crops : (N, 2, H, W) float32 ndarray
        Channel 0 is GFP (the protein), channel 1 RFP (the cytoplasmic marker).
    table : pandas.DataFrame
        One row per crop, sorted by gene, field and cell: ``gene``, ``field``, ``cell``,
        ``gfp_path``, ``rfp_path``.

    Raises
    ------
    DataError
        If the folder is missing or holds no crops, a GFP file lacks its RFP partner
        (or the reverse), or a crop is unreadable, of the wrong shape, or has NaN,
        infinite or out-of-range pixels.
    """
    folder = Path(folder)
    images = folder / "images" if (folder / "images").is_dir() else folder
    if not images.is_dir():
        raise DataError(f"PCI crop folder {folder}: not found")
    files = _crop_files(images)
    if files.empty:
        raise DataError(
            f"PCI crop folder {images}: no crops found "
            "(expected <GENE>/<GENE>_<field>_rfp_<cell>_gfp.tif and _rfp.tif)"
        )
    pairs = files.pivot(index=["gene", "field", "cell"], columns="channel", values="path")
    pairs = pairs.reindex(columns=list(PCI_CHANNELS)).sort_index()
    for channel, partner in (PCI_CHANNELS, PCI_CHANNELS[::-1]):
        lonely = pairs.loc[pairs[partner].isna(), channel].tolist()
        if lonely:
            more = f" ... ({len(lonely)} in all)" if len(lonely) > 3 else ""
            raise DataError(
                f"PCI crop folder {images}: {channel} file(s) without their {partner} partner: "
                f"{', '.join(lonely[:3])}{more}"
            )
    table = pairs.reset_index().rename(columns={"gfp": "gfp_path", "rfp": "rfp_path"})
    table.columns.name = None
    crops = np.empty((len(table), len(PCI_CHANNELS), *shape), np.float32)
    for i, row in table.iterrows():
        for c, channel in enumerate(PCI_CHANNELS):
            path = row[f"{channel}_path"]
            crop = read_image(path, expect_shape=shape, what=f"PCI {channel} crop")
            if value_range is not None and (crop.min() < value_range[0] or crop.max() > value_range[1]):
                raise DataError(
                    f"PCI {channel} crop {path}: values {crop.min()}..{crop.max()} "
                    f"outside {value_range[0]}..{value_range[1]}"
                )
            crops[i, c] = crop
    return crops, table


def gene_to_orf(sce_csv_path) -> dict[str, str]:
    """Gene name -> ORF from an SGD-style table with ``ORF`` and ``GENE`` columns.

    Made for ``Sce.csv.xz`` (CHNOSZ; compressed files are read directly).  Genes are
    upper-cased; rows without a gene name are skipped.

    Raises
    ------
    DataError
        If the file is missing or unreadable, lacks a column or maps a gene to two ORFs.

    Examples
    --------
    >>> # SHARED_DATA: the folder of the real third-party data (``../shared/data`` beside the checkout)
    >>> path = SHARED_DATA / "yeastgfp" / "Sce.csv.xz"
    >>> if path.exists():                                # doctest: +SKIP
    ...     gene_to_orf(path)["AAC1"]
    'YMR056C'
    """
    path = Path(sce_csv_path)
    table = read_text_table(path, "gene table")
    missing = [c for c in ("ORF", "GENE") if c not in table.columns]
    if missing:
        raise DataError(f"gene table {path}: missing column(s) {missing}")
    genes = table["GENE"].str.strip().str.upper()
    orfs = table["ORF"].str.strip().str.upper()
    keep = genes != ""
    genes, orfs = genes[keep], orfs[keep]
    clash = genes[genes.duplicated()].unique().tolist()
    if clash:
        raise DataError(f"gene table {path}: gene(s) listed more than once: {', '.join(clash[:5])}")
    return dict(zip(genes, orfs))
