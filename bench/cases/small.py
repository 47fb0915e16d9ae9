"""Small requests: the article's 3x3 ``cross_entropy`` body (breakdown and reference on) with
``wrk -t1 -c8``, in alternating rounds against two floors: the obvious service (requests per
second, target >= 3x its figure) and a bare uvicorn app that reads the body and answers a fixed
JSON the size of the service's answer (server CPU time per request, target <= 4x its figure;
on a shared machine CPU per request is steadier than throughput). Each figure is the median of
the rounds' ratios."""

from __future__ import annotations

import statistics

import orjson

from bench import servers
from bench.bodies import small_body
from bench.cases.base import Case, Context
from bench.load import load
from bench.proc import cpu_seconds
from bench.report import Figure

RPS_TARGET = 3.0  # at least this many times the obvious service's req/s
CPU_TARGET = 4.0  # at most this many times the bare app's server CPU per request


def run(ctx: Context) -> list[Figure]:
    args = ctx.args
    body = small_body()
    with servers.service() as ours, servers.obvious() as obvious:
        check = servers.request(ours.port, "POST", "/v1/losses/cross_entropy", body)
        answer = orjson.loads(check[1])
        if check[0] != 200 or not (answer["breakdown"] and answer["reference"]):
            raise RuntimeError(f"the small request did not compute its breakdown: {check}")
        with servers.sink(answer_bytes=len(check[1])) as bare:
            rows: dict[str, list[tuple[float, float]]] = {}
            tool = ""
            for _ in range(args.rounds):
                for server, path in (
                    (obvious, "/cross_entropy"),
                    (bare, "/"),
                    (ours, "/v1/losses/cross_entropy"),
                ):
                    cpu0 = cpu_seconds(server.pid)
                    result = load(server.url(path), body, args.seconds, 8, ctx.workdir)
                    cpu = cpu_seconds(server.pid) - cpu0
                    if result.errors:
                        raise RuntimeError(f"{server.name}: {result.errors} failed requests")
                    rows.setdefault(server.name, []).append(
                        (result.rps, cpu / result.requests * 1e6)
                    )
                    tool = result.tool
    ours_rows, obvious_rows, bare_rows = rows["loss-service"], rows["obvious"], rows["sink"]
    rps_ratios = [o[0] / b[0] for o, b in zip(ours_rows, obvious_rows, strict=True)]
    cpu_ratios = [o[1] / b[1] for o, b in zip(ours_rows, bare_rows, strict=True)]
    obvious_cpu = [b[1] / o[1] for o, b in zip(ours_rows, obvious_rows, strict=True)]
    ratio, cpu_ratio = statistics.median(rps_ratios), statistics.median(cpu_ratios)

    def median(rows: list[tuple[float, float]], i: int) -> float:
        return statistics.median(r[i] for r in rows)

    def rounds(values: list[float]) -> str:
        return "per round: " + ", ".join(f"{r:.2f}x" for r in values)

    return [
        Figure(
            "small",
            f"3x3 cross_entropy, reference+breakdown, {tool} -t1 -c8",
            median(ours_rows, 0),
            "req/s",
            median(obvious_rows, 0),
            "obvious service (bench/obvious_service.py)",
            ratio,
            f">= {RPS_TARGET:g}x",
            ratio >= RPS_TARGET,
            note=rounds(rps_ratios),
        ),
        Figure(
            "small",
            "server CPU time per request",
            median(ours_rows, 1),
            "us",
            median(bare_rows, 1),
            f"bare uvicorn app answering a fixed {len(check[1])}-byte JSON "
            f"(bench/sink_service.py, {median(bare_rows, 0):,.0f} req/s)",
            cpu_ratio,
            f"<= {CPU_TARGET:g}x",
            cpu_ratio <= CPU_TARGET,
            note=rounds(cpu_ratios),
        ),
        Figure(
            "small",
            "server CPU time per request, the obvious service",
            median(obvious_rows, 1),
            "us",
            median(ours_rows, 1),
            "loss-service",
            statistics.median(obvious_cpu),
            "(shown: obvious / ours)",
            note=rounds(obvious_cpu),
        ),
    ]


CASE = Case(
    "small", "the article's 3x3 body under wrk, against the obvious service", run, needs_wrk=True
)
