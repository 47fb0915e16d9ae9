"""``python -m tests.robustness.hooked_service``: the real service, with test hooks in its data
plane, for tests that need computations to last (load) or to be in flight on cue (shutdown).

- ``LOSS_SERVICE_TEST_DELAY``: seconds each computation sleeps before computing.
- ``LOSS_SERVICE_TEST_HOLD_DIR``: each computation writes ``started-<pid>-<n>`` there, then waits
  for a file named ``release`` to appear before computing.
- ``LOSS_SERVICE_TEST_FAIL_START_DIR``: the app factory writes ``attempt-<pid>`` there and raises,
  as a broken app does, so that no worker ever starts.
- ``LOSS_SERVICE_TEST_OOM_DIR``: while a file named ``oom`` lies there, the next cross-entropy
  torch computes removes it and runs out of device memory: a real one on CUDA (it asks for a
  petabyte, as ``tests/robustness/test_device_faults.py`` does), ``torch.OutOfMemoryError``
  raised on other devices (the GPU check, ``tests/gpu/check.py``).

Everything else is ``python -m service``; the computation itself is the real one. The hooks are
installed by this module's app factory, so that workers spawned by ``--workers N`` (which build
the app from the factory's import string) have them too.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI

from service import app
from service.cli import main
from service.dataplane import Dataplane
from service.settings import Settings

HOLD_LIMIT = 120.0


def create_app(settings: Settings | None = None) -> FastAPI:
    """``service.app.create_app`` with the hooks installed (once per process)."""
    fail_dir = os.environ.get("LOSS_SERVICE_TEST_FAIL_START_DIR")
    if fail_dir:
        (Path(fail_dir) / f"attempt-{os.getpid()}").touch()
        raise RuntimeError("LOSS_SERVICE_TEST_FAIL_START_DIR: this app never starts")
    install_hooks()
    return app.create_app(settings)


def install_hooks() -> None:
    if getattr(Dataplane.compute_json, "hooked", False):
        return
    oom_dir = os.environ.get("LOSS_SERVICE_TEST_OOM_DIR")
    if oom_dir:
        torch.nn.functional.cross_entropy = OutOfMemoryOnCue(Path(oom_dir) / "oom")
    delay = float(os.environ.get("LOSS_SERVICE_TEST_DELAY", "0"))
    hold = os.environ.get("LOSS_SERVICE_TEST_HOLD_DIR")
    counter = itertools.count()
    compute_json = Dataplane.compute_json

    def hooked(self: Dataplane, name: str, raw: bytes | bytearray) -> dict[str, Any]:
        if hold:
            directory = Path(hold)
            (directory / f"started-{os.getpid()}-{next(counter)}").touch()
            deadline = time.monotonic() + HOLD_LIMIT
            while not (directory / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        if delay:
            time.sleep(delay)
        return compute_json(self, name, raw)

    hooked.hooked = True  # type: ignore[attr-defined]
    Dataplane.compute_json = hooked  # type: ignore[method-assign]


class OutOfMemoryOnCue:
    """``torch.nn.functional.cross_entropy``, running out of device memory once per ``cue``."""

    def __init__(self, cue: Path) -> None:
        self.cue = cue
        self.original: Callable[..., torch.Tensor] = torch.nn.functional.cross_entropy

    def __call__(self, input: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.cue.exists():
            self.cue.unlink()
            if input.device.type == "cuda":
                torch.empty(1 << 50, dtype=torch.uint8, device=input.device)  # a petabyte
            raise torch.OutOfMemoryError(f"simulated out of memory on {input.device}")
        return self.original(input, *args, **kwargs)


if __name__ == "__main__":
    # Held or delayed computations must run in worker threads, as large ones do: tiny bodies
    # are otherwise computed on the event loop (service.api.inline), which a hold would block.
    # Set before the settings are read; spawned workers inherit it.
    os.environ.setdefault("LOSS_SERVICE_INLINE_MAX_BYTES", "0")
    raise SystemExit(main(app_factory="tests.robustness.hooked_service:create_app"))
