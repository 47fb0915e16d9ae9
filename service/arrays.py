"""Turning decoded JSON values into NumPy arrays, and refusing what is not a numeric tensor.

A tensor arrives as a number or as nested lists of numbers. ``np.asarray`` does the walking in
C; the checks after it are vectorised. The one thing NumPy accepts silently and JSON users do
not mean is a boolean among numbers (``[1, true]`` becomes ``[1, 1]``), so callers pass
``may_hold_bools`` (cheaply known from the raw body) and only then is each element inspected.

``ArrayLimits`` is the single statement of how large a tensor (and a JSON body's nesting) may
be. Every parser enforces it through the functions here: ``check_json_depth`` on the raw bytes
before parsing, ``check_shape`` as soon as a shape is known and before anything is allocated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ArrayLimits:
    """Bounds on one tensor and on a body's nesting; exceeding them is the client's error,
    never the server's. The defaults are those of ``Settings``."""

    max_rank: int = 8
    max_dim: int = 16_777_216
    max_elements: int = 50_000_000
    max_depth: int = 12


DEFAULT_LIMITS = ArrayLimits()


class ArrayError(ValueError):
    """Raised with a message fit to show a client; the caller adds the field name."""


class ArrayLimitError(ArrayError):
    """The value is a valid tensor (or JSON document) but larger than ``ArrayLimits`` allow.

    ``field`` names the top-level key the limit was hit under, when the check knows it."""

    field: str = ""


_KEY_SCAN_BYTES = 1 << 20


def _key_too_deep(raw: bytes | bytearray, max_depth: int) -> str:
    """The top-level key under which nesting first passes ``max_depth`` ('' if not found).

    Only refused bodies get here, and the walk stops after ``_KEY_SCAN_BYTES``, so a huge
    malicious body costs a bounded amount of Python work."""
    depth = 0
    in_string = escaped = False
    key_start = -1
    last_key = ""
    for i, byte in enumerate(raw[:_KEY_SCAN_BYTES]):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
                if depth == 1 and key_start >= 0:
                    last_key = raw[key_start:i].decode("utf-8", "replace")
                    key_start = -1
            continue
        if byte == 0x22:
            in_string = True
            key_start = i + 1 if depth == 1 else -1
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                return last_key
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return ""


def check_shape(shape: Sequence[int], limits: ArrayLimits = DEFAULT_LIMITS) -> None:
    """Refuse a shape beyond the limits before anything of that shape is allocated.

    The element count is multiplied in Python integers, so a declared shape such as
    ``[2**40, 2**40]`` is refused rather than overflowing."""
    if len(shape) > limits.max_rank:
        raise ArrayLimitError(f"rank {len(shape)} exceeds the maximum rank {limits.max_rank}")
    for axis, size in enumerate(shape):
        if size < 0:
            raise ArrayError(f"dimension {axis} has negative size {size}")
        if size > limits.max_dim:
            raise ArrayLimitError(
                f"dimension {axis} has size {size}, more than the maximum {limits.max_dim}"
            )
    count = math.prod(shape)
    if count > limits.max_elements:
        raise ArrayLimitError(f"{count} elements exceed the maximum of {limits.max_elements}")


_OPEN, _QUOTE, _CLOSE = 2, 1, 0
#: ``bytes.translate`` keeps brackets and quotes only, as 2 (open), 1 (quote), 0 (close).
_MARKS = bytes(
    _OPEN if c in b"[{" else _QUOTE if c == ord('"') else _CLOSE if c in b"]}" else c
    for c in range(256)
)
_NOT_MARKS = bytes(c for c in range(256) if c not in b'[]{}"')
_CHUNK = 1 << 22
#: Up to this many marks (every small request) a Python loop is cheaper than NumPy's calls.
_FEW_MARKS = 256


def _peak_depth(marks: bytes | bytearray) -> int:
    """The deepest nesting in ``marks`` (as ``check_json_depth`` scans them, in plain Python)."""
    depth = peak = 0
    in_string = False
    for mark in marks:
        if mark == _QUOTE:
            in_string = not in_string
        elif not in_string:
            depth += 1 if mark == _OPEN else -1
            peak = max(peak, depth)
    return peak


