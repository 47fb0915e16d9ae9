"""In-process cost of every loss's catalogue example (``GET /v1/losses/{name}``'s ``example``):
the data plane's whole answer, ``dumps(Dataplane.compute_json(...))``, as the route produces it,
timed in this process (no HTTP). Each loss's figure is a multiple of cross_entropy's on the
article's 3x3 body, measured alternately with it. Beside them, in the same units:

- the same cross_entropy body through the ``/v2`` JSON path (``service.protocol.infer``:
  decode, map, compute, encode);
- one item of ``POST /v1/losses:batch`` holding the body ``--batch-items`` times
  (``service.batch.run_batch`` and its serialisation, divided by the items).

The targets are end to end (the ``losses`` case, which prints this table's counterparts with
HTTP included); these are shown beside them, without one, to tell the computation's share.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.bodies import small_body, v2_json_body
from bench.cases.base import Case, Context
from bench.report import Figure


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalogue-rounds", type=int, default=7, help="catalogue: alternating timing rounds"
    )
    parser.add_argument(
        "--catalogue-ms", type=float, default=40.0, help="catalogue: ms per timing of one body"
    )
    parser.add_argument("--batch-items", type=int, default=32, help="catalogue: items per batch")


def per_call(fn: Callable[[], object], budget_s: float) -> float:
    """Seconds per call of ``fn``, over as many calls as fit in ``budget_s`` (at least 3)."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    n = max(3, int(budget_s / once))
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def ratio_to(
    fn: Callable[[], object], base: Callable[[], object], rounds: int, budget_s: float
) -> tuple[float, float, float]:
    """(median seconds per call of ``fn``, of ``base``, median of the rounds' ratios),
    measured alternately so that load from elsewhere lands on both."""
    times: list[tuple[float, float]] = []
    for _ in range(rounds):
        b = per_call(base, budget_s)
        f = per_call(fn, budget_s)
        times.append((f, b))
    return (
        statistics.median(t[0] for t in times),
        statistics.median(t[1] for t in times),
        statistics.median(t[0] / t[1] for t in times),
    )


def run(ctx: Context) -> list[Figure]:
    import torch

    from service.api.losses import _item_problem
    from service.batch import run_batch
    from service.dataplane import Dataplane
    from service.jsonenc import dumps
    from service.losses import registry
    from service.protocol.infer import infer
    from service.settings import Settings

    args = ctx.args
    settings = Settings(device="cpu")
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)  # as create_app does
    dataplane = Dataplane(settings, torch.device("cpu"))
    rounds, budget = args.catalogue_rounds, args.catalogue_ms / 1e3

    def v1(name: str, raw: bytes) -> Callable[[], object]:
        return lambda: dumps(dataplane.compute_json(name, raw))

    article = small_body()
    base = v1("cross_entropy", article)
    figures: list[Figure] = []
    for loss in sorted(registry.all_losses(), key=lambda item: item.name):
        raw = orjson.dumps(loss.example())
        fn = v1(loss.name, raw)
        fn()  # an example that fails would fail here, not in the timing
        us, base_us, ratio = ratio_to(fn, base, rounds, budget)
        figures.append(
            Figure(
                "catalogue",
                f"{loss.name} example ({len(raw)} B), in-process",
                us * 1e6,
                "us",
                base_us * 1e6,
                "",
                ratio,
                "(shown)",
            )
        )
    figures[-1].floor_what = "cross_entropy on the article's 3x3 body, in-process"

    ce = registry.get("cross_entropy")
    assert ce is not None
    v2_raw = v2_json_body(orjson.loads(article), ce.tensor_inputs)

    def v2() -> object:
        return infer(dataplane, "cross_entropy", None, v2_raw, None).body

    us, base_us, ratio = ratio_to(v2, base, rounds, budget)
    figures.append(
        Figure(
            "catalogue",
            "the same body through /v2 JSON (decode, compute, encode)",
            us * 1e6,
            "us",
            base_us * 1e6,
            "cross_entropy on the article's 3x3 body, /v1, in-process",
            ratio,
            "(shown)",
        )
    )

    items = args.batch_items
    body: dict[str, Any] = {"items": [{"loss": "cross_entropy", "args": orjson.loads(article)}]}
    batch_raw = orjson.dumps({"items": body["items"] * items})
    limit = max(items, settings.max_batch_items)

    def batch() -> object:
        result = run_batch(dataplane, batch_raw, limit, _item_problem)
        assert result["failed"] == 0, result
        return dumps(result)

    us, base_us, _ = ratio_to(batch, base, rounds, budget)
    per_item = us / items
    figures.append(
        Figure(
            "catalogue",
            f"one item of POST /v1/losses:batch ({items} items of the same body)",
            per_item * 1e6,
            "us",
            base_us * 1e6,
            "cross_entropy on the article's 3x3 body, /v1, in-process",
            per_item / base_us,
            "(shown)",
        )
    )
    return figures


CASE = Case(
    "catalogue",
    "in-process cost of every loss's example, /v2 JSON and a batch item, against cross_entropy",
    run,
    add_arguments,
)
