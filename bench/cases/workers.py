"""Every core: the article's 3x3 body under ``wrk -t1 -c8`` against the service with two
worker processes (``LOSS_SERVICE_WORKERS=2``) and against one, in alternating rounds, wrk on the
same cores. The figure is the median ratio of requests per second (target >= 1.3x on a 2-core
machine); the worker count ``auto`` would choose here is shown beside it, and how the load
fell on the workers: the busiest worker's share of their CPU time in each round (1/N is an even
split; 1.0 means one worker held every connection, as with uvicorn's supervisor when the
first worker to wake accepted all of wrk's keep-alive connections from the socket they shared;
with a ``SO_REUSEPORT`` socket per worker the kernel deals the 8 connections out by hash, so
shares up to 0.75 (6 of 8) are ordinary)."""

from __future__ import annotations

import argparse
import statistics

from bench import servers
from bench.bodies import small_body
from bench.cases.base import Case, Context
from bench.load import load
from bench.proc import cpu_seconds, worker_pids
from bench.report import Figure
from service.workers import available_cpus

PATH = "/v1/losses/cross_entropy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers", type=int, default=2, help="workers: the worker count compared with one"
    )


def run(ctx: Context) -> list[Figure]:
    args = ctx.args
    body = small_body()
    many = args.workers
    with (
        servers.service() as one,
        servers.service({"LOSS_SERVICE_WORKERS": str(many)}) as several,
    ):
        for server in (one, several):  # every worker warm before the first round
            for _ in range(50):
                if servers.request(server.port, "POST", PATH, body)[0] != 200:
                    raise RuntimeError(f"{server.name}: the small request failed")
        ratios, rows, shares = [], [], []
        tool = ""
        pids = worker_pids(several.pid)
        for _ in range(args.rounds):
            measured = {}
            for label, server in (("one", one), ("several", several)):
                cpu0 = [cpu_seconds(pid) for pid in pids]
                result = load(server.url(PATH), body, args.seconds, 8, ctx.workdir)
                if label == "several":
                    spent = [cpu_seconds(pid) - c for pid, c in zip(pids, cpu0, strict=True)]
                    shares.append(max(spent) / max(sum(spent), 1e-9))
                if result.errors:
                    raise RuntimeError(f"{label} worker(s): {result.errors} failed requests")
                measured[label] = result.rps
                tool = result.tool
            ratios.append(measured["several"] / measured["one"])
            rows.append((measured["one"], measured["several"]))
    ratio = statistics.median(ratios)
    return [
        Figure(
            "workers",
            f"3x3 cross_entropy, {many} workers, {tool} -t1 -c8",
            statistics.median(r[1] for r in rows),
            "req/s",
            statistics.median(r[0] for r in rows),
            "the same service, one worker",
            ratio,
            ">= 1.3x",
            ratio >= 1.3,
            note="per round: "
            + ", ".join(f"{r:.2f}x" for r in ratios)
            + "; busiest worker's CPU share: "
            + ", ".join(f"{s:.2f}" for s in shares)
            + f"; workers=auto here: {available_cpus()}",
        )
    ]


CASE = Case(
    "workers",
    "small requests with several worker processes against one",
    run,
    add_arguments,
    needs_wrk=True,
)
