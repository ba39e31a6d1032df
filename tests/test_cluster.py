"""bgrobust.cluster: the SVM grid and feature extraction on a dask LocalCluster give the local numbers."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("distributed", reason="the cluster extra (part of the test extra) is not installed")

from bgrobust import models  # noqa: E402
from bgrobust.classify import SVMProtocol, evaluate_pairs  # noqa: E402
from bgrobust.cluster import check_cluster, connect  # noqa: E402
from bgrobust.features import extract, extract_layers  # noqa: E402

CLASSES = ["actin", "ER", "Golgi", "vacuole", "nucleus"]


@pytest.fixture(scope="module")
def cluster():
    with connect("local", n_workers=2) as client:
        yield client


def _features(seed=0, n=20, d=6):
    rng = np.random.default_rng(seed)
    return {c: rng.normal(0.4 * i, 1.0, (n, d)) for i, c in enumerate(CLASSES)}


def test_svm_grid_on_a_local_cluster_equals_the_serial_grid(cluster):
    assert len(cluster.scheduler_info()["workers"]) == 2
    feats, protocol = _features(), SVMProtocol(n_per_class=20)
    serial = evaluate_pairs(feats, protocol, classes=CLASSES, n_jobs=1, progress=False)
    on_cluster = evaluate_pairs(feats, protocol, classes=CLASSES, n_jobs=-1, progress=False)
    assert len(serial) == 10
    assert serial.equals(on_cluster)


@pytest.mark.parametrize("name", ["pifia", "deeploc"])
def test_feature_extraction_on_a_local_cluster_equals_the_local_features(cluster, name):
    m = models.build(name, width=0.25, n_classes=15, random_state=0)
    crops = np.random.default_rng(1).integers(0, 4000, size=(150, 3, 64, 64)).astype(np.float32)
    here = extract_layers(m, crops, [models.get_spec(name).paper_layer, "conv2"], "mean", batch_size=16,
                          progress=False)
    there = extract_layers(m, crops, [models.get_spec(name).paper_layer, "conv2"], "mean", batch_size=16,
                           progress=False, n_jobs=-1)
    for layer in here:
        np.testing.assert_array_equal(there[layer], here[layer])


def test_extraction_over_local_processes_and_its_checks(tmp_path):
    m = models.build("pci", width=0.25, random_state=0)
    crops = np.random.default_rng(2).integers(0, 4000, size=(70, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(extract(m, crops, batch_size=8, progress=False, n_jobs=2),
                               extract(m, crops, batch_size=8, progress=False), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="n_jobs must be a non-zero integer"):
        extract(m, crops, progress=False, n_jobs=0)


def test_cluster_values_are_checked():
    assert check_cluster(None) is None and check_cluster("local") == "local"
    assert check_cluster("tcp://10.0.0.1:8786") == "tcp://10.0.0.1:8786"
    with pytest.raises(ValueError, match="cluster must be None, 'local' or a dask scheduler address"):
        check_cluster("slurm")
    with pytest.raises(ValueError, match="n_workers must be an integer >= 1"):
        with connect("local", n_workers=0):
            pass
