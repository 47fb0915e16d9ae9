"""Large JSON: 64x32000 float32 logits (about 22 MB) with class-index targets and
``reference: false``, end to end (send, compute, answer) against ``orjson.loads`` +
``np.asarray`` of the same body in this process (target <= 0.5 of it)."""

from __future__ import annotations

import http.client

from bench import servers
from bench.bodies import large_arrays, large_json_body
from bench.cases.base import Case, Context
from bench.floors import parse_floor, timed_pair
from bench.report import Figure

JSON_HEADERS = {"Content-Type": "application/json"}


def run(ctx: Context) -> list[Figure]:
    raw = large_json_body(*large_arrays())
    with servers.service() as ours:
        conn = http.client.HTTPConnection(servers.HOST, ours.port, timeout=120)

        def post_json() -> None:
            status, data, _ = servers.request(
                ours.port, "POST", "/v1/losses/cross_entropy", raw, JSON_HEADERS, conn
            )
            if status != 200:
                raise RuntimeError(f"large JSON: {status} {data[:300]!r}")

        e2e, floor = timed_pair(post_json, parse_floor(raw), ctx.args.large_rounds)
        conn.close()
    mb = len(raw) / 1e6
    return [
        Figure(
            "large JSON",
            f"64x32000 float32 ({mb:.1f} MB), reference off, end to end",
            e2e * 1e3,
            "ms",
            floor * 1e3,
            "orjson.loads + np.asarray",
            e2e / floor,
            "<= 0.5x",
            e2e / floor <= 0.5,
        )
    ]


CASE = Case("large_json", "a 22 MB JSON body against orjson.loads + numpy.asarray", run)
