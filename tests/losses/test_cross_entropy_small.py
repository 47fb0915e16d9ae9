"""The small-request path of cross_entropy (``service.losses.cross_entropy_small``) answers the
very bytes of the general path, and hands back every body it cannot vouch for."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from service.arrays import ArrayLimits
from service.dataplane import Dataplane
from service.errors import ServiceError
from service.jsonenc import dumps
from service.losses import cross_entropy_small, registry
from service.losses.smallmath import np_exp, np_log, np_sum
from tests.conftest import cpu_settings

CE = registry.require("cross_entropy")


@pytest.fixture(scope="module")
def general() -> Dataplane:
    """A data plane with no small paths: every body takes the general path."""
    plane = Dataplane(cpu_settings(), torch.device("cpu"))
    plane.small_paths = {}
    return plane


def small(body: dict[str, Any], limits: ArrayLimits | None = None) -> dict[str, Any] | None:
    return cross_entropy_small.compute(
        CE,
        body,
        default_dtype="float32",
        default_reference=True,
        device="cpu",
        limits=limits or ArrayLimits(),
    )


def _logits(rng: np.random.Generator, n: int, c: int) -> Any:
    kind = rng.integers(6)
    if kind == 0:  # probability rows: the article's mistake, with its warning
        p = rng.dirichlet(np.ones(c), size=n)
        if rng.random() < 0.3:
            p[0, 0] = 0.0  # a zero probability: the reading is infinite
        return p.tolist()
    if kind == 1:  # whole numbers, some as ints
        return rng.integers(-3, 4, (n, c)).tolist()
    if kind == 2:  # ties and signed zeros
        return rng.choice([0.0, -0.0, 1.0, -1.0], (n, c)).tolist()
    scale = float(10.0 ** rng.integers(-3, 6))
    x = rng.standard_normal((n, c)) * scale
    if kind == 3:  # mixed ints and floats in one row
        rows = x.tolist()
        rows[0][0] = int(rng.integers(-5, 5))
        return rows
    return x.tolist()


def random_body(rng: np.random.Generator) -> dict[str, Any]:
    n = int(rng.choice([1, 2, 3, 4, 7, 8, 9, 16, 17, 33, 64]))
    c = int(rng.choice([1, 2, 3, 5, 8, 9, 16]))
    while n * c > cross_entropy_small.MAX_ELEMENTS:
        n //= 2
    body: dict[str, Any] = {"input": _logits(rng, n, c)}
    if rng.random() < 0.7:  # class indices, some ignored
        ignore = int(rng.choice([-100, -1, 0, c - 1]))
        y = rng.integers(0, c, n)
        if rng.random() < 0.4:
            y = np.where(rng.random(n) < 0.3, ignore, y)
        body["target"] = y.tolist()
        if ignore != -100 or rng.random() < 0.2:
            body["ignore_index"] = ignore
    else:  # class probabilities, distributions or not
        t = rng.dirichlet(np.ones(c), size=n)
        if rng.random() < 0.3:
            t = t * rng.uniform(-0.5, 2.0, t.shape)
        body["target"] = t.tolist()
    if rng.random() < 0.4:
        w = rng.uniform(0.0, 3.0, c)
        if rng.random() < 0.2:
            w[0] = -1.0
        body["weight"] = w.tolist()
    if rng.random() < 0.5:
        body["reduction"] = str(rng.choice(["none", "mean", "sum"]))
    if rng.random() < 0.4:
        body["label_smoothing"] = float(rng.choice([0.0, 0.1, 0.25, 1.0]))
    if rng.random() < 0.4:
        body["dtype"] = str(rng.choice(["float32", "float64"]))
    if rng.random() < 0.2:
        body["reference"] = bool(rng.random() < 0.5)
    if rng.random() < 0.1:
        body["include"] = []
    return body


@pytest.mark.parametrize("seed", range(20))
def test_small_path_bytes_equal_the_general_path(
    dataplane: Dataplane, general: Dataplane, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    handled = 0
    for _ in range(100):
        body = random_body(rng)
        want = dumps(general.compute(CE, body))
        handled += small(body) is not None
        assert dumps(dataplane.compute(CE, body)) == want, body
    assert handled >= 80  # the comparison is not vacuous: most bodies took the small path


def test_the_article_body_takes_the_small_path(general: Dataplane) -> None:
    body = CE.example()
    answer = small(body)
    assert answer is not None
    assert dumps(answer) == dumps(general.compute(CE, body))
    assert [w["code"] for w in answer["warnings"]] == ["input_looks_like_probabilities"]


OK = {"input": [[0.1, 0.2, 0.7], [1.0, 2.0, 3.0]], "target": [2, 0]}


@pytest.mark.parametrize(
    "body",
    [
        OK | {"target": [3, 0]},  # out of range
        OK | {"target": [2.0, 0]},  # a whole float: the general path decides
        OK | {"target": [True, 0]},
        OK | {"input": [[0.1, 0.2], [1.0, 2.0, 3.0]]},  # ragged
        OK | {"input": [0.1, 0.2, 0.7], "target": 2},  # 1-D
        OK | {"input": [[[0.1]], [[0.2]]]},  # 3-D
        OK | {"weight": [1.0, 2.0]},
        OK | {"weight": [[1.0, 2.0, 3.0]]},
        OK | {"reduction": "avg"},
        OK | {"label_smoothing": 1.5},
        OK | {"label_smoothing": 0},  # an int: Pydantic's business
        OK | {"ignore_index": 1.5},
        OK | {"ignore_index": True},
        OK | {"dtype": "float16"},
        OK | {"dtype": "bfloat16"},
        OK | {"dtype": {}},
        OK | {"dtype": []},
        OK | {"reduction": {}},
        OK | {"label_smoothing": []},
        OK | {"ignore_index": {}},
        OK | {"weight": {}},
        OK | {"target": {}},
        OK | {"input": {}},
        OK | {"include": {}},
        OK | {"reference": []},
        OK | {"include": ["grad"]},
        OK | {"include": "grad"},
        OK | {"reference": 1},
        OK | {"size_average": True},
        OK | {"target": [5, 5], "ignore_index": 5},  # all ignored: 0/0
        OK | {"weight": [0.0, 1.0, 0.0]},  # a zero denominator
        OK | {"input": [[1e39, 0.0, 0.0], [1.0, 2.0, 3.0]]},  # beyond float32
        OK | {"target": [[0.5, 0.5, 0.0]]},  # probabilities of the wrong shape
        {"target": [2]},
        [],
        OK | {"input": [["a", 0.2, 0.7], [1.0, 2.0, 3.0]]},
    ],
)
def test_bodies_it_cannot_vouch_for_go_the_general_way(
    dataplane: Dataplane, general: Dataplane, body: Any
) -> None:
    assert small(body) is None
    try:
        want: Any = dumps(general.compute(CE, body))
    except ServiceError as exc:
        want = (type(exc), exc.detail)
    try:
        got: Any = dumps(dataplane.compute(CE, body))
    except ServiceError as exc:
        got = (type(exc), exc.detail)
    assert got == want


def test_limits_send_bodies_the_general_way() -> None:
    assert small(OK, ArrayLimits(max_elements=5)) is None
    assert small(OK, ArrayLimits(max_dim=2)) is None
    assert small(OK, ArrayLimits(max_rank=1)) is None
    assert small(OK, ArrayLimits(max_elements=6)) is not None


def test_large_bodies_go_the_general_way() -> None:
    rows = cross_entropy_small.MAX_ROWS + 1
    assert small({"input": [[0.0]] * rows, "target": [0] * rows}) is None


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17, 127, 128, 129, 300, 1000])
def test_np_sum_is_numpys_pairwise_sum(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(20):
        x = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)
        assert np_sum(x.tolist()) == float(np.sum(x))
        if n:
            rows = x.reshape(1, n)
            assert [np_sum(r) for r in rows.tolist()] == rows.sum(axis=-1).tolist()


def test_np_exp_and_log_are_numpys() -> None:
    x = np.random.default_rng(0).standard_normal(50) * 20
    assert np_exp(x.tolist()) == np.exp(x).tolist()
    assert np_log(np.abs(x).tolist()) == np.log(np.abs(x)).tolist()
