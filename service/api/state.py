"""What the routes share: the data plane, the settings, and whether the device is warm."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from service.dataplane import Dataplane
from service.settings import Settings

log = logging.getLogger("service.api")

T = TypeVar("T")


@dataclass
class ServiceState:
    settings: Settings
    dataplane: Dataplane
    ready: bool = False
    warm_up_error: str | None = None
    _warming: asyncio.Lock | None = field(default=None, repr=False)

    async def ensure_ready(self) -> bool:
        """Warm the device up once (in a worker thread); True when it worked."""
        if self.ready:
            return True
        if self._warming is None:
            self._warming = asyncio.Lock()
        async with self._warming:
            if not self.ready:
                try:
                    await run_in_threadpool(self.dataplane.warm_up)
                except Exception as exc:  # the device is unusable; readiness says so
                    log.exception("warm-up failed")
                    self.warm_up_error = f"{type(exc).__name__}: {exc}"
                    return False
                self.ready = True
                self.warm_up_error = None
        return True

    async def run(self, fn: Callable[[], T]) -> T:
        """Run blocking work (parsing, compute, serialisation) off the event loop."""
        return await run_in_threadpool(fn)


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state
