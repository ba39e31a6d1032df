"""The dataset every chapter uses: screen -> segmentation -> crops -> filters -> cell-free crops.

:func:`build_dataset` runs the paper's section 3.1 and appendix D.1 pipeline on any
:class:`~bgrobust.screen.Screen` (synthetic or real) and caches the result under a
key made of the screen, the parameters and the code.  On a synthetic screen it also
scores the segmentation against the truth and attaches each crop's true class.

:func:`from_crops` makes the same :class:`Dataset` from single-cell crops cut
elsewhere (e.g. the PCI crops, or a user's own folder, see :mod:`bgrobust.io.crop_folder`):
any channels (no nucleus needed), centre-cell masks from a marker channel when none
are given, and no cell-free set unless one is supplied (:attr:`Dataset.has_cell_free`).
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
from .constraints import Choice, Instance, Integer, Optional, ParameterError, Real, String, check_params
from ._npy import NpyAppender
from .crops import (CropSet, cell_free_crops, channel_means, extract_crops, flags_from, gfp_threshold,
                    truth_for_segments, write_crop_table)
from .io.crop_folder import PCI_CROP_CHANNELS
from .io.images import DataError
from .screen import Screen
from .segment import (GfpSegmentationParams, SegmentationParams, centre_cell_mask, match_instances,
                      segment_cells, segment_gfp)
from .vocabulary import CHANNELS, EXPERIMENT_TITLES, EXPERIMENTS, check_classes


@dataclass(frozen=True)
class DatasetParams:
    """Parameters of :func:`build_dataset` (the paper's values are the defaults)."""

    crop_size: int = 64
    edge: str = "drop"
    #: what ``edge="pad"`` fills with: ``None`` = the field's border median per channel, or a number
    pad_value: float | None = None
    gfp_percentile: float = 5.0
    gfp_reference: str = "pixels"
    min_mask_fraction: float = 0.05
    max_mask_fraction: float = 0.95
    cellfree_stride: int = 32
    cellfree_min_distance: float = 50.0
    cellfree_border: int = 16
    cellfree_variance_factor: float = 2.0
    segmentation: SegmentationParams = field(default_factory=SegmentationParams)
    #: used only for screens without marker channels (a GFP-only manifest)
    gfp_segmentation: GfpSegmentationParams = field(default_factory=GfpSegmentationParams)

    _parameter_constraints = {
        "crop_size": Integer(8),
        "edge": Choice(("drop", "pad")),
        "pad_value": Optional(Real()),
        "gfp_percentile": Real(0, 100),
        "gfp_reference": Choice(("pixels", "field_means")),
        "min_mask_fraction": Real(0, 1),
        "max_mask_fraction": Real(0, 1),
        "cellfree_stride": Integer(1),
        "cellfree_min_distance": Real(0),
        "cellfree_border": Integer(0),
        "cellfree_variance_factor": Real(0, lo_open=True),
        "segmentation": Instance(SegmentationParams, "a SegmentationParams or a mapping of its fields"),
        "gfp_segmentation": Instance(GfpSegmentationParams, "a GfpSegmentationParams or a mapping of its fields"),
    }
    _parameter_rules = (
        ("max_mask_fraction", lambda p: p.min_mask_fraction <= p.max_mask_fraction,
         "must be at least min_mask_fraction ({p.min_mask_fraction}), got {p.max_mask_fraction}"),
    )

    def __post_init__(self):
        if isinstance(self.segmentation, Mapping):
            object.__setattr__(self, "segmentation", _segmentation_params(self.segmentation))
        if isinstance(self.gfp_segmentation, Mapping):
            object.__setattr__(self, "gfp_segmentation",
                               _segmentation_params(self.gfp_segmentation, GfpSegmentationParams,
                                                    "gfp_segmentation"))
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
        gfp_seg = params.pop("gfp_segmentation", None)
        return cls(**params, segmentation=SegmentationParams() if seg is None else seg,
                   gfp_segmentation=GfpSegmentationParams() if gfp_seg is None else gfp_seg)


def _segmentation_params(seg: Mapping, cls=SegmentationParams, name: str = "segmentation"):
    seg_known = {f.name for f in dc_fields(cls)}
    bad = sorted(set(seg) - seg_known)
    if bad:
        raise ValueError(f"{name} parameters: unknown key(s) {bad}; known: {sorted(seg_known)}")
    try:
        return cls(**seg)
    except ParameterError as exc:
        raise ParameterError(f"DatasetParams.{name}: {exc}") from None


@dataclass
class Dataset:
    """Crops (all, with filter flags), cell-free crops and the pipeline's report."""

    crops: CropSet
    cell_free: CropSet
    segmentation_quality: pd.DataFrame
    report: dict

    def valid_crops(self, *, lazy: bool = False) -> CropSet:
        """The crops that pass both of the paper's filters.

        ``lazy=True``: read from the dataset's files a batch at a time when used
        (:meth:`CropSet.subset`), e.g. to extract the features of a whole screen's crops in
        memory that does not grow with the screen (``benchmarks/bench_memory.py``).
        """
        return self.crops.subset(self.crops.table["valid"].to_numpy(), lazy=lazy)

    def restricted_to(self, proteins) -> "Dataset":
        """The same dataset with only ``proteins`` usable by the experiments.

        Crops of the other proteins stay (so positions and caches of the crops do not move)
        but are marked ``valid=False``; cell-free crops of other proteins are dropped. Use it to
        evaluate a supervised model only on proteins it never trained on
        (:func:`bgrobust.train.evaluation_proteins`).

        Examples
        --------
        >>> m = np.zeros((2, 8, 8), bool); m[:, 2:6, 2:6] = True
        >>> ds = from_crops(np.ones((2, 2, 8, 8)), ["A", "B"], ["actin", "ER"], masks=m, progress=False)
        >>> ds.restricted_to(["A"]).crops.table["valid"].tolist()
        [True, False]
        """
        keep = set(map(str, proteins))
        table = self.crops.table.copy()
        table["valid"] = table["valid"].astype(bool) & table["strain"].astype(str).isin(keep)
        crops = CropSet(self.crops.images, self.crops.masks, table, channels=self.crops.channels)
        free = self.cell_free
        if len(free):
            free = free.subset(free.table["strain"].astype(str).isin(keep).to_numpy())
        report = {**self.report, "restricted_to": sorted(keep)}
        return Dataset(crops, free, self.segmentation_quality, report)

    @property
    def has_cell_free(self) -> bool:
        """Whether there are cell-free background crops (the "Cell-Free Diff Loc Swap"
        setting needs them; crops from :func:`from_crops` have none unless given)."""
        return len(self.cell_free) > 0

    def runnable_settings(self, settings=EXPERIMENTS) -> tuple[tuple[str, ...], dict[str, str]]:
        """The settings (experiment keys) these data can run, and why the others are skipped.

        The cell-free setting (``"batch"``) needs cell-free crops; without them it is
        skipped with a reason, never faked with invented backgrounds.  Runners call this
        before generating settings and print (or put on the page) the reasons.

        Examples
        --------
        >>> ds = from_crops(np.ones((2, 2, 8, 8)), ["A", "B"], ["actin", "ER"],
        ...                 masks=np.ones((2, 8, 8), bool), progress=False)
        >>> kept, skipped = ds.runnable_settings()
        >>> kept, list(skipped)
        (('base', 'diff', 'same', 'mask'), ['batch'])
        """
        settings = tuple(settings)
        skipped = {}
        if "batch" in settings and not self.has_cell_free:
            skipped["batch"] = (f"skipped {EXPERIMENT_TITLES['batch']!r}: the dataset has no cell-free "
                                "background crops (pass cell_free= to from_crops, or use a screen of full fields)")
        return tuple(x for x in settings if x not in skipped), skipped

    @property
    def channels(self) -> tuple | None:
        """The channel names of the crops (:attr:`CropSet.channels`)."""
        return self.crops.channels

    def save(self, path) -> Path:
        """Write to a folder atomically, as a sealed cache entry (:func:`bgrobust.cache.atomic_dir`)."""
        path = Path(path)
        with atomic_dir(path, seal=True) as tmp:
            for name in ("crops", "cell_free"):
                (tmp / name).mkdir()
                getattr(self, name).write_files(tmp / name)
            _write_dataset_extras(tmp, self.segmentation_quality, self.report)
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


def _write_dataset_extras(folder: Path, quality: pd.DataFrame, report: dict) -> None:
    quality.to_parquet(folder / "segmentation_quality.parquet", index=False)
    (folder / "report.json").write_text(json.dumps(report, indent=2, default=float))


def check_field(image: np.ndarray, params: DatasetParams, what: str, n_channels: int = len(CHANNELS)) -> np.ndarray:
    """A field image fit for :func:`build_dataset`, or a :class:`~bgrobust.io.DataError` naming it.

    The image must be ``(n_channels, H, W)`` with finite pixels, not all zero, and at
    least one crop (``params.crop_size``) on each side.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] != n_channels:
        raise DataError(f"{what}: image of shape {image.shape}, expected ({n_channels}, H, W)")
    h, w = image.shape[-2:]
    if h < params.crop_size or w < params.crop_size:
        raise DataError(f"{what}: the field is {h} x {w} px, smaller than a crop "
                        f"(DatasetParams.crop_size={params.crop_size})")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise DataError(f"{what}: {int((~np.isfinite(image)).sum())} NaN or infinite pixel(s)")
    if not image.any():
        raise DataError(f"{what}: every pixel is 0 (an empty or failed acquisition)")
    return image


def segment_field(image: np.ndarray, channels, params: DatasetParams) -> np.ndarray:
    """Cell labels of one field with the markers it has.

    With a cytoplasm marker: :func:`~bgrobust.segment.segment_cells` (seeded by the
    nuclear marker when there is one); with neither marker:
    :func:`~bgrobust.segment.segment_gfp` on the GFP channel.
    """
    channels = tuple(channels)
    if "cytoplasm" in channels:
        nucleus = image[channels.index("nucleus")] if "nucleus" in channels else None
        return segment_cells(image[channels.index("cytoplasm")], nucleus, params.segmentation)
    return segment_gfp(image[channels.index("gfp")], params.gfp_segmentation)


def _process_field(image: np.ndarray, truth: np.ndarray | None, i: int, params: DatasetParams,
                   what: str = "", channels=CHANNELS):
    image = check_field(image, params, what or f"field {i}", len(channels))
    labels = segment_field(image, channels, params)
    crops, masks, table, dropped = extract_crops(
        image, labels, size=params.crop_size, edge=params.edge,
        pad_value="border_median" if params.pad_value is None else params.pad_value)
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


class _Rows:
    """Rows of one array, gathered in memory or appended to an ``.npy`` file as they come."""

    def __init__(self, path: Path | None):
        self.path, self.parts, self.writer = path, [], None

    def add(self, rows: np.ndarray) -> None:
        if self.path is None:
            self.parts.append(rows)
            return
        if self.writer is None:
            self.writer = NpyAppender(self.path, rows.dtype, rows.shape[1:])
        self.writer.append(rows)

    def result(self) -> np.ndarray | None:
        if self.path is None:
            return np.concatenate(self.parts)
        self.writer.close()
        return None


def build_dataset(screen: Screen, params: DatasetParams | None = None, *, n_jobs: int = 1,
                  progress: bool = True, out=None) -> Dataset:
    """Segment every field, cut crops and cell-free crops, and flag the paper's filters.

    Raises
    ------
    bgrobust.io.DataError
        When a field is smaller than a crop, all zeros or not finite (naming the field and,
        for a manifest screen, its files), or when no cell is found in any field.

    Parameters
    ----------
    screen : Screen
    params : DatasetParams, optional
    n_jobs : int
        Fields segmented at once (joblib); the result does not depend on it.
    progress : bool
    out : path-like, optional
        Write the dataset there (the folder :meth:`Dataset.save` writes, sealed) as the
        fields are processed, one field's crops held at a time, and return it read back with
        its arrays memory-mapped; by default it is built in memory.

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
    channels = tuple(screen.meta.get("channels", CHANNELS))
    if "gfp" not in channels:
        raise DataError(f"{screen.meta.get('manifest') or 'screen'}: no GFP channel (channels {channels})")
    if out is None:
        return _build(screen, params, channels, n_jobs, progress, None)
    with atomic_dir(Path(out), seal=True) as tmp:
        _build(screen, params, channels, n_jobs, progress, Path(tmp))
    return Dataset.load(out)


def _build(screen: Screen, params: DatasetParams, channels, n_jobs: int, progress: bool,
           folder: Path | None) -> Dataset | None:
    """build_dataset's work; with ``folder``, the arrays go to files there as each field comes."""
    order = range(screen.n_fields)
    if progress:
        order = tqdm(order, desc="segmenting and cropping", unit="field")
    if folder is not None:
        for name in ("crops", "cell_free"):
            (folder / name).mkdir()
    arrays = {key: _Rows(None if folder is None else folder / sub / f"{what}.npy")
              for key, (sub, what) in {"images": ("crops", "images"), "masks": ("crops", "masks"),
                                        "free": ("cell_free", "images"), "free_masks": ("cell_free", "masks")}.items()}
    tables, free_tables, quality, means, fractions = [], [], [], [], []
    n_dropped = 0
    for crops, masks, table, dropped, free, free_table, q in Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_process_field)(screen.image(i), screen.label_image(i) if screen.has_truth else None, i,
                                    params, screen.describe_field(i), channels)
            for i in order):
        arrays["images"].add(crops)
        arrays["masks"].add(masks)
        arrays["free"].add(free)
        arrays["free_masks"].add(np.zeros((len(free),) + free.shape[-2:], bool))
        means.append(channel_means(crops, 0))
        fractions.append(masks.mean(axis=(1, 2)) if len(masks) else np.zeros(0))
        tables.append(table)
        free_tables.append(free_table)
        n_dropped += dropped
        if q is not None:
            quality.append(q)

    table = pd.concat(tables, ignore_index=True)
    if table.empty:
        source = screen.meta.get("manifest") or f"the {screen.meta.get('source', '')} screen"
        problem = (f"{n_dropped} cell(s) were segmented but every one is closer than crop_size/2 "
                   f"({params.crop_size // 2} px) to the border (edge='drop')" if n_dropped else
                   "no cell was segmented; check the cytoplasm channel and the segmentation parameters")
        raise DataError(f"{source}: no crop in any of its {screen.n_fields} field(s): {problem}")
    threshold = gfp_threshold(lambda: (screen.image(i)[0] for i in range(screen.n_fields)),
                              params.gfp_percentile, reference=params.gfp_reference)
    flags = flags_from(np.concatenate(means), np.concatenate(fractions), threshold,
                       min_mask_fraction=params.min_mask_fraction, max_mask_fraction=params.max_mask_fraction)
    table = pd.concat([table, flags], axis=1)
    info = screen.fields[["field", "strain", "plate", "well", "site"]]
    strain_info = screen.strains[["strain", "kind", "localization"]]
    table = table.merge(info, on="field", how="left").merge(strain_info, on="strain", how="left")
    if screen.has_truth:
        truth = screen.cells[["field", "label", "localization"]].rename(
            columns={"label": "truth_label", "localization": "true_localization"})
        table = table.merge(truth, on=["field", "truth_label"], how="left")
    free_table = pd.concat(free_tables, ignore_index=True)
    free_table = free_table.merge(info, on="field", how="left").merge(strain_info, on="strain", how="left")
    quality = pd.DataFrame(quality)
    report = {
        "n_fields": screen.n_fields,
        "n_segmented": int(len(table) + n_dropped),
        "n_dropped_at_border": int(n_dropped),
        "n_crops": int(len(table)),
        "gfp_threshold": threshold,
        "n_low_gfp": int(flags.low_gfp.sum()),
        "n_mask_too_small": int(flags.mask_too_small.sum()),
        "n_mask_too_large": int(flags.mask_too_large.sum()),
        "n_valid": int(flags.valid.sum()),
        "n_cell_free": int(len(free_table)),
        "channels": list(channels),
        "params": asdict(params),
    }
    if folder is None:
        crops = CropSet(arrays["images"].result(), arrays["masks"].result(), table, channels)
        cell_free = CropSet(arrays["free"].result(), arrays["free_masks"].result(), free_table, channels)
        return Dataset(crops, cell_free, quality, report)
    for rows in arrays.values():
        rows.result()
    write_crop_table(folder / "crops", table, channels)
    write_crop_table(folder / "cell_free", free_table, channels)
    _write_dataset_extras(folder, quality, report)
    return None


