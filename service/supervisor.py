"""Several worker processes behind one port, each with its own listening socket.

uvicorn's own supervisor binds one socket in the parent and hands the same socket to every worker.
Under a client that opens a few keep-alive connections at once (``wrk -c8``, a connection pool),
the first worker to wake accepts all of them (its event loop accepts until the backlog is empty)
and the others idle: two workers served 1.04x the requests of one. Here, on Linux, each worker
binds its own socket with ``SO_REUSEPORT`` to the same address, and the kernel spreads incoming
connections over the listening sockets by a hash of the connection's addresses. Where
``SO_REUSEPORT`` does not balance (it does only on Linux) the parent binds one shared socket, as
uvicorn does.

The parent (``Supervisor.run``):

- in reuse-port mode binds a socket with ``SO_REUSEPORT`` that never listens: it holds the port
  (resolving port 0) so that nothing else takes it between worker restarts, but the kernel never
  routes a connection to it;
- starts each worker with multiprocessing's *spawn* (a fresh interpreter: the app is built from the
  factory's import string and the ``LOSS_SERVICE_*`` environment, see ``service.workers``);
- replaces a worker that dies after it started serving, at once the first time and with a
  doubling delay when it keeps dying soon after starting;
- gives up when a worker dies before it started serving ``STARTUP_ATTEMPTS`` times in a row (a
  broken app or a refused bind fails the same way every time): stops the others, returns 1;
- on SIGTERM or SIGINT sends SIGTERM to every worker (each stops accepting, lets the requests in
  flight finish within ``SHUTDOWN_GRACE``), waits for them and returns 0; a second signal sends
  SIGINT, which makes uvicorn stop waiting.

Workers run in their own process group, so a Ctrl-C in a terminal reaches them once, from the
parent (two SIGINTs would make uvicorn skip the graceful wait), and on Linux they get SIGTERM if
the parent dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

logger = logging.getLogger("uvicorn.error")

#: Deaths before serving, in a row for one worker, after which the parent gives up.
STARTUP_ATTEMPTS = 3
#: The first delay before a worker that keeps dying is started again; it doubles each time.
BACKOFF_S = 0.5
BACKOFF_MAX_S = 10.0
#: A worker that served this long before dying counts as healthy: it is replaced at once.
STABLE_AFTER_S = 10.0
#: How long past ``SHUTDOWN_GRACE`` the parent waits for workers to exit before killing them
#: (uvicorn cancels requests still running at the grace, then runs the lifespan's shutdown).
STOP_MARGIN_S = 10.0
#: Listening backlog of each worker's socket (uvicorn's default).
BACKLOG = 2048

_SPAWN = multiprocessing.get_context("spawn")
_PR_SET_PDEATHSIG = 1


def reuse_port_balances() -> bool:
    """Whether ``SO_REUSEPORT`` spreads connections over the sockets bound with it: Linux only
    (macOS and the BSDs accept the option but hand every connection to one socket)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``SO_REUSEADDR``; ``SO_REUSEPORT`` when asked), not
    yet listening. Raises ``OSError`` when the address is taken or the option refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to serve, handed to it at spawn (everything else comes from the
    environment): the app factory's import string and the options uvicorn takes directly."""

    app_factory: str
    host: str
    port: int
    log_level: str
    #: uvicorn's ``log_config`` (the service's formatter for every logger; see
    #: service.observability.logs). uvicorn's own access lines stay off: the service writes its
    #: own, with the route template and request id.
    log_config: dict[str, Any] | None
    shutdown_grace: int
    #: Bind an own ``SO_REUSEPORT`` socket (else serve the shared socket the parent passes).
    reuse_port: bool


class _WorkerServer(uvicorn.Server):
    """uvicorn's server, binding its own reuse-port socket once the app has started (so the kernel
    sends it no connection while it is still importing) and telling the parent when it serves."""

    def __init__(self, config: uvicorn.Config, spec: WorkerSpec, ready: Connection) -> None:
        super().__init__(config)
        self.spec = spec
        self.ready = ready
        self.own_sockets: list[socket.socket] = []

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None:
            self.own_sockets = [bind(self.spec.host, self.spec.port, reuse_port=True)]
            sockets = self.own_sockets
        await super().startup(sockets)
        if self.started:
            logger.info("Worker [%d] serving", os.getpid())
            notify_ready(self.ready)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Close our socket first: the kernel would go on queueing new connections on it.
        await super().shutdown(sockets if sockets is not None else self.own_sockets)


