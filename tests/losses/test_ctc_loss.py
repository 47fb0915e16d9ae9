"""ctc_loss beyond the generated cases: infinite losses, torch's gradient convention, the checks
torch leaves out, and the warnings. Torch in-process is the oracle throughout."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
import torch
from torch.nn.functional import ctc_loss

from service.dataplane import Dataplane
from service.errors import InvalidInput
from service.losses.ctc_loss import CTCLoss
from tests.losses.harness import as_f64, oracle, prepared, torch_inputs

LOSS = CTCLoss()

#: Sample 0 needs 5 frames (2, 2, 2 need blanks between them) and has 3; sample 1 is fine;
#: sample 2 has no frames and one label.
IMPOSSIBLE: dict[str, Any] = {
    "targets": [[2, 2, 2], [1, 3, 0], [1, 0, 0]],
    "input_lengths": [3, 6, 0],
    "target_lengths": [3, 2, 1],
}


def _log_probs(shape: tuple[int, ...], seed: int = 0) -> list[Any]:
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out: list[Any] = logits.log_softmax(-1).tolist()
    return out


def _compute(dataplane: Dataplane, body: dict[str, Any]) -> dict[str, Any]:
    return dataplane.compute(LOSS, body | {"dtype": body.get("dtype", "float64")})


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_impossible_alignments(dataplane: Dataplane, reduction: str, zero_infinity: bool) -> None:
    body = IMPOSSIBLE | {
        "log_probs": _log_probs((6, 3, 4)),
        "reduction": reduction,
        "zero_infinity": zero_infinity,
    }
    params, prep = prepared(dataplane, LOSS, body, "float64")
    expected = as_f64(oracle(LOSS, params, torch_inputs(prep, "float64")))
    got = _compute(dataplane, body)
    np.testing.assert_array_equal(np.asarray(got["value"]), expected)
    assert got["reference"]["agrees"]
    per_sample = np.asarray(_compute(dataplane, body | {"reduction": "none"})["value"])
    assert np.isinf(per_sample).tolist() == [not zero_infinity, False, not zero_infinity]
    codes = {w["code"]: w for w in got["warnings"]}
    code = "infinite_losses_zeroed" if zero_infinity else "infinite_loss"
    assert codes[code]["samples"] == [0, 2]


def test_gradients_of_infinite_losses_follow_torch(dataplane: Dataplane) -> None:
    """NaN over the frames of a sample without alignment, 0 past its input, as torch returns."""
    body = IMPOSSIBLE | {"log_probs": _log_probs((6, 3, 4)), "include": ["grad"]}
    got = _compute(dataplane, body)
    assert got["reference"]["grad"]["log_probs"]["agrees"]
    grad = np.asarray(got["extras"]["grad"]["log_probs"])
    assert np.isnan(grad[:3, 0]).all()
    assert np.isfinite(grad[:, 1:]).all()


@pytest.mark.anyio
async def test_infinite_loss_through_the_api(client: httpx.AsyncClient) -> None:
    body = IMPOSSIBLE | {"log_probs": _log_probs((6, 3, 4)), "reduction": "sum"}
    r = await client.post("/v1/losses/ctc_loss", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["value"] == "Infinity"
    assert answer["reference"]["value"] == "Infinity"
    assert answer["target_layout"] == "padded"
    warning = next(w for w in answer["warnings"] if w["code"] == "infinite_loss")
    assert "zero_infinity" in warning["message"]


def test_gradient_convention() -> None:
    """Torch's autograd gives exp(log_probs) - posterior, not the derivative -posterior; through
    a log_softmax both give softmax - posterior. The reference's 'posterior' extra is checked
    against torch's finite differences, its gradient against torch's autograd."""
    logits = torch.randn(7, 2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    logits.requires_grad_(True)
    log_probs = logits.log_softmax(-1)
    targets = torch.tensor([[1, 2, 2], [4, 3, 0]])
    lengths = (torch.tensor([7, 7]), torch.tensor([3, 2]))
    out = ctc_loss(log_probs, targets, *lengths, reduction="sum")
    logits_grad, log_probs_grad = torch.autograd.grad(out, [logits, log_probs])

    body = {
        "log_probs": log_probs.detach().tolist(),
        "targets": targets.tolist(),
        "input_lengths": lengths[0].tolist(),
        "target_lengths": lengths[1].tolist(),
        "reduction": "sum",
    }
    params = LOSS.params_model.model_validate(body)
    ref = LOSS.reference(params, LOSS.prepare(params, "float64"), frozenset({"grad", "posterior"}))
    posterior = ref.extras["posterior"]
    softmax = np.exp(as_f64(log_probs))
    np.testing.assert_allclose(ref.grads["log_probs"], as_f64(log_probs_grad), atol=1e-12)
    np.testing.assert_allclose(softmax - posterior, as_f64(log_probs_grad), atol=1e-12)
    np.testing.assert_allclose(softmax - posterior, as_f64(logits_grad), atol=1e-12)

    h = 1e-6
    base = log_probs.detach()
    for t, b, c in [(0, 0, 0), (2, 0, 2), (4, 1, 3), (5, 1, 1)]:
        bumped = [base.clone(), base.clone()]
        bumped[0][t, b, c] += h
        bumped[1][t, b, c] -= h
        up, down = (float(ctc_loss(x, targets, *lengths, reduction="sum")) for x in bumped)
        assert (up - down) / (2 * h) == pytest.approx(-posterior[t, b, c], abs=1e-7)


def test_torch_scores_a_blank_label_silently(dataplane: Dataplane) -> None:
    """Torch returns a finite number for a target holding the blank; the service refuses it."""
    body = {
        "log_probs": _log_probs((5, 1, 3)),
        "targets": [[1, 0, 2]],
        "input_lengths": [5],
        "target_lengths": [3],
    }
    lp, targets, il, tl = (torch.tensor(body[k]) for k in body)
    assert torch.isfinite(ctc_loss(lp, targets, il, tl))
    with pytest.raises(InvalidInput) as err:
        _compute(dataplane, body)
    assert err.value.field == "targets"


def test_mean_divides_each_loss_by_its_target_length(dataplane: Dataplane) -> None:
    body = {
        "log_probs": _log_probs((8, 3, 4)),
        "targets": [1, 2, 3, 3, 1],
        "input_lengths": [8, 7, 5],
        "target_lengths": [3, 0, 2],
    }
    mean = _compute(dataplane, body)
    none = np.asarray(_compute(dataplane, body | {"reduction": "none"})["value"])
    assert mean["denominator"] is None
    assert mean["target_layout"] == "concatenated"
    np.testing.assert_allclose(mean["breakdown"]["mean_term"], none / [3, 1, 2], rtol=1e-12)
    assert float(mean["value"]) == pytest.approx(float(np.mean(none / [3, 1, 2])), rel=1e-12)


@pytest.mark.parametrize(
    ("transform", "looks"),
    [
        (lambda lp: lp, None),
        (np.exp, "probabilities"),
        (lambda lp: lp + 2.0, "logits"),
        (lambda lp: lp - 0.5, "unnormalised log-scores"),
    ],
    ids=["log_softmax", "probabilities", "logits", "shifted down"],
)
def test_normalisation_warning(dataplane: Dataplane, transform: Any, looks: str | None) -> None:
    lp = transform(np.asarray(_log_probs((6, 2, 4))))
    body = {
        "log_probs": lp.tolist(),
        "targets": [[1, 2], [3, 0]],
        "input_lengths": [6, 6],
        "target_lengths": [2, 1],
    }
    warnings = {w["code"]: w for w in _compute(dataplane, body)["warnings"]}
    if looks is None:
        assert "log_probs_not_normalised" not in warnings
    else:
        assert looks in warnings["log_probs_not_normalised"]["message"]
        assert warnings["log_probs_not_normalised"]["frames"] == 12


def test_frames_past_the_input_length_are_not_checked_for_normalisation(
    dataplane: Dataplane,
) -> None:
    lp = np.asarray(_log_probs((6, 1, 4)))
    lp[4:] = 5.0  # padding frames, unused
    body = {"log_probs": lp.tolist(), "targets": [[1]], "input_lengths": [4], "target_lengths": [1]}
    codes = [w["code"] for w in _compute(dataplane, body)["warnings"]]
    assert "log_probs_not_normalised" not in codes


def test_a_lattice_larger_than_the_limit_is_refused(dataplane: Dataplane) -> None:
    """A small body can ask torch for a huge lattice: 2000 frames x 25 samples x 2001 states."""
    body = {
        "log_probs": np.zeros((2000, 25, 2)).tolist(),
        "targets": np.ones(25 * 1000, dtype=int).tolist(),
        "input_lengths": [2000] * 25,
        "target_lengths": [1000] * 25,
    }
    with pytest.raises(InvalidInput) as err:
        _compute(dataplane, body)
    assert err.value.field == "target_lengths"


def test_more_frames_than_the_limit_are_refused(dataplane: Dataplane) -> None:
    body = {
        "log_probs": np.zeros((50_001, 1)).tolist(),
        "targets": [],
        "input_lengths": 50_001,
        "target_lengths": 0,
    }
    with pytest.raises(InvalidInput) as err:
        _compute(dataplane, body)
    assert err.value.field == "log_probs"
