"""linear_cross_entropy beyond the generated cases: each ``options`` variant against torch called
with its own ``LinearCrossEntropyOptions``, the reference's row blocks (same numbers for any block,
memory bounded by the block), ``ignore_index``'s ``None`` default and the fallback warning."""

from __future__ import annotations

import tracemalloc
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.dataplane import Dataplane
from service.errors import InvalidInput
from service.losses import linear_cross_entropy as module
from service.losses.linear_cross_entropy import LinearCrossEntropy, LinearCrossEntropyParams

if TYPE_CHECKING:  # torch before 2.13 has none: the module must import there (make compat)
    from torch.nn import LinearCrossEntropyOptions

LOSS = LinearCrossEntropy()

OPTIONS: dict[str, dict[str, Any] | None] = {
    "reference path": None,
    "defaults": {},
    "one row a chunk": {"batch_chunk_size": 1},
    "chunks of 3": {"batch_chunk_size": 3, "chunking_method": None},
    "aspect ratio": {"chunking_method": "aspect_ratio"},
    "aspect ratio / 4": {"chunking_method": "aspect_ratio:4"},
    "accurate": {"acc_policy": "accurate"},
    "balanced": {"acc_policy": "balanced", "batch_chunk_size": 2},
    "compact, retain graph": {"acc_policy": "compact", "allow_retain_graph": True},
    "float64 accumulation": {"acc_dtype": "float64"},
}


def torch_accepts(policy: str) -> bool:
    """Whether the installed torch has this acc_policy (torch 2.14 dropped 'balanced')."""
    if not hasattr(torch.nn, "LinearCrossEntropyOptions"):
        return False  # before torch 2.13: these tests are deselected (tests/conftest.py)
    options: Any = torch.nn.LinearCrossEntropyOptions
    try:
        options(acc_policy=policy)
    except ValueError:
        return False
    return True


OPTIONS = {
    k: v for k, v in OPTIONS.items() if v is None or torch_accepts(v.get("acc_policy", "auto"))
}


def _problem(seed: int = 0, n: int = 7, hidden: int = 4, classes: int = 9) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "input": rng.standard_normal((n, hidden)),
        "linear_weight": rng.standard_normal((classes, hidden)),
        "linear_bias": rng.standard_normal(classes),
        "target": np.where(rng.random(n) < 0.3, -100, rng.integers(0, classes, n)),
    }


def _torch_options(spec: dict[str, Any] | None) -> LinearCrossEntropyOptions | None:
    if spec is None:
        return None
    spec = dict(spec)
    if "acc_dtype" in spec:
        spec["acc_dtype"] = getattr(torch, spec["acc_dtype"])
    return torch.nn.LinearCrossEntropyOptions(**spec)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("spec", list(OPTIONS.values()), ids=list(OPTIONS))
