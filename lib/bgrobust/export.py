"""Features and results out, in the formats the field reads.

Features of any extractor and setting (one row per crop) go out with the crop table that
says which crop each row is (strain, ORF, plate, well, field, position, class, setting,
...), in two formats:

* **AnnData** (``.h5ad``, :func:`write_h5ad`; needs the ``export`` extra,
  ``pip install -e ".[export]"``: anndata 0.12 requires pandas < 3): ``X`` holds the features (float32), ``obs``
  the crop table, ``var`` the feature names and ``uns["bgrobust"]`` what made them
  (extractor, layer, pooling, setting, profile: any JSON-able mapping).  Read it with
  ``anndata.read_h5ad`` or ``scanpy.read_h5ad``.
* **Parquet with** ``Metadata_*`` **columns** (:func:`write_parquet`), the CellProfiler /
  pycytominer convention also read by copairs: one row per crop, every crop-table column
  as ``Metadata_<column>``, then one column per feature.  pycytominer's
  ``infer_cp_features`` finds the features as the columns without the prefix.

Per-pair results (SVM accuracy per pair of classes, per background for the triplet
experiments) go out in the layout of the paper's repository, ``<folder>/<model>/
results_<experiment>.csv`` with ``Location1, Location2, [Background,] Accuracy, StdDev``
(:func:`write_results`, read back by :func:`read_results` and by
:func:`bgrobust.tables.read_paper_results`), or as one long table (:func:`results_frame`).

Inputs are plain arrays and DataFrames, so the result objects of the experiment runner
(and a user's own code) call these functions; each ``read_*`` returns what its
``write_*`` was given.

Examples
--------
>>> import tempfile, numpy as np, pandas as pd
>>> folder = Path(tempfile.mkdtemp())
>>> feats = np.arange(6, dtype=np.float32).reshape(3, 2)
>>> crops = pd.DataFrame({"strain": ["s1", "s1", "s2"], "plate": [1, 1, 2]})
>>> path = write_parquet(folder / "pifia.parquet", feats, crops, metadata={"layer": "conv8"})
>>> list(pd.read_parquet(path).columns)
['Metadata_strain', 'Metadata_plate', 'feature_0', 'feature_1']
>>> back = read_parquet(path)
>>> np.array_equal(back.features, feats), back.metadata
(True, {'layer': 'conv8'})
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import atomic_file
from .constraints import Choice, Optional, String, check_value
from .tables import read_paper_results
from .tables import write_results as _write_paper_layout
from .vocabulary import EXPERIMENTS, TRIPLET_EXPERIMENTS

__all__ = ["METADATA_PREFIX", "FEATURE_PREFIX", "Exported", "feature_names", "to_anndata", "write_h5ad",
           "read_h5ad", "to_profiles", "from_profiles", "write_parquet", "read_parquet",
           "results_frame", "write_results", "read_results"]

#: Prefix of the crop-table columns in a profile table (CellProfiler / pycytominer convention).
METADATA_PREFIX = "Metadata_"
#: Default prefix of the feature columns (``feature_0``, ``feature_1``, ...).
FEATURE_PREFIX = "feature_"
#: Key of the provenance mapping in ``AnnData.uns`` and in the parquet file's key-value metadata.
UNS_KEY = "bgrobust"
#: Compression of the ``.h5ad`` arrays (h5py's filters; ``None``: uncompressed).
H5AD_COMPRESSION = ("gzip", "lzf")
#: Compression of the parquet files (pyarrow's codecs).
PARQUET_COMPRESSION = ("snappy", "zstd", "gzip", "none")


@dataclass
class Exported:
    """What :func:`read_h5ad` and :func:`read_parquet` return: the inputs of the writer.

    Attributes
    ----------
    features : ndarray
        ``(n_crops, n_features)`` float32.
    obs : DataFrame
        The crop table, one row per crop, with its original column names.
    var_names : list of str
        The feature names.
    metadata : dict
        The provenance mapping given to the writer (empty if none).
    """

    features: np.ndarray
    obs: pd.DataFrame
    var_names: list[str]
    metadata: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- checks
def feature_names(n: int, prefix: str = FEATURE_PREFIX) -> list[str]:
    """Default names of ``n`` features: ``prefix`` and a 0-based number.

    Examples
    --------
    >>> feature_names(3)
    ['feature_0', 'feature_1', 'feature_2']
    """
    check_value(prefix, String(), "feature_names: prefix")
    return [f"{prefix}{i}" for i in range(int(n))]


def _check(features, obs, var_names, where: str) -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """Validate the three inputs of every writer; return them as float32, a clean table, names."""
    arr = np.asarray(features)
    if arr.ndim != 2:
        raise ValueError(f"{where}: features must be a 2-D array (n_crops, n_features), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{where}: features must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise ValueError(f"{where}: features hold NaN or infinite values in {len(rows)} row(s), "
                         f"e.g. row {int(rows[0])}")
    if not isinstance(obs, pd.DataFrame):
        raise TypeError(f"{where}: obs (the crop table) must be a pandas DataFrame, got {type(obs).__name__}")
    if len(obs) != len(arr):
        raise ValueError(f"{where}: the crop table has {len(obs)} rows but features has {len(arr)}; "
                         f"one row per crop, in the same order, is expected")
    names = [str(c) for c in obs.columns]
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ValueError(f"{where}: the crop table has duplicate column names {dup}")
    if var_names is None:
        var_names = feature_names(arr.shape[1])
    var_names = [str(v) for v in var_names]
    if len(var_names) != arr.shape[1]:
        raise ValueError(f"{where}: var_names has {len(var_names)} names for {arr.shape[1]} features")
    dup = sorted({v for v in var_names if var_names.count(v) > 1})
    if dup:
        raise ValueError(f"{where}: var_names are not unique, e.g. {dup[:3]}")
    clash = sorted(set(var_names) & {METADATA_PREFIX + c for c in names})
    if clash:
        raise ValueError(f"{where}: feature names {clash[:3]} clash with the metadata columns")
    prefixed = [v for v in var_names if v.startswith(METADATA_PREFIX)]
    if prefixed:
        raise ValueError(f"{where}: feature names must not start with {METADATA_PREFIX!r} (they would be "
                         f"read as crop-table columns), e.g. {prefixed[0]!r}")
    table = obs.reset_index(drop=True).copy()
    table.columns = names
    return arr, table, var_names


def _metadata(metadata, where: str) -> dict:
    """A JSON round-trippable copy of the provenance mapping."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"{where}: metadata must be a mapping (e.g. {{'extractor': 'pifia', 'layer': "
                        f"'conv8'}}), got {type(metadata).__name__}")
    try:
        return json.loads(json.dumps(dict(metadata)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: metadata must hold only JSON values (str, numbers, bools, None, "
                         f"lists, mappings): {exc}") from None


def _plain_obs(table: pd.DataFrame) -> pd.DataFrame:
    """The crop table with columns h5py can store: object columns of non-strings become strings."""
    out = table.copy()
    for col in out.columns:
        if out[col].dtype == object:
            values = out[col]
            if not values.map(lambda v: v is None or isinstance(v, str)).all():
                out[col] = values.map(lambda v: None if v is None else str(v))
    return out


# --------------------------------------------------------------------------- AnnData
def _anndata():
    """Import anndata, or say how to install it."""
    try:
        import anndata
    except ImportError:
        raise ImportError("bgrobust.export: AnnData output needs the anndata package: "
                          "pip install -c constraints.txt -e \".[export]\" (anndata 0.12 requires "
                          "pandas < 3); write_parquet needs nothing more") from None
    return anndata


def to_anndata(features, obs: pd.DataFrame, *, var_names: Sequence[str] | None = None,
               metadata: Mapping | None = None):
    """Features and their crop table as an :class:`anndata.AnnData`.

    Parameters
    ----------
    features : array-like, shape (n_crops, n_features)
        One row per crop (any numeric dtype; stored as float32).
    obs : DataFrame
        The crop table, one row per crop in the same order.  Its index is replaced by
        ``"0", "1", ...``; object columns of non-string values are stored as strings.
    var_names : sequence of str, optional
        Feature names (default :func:`feature_names`).
    metadata : mapping, optional
        Provenance, stored as ``uns["bgrobust"]`` (JSON values only).

    Returns
    -------
    anndata.AnnData

    Raises
    ------
    ValueError, TypeError
        Mismatched rows, a non-2-D or non-finite feature array, duplicate names,
        non-JSON metadata.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> adata = to_anndata(np.ones((2, 3)), pd.DataFrame({"strain": ["a", "b"]}), metadata={"setting": "base"})  # doctest: +SKIP
    >>> adata.shape, list(adata.obs.columns), adata.uns["bgrobust"]["setting"]  # doctest: +SKIP
    ((2, 3), ['strain'], 'base')
    """
    anndata = _anndata()
    arr, table, names = _check(features, obs, var_names, "to_anndata")
    meta = _metadata(metadata, "to_anndata")
    table = _plain_obs(table)
    table.index = [str(i) for i in range(len(table))]
    return anndata.AnnData(X=arr, obs=table, var=pd.DataFrame(index=pd.Index(names, dtype=object)),
                           uns={UNS_KEY: meta})


def write_h5ad(path, features, obs: pd.DataFrame, *, var_names: Sequence[str] | None = None,
               metadata: Mapping | None = None, compression: str | None = "gzip") -> Path:
    """Write features and their crop table as an ``.h5ad`` file, atomically.

    Parameters
    ----------
    path : path
        The file to write (``.h5ad``); its folder is created.
    features, obs, var_names, metadata
        As in :func:`to_anndata`.
    compression : {"gzip", "lzf"} or None
        Compression of the arrays.

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd
    >>> path = write_h5ad(Path(tempfile.mkdtemp()) / "f.h5ad", np.eye(2), pd.DataFrame({"plate": [1, 2]}))  # doctest: +SKIP
    >>> read_h5ad(path).obs["plate"].tolist()  # doctest: +SKIP
    [1, 2]
    """
    path = Path(path)
    if path.suffix != ".h5ad":
        raise ValueError(f"write_h5ad: {path} should end in .h5ad")
    check_value(compression, Optional(Choice(H5AD_COMPRESSION)), "write_h5ad: compression")
    adata = to_anndata(features, obs, var_names=var_names, metadata=metadata)
    with atomic_file(path) as tmp:
        adata.write_h5ad(tmp, compression=compression)
    return path


def _existing_file(path, who: str) -> Path:
    """``path`` as a Path, or FileNotFoundError naming the reader and the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{who}: {path} does not exist")
    return path


def read_h5ad(path) -> Exported:
    """Read an ``.h5ad`` file written by :func:`write_h5ad` (or any AnnData with dense ``X``).

    Returns
    -------
    Exported
        The features, the crop table (default index), the feature names and
        ``uns["bgrobust"]`` (empty when absent).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = _existing_file(path, "read_h5ad")
    anndata = _anndata()
    adata = anndata.read_h5ad(path)
    x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    meta = adata.uns.get(UNS_KEY, {})
    return Exported(features=x.astype(np.float32, copy=False), obs=adata.obs.reset_index(drop=True),
                    var_names=[str(v) for v in adata.var_names], metadata=_to_plain(meta))


def _to_plain(value):
    """``uns`` as read by anndata (numpy scalars and arrays) back to JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [_to_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------- parquet profiles
def to_profiles(features, obs: pd.DataFrame, *, var_names: Sequence[str] | None = None,
                prefix: str = METADATA_PREFIX) -> pd.DataFrame:
    """One table: the crop table as ``Metadata_*`` columns, then one column per feature.

    Parameters
    ----------
    features, obs, var_names
        As in :func:`to_anndata`.
    prefix : str
        Prefix of the crop-table columns (the convention: ``"Metadata_"``).

    Returns
    -------
    DataFrame

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> list(to_profiles(np.zeros((1, 2)), pd.DataFrame({"well": ["A01"]})).columns)
    ['Metadata_well', 'feature_0', 'feature_1']
    """
    check_value(prefix, String(), "to_profiles: prefix")
    arr, table, names = _check(features, obs, var_names, "to_profiles")
    table.columns = [prefix + c for c in table.columns]
    feats = pd.DataFrame(arr, columns=names)
    return pd.concat([table, feats], axis=1)


def from_profiles(profiles: pd.DataFrame, *, prefix: str = METADATA_PREFIX) -> Exported:
    """Split a profile table into features and crop table (the reverse of :func:`to_profiles`).

    Columns starting with ``prefix`` are the crop table (prefix removed); every other
    column is a feature.

    Examples
    --------
    >>> import pandas as pd
    >>> back = from_profiles(pd.DataFrame({"Metadata_well": ["A01"], "f": [0.5]}))
    >>> list(back.obs.columns), back.var_names, back.features.tolist()
    (['well'], ['f'], [[0.5]])
    """
    check_value(prefix, String(), "from_profiles: prefix")
    if not isinstance(profiles, pd.DataFrame):
        raise TypeError(f"from_profiles: expected a DataFrame, got {type(profiles).__name__}")
    meta_cols = [c for c in profiles.columns if str(c).startswith(prefix)]
    feat_cols = [c for c in profiles.columns if not str(c).startswith(prefix)]
    non_numeric = [c for c in feat_cols if not pd.api.types.is_numeric_dtype(profiles[c])]
    if non_numeric:
        raise ValueError(f"from_profiles: columns {non_numeric[:3]} are neither {prefix}* metadata nor "
                         f"numeric features")
    obs = profiles[meta_cols].reset_index(drop=True)
    obs.columns = [str(c)[len(prefix):] for c in meta_cols]
    feats = profiles[feat_cols].to_numpy(dtype=np.float32)
    return Exported(features=feats, obs=obs, var_names=[str(c) for c in feat_cols])


def write_parquet(path, features, obs: pd.DataFrame, *, var_names: Sequence[str] | None = None,
                  metadata: Mapping | None = None, compression: str = "zstd") -> Path:
    """Write :func:`to_profiles` as a parquet file, atomically; ``metadata`` in the file's key-value metadata.

    Parameters
    ----------
    path : path
        The file to write (``.parquet``); its folder is created.
    features, obs, var_names, metadata
        As in :func:`to_anndata`.
    compression : {"zstd", "snappy", "gzip", "none"}
        Parquet codec.

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd
    >>> path = write_parquet(Path(tempfile.mkdtemp()) / "f.parquet", np.eye(2), pd.DataFrame({"plate": [1, 2]}))
    >>> read_parquet(path).obs["plate"].tolist()
    [1, 2]
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix != ".parquet":
        raise ValueError(f"write_parquet: {path} should end in .parquet")
    check_value(compression, Choice(PARQUET_COMPRESSION), "write_parquet: compression")
    meta = _metadata(metadata, "write_parquet")
    table = pa.Table.from_pandas(to_profiles(features, obs, var_names=var_names), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           UNS_KEY.encode(): json.dumps(meta).encode()})
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression=compression)
    return path


def read_parquet(path, *, prefix: str = METADATA_PREFIX) -> Exported:
    """Read a profile parquet file (:func:`write_parquet`, or any table with ``Metadata_*`` columns).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    """
    import pyarrow.parquet as pq

    path = _existing_file(path, "read_parquet")
    table = pq.read_table(path)
    out = from_profiles(table.to_pandas(), prefix=prefix)
    raw = (table.schema.metadata or {}).get(UNS_KEY.encode())
    out.metadata = json.loads(raw) if raw else {}
    return out


# --------------------------------------------------------------------------- per-pair results
def results_frame(results: Mapping) -> pd.DataFrame:
    """Per-pair results of several models and experiments as one long table.

    Parameters
    ----------
    results : mapping
        ``{model: {experiment: DataFrame}}`` in the paper's CSV layout
        (``Location1, Location2, [Background,] Accuracy, StdDev``).

    Returns
    -------
    DataFrame
        ``model, experiment, Location1, Location2, Background, Accuracy, StdDev``
        (``Background`` empty for the pair experiments), experiments in the book's order.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"Location1": ["actin"], "Location2": ["ER"], "Accuracy": [0.9], "StdDev": [0.01]})
    >>> results_frame({"pifia": {"base": df}})[["model", "experiment", "Accuracy"]].to_dict("records")
    [{'model': 'pifia', 'experiment': 'base', 'Accuracy': 0.9}]
    """
    _check_nested(results, "results_frame")
    frames = []
    for model, exps in results.items():
        for exp in sorted(exps, key=lambda e: (EXPERIMENTS.index(e) if e in EXPERIMENTS else len(EXPERIMENTS), e)):
            df = exps[exp].copy()
            if "Background" not in df.columns:
                df["Background"] = None
            df.insert(0, "experiment", exp)
            df.insert(0, "model", model)
            frames.append(df[["model", "experiment", "Location1", "Location2", "Background", "Accuracy", "StdDev"]])
    return pd.concat(frames, ignore_index=True)


def _check_nested(results, where: str) -> None:
    if not isinstance(results, Mapping) or not results or not all(
            isinstance(v, Mapping) and v for v in results.values()):
        raise ValueError(f"{where}: expected a non-empty mapping {{model: {{experiment: DataFrame}}}}")


def write_results(results: Mapping, folder) -> list[Path]:
    """Write per-pair results in the paper's layout: ``folder/<model>/results_<experiment>.csv``.

    Parameters
    ----------
    results : mapping
        ``{model: {experiment: DataFrame}}``; each frame has ``Location1, Location2,
        Accuracy, StdDev`` and, for the triplet experiments (``diff``, ``batch``),
        ``Background``; other columns are not written.  A long table from
        :func:`results_frame` is accepted too.
    folder : path

    Returns
    -------
    list of Path
        The files written (each atomically).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> df = pd.DataFrame({"Location1": ["actin"], "Location2": ["ER"], "Accuracy": [0.9], "StdDev": [0.01]})
    >>> folder = Path(tempfile.mkdtemp())
    >>> [p.relative_to(folder).as_posix() for p in write_results({"pifia": {"base": df}}, folder)]
    ['pifia/results_base.csv']
    >>> read_results(folder)["pifia"]["base"]["Accuracy"].tolist()
    [0.9]
    """
    if isinstance(results, pd.DataFrame):
        results = _from_frame(results)
    _check_nested(results, "write_results")
    nested = {}
    for model, exps in results.items():
        check_value(model, String(), "write_results: model key")
        nested[model] = {exp: (df if exp in TRIPLET_EXPERIMENTS else df.drop(columns=["Background"], errors="ignore"))
                         for exp, df in exps.items()}
    return _write_paper_layout(nested, folder)


def _from_frame(frame: pd.DataFrame) -> dict:
    missing = [c for c in ("model", "experiment") if c not in frame.columns]
    if missing:
        raise ValueError(f"write_results: a long results table needs the columns model and experiment "
                         f"(missing {missing})")
    out: dict = {}
    for (model, exp), df in frame.groupby(["model", "experiment"], sort=False):
        out.setdefault(str(model), {})[str(exp)] = df.drop(columns=["model", "experiment"]).reset_index(drop=True)
    return out


def read_results(folder) -> dict[str, dict[str, pd.DataFrame]]:
    """Read what :func:`write_results` wrote (the paper's layout): ``{model: {experiment: DataFrame}}``.

    The same reader as :func:`bgrobust.tables.read_paper_results`, so the paper's own
    result files and this book's can be compared with one call.
    """
    return read_paper_results(folder)
