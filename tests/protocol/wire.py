"""Inference request bodies built by hand, byte by byte, as a client on the wire would send them.

Deliberately independent of ``service.protocol``: the tests check the server's decoder against
this encoder (NumPy's own ``tobytes``), not against itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

#: How a test datatype is produced from float values (BF16: the top half of each float32).
NP_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


def bf16_bytes(values: npt.NDArray[Any]) -> bytes:
    """BF16 wire bytes by truncation of float32 (exact for values that are bfloat16 already)."""
    f32 = np.ascontiguousarray(values, dtype="<f4")
    return (f32.view("<u4") >> 16).astype("<u2").tobytes()


@dataclass
class Tensor:
    name: str
    datatype: str
    array: npt.NDArray[Any]
    binary: bool = True
    nested: bool = False

    def wire(self) -> bytes:
        if self.datatype == "BF16":
            return bf16_bytes(self.array)
        return np.ascontiguousarray(self.array).astype(self.array.dtype.newbyteorder("<")).tobytes()

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "shape": list(self.array.shape),
            "datatype": self.datatype,
        }
        if self.binary:
            out["parameters"] = {"binary_data_size": len(self.wire())}
        else:
            out["data"] = self.array.tolist() if self.nested else self.array.ravel().tolist()
        return out


@dataclass
class Request:
    inputs: list[Tensor]
    outputs: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    def doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"inputs": [t.entry() for t in self.inputs]}
        if self.id is not None:
            doc["id"] = self.id
        if self.outputs is not None:
            doc["outputs"] = self.outputs
        if self.parameters:
            doc["parameters"] = self.parameters
        return doc

    def encode(self) -> tuple[bytes, dict[str, str]]:
        """The body and the headers a client sends (the length header only with binary data)."""
        head = orjson.dumps(self.doc())
        blobs = [t.wire() for t in self.inputs if t.binary]
        if not blobs:
            return head, {}
        return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}


def split_response(body: bytes, header: str | None) -> dict[str, npt.NDArray[Any]]:
    """Each output of a response as an array, reading blobs as tritonclient does."""
    end = len(body) if header is None else int(header)
    doc = orjson.loads(body[:end])
    offset = end
    out: dict[str, npt.NDArray[Any]] = {}
    for o in doc["outputs"]:
        shape = o["shape"]
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is None:
            dt = np.float32 if o["datatype"] == "BF16" else NP_DTYPES[o["datatype"]]
            out[o["name"]] = np.array(o["data"], dtype=dt).reshape(shape)
            continue
        blob = body[offset : offset + size]
        offset += size
        if o["datatype"] == "BF16":
            bits = np.frombuffer(blob, "<u2").astype("<u4") << 16
            out[o["name"]] = bits.view("<f4").reshape(shape)
        else:
            out[o["name"]] = np.frombuffer(blob, NP_DTYPES[o["datatype"]]).reshape(shape)
    assert offset == len(body), "bytes left after the last binary output"
    return out
