"""``service.arrays.extremes``: a large array's min and max, computed once per computation, and
the finiteness check of large tensors made from them."""

from __future__ import annotations

import numpy as np
import pytest

from service.arrays import (
    LARGE_ELEMENTS,
    ArrayError,
    extremes,
    forget_extremes,
    remember_extremes,
    to_array,
)


@pytest.mark.parametrize("size", [1, 7, LARGE_ELEMENTS - 1, LARGE_ELEMENTS, 3 * LARGE_ELEMENTS])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int64])
def test_the_extremes_are_the_arrays_min_and_max(size: int, dtype: type) -> None:
    rng = np.random.default_rng(size)
    a: np.ndarray = (rng.standard_normal(size) * 100).astype(dtype)
    assert extremes(a) == (float(a.min()), float(a.max()))
    assert extremes(a) == (float(a.min()), float(a.max()))  # remembered, the same


def test_a_large_arrays_extremes_are_remembered_for_one_computation_only() -> None:
    a = np.arange(LARGE_ELEMENTS, dtype=np.float64)
    token = remember_extremes()
    try:
        assert extremes(a) == (0.0, LARGE_ELEMENTS - 1.0)
        a[0] = -1.0  # (never done to a request's arrays within a computation)
        assert extremes(a) == (0.0, LARGE_ELEMENTS - 1.0)  # remembered
    finally:
        forget_extremes(token)
    assert extremes(a) == (-1.0, LARGE_ELEMENTS - 1.0)  # the next computation looks again


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("size", [10, 2 * LARGE_ELEMENTS])
def test_a_large_tensor_with_a_non_finite_number_is_refused(
    bad: float, dtype: type, size: int
) -> None:
    a: np.ndarray = np.ones(size, dtype=dtype)
    a[size // 2] = bad
    with pytest.raises(ArrayError, match="non-finite"):
        to_array(a)
    a[size // 2] = 0
    assert to_array(a) is not None
