"""``to_array`` on arrays passed in-process (the binary protocol's tensors)."""

from __future__ import annotations

import numpy as np
import pytest

from service.arrays import ArrayError, to_array


@pytest.mark.parametrize(
    ("source", "kept"),
    [(np.float16, True), (np.float32, True), (np.float64, True), (np.int32, False)],
)
def test_ndarrays_are_not_copied_needlessly(source: type[np.number], kept: bool) -> None:
    arr = np.arange(6).astype(source).reshape(2, 3)
    got = to_array(arr)
    assert (got is arr) == kept
    assert got.dtype == (arr.dtype if kept else np.int64)


@pytest.mark.parametrize("source", [np.float16, np.float32])
def test_narrow_non_finite_is_refused(source: type[np.floating]) -> None:
    with pytest.raises(ArrayError, match="non-finite"):
        to_array(np.array([1.0, np.inf], dtype=source))
