"""cross_entropy's conventions beyond the generated oracle tests (``test_records``): the
article's numbers, the readings a tiny probability parts, and the options mapped in the calls."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from service.conventions import conventions
from service.dataplane import Dataplane
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from tests.conventions.oracles.cross_entropy import ARTICLE, CASES


def rows_for(dataplane: Dataplane, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = conventions(dataplane, "cross_entropy", body)
    return {r["id"]: r for r in out["conventions"]}


def test_the_articles_numbers(dataplane: Dataplane) -> None:
    """The article's example: the logit readings give torch's 1.1484, the probability readings
    1.3157, the article's loop 3.9470 (each value is checked against its library above)."""
    rows = rows_for(dataplane, ARTICLE)
    shown = {k: round(v["value"], 4) for k, v in rows.items()}
    torch_value = round(
        float(F.cross_entropy(torch.tensor(ARTICLE_INPUT), torch.tensor(ARTICLE_TARGET))), 4
    )
    assert torch_value == 1.1484
    for k in ("torch", "keras_from_logits", "optax", "tf_nn"):
        assert shown[k] == torch_value, k
        assert rows[k]["agrees_with_torch"] is True
    for k in ("torch_nll_on_log", "textbook", "sklearn_log_loss", "keras_from_probs"):
        assert shown[k] == 1.3157, k
        assert rows[k]["agrees_with_torch"] is False
        assert rows[k]["reads_input_as"] == "probabilities"
    assert shown["article_loop"] == 3.9470
    assert (
        rows["sklearn_log_loss"]["call"]
        == "sklearn.metrics.log_loss(target, input, labels=range(C))"
    )
    assert all(r["why"].endswith(".") and r["why"].count(". ") == 0 for r in rows.values())


def test_a_tiny_probability_parts_the_readings(dataplane: Dataplane) -> None:
    """One probability of 1e-12 on the target: -log 1e-12 = 27.63 for the textbook and
    scikit-learn (its clip is 2.2e-16), 16.12 for Keras (its clip is 1e-7)."""
    rows = rows_for(dataplane, CASES["tiny probability"])
    assert round(rows["textbook"]["value"], 2) == 27.63
    assert round(rows["sklearn_log_loss"]["value"], 2) == 27.63
    assert round(rows["keras_from_probs"]["value"], 2) == 16.12


def test_options_are_mapped_in_the_calls(dataplane: Dataplane) -> None:
    rows = rows_for(dataplane, CASES["smoothed logits, weighted, ignored"])
    assert "label_smoothing=0.1" in rows["keras_from_logits"]["call"]
    assert "sample_weight=weight[target]" in rows["keras_from_logits"]["call"]
    assert "optax.smooth_labels(" in rows["optax"]["call"]
    assert "no class weight" in rows["optax"]["why"]
    assert "no label smoothing" in rows["tf_nn"]["why"]
    rows = rows_for(dataplane, CASES["ignored"])
    assert "ignore_class=-100" in rows["keras_from_probs"]["call"]
    rows = rows_for(dataplane, CASES["weighted logits"])
    assert "not by the sum of the weights" in rows["keras_from_logits"]["why"]
    assert rows["keras_from_logits"]["agrees_with_torch"] is False


def test_row_order_is_the_declaration_order(dataplane: Dataplane) -> None:
    rows = rows_for(dataplane, ARTICLE)
    assert list(rows) == [
        "torch",
        "torch_nll_on_log",
        "textbook",
        "article_loop",
        "sklearn_log_loss",
        "keras_from_probs",
        "keras_from_logits",
        "optax",
        "tf_nn",
        "perplexity",
    ]
