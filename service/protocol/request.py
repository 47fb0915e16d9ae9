"""Decoding an inference request: the JSON header, its tensors, and the binary blobs after it.

The body is ``<JSON><blob><blob>...``. The ``Inference-Header-Content-Length`` header gives the
JSON's length in bytes; without it the whole body is JSON. Blobs belong, in order, to the inputs
whose ``parameters.binary_data_size`` is set, and must account for every byte after the JSON:
a blob too short, bytes left over, a size that disagrees with ``shape`` and ``datatype``, or an
input with both ``data`` and ``binary_data_size`` (or neither) is the client's framing error.
Nothing here looks at ``Content-Type``: tritonclient sends none, and aiohttp labels JSON bodies
``application/octet-stream``.

Every element count is checked against the limits *before* anything is allocated for it, so a
header that claims a huge shape costs nothing.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from service.arrays import ArrayError, ArrayLimits, to_array
from service.errors import InvalidInput, MalformedBody, PayloadTooLarge
from service.protocol.datatypes import DatatypeError, from_bytes, from_json, itemsize

Buffer = bytes | bytearray

HEADER_LENGTH = "inference-header-content-length"

#: Request parameters that clients (tritonclient, KServe) send on their own; never loss options.
CLIENT_PARAMETERS: frozenset[str] = frozenset(
    {
        "sequence_id",
        "sequence_start",
        "sequence_end",
        "priority",
        "timeout",
        "binary_data_output",
        "headers",
        "triton_enable_empty_final_response",
    }
)


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: npt.NDArray[Any]
    binary: bool


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool | None
    """``parameters.binary_data`` as sent; None when the client did not say."""


@dataclass(frozen=True)
class InferenceRequest:
    id: str | None
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] | None
    """None when the request lists no outputs: every output, with default settings."""
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def binary_data_output(self) -> bool:
        """The request-wide default for outputs without their own ``binary_data``."""
        return self.parameters.get("binary_data_output") is True


def decompress(raw: Buffer, encoding: str | None, max_bytes: int) -> Buffer:
    """Undo ``Content-Encoding: gzip|deflate`` (the header length counts decompressed bytes),
    never producing more than ``max_bytes``: a small bomb must not become a large body."""
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return raw
    enc = encoding.strip().lower()
    if enc not in ("gzip", "deflate"):
        raise MalformedBody(f"unsupported Content-Encoding {encoding!r}; use gzip or deflate")
    d = zlib.decompressobj(wbits=31 if enc == "gzip" else 15)
    try:
        out = bytearray(d.decompress(raw, max_bytes + 1))
        if len(out) <= max_bytes and not d.eof:
            out += d.flush()
    except zlib.error as exc:
        raise MalformedBody(f"the body is not valid {enc} data: {exc}") from None
    if len(out) > max_bytes:
        raise PayloadTooLarge(f"the decompressed body exceeds the limit of {max_bytes} bytes")
    if not d.eof:
        raise MalformedBody(f"the {enc} data is truncated")
    return out


def header_length(value: str | None, body_size: int) -> int:
    """Where the JSON ends, from ``Inference-Header-Content-Length`` (absent: the whole body)."""
    if value is None:
        return body_size
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise MalformedBody(f"Inference-Header-Content-Length {value!r} is not a byte count")
    length = int(text)
    if length == 0:
        raise MalformedBody(
            "Inference-Header-Content-Length 0 (a raw binary request without a JSON header) "
            "is not supported; send the JSON header first"
        )
    if length > body_size:
        raise MalformedBody(
            f"Inference-Header-Content-Length is {length} but the body has only {body_size} bytes"
        )
    return length


def decode(raw: Buffer, header: str | None, limits: ArrayLimits) -> InferenceRequest:
    """Decode a whole inference request body; raises ``MalformedBody`` / ``InvalidInput``."""
    json_end = header_length(header, len(raw))
    try:
        doc = orjson.loads(memoryview(raw)[:json_end])
    except orjson.JSONDecodeError as exc:
        hint = "" if header is not None else " (binary data needs Inference-Header-Content-Length)"
        raise MalformedBody(f"the inference request is not valid JSON{hint}: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedBody("the inference request must be a JSON object")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _invalid("id", "must be a string")
    parameters = _parameters(doc.get("parameters"), "parameters")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise _invalid("inputs", "must be a non-empty list of tensors")
    inputs: list[InputTensor] = []
    offset = json_end
    # a boolean could hide in data only where the JSON says true or false somewhere
    may_hold_bools = raw.find(b"true", 0, json_end) >= 0 or raw.find(b"false", 0, json_end) >= 0
    for i, item in enumerate(raw_inputs):
        tensor, offset = _input(item, i, raw, offset, limits, may_hold_bools)
        if any(t.name == tensor.name for t in inputs):
            raise _invalid(f"inputs[{i}].name", f"input {tensor.name!r} appears twice")
        inputs.append(tensor)
    if offset != len(raw):
        raise MalformedBody(
            f"{len(raw) - offset} bytes follow the last binary input; the binary_data_size "
            "values and Inference-Header-Content-Length must account for every byte"
        )
    return InferenceRequest(
        id=request_id,
        inputs=inputs,
        outputs=_outputs(doc.get("outputs")),
        parameters=parameters,
    )


def _input(
    item: Any, i: int, raw: Buffer, offset: int, limits: ArrayLimits, may_hold_bools: bool = True
) -> tuple[InputTensor, int]:
    where = f"inputs[{i}]"
    if not isinstance(item, dict):
        raise _invalid(where, "must be an object with name, shape, datatype and data")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid(f"{where}.name", "must be a non-empty string")
    where = f"inputs[{i}] ({name})"
    datatype = item.get("datatype")
    if not isinstance(datatype, str):
        raise _invalid(f"{where}.datatype", "must be a string such as FP32 or INT64")
    try:
        size = itemsize(datatype)
    except DatatypeError as exc:
        raise _invalid(f"{where}.datatype", str(exc)) from None
    shape = _shape(item.get("shape"), f"{where}.shape", limits)
    count = math.prod(shape)
    params = _parameters(item.get("parameters"), f"{where}.parameters")
    binary_size = params.get("binary_data_size")
    has_data = "data" in item
    if has_data == (binary_size is not None):
        raise MalformedBody(
            f"{where}: give exactly one of 'data' (JSON) and parameters.binary_data_size "
            f"(binary), not {'both' if has_data else 'neither'}"
        )
    if binary_size is not None:
        if type(binary_size) is not int or binary_size < 0:
            raise _invalid(f"{where}.parameters.binary_data_size", "must be a byte count")
        if binary_size != count * size:
            raise MalformedBody(
                f"{where}: binary_data_size is {binary_size} bytes but shape {list(shape)} of "
                f"{datatype} needs {count} x {size} = {count * size}"
            )
        if offset + binary_size > len(raw):
            raise MalformedBody(
                f"{where}: binary data runs past the end of the body ({binary_size} bytes "
                f"wanted at offset {offset}, the body has {len(raw)})"
            )
        try:
            arr = from_bytes(raw, offset, count, datatype)
        except DatatypeError as exc:
            raise _invalid(where, str(exc)) from None
        return InputTensor(name, datatype, shape, arr.reshape(shape), True), offset + binary_size
    try:
        values = _json_values(item["data"], limits, may_hold_bools)
        if values.size != count:
            raise MalformedBody(
                f"{where}: data holds {values.size} elements but shape {list(shape)} needs {count}"
            )
        arr = from_json(values, datatype)
    except (ArrayError, DatatypeError) as exc:
        raise _invalid(f"{where}.data", str(exc)) from None
    return InputTensor(name, datatype, shape, arr.reshape(shape), False), offset


def _json_values(data: Any, limits: ArrayLimits, may_hold_bools: bool = True) -> npt.NDArray[Any]:
    """Nested or flat JSON data as an int64, float64 or bool array (any rectangular nesting);
    ``may_hold_bools``: the request's JSON holds ``true`` or ``false`` somewhere."""
    if may_hold_bools and isinstance(data, list) and data and _all_bools(data):
        return np.asarray(data, dtype=np.bool_)
    if isinstance(data, bool):
        return np.asarray(data)
    # orjson's lists: finite numbers
    return to_array(data, limits=limits, may_hold_bools=may_hold_bools, parsed=True)


