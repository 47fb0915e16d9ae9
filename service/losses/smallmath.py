"""NumPy's float64 arithmetic on a few numbers, in plain Python floats.

A small request's reference is a few dozen operations on a handful of numbers, where each NumPy
call costs a microsecond or two of overhead for nanoseconds of arithmetic. The small-request
paths (``cross_entropy_small``) compute with Python floats instead, and must give the very bits
the general path's NumPy gives, so the response is byte-identical whichever path served it:

- ``+ - * /`` on Python floats are the same IEEE float64 operations;
- sums follow NumPy's pairwise summation (``fsum`` or a left-to-right loop would round
  differently): ``np.add.reduce`` over a contiguous run of float64 starts from 0.0 and adds
  ``pairwise_sum`` of the run, which is a plain loop below 8 elements, eight interleaved
  accumulators combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)) up to 128, halves beyond;
- ``exp`` and ``log`` are NumPy's own (one call on all the numbers at once), since NumPy's
  vectorised implementations may differ from the C library's in the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_BLOCK = 128  # NumPy's PW_BLOCKSIZE


def np_sum(values: Sequence[float]) -> float:
    """``float(np.sum(np.array(values, dtype=np.float64)))``, bit for bit."""
    return 0.0 + _pairwise(values, 0, len(values))


def _pairwise(a: Sequence[float], lo: int, n: int) -> float:
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    if n <= _BLOCK:
        r0, r1, r2, r3, r4, r5, r6, r7 = a[lo : lo + 8]
        end = lo + n - (n % 8)
        j = lo + 8
        while j < end:
            r0 += a[j]
            r1 += a[j + 1]
            r2 += a[j + 2]
            r3 += a[j + 3]
            r4 += a[j + 4]
            r5 += a[j + 5]
            r6 += a[j + 6]
            r7 += a[j + 7]
            j += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for i in range(end, lo + n):
            res += a[i]
        return res
    half = n // 2
    half -= half % 8
    return _pairwise(a, lo, half) + _pairwise(a, lo + half, n - half)


def np_exp(values: list[float]) -> list[float]:
    """``np.exp`` of each value, as Python floats."""
    out: list[float] = np.exp(np.array(values, dtype=np.float64)).tolist()
    return out


def np_log(values: list[float]) -> list[float]:
    """``np.log`` of each value (``-inf`` for 0, NaN below), as Python floats."""
    arr = np.array(values, dtype=np.float64)
    if values and min(values) > 0:  # the usual case: no warning to silence
        out: list[float] = np.log(arr).tolist()
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(arr).tolist()
    return out
