"""Every loss, small, end to end: each loss's catalogue example (``GET /v1/losses/{name}``)
posted under ``wrk -t1 -c8`` to one service, against the article's 3x3 ``cross_entropy`` body
measured in the same round (target: at least 0.5x its requests per second; ``ctc_loss``, whose
lattice is a Python loop per frame, is printed without a target). Beside them, on the same
server and against the same article-body figure of each round:

- the article's body as an Open Inference Protocol JSON request,
  ``POST /v2/models/cross_entropy/infer`` (target at least 0.67x the ``/v1`` figure);
- one item of ``POST /v1/losses:batch`` holding the article's body ``--batch-items`` times: the
  batch's time per item against the single request's (target at most 1x).

Each figure is the median of the rounds' ratios; the server's CPU time per request is shown
beside it (a steadier measure on a shared machine than requests per second).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import orjson

from bench import servers
from bench.bodies import small_body, v2_json_body
from bench.cases.base import Case, Context
from bench.load import load
from bench.proc import cpu_seconds
from bench.report import Figure

LOSS_TARGET = 0.5  # at least this many times the article body's req/s
V2_TARGET = 0.67
ITEM_TARGET = 1.0  # a batch item's time at most this many times a single request's
UNTARGETED = frozenset({"ctc_loss"})
V1 = "/v1/losses/cross_entropy"


@dataclass(frozen=True)
class Target:
    label: str
    path: str
    body: bytes
    items: int = 1  # computations per request


def targets(batch_items: int) -> list[Target]:
    from service.losses import registry

    article = small_body()
    out = [Target("article", V1, article)]
    for loss in registry.all_losses():
        out.append(Target(loss.name, f"/v1/losses/{loss.name}", orjson.dumps(loss.example())))
    ce = registry.require("cross_entropy")
    out.append(
        Target(
            "v2",
            "/v2/models/cross_entropy/infer",
            v2_json_body(orjson.loads(article), ce.tensor_inputs),
        )
    )
    items = [{"loss": "cross_entropy", "args": orjson.loads(article)}] * batch_items
    out.append(Target("batch", "/v1/losses:batch", orjson.dumps({"items": items}), batch_items))
    return out


def run(ctx: Context) -> list[Figure]:
    args = ctx.args
    chosen = targets(args.batch_items)
    rows: dict[str, list[tuple[float, float]]] = {t.label: [] for t in chosen}
    tool = ""
    with servers.service() as ours:
        for t in chosen:  # each answers 200, and every first call (torch's lazy set-ups) is done
            for _ in range(3):
                status, data, _ = servers.request(ours.port, "POST", t.path, t.body)
                if status != 200:
                    raise RuntimeError(f"{t.label}: {status} {data[:300]!r}")
        for _ in range(args.rounds):
            for t in chosen:
                cpu0 = cpu_seconds(ours.pid)
                result = load(ours.url(t.path), t.body, args.seconds, 8, ctx.workdir)
                cpu = cpu_seconds(ours.pid) - cpu0
                if result.errors or not result.requests:
                    raise RuntimeError(f"{t.label}: {result.errors} failed of {result.requests}")
                rows[t.label].append((result.rps, cpu / result.requests * 1e6))
                tool = result.tool
    article = rows["article"]

    def ratios(label: str, items: int = 1) -> list[float]:
        return [r[0] * items / a[0] for r, a in zip(rows[label], article, strict=True)]

    def median(label: str, i: int) -> float:
        return statistics.median(r[i] for r in rows[label])

    def per_round(values: list[float]) -> str:
        return "per round: " + ", ".join(f"{v:.2f}x" for v in values)

    figures: list[Figure] = []
    for t in chosen:
        if t.label in ("article", "v2", "batch"):
            continue
        ratio = statistics.median(ratios(t.label))
        targeted = t.label not in UNTARGETED
        figures.append(
            Figure(
                "losses",
                f"{t.label} example ({len(t.body)} B), {median(t.label, 1):,.0f} us CPU/req",
                median(t.label, 0),
                "req/s",
                median("article", 0),
                "",
                ratio,
                f">= {LOSS_TARGET:g}x" if targeted else "(printed, no target)",
                ratio >= LOSS_TARGET if targeted else None,
                note=per_round(ratios(t.label)),
            )
        )
    figures[-1].floor_what = (
        f"the article's 3x3 cross_entropy body, same server, same rounds, {tool} -t1 -c8 "
        f"({median('article', 1):,.0f} us CPU/req)"
    )
    v2 = statistics.median(ratios("v2"))
    figures.append(
        Figure(
            "losses",
            f"the article's body through /v2 JSON, {median('v2', 1):,.0f} us CPU/req",
            median("v2", 0),
            "req/s",
            median("article", 0),
            "the same body through /v1",
            v2,
            f">= {V2_TARGET:g}x",
            v2 >= V2_TARGET,
            note=per_round(ratios("v2")),
        )
    )
    # a batch item's time over a single request's: the single's req/s over items per second
    item = [1 / r for r in ratios("batch", t.items)]
    item_ratio = statistics.median(item)
    figures.append(
        Figure(
            "losses",
            f"one item of POST /v1/losses:batch ({args.batch_items} items of the article's body)",
            median("batch", 0) * args.batch_items,
            "items/s",
            median("article", 0),
            "single requests of the same body (req/s); ratio: time per item / time per request",
            item_ratio,
            f"<= {ITEM_TARGET:g}x",
            item_ratio <= ITEM_TARGET,
            note="per round: " + ", ".join(f"{v:.2f}x" for v in item),
        )
    )
    return figures


CASE = Case(
    "losses",
    "every loss's example, /v2 JSON and a batch item end to end, against the article's body",
    run,
    needs_wrk=True,
)
