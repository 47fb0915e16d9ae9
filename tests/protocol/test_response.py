"""Encoding responses: binary or JSON per output, framing, and what JSON cannot carry."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from service.protocol.request import InferenceRequest, RequestedOutput
from service.protocol.response import encode, wants_binary
from tests.protocol.wire import split_response


def req(
    outputs: list[tuple[str, bool | None]] | None = None,
    default: bool | None = None,
    request_id: str | None = None,
) -> InferenceRequest:
    return InferenceRequest(
        id=request_id,
        inputs=[],
        outputs=None if outputs is None else [RequestedOutput(n, b) for n, b in outputs],
        parameters={} if default is None else {"binary_data_output": default},
    )


@pytest.mark.parametrize(
    ("request_", "datatype", "binary"),
    [
        (req(), "FP32", False),
        (req(default=True), "FP32", True),
        (req([("loss", True)]), "FP32", True),
        (req([("loss", False)], default=True), "FP32", False),
        (req([("loss", None)], default=True), "FP32", True),
        (req([("other", True)]), "FP32", False),
        (req([("loss", False)]), "FP16", True),
        (req([("loss", False)]), "BF16", True),
    ],
)
def test_binary_choice(request_: InferenceRequest, datatype: str, binary: bool) -> None:
    assert wants_binary(request_, "loss", datatype) is binary


OUTPUTS: list[tuple[str, str, np.ndarray[Any, Any]]] = [
    ("loss", "FP32", np.asarray(np.float32(1.25))),
    ("per_sample", "FP64", np.array([[0.5, 2.0], [1.0, 1.5]])),
    ("half", "FP16", np.array([0.5, -2.0], np.float16)),
    ("brain", "BF16", np.array([0.5, 3.0], np.float32)),
]


@pytest.mark.parametrize("default", [True, False])
def test_outputs_decode_to_the_encoded_arrays(default: bool) -> None:
    enc = encode(req(default=default, request_id="r1"), "m", "1", OUTPUTS, {"dtype": "float32"})
    assert enc.json_length is not None  # FP16/BF16 are binary regardless
    assert enc.headers() == {"Inference-Header-Content-Length": str(enc.json_length)}
    assert enc.media_type == "application/octet-stream"
    head = orjson.loads(enc.body[: enc.json_length])
    assert head["model_name"] == "m"
    assert head["model_version"] == "1"
    assert head["id"] == "r1"
    assert head["parameters"] == {"dtype": "float32"}
    binary = {o["name"] for o in head["outputs"] if "binary_data_size" in o.get("parameters", {})}
    assert binary == ({"loss", "per_sample", "half", "brain"} if default else {"half", "brain"})
    got = split_response(enc.body, str(enc.json_length))
    for name, _, arr in OUTPUTS:
        assert got[name].shape == arr.shape
        np.testing.assert_array_equal(got[name], arr)


def test_json_only_response_has_no_length_header() -> None:
    enc = encode(req(), "m", None, OUTPUTS[:2], {})
    assert enc.json_length is None
    assert enc.headers() == {}
    doc = orjson.loads(enc.body)
    assert "model_version" not in doc
    assert "id" not in doc
    assert doc["outputs"][1]["data"] == [0.5, 2.0, 1.0, 1.5]  # flat, row-major
    assert doc["outputs"][0] == {"name": "loss", "datatype": "FP32", "shape": [], "data": [1.25]}


def test_non_finite_json_values_are_tokens() -> None:
    values = np.array([np.nan, np.inf, -np.inf, 1.0])
    doc = orjson.loads(encode(req(), "m", None, [("x", "FP64", values)], {}).body)
    assert doc["outputs"][0]["data"] == ["NaN", "Infinity", "-Infinity", 1.0]
