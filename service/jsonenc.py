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


def nonfinite_token(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def jsonable(obj: Any) -> Any:
    """``obj`` with every non-finite number replaced by its string token, arrays made safe."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _array(obj)
    if isinstance(obj, np.generic):
        return _array(np.asarray(obj))
    if isinstance(obj, float) and not math.isfinite(obj):
        return nonfinite_token(obj)
    return obj


def _array(arr: np.ndarray) -> Any:
    if arr.dtype.kind == "f" and arr.dtype.itemsize < 2:
        arr = arr.astype(np.float32)
    if arr.dtype.kind not in "fc" or np.isfinite(arr).all():
        if arr.ndim == 0:
            return arr[()]
        return np.ascontiguousarray(arr)
    if arr.ndim == 0:
        return nonfinite_token(float(arr))
    out = arr.astype(object)
    bad = ~np.isfinite(arr)
    out[bad] = [nonfinite_token(float(v)) for v in arr[bad]]
    return out.tolist()


def dumps(obj: Any) -> bytes:
    return orjson.dumps(jsonable(obj), option=_OPTIONS)
