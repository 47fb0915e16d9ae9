"""The protocol's tensor datatypes and their bytes.

On the wire a tensor is little-endian, row-major and unpadded, each element at its native size
(BOOL one byte 0/1; BF16 the upper 16 bits of the float32). Decoding views the request body with
``np.frombuffer`` where the bytes are already what NumPy wants (every type but BF16), so a large
binary tensor costs no copy and no Python object per element. NumPy has no bfloat16, so BF16 is
widened to float32 (exact: a bfloat16 is a float32 whose low 16 bits are zero) and narrowed back
when encoded. BYTES (strings) carries nothing a loss can use and is refused.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from service.dtypes import round_to_dtype

#: Element type of each datatype on the wire (explicitly little-endian).
WIRE_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"),
}

FLOATING: Final[frozenset[str]] = frozenset({"FP16", "FP32", "FP64", "BF16"})

#: Datatypes JSON cannot carry faithfully; outputs of these types always travel as binary.
BINARY_ONLY: Final[frozenset[str]] = frozenset({"FP16", "BF16"})

#: The service's compute dtype for each floating datatype, and back.
COMPUTE_DTYPES: Final[dict[str, str]] = {
    "FP16": "float16",
    "BF16": "bfloat16",
    "FP32": "float32",
    "FP64": "float64",
}
DATATYPE_OF: Final[dict[str, str]] = {v: k for k, v in COMPUTE_DTYPES.items()}


class DatatypeError(ValueError):
    """Raised with a message fit to show a client; the caller adds which tensor."""


def itemsize(datatype: str) -> int:
    return wire_dtype(datatype).itemsize


def wire_dtype(datatype: str) -> np.dtype[Any]:
    dt = WIRE_DTYPES.get(datatype)
    if dt is None:
        if datatype == "BYTES":
            raise DatatypeError("BYTES tensors hold strings; a loss takes numbers")
        known = ", ".join(WIRE_DTYPES)
        raise DatatypeError(f"unknown datatype {datatype!r}; one of {known}")
    return dt


def from_bytes(
    buffer: bytes | bytearray | memoryview, offset: int, count: int, datatype: str
) -> npt.NDArray[Any]:
    """``count`` elements of ``datatype`` at ``offset`` of ``buffer``: a view, except for BF16.

    A ``bytearray`` gives a writable view, which torch accepts without a warning."""
    dt = wire_dtype(datatype)
    arr = np.frombuffer(buffer, dtype=dt, count=count, offset=offset)
    if datatype == "BF16":
        return bf16_to_float32(arr)
    if datatype == "BOOL":
        as_bytes = arr.view(np.uint8)
        if as_bytes.size and as_bytes.max() > 1:
            raise DatatypeError("BOOL bytes must be 0 or 1")
    return arr


def from_json(values: npt.NDArray[Any], datatype: str) -> npt.NDArray[Any]:
    """A decoded JSON tensor (int64, float64 or bool) as ``datatype``, refusing lossy casts.

    FP16 and BF16 values are rounded to the nearest representable number, as binary senders
    would have done; integers must be whole and in range."""
    if datatype == "BOOL":
        if values.dtype != np.bool_:
            raise DatatypeError("BOOL data must be true/false")
        return values
    if values.dtype == np.bool_:
        raise DatatypeError(f"{datatype} data must be numbers, not true/false")
    if datatype in FLOATING:
        if datatype == "BF16":
            out = round_to_dtype(values, "bfloat16").astype(np.float32)
        else:
            with np.errstate(over="ignore"):
                out = values.astype(wire_dtype(datatype))
        if not np.isfinite(out).all():
            raise DatatypeError(f"a value is out of the range of {datatype}")
        return out
    wire = wire_dtype(datatype)
    if values.dtype == np.int64 and wire == np.int64:
        return values  # JSON integers decoded as int64: INT64 holds every one as it is
    info = _integer_info(wire)
    if values.dtype.kind == "f" and values.size and not np.all(np.floor(values) == values):
        raise DatatypeError(f"{datatype} data must be whole numbers")
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise DatatypeError(f"a value is out of the range of {datatype} [{info.min}, {info.max}]")
    return values.astype(wire)


@functools.cache
def _integer_info(wire: np.dtype[Any]) -> np.iinfo[Any]:
    return np.iinfo(wire)


def bf16_to_float32(bits: npt.NDArray[np.uint16]) -> npt.NDArray[np.float32]:
    """Widen bfloat16 bit patterns to float32: the same value, 16 zero bits appended."""
    widened = bits.astype(np.uint32) << np.uint32(16)
    return widened.view(np.float32)


def float32_to_bf16(values: npt.NDArray[Any]) -> npt.NDArray[np.uint16]:
    """The bfloat16 bit patterns of values already representable in bfloat16 (torch's output).

    Values that are not are rounded to nearest-even first, so this never truncates silently."""
    f32 = np.ascontiguousarray(round_to_dtype(values, "bfloat16"), dtype="<f4")
    return (f32.view("<u4") >> np.uint32(16)).astype("<u2")


def to_bytes(arr: npt.NDArray[Any], datatype: str) -> bytes:
    """The wire bytes of ``arr`` as ``datatype``."""
    if datatype == "BF16":
        return float32_to_bf16(arr).tobytes()
    return np.ascontiguousarray(arr, dtype=wire_dtype(datatype)).tobytes()


def datatype_of(arr: npt.NDArray[Any]) -> str:
    """The protocol datatype that holds ``arr`` without loss (float64 for floats NumPy widened)."""
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind == "f":
        return {2: "FP16", 4: "FP32"}.get(size, "FP64")
    if kind in "iu":
        return f"{'INT' if kind == 'i' else 'UINT'}{8 * size}"
    raise DatatypeError(f"no protocol datatype for {arr.dtype}")