def test_options_variants_match_torch(
    dataplane: Dataplane, spec: dict[str, Any] | None, reduction: str
) -> None:
    arrays = _problem()
    body = {k: v.tolist() for k, v in arrays.items()} | {
        "options": spec,
        "reduction": reduction,
        "dtype": "float64",
        "include": ["grad"],
    }
    got = dataplane.compute(LOSS, body)
    t = {k: torch.tensor(v) for k, v in arrays.items()}
    leaves = [t[k].requires_grad_() for k in ("input", "linear_weight", "linear_bias")]
    want = F.linear_cross_entropy(
        t["input"],
        t["linear_weight"],
        t["target"],
        linear_bias=t["linear_bias"],
        reduction=reduction,
        options=_torch_options(spec),
    )
    np.testing.assert_allclose(got["value"], want.detach().numpy(), rtol=1e-12, atol=1e-13)
    assert got["reference"]["agrees"]
    assert got["chunked"] is (spec is not None)
    grads = torch.autograd.grad(want.sum(), leaves)
    for name, g in zip(("input", "linear_weight", "linear_bias"), grads, strict=True):
        np.testing.assert_allclose(got["extras"]["grad"][name], g.numpy(), rtol=1e-12, atol=1e-13)
        assert got["reference"]["grad"][name]["agrees"], name
    assert not got["warnings"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_float32_accumulation_of_half_precision(dataplane: Dataplane, dtype: str) -> None:
    body = {k: v.tolist() for k, v in _problem().items()}
    got = dataplane.compute(LOSS, body | {"dtype": dtype, "options": {"acc_dtype": "float32"}})
    assert got["reference"]["agrees"]


@pytest.mark.parametrize("acc_dtype", ["float16", "bfloat16", "float64"])
def test_other_accumulation_of_float32_is_refused(dataplane: Dataplane, acc_dtype: str) -> None:
    body = {k: v.tolist() for k, v in _problem().items()}
    with pytest.raises(InvalidInput) as info:
        dataplane.compute(LOSS, body | {"dtype": "float32", "options": {"acc_dtype": acc_dtype}})
    assert info.value.field == "options.acc_dtype"
    t = {k: torch.tensor(v, dtype=torch.float32) for k, v in _problem().items()}
    with pytest.raises(RuntimeError):  # what torch does with it
        F.linear_cross_entropy(
            t["input"],
            t["linear_weight"],
            t["target"].long(),
            options=torch.nn.LinearCrossEntropyOptions(acc_dtype=getattr(torch, acc_dtype)),
        )


@pytest.mark.parametrize("block", [1, 5, 9 * 3, 10**6])
@pytest.mark.parametrize("target", ["indices", "probabilities"])
def test_any_block_gives_the_same_reference(
    dataplane: Dataplane, monkeypatch: pytest.MonkeyPatch, block: int, target: str
) -> None:
    arrays = _problem(n=11)
    if target == "probabilities":
        arrays["target"] = np.random.default_rng(1).dirichlet(np.ones(9), size=11)
    body = {k: v.tolist() for k, v in arrays.items()} | {"label_smoothing": 0.1}
    params = LOSS.params_model.model_validate(body)
    assert isinstance(params, LinearCrossEntropyParams)
    whole = LOSS.reference(params, LOSS.prepare(params, "float64"), frozenset({"grad"}))
    monkeypatch.setattr(module, "BLOCK_ELEMENTS", block)
    blocked = LOSS.reference(params, LOSS.prepare(params, "float64"), frozenset({"grad"}))
    np.testing.assert_allclose(blocked.losses, whole.losses, rtol=1e-13)
    for key, value in whole.breakdown.items():
        np.testing.assert_allclose(blocked.breakdown[key], value, rtol=1e-13, err_msg=key)
    for key, value in whole.grads.items():
        np.testing.assert_allclose(blocked.grads[key], value, rtol=1e-12, atol=1e-15, err_msg=key)


def test_reference_memory_is_bounded_by_the_block(dataplane: Dataplane) -> None:
    """4,000 rows x 4,000 classes are 128 MB of float64 logits; the reference holds one block."""
    n, hidden, classes = 4000, 8, 4000
    rng = np.random.default_rng(0)
    body = {
        "input": rng.standard_normal((n, hidden)),
        "linear_weight": rng.standard_normal((classes, hidden)),
        "target": rng.integers(0, classes, n),
    }
    params = LOSS.params_model.model_validate(body, context={"may_hold_bools": False})
    assert isinstance(params, LinearCrossEntropyParams)
    prep = LOSS.prepare(params, "float64")
    tracemalloc.start()
    try:
        ref = LOSS.reference(params, prep, frozenset())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_logits = n * classes * 8
    assert peak < full_logits / 2, f"peak {peak / 2**20:.0f} MiB"
    assert peak < 12 * module.BLOCK_ELEMENTS * 8
    want = F.linear_cross_entropy(
        torch.from_numpy(body["input"]),
        torch.from_numpy(body["linear_weight"]),
        torch.from_numpy(body["target"]),
    )
    assert float(ref.value) == pytest.approx(float(want), rel=1e-12)


def test_ignore_index_none_means_minus_100(dataplane: Dataplane) -> None:
    arrays = _problem()
    body = {k: v.tolist() for k, v in arrays.items()} | {"dtype": "float64"}
    got = dataplane.compute(LOSS, body)
    logits = F.linear(*(torch.tensor(arrays[k]) for k in ("input", "linear_weight", "linear_bias")))
    want = F.cross_entropy(logits, torch.tensor(arrays["target"]))  # ignore_index=-100
    assert got["value"] == pytest.approx(float(want), rel=1e-12)
    np.testing.assert_array_equal(got["breakdown"]["ignored"], arrays["target"] == -100)


def test_ignore_index_with_probabilities_is_refused(dataplane: Dataplane) -> None:
    body = {"input": [[0.1, 0.2]], "linear_weight": [[1.0, 0.0], [0.0, 1.0]]}
    body |= {"target": [[0.5, 0.5]]}
    dataplane.compute(LOSS, body)  # null, the default, is fine
    with pytest.raises(InvalidInput) as info:
        dataplane.compute(LOSS, body | {"ignore_index": -100})
    assert info.value.field == "ignore_index"


@pytest.mark.parametrize(
    ("extra", "ignored"),
    [
        ({"label_smoothing": 0.1}, True),
        ({"target": [[0.5, 0.5, 0.0]]}, True),
        ({"linear_weight": [[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]]], "target": [[1]]}, True),
        ({}, False),
    ],
    ids=["smoothing", "probabilities", "K-dimensional", "chunked"],
)
def test_options_torch_ignores_are_warned(
    dataplane: Dataplane, extra: dict[str, Any], ignored: bool
) -> None:
    body = {"input": [[0.1, 0.2]], "linear_weight": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]}
    body |= {"target": [2], "options": {"batch_chunk_size": 1}} | extra
    got = dataplane.compute(LOSS, body)
    codes = [w["code"] for w in got["warnings"]]
    assert ("options_ignored" in codes) is ignored
    assert got["chunked"] is not ignored
    assert got["reference"]["agrees"]