def serve_worker(ready: Connection, spec: WorkerSpec, shared: socket.socket | None) -> None:
    """A worker process: uvicorn serving the app built from ``spec.app_factory``, on its own
    reuse-port socket or on ``shared``. Exits 0 after a signalled shutdown."""
    config = uvicorn.Config(
        spec.app_factory,
        factory=True,
        host=spec.host,
        port=spec.port,
        log_level=spec.log_level,
        log_config=spec.log_config,
        access_log=False,
        timeout_graceful_shutdown=spec.shutdown_grace,
    )
    server = _WorkerServer(config, spec, ready)
    server.run(sockets=None if shared is None else [shared])


def notify_ready(ready: Connection) -> None:
    """Tell the parent this worker serves (it then counts deaths as crashes, not start-up
    failures)."""
    try:
        ready.send(True)
        ready.close()
    except OSError:
        pass


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def _child(
    target: Callable[..., None], ready: Connection, args: tuple[Any, ...], parent: int
) -> None:
    """Every worker's entry point: detach from the terminal's signals, die with the parent, run.

    SIGTERM/SIGINT before uvicorn installs its handlers (or re-raised by uvicorn after its
    graceful shutdown) end the worker with status 0."""
    os.setpgrp()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above
        return
    signal.signal(signal.SIGTERM, _exit_quietly)
    signal.signal(signal.SIGINT, _exit_quietly)
    target(ready, *args)


@dataclass
class _Slot:
    """One worker position: its current process (if any) and its history."""

    index: int
    process: BaseProcess | None = None
    ready: Connection | None = None
    serving: bool = False
    serving_since: float = 0.0
    startup_failures: int = 0
    crashes: int = 0
    due: float | None = 0.0  # when to start the next process (None: nothing to start)


@dataclass
class Supervisor:
    """Runs ``workers`` processes of ``target(ready, *args)`` and keeps them running (see the
    module docstring). ``target`` must be importable (spawn pickles it by name) and call
    ``notify_ready(ready)`` once it serves."""

    workers: int
    target: Callable[..., None]
    args: tuple[Any, ...] = ()
    shutdown_grace: float = 30.0
    startup_attempts: int = STARTUP_ATTEMPTS
    backoff_s: float = BACKOFF_S
    backoff_max_s: float = BACKOFF_MAX_S
    stable_after_s: float = STABLE_AFTER_S
    stop_margin_s: float = STOP_MARGIN_S
    slots: list[_Slot] = field(init=False, default_factory=list)
    _signals: list[int] = field(init=False, default_factory=list)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (returns 0) or until a worker cannot start (returns 1)."""
        self.slots = [_Slot(i) for i in range(self.workers)]
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        previous_wakeup = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        logger.info("Started parent process [%d]", os.getpid())
        try:
            status = self._supervise(wake_r)
            self._stop()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            wake_r.close()
            wake_w.close()
        logger.info("Stopping parent process [%d]", os.getpid())
        return status

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _supervise(self, wake: socket.socket) -> int:
        while not self._signals:
            now = time.monotonic()
            for slot in self.slots:
                if slot.process is None and slot.due is not None and slot.due <= now:
                    self._start(slot)
            waits: list[Any] = [wake]
            for slot in self.slots:
                if slot.process is not None:
                    waits.append(slot.process.sentinel)
                    if slot.ready is not None:
                        waits.append(slot.ready)
            dues = [s.due for s in self.slots if s.process is None and s.due is not None]
            timeout = max(0.0, min(dues) - now) if dues else None
            wait(waits, timeout)
            _drain(wake)
            for slot in self.slots:
                self._read_ready(slot)
            for slot in self.slots:
                dead = slot.process is not None and not slot.process.is_alive()
                if dead and not self._died(slot):
                    return 1
        return 0

    def _start(self, slot: _Slot) -> None:
        reader, writer = _SPAWN.Pipe(duplex=False)
        process = _SPAWN.Process(
            target=_child,
            args=(self.target, writer, self.args, os.getpid()),
            name=f"loss-service-worker-{slot.index}",
        )
        process.start()
        writer.close()
        slot.process, slot.ready, slot.serving, slot.due = process, reader, False, None
        logger.info("Started worker process [%s]", process.pid)

    def _read_ready(self, slot: _Slot) -> None:
        if slot.ready is None or not slot.ready.poll():
            return
        try:
            slot.ready.recv()
        except (EOFError, OSError):
            pass  # the worker ended before it served; its sentinel tells the rest
        else:
            slot.serving, slot.serving_since, slot.startup_failures = True, time.monotonic(), 0
        slot.ready.close()
        slot.ready = None

    def _died(self, slot: _Slot) -> bool:
        """Account for ``slot``'s dead worker and schedule its replacement; False: give up."""
        assert slot.process is not None
        process = slot.process
        process.join()
        self._read_ready(slot)  # it may have served and died within one wait
        if slot.ready is not None:
            slot.ready.close()
            slot.ready = None
        slot.process = None
        now = time.monotonic()
        if not slot.serving:
            slot.startup_failures += 1
            logger.error(
                "Worker process [%s] exited with %s before it served (%d of %d attempts)",
                process.pid,
                process.exitcode,
                slot.startup_failures,
                self.startup_attempts,
            )
            if slot.startup_failures >= self.startup_attempts:
                logger.error("Giving up: a worker cannot start")
                return False
            slot.due = now + self._delay(slot.startup_failures)
            return True
        if now - slot.serving_since >= self.stable_after_s:
            slot.crashes = 0
        slot.crashes += 1
        delay = 0.0 if slot.crashes == 1 else self._delay(slot.crashes - 1)
        logger.warning(
            "Worker process [%s] died (exit %s); replacing it in %.1f s",
            process.pid,
            process.exitcode,
            delay,
        )
        slot.due = now + delay
        return True

    def _delay(self, failures: int) -> float:
        return float(min(self.backoff_s * 2 ** (failures - 1), self.backoff_max_s))

    def _stop(self) -> None:
        """SIGTERM to every worker, SIGINT on each further signal to the parent; SIGKILL to
        those still running ``shutdown_grace + stop_margin_s`` later."""
        running = [s.process for s in self.slots if s.process is not None]
        for process in running:
            _send(process, signal.SIGTERM)
        handled = len(self._signals)
        deadline = time.monotonic() + self.shutdown_grace + self.stop_margin_s
        while running:
            left = deadline - time.monotonic()
            if left <= 0:
                for process in running:
                    logger.error("Worker process [%s] did not stop in time: killed", process.pid)
                    process.kill()
                    process.join()
                break
            wait([p.sentinel for p in running], min(left, 0.2))
            if len(self._signals) > handled:
                handled = len(self._signals)
                for process in running:
                    _send(process, signal.SIGINT)
            for process in [p for p in running if not p.is_alive()]:
                process.join()
                running.remove(process)
        for slot in self.slots:
            slot.process = None
            if slot.ready is not None:
                slot.ready.close()
                slot.ready = None


