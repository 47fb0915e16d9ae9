"""Servers the benchmark starts (the service and its floors) and one-request HTTP exchanges.

Every server binds 127.0.0.1 on a free port and is stopped when its ``with`` block ends. Its
standard error goes to a temporary file (shown when it fails to start): the service runs with
its default logging, an access line per request, as it is deployed, and a pipe nobody reads
would block it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SERVICE_ENV: dict[str, str] = {}  # the service's defaults: access lines on, as deployed
READY = "/v2/health/ready"  # the service's readiness path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"


#: Another checkout to run the service from (``LOSS_BENCH_SERVICE_ROOT``), for a before/after
#: comparison on the same machine with the same benchmark.
SERVICE_ROOT = Path(os.environ.get("LOSS_BENCH_SERVICE_ROOT") or ROOT)


@contextlib.contextmanager
def serve(
    name: str,
    cmd: Sequence[str],
    port: int,
    ready_path: str,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> Iterator[Server]:
    """Start ``cmd`` (which must listen on ``port``), wait for ``ready_path`` to answer 200,
    and stop it afterwards."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=full_env, stdout=subprocess.DEVNULL, stderr=log)
    server = Server(name, proc, port)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
                raise RuntimeError(f"{name} exited with {proc.returncode}: {err[-2000:]}")
            with contextlib.suppress(OSError):
                if request(port, "GET", ready_path)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not become ready in 90 s")
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def service_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "service", "--host", HOST, "--port", str(port)]


def obvious_cmd(port: int) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "obvious_service.py"), "--port", str(port)]


def sink_cmd(port: int, answer_bytes: int | None = None) -> list[str]:
    cmd = [sys.executable, str(ROOT / "bench" / "sink_service.py"), "--port", str(port)]
    return cmd if answer_bytes is None else [*cmd, "--answer-bytes", str(answer_bytes)]


@contextlib.contextmanager
def service(env: dict[str, str] | None = None) -> Iterator[Server]:
    """loss-service itself, one worker, its default logging (an access line per request)."""
    port = free_port()
    env = {**SERVICE_ENV, **(env or {})}
    with serve("loss-service", service_cmd(port), port, READY, env, SERVICE_ROOT) as s:
        yield s


@contextlib.contextmanager
def obvious() -> Iterator[Server]:
    """The obvious FastAPI service (``bench/obvious_service.py``)."""
    port = free_port()
    with serve("obvious", obvious_cmd(port), port, "/docs") as s:
        yield s


@contextlib.contextmanager
def sink(answer_bytes: int | None = None) -> Iterator[Server]:
    """The bare uvicorn app of ``bench/sink_service.py`` (answering a fixed JSON of
    ``answer_bytes`` when given)."""
    port = free_port()
    with serve("sink", sink_cmd(port, answer_bytes), port, "/") as s:
        yield s


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    """One HTTP/1.1 exchange (on ``conn`` when given, kept alive)."""
    own = conn is None
    c = conn or http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, data, {k.lower(): v for k, v in r.getheaders()}
    finally:
        if own:
            c.close()