def dataset_key(screen: Screen, params: DatasetParams) -> str:
    """Cache key: the screen's identity, the parameters and the pipeline's code."""
    return content_key(screen.meta, asdict(params),
                       code_key("bgrobust.segment", "bgrobust._segment_gfp", "bgrobust.crops", "bgrobust.dataset"))


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
    return load_or_create(path, lambda p: build_dataset(screen, params, n_jobs=n_jobs, progress=progress, out=p),
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


# --------------------------------------------------------------------------------------
# a Dataset from crops cut elsewhere
# --------------------------------------------------------------------------------------

#: Channels of crops that come with a GFP and a whole-cell cytoplasmic marker (the PCI crops).
GFP_CYTOPLASM: tuple[str, str] = PCI_CROP_CHANNELS


@dataclass(frozen=True)
class CropsParams:
    """How :func:`from_crops` derives masks and flags crops (the paper's filter values are the defaults).

    ``mask_smooth``, ``mask_min_distance`` and ``mask_threshold`` are those of
    :func:`bgrobust.segment.centre_cell_mask` (used only when no masks are given);
    ``min_mask_fraction`` / ``max_mask_fraction`` are the paper's mask filter (section 3.1:
    centre mask under 5 % or over 95 % of the crop).  The paper's other filter (mean GFP
    under the 5th percentile of the full fields' GFP) needs the full fields and is not
    applied to crops; ``plate`` names the source in the ``plate`` column.

    Examples
    --------
    >>> CropsParams(min_mask_fraction=0.1).max_mask_fraction
    0.95
    """

    mask_smooth: float = 1.5
    mask_min_distance: int = 7
    mask_threshold: str = "otsu"
    min_mask_fraction: float = 0.05
    max_mask_fraction: float = 0.95
    plate: str = "crops"

    _parameter_constraints = {
        "mask_smooth": Real(0),
        "mask_min_distance": Integer(1),
        "mask_threshold": Choice(("otsu", "li", "triangle")),
        "min_mask_fraction": Real(0, 1),
        "max_mask_fraction": Real(0, 1),
        "plate": String(),
    }
    _parameter_rules = (
        ("max_mask_fraction", lambda p: p.min_mask_fraction <= p.max_mask_fraction,
         "must be at least min_mask_fraction ({p.min_mask_fraction}), got {p.max_mask_fraction}"),
    )

    def __post_init__(self):
        check_params(self)


def _per_crop(values, n: int, name: str, *, allow_missing: bool = False) -> np.ndarray:
    """A length-``n`` object array of strings from a sequence (or a scalar for every crop)."""
    if isinstance(values, str) or np.ndim(values) == 0:
        values = [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"from_crops: {name} has {len(values)} entries but images has {n} crops")
    out = np.empty(n, object)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            if not allow_missing:
                raise ValueError(f"from_crops: {name}[{i}] is missing")
            out[i] = None
        else:
            text = str(v).strip()
            if not text:
                raise ValueError(f"from_crops: {name}[{i}] is an empty string")
            out[i] = text
    return out


def _crop_labels(labels, proteins: np.ndarray) -> np.ndarray:
    """Per-crop class names (``None`` = unlabelled) from a sequence or a protein -> class mapping."""
    if labels is None:
        return np.full(len(proteins), None, object)
    if isinstance(labels, Mapping):
        lookup = dict(labels)
        return _per_crop([lookup.get(p) for p in proteins], len(proteins), "labels", allow_missing=True)
    return _per_crop(labels, len(proteins), "labels", allow_missing=True)


def _check_images(images, channels) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"from_crops: images must be (N, C, H, W), got shape {images.shape}")
    if images.shape[0] == 0:
        raise ValueError("from_crops: images holds no crop")
    if images.shape[1] != len(channels):
        raise ValueError(f"from_crops: images has {images.shape[1]} channel(s) but channels names "
                         f"{len(channels)}: {tuple(channels)}")
    if images.dtype.kind not in "uif":
        raise ValueError(f"from_crops: images must be integers or floats, got dtype {images.dtype}")
    if images.dtype.kind == "f":
        bad = ~np.isfinite(images)
        if bad.any():
            n, c = (int(v) for v in np.argwhere(bad)[0][:2])
            raise ValueError(f"from_crops: images has {int(bad.sum())} NaN or infinite pixel(s), "
                             f"the first in crop {n}, channel {channels[c]!r}")
    return images


