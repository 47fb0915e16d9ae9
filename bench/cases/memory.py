"""Memory: peak resident memory growth of the server process while it serves one large request
(``VmHWM`` reset through ``/proc/<pid>/clear_refs``, else sampled), as a multiple of the body
(targets: 2.5x for JSON, 1.5x for binary; the obvious service's is shown for comparison). Each
figure is the worse of a fresh server's first two large requests."""

from __future__ import annotations

import argparse

import numpy as np
import numpy.typing as npt
import orjson

from bench import servers
from bench.bodies import large_arrays, large_binary_body, large_json_body
from bench.cases.base import Case, Context
from bench.proc import peak_rss_growth
from bench.report import Figure

JSON_HEADERS = {"Content-Type": "application/json"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-obvious-memory", action="store_true", help="memory: skip the obvious service"
    )


def run(ctx: Context) -> list[Figure]:
    logits, target = large_arrays()
    figures = [json_memory(logits, target)]
    binary = binary_memory(logits, target)
    if binary is not None:
        figures.append(binary)
    if not ctx.args.no_obvious_memory:
        figures.append(obvious_memory(logits, target))
    return figures


def json_memory(logits: npt.NDArray[np.float32], target: npt.NDArray[np.int64]) -> Figure:
    """The first two large JSON requests of a server that has served nothing large yet."""
    raw = large_json_body(logits, target)
    measured = []
    with servers.service() as ours:
        for _ in range(2):
            with peak_rss_growth(ours.pid) as growth:
                status, data, _ = servers.request(
                    ours.port, "POST", "/v1/losses/cross_entropy", raw, JSON_HEADERS
                )
            if status != 200:
                raise RuntimeError(f"large JSON: {status} {data[:300]!r}")
            measured.append(growth)
    return memory_figure("the large JSON", measured, len(raw), 2.5)


def binary_memory(logits: npt.NDArray[np.float32], target: npt.NDArray[np.int64]) -> Figure | None:
    """Peak growth of a fresh server's first two binary requests, with the reference off as
    for JSON (its float64 temporaries alone are twice a float32 body), then one with it on.
    None where the endpoint is not served (404)."""
    lean, lean_headers = large_binary_body(logits, target, reference=False)
    full, full_headers = large_binary_body(logits, target, reference=True)
    measured = []
    with servers.service() as ours:
        for body, headers in ((lean, lean_headers), (lean, lean_headers), (full, full_headers)):
            with peak_rss_growth(ours.pid) as growth:
                code, data, _ = servers.request(
                    ours.port, "POST", "/v2/models/cross_entropy/infer", body, headers
                )
            if code == 404:
                return None
            if code != 200:
                raise RuntimeError(f"large binary: {code} {data[:300]!r}")
            measured.append(growth)
    figure = memory_figure("the large binary, reference off", measured[:2], len(lean), 1.5)
    figure.note += f"; a third, reference on: {measured[2]['growth_bytes'] / len(full):.2f}x"
    return figure


def obvious_memory(logits: npt.NDArray[np.float32], target: npt.NDArray[np.int64]) -> Figure:
    body = orjson.dumps({"input": logits, "target": target}, option=orjson.OPT_SERIALIZE_NUMPY)
    measured = []
    with servers.obvious() as obvious:
        for _ in range(2):
            with peak_rss_growth(obvious.pid) as theirs:
                status, data, _ = servers.request(
                    obvious.port, "POST", "/cross_entropy", body, JSON_HEADERS
                )
            if status != 200:
                raise RuntimeError(f"obvious service: {status} {data[:300]!r}")
            measured.append(theirs)
    figure = memory_figure("the same JSON", measured, len(body), None)
    figure.what = "for comparison, the obvious service: " + figure.what
    return figure


def memory_figure(
    what: str, measured: list[dict[str, float]], body: int, target: float | None
) -> Figure:
    """The worse of a cold server's first large request and the next one: the first pays
    one-time costs, the next may find the allocator's retained memory fragmented."""
    worst = max(m["growth_bytes"] for m in measured)
    ratio = worst / body
    note = ", ".join(
        f"request {i + 1}: {m['growth_bytes'] / body:.2f}x" for i, m in enumerate(measured)
    )
    if not all(m["method"] for m in measured):
        note += " (sampled every ms: VmHWM reset unavailable)"
    return Figure(
        "memory",
        f"peak RSS growth serving {what} (worse of 2)",
        worst / 1e6,
        "MB",
        body / 1e6,
        "body size",
        ratio,
        "" if target is None else f"<= {target}x",
        None if target is None else ratio <= target,
        note=note,
    )


CASE = Case(
    "memory", "peak RSS growth serving large bodies, as a multiple of the body", run, add_arguments
)
