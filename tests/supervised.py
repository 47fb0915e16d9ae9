"""``python -m tests.supervised MODE DIR WORKERS``: ``service.supervisor.Supervisor`` running toy
workers (no app, no socket) that leave files in DIR, so that tests see what the supervisor did:
how many workers it started, when, which got SIGTERM, and the status it returned.

Every worker writes ``start-<pid>-<monotonic time>`` when it starts. The modes:

- ``steady``: serves until SIGTERM, then writes ``term-<pid>`` and exits 0;
- ``dies_at_start``: exits 3 before it serves (a broken app);
- ``dies_once``: the first worker to start dies 0.3 s after it serves; every later one is steady;
- ``crash_loop``: every worker dies 0.2 s after it serves;
- ``stubborn``: serves and ignores SIGTERM (the supervisor must kill it).

The supervisor's backoff is 0.2 s here (doubling, at most 0.8 s) so tests stay short."""

from __future__ import annotations

import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType

from service.supervisor import Supervisor, notify_ready

BACKOFF_S = 0.2
BACKOFF_MAX_S = 0.8


def _started(directory: Path) -> None:
    (directory / f"start-{os.getpid()}-{time.monotonic():.3f}").touch()


def _on_sigterm_leave_a_file(directory: Path) -> None:
    def on_term(signum: int, frame: FrameType | None) -> None:
        (directory / f"term-{os.getpid()}").touch()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)


def _serve_until_sigterm(ready: Connection) -> None:
    notify_ready(ready)
    while True:
        time.sleep(0.05)


def steady(ready: Connection, directory: Path) -> None:
    _on_sigterm_leave_a_file(directory)  # before the start file: tests signal once they see it
    _started(directory)
    _serve_until_sigterm(ready)


def dies_at_start(ready: Connection, directory: Path) -> None:
    _started(directory)
    sys.exit(3)


def dies_once(ready: Connection, directory: Path) -> None:
    _on_sigterm_leave_a_file(directory)
    _started(directory)
    try:
        (directory / "died-once").open("x").close()
    except FileExistsError:
        _serve_until_sigterm(ready)
    notify_ready(ready)
    time.sleep(0.3)
    os._exit(1)


def crash_loop(ready: Connection, directory: Path) -> None:
    _started(directory)
    notify_ready(ready)
    time.sleep(0.2)
    os._exit(1)


def stubborn(ready: Connection, directory: Path) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _started(directory)
    notify_ready(ready)
    while True:
        time.sleep(0.05)


MODES = {f.__name__: f for f in (steady, dies_at_start, dies_once, crash_loop, stubborn)}


def main(argv: list[str]) -> int:
    """``MODE DIR WORKERS [GRACE]``: the supervisor's status (GRACE: its shutdown grace, 5 s)."""
    mode, directory, workers, *grace = argv
    supervisor = Supervisor(
        int(workers),
        MODES[mode],
        (Path(directory),),
        shutdown_grace=int(grace[0]) if grace else 5,
        backoff_s=BACKOFF_S,
        backoff_max_s=BACKOFF_MAX_S,
        stop_margin_s=2.0,
    )
    status = supervisor.run()
    (Path(directory) / f"status-{status}").touch()
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
