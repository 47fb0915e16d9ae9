"""Rounding to the compute dtype: torch's rounding, and no work when there is nothing to round."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from service.dtypes import TORCH_DTYPES, round_to_dtype

SOURCES = [np.float16, np.float32, np.float64]


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: np.dtype(s).name)
@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
def test_rounding_matches_torch(source: type[np.floating], dtype: str) -> None:
    values = (np.random.default_rng(1).standard_normal(500) * 50).astype(source)
    got = round_to_dtype(values, dtype)
    want = torch.from_numpy(values).to(TORCH_DTYPES[dtype]).double().numpy()
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("source", "dtype"),
    [
        (np.float64, "float64"),
        (np.float32, "float32"),
        (np.float32, "float64"),
        (np.float16, "float16"),
    ],
)
def test_exact_sources_are_widened_once(source: type[np.floating], dtype: str) -> None:
    values = np.linspace(-3, 3, 7).astype(source)
    got = round_to_dtype(values, dtype)
    np.testing.assert_array_equal(got, values.astype(np.float64))
    if source is np.float64:
        assert got is values  # nothing to round, nothing copied
