"""Datatypes: wire bytes both ways, BF16 against torch's own bfloat16, and lossy JSON refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from service.protocol.datatypes import (
    DatatypeError,
    bf16_to_float32,
    datatype_of,
    float32_to_bf16,
    from_bytes,
    from_json,
    itemsize,
    to_bytes,
)
from tests.protocol.wire import NP_DTYPES

FIXED = sorted(NP_DTYPES)


def sample(datatype: str, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    dt = np.dtype(NP_DTYPES[datatype])
    if dt.kind == "b":
        return rng.random((3, 4)) < 0.5
    if dt.kind == "f":
        return rng.standard_normal((3, 4)).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, (3, 4), dtype=dt, endpoint=True)


@pytest.mark.parametrize("datatype", FIXED)
def test_binary_round_trip_is_a_view(datatype: str) -> None:
    arr = sample(datatype, np.random.default_rng(0))
    body = bytearray(b"{}" + arr.tobytes())
    got = from_bytes(body, 2, arr.size, datatype)
    assert itemsize(datatype) == arr.dtype.itemsize
    np.testing.assert_array_equal(got, arr.ravel())
    assert np.shares_memory(got, np.frombuffer(body, np.uint8)), "decoded by copying"
    assert got.flags.writeable
    assert to_bytes(got, datatype) == arr.tobytes()
    assert datatype_of(arr) == datatype


def test_bf16_matches_torch() -> None:
    values = torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 100
    bf = values.to(torch.bfloat16)
    wire = bf.view(torch.int16).numpy().astype("<i2").tobytes()
    widened = from_bytes(wire, 0, 1000, "BF16")
    np.testing.assert_array_equal(widened, bf.float().numpy())
    assert float32_to_bf16(widened).tobytes() == wire
    # values that are not bfloat16 are rounded as torch rounds them, never truncated
    assert float32_to_bf16(values.numpy()).tobytes() == wire
    assert to_bytes(bf.float().numpy(), "BF16") == wire


def test_bf16_widening_is_exact() -> None:
    bits = np.array([0x3F80, 0xC000, 0x7F80, 0x0001], dtype="<u2")
    np.testing.assert_array_equal(
        bf16_to_float32(bits), np.array([1.0, -2.0, np.inf, 2.0**-133], np.float32)
    )


@pytest.mark.parametrize(
    ("datatype", "values", "expected"),
    [
        ("FP32", [0.1, 2], np.array([0.1, 2], np.float32)),
        ("FP16", [0.1, 65504.0], np.array([0.1, 65504.0], np.float16)),
        ("FP64", [0.1, -3], np.array([0.1, -3.0])),
        ("INT8", [-128, 127], np.array([-128, 127], np.int8)),
        ("UINT8", [0, 255], np.array([0, 255], np.uint8)),
        ("INT64", [3.0, -1.0], np.array([3, -1], np.int64)),
        ("BOOL", [True, False], np.array([True, False])),
    ],
)
def test_from_json(datatype: str, values: list[Any], expected: np.ndarray[Any, Any]) -> None:
    got = from_json(np.asarray(values), datatype)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_bf16_json_is_rounded_as_torch_rounds() -> None:
    values = np.array([0.1, 1.0 / 3.0, 1e30, -7.25])
    got = from_json(values, "BF16")
    want = torch.tensor(values).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("datatype", "values", "reason"),
    [
        ("INT64", [1.5], "whole numbers"),
        ("INT8", [128], "out of the range"),
        ("UINT8", [-1], "out of the range"),
        ("FP16", [1e6], "out of the range"),
        ("BF16", [1e39], "out of the range"),
        ("BOOL", [0, 1], "true/false"),
        ("FP32", [True], "not true/false"),
    ],
)
def test_lossy_json_is_refused(datatype: str, values: list[Any], reason: str) -> None:
    with pytest.raises(DatatypeError, match=reason):
        from_json(np.asarray(values), datatype)


@pytest.mark.parametrize(("datatype", "reason"), [("BYTES", "strings"), ("FP8", "unknown")])
def test_unsupported_datatypes(datatype: str, reason: str) -> None:
    with pytest.raises(DatatypeError, match=reason):
        itemsize(datatype)


def test_bool_bytes_must_be_0_or_1() -> None:
    with pytest.raises(DatatypeError, match="0 or 1"):
        from_bytes(b"\x00\x02", 0, 2, "BOOL")