def check_json_depth(raw: bytes | bytearray, limits: ArrayLimits = DEFAULT_LIMITS) -> None:
    """Refuse a JSON document nested deeper than ``limits.max_depth``, without parsing it.

    Parsers recurse (or keep a stack) per level, so depth is checked on the bytes first, in
    time linear in the body and memory bounded by a chunk. Escaped backslashes and quotes are
    removed, then every byte but brackets and quotes (``bytes.translate``, one C pass; a tensor
    body keeps only its brackets); the rest is scanned with NumPy: quote parity marks the
    brackets inside strings, and a running sum of +1/-1 over the others is the depth. Invalid
    JSON may be measured wrongly here; the parser refuses it afterwards either way."""
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = raw.translate(_MARKS, _NOT_MARKS)
    if len(marks) <= limits.max_depth:
        return  # depth never exceeds the number of brackets
    if len(marks) <= _FEW_MARKS:
        if _peak_depth(marks) > limits.max_depth:
            error = ArrayLimitError(f"JSON nested deeper than the maximum depth {limits.max_depth}")
            error.field = _key_too_deep(raw, limits.max_depth)
            raise error
        return
    depth = 0
    in_string = 0
    view = np.frombuffer(marks, dtype=np.uint8)
    for start in range(0, view.size, _CHUNK):
        chunk = view[start : start + _CHUNK]
        steps = chunk.astype(np.int32)
        steps -= 1  # open +1, close -1, quote 0
        if in_string or _QUOTE in marks[start : start + _CHUNK]:
            inside = np.cumsum(chunk == _QUOTE, dtype=np.int32)
            inside += in_string
            inside &= 1
            in_string = int(inside[-1])
            steps[inside.astype(bool)] = 0
        np.cumsum(steps, out=steps)
        if depth + int(steps.max()) > limits.max_depth:
            error = ArrayLimitError(f"JSON nested deeper than the maximum depth {limits.max_depth}")
            error.field = _key_too_deep(raw, limits.max_depth)
            raise error
        depth += int(steps[-1])


#: Arrays of at least this many elements have their extremes remembered (``extremes``).
LARGE_ELEMENTS = 1 << 16

_remembered: ContextVar[dict[int, tuple[np.ndarray, float, float]] | None] = ContextVar(
    "extremes", default=None
)


def remember_extremes() -> Token[dict[int, tuple[np.ndarray, float, float]] | None]:
    """Start remembering large arrays' extremes, for one computation; hand the token to
    ``forget_extremes`` when it ends. (Arrays may be changed in place between computations, so
    nothing is remembered across them.)"""
    return _remembered.set({})


def forget_extremes(token: Token[dict[int, tuple[np.ndarray, float, float]] | None]) -> None:
    _remembered.reset(token)


def extremes(arr: npt.NDArray[Any]) -> tuple[float, float]:
    """``(arr.min(), arr.max())`` of a non-empty array, as floats (NaN when it holds a NaN).

    A large request's input is asked for its extremes by several steps (validation's finiteness
    check, a loss's scale and checks, its warnings, the data plane's overflow check), and each
    pass over tens of megabytes costs milliseconds: while a computation remembers them
    (``remember_extremes``, which the data plane starts for each), the pair of an array of
    ``LARGE_ELEMENTS`` or more is computed once (the array is held until the computation ends,
    so that its identity cannot pass to another). Small arrays are reduced each time, which
    costs less than the remembering."""
    remembered = _remembered.get() if arr.size >= LARGE_ELEMENTS else None
    if remembered is None:
        return float(arr.min()), float(arr.max())
    known = remembered.get(id(arr))
    if known is not None:
        return known[1], known[2]
    low, high = float(arr.min()), float(arr.max())
    remembered[id(arr)] = (arr, low, high)
    return low, high


def to_array(
    value: Any,
    *,
    limits: ArrayLimits = DEFAULT_LIMITS,
    may_hold_bools: bool = True,
    parsed: bool = False,
) -> npt.NDArray[np.float64] | npt.NDArray[np.int64]:
    """A JSON number or nested list of numbers as an int64 (all integers) or float64 array.

    An ndarray is checked the same way; float16 and float32 ones keep their dtype. ``parsed``:
    the numbers (not an ndarray) come from a JSON parser, which never makes NaN or an infinity
    (JSON has neither, and orjson refuses a number beyond float64's range), so they need no
    finiteness check; numbers made in-process are checked."""
    if type(value) is list:  # the usual case first
        return _from_list(value, limits, may_hold_bools, parsed)
    if isinstance(value, np.ndarray):
        return _checked(value, limits)
    if isinstance(value, bool) or value is None or isinstance(value, (str, dict)):
        raise ArrayError(f"expected a number or a nested list of numbers, got {_kind(value)}")
    if isinstance(value, (int, float)):
        return _checked(np.asarray(value), limits, parsed)
    if not isinstance(value, list):
        raise ArrayError(f"expected a number or a nested list of numbers, got {_kind(value)}")
    return _from_list(value, limits, may_hold_bools, parsed)


