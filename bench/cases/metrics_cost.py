"""What the metrics cost on the small request path: the article's 3x3 ``cross_entropy`` body
with ``wrk -t1 -c8`` against the service with metrics on (the default) and with
``LOSS_SERVICE_METRICS=false``, in alternating rounds. The figures are the median ratios
off/on of requests per second and on/off of server CPU time per request; the target is at most
1.05 (the metrics cost at most 5%). The small body is answered before routing
(``service.api.inline``) and still counted by ``service.observability.requests``."""

from __future__ import annotations

import statistics

from bench import servers
from bench.bodies import small_body
from bench.cases.base import Case, Context
from bench.load import load
from bench.proc import cpu_seconds
from bench.report import Figure

PATH = "/v1/losses/cross_entropy"
TARGET = 1.05


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
        for _ in range(args.rounds):
            measured = {}
            for name, server in (("off", off), ("on", on)):
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
    ]


CASE = Case(
    "metrics_cost",
    "the small request path with metrics on against metrics off",
    run,
    needs_wrk=True,
)
