"""The worker supervisor (``service.supervisor``) with toy workers (``tests.supervised``): it
starts them, replaces one that dies (at once, then with growing delays), gives up with status 1
on a worker that cannot start, forwards SIGTERM/SIGINT and exits 0, kills a worker that ignores
SIGTERM after the grace. The sockets: reuse-port binds share a port, plain ones do not."""

from __future__ import annotations

import errno
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service import supervisor
from tests.supervised import BACKOFF_MAX_S, BACKOFF_S


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def run(mode: str, directory: Path, workers: int, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.supervised", mode, str(directory), str(workers), *extra],
        env=env,
    )


def starts(directory: Path) -> list[tuple[int, float]]:
    """(pid, monotonic start time) of every worker started so far, in start order."""
    found = []
    for path in directory.glob("start-*"):
        _, pid, at = path.name.split("-")
        found.append((int(pid), float(at)))
    return sorted(found, key=lambda item: item[1])


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=30)


@pytest.fixture
def cleanup() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test started, killed if the test left them running."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_reaches_every_worker_and_the_parent_exits_0(
    tmp_path: Path, sig: int, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    proc = run("steady", tmp_path, 2)
    cleanup.append(proc)
    wait_for(lambda: len(starts(tmp_path)) == 2)
    pids = [pid for pid, _ in starts(tmp_path)]
    for pid in pids:  # each in its own process group: a terminal's Ctrl-C reaches it once
        assert os.getpgid(pid) == pid
    assert stop(proc, sig) == 0
    assert {p.name for p in tmp_path.glob("term-*")} == {f"term-{pid}" for pid in pids}
    assert not any(alive(pid) for pid in pids)
    assert len(starts(tmp_path)) == 2


@pytest.mark.slow
def test_a_worker_that_dies_after_serving_is_replaced(
    tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    proc = run("dies_once", tmp_path, 2)
    cleanup.append(proc)
    wait_for(lambda: len(starts(tmp_path)) == 3)
    first = starts(tmp_path)[0][0]
    wait_for(lambda: not alive(first))
    time.sleep(1.0)
    assert proc.poll() is None  # still supervising
    assert len(starts(tmp_path)) == 3  # one replacement, nothing more
    survivors = [pid for pid, _ in starts(tmp_path)[1:]]
    assert all(alive(pid) for pid in survivors)
    assert stop(proc) == 0
    assert {p.name for p in tmp_path.glob("term-*")} == {f"term-{pid}" for pid in survivors}


@pytest.mark.slow
def test_a_worker_that_keeps_dying_is_restarted_with_growing_delays_and_never_given_up(
    tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    proc = run("crash_loop", tmp_path, 1)
    cleanup.append(proc)
    wait_for(lambda: len(starts(tmp_path)) >= 6, timeout=60)
    assert proc.poll() is None
    times = [at for _, at in starts(tmp_path)][:6]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    delays = [0.0] + [min(BACKOFF_S * 2**k, BACKOFF_MAX_S) for k in range(4)]
    for gap, delay in zip(gaps, delays, strict=True):
        assert gap >= 0.2 + delay - 0.05, (gaps, delays)  # it lives 0.2 s, then waits
    assert stop(proc) == 0


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_that_cannot_start_is_given_up_after_three_attempts(
    tmp_path: Path, workers: int, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    proc = run("dies_at_start", tmp_path, workers)
    cleanup.append(proc)
    assert proc.wait(timeout=60) == 1
    assert (tmp_path / "status-1").exists()
    started = starts(tmp_path)
    assert supervisor.STARTUP_ATTEMPTS == 3
    assert 3 <= len(started) <= 3 * workers
    assert not any(alive(pid) for pid, _ in started)
    if workers == 1:  # the retries wait BACKOFF_S, then twice that
        gaps = [b[1] - a[1] for a, b in itertools.pairwise(started)]
        assert gaps[0] >= BACKOFF_S - 0.05
        assert gaps[1] >= 2 * BACKOFF_S - 0.05


@pytest.mark.slow
def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    proc = run("stubborn", tmp_path, 1, "1")  # grace 1 s, margin 2 s
    cleanup.append(proc)
    wait_for(lambda: len(starts(tmp_path)) == 1)
    time.sleep(0.5)
    began = time.monotonic()
    assert stop(proc) == 0
    assert time.monotonic() - began >= 3.0 - 0.1
    assert not alive(starts(tmp_path)[0][0])


def test_the_delay_doubles_up_to_its_cap() -> None:
    s = supervisor.Supervisor(1, print, backoff_s=0.5, backoff_max_s=3.0)
    assert [s._delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balances on Linux")
def test_reuse_port_sockets_share_a_port_and_the_kernel_spreads_connections() -> None:
    assert supervisor.reuse_port_balances()
    held = supervisor.bind("127.0.0.1", 0, reuse_port=True)  # the parent's: never listens
    port = held.getsockname()[1]
    listeners = [supervisor.bind("127.0.0.1", port, reuse_port=True) for _ in range(2)]
    clients = []
    try:
        for sock in listeners:
            sock.listen(64)
            sock.setblocking(False)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
        accepted = []
        for sock in listeners:
            count = 0
            time.sleep(0.05)
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                count += 1
            accepted.append(count)
        assert sum(accepted) == 32
        assert min(accepted) > 0, accepted  # all on one socket: about 2 in 4 billion
    finally:
        for s in (held, *listeners, *clients):
            s.close()


def test_the_held_port_refuses_a_bare_bind() -> None:
    """The parent's socket keeps the port from a socket without SO_REUSEADDR/SO_REUSEPORT."""
    with supervisor.bind("127.0.0.1", 0, reuse_port=True) as held:
        port = held.getsockname()[1]
        with socket.socket() as other, pytest.raises(OSError, match="in use") as info:
            other.bind(("127.0.0.1", port))
        assert info.value.errno == errno.EADDRINUSE


@pytest.mark.parametrize("reuse_port", [True, False])
def test_a_port_another_server_listens_on_is_refused(reuse_port: bool) -> None:
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(OSError, match="in use") as info:
            supervisor.bind("127.0.0.1", other.getsockname()[1], reuse_port=reuse_port)
        assert info.value.errno == errno.EADDRINUSE


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balances on Linux")
def test_the_parent_claims_a_free_port_with_a_reuse_port_socket_that_does_not_listen() -> None:
    held, reuse_port = supervisor.claim("127.0.0.1", 0)
    with held:
        assert reuse_port
        assert held.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert held.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
        port = held.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()


@pytest.mark.parametrize("reuse_port", [True, False])
def test_the_parent_refuses_a_port_another_server_listens_on(reuse_port: bool) -> None:
    """Even one with SO_REUSEPORT (a second loss-service would otherwise share its port)."""
    with supervisor.bind("127.0.0.1", 0, reuse_port=reuse_port) as other:
        other.listen()
        with pytest.raises(OSError, match="in use") as info:
            supervisor.claim("127.0.0.1", other.getsockname()[1])
        assert info.value.errno == errno.EADDRINUSE
