"""Command line: ``loss-service serve --host H --port P`` (also ``python -m service``)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from service.device import DeviceUnavailable
from service.observability.logs import log_config
from service.settings import get_settings


def main(argv: Sequence[str] | None = None) -> int:
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
    ns = parser.parse_args(args)
    settings = settings.model_copy(update={"host": ns.host, "port": ns.port, "device": ns.device})

    import uvicorn

    from service.app import create_app

    try:
        app = create_app(settings)
    except DeviceUnavailable as exc:
        print(f"loss-service: {exc}", file=sys.stderr)
        return 2
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


def stop_quietly_after_shutdown() -> None:
    """Make SIGTERM and SIGINT end the process with status 0 once uvicorn has shut down.

    uvicorn handles both itself while serving (stop accepting, let in-flight requests finish
    within ``timeout_graceful_shutdown``, run the lifespan's shutdown), then restores the
    previous handlers and raises the signal again; with the default handlers still in place
    that second delivery would kill the process (status -15) or raise KeyboardInterrupt after
    a clean shutdown. Handlers that ignore it let ``main`` return 0."""

    def already_handled(signum: int, frame: FrameType | None) -> None:
        return None

    signal.signal(signal.SIGTERM, already_handled)
    signal.signal(signal.SIGINT, already_handled)


if __name__ == "__main__":
    raise SystemExit(main())
