"""Encoding an inference response: JSON outputs inline, binary outputs as blobs after the JSON.

An output travels as binary when its request entry says ``parameters.binary_data: true``, or,
when it says nothing, when the request's ``parameters.binary_data_output`` is true. FP16 and
BF16 outputs always travel as binary: JSON has no half-precision numbers (Triton refuses them
in JSON) and both reference clients read a binary output wherever it is found. When any output
is binary, the caller must send ``Inference-Header-Content-Length`` (the JSON's length in
bytes): tritonclient cannot read the body without it.

JSON ``data`` is flat (row-major), which every client reshapes by ``shape``; non-finite values,
which JSON cannot carry, are the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from service.jsonenc import dumps
from service.protocol.datatypes import BINARY_ONLY, to_bytes
from service.protocol.request import InferenceRequest

JSON_MEDIA_TYPE = "application/json"
BINARY_MEDIA_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class EncodedResponse:
    body: bytes
    json_length: int | None
    """Length of the JSON part when binary data follows it; None for a pure JSON body."""

    @property
    def media_type(self) -> str:
        return JSON_MEDIA_TYPE if self.json_length is None else BINARY_MEDIA_TYPE

    def headers(self) -> dict[str, str]:
        if self.json_length is None:
            return {}
        return {"Inference-Header-Content-Length": str(self.json_length)}


def wants_binary(request: InferenceRequest, name: str, datatype: str) -> bool:
    if datatype in BINARY_ONLY:
        return True
    for requested in request.outputs or ():
        if requested.name == name and requested.binary is not None:
            return requested.binary
    return request.binary_data_output


def encode(
    request: InferenceRequest,
    model_name: str,
    model_version: str | None,
    outputs: list[tuple[str, str, npt.NDArray[Any]]],
    parameters: dict[str, Any],
) -> EncodedResponse:
    """The response body for ``outputs`` as ``(name, datatype, array)``, in that order."""
    doc: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        doc["model_version"] = model_version
    if request.id is not None:
        doc["id"] = request.id
    if parameters:
        doc["parameters"] = parameters
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, datatype, arr in outputs:
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if wants_binary(request, name, datatype):
            blob = to_bytes(arr, datatype)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = arr.reshape(-1)
        entries.append(entry)
    doc["outputs"] = entries
    head = dumps(doc)
    if not blobs:
        return EncodedResponse(head, None)
    return EncodedResponse(b"".join([head, *blobs]), len(head))
