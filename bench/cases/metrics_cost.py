"""What the metrics cost on the small request path: the article's 3x3 ``cross_entropy`` body
with ``wrk -t1 -c8`` against the service with metrics on (the default) and with
``LOSS_SERVICE_METRICS=false``, in alternating rounds. The figures are the median ratios
off/on of requests per second and on/off of server CPU time per request; the target is at most
1.05 (the metrics cost at most 5%). The small body is answered before routing
(``service.api.inline``) and still counted by ``service.observability.requests``.

On a shared machine the two servers' throughput varies more from round to round than the
metrics cost, so a third figure isolates it: the per-request time of the observing middleware
around an app that answers at once, with metrics on minus off (in this process, many requests,
best of several rounds), added to the server CPU time of one small request with metrics off."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bench import servers
from bench.bodies import small_body
from bench.cases.base import Case, Context
from bench.load import load
from bench.proc import cpu_seconds
from bench.report import Figure

PATH = "/v1/losses/cross_entropy"
TARGET = 1.05


def middleware_cost_us(requests: int = 5000, rounds: int = 15) -> float:
    """Microseconds the metrics add to one request in ``ObserveRequests`` (on minus off)."""
    import torch

    from service.app import create_app
    from service.observability.metrics import Metrics
    from service.observability.requests import ObserveRequests, RouteLabels
    from service.settings import Settings

    app = create_app(Settings(device="cpu", metrics=False))

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    labels = RouteLabels(lambda: app.router.routes)
    metrics = Metrics(torch.device("cpu"))
    on = ObserveRequests(answer, labels=labels, metrics=metrics, log_probes=False)
    off = ObserveRequests(answer, labels=labels, metrics=None, log_probes=False)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"312")]
    scope = {"type": "http", "method": "POST", "path": PATH, "headers": headers, "state": {}}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    async def per_request(observe: ObserveRequests) -> float:
        start = time.perf_counter()
        for _ in range(requests):
            await observe(dict(scope), receive, send)
        return (time.perf_counter() - start) / requests * 1e6

    async def measure() -> tuple[float, float]:
        timed: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(rounds):
            timed["off"].append(await per_request(off))
            timed["on"].append(await per_request(on))
        return min(timed["on"]), min(timed["off"])

    on_us, off_us = asyncio.run(measure())
    return max(0.0, on_us - off_us)


def run(ctx: Context) -> list[Figure]:
    args = ctx.args
    body = small_body()
    off_env = {"LOSS_SERVICE_METRICS": "false"}
    with servers.service() as on, servers.service(off_env) as off:
        if servers.request(on.port, "GET", "/metrics")[0] != 200:
            raise RuntimeError("metrics are not on in the 'on' server")
        if servers.request(off.port, "GET", "/metrics")[0] != 404:
            raise RuntimeError("metrics are not off in the 'off' server")
        rps_ratios, cpu_ratios, rows = [], [], []
        for i in range(args.rounds):
            measured = {}
            # which goes first alternates, so that a drift in the machine's load favours neither
            pair = [("off", off), ("on", on)]
            for name, server in pair if i % 2 == 0 else pair[::-1]:
                cpu0 = cpu_seconds(server.pid)
                result = load(server.url(PATH), body, args.seconds, 8, ctx.workdir)
                cpu = cpu_seconds(server.pid) - cpu0
                if result.errors:
                    raise RuntimeError(f"metrics {name}: {result.errors} failed requests")
                measured[name] = (result.rps, cpu / result.requests * 1e6, result.tool)
            on_rps, on_cpu, tool = measured["on"]
            off_rps, off_cpu, _ = measured["off"]
            rps_ratios.append(off_rps / on_rps)
            cpu_ratios.append(on_cpu / off_cpu)
            rows.append((on_rps, off_rps, on_cpu, off_cpu))
    rps_ratio = statistics.median(rps_ratios)
    cpu_ratio = statistics.median(cpu_ratios)
    added = middleware_cost_us()
    off_cpu = statistics.median(r[3] for r in rows)
    isolated = (off_cpu + added) / off_cpu
    return [
        Figure(
            "metrics_cost",
            f"3x3 cross_entropy with metrics on, {tool} -t1 -c8 (ratio: off/on)",
            statistics.median(r[0] for r in rows),
            "req/s",
            statistics.median(r[1] for r in rows),
            "the same service, LOSS_SERVICE_METRICS=false",
            rps_ratio,
            f"<= {TARGET}x",
            rps_ratio <= TARGET,
            note="per round: " + ", ".join(f"{r:.3f}x" for r in rps_ratios),
        ),
        Figure(
            "metrics_cost",
            "server CPU time per request, metrics on (ratio: on/off)",
            statistics.median(r[2] for r in rows),
            "us",
            statistics.median(r[3] for r in rows),
            "the same service, LOSS_SERVICE_METRICS=false",
            cpu_ratio,
            f"<= {TARGET}x",
            cpu_ratio <= TARGET,
            note="per round: " + ", ".join(f"{r:.3f}x" for r in cpu_ratios),
        ),
        Figure(
            "metrics_cost",
            "metrics' own time per request (ObserveRequests on - off), in-process",
            added,
            "us",
            off_cpu,
            "server CPU time per small request, metrics off; ratio: (floor + value) / floor",
            isolated,
            f"<= {TARGET}x",
            isolated <= TARGET,
        ),
    ]


CASE = Case(
    "metrics_cost",
    "the small request path with metrics on against metrics off",
    run,
    needs_wrk=True,
)
