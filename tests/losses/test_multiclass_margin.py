"""multi_margin_loss and multilabel_margin_loss beyond the generated tests: empty batches, the
-1-terminated target format, the blocked multilabel reference, and refusals that torch shares."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from service.dataplane import Dataplane
from service.errors import InvalidInput
from service.losses import multiclass_margin, registry
from tests.conftest import cpu_settings
from tests.losses.parity import assert_both_refuse, codes, compute

NAMES = ["multi_margin_loss", "multilabel_margin_loss"]


def direct(name: str, body: dict[str, Any], grad: bool = False) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(body["input"], dtype=np.float64)).requires_grad_(grad)
    tensors: dict[str, Any] = {
        "input": x,
        "target": torch.as_tensor(np.asarray(body["target"], dtype=np.int64)),
    }
    if body.get("weight") is not None:
        tensors["weight"] = torch.as_tensor(np.asarray(body["weight"], dtype=np.float64))
    options = {k: v for k, v in body.items() if k not in ("input", "target", "weight")}
    out: torch.Tensor = getattr(torch.nn.functional, name)(**tensors, **options)
    return out


def empty_body(name: str) -> dict[str, Any]:
    target = np.zeros(0, np.int64) if name == "multi_margin_loss" else np.zeros((0, 3), np.int64)
    return {"input": np.zeros((0, 3)), "target": target}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_reduced_is_refused(dataplane: Dataplane, name: str, reduction: str) -> None:
    """Torch 2.13 answers these from uninitialised memory; only 'none' is defined."""
    with pytest.raises(InvalidInput) as info:
        compute(dataplane, name, empty_body(name) | {"reduction": reduction})
    assert info.value.field == "input"


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_unreduced_is_torchs_empty(dataplane: Dataplane, name: str) -> None:
    body = empty_body(name) | {"reduction": "none"}
    got = compute(dataplane, name, body)
    assert np.shape(got["value"]) == tuple(direct(name, body).shape) == (0,)
    assert got["reference"]["agrees"]


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("multi_margin_loss", {"input": [[0.1, 0.2]], "target": [2]}, "target"),
        ("multi_margin_loss", {"input": [[0.1, 0.2]], "target": [[1]]}, "target"),
        ("multi_margin_loss", {"input": [[0.1, 0.2]], "target": [1], "weight": [1.0]}, "weight"),
        ("multi_margin_loss", {"input": [[0.1, 0.2]], "target": [1], "p": 3}, "p"),
        ("multi_margin_loss", {"input": [[[0.1, 0.2]]], "target": [1]}, "input"),
        ("multilabel_margin_loss", {"input": [[0.1, 0.2]], "target": [[2, -1]]}, "target"),
        ("multilabel_margin_loss", {"input": [[0.1, 0.2]], "target": [[0, -3]]}, "target"),
        ("multilabel_margin_loss", {"input": [[0.1, 0.2]], "target": [0, -1]}, "target"),
        ("multilabel_margin_loss", {"input": [0.1, 0.2], "target": [[0, -1]]}, "target"),
        ("multilabel_margin_loss", {"input": [[]], "target": [[]]}, "input"),
    ],
)
def test_refusals_mirror_torchs(
    dataplane: Dataplane, name: str, body: dict[str, Any], field: str
) -> None:
    assert_both_refuse(dataplane, name, body, field, lambda: direct(name, body))


@pytest.mark.parametrize(
    ("target", "warning", "rows"),
    [
        ([[0, 1, 1, 0], [2, -1, -1, -1]], "target_looks_multi_hot", [0]),
        ([[2, -1, 0, 3], [1, 3, -1, -1]], "labels_after_terminator", [0]),
        ([[2, 2, -1, -1], [1, 3, -1, 3]], "duplicate_labels", [0]),
    ],
)
def test_multilabel_target_format_warnings(
    dataplane: Dataplane, target: list[list[int]], warning: str, rows: list[int]
) -> None:
    body = {"input": [[0.1, 0.9, -0.4, 0.3], [0.5, 0.5, 0.2, -1.0]], "target": target}
    body["reduction"] = "none"
    got = compute(dataplane, "multilabel_margin_loss", body)
    np.testing.assert_allclose(got["value"], direct("multilabel_margin_loss", body).numpy())
    (found,) = [w for w in got["warnings"] if w["code"] == warning]
    assert found["rows"] == rows


def test_multilabel_breakdown_counts_labels_and_violations(dataplane: Dataplane) -> None:
    body = {"input": [[0.0, 1.0, 2.0, 3.0]], "target": [[2, 0, -1, 1]], "reduction": "none"}
    got = compute(dataplane, "multilabel_margin_loss", body)
    assert got["breakdown"]["labels"].tolist() == [2]
    # label 2 (score 2) against non-labels 1 and 3: 1 - 2 + 1 = 0 (inactive), 1 - 2 + 3 = 2;
    # label 0 (score 0): 1 - 0 + 1 = 2, 1 - 0 + 3 = 4.
    assert got["breakdown"]["violations"].tolist() == [3]
    assert got["value"] == pytest.approx([(2 + 2 + 4) / 4])


def test_multilabel_reference_in_small_blocks_matches_torch(
    dataplane: Dataplane, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference walks (label, class) pairs in blocks; blocks of 7 pairs split rows."""
    monkeypatch.setattr(multiclass_margin, "BLOCK_ELEMENTS", 7 * 40)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 40))
    target = np.full((6, 40), -1)
    for row in target:
        k = int(rng.integers(0, 12))
        row[:k] = rng.choice(40, size=k, replace=False)
    body = {"input": x.tolist(), "target": target.tolist(), "include": ["grad"]}
    got = compute(dataplane, "multilabel_margin_loss", body)
    xt = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.multilabel_margin_loss(xt, torch.tensor(target))
    (grad,) = torch.autograd.grad(want, xt)
    assert float(got["value"]) == pytest.approx(float(want.detach()), rel=1e-12)
    np.testing.assert_allclose(got["extras"]["grad"]["input"], grad.numpy(), atol=1e-15)
    assert got["reference"]["agrees"]
    assert got["reference"]["grad"]["input"]["agrees"]


