"""Logs: text or JSON lines, uvicorn's through the same formatter, the service's own access
lines (probes dropped unless asked for), and never a request body or an API key."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from service.observability.logs import REDACTED, JsonFormatter, TextFormatter
from tests.server import LiveServer, live_server

ROOT = Path(__file__).resolve().parents[2]
KEY = "obs-test-key-7f3a9c"
WRONG_KEY = "obs-wrong-key-51b2e8"
#: A value that only a request body holds: it must never reach a log line.
BODY_MARKER = "body-marker-c0ffee"
CE = "/v1/losses/cross_entropy"
ARTICLE = {"input": ARTICLE_INPUT, "target": ARTICLE_TARGET}
ACCESS_FIELDS = {"request_id", "method", "route", "status", "duration_ms", "loss", "client"}


def record(message: str, *args: Any, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("service.test", logging.WARNING, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    return rec


def test_json_lines_carry_time_level_logger_message_and_fields() -> None:
    line = JsonFormatter().format(record("took %d ms", 12, route="/v1/losses/{name}", status=200))
    out = orjson.loads(line)
    assert out.pop("time").endswith("Z")
    assert out == {
        "level": "warning",
        "logger": "service.test",
        "message": "took 12 ms",
        "route": "/v1/losses/{name}",
        "status": 200,
    }


def test_json_lines_carry_the_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record("failed")
        rec.exc_info = sys.exc_info()
    out = orjson.loads(JsonFormatter().format(rec))
    assert "ValueError: boom" in out["exception"]


def test_text_lines_are_one_line_with_time_level_and_logger() -> None:
    line = TextFormatter().format(record("hello %s", "there"))
    stamp, level, rest = line.split(" ", 2)
    assert stamp.endswith("Z")
    assert (level, rest) == ("WARNING", "service.test: hello there")


@pytest.mark.parametrize("formatter", [JsonFormatter, TextFormatter])
def test_a_configured_key_is_redacted_wherever_it_appears(formatter: type[TextFormatter]) -> None:
    line = formatter(secrets=[KEY]).format(record("got %s", f"Bearer {KEY}"))
    assert KEY not in line
    assert REDACTED in line


LOGGING_PROBE = """
import logging, logging.config, sys
from service.observability.logs import log_config
from service.settings import Settings
logging.config.dictConfig(log_config(Settings(device="cpu", log_format="json")))
logging.getLogger(sys.argv[1]).warning("from %s", sys.argv[1])
"""


@pytest.mark.parametrize("logger", ["uvicorn.error", "uvicorn.access", "service.api", "torch"])
def test_uvicorn_and_the_service_share_one_json_formatter(logger: str) -> None:
    # in a fresh interpreter: dictConfig closes every handler of the process it runs in
    done = subprocess.run(
        [sys.executable, "-c", LOGGING_PROBE, logger],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out = orjson.loads(done.stderr.strip().splitlines()[-1])
    assert (out["logger"], out["level"], out["message"]) == (logger, "warning", f"from {logger}")


def lines_of(server: LiveServer) -> list[str]:
    server.process.terminate()
    server.process.wait(timeout=30)
    assert server.process.stdout is not None
    return server.process.stdout.read().decode().splitlines()


def exercise(server: LiveServer) -> None:
    """A mix of answered, refused and unknown requests, keys right and wrong, and bodies."""
    marked = orjson.dumps({**ARTICLE, "dtype": BODY_MARKER})
    calls: list[tuple[str, str, bytes | None, dict[str, str], int]] = [
        ("POST", CE, orjson.dumps(ARTICLE), {"Authorization": f"Bearer {KEY}"}, 200),
        ("POST", CE, marked, {"X-API-Key": KEY}, 422),
        ("POST", CE, marked, {"Authorization": f"Bearer {WRONG_KEY}"}, 401),
        ("POST", CE, orjson.dumps(ARTICLE), {"X-API-Key": WRONG_KEY}, 401),
        ("POST", f"/v1/losses/{BODY_MARKER}", marked, {"X-API-Key": KEY}, 404),
        ("GET", "/v2/health/live", None, {}, 200),
        ("GET", "/metrics", None, {}, 200),
    ]
    with httpx.Client(base_url=server.url) as client:
        for method, path, body, headers, status in calls:
            answer = client.request(method, path, content=body, headers=headers)
            assert answer.status_code == status, answer.text


@pytest.mark.slow
def test_json_access_lines_and_no_key_or_body_in_any_line() -> None:
    env = {"LOSS_SERVICE_LOG_FORMAT": "json", "LOSS_SERVICE_API_KEYS": KEY}
    with live_server(env=env) as server:
        exercise(server)
        lines = lines_of(server)
    parsed = [orjson.loads(line) for line in lines]  # every line is one JSON object
    for out in parsed:
        assert {"time", "level", "logger", "message"} <= set(out)
    assert {"uvicorn.error", "service", "service.access"} <= {out["logger"] for out in parsed}
    access = [out for out in parsed if out["logger"] == "service.access"]
    assert [(a["method"], a["route"], a["status"], a["loss"]) for a in access] == [
        ("POST", "/v1/losses/{name}", 200, "cross_entropy"),
        ("POST", "/v1/losses/{name}", 422, "cross_entropy"),
        ("POST", "/v1/losses/{name}", 401, "cross_entropy"),
        ("POST", "/v1/losses/{name}", 401, "cross_entropy"),
        ("POST", "/v1/losses/{name}", 404, ""),
    ]  # the probes (readiness polls, /v2/health/live, /metrics) are dropped
    for a in access:
        assert set(a) >= ACCESS_FIELDS
        assert a["request_id"]
        assert a["client"].startswith("127.0.0.1:")
        assert a["duration_ms"] >= 0
    everything = "\n".join(lines)
    for secret in (KEY, WRONG_KEY, BODY_MARKER):
        assert secret not in everything


@pytest.mark.slow
def test_text_access_lines_and_probes_kept_when_asked() -> None:
    env = {"LOSS_SERVICE_LOG_PROBES": "true", "LOSS_SERVICE_API_KEYS": KEY}
    with live_server(env=env) as server:
        exercise(server)
        lines = lines_of(server)
    access = [line for line in lines if " INFO service.access: " in line]
    assert any('"GET /v2/health/live" 200' in line for line in access)
    assert any('"GET /v2/health/ready" 200' in line for line in access)
    assert any('"GET /metrics" 200' in line for line in access)
    assert any(
        '"POST /v1/losses/{name}" 200' in line and "loss=cross_entropy" in line for line in access
    )
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(lines[0])  # text, not JSON
    everything = "\n".join(lines)
    for secret in (KEY, WRONG_KEY, BODY_MARKER):
        assert secret not in everything
