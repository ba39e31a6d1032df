"""The SVM grid and feature extraction on a dask.distributed cluster.

Everything parallel in bgrobust goes through joblib: the SVM grid
(:func:`bgrobust.classify.evaluate_pairs` and the rest, ``n_jobs``) and feature extraction
(:func:`bgrobust.features.extract_layers`, ``n_jobs``: chunks of consecutive batches in
worker processes). Inside :func:`connect`, joblib's work goes to a dask.distributed
cluster instead of local processes, so the same calls with ``n_jobs=-1`` (every worker
core) run there, and give the same numbers (``tests/test_cluster.py``). Where a result is
cached, the cache is written by the calling process only.

``cluster`` is ``None`` (nothing changes: local joblib), ``"local"`` (a
:class:`distributed.LocalCluster` of ``n_workers`` single-threaded worker processes on this
machine) or a scheduler's address (``"tcp://host:8786"``), for example that of a SLURM
cluster started with dask-jobqueue::

    from dask_jobqueue import SLURMCluster
    slurm = SLURMCluster(cores=8, processes=8, memory="32GB", walltime="04:00:00")
    slurm.scale(jobs=16)
    print(slurm.scheduler_address)   # -> the profile's cluster: tcp://...

The workers need bgrobust installed at the same version (``pip install -c constraints.txt
-e ".[cluster]"``) and, for a manifest screen, the screen's files at the same paths.

Examples
--------
>>> with connect(None) as client:   # no cluster: local joblib, client is None
...     client is None
True
"""
from __future__ import annotations

from contextlib import contextmanager

__all__ = ["connect", "check_cluster"]


def check_cluster(cluster, where: str = "cluster"):
    """``cluster`` checked: ``None``, ``"local"`` or a scheduler address (``"tcp://host:port"``...)."""
    if cluster is None or cluster == "local":
        return cluster
    if isinstance(cluster, str) and "://" in cluster:
        return cluster
    raise ValueError(f"{where} must be None, 'local' or a dask scheduler address such as "
                     f"'tcp://host:8786', got {cluster!r}")


@contextmanager
def connect(cluster=None, *, n_workers: int | None = None, threads_per_worker: int = 1):
    """Send joblib's work (the SVM grid, feature extraction with ``n_jobs != 1``) to a dask cluster.

    Parameters
    ----------
    cluster : None, "local" or str
        ``None``: nothing changes (yields ``None``). ``"local"``: a LocalCluster started here
        and closed on exit. A scheduler address: a running cluster (left running on exit).
    n_workers : int, optional
        ``"local"`` only: worker processes (default: one per core).
    threads_per_worker : int
        ``"local"`` only: threads per worker (1: torch and the SVMs single-threaded in each).

    Yields
    ------
    distributed.Client or None
    """
    cluster = check_cluster(cluster)
    if cluster is None:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - the cluster extra is part of the test extra
        raise ImportError("a dask cluster needs dask and distributed: "
                          "pip install -c constraints.txt -e '.[cluster]'") from exc
    from joblib import parallel_config

    local = None
    if cluster == "local":
        if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int)
                                      or n_workers < 1):
            raise ValueError(f"connect: n_workers must be an integer >= 1, got {n_workers!r}")
        if isinstance(threads_per_worker, bool) or not isinstance(threads_per_worker, int) \
                or threads_per_worker < 1:
            raise ValueError(f"connect: threads_per_worker must be an integer >= 1, got {threads_per_worker!r}")
        local = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                             dashboard_address=None)
        client = Client(local)
    else:
        client = Client(cluster)
    try:
        with parallel_config(backend="dask"):
            yield client
    finally:
        client.close()
        if local is not None:
            local.close()
