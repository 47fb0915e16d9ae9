"""The limits in ``service.arrays``: the pre-parse depth scan agrees with the parsed document's
depth, shapes are refused before allocation, and the settings reach ``ArrayLimits``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.arrays import ArrayError, ArrayLimitError, ArrayLimits, check_json_depth, check_shape
from service.dataplane import limits_of
from tests.conftest import cpu_settings

# Strings full of what could fool a byte scan: brackets, quotes and backslashes.
tricky_text = st.text(alphabet=st.sampled_from('[]{}"\\ab,:\n'), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=30,
)


def depth_of(value: Any) -> int:
    """Nesting depth as a parser sees it: a scalar is 0, ``[]`` and ``{}`` are 1."""
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


def refused(raw: bytes, max_depth: int) -> bool:
    try:
        check_json_depth(raw, ArrayLimits(max_depth=max_depth))
    except ArrayLimitError:
        return True
    return False


@given(value=json_values, ensure_ascii=st.booleans(), compact=st.booleans())
def test_depth_scan_agrees_with_the_parsed_depth(
    value: Any, ensure_ascii: bool, compact: bool
) -> None:
    separators = (",", ":") if compact else (", ", ": ")
    raw = json.dumps(value, ensure_ascii=ensure_ascii, separators=separators).encode()
    depth = depth_of(value)
    assert not refused(raw, max(depth, 1))
    if depth >= 2:
        assert refused(raw, depth - 1)


@pytest.mark.parametrize(
    ("raw", "max_depth", "is_refused"),
    [
        (b'{"a": [[1]]}', 3, False),
        (b'{"a": [[[1]]]}', 3, True),
        (b'{"a": "[[[[[[[[[[["}', 2, False),
        (b'{"a\\"[[[[": 1}', 2, False),
        (b'{"a\\\\": [[[[1]]]]}', 4, True),
        (b'{"a\\\\\\"[[[[": 1}', 2, False),
        (b"[]" * 100_000, 1, False),
        (b"[" * 1_000_000, 64, True),
        (b"[" * 10 + b"]" * 10 + b"[" * 10, 10, False),
    ],
    ids=[
        "within",
        "beyond",
        "brackets-in-string",
        "escaped-quote-in-string",
        "escaped-backslash-before-quote",
        "escaped-backslash-then-quote",
        "wide-not-deep",
        "million-deep-without-recursion",
        "depth-returns",
    ],
)
def test_depth_scan_cases(raw: bytes, max_depth: int, is_refused: bool) -> None:
    assert refused(raw, max_depth) is is_refused


def test_depth_scan_crosses_chunks() -> None:
    """Depth and string state carry from one scanned chunk to the next."""
    opening = b'["' + b"[" * (1 << 22) + b'", ' + b"[" * 5
    raw = opening + b"1" + b"]" * 6
    assert not refused(raw, 6)
    assert refused(raw, 5)


LIMITS = ArrayLimits(max_rank=3, max_dim=100, max_elements=1000)


@pytest.mark.parametrize(
    ("shape", "error"),
    [
        ((), None),
        ((100, 10), None),
        ((10, 10, 10), None),
        ((1, 1, 1, 1), "rank 4 exceeds the maximum rank 3"),
        ((101,), "dimension 0 has size 101, more than the maximum 100"),
        ((10, 10, 11), "1100 elements exceed the maximum of 1000"),
        ((2**40, 2**40), "dimension 0 has size"),
        ((0, 2**62), "dimension 1 has size"),
    ],
    ids=str,
)
def test_check_shape(shape: tuple[int, ...], error: str | None) -> None:
    if error is None:
        check_shape(shape, LIMITS)
    else:
        with pytest.raises(ArrayLimitError, match=error.replace("(", r"\(")):
            check_shape(shape, LIMITS)


def test_negative_dimension_is_an_error_not_a_limit() -> None:
    with pytest.raises(ArrayError) as info:
        check_shape((2, -1), LIMITS)
    assert not isinstance(info.value, ArrayLimitError)


def test_settings_reach_the_limits() -> None:
    settings = cpu_settings(max_rank=3, max_dim=7, max_elements=11, max_depth=5)
    assert limits_of(settings) == ArrayLimits(max_rank=3, max_dim=7, max_elements=11, max_depth=5)


def test_array_limits_defaults_are_the_settings_defaults() -> None:
    assert limits_of(cpu_settings()) == ArrayLimits()
