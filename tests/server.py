"""A real server process on a free loopback port, for tests that need a socket (uvicorn, clients
such as tritonclient, signals)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def live_server(
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    startup_timeout: float = 60.0,
    module: str = "service",
    cwd: str | None = None,
    inherit_env: bool = True,
) -> Iterator[LiveServer]:
    """``python -m service`` (or another ``module`` that serves it, such as one with test hooks)
    on 127.0.0.1 and a free port; waits until ready, stops it after. ``inherit_env=False`` gives
    the process ``env`` alone (a manifest's environment), ``cwd`` its working directory."""
    port = free_port()
    base_env = {**os.environ, "LOSS_SERVICE_DEVICE": "cpu", "PYTHONUNBUFFERED": "1"}
    full_env = {**(base_env if inherit_env else {}), **(env or {})}
    cmd = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port), *args]
    proc = subprocess.Popen(
        cmd, env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    server = LiveServer(proc, "127.0.0.1", port)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"server exited with {proc.returncode}: {out}")
            try:
                if httpx.get(server.url + "/v2/health/ready", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become ready in time")
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
