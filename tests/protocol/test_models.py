"""Losses as models: metadata from the registry, and requests mapped to keyword arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service import losses
from service.errors import InvalidInput
from service.losses import registry
from service.losses.base import Loss
from service.protocol.models import model_metadata, output_specs, to_loss_call
from service.protocol.request import InferenceRequest, InputTensor, RequestedOutput

losses.load()
LOSSES = list(registry.all_losses())
_ce = registry.get("cross_entropy")
assert _ce is not None
CE: Loss[Any] = _ce
X = np.zeros((2, 3), np.float32)
Y = np.array([0, 2])


def request(
    inputs: dict[str, tuple[str, np.ndarray[Any, Any]]],
    parameters: dict[str, Any] | None = None,
    outputs: list[str] | None = None,
) -> InferenceRequest:
    return InferenceRequest(
        id=None,
        inputs=[InputTensor(n, dt, a.shape, a, True) for n, (dt, a) in inputs.items()],
        outputs=None if outputs is None else [RequestedOutput(n, None) for n in outputs],
        parameters=parameters or {},
    )


@pytest.mark.parametrize("loss", LOSSES, ids=[loss.name for loss in LOSSES])
def test_metadata_lists_the_torch_arguments(loss: Loss[Any]) -> None:
    meta = model_metadata(loss, "float32")
    assert meta["name"] == loss.name
    assert [i["name"] for i in meta["inputs"]] == list(loss.tensor_inputs)
    names = [o["name"] for o in meta["outputs"]]
    assert names[:3] == ["loss", "per_sample", "reference"]
    for tensor in meta["inputs"] + meta["outputs"]:
        assert tensor["shape"]
        assert all(d == -1 for d in tensor["shape"])
        assert tensor["datatype"] in {"FP32", "FP64", "INT64"}


@pytest.mark.parametrize(
    ("datatype", "parameters", "expected"),
    [
        ("FP32", {}, "float32"),
        ("FP64", {}, "float64"),
        ("FP16", {}, "float16"),
        ("BF16", {}, "bfloat16"),
        ("FP16", {"dtype": "float64"}, "float64"),
        ("INT32", {}, None),
    ],
)
def test_compute_dtype_follows_the_input(
    datatype: str, parameters: dict[str, Any], expected: str | None
) -> None:
    call = to_loss_call(CE, request({"input": (datatype, X), "target": ("INT64", Y)}, parameters))
    assert call.body.get("dtype") == expected


def test_parameters_become_options_and_client_parameters_are_ignored() -> None:
    params = {
        "reduction": "sum",
        "ignore_index": 2,
        "reference": False,
        "sequence_id": 4,
        "priority": 1,
        "timeout": 9,
        "binary_data_output": True,
        "reductoin": "none",
    }
    call = to_loss_call(CE, request({"input": ("FP32", X), "target": ("INT64", Y)}, params))
    assert {k: call.body[k] for k in ("reduction", "ignore_index", "reference")} == {
        "reduction": "sum",
        "ignore_index": 2,
        "reference": False,
    }
    assert "sequence_id" not in call.body
    assert call.ignored_parameters == ["reductoin"]


@pytest.mark.parametrize(
    ("outputs", "include", "chosen"),
    [
        (None, None, ["loss", "per_sample", "reference"]),
        (["loss"], None, ["loss"]),
        (["grad_input", "loss"], ["grad"], ["grad_input", "loss"]),
        (["softmax", "grad_input"], ["grad", "softmax"], ["softmax", "grad_input"]),
        (["log_softmax"], ["log_softmax"], ["log_softmax"]),
    ],
)
def test_outputs_choose_the_extras(
    outputs: list[str] | None, include: list[str] | None, chosen: list[str]
) -> None:
    call = to_loss_call(CE, request({"input": ("FP32", X)}, outputs=outputs))
    assert call.body.get("include") == include
    assert [s.name for s in call.outputs] == chosen


@pytest.mark.parametrize(
    ("inputs", "parameters", "outputs", "field"),
    [
        ({"logits": ("FP32", X)}, {}, None, "inputs[0].name"),
        ({"input": ("FP32", X)}, {"target": 1}, None, "parameters.target"),
        ({"input": ("FP32", X)}, {}, ["loss", "probs"], "outputs[1].name"),
    ],
)
def test_names_outside_the_model_are_refused(
    inputs: dict[str, tuple[str, np.ndarray[Any, Any]]],
    parameters: dict[str, Any],
    outputs: list[str] | None,
    field: str,
) -> None:
    with pytest.raises(InvalidInput) as info:
        to_loss_call(CE, request(inputs, parameters, outputs))
    assert info.value.field == field


def test_grad_outputs_follow_the_differentiable_inputs() -> None:
    names = {s.name for s in output_specs(CE)}
    assert {"grad_input", "grad_target"} <= names
