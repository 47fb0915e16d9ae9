"""Large binary: the large JSON case's logits through ``POST /v2/models/cross_entropy/infer``
with the binary tensor extension (reference on), against torch plus the NumPy reference on the
same arrays in this process (target <= 1.5x), beside the same body sent to a bare uvicorn app
that only reads it (the transport floor). Skipped with a message where the endpoint answers
404."""

from __future__ import annotations

import http.client

from bench import servers
from bench.bodies import large_arrays, large_binary_body
from bench.cases.base import Case, Context
from bench.floors import compute_floor, timed_pair
from bench.report import Figure

PATH = "/v2/models/cross_entropy/infer"


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

        e2e, floor = timed_pair(post_binary, compute_floor(logits, target), ctx.args.large_rounds)
        conn.close()
    return [
        Figure(
            "large binary",
            f"same logits, binary extension ({len(binary) / 1e6:.1f} MB), reference on",
            e2e * 1e3,
            "ms",
            floor * 1e3,
            "in-process torch + reference",
            e2e / floor,
            "<= 1.5x",
            e2e / floor <= 1.5,
        ),
        transport_figure(binary, headers, e2e, floor),
    ]


def transport_figure(
    body: bytes, headers: dict[str, str], e2e: float, compute_floor_s: float
) -> Figure:
    """The same body sent to an app that only reads it: what loopback and uvicorn cost before
    any decoding or computing. The service's own overhead is what remains of its time after
    this and the in-process computation."""
    with servers.sink() as sink:
        conn = http.client.HTTPConnection(servers.HOST, sink.port, timeout=120)

        def post() -> None:
            code, data, _ = servers.request(sink.port, "POST", "/", body, headers, conn)
            if code != 200:
                raise RuntimeError(f"sink: {code} {data[:200]!r}")

        transport, _ = timed_pair(post, None, 15)
        conn.close()
    overhead = e2e - transport - compute_floor_s
    return Figure(
        "large binary",
        "transport only: the same body to a bare uvicorn app that just reads it",
        transport * 1e3,
        "ms",
        compute_floor_s * 1e3,
        "in-process torch + reference",
        transport / compute_floor_s,
        "",
        None,
        note=f"the service's time beyond transport and computation: {overhead * 1e3:.1f} ms",
    )


CASE = Case("large_binary", "the same logits as binary /v2 tensors, against torch + reference", run)
