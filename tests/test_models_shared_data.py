"""PIFiA's released checkpoint index (shared data) against our PIFiA and the converter's name table.

``pifia_weights_i0.index.parsed.txt`` lists every variable of the original TF2 checkpoint with
its dtype and shape (the weights themselves are not available). Every float variable must map,
through :data:`bgrobust.models.convert.PIFIA_TF_NAMES`, to a state-dict entry of
``build("pifia", width=1.0, n_classes=4049)`` with the converted shape, and every state-dict
tensor (except the ``num_batches_tracked`` counters) must be covered.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from bgrobust import models as M
from bgrobust.models import convert
from conftest import SHARED_DATA

INDEX = SHARED_DATA / "pifia" / "pifia_weights_i0.index.parsed.txt"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not INDEX.exists(), reason=f"shared data not available: {INDEX}"),
]

_LINE = re.compile(r"^(?P<name>\S+)\s+(?P<dtype>\w+)\s+\[(?P<shape>[^\]]*)\]\s+shard=(?P<shard>\d+)")


def _index() -> dict[str, tuple[str, tuple[int, ...]]]:
    entries = {}
    for line in INDEX.read_text().splitlines():
        m = _LINE.match(line)
        if m:
            shape = tuple(int(s) for s in m["shape"].split(",") if s.strip())
            entries[m["name"]] = (m["dtype"], shape)
    return entries


@pytest.fixture(scope="module")
def index():
    return _index()


@pytest.fixture(scope="module")
def state():
    return M.build("pifia", width=1.0, n_classes=4049).state_dict()


def _converted_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    if layout == "conv":  # HWIO -> OIHW
        return (shape[3], shape[2], shape[0], shape[1])
    if layout == "dense":  # [in, out] -> [out, in]
        return (shape[1], shape[0])
    return shape


def test_index_lists_the_expected_variables(index):
    floats = {k: v for k, v in index.items() if v[0] == "float32"}
    assert len(floats) == 54
    assert set(index) - set(floats) == {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    assert all(k.endswith(convert.TF2_SUFFIX) for k in floats)
    n_floats = sum(int(np.prod(shape)) for _, shape in floats.values())
    assert n_floats == 2_732_689
    text = INDEX.read_text()
    assert f"1: {4 * n_floats}" in text  # bytes per shard: all weights are float32 in shard 1


def test_every_checkpoint_variable_maps_to_our_state_dict(index, state):
    mapped = set()
    for name, (dtype, shape) in index.items():
        if dtype != "float32":
            continue
        base = name[: -len(convert.TF2_SUFFIX)]
        assert base in convert.PIFIA_TF_NAMES, name
        key, layout = convert.PIFIA_TF_NAMES[base]
        assert key in state, key
        assert tuple(state[key].shape) == _converted_shape(shape, layout), (name, key)
        mapped.add(key)
    unmapped = {k for k in state if not k.endswith("num_batches_tracked")} - mapped
    assert not unmapped
    in_index = {n[: -len(convert.TF2_SUFFIX)] for n, v in index.items() if v[0] == "float32"}
    assert set(convert.PIFIA_TF_NAMES) == in_index


def test_a_checkpoint_of_these_shapes_loads_strictly(index):
    rng = np.random.default_rng(0)
    variables = {
        name: rng.standard_normal(shape).astype(np.float32)
        for name, (dtype, shape) in index.items()
        if dtype == "float32"
    }
    variables["_CHECKPOINTABLE_OBJECT_GRAPH"] = np.array(b"")
    converted = convert.pifia_from_tf(variables)
    model = M.build("pifia", n_classes=4049)
    model.load_state_dict(converted, strict=True)
    kernel = variables["conv5/kernel" + convert.TF2_SUFFIX]
    assert torch.equal(model.conv5.weight[7, 3], torch.from_numpy(kernel[:, :, 3, 7]))
    d1 = variables["d1/kernel" + convert.TF2_SUFFIX]
    assert torch.equal(model.d1.weight, torch.from_numpy(d1.T.copy()))