def _all_bools(data: list[Any]) -> bool:
    node: Any = data
    while isinstance(node, list) and node:
        node = node[0]
    if type(node) is not bool:
        return False
    try:
        arr = np.asarray(data, dtype=object)
    except ValueError:
        return False
    return arr.dtype == object and all(type(x) is bool for x in arr.flat)


def _shape(value: Any, where: str, limits: ArrayLimits) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise _invalid(where, "must be a list of non-negative integers")
    if len(value) > limits.max_rank:
        raise _invalid(where, f"rank {len(value)} exceeds the maximum rank {limits.max_rank}")
    if any(d > limits.max_elements for d in value):
        # checked on its own: beside a zero dimension, the product alone would not catch it
        raise _invalid(where, f"a dimension exceeds the maximum of {limits.max_elements}")
    count = math.prod(value)
    if count > limits.max_elements:
        raise _invalid(where, f"{count} elements exceed the maximum of {limits.max_elements}")
    return tuple(value)


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(where, "must be an object")
    return value


def _outputs(value: Any) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _invalid("outputs", "must be a list of {name, parameters}")
    out: list[RequestedOutput] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _invalid(f"outputs[{i}]", "must be an object with a name")
        params = _parameters(item.get("parameters"), f"outputs[{i}].parameters")
        binary = params.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise _invalid(f"outputs[{i}].parameters.binary_data", "must be true or false")
        if any(o.name == item["name"] for o in out):
            raise _invalid(f"outputs[{i}].name", f"output {item['name']!r} is requested twice")
        out.append(RequestedOutput(item["name"], binary))
    return out


def _invalid(where: str, message: str) -> InvalidInput:
    return InvalidInput.at(where, message)
