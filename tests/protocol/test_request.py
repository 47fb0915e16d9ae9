"""Decoding requests: JSON (flat and nested) and binary tensors, and every framing error."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest

from service.arrays import ArrayLimits
from service.errors import InvalidInput, MalformedBody, PayloadTooLarge, ServiceError
from service.protocol.request import decode, decompress
from tests.protocol.wire import Request, Tensor

LIMITS = ArrayLimits(max_rank=8, max_elements=10_000)
X = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
Y = np.array([0, 3, 1], dtype=np.int64)


def decoded(req: Request) -> dict[str, np.ndarray[Any, Any]]:
    body, headers = req.encode()
    out = decode(bytearray(body), headers.get("Inference-Header-Content-Length"), LIMITS)
    return {t.name: t.array for t in out.inputs}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("nested", [True, False], ids=["nested", "flat"])
def test_tensors_decode_to_the_sent_arrays(binary: bool, nested: bool) -> None:
    got = decoded(
        Request(
            [
                Tensor("input", "FP32", X, binary, nested),
                Tensor("target", "INT64", Y, binary, nested),
            ]
        )
    )
    assert got["input"].dtype == np.float32
    assert got["target"].dtype == np.int64
    np.testing.assert_array_equal(got["input"], X)
    np.testing.assert_array_equal(got["target"], Y)


def test_mixed_binary_and_json_inputs_take_blobs_in_order() -> None:
    w = np.array([1.0, 2.0, 0.5, 1.5])
    got = decoded(
        Request(
            [
                Tensor("weight", "FP64", w),
                Tensor("target", "INT64", Y, binary=False),
                Tensor("input", "FP32", X),
            ]
        )
    )
    np.testing.assert_array_equal(got["weight"], w)
    np.testing.assert_array_equal(got["input"], X)


def test_binary_tensors_are_views_of_the_body() -> None:
    body, headers = Request([Tensor("input", "FP32", X)]).encode()
    buffer = bytearray(body)
    arr = decode(buffer, headers["Inference-Header-Content-Length"], LIMITS).inputs[0].array
    assert np.shares_memory(arr, np.frombuffer(buffer, np.uint8))


def test_request_fields_are_kept() -> None:
    req = Request(
        [Tensor("input", "FP32", X)],
        outputs=[{"name": "loss", "parameters": {"binary_data": False}}, {"name": "reference"}],
        parameters={"reduction": "sum", "binary_data_output": True},
        id="req-7",
    )
    body, headers = req.encode()
    out = decode(body, headers["Inference-Header-Content-Length"], LIMITS)
    assert out.id == "req-7"
    assert out.parameters["reduction"] == "sum"
    assert out.binary_data_output
    assert out.outputs is not None
    assert [(o.name, o.binary) for o in out.outputs] == [("loss", False), ("reference", None)]


Made = tuple[bytes, str | None]
TWO_FLOATS = np.array([1.0, 2.0], np.float32).tobytes()
BIN8 = {"binary_data_size": 8}


def _in(datatype: str = "FP32", shape: Any = (2,), **extra: Any) -> dict[str, Any]:
    """One input entry; ``shape`` is sent as given (tuples become lists)."""
    shape = list(shape) if isinstance(shape, tuple) else shape
    return {"name": "input", "shape": shape, "datatype": datatype, **extra}


def _json(*inputs: dict[str, Any], **top: Any) -> Made:
    return orjson.dumps({"inputs": list(inputs), **top}), None


def _framed(entry: dict[str, Any], blob: bytes, header: str | None = None, **top: Any) -> Made:
    head = orjson.dumps({"inputs": [entry], **top})
    return head + blob, str(len(head)) if header is None else header


def _fp32_bin(blob: bytes = TWO_FLOATS, header: str | None = None) -> Made:
    return _framed(_in(parameters=BIN8), blob, header)


OK_IN = _in(data=[1, 2])

#: (id, request, error class, words the message must contain)
BAD: list[tuple[str, Callable[[], Made], type[ServiceError], str]] = [
    ("not json", lambda: (b"{nope", None), MalformedBody, "not valid JSON"),
    ("binary without header", lambda: (_fp32_bin()[0], None), MalformedBody, "needs Inference"),
    ("json not an object", lambda: (b"[1, 2]", None), MalformedBody, "JSON object"),
    ("no inputs", lambda: (b'{"outputs": []}', None), InvalidInput, "inputs"),
    ("empty inputs", lambda: _json(), InvalidInput, "non-empty"),
    ("input not an object", lambda: (b'{"inputs": [3]}', None), InvalidInput, "inputs[0]"),
    (
        "no name",
        lambda: _json({"shape": [1], "datatype": "FP32", "data": [1]}),
        InvalidInput,
        "name",
    ),
    ("unknown datatype", lambda: _json(_in("FP8", data=[1, 2])), InvalidInput, "unknown datatype"),
    ("bytes datatype", lambda: _json(_in("BYTES", data=["a", "b"])), InvalidInput, "strings"),
    ("negative dim", lambda: _json(_in(shape=[-1], data=[1])), InvalidInput, "non-negative"),
    ("fractional dim", lambda: _json(_in(shape=[1.5], data=[1])), InvalidInput, "shape"),
    ("shape not a list", lambda: _json(_in(shape=2, data=[1, 2])), InvalidInput, "shape"),
    ("rank over limit", lambda: _json(_in(shape=[1] * 9, data=[1])), InvalidInput, "rank"),
    ("huge dim beside a zero", lambda: _json(_in(shape=[0, 2**62], data=[])), InvalidInput, "dim"),
    (
        "too many elements",
        lambda: _json(_in(shape=[10**9] * 2, parameters=BIN8)),
        InvalidInput,
        "exceed",
    ),
    (
        "data and binary",
        lambda: _framed(_in(data=[1, 2], parameters=BIN8), TWO_FLOATS),
        MalformedBody,
        "both",
    ),
    ("neither data nor binary", lambda: _json(_in()), MalformedBody, "neither"),
    ("json count mismatch", lambda: _json(_in(data=[1, 2, 3])), MalformedBody, "3 elements"),
    ("ragged json", lambda: _json(_in(shape=[3], data=[[1, 2], [3]])), InvalidInput, "ragged"),
    ("string in json", lambda: _json(_in(data=[1, "a"])), InvalidInput, "string"),
    ("null in json", lambda: _json(_in(data=[1, None])), InvalidInput, "null"),
    (
        "size disagrees with shape",
        lambda: _framed(_in(parameters={"binary_data_size": 4}), TWO_FLOATS[:4]),
        MalformedBody,
        "needs 2 x 4 = 8",
    ),
    ("missing bytes", lambda: _fp32_bin(TWO_FLOATS[:6]), MalformedBody, "past the end"),
    ("leftover bytes", lambda: _fp32_bin(TWO_FLOATS + b"xx"), MalformedBody, "2 bytes follow"),
    ("bytes after json-only", lambda: _framed(OK_IN, b"abc"), MalformedBody, "3 bytes follow"),
    ("header past the end", lambda: _fp32_bin(header="999"), MalformedBody, "only"),
    ("header not a number", lambda: _fp32_bin(header="12a"), MalformedBody, "byte count"),
    ("negative header", lambda: _fp32_bin(header="-5"), MalformedBody, "byte count"),
    ("header zero", lambda: _fp32_bin(header="0"), MalformedBody, "raw binary"),
    ("header cuts the json", lambda: _fp32_bin(header="10"), MalformedBody, "not valid JSON"),
    (
        "size a string",
        lambda: _framed(_in(parameters={"binary_data_size": "8"}), TWO_FLOATS),
        InvalidInput,
        "binary_data_size",
    ),
    (
        "size a boolean",
        lambda: _framed(_in(parameters={"binary_data_size": True}), TWO_FLOATS),
        InvalidInput,
        "binary_data_size",
    ),
    ("duplicate inputs", lambda: _json(OK_IN, OK_IN), InvalidInput, "twice"),
    ("id not a string", lambda: _json(OK_IN, id=5), InvalidInput, "id"),
    ("parameters not an object", lambda: _json(OK_IN, parameters=[1]), InvalidInput, "parameters"),
    ("outputs not a list", lambda: _json(OK_IN, outputs={}), InvalidInput, "outputs"),
    ("output without name", lambda: _json(OK_IN, outputs=[{}]), InvalidInput, "outputs[0]"),
    (
        "binary_data not a bool",
        lambda: _json(OK_IN, outputs=[{"name": "loss", "parameters": {"binary_data": 1}}]),
        InvalidInput,
        "binary_data",
    ),
    (
        "duplicate outputs",
        lambda: _json(OK_IN, outputs=[{"name": "loss"}] * 2),
        InvalidInput,
        "twice",
    ),
    (
        "bool bytes not 0/1",
        lambda: _framed(_in("BOOL", parameters={"binary_data_size": 2}), b"\x01\x07"),
        InvalidInput,
        "0 or 1",
    ),
]


@pytest.mark.parametrize(("make", "error", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_requests_are_refused(
    make: Callable[[], tuple[bytes, str | None]], error: type[ServiceError], words: str
) -> None:
    body, header = make()
    with pytest.raises(error) as info:
        decode(bytearray(body), header, LIMITS)
    assert words in info.value.detail


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies(encoding: str) -> None:
    raw = b'{"inputs": []}' * 50
    packed = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    assert decompress(packed, encoding.upper(), 10_000) == raw
    with pytest.raises(PayloadTooLarge):
        decompress(packed, encoding, 100)
    with pytest.raises(MalformedBody, match="truncated"):
        decompress(packed[: len(packed) // 2], encoding, 10_000)


@pytest.mark.parametrize(
    ("encoding", "body", "words"),
    [("br", b"x", "unsupported Content-Encoding"), ("gzip", b"not gzip", "not valid gzip")],
)
def test_bad_compression(encoding: str, body: bytes, words: str) -> None:
    with pytest.raises(MalformedBody, match=words):
        decompress(body, encoding, 1000)


def test_identity_encoding_is_no_op() -> None:
    body = bytearray(b"{}")
    assert decompress(body, None, 10) is body
    assert decompress(body, "identity", 10) is body
