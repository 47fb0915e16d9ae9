"""The fast JSON path either makes exactly what ``np.asarray(orjson.loads(...))`` makes, or
declines, and a large body is then refused exactly as the ordinary path refuses it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service import fastjson
from service.arrays import ArrayLimits
from service.dataplane import Dataplane, parse_json
from service.errors import ServiceError
from service.fastjson import Tuning
from service.jsonenc import dumps

#: No row-length floor and tiny pieces, so that small texts reach every branch.
EAGER = Tuning(min_row_bytes=0, piece_bytes=4)


def asarray(text: bytes) -> np.ndarray:
    return np.asarray(orjson.loads(text))


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert got.tobytes() == want.tobytes()  # bit for bit: -0.0, the last ulp


ACCEPTED = [
    b"[1,2,3]",
    b"[[1,2],[3,4]]",
    b"[[1.5,2],[3,4]]",
    b"[]",
    b"[[],[]]",
    b"[[[],[]],[[],[]]]",
    b"[[[1]],[[2]]]",
    b" [ [ 1 , 2 ] ,\n\t[3,4] ]\r\n",
    b"[-0]",
    b"[-0.0, 0.0]",
    b"[1E5, 2]",
    b"[1e-400]",
    b"[0.1,0.2,0.30000000000000004,1e-300,12345678901234567890]",
    b"[9223372036854775807, -9223372036854775808]",
    b"[[1234567.25, 2], [3, 4]]",
]


@pytest.mark.parametrize("text", ACCEPTED, ids=[t.decode().strip() for t in ACCEPTED])
def test_accepted_arrays_equal_numpy(text: bytes) -> None:
    got = fastjson.tensor(text, tuning=EAGER)
    assert got is not None
    assert_same(got, asarray(text))


DECLINED = {
    "ragged": b"[[1,2],[3]]",
    "ragged deeper": b"[[[1,2],[3,4]],[[5,6],[7,8,9]]]",
    "ragged level": b"[[[1]],[[2],[3]]]",
    "scalar among lists": b"[[1,2],3]",
    "list among scalars": b"[1,[2]]",
    "mixed depth": b"[[1,2],[[3,4]]]",
    "one-element list among scalars": b"[[1,2],[3,[4]]]",
    "empty list among lists": b"[[1],[]]",
    "boolean": b"[1,true]",
    "false": b"[[0.5,false]]",
    "null": b"[1,null]",
    "string": b'["a"]',
    "string in a row": b'[[1,"2"]]',
    "integer above int64": b"[9223372036854775808]",
    "integer below int64": b"[-9223372036854775809]",
    "huge integer": b"[100000000000000000000000000000]",
    "overflowing float": b"[1e400]",
    "doubled comma": b"[[1,2],,[3,4]]",
    "missing comma": b"[[1,2] [3,4]]",
    "missing comma in a row": b"[1 2]",
    "trailing comma": b"[[1,2],[3,4],]",
    "leading comma": b"[,1]",
    "trailing garbage": b"[[1,2],[3,4]] x",
    "unbalanced": b"[[1,2]]]",
    "unclosed": b"[[1,2]",
    "object": b'[{"a":1}]',
    "nan token": b"[NaN]",
    "infinity token": b"[Infinity]",
    "vertical tab": b"[1,\x0b2]",
}


@pytest.mark.parametrize("text", DECLINED.values(), ids=DECLINED.keys())
def test_declines_what_numpy_or_json_refuse(text: bytes) -> None:
    assert fastjson.tensor(text, tuning=EAGER) is None


def test_limits_send_it_to_the_ordinary_path() -> None:
    deep = b"[" * 4 + b"1" + b"]" * 4
    assert fastjson.tensor(deep, limits=ArrayLimits(max_rank=3), tuning=EAGER) is None
    assert fastjson.tensor(deep, limits=ArrayLimits(max_depth=3), tuning=EAGER) is None
    assert fastjson.tensor(b"[1,2,3]", limits=ArrayLimits(max_dim=2), tuning=EAGER) is None
    assert fastjson.tensor(b"[1,2,3]", limits=ArrayLimits(max_elements=2), tuning=EAGER) is None


def test_short_rows_take_the_ordinary_path() -> None:
    text = orjson.dumps([[1.0, 2.0]] * 100)
    assert fastjson.tensor(text) is None
    got = fastjson.tensor(text, tuning=EAGER)
    assert got is not None
    assert_same(got, asarray(text))


# -- property: random rectangular arrays ---------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def nested(draw: st.DrawFn) -> tuple[Any, bool]:
    """A rectangular nested list of numbers (rank 1 to 4, dimensions 0 to 4)."""
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
    size = int(np.prod(shape))
    integers = draw(st.booleans())
    flat = draw(st.lists(int64 if integers else finite, min_size=size, max_size=size))
    arr = np.array(flat, dtype=object).reshape(shape)
    return arr.tolist(), draw(st.booleans())


@given(nested(), st.integers(1, 64))
def test_agrees_with_numpy_on_rectangular_arrays(case: tuple[Any, bool], piece: int) -> None:
    value, pretty = case
    text = json.dumps(value, indent=1 if pretty else None).encode()
    got = fastjson.tensor(text, tuning=Tuning(min_row_bytes=0, piece_bytes=piece))
    assert got is not None, text
    assert_same(got, asarray(text))


@st.composite
def ragged(draw: st.DrawFn) -> Any:
    """A nest of rank 2 to 4 whose last innermost list is one longer or shorter than the rest."""
    shape = draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
    shape[0] = max(shape[0], 2)
    size = int(np.prod(shape))
    value: Any = np.array(draw(st.lists(finite, min_size=size, max_size=size)), dtype=object)
    value = value.reshape(shape).tolist()
    node = value
    while isinstance(node[-1][-1], list):
        node = node[-1]
    if draw(st.booleans()):
        node[-1] = [*node[-1], draw(finite)]
    else:
        node[-1] = node[-1][:-1]
    return value


@given(ragged())
def test_declines_ragged_arrays(value: Any) -> None:
    text = orjson.dumps(value)
    with pytest.raises(ValueError, match="inhomogeneous"):
        asarray(text)
    assert fastjson.tensor(text, tuning=EAGER) is None


# -- a large body through the data plane ---------------------------------------------------

ROWS, COLS = 8, 4096  # about 300 kB of JSON: above fastjson.MIN_BYTES


def large_body(**overrides: Any) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    body: dict[str, Any] = {
        "input": rng.standard_normal((ROWS, COLS)).tolist(),
        "target": rng.integers(0, COLS, ROWS).tolist(),
        "reference": False,
    }
    return body | overrides


def test_large_body_takes_the_fast_path(dataplane: Dataplane) -> None:
    raw = orjson.dumps(large_body())
    assert len(raw) > fastjson.MIN_BYTES
    body, _ = dataplane.parse(dataplane.loss("cross_entropy"), raw)
    assert isinstance(body["input"], np.ndarray)
    assert_same(body["input"], np.asarray(orjson.loads(raw)["input"]))
    assert_same(body["target"], np.asarray(orjson.loads(raw)["target"]))


def _defect(kind: str) -> dict[str, Any]:
    body = large_body()
    rows = body["input"]
    if kind == "ragged":
        rows[3] = rows[3][:-1]
    elif kind == "boolean":
        rows[5][7] = True
    elif kind == "string":
        rows[0][0] = "1.0"
    elif kind == "null":
        rows[6][100] = None
    elif kind == "nested":
        rows[2][9] = [1.0]
    elif kind == "deep":
        body["input"] = [[[[[[[[[[[[[rows]]]]]]]]]]]]]
    elif kind == "boolean target":
        body["target"] = [True] * ROWS
    elif kind == "fractional target":
        body["target"] = [0.5] * ROWS
    elif kind == "string weight":
        body["weight"] = ["1"] * COLS
    return body


DEFECTS = [
    "ragged",
    "boolean",
    "string",
    "null",
    "nested",
    "deep",
    "boolean target",
    "fractional target",
    "string weight",
]


def _huge_integer_target() -> bytes:
    raw = orjson.dumps(large_body())
    start = raw.index(b'"target":[') + len(b'"target":[')
    return raw[:start] + b"18446744073709551616" + raw[raw.index(b",", start) :]


@pytest.mark.parametrize("kind", [*DEFECTS, "huge integer target"])
def test_large_bad_body_is_refused_as_before(dataplane: Dataplane, kind: str) -> None:
    raw = _huge_integer_target() if kind == "huge integer target" else orjson.dumps(_defect(kind))
    assert len(raw) > fastjson.MIN_BYTES
    loss = dataplane.loss("cross_entropy")
    with pytest.raises(ServiceError) as before:  # the ordinary path: parse_json, then compute
        dataplane.compute(loss, parse_json(raw, dataplane.limits), may_hold_bools=True)
    with pytest.raises(ServiceError) as now:
        dataplane.compute_json("cross_entropy", bytearray(raw))
    assert (now.value.status, now.value.errors) == (before.value.status, before.value.errors)
    assert now.value.status == 422
    assert now.value.field in {"input", "target", "weight"}


def test_large_body_is_computed_as_before(dataplane: Dataplane) -> None:
    raw = orjson.dumps(large_body(reference=True))
    loss = dataplane.loss("cross_entropy")
    before = dataplane.compute(loss, orjson.loads(raw))
    now = dataplane.compute_json("cross_entropy", bytearray(raw))
    assert dumps(now) == dumps(before)