def _check_masks(masks, images: np.ndarray) -> np.ndarray:
    masks = np.asarray(masks)
    want = (images.shape[0],) + images.shape[2:]
    if masks.shape != want:
        raise ValueError(f"from_crops: masks must have shape {want} (one per crop), got {masks.shape}")
    if masks.dtype != bool:
        if masks.dtype.kind not in "ui" or not np.isin(np.unique(masks), (0, 1)).all():
            raise ValueError(f"from_crops: masks must be boolean (or 0/1 integers), got dtype {masks.dtype}")
        masks = masks.astype(bool)
    return masks


def from_crops(images, proteins, labels=None, masks=None, *, channels=GFP_CYTOPLASM,
               marker: str | None = "cytoplasm", fields=None, orfs=None, cell_free: CropSet | None = None,
               params: CropsParams | None = None, extra: pd.DataFrame | None = None,
               progress: bool = True) -> Dataset:
    """A :class:`Dataset` from single-cell crops cut elsewhere.

    The result is the class the synthetic screen yields, so the settings
    (:func:`bgrobust.settings.generate_settings`), the feature extractors and the
    classifiers accept it.

    Parameters
    ----------
    images : (N, C, H, W) array
        The crops, centre cell in the middle; integer or floating point, finite.
    proteins : sequence of str, length N
        The protein (gene or ORF) of each crop; it becomes the ``strain`` column.
    labels : sequence of str (length N), mapping protein -> class, or None
        Each crop's localization class (names from :data:`bgrobust.vocabulary.CLASSES`);
        ``None`` entries (or proteins missing from the mapping) are ``kind="unlabelled"``.
    masks : (N, H, W) bool array, optional
        The centre cell of each crop.  Without it the masks come from the ``marker``
        channel through :func:`bgrobust.segment.centre_cell_mask`.
    channels : sequence of str
        The names of the C planes, from :data:`bgrobust.vocabulary.CHANNELS`
        (default ``("gfp", "cytoplasm")``: a GFP and a whole-cell cytoplasmic marker).
        No channel is added: models that need a missing channel say so.
    marker : str or None
        The channel the masks are derived from (ignored when ``masks`` is given).
    fields : sequence, optional
        The source image field of each crop (crops of one field share it; used by
        training to pair cells of one field).  The default makes every crop its own field.
    orfs : sequence of str, optional
        An ``orf`` column (e.g. when ``proteins`` are gene names).
    cell_free : CropSet, optional
        Cell-free background crops (same channels and size) with ``strain``,
        ``localization`` and ``kind`` columns.  The default is an empty set: the
        "Cell-Free Diff Loc Swap" setting is then skipped, never faked
        (:attr:`Dataset.has_cell_free`).
    params : CropsParams, optional
        Mask derivation and the mask filter.
    extra : DataFrame, optional
        More per-crop columns (one row per crop, in order) for the table, e.g. file
        paths; they may not replace the columns listed below.
    progress : bool
        Show a progress bar while deriving masks.

    Returns
    -------
    Dataset
        ``crops.table`` has, per crop: ``crop`` (its position), ``strain``, ``protein``,
        ``localization``, ``kind`` ("single" or "unlabelled"), ``field``, ``plate``,
        ``well``, ``site``, ``label``, ``y``, ``x``, ``mask_fraction``, ``mean_gfp``
        (when there is a GFP channel), the flags ``low_gfp`` (always False here),
        ``mask_too_small``, ``mask_too_large`` and ``valid``.

    Raises
    ------
    ValueError
        Naming the argument: images not (N, C, H, W) or not finite, lengths that
        disagree, unknown channel or class names, masks of the wrong shape, a marker
        that is not one of the channels, a cell-free set that does not fit.

    Examples
    --------
    >>> yy, xx = np.mgrid[:32, :32]
    >>> cell = ((yy - 16) ** 2 + (xx - 16) ** 2 < 64).astype(np.float32)
    >>> images = np.stack([np.stack([cell * 5, cell]), np.stack([cell * 2, cell])])
    >>> ds = from_crops(images, ["YAL001C", "YBR002W"], ["actin", "ER"], progress=False)
    >>> ds.crops.channels, ds.has_cell_free, ds.crops.table["valid"].tolist()
    (('gfp', 'cytoplasm'), False, [True, True])
    """
    params = params or CropsParams()
    if not isinstance(params, CropsParams):
        raise ParameterError(f"from_crops: params must be a CropsParams, got {type(params).__name__}")
    if isinstance(channels, str):
        raise ValueError(f"from_crops: channels must be a sequence of names, got the string {channels!r}")
    channels = tuple(channels)
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown or not channels or len(set(channels)) != len(channels):
        raise ValueError(f"from_crops: channels must be distinct names from {CHANNELS}, got {channels}")
    images = _check_images(images, channels)
    n = images.shape[0]
    proteins = _per_crop(proteins, n, "proteins")
    crop_labels = _crop_labels(labels, proteins)
    known = [c for c in crop_labels if c is not None]
    check_classes(known, where="from_crops: labels")
    if fields is None:
        field_ids = np.arange(n, dtype=np.int64)
    else:
        fields = list(fields)
        if len(fields) != n:
            raise ValueError(f"from_crops: fields has {len(fields)} entries but images has {n} crops")
        field_ids = pd.factorize(pd.Series(fields, dtype=object).astype(str))[0].astype(np.int64)

    if masks is not None:
        masks = _check_masks(masks, images)
        mask_source = "given"
    else:
        if marker is None or marker not in channels:
            raise ValueError(f"from_crops: no masks given and marker {marker!r} is not one of the channels "
                             f"{channels}; pass masks= or marker= naming a whole-cell channel")
        plane = channels.index(marker)
        order = range(n)
        if progress:
            order = tqdm(order, desc=f"centre-cell masks from {marker}", unit="crop")
        masks = np.stack([centre_cell_mask(images[i, plane], smooth=params.mask_smooth,
                                           min_distance=params.mask_min_distance,
                                           threshold=params.mask_threshold) for i in order])
        mask_source = f"derived from the {marker} channel (centre_cell_mask)"

    fraction = masks.mean(axis=(1, 2))
    h, w = images.shape[2:]
    table = pd.DataFrame({
        "crop": np.arange(n, dtype=np.int64),
        "strain": proteins,
        "protein": proteins,
        "localization": crop_labels,
        "kind": np.where(pd.isna(pd.Series(crop_labels, dtype=object)), "unlabelled", "single"),
        "field": field_ids,
        "plate": params.plate,
        "well": "",
        "site": 0,
        "label": 1,
        "y": h / 2,
        "x": w / 2,
        "mask_fraction": fraction,
    })
    if orfs is not None:
        table["orf"] = _per_crop(orfs, n, "orfs", allow_missing=True)
    if "gfp" in channels:
        table["mean_gfp"] = channel_means(images, channels.index("gfp"))
    table["low_gfp"] = False
    table["mask_too_small"] = fraction < params.min_mask_fraction
    table["mask_too_large"] = fraction > params.max_mask_fraction
    table["valid"] = ~(table["mask_too_small"] | table["mask_too_large"])
    if extra is not None:
        if not isinstance(extra, pd.DataFrame) or len(extra) != n:
            raise ValueError(f"from_crops: extra must be a DataFrame with one row per crop ({n}), got "
                             f"{type(extra).__name__} of length {len(extra)}")
        clash = sorted(set(extra.columns) & set(table.columns))
        if clash:
            raise ValueError(f"from_crops: extra may not replace the column(s) {clash}")
        table = pd.concat([table, extra.reset_index(drop=True)], axis=1)
    crops = CropSet(images, masks, table, channels)

    if cell_free is None:
        free_table = pd.DataFrame({"strain": pd.Series(dtype=object), "localization": pd.Series(dtype=object),
                                   "kind": pd.Series(dtype=object), "field": pd.Series(dtype=np.int64)})
        cell_free = CropSet(np.zeros((0,) + images.shape[1:], images.dtype), np.zeros((0, h, w), bool),
                            free_table, channels)
    else:
        if not isinstance(cell_free, CropSet):
            raise ValueError(f"from_crops: cell_free must be a CropSet, got {type(cell_free).__name__}")
        if cell_free.channels != channels or np.shape(cell_free.images)[2:] != (h, w):
            raise ValueError(f"from_crops: cell_free has channels {cell_free.channels} and crops of "
                             f"{np.shape(cell_free.images)[2:]} px; the crops have {channels} and {(h, w)}")
        missing = [c for c in ("strain", "localization", "kind") if c not in cell_free.table.columns]
        if missing:
            raise ValueError(f"from_crops: cell_free.table lacks column(s) {missing}")

    report = {
        "source": "from_crops",
        "channels": list(channels),
        "masks": mask_source,
        "n_crops": int(n),
        "n_labelled": int((table["kind"] == "single").sum()),
        "n_proteins": int(table["strain"].nunique()),
        "n_mask_too_small": int(table["mask_too_small"].sum()),
        "n_mask_too_large": int(table["mask_too_large"].sum()),
        "n_valid": int(table["valid"].sum()),
        "n_cell_free": int(len(cell_free)),
        "filters": "mask fraction only (the low-GFP filter needs the full fields)",
        "params": asdict(params),
    }
    return Dataset(crops, cell_free, pd.DataFrame(), report)


