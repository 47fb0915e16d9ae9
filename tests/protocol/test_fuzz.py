"""Whatever bytes arrive, the exchange ends in a response or a ``ServiceError`` (a 4xx/5xx the
service chose), never in an unexpected exception (a 500) or a hang."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from service.dataplane import Dataplane
from service.errors import ServiceError
from service.protocol.infer import infer

NAMES = st.sampled_from(["input", "target", "weight", "logits", ""])
DATATYPES = st.sampled_from(
    ["FP32", "FP64", "FP16", "BF16", "INT64", "INT8", "UINT8", "BOOL", "BYTES", "fp32"]
)
SCALARS = st.one_of(
    st.integers(-5, 5), st.floats(-3, 3), st.booleans(), st.none(), st.text(max_size=2)
)
SHAPES = st.one_of(
    st.lists(st.integers(-1, 4), max_size=3), st.integers(-(2**40), 2**40), st.none()
)
OUTPUTS = st.sampled_from(["loss", "per_sample", "reference", "grad_input", "grad_target", "x"])
PARAMETERS = st.dictionaries(
    st.sampled_from(
        [
            "reduction",
            "ignore_index",
            "label_smoothing",
            "dtype",
            "reference",
            "binary_data_size",
            "binary_data",
        ]
    ),
    st.one_of(SCALARS, st.sampled_from(["mean", "none", "sum", "float16", "bfloat16"])),
    max_size=3,
)


@st.composite
def tensors(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": draw(NAMES),
        "datatype": draw(DATATYPES),
        "shape": draw(SHAPES),
    }
    if draw(st.booleans()):
        entry["data"] = draw(
            st.one_of(
                st.lists(SCALARS, max_size=8),
                st.lists(st.lists(SCALARS, max_size=4), max_size=3),
                SCALARS,
            )
        )
    if draw(st.booleans()):
        entry["parameters"] = {"binary_data_size": draw(st.one_of(st.integers(-2, 40), SCALARS))}
    return entry


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    doc: dict[str, Any] = {"inputs": draw(st.lists(tensors(), max_size=3))}
    if draw(st.booleans()):
        doc["parameters"] = draw(PARAMETERS)
    if draw(st.booleans()):
        names = draw(st.lists(OUTPUTS, max_size=3))
        doc["outputs"] = [{"name": n, "parameters": draw(PARAMETERS)} for n in names]
    head = orjson.dumps(doc)
    tail = draw(st.binary(max_size=48))
    header = draw(
        st.one_of(st.none(), st.just(str(len(head))), st.integers(-1, len(head) + 60).map(str))
    )
    return head + tail, header


ITEMSIZE = {"FP32": 4, "FP64": 8, "FP16": 2, "BF16": 2, "INT64": 8, "INT8": 1, "UINT8": 1}


@st.composite
def framed(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """Well-framed binary requests with random bytes: NaN patterns, indices out of range, ..."""
    n, c = draw(st.integers(0, 3)), draw(st.integers(0, 4))
    x_type = draw(st.sampled_from(["FP32", "FP64", "FP16", "BF16"]))
    y_type = draw(st.sampled_from(["INT64", "INT8", "UINT8", "FP32"]))
    x = draw(st.binary(min_size=n * c * ITEMSIZE[x_type], max_size=n * c * ITEMSIZE[x_type]))
    y = draw(st.binary(min_size=n * ITEMSIZE[y_type], max_size=n * ITEMSIZE[y_type]))
    doc = {
        "inputs": [
            {
                "name": "input",
                "shape": [n, c],
                "datatype": x_type,
                "parameters": {"binary_data_size": len(x)},
            },
            {
                "name": "target",
                "shape": [n],
                "datatype": y_type,
                "parameters": {"binary_data_size": len(y)},
            },
        ],
        "parameters": draw(PARAMETERS),
    }
    head = orjson.dumps(doc)
    return head + x + y, str(len(head))


@given(st.one_of(bodies(), framed()))
def test_any_request_ends_in_a_response_or_a_service_error(
    dataplane: Dataplane, body: tuple[bytes, str | None]
) -> None:
    raw, header = body
    status = 200
    try:
        infer(dataplane, "cross_entropy", None, bytearray(raw), header)
    except ServiceError as exc:
        status = exc.status
    assert status == 200 or 400 <= status < 500