def claim(host: str, port: int) -> tuple[socket.socket, bool]:
    """The parent's socket for ``host:port``, and whether each worker binds its own.

    A plain bind first, so that an address anything listens on is refused (``OSError``), even
    another server with ``SO_REUSEPORT`` (a second loss-service on the same port would otherwise
    join the first's group and share its connections). Then, where it balances, the reuse-port
    socket that holds the port without listening (allowed beside the plain one: both have
    ``SO_REUSEADDR`` and neither listens); else the plain socket, which all workers share."""
    plain = bind(host, port, reuse_port=False)
    if not reuse_port_balances():
        return plain, False
    try:
        held = bind(host, plain.getsockname()[1], reuse_port=True)
    except OSError:
        return plain, False  # this kernel refuses the option
    plain.close()
    return held, True


def serve(spec: WorkerSpec, workers: int) -> int:
    """Serve ``spec`` with ``workers`` processes until SIGTERM/SIGINT: 0 after a clean stop, 1
    when a worker cannot start, 2 (with one ``loss-service: ...`` line) when the address cannot
    be bound. ``spec.reuse_port`` is decided here: each worker binds its own socket where
    ``SO_REUSEPORT`` balances, else all serve one socket bound here."""
    # Configures logging in the parent as in the workers.
    uvicorn.Config(spec.app_factory, log_level=spec.log_level, log_config=spec.log_config)
    try:
        held, reuse_port = claim(spec.host, spec.port)
    except OSError as exc:
        print(f"loss-service: cannot listen on {spec.host}:{spec.port}: {exc}", file=sys.stderr)
        return 2
    held.set_inheritable(True)
    port = held.getsockname()[1]
    spec = replace(spec, port=port, reuse_port=reuse_port)
    how = "a socket each (SO_REUSEPORT)" if reuse_port else "one shared socket"
    logger.info(
        "Uvicorn running on http://%s:%d with %d workers, %s (Press CTRL+C to quit)",
        f"[{spec.host}]" if ":" in spec.host else spec.host,
        port,
        workers,
        how,
    )
    with held:
        shared = None if reuse_port else held
        return Supervisor(
            workers, serve_worker, (spec, shared), shutdown_grace=spec.shutdown_grace
        ).run()


def _send(process: BaseProcess, sig: int) -> None:
    if process.pid is not None and process.exitcode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass
