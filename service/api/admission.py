"""Admission control: a bounded number of computations, a bounded queue, a time limit.

Overload must cost the service nothing and the client no waiting in the dark: past the bounds a
request is refused at once (``Overloaded``: 503 with ``Retry-After``), a request never waits for
a slot longer than the time limit, and a computation that runs past it is answered ``TimedOut``
(504). A Python thread cannot be killed, so a timed-out computation keeps its slot until it
really ends: the bound on work in progress holds even when clients give up.

Two counts, both bounded:

- ``busy``: computations running in the pool's threads (at most ``slots``), abandoned ones
  included; the rest wait in a FIFO of at most ``queue`` places.
- ``admitted``: requests inside the service (reading their body, waiting or computing), at most
  ``slots + queue``. The ASGI gate (``service.api.middleware``) counts them before a body is
  read, so the memory that queued bodies hold is bounded too.

The pool is ``slots`` daemon threads: at shutdown a computation still running past the grace
period must not keep the process alive, which the standard library's executors (joined at
exit) would.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any, Generic, TypeVar

from service.errors import Overloaded, TimedOut

log = logging.getLogger("service.admission")

T = TypeVar("T")


@dataclass(frozen=True)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


@dataclass(frozen=True)
class _Job(Generic[T]):
    fn: Callable[[], T]
    context: contextvars.Context
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


class Admission:
    """Runs blocking computations in ``slots`` threads with a queue of ``queue`` places.

    Counters are guarded by a lock because slots are released from worker threads; waiters are
    woken on their own event loop."""

    def __init__(
        self, *, slots: int, queue: int, timeout: float, retry_after: int, name: str = "compute"
    ) -> None:
        self.slots = slots
        self.queue = queue
        self.timeout = timeout
        self.retry_after = retry_after
        self.name = name
        self.busy = 0
        self.admitted = 0
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()
        self._jobs: SimpleQueue[_Job[Any] | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []  # the workers reading ``self._jobs``
        self.watcher: Callable[[int, int], None] | None = None
        """Called with ``(busy, waiting)`` whenever either changes, under the lock (metrics)."""

    def _changed(self) -> None:
        if self.watcher is not None:
            self.watcher(self.busy, len(self._waiters))

    # -- the gate: requests inside the service --------------------------------------------------

    @property
    def capacity(self) -> int:
        """Requests admitted at once: one per slot plus one per queue place."""
        return self.slots + self.queue

    def admit(self) -> bool:
        """Count one more request in, or False (without counting) when the service is full."""
        with self._lock:
            if self.admitted >= self.capacity:
                return False
            self.admitted += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.admitted -= 1

    def overloaded(self, why: str) -> Overloaded:
        return Overloaded(f"{why}; retry after {self.retry_after} s", retry_after=self.retry_after)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    # -- computations ---------------------------------------------------------------------------

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread, within the time limit; raises ``Overloaded`` or
        ``TimedOut`` instead of letting the wait grow."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        await self._acquire(loop, deadline)
        done: asyncio.Future[T] = loop.create_future()
        try:
            self._submit(_Job(fn, contextvars.copy_context(), loop, done))
        except BaseException:
            self._release()
            raise
        try:
            finished, _ = await asyncio.wait({done}, timeout=max(0.0, deadline - loop.time()))
        finally:
            if not done.done():  # timed out or cancelled: nobody will read the outcome
                done.add_done_callback(_discard)
        if not finished:
            raise TimedOut(
                f"the computation ran past the time limit of {self.timeout:g} s; it was "
                "abandoned and its slot stays busy until it ends"
            )
        return done.result()

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        with self._lock:
            if self.busy < self.slots and not self._waiters:
                self.busy += 1
                self._changed()
                return
            if len(self._waiters) >= self.queue:
                raise self.overloaded(
                    f"all {self.slots} computation slots are busy and the queue of "
                    f"{self.queue} is full"
                )
            waiter = _Waiter(loop, loop.create_future())
            self._waiters.append(waiter)
            self._changed()
        try:
            await asyncio.wait_for(waiter.future, timeout=max(0.0, deadline - loop.time()))
        except BaseException as exc:
            holds_slot = False
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)  # never granted
                    self._changed()
                elif waiter.future.done() and not waiter.future.cancelled():
                    holds_slot = True  # granted just as we gave up
                else:
                    waiter.future.cancel()  # a grant is on its way; it passes the slot on
            if holds_slot:
                self._release()
            if isinstance(exc, asyncio.TimeoutError):
                raise self.overloaded(
                    f"no computation slot became free within the time limit of {self.timeout:g} s"
                ) from None
            raise

    def _release(self) -> None:
        """Give the slot to the oldest waiter, or free it. Called from any thread."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                try:
                    waiter.loop.call_soon_threadsafe(self._grant, waiter.future)
                    self._changed()
                    return
                except RuntimeError:  # its event loop is closed
                    continue
            self.busy -= 1
            self._changed()

    def _grant(self, future: asyncio.Future[None]) -> None:
        if future.done():  # the waiter gave up meanwhile
            self._release()
        else:
            future.set_result(None)

    # -- the pool -------------------------------------------------------------------------------

    def _submit(self, job: _Job[Any]) -> None:
        with self._lock:
            while len(self._threads) < self.slots:
                thread = threading.Thread(
                    target=self._work,
                    args=(self._jobs,),
                    name=f"{self.name}-{len(self._threads)}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
            self._jobs.put(job)

    def _work(self, jobs: SimpleQueue[_Job[Any] | None]) -> None:
        while (job := jobs.get()) is not None:
            try:
                outcome: tuple[bool, Any] = (True, job.context.run(job.fn))
            except BaseException as exc:
                outcome = (False, exc)
            finally:
                self._release()
            try:
                job.loop.call_soon_threadsafe(_settle, job.future, outcome)
            except RuntimeError:
                log.warning("a computation finished after its event loop closed")
            del job, outcome

    def close(self) -> None:
        """Let the workers end once idle; a computation still running ends with the process.
        A later ``run`` starts fresh workers on a fresh job queue."""
        with self._lock:
            threads, self._threads = self._threads, []
            jobs, self._jobs = self._jobs, SimpleQueue()
        for _ in threads:
            jobs.put(None)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _discard(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned computation's exception, so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()
