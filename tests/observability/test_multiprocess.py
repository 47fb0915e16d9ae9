"""Several workers (``loss-service serve --workers 2``): one scrape of any of them is the sum
over all (prometheus-client's multiprocess mode, through the directory the parent prepares)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from service.dtypes import DTYPE_NAMES
from service.losses import registry
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from service.observability.metrics import (
    MULTIPROC_ENV,
    forget_dead_workers,
    prepare_multiprocess_dir,
)
from tests.observability.conftest import delta, labels, parse, series
from tests.server import live_server

CE = "/v1/losses/cross_entropy"
BODY = orjson.dumps({"input": ARTICLE_INPUT, "target": ARTICLE_TARGET})


@pytest.fixture
def clean_env() -> Iterator[None]:
    """prepare_multiprocess_dir exports the directory; this process must not keep it (servers
    that later tests start inherit the environment)."""
    saved = os.environ.pop(MULTIPROC_ENV, None)
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        if saved is not None:
            os.environ[MULTIPROC_ENV] = saved


@pytest.mark.usefixtures("clean_env")
def test_the_default_directory_is_fresh_and_under_the_temp_dir() -> None:
    path = prepare_multiprocess_dir(None)
    assert path.is_dir()
    assert not any(path.iterdir())
    assert path.parent == Path(tempfile.gettempdir())
    assert os.environ[MULTIPROC_ENV] == str(path)
    del os.environ[MULTIPROC_ENV]
    assert prepare_multiprocess_dir(None) != path  # a fresh one each start


@pytest.mark.usefixtures("clean_env")
def test_a_configured_directory_is_made_or_cleaned_of_stale_files(tmp_path: Path) -> None:
    made = prepare_multiprocess_dir(str(tmp_path / "new" / "metrics"))
    assert made.is_dir()
    (tmp_path / "counter_12345.db").write_bytes(b"stale")
    (tmp_path / "gauge_livesum_12345.db").write_bytes(b"stale")
    (tmp_path / "keep.txt").write_text("not ours")
    assert prepare_multiprocess_dir(str(tmp_path)) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "new"]
    assert os.environ[MULTIPROC_ENV] == str(tmp_path)


def test_live_gauges_of_dead_workers_are_forgotten(tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above any pid_max a test machine uses
    (tmp_path / f"gauge_livesum_{dead}.db").write_bytes(b"")
    (tmp_path / f"gauge_livesum_{os.getpid()}.db").write_bytes(b"")
    (tmp_path / f"counter_{dead}.db").write_bytes(b"")  # counts of the dead still add up
    forget_dead_workers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"counter_{dead}.db",
        f"gauge_livesum_{os.getpid()}.db",
    ]


@pytest.mark.slow
def test_two_workers_scrape_as_one(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale from a previous run")
    env = {"LOSS_SERVICE_METRICS_DIR": str(metrics_dir), "LOSS_SERVICE_LOG_LEVEL": "warning"}
    with live_server(env=env, args=("--workers", "2")) as server:
        before = parse(httpx.get(server.url + "/metrics").text)
        zeros = series(before, "loss_service_reference_disagreements_total")
        assert zeros == {
            labels(loss=n, dtype=d): 0.0 for n in registry.names() for d in DTYPE_NAMES
        }
        workers: set[str] = set()
        sent = 0
        # a fresh connection per request, so that both workers get some
        while sent < 400 and (len(workers) < 2 or sent < 40):
            answer = httpx.post(server.url + CE, content=BODY)
            assert answer.status_code == 200
            workers.add(answer.headers["x-request-id"].split("-")[0])
            sent += 1
        assert len(workers) == 2, "the kernel gave every connection to one worker"
        assert httpx.get(server.url + "/v1/losses/nope").status_code == 404
        after = parse(httpx.get(server.url + "/metrics").text)
        pids = {p.name for p in metrics_dir.iterdir() if p.name.startswith("counter_")}
    assert "counter_999999.db" not in pids
    assert len(pids) >= 2
    moved = delta(before, after, "loss_service_requests_total")
    assert moved[labels(route="/v1/losses/{name}", loss="cross_entropy", status="200")] == sent
    assert moved[labels(route="/v1/losses/{name}", loss="", status="404")] == 1
    assert series(after, "loss_service_in_flight") == {(): 0.0}
    assert series(after, "loss_service_queued") == {(): 0.0}
    counted = delta(before, after, "loss_service_request_duration_seconds_count")
    assert counted[labels(route="/v1/losses/{name}", loss="cross_entropy")] == sent
