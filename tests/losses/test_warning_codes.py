"""One vocabulary of warnings: each loss declares the codes it can give (``Loss.warning_codes``),
its samples and the bodies below give exactly those, and the README's table documents every
code with the losses that give it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.dataplane import GENERAL_WARNINGS, Dataplane
from service.losses import registry
from service.losses.base import Loss
from tests.losses.harness import SEED

README = Path(__file__).resolve().parents[2] / "README.md"
LOSSES = list(registry.all_losses())

#: Bodies giving the warnings no sample happens to give, by loss.
TRIGGERS: dict[str, list[dict[str, Any]]] = {
    "binary_cross_entropy_with_logits": [
        {"input": [0.2, 0.9], "target": [0.0, 1.0]},
        {"input": [0.5, -1.0], "target": [1.5, 0.0]},
        {"input": [0.5, -1.0], "target": [1.0, 0.0], "weight": [-1.0, 1.0]},
        {"input": [0.5, -1.0], "target": [1.0, 0.0], "pos_weight": [-1.0]},
    ],
    "cross_entropy": [{"input": [[1.0, 2.0]], "target": [[0.5, 0.7]]}],
    "huber_loss": [{"input": [1.0, 2.0], "target": [0.0, 0.0], "weight": [-1.0, 1.0]}],
    "l1_loss": [{"input": [1.0, 2.0], "target": [0.0, 0.0], "weight": [-1.0, 1.0]}],
    "mse_loss": [{"input": [1.0, 2.0], "target": [0.0, 0.0], "weight": [-1.0, 1.0]}],
    "kl_div": [
        {"input": [[-1.0, -2.0]], "target": [[-0.1, 1.1]]},
        {"input": [[-1.0, -2.0]], "target": [[0.5, -0.1]], "log_target": True},
    ],
    "linear_cross_entropy": [
        {
            "input": [[0.1, 0.2]],
            "linear_weight": [[1.0, 0.0], [0.0, 1.0]],
            "target": [[0.5, 0.7]],
            "weight": [1.0, 2.0],
        }
    ],
    "multi_margin_loss": [{"input": [[0.1, 0.2, 0.3]], "target": [1], "weight": [-1.0, 1.0, 1.0]}],
    "multilabel_soft_margin_loss": [
        {"input": [[0.1, 0.2]], "target": [[2.0, 0.0]]},
        {"input": [[]], "target": [[]]},
        {"input": [[0.1, 0.2]], "target": [[1.0, 0.0]], "weight": [-1.0, 1.0]},
    ],
    "nll_loss": [
        {"input": [[0.2, 0.8], [0.5, 0.5]], "target": [0, 1]},
        {"input": [[-0.1, -2.4]], "target": [0], "weight": [0.0, 1.0]},
    ],
    "poisson_nll_loss": [
        {"input": [-1.0, 2.0], "target": [1.0, 2.0], "log_input": False},
        {"input": [30.0, 2.0], "target": [1.0, 2.0]},
    ],
    "soft_margin_loss": [{"input": [-100.0, 1.0], "target": [1.0, 1.0], "dtype": "float32"}],
    "ctc_loss": [
        {
            "log_probs": np.log(np.full((2, 1, 3), 1 / 3)).tolist(),
            "targets": [[1, 2, 1]],
            "input_lengths": [2],
            "target_lengths": [3],
        }
    ],
}


def _bodies(loss: Loss[Any]) -> Iterator[dict[str, Any]]:
    for sample in loss.samples(np.random.default_rng(SEED)):
        yield sample.body
    yield from TRIGGERS.get(loss.name, [])


@pytest.mark.parametrize("loss", LOSSES, ids=[loss.name for loss in LOSSES])
def test_a_loss_gives_exactly_the_codes_it_declares(dataplane: Dataplane, loss: Loss[Any]) -> None:
    given: set[str] = set()
    for body in _bodies(loss):
        got = dataplane.compute(loss, body | {"reference": False})
        given |= {w["code"] for w in got["warnings"]}
    assert given - GENERAL_WARNINGS == loss.warning_codes


def test_the_merged_codes_are_gone() -> None:
    declared = set().union(*(loss.warning_codes for loss in LOSSES))
    assert not declared & {"shapes_broadcast", "target_not_plus_minus_one"}


def _readme_table() -> dict[str, set[str]]:
    """The README's warning table: code -> the losses its second column names."""
    text = README.read_text()
    section = text.split("### Warnings", 1)[1].split("\n#", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) >= 4 else None
        if match:
            rows[match.group(1)] = set(re.findall(r"`(\w+)`", cells[1])) or {cells[1]}
    return rows


def test_the_readme_table_documents_every_code() -> None:
    want: dict[str, set[str]] = {code: {"every loss"} for code in GENERAL_WARNINGS}
    for loss in LOSSES:
        for code in loss.warning_codes:
            want.setdefault(code, set()).add(loss.name)
    assert _readme_table() == want


@pytest.mark.anyio
@pytest.mark.parametrize("loss", LOSSES, ids=[loss.name for loss in LOSSES])
async def test_get_lists_the_codes(client: Any, loss: Loss[Any]) -> None:
    got = (await client.get(f"/v1/losses/{loss.name}")).json()
    assert got["warning_codes"] == sorted(loss.warning_codes | GENERAL_WARNINGS)