def _from_list(
    value: list[Any], limits: ArrayLimits, may_hold_bools: bool, parsed: bool
) -> npt.NDArray[Any]:
    depth = _depth(value, limits.max_rank)
    if depth > limits.max_rank:
        raise ArrayLimitError(f"nesting deeper than the maximum rank {limits.max_rank}")
    try:
        arr = np.asarray(value)
    except ValueError as exc:
        if "inhomogeneous" in str(exc) or "sequence" in str(exc):
            raise ArrayError("ragged array: sub-lists at the same depth differ in length") from None
        raise ArrayError("not a rectangular array of numbers") from None
    except OverflowError:
        raise ArrayError("integer too large for a 64-bit tensor") from None
    if arr.dtype == np.bool_ or (may_hold_bools and arr.dtype.kind in "iuf" and _has_bool(value)):
        raise ArrayError("booleans are not numbers; send 0/1 or 0.0/1.0")
    return _checked(arr, limits, parsed)


_F64, _F32, _F16, _I64 = (np.dtype(t) for t in (np.float64, np.float32, np.float16, np.int64))


def _checked(arr: np.ndarray, limits: ArrayLimits, finite: bool = False) -> npt.NDArray[Any]:
    """``arr`` as the tensor it stands for, or the reason it is none; ``finite``: its numbers
    are known to be finite."""
    shape = arr.shape
    if (
        len(shape) > limits.max_rank
        or arr.size > limits.max_elements
        or (shape and max(shape) > limits.max_dim)
    ):
        check_shape(shape, limits)  # (an existing array's size is the product of its shape)
    dtype = arr.dtype
    if dtype is _F64 and finite:
        return arr  # the usual JSON tensor: nothing to convert or check
    if dtype is _I64:
        return arr
    kind = dtype.kind
    if kind == "O":
        raise ArrayError(_object_reason(arr))
    if kind in "US":
        raise ArrayError("strings are not numbers (NaN and infinities cannot be sent)")
    if kind == "b":
        raise ArrayError("booleans are not numbers; send 0/1 or 0.0/1.0")
    if kind == "u":
        if arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise ArrayError("integer too large for a 64-bit tensor")
        return arr.astype(np.int64)
    if kind == "i":
        return arr.astype(np.int64, copy=False)
    if kind == "f":
        # Half and single precision arrays passed in-process (binary protocol tensors) stay as
        # they are: widening here would copy a large tensor that ``floating`` widens anyway.
        narrow = arr.dtype in (np.dtype(np.float16), np.dtype(np.float32))
        out = arr if narrow else arr.astype(np.float64, copy=False)
        if finite:
            pass
        elif out.size >= LARGE_ELEMENTS:
            # the extremes are finite exactly when every number is (a NaN makes them NaN),
            # and the later steps that need them find them computed (``extremes``)
            finite = all(map(math.isfinite, extremes(out)))
        else:
            finite = bool(np.isfinite(out).all())
        if not finite:
            raise ArrayError("non-finite number (NaN and infinities cannot be sent)")
        return out
    raise ArrayError(f"unsupported element type {arr.dtype}")


def _object_reason(arr: np.ndarray) -> str:
    items = list(arr.flat)
    for item in items:
        if item is None:
            return "null is not a number"
        if isinstance(item, (dict, str, list, bool)):
            return f"expected numbers, found {_kind(item)}"
    if any(isinstance(item, int) for item in items):
        return "integer too large for a 64-bit tensor"
    return "not a rectangular array of numbers"


def _depth(value: list[Any], cap: int) -> int:
    """Depth along the first elements, stopping past ``cap`` (cheap; raggedness is NumPy's)."""
    depth = 0
    node: Any = value
    while isinstance(node, list):
        depth += 1
        if depth > cap or not node:
            break
        node = node[0]
    return depth


def _has_bool(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            if node and not isinstance(node[0], list):
                if any(type(x) is bool for x in node):
                    return True
            else:
                stack.extend(node)
        elif type(node) is bool:
            return True
    return False


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, float) and not math.isfinite(value):
        return "a non-finite number"
    return type(value).__name__
