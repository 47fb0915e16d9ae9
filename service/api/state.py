"""What the routes share: the data plane, the settings, admission control, and whether the
device is warm and trusted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import anyio.to_thread
from fastapi import Request

from service.api.admission import Admission
from service.dataplane import Dataplane
from service.errors import DeviceError, Unavailable
from service.memory import IdleTrim
from service.settings import Settings

log = logging.getLogger("service.api")

T = TypeVar("T")


@dataclass
class ServiceState:
    settings: Settings
    dataplane: Dataplane
    ready: bool = False
    warm_up_error: str | None = None
    device_suspect: bool = False
    """Set when a computation failed on the device; the next readiness check re-probes it."""
    admission: Admission = field(init=False)
    trim: IdleTrim = field(init=False)
    """Returns large requests' freed memory to the system once the service is idle."""
    _warming: asyncio.Lock | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.admission = Admission(
            slots=s.max_concurrency,
            queue=s.max_queue,
            timeout=s.request_timeout,
            retry_after=s.retry_after,
        )
        admission = self.admission
        self.trim = IdleTrim(lambda: admission.admitted > 0, delay=s.malloc_trim_delay)

    async def ensure_ready(self) -> bool:
        """Warm the device up (in a worker thread), again after a device error; True when it
        worked. A probe that hangs counts as a failure after the request time limit."""
        if self.ready and not self.device_suspect:
            return True
        if self._warming is None:
            self._warming = asyncio.Lock()
        async with self._warming:
            if self.ready and not self.device_suspect:
                return True
            try:
                await asyncio.wait_for(
                    anyio.to_thread.run_sync(self.dataplane.warm_up, abandon_on_cancel=True),
                    timeout=self.settings.request_timeout,
                )
            except Exception as exc:  # the device is unusable; readiness says so
                log.exception("device probe failed")
                self.ready = False
                self.warm_up_error = f"{type(exc).__name__}: {exc}"
                return False
            if self.device_suspect:
                log.info("device probe after a device error succeeded")
            self.ready = True
            self.device_suspect = False
            self.warm_up_error = None
        return True

    async def run(self, fn: Callable[[], T]) -> T:
        """Run blocking work (parsing, compute, serialisation) off the event loop, under
        admission control: ``Overloaded`` (503) past the bounds, ``TimedOut`` (504) past the
        time limit, ``DeviceError`` (503) marking the device for a re-probe."""
        with self._faults():
            return await self.admission.run(fn)

    def run_inline(self, fn: Callable[[], T]) -> T:
        """Run provably tiny work on the event loop itself (``service.api.inline``), with the
        bookkeeping of ``run`` but no admission slot: work on the loop runs one at a time, so it
        cannot pile up, and it ends long before any time limit."""
        # the same handling as ``_faults``, without a context manager's cost per request
        try:
            return fn()
        except DeviceError:
            self.device_suspect = True
            raise
        except MemoryError:
            log.error("out of host memory computing a request")
            raise Unavailable(
                "the server ran out of memory computing this request", retry_after=None
            ) from None

    @contextlib.contextmanager
    def _faults(self) -> Iterator[None]:
        try:
            yield
        except DeviceError:
            self.device_suspect = True
            raise
        except MemoryError:
            log.error("out of host memory computing a request")
            raise Unavailable(
                "the server ran out of memory computing this request", retry_after=None
            ) from None

    def close(self) -> None:
        self.admission.close()
        self.trim.close()


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state
