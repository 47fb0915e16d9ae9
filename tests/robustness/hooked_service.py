"""``python -m tests.robustness.hooked_service``: the real service, with test hooks in its data
plane, for tests that need computations to last (load) or to be in flight on cue (shutdown).

- ``LOSS_SERVICE_TEST_DELAY``: seconds each computation sleeps before computing.
- ``LOSS_SERVICE_TEST_HOLD_DIR``: each computation writes ``started-<n>`` there, then waits for a
  file named ``release`` to appear before computing.

Everything else is ``python -m service``; the computation itself is the real one.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

from service.cli import main
from service.dataplane import Dataplane

HOLD_LIMIT = 120.0


def install_hooks() -> None:
    # Held or delayed computations must run in worker threads, as large ones do: tiny bodies
    # are otherwise computed on the event loop (service.api.inline), which a hold would block.
    os.environ.setdefault("LOSS_SERVICE_INLINE_MAX_BYTES", "0")
    delay = float(os.environ.get("LOSS_SERVICE_TEST_DELAY", "0"))
    hold = os.environ.get("LOSS_SERVICE_TEST_HOLD_DIR")
    counter = itertools.count()
    compute_json = Dataplane.compute_json

    def hooked(self: Dataplane, name: str, raw: bytes | bytearray) -> dict[str, Any]:
        if hold:
            directory = Path(hold)
            (directory / f"started-{next(counter)}").touch()
            deadline = time.monotonic() + HOLD_LIMIT
            while not (directory / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        if delay:
            time.sleep(delay)
        return compute_json(self, name, raw)

    Dataplane.compute_json = hooked  # type: ignore[method-assign]


if __name__ == "__main__":
    install_hooks()
    raise SystemExit(main())
