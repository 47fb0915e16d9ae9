"""Where a small request's time goes, stage by stage, without a profiler.

For the article's 3x3 ``cross_entropy`` body and each loss's catalogue example, the data
plane's stages are timed in place (``service.stages.StageClock``: each lap charges the time
since the previous one, so the stages of one computation add up to its whole): ``parse``,
``validate`` (the parameters' validation and the loss's own checks), ``torch``, ``reference``
(with the comparison), ``warnings`` and ``serialise``. Beside them, the two per-request costs
that do not depend on the loss, measured once in this process with the computation stubbed
out: ``front`` (the small-request front: request id, API keys, admission, body deadline, the
answer's messages) and ``observe/log`` (the metrics and the access line, on the event loop;
the line's formatting and writing happen in the access log's thread, shown apart). Their sum
has a target of about 20 us.

The data plane's stages are medians over every computation of alternating rounds (wall time;
the median of thousands of single computations shrugs off the moments a shared machine takes
the CPU away); ``total`` is the median of the computations' sums, plus the two fixed costs.
The front and the observer are the best of several rounds of the event loop thread's CPU time
(``time.thread_time``), so that the access log's thread, which runs beside it, is not charged
to it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.bodies import small_body
from bench.cases.base import Case, Context
from bench.report import Figure

FIXED_TARGET_US = 20.0  # front + observe/log, per request
COLUMNS = ("parse", "validate", "torch", "reference", "warnings", "serialise")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stage-rounds", type=int, default=5, help="stages: alternating timing rounds"
    )
    parser.add_argument(
        "--stage-ms", type=float, default=60.0, help="stages: ms per body per round"
    )


def bodies() -> list[tuple[str, str, bytes]]:
    """(row label, loss name, body): the article's body, then each loss's example."""
    from service.losses import registry

    rows = [("article (cross_entropy 3x3)", "cross_entropy", small_body())]
    for loss in registry.all_losses():
        rows.append((loss.name, loss.name, orjson.dumps(loss.example())))
    return rows


def stage_times(
    rows: list[tuple[str, str, bytes]], rounds: int, budget_s: float
) -> dict[str, dict[str, float]]:
    """Per row label, the median microseconds of each stage (and ``total``)."""
    import torch

    from service.dataplane import Dataplane
    from service.jsonenc import dumps
    from service.settings import Settings
    from service.stages import StageClock

    settings = Settings(device="cpu")
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    plane = Dataplane(settings, torch.device("cpu"))

    def once(name: str, raw: bytes) -> dict[str, int]:
        clock = StageClock()
        out = plane.compute_json_timed(name, raw, clock)
        dumps(out)
        clock.lap("serialise")
        return clock.spent

    calls: dict[str, int] = {}
    for label, name, raw in rows:  # warm up, and size each row's batch to the budget
        for _ in range(3):
            once(name, raw)
        start = time.perf_counter()
        once(name, raw)
        calls[label] = max(3, int(budget_s / max(time.perf_counter() - start, 1e-6)))
    timed: dict[str, list[dict[str, int]]] = {label: [] for label, _, _ in rows}
    for _ in range(rounds):
        for label, name, raw in rows:
            timed[label] += [once(name, raw) for _ in range(calls[label])]
    out: dict[str, dict[str, float]] = {}
    for label, measured in timed.items():
        stages = {s for m in measured for s in m}
        us = {s: statistics.median(m.get(s, 0) for m in measured) / 1e3 for s in stages}
        us["total"] = statistics.median(sum(m.values()) for m in measured) / 1e3
        out[label] = us
    return out


def fixed_costs(requests: int = 3000, rounds: int = 7) -> dict[str, float]:
    """Microseconds per request of the front and of the observer (on the loop), and of the
    access line in its thread, with the computation stubbed out."""
    from service.app import ServiceApp, create_app
    from service.observability.logs import ACCESS_LOGGER, TextFormatter
    from service.settings import Settings

    settings = Settings(device="cpu")
    # The access lines as the service writes them (its text format), to /dev/null; the logger
    # is put back as it was afterwards.
    access = logging.getLogger(ACCESS_LOGGER)
    kept = (access.level, access.propagate)
    sink = open(os.devnull, "w")  # noqa: SIM115 (closed below)
    handler = logging.StreamHandler(sink)
    handler.setFormatter(TextFormatter())
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    app = create_app(settings)
    assert isinstance(app, ServiceApp)
    assert app.observe is not None
    state = app.state.service
    body = small_body()
    answer: dict[str, Any] = {}
    state.dataplane.compute_json = lambda name, raw: answer
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    base_scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/losses/cross_entropy",
        "raw_path": b"/v1/losses/cross_entropy",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: Any) -> None:
        return None

    async def per_request(call: Callable[..., Any]) -> float:
        start = time.thread_time()
        for _ in range(requests):
            await call(dict(base_scope, state={}), receive, send)
        return (time.thread_time() - start) / requests * 1e6

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def measure() -> tuple[float, float, float, float]:
        async with app.router.lifespan_context(app):
            timed: dict[str, list[float]] = {"bare": [], "front": [], "observed": []}
            cpu0, loop0 = time.process_time(), time.thread_time()
            for _ in range(rounds):
                timed["bare"].append(await per_request(bare))
                timed["front"].append(await per_request(app.dispatch))
                timed["observed"].append(await per_request(app))
        process, loop = time.process_time() - cpu0, time.thread_time() - loop0
        lines = rounds * requests  # one per observed request
        return (
            min(timed["bare"]),
            min(timed["front"]),
            min(timed["observed"]),
            max(0.0, process - loop) / lines * 1e6,
        )

    try:
        bare_us, front_us, observed_us, thread_us = asyncio.run(measure())
    finally:
        access.removeHandler(handler)
        access.setLevel(kept[0])
        access.propagate = kept[1]
        sink.close()
    return {
        "front": max(0.0, front_us - bare_us),
        "observe/log": max(0.0, observed_us - front_us),
        "access line (its thread)": thread_us,
    }


def row_text(label: str, us: dict[str, float], fixed: dict[str, float]) -> str:
    cells = " ".join(f"{us.get(c, 0.0):>9.1f}" for c in COLUMNS)
    front, observe = fixed["front"], fixed["observe/log"]
    whole = us["total"] + front + observe
    return f"{label:<34} {cells} {observe:>11.1f} {front:>7.1f} {whole:>8.1f}"


def run(ctx: Context) -> list[Figure]:
    args = ctx.args
    rows = bodies()
    times = stage_times(rows, args.stage_rounds, args.stage_ms / 1e3)
    fixed = fixed_costs()
    header = (
        f"{'us per request':<34} "
        + " ".join(f"{c:>9}" for c in COLUMNS)
        + f" {'observe/log':>11} {'front':>7} {'total':>8}"
    )
    figures = [Figure("stages", "", 0, "", note=header)]
    for label, _, _ in rows:
        figures.append(
            Figure(
                "stages",
                "",
                0,
                "",
                note=row_text(label, times[label], fixed),
                extra={"stages_us": times[label], "fixed_us": fixed},
            )
        )
    total = fixed["front"] + fixed["observe/log"]
    figures.append(
        Figure(
            "stages",
            "per-request costs that do not depend on the loss (front + observe/log)",
            total,
            "us",
            times["article (cross_entropy 3x3)"]["total"],
            f"the article body's data-plane stages; front {fixed['front']:.1f} us, "
            f"observe/log {fixed['observe/log']:.1f} us on the loop, the access line "
            f"{fixed['access line (its thread)']:.1f} us in its own thread",
            total / times["article (cross_entropy 3x3)"]["total"],
            f"<= {FIXED_TARGET_US:g} us",
            total <= FIXED_TARGET_US,
        )
    )
    return figures


CASE = Case(
    "stages",
    "each stage of the article's body and of each loss's example, and the front's and "
    "observer's costs, in-process",
    run,
    add_arguments,
)
