"""Reference memory on large inputs: peak resident memory growth of a fresh server while it
serves the 64x32000 float32 logits through ``POST /v2/models/cross_entropy/infer`` (binary
tensor extension) with the reference on, as a multiple of the body (target <= 3x; the reference
runs in row blocks, so its float64 copy of the input never exists whole). The worse of the
server's first two such requests."""

from __future__ import annotations

from bench import servers
from bench.bodies import large_arrays, large_binary_body
from bench.cases.base import Case, Context
from bench.cases.memory import memory_figure
from bench.proc import peak_rss_growth
from bench.report import Figure

PATH = "/v2/models/cross_entropy/infer"


def run(ctx: Context) -> list[Figure]:
    logits, target = large_arrays()
    body, headers = large_binary_body(logits, target, reference=True)
    measured = []
    with servers.service() as ours:
        for _ in range(2):
            with peak_rss_growth(ours.pid) as growth:
                status, data, _ = servers.request(ours.port, "POST", PATH, body, headers)
            if status == 404:
                return [Figure("ref memory", f"POST {PATH}", 0, "", note="skipped: 404")]
            if status != 200:
                raise RuntimeError(f"large binary, reference on: {status} {data[:300]!r}")
            measured.append(growth)
    figure = memory_figure("the large binary, reference on", measured, len(body), 3.0)
    figure.case = "ref memory"
    return [figure]


CASE = Case(
    "reference_memory",
    "peak RSS growth serving the large binary request with the reference on",
    run,
)
