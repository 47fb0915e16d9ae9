"""Turning decoded JSON values into NumPy arrays, and refusing what is not a numeric tensor.

A tensor arrives as a number or as nested lists of numbers. ``np.asarray`` does the walking in
C; the checks after it are vectorised. The one thing NumPy accepts silently and JSON users do
not mean is a boolean among numbers (``[1, true]`` becomes ``[1, 1]``), so callers pass
``may_hold_bools`` (cheaply known from the raw body) and only then is each element inspected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ArrayLimits:
    """Bounds on one tensor; exceeding them is the client's error, never the server's."""

    max_rank: int = 10
    max_elements: int = 50_000_000


DEFAULT_LIMITS = ArrayLimits()


class ArrayError(ValueError):
    """Raised with a message fit to show a client; the caller adds the field name."""


def to_array(
    value: Any, *, limits: ArrayLimits = DEFAULT_LIMITS, may_hold_bools: bool = True
) -> npt.NDArray[np.float64] | npt.NDArray[np.int64]:
    """A JSON number or nested list of numbers as an int64 (all integers) or float64 array.

    An ndarray is checked the same way; float16 and float32 ones keep their dtype."""
    if isinstance(value, np.ndarray):
        return _checked(value, limits)
    if isinstance(value, bool) or value is None or isinstance(value, (str, dict)):
        raise ArrayError(f"expected a number or a nested list of numbers, got {_kind(value)}")
    if isinstance(value, (int, float)):
        return _checked(np.asarray(value), limits)
    if not isinstance(value, list):
        raise ArrayError(f"expected a number or a nested list of numbers, got {_kind(value)}")
    depth = _depth(value, limits.max_rank)
    if depth > limits.max_rank:
        raise ArrayError(f"nesting deeper than the maximum rank {limits.max_rank}")
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
    return _checked(arr, limits)


def _checked(arr: np.ndarray, limits: ArrayLimits) -> npt.NDArray[Any]:
    if arr.ndim > limits.max_rank:
        raise ArrayError(f"rank {arr.ndim} exceeds the maximum rank {limits.max_rank}")
    if arr.size > limits.max_elements:
        raise ArrayError(f"{arr.size} elements exceed the maximum of {limits.max_elements}")
    kind = arr.dtype.kind
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
        if not np.isfinite(out).all():
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
