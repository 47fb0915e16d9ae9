"""JSON output: fast for arrays, and honest about values JSON cannot carry.

JSON has no NaN or infinities. Following the protobuf JSON mapping, non-finite numbers are
written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (orjson would silently write
``null``). Finite NumPy arrays go straight to orjson, which writes float32 values at float32's
shortest round-trip precision, so a float32 loss of 1.1484 reads ``1.1484``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
#: Types whose values JSON carries as they are (a float may be NaN or infinite; it is not here).
_PLAIN = frozenset({str, int, bool, type(None)})


def nonfinite_token(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def jsonable(obj: Any) -> Any:
    """``obj`` with every non-finite number replaced by its string token, arrays made safe."""
    # Exact-type dispatch first: this walks every response, and the common leaves are plain.
    kind = type(obj)
    if kind is dict:
        # leaves that pass as they are (most of a response) are not walked into
        return {k: v if type(v) in _PLAIN else jsonable(v) for k, v in obj.items()}
    if kind is float:
        return obj if math.isfinite(obj) else nonfinite_token(obj)
    if kind is str or kind is int or kind is bool or obj is None:
        return obj
    if kind is list:
        # a vector of plain finite numbers (what the small-request paths give) passes as it is
        for v in obj:
            t = type(v)
            if not ((t is float and v - v == 0.0) or t is int or t is bool):
                return [jsonable(v) for v in obj]
        return obj
    if isinstance(obj, np.ndarray):
        return _array(obj)
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _array(np.asarray(obj))
    if isinstance(obj, float) and not math.isfinite(obj):
        return nonfinite_token(obj)
    return obj


#: Arrays up to this size whose elements Python holds exactly (float64, integers, booleans)
#: become lists: checking a few floats in Python is cheaper than a NumPy call, and orjson writes
#: a float64 and a Python float alike.
_SMALL = 64
_EXACT_IN_PYTHON = frozenset("biu")


def _array(arr: np.ndarray) -> Any:
    kind = arr.dtype.kind
    if arr.size <= _SMALL and (kind in _EXACT_IN_PYTHON or arr.dtype == np.float64):
        values = arr.tolist()
        if kind == "f":
            ndim = arr.ndim
            flat = values if ndim == 1 else [values] if ndim == 0 else arr.ravel().tolist()
            if not all(map(math.isfinite, flat)):
                return _tokens(arr)
        return values
    if arr.ndim == 0 and kind == "f" and arr.dtype.itemsize >= 4:
        value = arr[()]  # a loss's value: float32 (orjson writes its shortest form) or wider
        return value if math.isfinite(value) else nonfinite_token(float(value))
    if kind == "f" and arr.dtype.itemsize < 2:
        arr = arr.astype(np.float32)
    if kind not in "fc" or np.isfinite(arr).all():
        if arr.ndim == 0:
            return arr[()]
        return np.ascontiguousarray(arr)
    return _tokens(arr)


def _tokens(arr: np.ndarray) -> Any:
    if arr.ndim == 0:
        return nonfinite_token(float(arr))
    out = arr.astype(object)
    bad = ~np.isfinite(arr)
    out[bad] = [nonfinite_token(float(v)) for v in arr[bad]]
    return out.tolist()


def dumps(obj: Any) -> bytes:
    return orjson.dumps(jsonable(obj), option=_OPTIONS)
