"""The registry: every torch loss the service promises, one module each, no name twice."""

from __future__ import annotations

import inspect

import pytest
import torch

from service.losses import registry
from service.losses.base import SERVICE_FIELDS

PROMISED = {
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "soft_margin_loss",
    "multilabel_soft_margin_loss",
    "multilabel_margin_loss",
    "multi_margin_loss",
    "hinge_embedding_loss",
    "margin_ranking_loss",
    "cosine_embedding_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
    "linear_cross_entropy",
    "poisson_nll_loss",
    "gaussian_nll_loss",
    "ctc_loss",
}
DEPRECATED = {"size_average", "reduce"}


def test_every_promised_loss_is_registered() -> None:
    assert set(registry.names()) == PROMISED


def test_a_duplicate_name_is_refused() -> None:
    loss = registry.require("cross_entropy")
    with pytest.raises(registry.DuplicateLoss, match="cross_entropy"):
        registry.add(loss)


@pytest.mark.parametrize("name", sorted(PROMISED))
def test_parameters_are_torchs_keyword_arguments(name: str) -> None:
    """Same names and defaults as the pinned torch, less the deprecated pair."""
    loss = registry.require(name)
    signature = inspect.signature(getattr(torch.nn.functional, name))
    torch_args = {k: p for k, p in signature.parameters.items() if k not in DEPRECATED}
    fields = loss.params_model.model_fields
    ours = {k for k in fields if k not in SERVICE_FIELDS}
    assert ours == set(torch_args)
    for key, param in torch_args.items():
        if param.default is inspect.Parameter.empty:
            assert fields[key].is_required(), key
        else:
            assert fields[key].get_default(call_default_factory=True) == param.default, key
