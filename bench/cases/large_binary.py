"""Large binary: the large JSON case's logits (64 x 32000 float32) through
``POST /v2/models/cross_entropy/infer`` with the binary tensor extension (reference on), against
the sum of two floors measured in the same run: transport, the same body posted to a bare
uvicorn app that only reads it (same server, loop and HTTP parser), and compute, torch plus the
NumPy reference on the same arrays in this process. Target: at most 1.2x their sum. The three
are timed in alternation, request by request. Skipped with a message where the endpoint
answers 404."""

from __future__ import annotations

import http.client
import statistics
import time
from collections.abc import Callable

from bench import servers
from bench.bodies import large_arrays, large_binary_body
from bench.cases.base import Case, Context
from bench.floors import compute_floor
from bench.report import Figure

PATH = "/v2/models/cross_entropy/infer"
TARGET = 1.2  # at most this many times transport + compute


def run(ctx: Context) -> list[Figure]:
    logits, target = large_arrays()
    binary, headers = large_binary_body(logits, target)
    with servers.service() as ours:
        status, data, _ = servers.request(ours.port, "POST", PATH, binary, headers)
        if status == 404:
            return [
                Figure(
                    "large binary",
                    f"POST {PATH}",
                    0,
                    "",
                    note="skipped: the endpoint answers 404 "
                    "(the Open Inference Protocol is not served by this build)",
                )
            ]
        if status != 200:
            raise RuntimeError(f"large binary: {status} {data[:300]!r}")
        conn = http.client.HTTPConnection(servers.HOST, ours.port, timeout=120)

        def post_binary() -> None:
            code, body, _ = servers.request(ours.port, "POST", PATH, binary, headers, conn)
            if code != 200:
                raise RuntimeError(f"large binary: {code} {body[:300]!r}")

        with servers.sink() as sink:
            sink_conn = http.client.HTTPConnection(servers.HOST, sink.port, timeout=120)

            def post_sink() -> None:
                code, data, _ = servers.request(sink.port, "POST", "/", binary, headers, sink_conn)
                if code != 200:
                    raise RuntimeError(f"sink: {code} {data[:200]!r}")

            times = timed_round_robin(
                [post_binary, post_sink, compute_floor(logits, target)], ctx.args.large_rounds
            )
            sink_conn.close()
        conn.close()
    e2e, transport, compute = times
    floor = transport + compute
    return [
        Figure(
            "large binary",
            f"same logits, binary extension ({len(binary) / 1e6:.1f} MB), reference on",
            e2e * 1e3,
            "ms",
            floor * 1e3,
            f"transport {transport * 1e3:.1f} ms + compute {compute * 1e3:.1f} ms",
            e2e / floor,
            f"<= {TARGET:g}x",
            e2e / floor <= TARGET,
            note=f"the service's time beyond both: {(e2e - floor) * 1e3:.1f} ms",
        ),
        Figure(
            "large binary",
            "transport: the same body to a bare uvicorn app that just reads it",
            transport * 1e3,
            "ms",
            None,
            "",
        ),
        Figure(
            "large binary",
            "compute: torch + the NumPy reference on the same arrays, in-process",
            compute * 1e3,
            "ms",
            None,
            "",
        ),
    ]


def timed_round_robin(fns: list[Callable[[], object]], rounds: int) -> list[float]:
    """Median wall time of each of ``fns``, called in turn round after round, so that load from
    elsewhere on a shared machine lands on all of them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, out in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


CASE = Case("large_binary", "the same logits as binary /v2 tensors, against torch + reference", run)
