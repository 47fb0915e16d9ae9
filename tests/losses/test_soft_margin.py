"""soft_margin_loss and multilabel_soft_margin_loss beyond the generated tests: torch's overflow,
label conventions, the shapes torch mishandles, and empty dimensions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from service.dataplane import Dataplane
from service.errors import InvalidInput
from tests.losses.parity import assert_both_refuse, codes, compute


def direct(name: str, body: dict[str, Any], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    tensors = {
        k: torch.as_tensor(np.asarray(v, dtype=np.float64)).to(dtype)
        for k, v in body.items()
        if k in ("input", "target", "weight")
    }
    options = {k: v for k, v in body.items() if k not in tensors}
    out: torch.Tensor = getattr(torch.nn.functional, name)(**tensors, **options)
    return out


@pytest.mark.parametrize(
    ("dtype", "torch_dtype", "overflows"),
    [("float32", torch.float32, True), ("float64", torch.float64, False)],
)
def test_soft_margin_overflow_is_torchs_and_is_flagged(
    dataplane: Dataplane, dtype: str, torch_dtype: torch.dtype, overflows: bool
) -> None:
    body = {"input": [-100.0, 3.0], "target": [1, 1], "reduction": "none"}
    got = compute(dataplane, "soft_margin_loss", body, dtype)
    want = direct("soft_margin_loss", body, torch_dtype).numpy()
    np.testing.assert_array_equal(np.isinf(got["value"]), np.isinf(want))
    assert bool(np.isinf(want[0])) is overflows
    assert ("exp_overflow" in codes(got)) is overflows
    assert got["reference"]["agrees"] is not overflows
    assert got["breakdown"]["loss"][0] == pytest.approx(100.0)


def test_soft_margin_zero_one_labels_are_flagged(dataplane: Dataplane) -> None:
    body = {"input": [0.3, -2.0, 5.0], "target": [0, 1, 0], "reduction": "none"}
    got = compute(dataplane, "soft_margin_loss", body)
    np.testing.assert_allclose(got["value"], direct("soft_margin_loss", body).numpy())
    assert got["value"][0] == pytest.approx(np.log(2.0))
    assert "target_values" in codes(got)


@pytest.mark.parametrize(("x_shape", "y_shape"), [((3,), (2, 3)), ((3, 1), (1, 4)), ((2, 3), (2,))])
def test_soft_margin_target_must_broadcast_to_the_input(
    dataplane: Dataplane, x_shape: tuple[int, ...], y_shape: tuple[int, ...]
) -> None:
    body = {"input": np.zeros(x_shape).tolist(), "target": np.ones(y_shape).tolist()}
    assert_both_refuse(
        dataplane,
        "soft_margin_loss",
        body,
        "target",
        lambda: direct("soft_margin_loss", body),
        RuntimeError,
    )


def test_soft_margin_target_broadcast_over_rows(dataplane: Dataplane) -> None:
    body = {"input": [[0.5, -1.0], [2.0, 0.1]], "target": [1, -1], "reduction": "none"}
    got = compute(dataplane, "soft_margin_loss", body)
    np.testing.assert_allclose(got["value"], direct("soft_margin_loss", body).numpy())
    assert "shape_mismatch_broadcast" in codes(got)


def test_multilabel_soft_margin_needs_a_class_dimension(dataplane: Dataplane) -> None:
    body = {"input": 0.5, "target": 1.0}
    with pytest.raises(InvalidInput) as info:
        compute(dataplane, "multilabel_soft_margin_loss", body)
    assert info.value.field == "input"
    with pytest.raises(IndexError):
        direct("multilabel_soft_margin_loss", body)


def test_multilabel_soft_margin_refuses_what_torch_averages_wrongly(
    dataplane: Dataplane,
) -> None:
    """Torch broadcasts a (2, 3) target over a (3) input, then averages over the batch axis."""
    body = {"input": [0.5, -1.0, 2.0], "target": [[1, 0, 1], [0, 0, 1]], "reduction": "none"}
    assert direct("multilabel_soft_margin_loss", body).shape == (3,)  # not one value per sample
    with pytest.raises(InvalidInput) as info:
        compute(dataplane, "multilabel_soft_margin_loss", body)
    assert info.value.field == "target"


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("shape", [(2, 0), (0, 3), (0,)])
def test_multilabel_soft_margin_empty_dimensions(
    dataplane: Dataplane, shape: tuple[int, ...], reduction: str
) -> None:
    """An empty class dimension gives 0/0 = NaN per sample; an empty batch (only expressible
    in binary) an empty 'none' and a NaN mean, all as torch has them."""
    body: dict[str, Any] = {"input": np.zeros(shape), "target": np.zeros(shape)}
    body["reduction"] = reduction
    got = compute(dataplane, "multilabel_soft_margin_loss", body)
    want = direct("multilabel_soft_margin_loss", body).numpy()
    np.testing.assert_array_equal(np.asarray(got["value"]), want)  # NaN where torch's is NaN
    assert np.shape(got["value"]) == want.shape
    assert ("empty_class_dimension" in codes(got)) is (shape[-1] == 0)


def test_multilabel_soft_margin_minus_one_labels_are_flagged(dataplane: Dataplane) -> None:
    body = {"input": [[0.5, -1.0, 2.0]], "target": [[1, -1, 1]], "reduction": "none"}
    got = compute(dataplane, "multilabel_soft_margin_loss", body)
    np.testing.assert_allclose(got["value"], direct("multilabel_soft_margin_loss", body).numpy())
    assert "target_values" in codes(got)


def test_multilabel_soft_margin_per_class_breakdown(dataplane: Dataplane) -> None:
    body = {"input": [[0.5, -1.0, 2.0]], "target": [[1, 0, 1]], "weight": [1.0, 2.0, 0.0]}
    got = compute(dataplane, "multilabel_soft_margin_loss", body | {"reduction": "none"})
    per_class = np.asarray(got["breakdown"]["per_class"])
    assert per_class.shape == (1, 3)
    assert per_class[0, 2] == 0.0
    np.testing.assert_allclose(per_class.sum(axis=-1) / 3, got["value"])