def test_breakdown_has_rows_logsumexp_target_logit_and_loss(dataplane: Dataplane) -> None:
    arrays = _problem(n=5)
    arrays["target"] = np.array([0, 3, 8, 1, 2])
    got = dataplane.compute(LOSS, {k: v.tolist() for k, v in arrays.items()} | {"dtype": "float64"})
    logits = F.linear(*(torch.tensor(arrays[k]) for k in ("input", "linear_weight", "linear_bias")))
    breakdown = got["breakdown"]
    np.testing.assert_allclose(breakdown["logsumexp"], torch.logsumexp(logits, 1), rtol=1e-13)
    np.testing.assert_allclose(
        breakdown["target_logit"], logits[np.arange(5), arrays["target"]], rtol=1e-13
    )
    np.testing.assert_allclose(
        breakdown["loss"],
        F.cross_entropy(logits, torch.tensor(arrays["target"]), reduction="none"),
        rtol=1e-13,
    )


@pytest.mark.parametrize("policy", ["accurate", "balanced", "compact", "auto"])
def test_a_policy_this_torch_lacks_is_refused_naming_it(dataplane: Dataplane, policy: str) -> None:
    """Every policy some torch had: computed where the installed torch has it, else a 422 at
    options.acc_policy (never torch's own ValueError)."""
    body = {**_problem(), "options": {"acc_policy": policy}}
    body = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in body.items()}
    loss = LOSS
    if torch_accepts(policy):
        assert dataplane.compute(loss, body)["reference"]["agrees"]
    else:
        with pytest.raises(InvalidInput) as info:
            dataplane.compute(loss, body)
        assert info.value.field == "options.acc_policy"
        assert torch.__version__ in info.value.detail
