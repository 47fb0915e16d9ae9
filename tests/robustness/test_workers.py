"""Several worker processes behind one port (``--workers N``): each answers, connections opened
together are spread over the workers, SIGTERM still lets requests in flight finish and exits 0, a
worker that dies is replaced, a worker that cannot start stops the service with status 1, and a
device that does not exist (or a port in use) stops start-up once, in the parent, before any
worker is spawned.

Which process answered is told from the outside: the workers are the server's children found in
/proc. A worker stopped with SIGSTOP cannot accept, so a request on a fresh connection made while
all but one are stopped is answered by that one (a connection the kernel queued on a stopped
worker's own socket is not answered in time and the test tries again). And the socket a worker
holds for a connection is found in /proc/<pid>/fd through the connection's row in
/proc/net/tcp."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
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


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (not exited, not a zombie awaiting its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextmanager
def only(pid: int, others: set[int]) -> Iterator[None]:
    """All workers but ``pid`` stopped (briefly: requests the kernel queues on their sockets
    wait)."""
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
    """Every worker in ``pids`` answers a request itself (retried while one is still starting,
    or when the connection went to a stopped worker's socket)."""
    for pid in pids:
        wait_for(lambda pid=pid: answered_by(server, pid, pids))  # type: ignore[misc]


def settle(server: LiveServer, count: int) -> set[int]:
    wait_for(lambda: len(worker_pids(server.process.pid)) == count)
    return worker_pids(server.process.pid)


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process ``pid`` holds open."""
    found = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[len("socket:[") : -1]))
    return found


def tcp_rows() -> list[tuple[int, int, str, int]]:
    """(local port, remote port, state, inode) of every IPv4 TCP socket (/proc/net/tcp)."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        rows.append((int(local.split(":")[1], 16), int(remote.split(":")[1], 16), state, inode))
    return rows


LISTEN = "0A"
WORKERS_2 = ("--workers", "2", "--host", "127.0.0.1")


def listening(pid: int, port: int) -> bool:
    """Whether worker ``pid`` holds a socket listening on ``port``."""
    inodes = socket_inodes(pid)
    return any(lp == port and st == LISTEN and ino in inodes for lp, _, st, ino in tcp_rows())


def serving_pid(port: int, client_port: int, pids: set[int]) -> int:
    """The worker holding the server's end of the connection from ``client_port``."""
    ends = {ino for lp, rp, st, ino in tcp_rows() if lp == port and rp == client_port}
    owners = [pid for pid in pids if socket_inodes(pid) & ends]
    assert len(owners) == 1, (client_port, owners)
    return owners[0]


def test_connections_opened_together_are_spread_over_the_workers() -> None:
    """wrk's and connection pools' pattern: open every connection, then send on each. With one
    shared socket the first worker to wake often accepted them all; with a socket each the
    kernel spreads them. Three rounds of 16, each served by both workers (all 16 of a round on
    one of two workers: 1 in 32,768)."""
    with live_server(env=QUIET, args=("--workers", "2")) as server:
        pids = settle(server, 2)
        wait_for(lambda: all(listening(pid, server.port) for pid in pids))
        for _ in range(3):
            served = serve_together(server, 16, pids)
            assert set(served) == pids, served


def serve_together(server: LiveServer, count: int, pids: set[int]) -> list[int]:
    """Open ``count`` connections, then one request on each: the worker that served each."""
    connections = [
        http.client.HTTPConnection(server.host, server.port, timeout=30) for _ in range(count)
    ]
    try:
        for connection in connections:
            connection.connect()
        served = []
        for connection in connections:
            connection.request("POST", CE, json.dumps(BODY), {"content-type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            assert response.status == 200, payload
            assert abs(json.loads(payload)["value"] - torch_cross_entropy(BODY)) < 1e-6
            assert isinstance(connection.sock, socket.socket)
            client_port = connection.sock.getsockname()[1]
            served.append(serving_pid(server.port, client_port, pids))
        return served
    finally:
        for connection in connections:
            connection.close()


def test_a_worker_that_cannot_start_stops_the_service_with_status_1(tmp_path: Path) -> None:
    env = {
        **os.environ,
        **QUIET,
        "LOSS_SERVICE_DEVICE": "cpu",
        "LOSS_SERVICE_TEST_FAIL_START_DIR": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.robustness.hooked_service", *WORKERS_2, "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 1, proc.stderr
    attempts = [int(p.name.split("-")[1]) for p in tmp_path.glob("attempt-*")]
    assert 3 <= len(attempts) <= 6  # three attempts for one worker, then the parent gives up
    assert "Giving up" in proc.stderr + proc.stdout
    assert not any(Path(f"/proc/{pid}").exists() for pid in attempts)


def test_a_port_in_use_stops_start_up_once_before_any_worker() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "LOSS_SERVICE_DEVICE": "cpu", "PYTHONUNBUFFERED": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "service", *WORKERS_2, "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"loss-service: cannot listen on 127.0.0.1:{port}: ")
    assert "Started" not in proc.stdout + proc.stderr


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
        # Each worker listens on its own SO_REUSEPORT socket: until the victim has exited (its
        # memory is torn down before its files are closed), the kernel still queues some new
        # connections on its socket, and resets them when it closes (net.ipv4.tcp_migrate_req=1
        # would hand them to the survivor). From then on every connection reaches the survivor.
        wait_for(lambda: not alive(victim), 10)
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
