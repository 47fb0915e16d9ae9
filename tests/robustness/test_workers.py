"""Several worker processes behind one port (``--workers N``): each answers, SIGTERM still lets
requests in flight finish and exits 0, a worker that dies is replaced, and a device that does
not exist stops start-up once, in the parent, before any worker is spawned.

Which process answered is told from the outside: the workers are the server's children found in
/proc, and a worker stopped with SIGSTOP cannot accept, so a fresh connection made while all but
one are stopped is served by that one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch

from tests.robustness.conftest import torch_cross_entropy
from tests.server import LiveServer, live_server

pytestmark = pytest.mark.slow

CE = "/v1/losses/cross_entropy"
QUIET = {"LOSS_SERVICE_LOG_LEVEL": "warning"}  # the server's stdout is a pipe nobody reads
BODY = {"input": [[2.0, 1.0, -1.0], [0.5, -3.0, 2.0]], "target": [0, 2]}


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def worker_pids(parent: int) -> set[int]:
    """The parent's children that multiprocessing spawned (not its resource tracker)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"multiprocessing.spawn" in cmdline:
            found.add(int(entry.name))
    return found


@contextmanager
def only(pid: int, others: set[int]) -> Iterator[None]:
    """All workers but ``pid`` stopped (briefly: the supervisor pings them every half second
    and replaces one that does not answer within five)."""
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        yield
    finally:
        for other in others:
            os.kill(other, signal.SIGCONT)


def answers(server: LiveServer, timeout: float = 2.0) -> bool:
    """One request on a fresh connection (not a pooled one, which another worker may hold)."""
    try:
        response = httpx.post(server.url + CE, json=BODY, timeout=timeout)
    except httpx.TransportError:
        return False
    assert response.status_code == 200, response.text
    assert abs(response.json()["value"] - torch_cross_entropy(BODY)) < 1e-6
    return True


def answered_by(server: LiveServer, pid: int, pids: set[int]) -> bool:
    """Whether worker ``pid`` answers while the others cannot accept."""
    with only(pid, pids - {pid}):
        return answers(server)


def each_answers(server: LiveServer, pids: set[int]) -> None:
    """Every worker in ``pids`` answers a request itself (retried while one is still starting:
    its connection waits in the shared backlog until it accepts)."""
    for pid in pids:
        wait_for(lambda pid=pid: answered_by(server, pid, pids))  # type: ignore[misc]


def settle(server: LiveServer, count: int) -> set[int]:
    wait_for(lambda: len(worker_pids(server.process.pid)) == count)
    return worker_pids(server.process.pid)


@pytest.mark.parametrize(
    ("env", "args"),
    [({}, ("--workers", "2")), ({"LOSS_SERVICE_WORKERS": "2"}, ())],
    ids=["option", "environment"],
)
def test_two_workers_each_answer(env: dict[str, str], args: tuple[str, ...]) -> None:
    with live_server(env=QUIET | env, args=args) as server:
        pids = settle(server, 2)
        assert server.process.pid not in pids
        each_answers(server, pids)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), 10)


def test_a_killed_worker_is_replaced_and_the_service_keeps_answering() -> None:
    with live_server(env=QUIET, args=("--workers", "2")) as server:
        pids = settle(server, 2)
        each_answers(server, pids)
        victim, survivor = sorted(pids)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (now := worker_pids(server.process.pid)) == pids or len(now) < 2:
            assert answers(server, timeout=10)  # the survivor answers meanwhile
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.05)
        assert survivor in now
        assert victim not in now
        each_answers(server, now)  # the replacement serves too


def test_sigterm_lets_in_flight_requests_finish_in_every_worker_then_exits_0(
    tmp_path: Path,
) -> None:
    in_flight = 4
    env = QUIET | {
        "LOSS_SERVICE_TEST_HOLD_DIR": str(tmp_path),
        "LOSS_SERVICE_SHUTDOWN_GRACE": "30",
        "LOSS_SERVICE_MAX_CONCURRENCY": str(in_flight),
    }
    with (
        live_server(
            env=env, args=("--workers", "2"), module="tests.robustness.hooked_service"
        ) as server,
        ThreadPoolExecutor(in_flight) as pool,
    ):
        settle(server, 2)
        futures = [
            pool.submit(httpx.post, server.url + CE, json=BODY, timeout=60)
            for _ in range(in_flight)
        ]
        wait_for(lambda: len(list(tmp_path.glob("started-*"))) == in_flight)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1.5)  # past the supervisor's half-second poll: the workers are shutting down
        assert server.process.poll() is None  # still finishing the requests in flight
        (tmp_path / "release").touch()
        for future in futures:
            response = future.result(timeout=60)
            assert response.status_code == 200, response.text
            assert abs(response.json()["value"] - torch_cross_entropy(BODY)) < 1e-6
        assert server.process.wait(timeout=30) == 0


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has cuda:7")
def test_a_missing_device_stops_start_up_once_before_any_worker() -> None:
    env = {**os.environ, "LOSS_SERVICE_DEVICE": "cuda:7", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "service", "--workers", "2", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("loss-service: ")
    assert "cuda:7" in lines[0]
    assert "Started" not in proc.stdout  # no worker was spawned
