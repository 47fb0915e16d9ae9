"""``python -m tests.observability.multiworker --host H --port P --workers N``: the service under
uvicorn's multiprocess supervisor, the way several workers serve it, prepared as the parent
process must (the metrics directory made and cleaned, then handed to the workers)."""

from __future__ import annotations

import argparse

import uvicorn

from service.observability.logs import log_config
from service.observability.metrics import prepare_multiprocess_dir
from service.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    settings = get_settings()
    prepare_multiprocess_dir(settings.metrics_dir)
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=log_config(settings),
        access_log=False,
    )


if __name__ == "__main__":  # spawned workers import this module again; only the parent serves
    main()
