"""The dataset every chapter uses: screen -> segmentation -> crops -> filters -> cell-free crops.

:func:`build_dataset` runs the paper's section 3.1 and appendix D.1 pipeline on any
:class:`~bgrobust.screen.Screen` (synthetic or real) and caches the result under a
key made of the screen, the parameters and the code.  On a synthetic screen it also
scores the segmentation against the truth and attaches each crop's true class.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields as dc_fields
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from .cache import atomic_dir, code_key, content_key, load_or_create, verify_if_sealed
from .constraints import Choice, Instance, Integer, ParameterError, Real, check_params
from .crops import CropSet, cell_free_crops, extract_crops, gfp_threshold, quality_flags, truth_for_segments
from .io.images import DataError
from .screen import Screen
from .segment import SegmentationParams, match_instances, segment_cells


@dataclass(frozen=True)
class DatasetParams:
    """Parameters of :func:`build_dataset` (the paper's values are the defaults)."""

    crop_size: int = 64
    edge: str = "drop"
    gfp_percentile: float = 5.0
    gfp_reference: str = "pixels"
    min_mask_fraction: float = 0.05
    max_mask_fraction: float = 0.95
    cellfree_stride: int = 32
    cellfree_min_distance: float = 50.0
    cellfree_border: int = 16
    cellfree_variance_factor: float = 2.0
    segmentation: SegmentationParams = field(default_factory=SegmentationParams)

    _parameter_constraints = {
        "crop_size": Integer(8),
        "edge": Choice(("drop", "pad")),
        "gfp_percentile": Real(0, 100),
        "gfp_reference": Choice(("pixels", "field_means")),
        "min_mask_fraction": Real(0, 1),
        "max_mask_fraction": Real(0, 1),
        "cellfree_stride": Integer(1),
        "cellfree_min_distance": Real(0),
        "cellfree_border": Integer(0),
        "cellfree_variance_factor": Real(0, lo_open=True),
        "segmentation": Instance(SegmentationParams, "a SegmentationParams or a mapping of its fields"),
    }
    _parameter_rules = (
        ("max_mask_fraction", lambda p: p.min_mask_fraction <= p.max_mask_fraction,
         "must be at least min_mask_fraction ({p.min_mask_fraction}), got {p.max_mask_fraction}"),
    )

    def __post_init__(self):
        if isinstance(self.segmentation, Mapping):
            object.__setattr__(self, "segmentation", _segmentation_params(self.segmentation))
        check_params(self)

    @classmethod
    def from_dict(cls, params: dict | None) -> "DatasetParams":
        """Build from a profile dictionary (``segmentation`` may be a nested dict).

        Raises
        ------
        ValueError
            For an unknown key, and (:class:`~bgrobust.constraints.ParameterError`) for a
            value of the wrong type, out of range or not one of the choices; the message
            names the field.
        """
        params = dict(params or {})
        known = {f.name for f in dc_fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"dataset parameters: unknown key(s) {unknown}; known: {sorted(known)}")
        seg = params.pop("segmentation", None)
        return cls(**params, segmentation=SegmentationParams() if seg is None else seg)


def _segmentation_params(seg: Mapping) -> SegmentationParams:
    seg_known = {f.name for f in dc_fields(SegmentationParams)}
    bad = sorted(set(seg) - seg_known)
    if bad:
        raise ValueError(f"segmentation parameters: unknown key(s) {bad}; known: {sorted(seg_known)}")
    try:
        return SegmentationParams(**seg)
    except ParameterError as exc:
        raise ParameterError(f"DatasetParams.segmentation: {exc}") from None


@dataclass
class Dataset:
    """Crops (all, with filter flags), cell-free crops and the pipeline's report."""

    crops: CropSet
    cell_free: CropSet
    segmentation_quality: pd.DataFrame
    report: dict

    def valid_crops(self) -> CropSet:
        """The crops that pass both of the paper's filters."""
        return self.crops.subset(self.crops.table["valid"].to_numpy())

    def save(self, path) -> Path:
        """Write to a folder atomically, as a sealed cache entry (:func:`bgrobust.cache.atomic_dir`)."""
        path = Path(path)
        with atomic_dir(path, seal=True) as tmp:
            for name in ("crops", "cell_free"):
                (tmp / name).mkdir()
                getattr(self, name).write_files(tmp / name)
            self.segmentation_quality.to_parquet(tmp / "segmentation_quality.parquet", index=False)
            (tmp / "report.json").write_text(json.dumps(self.report, indent=2, default=float))
        return path

    @classmethod
    def load(cls, path) -> "Dataset":
        """Read a folder written by :meth:`save`, checked against its manifest when it has one.

        Raises
        ------
        bgrobust.cache.DamagedEntry
            When a file is missing, truncated or altered (the message names the folder).
        """
        path = Path(path)
        verify_if_sealed(path)
        return cls(CropSet.load(path / "crops"), CropSet.load(path / "cell_free"),
                   pd.read_parquet(path / "segmentation_quality.parquet"),
                   json.loads((path / "report.json").read_text()))


def check_field(image: np.ndarray, params: DatasetParams, what: str) -> np.ndarray:
    """A field image fit for :func:`build_dataset`, or a :class:`~bgrobust.io.DataError` naming it.

    The image must be ``(3, H, W)`` with finite pixels, not all zero, and at least one crop
    (``params.crop_size``) on each side.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] != 3:
        raise DataError(f"{what}: image of shape {image.shape}, expected (3, H, W)")
    h, w = image.shape[-2:]
    if h < params.crop_size or w < params.crop_size:
        raise DataError(f"{what}: the field is {h} x {w} px, smaller than a crop "
                        f"(DatasetParams.crop_size={params.crop_size})")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise DataError(f"{what}: {int((~np.isfinite(image)).sum())} NaN or infinite pixel(s)")
    if not image.any():
        raise DataError(f"{what}: every pixel is 0 (an empty or failed acquisition)")
    return image


def _process_field(image: np.ndarray, truth: np.ndarray | None, i: int, params: DatasetParams,
                   what: str = ""):
    image = check_field(image, params, what or f"field {i}")
    labels = segment_cells(image[2], image[1], params.segmentation)
    crops, masks, table, dropped = extract_crops(image, labels, size=params.crop_size, edge=params.edge)
    free, free_table = cell_free_crops(
        image, labels, size=params.crop_size, stride=params.cellfree_stride,
        min_distance=params.cellfree_min_distance, border=params.cellfree_border,
        variance_factor=params.cellfree_variance_factor)
    quality = None
    if truth is not None:
        m = match_instances(truth, labels)
        quality = {"field": i, "n_true": m.n_true, "n_pred": m.n_pred, "n_matched": m.n_matched,
                   "mean_iou": m.mean_iou, "centroid_error": m.centroid_error}
        table = table.merge(truth_for_segments(truth, labels), on="label", how="left")
    table["field"] = i
    free_table["field"] = i
    return crops, masks, table, dropped, free, free_table, quality


def build_dataset(screen: Screen, params: DatasetParams | None = None, *, n_jobs: int = 1,
                  progress: bool = True) -> Dataset:
    """Segment every field, cut crops and cell-free crops, and flag the paper's filters.

    Raises
    ------
    bgrobust.io.DataError
        When a field is smaller than a crop, all zeros or not finite (naming the field and,
        for a manifest screen, its files), or when no cell is found in any field.

    Returns
    -------
    Dataset
        ``crops.table`` has, per crop: field, strain, plate, well, site, label, y, x,
        n_neighbours, mask_fraction, mean_gfp, the filter flags (low_gfp,
        mask_too_small, mask_too_large, valid), the strain's kind and localization
        and, on a synthetic screen, ``true_localization`` of the centre cell (``None``
        when the segment matches no true cell).
    """
    params = params or DatasetParams()
    order = range(screen.n_fields)
    if progress:
        order = tqdm(order, desc="segmenting and cropping", unit="field")
    results = Parallel(n_jobs=n_jobs)(
        delayed(_process_field)(screen.image(i), screen.label_image(i) if screen.has_truth else None, i, params,
                                screen.describe_field(i))
        for i in order)

    table = pd.concat([r[2] for r in results], ignore_index=True)
    if table.empty:
        source = screen.meta.get("manifest") or f"the {screen.meta.get('source', '')} screen"
        at_border = sum(r[3] for r in results)
        problem = (f"{at_border} cell(s) were segmented but every one is closer than crop_size/2 "
                   f"({params.crop_size // 2} px) to the border (edge='drop')" if at_border else
                   "no cell was segmented; check the cytoplasm channel and the segmentation parameters")
        raise DataError(f"{source}: no crop in any of its {screen.n_fields} field(s): {problem}")
    images = np.concatenate([r[0] for r in results])
    masks = np.concatenate([r[1] for r in results])
    threshold = gfp_threshold((screen.image(i)[0] for i in range(screen.n_fields)),
                              params.gfp_percentile, reference=params.gfp_reference)
    flags = quality_flags(images, masks, threshold, min_mask_fraction=params.min_mask_fraction,
                          max_mask_fraction=params.max_mask_fraction)
    table = pd.concat([table, flags], axis=1)
    info = screen.fields[["field", "strain", "plate", "well", "site"]]
    strain_info = screen.strains[["strain", "kind", "localization"]]
    table = table.merge(info, on="field", how="left").merge(strain_info, on="strain", how="left")
    if screen.has_truth:
        truth = screen.cells[["field", "label", "localization"]].rename(
            columns={"label": "truth_label", "localization": "true_localization"})
        table = table.merge(truth, on=["field", "truth_label"], how="left")
    crops = CropSet(images, masks, table)

    free_table = pd.concat([r[5] for r in results], ignore_index=True)
    free_images = np.concatenate([r[4] for r in results])
    free_table = free_table.merge(info, on="field", how="left").merge(strain_info, on="strain", how="left")
    cell_free = CropSet(free_images, np.zeros((len(free_images),) + free_images.shape[-2:], bool), free_table)

    quality = pd.DataFrame([r[6] for r in results if r[6] is not None])
    report = {
        "n_fields": screen.n_fields,
        "n_segmented": int(len(table) + sum(r[3] for r in results)),
        "n_dropped_at_border": int(sum(r[3] for r in results)),
        "n_crops": int(len(table)),
        "gfp_threshold": threshold,
        "n_low_gfp": int(flags.low_gfp.sum()),
        "n_mask_too_small": int(flags.mask_too_small.sum()),
        "n_mask_too_large": int(flags.mask_too_large.sum()),
        "n_valid": int(flags.valid.sum()),
        "n_cell_free": int(len(free_table)),
        "params": asdict(params),
    }
    return Dataset(crops, cell_free, quality, report)


def dataset_key(screen: Screen, params: DatasetParams) -> str:
    """Cache key: the screen's identity, the parameters and the pipeline's code."""
    return content_key(screen.meta, asdict(params),
                       code_key("bgrobust.segment", "bgrobust.crops", "bgrobust.dataset"))


def load_or_build(screen: Screen, params: DatasetParams | None = None, cache_dir=None, *,
                  n_jobs: int = 1, progress: bool = True) -> Dataset:
    """:func:`build_dataset` with an on-disk cache (``cache_dir/dataset-<key>``).

    The entry is built under its key's lock (a second process asking for it waits and
    loads it), checked against its manifest on every load, and rebuilt with a
    :class:`~bgrobust.cache.CacheWarning` naming the folder when it is damaged
    (:func:`bgrobust.cache.load_or_create`).
    """
    from .paths import run_dir

    params = params or DatasetParams()
    cache_dir = Path(cache_dir) if cache_dir is not None else run_dir("shared")
    path = cache_dir / f"dataset-{dataset_key(screen, params)}"
    return load_or_create(path, lambda p: build_dataset(screen, params, n_jobs=n_jobs, progress=progress).save(p),
                          Dataset.load, what="dataset")


def open_screen(source: str = "synthetic", screen: dict | None = None, *, manifest_path=None,
                labels_path=None, cache_dir=None, n_jobs: int = 1, progress: bool = True) -> Screen:
    """The screen a chapter works on, from its parameters.

    Parameters
    ----------
    source : {"synthetic", "manifest"}
        The embedded synthetic screen (default) or a real screen described by a
        manifest (see the book page "Using your own screen").
    screen : dict, optional
        :class:`~bgrobust.synth.ScreenConfig` parameters (synthetic source).
    manifest_path : path, optional
        The manifest CSV (manifest source).
    labels_path : path, optional
        A yeastgfp-format table (Huh et al. 2003) giving each ORF's localization
        (manifest source); without it every strain is "unlabelled".
    """
    from .cache import content_key as _key

    if source == "synthetic":
        from .synth import ScreenConfig, load_or_generate

        return load_or_generate(ScreenConfig.from_dict(screen), cache_dir, n_jobs=n_jobs, progress=progress)
    if source == "manifest":
        from .io import huh_labels, load_screen, read_huh_table

        if manifest_path is None:
            raise ValueError("open_screen: source 'manifest' needs manifest_path")
        labels = huh_labels(read_huh_table(labels_path)) if labels_path else None
        real = load_screen(manifest_path, labels=labels)
        real.meta["manifest_key"] = _key(Path(manifest_path))
        real.meta["labels_key"] = _key(Path(labels_path)) if labels_path else None
        return real
    raise ValueError(f"open_screen: source must be 'synthetic' or 'manifest', got {source!r}")


def open_dataset(screen_source="synthetic", screen=None, dataset=None, *, seed=0, manifest_path=None,
                    labels_path=None, n_jobs=1, progress=True):
    """The screen and its dataset from a chapter's parameters (both cached).

    ``screen_source`` is ``"synthetic"`` (``screen`` holds :class:`bgrobust.synth.ScreenConfig`
    fields) or ``"manifest"`` (``manifest_path``, ``labels_path``); ``dataset`` holds
    :class:`DatasetParams` fields.

    Returns
    -------
    screen : bgrobust.screen.Screen
    dataset : bgrobust.dataset.Dataset
    """
    screen_params = {"seed": seed, **(screen or {})}
    data = open_screen(screen_source, screen_params, manifest_path=manifest_path, labels_path=labels_path,
                       n_jobs=n_jobs, progress=progress)
    ds = load_or_build(data, DatasetParams.from_dict(dataset), n_jobs=n_jobs, progress=progress)
    return data, ds
