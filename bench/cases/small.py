"""Small requests: the article's 3x3 ``cross_entropy`` body (breakdown and reference on) with
``wrk -t1 -c8``, against the obvious service in alternating rounds. The figure is the median
ratio of requests per second; the server's CPU time per request is shown too (on a shared
machine it is steadier than throughput)."""

from __future__ import annotations

import statistics

import orjson

from bench import servers
from bench.bodies import small_body
from bench.cases.base import Case, Context
from bench.load import load
from bench.proc import cpu_seconds
from bench.report import Figure


def run(ctx: Context) -> list[Figure]:
    args = ctx.args
    body = small_body()
    with servers.service() as ours, servers.obvious() as obvious:
        check = servers.request(ours.port, "POST", "/v1/losses/cross_entropy", body)
        answer = orjson.loads(check[1])
        if check[0] != 200 or not (answer["breakdown"] and answer["reference"]):
            raise RuntimeError(f"the small request did not compute its breakdown: {check}")
        ratios, cpu_ratios, rows = [], [], []
        for _ in range(args.rounds):
            measured = {}
            for server, path in ((obvious, "/cross_entropy"), (ours, "/v1/losses/cross_entropy")):
                cpu0 = cpu_seconds(server.pid)
                result = load(server.url(path), body, args.seconds, 8, ctx.workdir)
                cpu = cpu_seconds(server.pid) - cpu0
                if result.errors:
                    raise RuntimeError(f"{server.name}: {result.errors} failed requests")
                measured[server.name] = (result.rps, cpu / result.requests * 1e6, result.tool)
            ours_rps, ours_cpu, tool = measured["loss-service"]
            obvious_rps, obvious_cpu, _ = measured["obvious"]
            ratios.append(ours_rps / obvious_rps)
            cpu_ratios.append(obvious_cpu / ours_cpu)
            rows.append((obvious_rps, ours_rps, obvious_cpu, ours_cpu))
    ratio = statistics.median(ratios)
    obvious_rps = statistics.median(r[0] for r in rows)
    ours_rps = statistics.median(r[1] for r in rows)
    return [
        Figure(
            "small",
            f"3x3 cross_entropy, reference+breakdown, {tool} -t1 -c8",
            ours_rps,
            "req/s",
            obvious_rps,
            "obvious service",
            ratio,
            ">= 2x",
            ratio >= 2,
            note="per round: " + ", ".join(f"{r:.2f}x" for r in ratios),
        ),
        Figure(
            "small",
            "server CPU time per request",
            statistics.median(r[3] for r in rows),
            "us",
            statistics.median(r[2] for r in rows),
            "obvious service",
            statistics.median(cpu_ratios),
            "(shown: obvious / ours)",
            note="per round: " + ", ".join(f"{r:.2f}x" for r in cpu_ratios),
        ),
    ]


CASE = Case(
    "small", "the article's 3x3 body under wrk, against the obvious service", run, needs_wrk=True
)
