"""In-process cost of ``POST /v1/diagnose/{name}`` on each loss's catalogue example, beside the
same body's ``POST /v1/losses/{name}``: ``dumps(diagnose_json(...))`` against
``dumps(Dataplane.compute_json(...))``, measured alternately (target <= 10x: a diagnosis is
every convention row and every mistake of the loss, each a few NumPy calls on the body).
``observed`` is torch's own value, so the answer has a match and every candidate is computed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import orjson

from bench.cases.base import Case, Context
from bench.cases.catalogue import ratio_to
from bench.report import Figure

TARGET = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--diagnose-rounds", type=int, default=5, help="diagnose: alternating timing rounds"
    )
    parser.add_argument(
        "--diagnose-ms", type=float, default=40.0, help="diagnose: ms per timing of one body"
    )


def run(ctx: Context) -> list[Figure]:
    import torch

    from service import conventions
    from service.dataplane import Dataplane
    from service.jsonenc import dumps
    from service.losses import registry
    from service.settings import Settings

    settings = Settings(device="cpu")
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    dataplane = Dataplane(settings, torch.device("cpu"))
    rounds, budget = ctx.args.diagnose_rounds, ctx.args.diagnose_ms / 1e3
    figures: list[Figure] = []
    for name in conventions.names():
        example = registry.require(name).example()
        raw = orjson.dumps(example)
        answer = dataplane.compute_json(name, raw)
        observed = float(answer["value"])
        diagnose_raw = orjson.dumps(example | {"observed": observed})

        def loss(raw: bytes = raw, name: str = name) -> object:
            return dumps(dataplane.compute_json(name, raw))

        def diagnose(raw: bytes = diagnose_raw, name: str = name) -> object:
            return dumps(conventions.diagnose_json(dataplane, name, raw))

        fn: Callable[[], object] = diagnose
        us, base_us, ratio = ratio_to(fn, loss, rounds, budget)
        figures.append(
            Figure(
                "diagnose",
                f"{name} example diagnosed ({len(diagnose_raw)} B), in-process",
                us * 1e6,
                "us",
                base_us * 1e6,
                f"POST /v1/losses/{name} on the same example, in-process",
                ratio,
                f"<= {TARGET:g}x",
                ratio <= TARGET,
            )
        )
    return figures


CASE = Case(
    "diagnose",
    "in-process cost of diagnosing each loss's example against computing it",
    run,
    add_arguments,
)