def _files_to_dataset(files, marker, cell_free, params, progress) -> Dataset:
    table = files.table
    extra = table.drop(columns=[c for c in ("protein", "localization", "kind", "field", "orf", "label")
                                if c in table.columns]).rename(columns={"crop": "crop_id"})
    ds = from_crops(files.images, table["protein"].tolist(), table["localization"].tolist(), files.masks,
                    channels=files.channels, marker=marker, fields=table["field"].tolist(),
                    orfs=table["orf"].tolist() if "orf" in table.columns else None, cell_free=cell_free,
                    params=params, extra=extra, progress=progress)
    ds.report["source"] = files.source
    return ds


def from_pci_folder(folder, *, huh_table=None, gene_table=None, labels=None,
                    multi_localized: str = "unlabelled", min_proteins: int = 5, marker: str = "cytoplasm",
                    params: CropsParams | None = None, progress: bool = True) -> Dataset:
    """A :class:`Dataset` from a folder of crops in the PCI layout, in one call.

    Reads :func:`bgrobust.io.crop_folder.read_pci_files` (channels ``("gfp",
    "cytoplasm")``), derives the centre-cell masks from the cytoplasmic marker and
    makes the dataset with :func:`from_crops` (no cell-free set).

    Parameters
    ----------
    folder : path
        The crop folder (e.g. the project's shared ``pci-toy-subset``).
    huh_table, gene_table, labels, multi_localized, min_proteins
        Labels: see :func:`bgrobust.io.crop_folder.attach_labels`.  The shared toy
        folder's proteins are two mitochondrial ones and three cytoplasm+nucleus ones;
        the latter are labelled only with ``multi_localized="first"`` (as cytoplasm) or
        explicit ``labels``.
    marker, params, progress
        As in :func:`from_crops`.

    Raises
    ------
    bgrobust.io.DataError
        Naming the folder or file (see the readers).

    Examples
    --------
    >>> # SHARED_DATA: the folder of the real third-party data (``../shared/data`` beside the checkout)
    >>> y = SHARED_DATA / "yeastgfp"
    >>> ds = from_pci_folder(SHARED_DATA / "pci-toy-subset", huh_table=y / "allOrfData.txt",
    ...                      gene_table=y / "Sce.csv.xz", multi_localized="first", progress=False)
    >>> ds.crops.table.groupby("localization")["strain"].nunique().to_dict()
    {'cytoplasm': 3, 'mitochondrion': 2}
    """
    from .io.crop_folder import read_pci_files

    files = read_pci_files(folder, huh_table=huh_table, gene_table=gene_table, labels=labels,
                           multi_localized=multi_localized, min_proteins=min_proteins)
    return _files_to_dataset(files, marker, None, params, progress)


