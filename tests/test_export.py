"""bgrobust.export: features with their crop table as AnnData and as Metadata_* parquet,
per-pair results in the paper's CSV layout; every format read back as written."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bgrobust import export
from bgrobust.constraints import ParameterError
from conftest import SHARED_DATA
from bgrobust.tables import read_paper_results


@pytest.fixture
def crops():
    """A crop table as the dataset writes it (ints, strings, floats, a missing value) and features."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({
        "strain": ["S0001", "S0001", "S0002", "S0003", "S0003"],
        "orf": ["YAL001C", "YAL001C", "YBR002W", "YCL003C", None],
        "plate": [1, 1, 2, 3, 3],
        "well": ["A01", "A01", "B07", "C12", "C12"],
        "field": [0, 1, 0, 0, 1],
        "y0": [16, 80, 112, 48, 0],
        "x0": [32, 96, 0, 144, 16],
        "localization": ["actin", "actin", "ER", "nucleus", "nucleus"],
        "mean_gfp": [101.5, 98.25, 310.0, 55.125, 60.0],
        "valid": [True, True, False, True, True],
    }, index=[10, 11, 12, 13, 14])
    feats = rng.normal(size=(5, 7)).astype(np.float32)
    return feats, table


META = {"extractor": "pifia", "layer": "conv8", "pooling": "mean", "setting": "diff",
        "profile": "ci", "widths": [0.25, 1.0], "svm": {"C": 1.0, "folds": 5}}


def _same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False,
                                  check_categorical=False)


def test_h5ad_round_trip(tmp_path, crops):
    pytest.importorskip("anndata", reason="the export extra (anndata) is not installed")
    feats, table = crops
    path = export.write_h5ad(tmp_path / "out" / "pifia_diff.h5ad", feats, table, metadata=META)
    back = export.read_h5ad(path)
    np.testing.assert_array_equal(back.features, feats)
    assert back.var_names == [f"feature_{i}" for i in range(7)]
    assert back.metadata == META
    got = back.obs.copy()
    for col in got.columns:          # anndata stores strings as categoricals
        if isinstance(got[col].dtype, pd.CategoricalDtype):
            got[col] = got[col].astype(object).where(got[col].notna(), None)
    _same_table(got, table)


def test_h5ad_is_a_plain_anndata(tmp_path, crops):
    anndata = pytest.importorskip("anndata", reason="the export extra (anndata) is not installed")

    feats, table = crops
    names = [f"pc{i}" for i in range(7)]
    path = export.write_h5ad(tmp_path / "x.h5ad", feats, table, var_names=names)
    adata = anndata.read_h5ad(path)
    assert adata.shape == (5, 7) and list(adata.var_names) == names
    assert adata.obs["strain"].tolist() == table["strain"].tolist()
    assert adata.obs["plate"].tolist() == [1, 1, 2, 3, 3]


def test_parquet_round_trip_with_metadata_columns(tmp_path, crops):
    feats, table = crops
    path = export.write_parquet(tmp_path / "pifia_diff.parquet", feats, table, metadata=META)
    raw = pd.read_parquet(path)
    assert list(raw.columns[:table.shape[1]]) == [f"Metadata_{c}" for c in table.columns]
    assert list(raw.columns[table.shape[1]:]) == [f"feature_{i}" for i in range(7)]
    back = export.read_parquet(path)
    np.testing.assert_array_equal(back.features, feats)
    assert back.metadata == META
    _same_table(back.obs, table)


def test_profiles_in_memory_round_trip(crops):
    feats, table = crops
    back = export.from_profiles(export.to_profiles(feats, table))
    np.testing.assert_array_equal(back.features, feats)
    _same_table(back.obs, table)


@pytest.mark.parametrize("bad, message", [
    (lambda f, t: (f[:4], t), "4"),
    (lambda f, t: (f[0], t), "2-D"),
    (lambda f, t: (np.where(np.arange(35).reshape(5, 7) == 3, np.nan, f), t), "NaN"),
    (lambda f, t: (f, t.to_dict()), "DataFrame"),
])
def test_bad_inputs_are_named(tmp_path, crops, bad, message):
    feats, table = bad(*crops)
    with pytest.raises((ValueError, TypeError), match=message):
        export.write_parquet(tmp_path / "x.parquet", feats, table)


def test_bad_names_metadata_and_options(tmp_path, crops):
    feats, table = crops
    with pytest.raises(ValueError, match="not unique"):
        export.to_profiles(feats, table, var_names=["a"] * 7)
    with pytest.raises(ValueError, match="must not start with 'Metadata_'"):
        export.to_profiles(feats, table, var_names=[f"Metadata_{i}" for i in range(7)])
    with pytest.raises(ValueError, match="JSON"):
        export.write_parquet(tmp_path / "x.parquet", feats, table, metadata={"model": object()})
    with pytest.raises(ParameterError, match="write_h5ad: compression"):
        export.write_h5ad(tmp_path / "x.h5ad", feats, table, compression="bz2")
    with pytest.raises(ValueError, match=r"\.h5ad"):
        export.write_h5ad(tmp_path / "x.parquet", feats, table)
    assert not list(tmp_path.iterdir()), "a failed write left a file behind"


def _results():
    pairs = pd.DataFrame({"Location1": ["actin", "actin", "ER"], "Location2": ["ER", "nucleus", "nucleus"],
                          "Accuracy": [0.91, 0.875, 0.5], "StdDev": [0.01, 0.02, 0.05]})
    trip = pd.DataFrame({"Location1": ["actin", "actin"], "Location2": ["ER", "ER"],
                         "Background": ["nucleus", "vacuole"], "Accuracy": [0.7, 0.65], "StdDev": [0.03, 0.04]})
    return {"pifia": {"base": pairs, "diff": trip}, "pci": {"base": pairs.assign(Accuracy=[0.8, 0.7, 0.6])}}


def test_results_round_trip_in_the_paper_layout(tmp_path):
    results = _results()
    written = export.write_results(results, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "pci/results_base.csv", "pifia/results_base.csv", "pifia/results_diff.csv"]
    back = export.read_results(tmp_path)
    for model, exps in results.items():
        for exp, df in exps.items():
            _same_table(back[model][exp], df)


def test_results_long_table_round_trip(tmp_path):
    long = export.results_frame(_results())
    assert list(long.columns) == ["model", "experiment", "Location1", "Location2", "Background",
                                  "Accuracy", "StdDev"]
    assert len(long) == 3 + 2 + 3
    export.write_results(long, tmp_path)
    _same_table(export.results_frame(export.read_results(tmp_path)).sort_values(["model", "experiment", "Location1", "Location2", "Background"]),
                long.sort_values(["model", "experiment", "Location1", "Location2", "Background"]))


@pytest.mark.shared_data
def test_the_papers_own_results_survive_a_round_trip(tmp_path):
    folder = SHARED_DATA / "paper-results" / "swap_experiments" / "results"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    paper = read_paper_results(folder)
    export.write_results(paper, tmp_path)
    back = export.read_results(tmp_path)
    assert sorted(back) == sorted(paper)
    for model in paper:
        for exp in paper[model]:
            _same_table(back[model][exp], paper[model][exp])