def test_multi_margin_weighted_mean_divides_by_count(dataplane: Dataplane) -> None:
    body = {"input": [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]], "target": [0, 2], "weight": [3.0, 1, 2]}
    got = compute(dataplane, "multi_margin_loss", body)
    assert float(got["value"]) == pytest.approx(float(direct("multi_margin_loss", body)))
    assert got["denominator"] == 2.0
    assert "weighted_mean_divides_by_count" in codes(got)
    assert got["breakdown"]["weight"].tolist() == [3.0, 2.0]


def test_multi_margin_single_class_is_zero_and_flagged(dataplane: Dataplane) -> None:
    got = compute(dataplane, "multi_margin_loss", {"input": [[4.0], [-2.0]], "target": [0, 0]})
    assert float(got["value"]) == 0.0
    assert "single_class" in codes(got)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_multi_margin_accepts_p_as_torch_does(dataplane: Dataplane, p: float) -> None:
    """Torch takes p == 1 or p == 2 whatever the number type; so does the service."""
    body = {"input": [[0.1, 0.2, 0.7]], "target": [1], "p": p}
    got = compute(dataplane, "multi_margin_loss", body)
    assert float(got["value"]) == pytest.approx(float(direct("multi_margin_loss", body)))


@pytest.mark.parametrize(
    ("input_", "target", "shape"),
    [(0.5, 0, ()), ([0.5, 0.1], 1, ()), ([0.5, 0.1], [1], (1,)), ([[0.5, 0.1]], 1, ())],
)
def test_multi_margin_none_keeps_the_targets_shape(
    dataplane: Dataplane, input_: Any, target: Any, shape: tuple[int, ...]
) -> None:
    body = {"input": input_, "target": target, "reduction": "none"}
    got = compute(dataplane, "multi_margin_loss", body)
    assert np.shape(got["value"]) == tuple(direct("multi_margin_loss", body).shape) == shape


def test_multilabel_pairs_beyond_the_element_limit_are_refused() -> None:
    """Every label is compared with every class: 60 labels × 100 classes is 6000 pairs."""
    small = Dataplane(cpu_settings(max_elements=5_000), torch.device("cpu"))
    loss = registry.get("multilabel_margin_loss")
    assert loss is not None
    target = np.full(100, -1)
    target[:60] = np.arange(60)
    body = {"input": np.zeros(100).tolist(), "target": target.tolist()}
    with pytest.raises(InvalidInput) as info:
        small.compute(loss, body)
    assert info.value.field == "target"
    target[40:60] = -1  # 40 labels: 4000 pairs
    small.compute(loss, body | {"target": target.tolist()})


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", NAMES)
def test_missing_cpu_kernel_is_refused_naming_the_dtype(
    dataplane: Dataplane, name: str, dtype: str
) -> None:
    loss = registry.get(name)
    assert loss is not None
    with pytest.raises(InvalidInput) as info:
        dataplane.compute(loss, loss.example() | {"dtype": dtype})
    assert info.value.field == "dtype"
    assert "float32" in info.value.detail
