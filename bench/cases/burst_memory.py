"""Memory returned after bursts: a fresh server serves one 256x4000 float32 JSON request (its
one-time costs paid), then a burst of ``--burst`` (64) such requests at once; the figure is how
far its resident memory (VmRSS) stands above the level before the burst ten seconds after the
burst ended (target <= 100 MB; the idle trim, ``service.memory.IdleTrim``, gives it back). The
burst's peak, and requests refused for overload (503, expected past MAX_CONCURRENCY +
MAX_QUEUE), are shown beside it."""

from __future__ import annotations

import argparse
import threading
import time

from bench import servers
from bench.bodies import burst_json_body
from bench.cases.base import Case, Context
from bench.proc import status_kib
from bench.report import Figure

PATH = "/v1/losses/cross_entropy"
HEADERS = {"Content-Type": "application/json"}
AFTER_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--burst", type=int, default=64, help="burst_memory: concurrent requests in the burst"
    )


def rss_mb(pid: int) -> float:
    return status_kib(pid, "VmRSS") / 1024


def run(ctx: Context) -> list[Figure]:
    body = burst_json_body()
    with servers.service() as ours:
        status, data, _ = servers.request(ours.port, "POST", PATH, body, HEADERS)
        if status != 200:
            raise RuntimeError(f"burst body: {status} {data[:300]!r}")
        time.sleep(2)
        before = rss_mb(ours.pid)
        codes: list[int] = []

        def post() -> None:
            codes.append(servers.request(ours.port, "POST", PATH, body, HEADERS)[0])

        threads = [threading.Thread(target=post) for _ in range(ctx.args.burst)]
        for t in threads:
            t.start()
        peak = before
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_mb(ours.pid))
            time.sleep(0.01)
        ended = time.monotonic()
        samples = {}
        for at in (1.0, 2.0, 5.0, AFTER_S):
            time.sleep(max(0.0, ended + at - time.monotonic()))
            samples[at] = rss_mb(ours.pid) - before
    if set(codes) - {200, 503}:
        raise RuntimeError(f"burst: unexpected statuses {sorted(set(codes))}")
    above = samples[AFTER_S]
    return [
        Figure(
            "burst memory",
            f"RSS above pre-burst, {AFTER_S:g} s after {ctx.args.burst} x 256x4000 JSON",
            above,
            "MB",
            before,
            "RSS before the burst",
            None,
            "<= 100 MB",
            above <= 100,
            note=f"peak {peak - before:+.0f} MB; "
            + ", ".join(f"+{at:g} s: {mb:+.0f} MB" for at, mb in samples.items())
            + f"; {codes.count(200)} answered 200, {codes.count(503)} refused 503 (overload)",
        )
    ]


CASE = Case(
    "burst_memory",
    "RSS above its pre-burst level 10 s after a burst of large JSON requests",
    run,
    add_arguments,
)
