"""GET /metrics: scraped and parsed with prometheus-client's parser; every counter moves by
exactly the requests sent, per route template, loss and status, refusals and shed ones included."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from service import dataplane as dataplane_module
from service.app import create_app
from service.dataplane import Comparison
from service.dtypes import DTYPE_NAMES
from service.errors import DeviceError
from service.losses import cross_entropy_small, registry
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from service.observability.metrics import DURATION_BUCKETS, REASONS
from service.settings import Settings
from tests.observability.conftest import (
    app_of,
    asgi_client,
    delta,
    labels,
    parse,
    scrape,
    series,
    state_of,
)

pytestmark = pytest.mark.anyio

ARTICLE = {"input": ARTICLE_INPUT, "target": ARTICLE_TARGET}
CE = "/v1/losses/cross_entropy"
LOSS_ROUTE = "/v1/losses/{name}"
LIMITS: dict[str, Any] = {"max_body_bytes": 64 * 1024, "max_elements": 4096, "max_depth": 8}
V2_EXAMPLE = {
    "inputs": [
        {"name": "input", "shape": [2, 3], "datatype": "FP32", "data": [2, 0.5, -1, 0.1, 0.2, 3]},
        {"name": "target", "shape": [2], "datatype": "INT64", "data": [0, 2]},
    ]
}

#: A small body (answered inline, before routing) and the same one padded past
#: inline_max_bytes (answered by the route): both must count alike.
SMALL = orjson.dumps(ARTICLE)
ROUTED = SMALL[:-1] + b" " * 5000 + b"}"

# (id, method, path, body, route label, loss label, status)
REQUESTS: list[tuple[str, str, str, bytes | None, str, str, int]] = [
    ("inline-200", "POST", CE, SMALL, LOSS_ROUTE, "cross_entropy", 200),
    ("routed-200", "POST", CE, ROUTED, LOSS_ROUTE, "cross_entropy", 200),
    ("invalid-422", "POST", CE, b"{}", LOSS_ROUTE, "cross_entropy", 422),
    ("malformed-400", "POST", CE, b"{not json", LOSS_ROUTE, "cross_entropy", 400),
    (
        "limit-422",
        "POST",
        CE,
        orjson.dumps({"input": [[0.0] * 8] * 600, "target": [0] * 600}),
        LOSS_ROUTE,
        "cross_entropy",
        422,
    ),
    ("too-large-413", "POST", CE, b"[" + b"0," * 40_000 + b"0]", LOSS_ROUTE, "cross_entropy", 413),
    ("unknown-loss-404", "POST", "/v1/losses/nope", SMALL, LOSS_ROUTE, "", 404),
    ("wrong-method-405", "PUT", CE, SMALL, LOSS_ROUTE, "cross_entropy", 405),
    ("catalogue", "GET", "/v1/losses", None, "/v1/losses", "", 200),
    ("one-loss", "GET", "/v1/losses/mse_loss", None, LOSS_ROUTE, "mse_loss", 200),
    ("unmatched", "GET", "/no/such/path", None, "unmatched", "", 404),
    ("slash-redirect", "GET", "/v1/losses/", None, "unmatched", "", 307),
    ("health", "GET", "/v2/health/live", None, "/v2/health/live", "", 200),
    (
        "batch",
        "POST",
        "/v1/losses:batch",
        orjson.dumps({"items": [{"loss": "cross_entropy", "args": ARTICLE}]}),
        "/v1/losses:batch",
        "",
        200,
    ),
    (
        "v2-infer",
        "POST",
        "/v2/models/cross_entropy/infer",
        orjson.dumps(V2_EXAMPLE),
        "/v2/models/{name}/infer",
        "cross_entropy",
        200,
    ),
    (
        "v2-unknown-model",
        "POST",
        "/v2/models/nope/infer",
        orjson.dumps(V2_EXAMPLE),
        "/v2/models/{name}/infer",
        "",
        404,
    ),
]

EXPECTED_REJECTIONS = {"invalid_input": 2, "limit_exceeded": 1, "body_too_large": 1}


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app_of(**LIMITS)) as c:
        yield c


async def send(client: httpx.AsyncClient, method: str, path: str, body: bytes | None) -> int:
    response = await client.request(method, path, content=body)
    return response.status_code


async def test_each_request_moves_exactly_its_route_loss_and_status(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client)
    for rid, method, path, body, _, _, status in REQUESTS:
        assert await send(client, method, path, body) == status, rid
    after = await scrape(client)
    expected = Counter(labels(route=r, loss=ls, status=str(s)) for *_, r, ls, s in REQUESTS)
    # the first scrape is counted once it has been answered
    expected[labels(route="/metrics", loss="", status="200")] += 1
    assert delta(before, after, "loss_service_requests_total") == dict(expected)
    rejected = delta(before, after, "loss_service_rejected_total")
    assert rejected == {labels(reason=k): v for k, v in EXPECTED_REJECTIONS.items()}


async def test_durations_and_body_sizes_are_histograms_per_route(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client)
    for body in (SMALL, ROUTED):
        assert await send(client, "POST", CE, body) == 200
    after = await scrape(client)
    route = labels(route=LOSS_ROUTE)
    assert delta(before, after, "loss_service_request_body_bytes_count") == {route: 2}
    assert delta(before, after, "loss_service_request_body_bytes_sum") == {
        route: len(SMALL) + len(ROUTED)
    }
    timed = labels(route=LOSS_ROUTE, loss="cross_entropy")
    scraped = labels(route="/metrics", loss="")
    assert delta(before, after, "loss_service_request_duration_seconds_count") == {
        timed: 2,
        scraped: 1,
    }
    bounds = {
        dict(k)["le"]
        for k in series(after, "loss_service_request_duration_seconds_bucket")
        if dict(k)["route"] == LOSS_ROUTE
    }
    # resolves a 100 us small request and a 1 s large one
    assert {"0.0001", "1.0", "+Inf"} <= bounds
    assert len(DURATION_BUCKETS) + 1 == len(bounds)


async def test_unknown_paths_cannot_grow_the_label_set(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    for i in range(40):
        assert await send(client, "GET", f"/random/{i}/path", None) == 404
    after = await scrape(client)
    moved = delta(before, after, "loss_service_requests_total")
    assert moved == {
        labels(route="unmatched", loss="", status="404"): 40,
        labels(route="/metrics", loss="", status="200"): 1,
    }
    assert not [k for k in series(after, "loss_service_requests_total") if "random" in str(k)]


async def test_process_and_platform_collectors_are_exported(client: httpx.AsyncClient) -> None:
    samples = await scrape(client)
    names = {name for name, _ in samples}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names
    assert series(samples, "loss_service_in_flight") == {(): 0.0}
    assert series(samples, "loss_service_queued") == {(): 0.0}
    assert set(series(samples, "loss_service_rejected_total")) == {
        labels(reason=r) for r in REASONS
    }
    assert not [n for n in names if n.endswith("_created")]


async def test_disagreements_read_zero_for_every_loss_and_dtype_from_the_start() -> None:
    """So that an alert on increase(...) > 0 sees the very first disagreement."""
    async with asgi_client(app_of()) as fresh:
        samples = await scrape(fresh)
    assert series(samples, "loss_service_reference_disagreements_total") == {
        labels(loss=name, dtype=dtype): 0.0 for name in registry.names() for dtype in DTYPE_NAMES
    }


async def test_openmetrics_when_asked_for(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def test_shed_requests_count_as_503_overloaded(client: httpx.AsyncClient) -> None:
    admission = state_of(client._transport.app).admission  # type: ignore[attr-defined]
    before = await scrape(client)
    admitted = admission.admitted
    admission.admitted = admission.capacity  # the service is full
    try:
        statuses = [await send(client, "POST", CE, SMALL) for _ in range(3)]
    finally:
        admission.admitted = admitted
    assert statuses == [503] * 3
    after = await scrape(client)
    moved = delta(before, after, "loss_service_requests_total")
    assert moved[labels(route=LOSS_ROUTE, loss="cross_entropy", status="503")] == 3
    assert delta(before, after, "loss_service_rejected_total") == {labels(reason="overloaded"): 3}


async def test_refused_without_a_key_counts_as_401_and_metrics_stay_open() -> None:
    async with asgi_client(app_of(api_keys=["metrics-test-key"])) as client:
        before = await scrape(client)  # no key needed
        assert await send(client, "POST", CE, SMALL) == 401
        assert (await client.post(CE, content=SMALL, headers={"X-API-Key": "nope"})).status_code
        ok = await client.post(CE, content=SMALL, headers={"X-API-Key": "metrics-test-key"})
        assert ok.status_code == 200
        after = await scrape(client)
    moved = delta(before, after, "loss_service_requests_total")
    assert moved[labels(route=LOSS_ROUTE, loss="cross_entropy", status="401")] == 2
    assert moved[labels(route=LOSS_ROUTE, loss="cross_entropy", status="200")] == 1
    assert delta(before, after, "loss_service_rejected_total") == {labels(reason="unauthorized"): 2}


async def test_metrics_off_means_no_endpoint() -> None:
    async with asgi_client(app_of(metrics=False)) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.post(CE, content=SMALL)).status_code == 200
        assert state_of(client._transport.app).metrics is None  # type: ignore[attr-defined]


async def test_timed_out_and_device_errors_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_of(request_timeout=0.3)
    plane = state_of(app).dataplane
    release = threading.Event()
    real = plane.compute_json

    def slow(name: str, raw: bytes | bytearray) -> dict[str, Any]:
        release.wait(5)
        return real(name, raw)

    def broken(name: str, raw: bytes | bytearray) -> dict[str, Any]:
        raise DeviceError("the device failed computing cross_entropy")

    async with asgi_client(app) as client:
        before = await scrape(client)
        monkeypatch.setattr(plane, "compute_json", slow)
        try:
            assert await send(client, "POST", CE, ROUTED) == 504
        finally:
            release.set()
        monkeypatch.setattr(plane, "compute_json", broken)
        assert await send(client, "POST", CE, SMALL) == 503
        assert await send(client, "POST", CE, ROUTED) == 503
        monkeypatch.setattr(plane, "compute_json", real)
        after = await scrape(client)
    assert delta(before, after, "loss_service_rejected_total") == {
        labels(reason="timed_out"): 1,
        labels(reason="device_error"): 2,
    }
    moved = delta(before, after, "loss_service_requests_total")
    assert moved[labels(route=LOSS_ROUTE, loss="cross_entropy", status="504")] == 1
    assert moved[labels(route=LOSS_ROUTE, loss="cross_entropy", status="503")] == 2


async def test_a_body_that_never_arrives_counts_as_body_timeout() -> None:
    app = app_of(body_timeout=0.2)
    async with asgi_client(app) as client:
        before = await scrape(client)
        sent: list[dict[str, Any]] = []
        first = True

        async def receive() -> dict[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b'{"input": [', "more_body": True}
            await asyncio.sleep(10)
            return {"type": "http.disconnect"}

        async def collect(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": CE,
            "raw_path": CE.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-length", b"100000"), (b"host", b"test")],
            "client": ("127.0.0.1", 5000),
            "server": ("test", 80),
        }
        await asyncio.wait_for(app(scope, receive, collect), 5)  # type: ignore[arg-type]
        assert sent[0]["status"] == 408
        after = await scrape(client)
    assert delta(before, after, "loss_service_rejected_total") == {labels(reason="body_timeout"): 1}


async def test_in_flight_and_queued_follow_admission_control(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = app_of(max_concurrency=1, max_queue=4)
    plane = state_of(app).dataplane
    release = threading.Event()
    real = plane.compute_json

    def held(name: str, raw: bytes | bytearray) -> dict[str, Any]:
        release.wait(10)
        return real(name, raw)

    monkeypatch.setattr(plane, "compute_json", held)

    async def gauges(client: httpx.AsyncClient) -> tuple[float, float]:
        samples = await scrape(client)
        return (
            series(samples, "loss_service_in_flight")[()],
            series(samples, "loss_service_queued")[()],
        )

    async with asgi_client(app) as client:
        tasks = [asyncio.create_task(send(client, "POST", CE, ROUTED)) for _ in range(2)]
        try:
            for _ in range(200):
                if await gauges(client) == (1.0, 1.0):
                    break
                await asyncio.sleep(0.02)
            assert await gauges(client) == (1.0, 1.0)
        finally:
            release.set()
        assert await asyncio.gather(*tasks) == [200, 200]
        assert await gauges(client) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("module", "names", "reference"),
    [
        # the general path (mse_loss) and the plain-Python small path of cross_entropy
        (dataplane_module, ("compare",), "mse_loss"),
        (cross_entropy_small, ("compare_scalar", "compare_floats"), "cross_entropy"),
    ],
)
async def test_reference_disagreements_are_counted_per_loss_and_dtype(
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    module: Any,
    names: tuple[str, ...],
    reference: str,
) -> None:
    loss = registry.get(reference)
    assert loss is not None
    path = f"/v1/losses/{reference}"
    before = await scrape(client)
    agreeing = await client.post(path, json=loss.example())
    assert agreeing.json()["reference"]["agrees"] is True

    def disagree(*args: Any, **kwargs: Any) -> Comparison:
        return Comparison(1.0, 1.0, False)

    for name in names:
        monkeypatch.setattr(module, name, disagree)
    for dtype in ("float32", "float64", "float64"):
        answer = await client.post(path, json={**loss.example(), "dtype": dtype})
        assert answer.json()["reference"]["agrees"] is False
    monkeypatch.undo()
    after = await scrape(client)
    assert delta(before, after, "loss_service_reference_disagreements_total") == {
        labels(loss=reference, dtype="float32"): 1,
        labels(loss=reference, dtype="float64"): 2,
    }


async def test_batch_items_are_counted_per_loss_and_status(client: httpx.AsyncClient) -> None:
    mse = registry.get("mse_loss")
    assert mse is not None
    items = [
        {"loss": "cross_entropy", "args": ARTICLE},
        {"loss": "cross_entropy", "args": ARTICLE},
        {"loss": "cross_entropy", "args": {}},
        {"loss": "mse_loss", "args": mse.example()},
        {"loss": "nope", "args": {}},
        "not an item",
    ]
    before = await scrape(client)
    answer = await client.post("/v1/losses:batch", json={"items": items})
    assert answer.status_code == 200
    statuses = [r["status"] for r in answer.json()["results"]]
    assert statuses == [200, 200, 422, 200, 404, 422]
    after = await scrape(client)
    assert delta(before, after, "loss_service_batch_items_total") == {
        labels(loss="cross_entropy", status="200"): 2,
        labels(loss="cross_entropy", status="422"): 1,
        labels(loss="mse_loss", status="200"): 1,
        labels(loss="", status="404"): 1,
        labels(loss="", status="422"): 1,
    }


def test_parse_reads_what_prometheus_client_writes() -> None:
    text = '# TYPE x_total counter\nx_total{a="1"} 3.0\n'
    assert parse(text) == {("x_total", (("a", "1"),)): 3.0}


async def test_no_device_memory_gauges_on_the_cpu(client: httpx.AsyncClient) -> None:
    assert series(await scrape(client), "loss_service_device_memory_bytes") == {}


@pytest.mark.gpu
async def test_cuda_memory_gauges_follow_torch() -> None:
    import torch

    async with asgi_client(create_app(Settings(device="cuda"))) as client:
        assert (await client.post(CE, content=SMALL)).status_code == 200
        memory = series(await scrape(client), "loss_service_device_memory_bytes")
        reserved = torch.cuda.memory_reserved(0)
    assert set(memory) == {
        labels(device="cuda:0", kind="allocated"),
        labels(device="cuda:0", kind="reserved"),
    }
    assert memory[labels(device="cuda:0", kind="reserved")] == reserved
    assert reserved > 0
    assert 0 <= memory[labels(device="cuda:0", kind="allocated")] <= reserved
