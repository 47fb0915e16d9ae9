"""Command line: ``loss-service serve --host H --port P`` (also ``python -m service``).

One worker (the default) serves in this process, from an app built here. ``--workers N`` (or
``LOSS_SERVICE_WORKERS``; ``auto`` is one per usable CPU) hands the port to our supervisor
(``service.supervisor``), which spawns N workers that each build the app from the factory's
import string and the environment, each on its own ``SO_REUSEPORT`` socket on Linux, and
replaces any that dies; see ``service.workers``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from service.device import DeviceUnavailable, resolve_device
from service.observability.logs import log_config
from service.settings import Settings, get_settings
from service.workers import prepare_environment, worker_count

#: The app factory's import string: how uvicorn's spawned workers find the app.
APP_FACTORY = "service.app:create_app"


def main(argv: Sequence[str] | None = None, app_factory: str = APP_FACTORY) -> int:
    """Serve until SIGTERM or SIGINT; 0 after a clean shutdown, 2 when start-up is refused (the
    device, the address), 1 when workers cannot start.
    ``app_factory`` names a ``create_app(settings=None)`` (tests name one with hooks)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "serve":
        args = args[1:]
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="loss-service", description="Serve PyTorch losses over HTTP."
    )
    parser.add_argument("--host", default=settings.host, help="interface (LOSS_SERVICE_HOST)")
    parser.add_argument("--port", type=int, default=settings.port, help="port (LOSS_SERVICE_PORT)")
    parser.add_argument("--device", default=settings.device, help="device (LOSS_SERVICE_DEVICE)")
    parser.add_argument(
        "--workers",
        type=_workers_arg,
        default=settings.workers,
        help="worker processes, or 'auto' for one per usable CPU (LOSS_SERVICE_WORKERS)",
    )
    ns = parser.parse_args(args)
    settings = settings.model_copy(
        update={"host": ns.host, "port": ns.port, "device": ns.device, "workers": ns.workers}
    )
    workers = worker_count(settings.workers)

    import uvicorn
    from uvicorn.importer import import_from_string

    if workers > 1:
        # Once, here: a device that does not exist would otherwise fail in every worker, and
        # the supervisor would stop (or respawn) them with a traceback each.
        try:
            resolve_device(settings.device)
        except DeviceUnavailable as exc:
            return refuse(exc)
        prepare_environment(settings)
        from service import supervisor

        spec = supervisor.WorkerSpec(
            app_factory=app_factory,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=log_config(settings),
            shutdown_grace=settings.shutdown_grace,
            reuse_port=True,
        )
        return supervisor.serve(spec, workers)

    prepare_environment(settings)
    factory: Callable[[Settings], Any] = import_from_string(app_factory)
    try:
        app = factory(settings)
    except DeviceUnavailable as exc:
        return refuse(exc)
    stop_quietly_after_shutdown()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # One format for uvicorn's lines and the service's; the access lines are the service's
        # own (service.observability.requests), so uvicorn's are off.
        log_config=log_config(settings),
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace,
    )
    return 0


def refuse(exc: DeviceUnavailable) -> int:
    """The one line start-up stops with, and its status."""
    print(f"loss-service: {exc}", file=sys.stderr)
    return 2


def _workers_arg(text: str) -> int | str:
    """``--workers``: a positive count or ``auto``, refused by argparse otherwise."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or 'auto', got {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {count}")
    return count


def stop_quietly_after_shutdown() -> None:
    """Make SIGTERM and SIGINT end the process with status 0 once uvicorn has shut down.

    uvicorn handles both itself while serving (stop accepting, let in-flight requests finish
    within ``timeout_graceful_shutdown``, run the lifespan's shutdown), then restores the
    previous handlers and raises the signal again; with the default handlers still in place
    that second delivery would kill the process (status -15) or raise KeyboardInterrupt after
    a clean shutdown. Handlers that ignore it let ``main`` return 0. (With several workers the
    supervisor in this process installs its own handlers and returns after the workers end.)"""

    def already_handled(signum: int, frame: FrameType | None) -> None:
        return None

    signal.signal(signal.SIGTERM, already_handled)
    signal.signal(signal.SIGINT, already_handled)


if __name__ == "__main__":
    raise SystemExit(main())
