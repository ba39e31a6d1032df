"""Readers for real data: images, the yeastgfp labels, screen manifests, PCI crops and crop folders.

Every reader checks its input at the boundary and raises :class:`DataError` (a
``ValueError``) with a message that names the file and the problem.
"""
from .crop_folder import CropFiles, attach_labels, read_crop_files, read_pci_files
from .images import DataError, read_image, read_stack
from .manifest import MANIFEST_COLUMNS, REQUIRED_COLUMNS, load_screen, read_manifest, write_manifest
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
    "CropFiles",
    "DataError",
    "HUH_LOCALIZATIONS",
    "MANIFEST_COLUMNS",
    "REQUIRED_COLUMNS",
    "attach_labels",
    "gene_to_orf",
    "huh_labels",
    "join_by_orf",
    "load_screen",
    "multi_localized",
    "read_huh_table",
    "read_crop_files",
    "read_image",
    "read_manifest",
    "read_pci_crops",
    "read_pci_files",
    "read_stack",
    "single_localized",
    "write_manifest",
]
