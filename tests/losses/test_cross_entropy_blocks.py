"""cross_entropy's reference on large inputs runs in row blocks: the answer is the same, byte for
byte, as in one piece (every sample, forced through blocks of one row), the blocked path is the
one large inputs take, and its memory stays a fraction of the input's float64 copy."""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import orjson
import pytest

from service.dataplane import Dataplane
from service.device import resolve_device
from service.jsonenc import dumps
from service.losses import common, cross_entropy, registry
from service.losses.base import DEFERRABLE, Loss, Reference
from tests.conftest import cpu_settings
from tests.losses.harness import SEED, prepared


def the_loss() -> Loss[Any]:
    loss = registry.get("cross_entropy")
    assert loss is not None
    return loss


LOSS = the_loss()
DATAPLANE = Dataplane(cpu_settings(), resolve_device("cpu"))
SAMPLES = [s for s in LOSS.samples(np.random.default_rng(SEED)) if np.ndim(s.body["input"]) >= 2]


def reference(body: dict[str, Any], dtype: str) -> Reference:
    params, prep = prepared(DATAPLANE, LOSS, body, dtype)
    with np.errstate(all="ignore"):
        return LOSS.reference(params, prep, frozenset())


def as_bytes(ref: Reference) -> bytes:
    """What the response carries of a reference, serialised as the response serialises it."""
    out = dumps(
        {
            "value": ref.value,
            "denominator": ref.denominator,
            "breakdown": {"loss": ref.losses, **ref.breakdown},
        }
    )
    return out


def in_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cross_entropy, "BLOCKED_ABOVE_ELEMENTS", 1 << 62)


def in_blocks(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    monkeypatch.setattr(cross_entropy, "BLOCKED_ABOVE_ELEMENTS", 0)
    monkeypatch.setattr(common, "ROW_BLOCK_ELEMENTS", budget)


@pytest.mark.parametrize("dtype", ["float32", "float16"])  # rounding deferred, and not
@pytest.mark.parametrize("budget", [1, 7])
@pytest.mark.parametrize("sample", SAMPLES, ids=[s.note.replace(" ", "_") for s in SAMPLES])
def test_blocks_give_the_same_bytes_as_one_piece(
    monkeypatch: pytest.MonkeyPatch, sample: Any, budget: int, dtype: str
) -> None:
    in_one_piece(monkeypatch)
    whole = as_bytes(reference(sample.body, dtype))
    in_blocks(monkeypatch, budget)
    assert as_bytes(reference(sample.body, dtype)) == whole


def large_body(rows: int = 64, classes: int = 32000, **extra: Any) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    logits = (rng.standard_normal((rows, classes)) * 3).astype(np.float32)
    return {"input": logits, "target": rng.integers(0, classes, rows), **extra}


@pytest.mark.parametrize(
    "extra",
    [{}, {"label_smoothing": 0.1, "weight": np.linspace(0.5, 2, 32000), "reduction": "none"}],
    ids=["plain", "smoothed_weighted"],
)
def test_a_large_binary_input_takes_the_blocked_path_with_the_same_answer(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any]
) -> None:
    body = large_body(**extra)
    taken: list[bool] = []
    blocked = cross_entropy.CrossEntropy._reference_in_row_blocks

    def spy(self: Any, *args: Any) -> Reference:
        taken.append(True)
        return blocked(self, *args)

    monkeypatch.setattr(cross_entropy.CrossEntropy, "_reference_in_row_blocks", spy)
    got = as_bytes(reference(body, "float32"))
    assert taken == [True]
    in_one_piece(monkeypatch)
    assert as_bytes(reference(body, "float32")) == got
    assert taken == [True]


@pytest.mark.parametrize("dtype", sorted(DEFERRABLE))
def test_the_blocked_reference_never_holds_the_input_in_float64(dtype: str) -> None:
    body = large_body()
    params, prep = prepared(DATAPLANE, LOSS, body, dtype)
    x = body["input"]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        ref = LOSS.reference(params, prep, frozenset())
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes / 2, f"peak {peak / 1e6:.1f} MB for a {x.nbytes / 1e6:.1f} MB input"
    assert ref.losses.shape == (64,)


def test_extras_of_the_input_size_keep_the_whole_array_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = large_body(rows=40)
    params, prep = prepared(DATAPLANE, LOSS, body | {"include": ["log_softmax"]}, "float32")
    with np.errstate(all="ignore"):
        ref = LOSS.reference(params, prep, frozenset({"log_softmax"}))
    assert ref.extras["log_softmax"].shape == (40, 32000)
    assert orjson.loads(as_bytes(ref))["breakdown"]["loss"]