def read_crop_folder(folder, table: str = "crops.csv", *, channels=GFP_CYTOPLASM, huh_table=None,
                     gene_table=None, labels=None, multi_localized: str = "unlabelled", min_proteins: int = 5,
                     marker: str | None = "cytoplasm", cell_free: CropSet | None = None,
                     params: CropsParams | None = None, progress: bool = True) -> Dataset:
    """A :class:`Dataset` from a generic crop folder (a CSV plus image files), in one call.

    The CSV layout is described in :mod:`bgrobust.io.crop_folder`; masks are read from
    its ``mask`` column when present, else derived from ``marker``.  Parameters are
    those of :func:`bgrobust.io.crop_folder.read_crop_files` and :func:`from_crops`.

    Examples
    --------
    >>> import tempfile, pathlib, tifffile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> yy, xx = np.mgrid[:32, :32]
    >>> cell = ((yy - 16) ** 2 + (xx - 16) ** 2 < 64).astype(np.uint16) * 900
    >>> for i in range(2):
    ...     tifffile.imwrite(folder / f"c{i}.tif", np.stack([cell, cell]))
    >>> pd.DataFrame({"crop": ["a", "b"], "protein": ["P1", "P2"], "label": ["actin", "ER"],
    ...               "file": ["c0.tif", "c1.tif"]}).to_csv(folder / "crops.csv", index=False)
    >>> ds = read_crop_folder(folder, progress=False)
    >>> len(ds.crops), ds.crops.table["localization"].tolist(), int(ds.crops.masks[0].sum()) > 100
    (2, ['actin', 'ER'], True)
    """
    from .io.crop_folder import read_crop_files

    files = read_crop_files(folder, table, channels=channels, huh_table=huh_table, gene_table=gene_table,
                            labels=labels, multi_localized=multi_localized, min_proteins=min_proteins,
                            progress=progress)
    return _files_to_dataset(files, marker, cell_free, params, progress)
