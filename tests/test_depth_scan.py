"""The depth scan's two ways, plain Python for small bodies and NumPy for the rest, agree."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from service import arrays
from service.arrays import ArrayLimitError, ArrayLimits, check_json_depth
from tests.robustness.test_limits import json_values


def refused(raw: bytes, max_depth: int) -> bool:
    try:
        check_json_depth(raw, ArrayLimits(max_depth=max_depth))
    except ArrayLimitError:
        return True
    return False


@given(value=json_values, max_depth=st.integers(1, 6))
def test_python_and_numpy_scans_agree(value: Any, max_depth: int) -> None:
    raw = json.dumps(value).encode()
    small = refused(raw, max_depth)
    with mock.patch.object(arrays, "_FEW_MARKS", 0):
        assert refused(raw, max_depth) == small
