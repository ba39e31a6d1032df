"""Readers for real data: images, the yeastgfp labels, screen manifests and PCI crops.

Every reader checks its input at the boundary and raises :class:`DataError` (a
``ValueError``) with a message that names the file and the problem.
"""
from .images import DataError, read_image
from .manifest import MANIFEST_COLUMNS, load_screen, read_manifest, write_manifest
from .pci import gene_to_orf, read_pci_crops
from .yeastgfp import (
    HUH_LOCALIZATIONS,
    huh_labels,
    join_by_orf,
    multi_localized,
    read_huh_table,
    single_localized,
)

__all__ = [
    "DataError",
    "HUH_LOCALIZATIONS",
    "MANIFEST_COLUMNS",
    "gene_to_orf",
    "huh_labels",
    "join_by_orf",
    "load_screen",
    "multi_localized",
    "read_huh_table",
    "read_image",
    "read_manifest",
    "read_pci_crops",
    "single_localized",
    "write_manifest",
]
