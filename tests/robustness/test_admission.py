"""``Admission`` on its own: slots, queue, time limit and the accounting that must never leak.

Computations block on ``threading.Event``s the test sets, so nothing depends on timing except
the time limits under test, which only ever expire (never race a computation)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from service.api.admission import Admission
from service.errors import Overloaded, TimedOut

pytestmark = pytest.mark.anyio

LONG = 30.0  # a time limit no test reaches
SHORT = 0.2  # a time limit a blocked computation always passes


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition another thread makes true (polled; fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.002)


class Gate:
    """A computation that blocks until released, and counts how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.started = 0
        self.order: list[int] = []

    def job(self, tag: int = 0) -> Callable[[], int]:
        def run() -> int:
            with self.lock:
                self.running += 1
                self.started += 1
                self.peak = max(self.peak, self.running)
                self.order.append(tag)
            try:
                assert self.release.wait(LONG)
                return tag
            finally:
                with self.lock:
                    self.running -= 1

        return run


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.release.set()  # never leave a worker blocked


def admission(slots: int = 2, queue: int = 2, timeout: float = LONG) -> Admission:
    return Admission(slots=slots, queue=queue, timeout=timeout, retry_after=3)


async def test_returns_the_result_and_frees_the_slot() -> None:
    a = admission()
    assert await a.run(lambda: 6 * 7) == 42
    assert a.busy == 0


@pytest.mark.parametrize("exc", [ValueError("bad"), MemoryError(), KeyError("k")], ids=repr)
async def test_exceptions_reach_the_caller_and_free_the_slot(exc: Exception) -> None:
    def fail() -> None:
        raise exc

    a = admission()
    with pytest.raises(type(exc)):
        await a.run(fail)
    assert a.busy == 0


async def test_at_most_slots_run_and_the_queue_runs_in_order(gate: Gate) -> None:
    a = admission(slots=2, queue=4)
    tasks = [asyncio.create_task(a.run(gate.job(i))) for i in range(6)]
    await until(lambda: gate.started == 2 and a.waiting == 4)
    assert gate.peak == 2
    gate.release.set()
    assert await asyncio.gather(*tasks) == list(range(6))
    assert gate.peak == 2
    assert gate.order[2:] == [2, 3, 4, 5]
    assert (a.busy, a.waiting) == (0, 0)


async def test_a_full_queue_refuses_at_once_with_retry_after(gate: Gate) -> None:
    a = admission(slots=1, queue=1)
    running = asyncio.create_task(a.run(gate.job()))
    queued = asyncio.create_task(a.run(gate.job()))
    await until(lambda: gate.started == 1 and a.waiting == 1)
    started = time.monotonic()
    with pytest.raises(Overloaded) as info:
        await a.run(gate.job())
    assert time.monotonic() - started < 1.0
    assert info.value.retry_after == 3
    assert info.value.status == 503
    gate.release.set()
    await asyncio.gather(running, queued)
    assert a.busy == 0


async def test_waiting_past_the_time_limit_is_refused_without_computing(gate: Gate) -> None:
    a = admission(slots=1, queue=4, timeout=SHORT)
    running = asyncio.create_task(a.run(gate.job()))
    await until(lambda: gate.started == 1)
    with pytest.raises(Overloaded, match="no computation slot became free"):
        await a.run(gate.job())
    assert gate.started == 1
    assert a.waiting == 0
    with pytest.raises(TimedOut):
        await running
    gate.release.set()
    await until(lambda: a.busy == 0)


async def test_a_timed_out_computation_keeps_its_slot_until_it_ends(gate: Gate) -> None:
    a = admission(slots=1, queue=0, timeout=SHORT)
    with pytest.raises(TimedOut) as info:
        await a.run(gate.job())
    assert info.value.status == 504
    assert a.busy == 1  # still running in its thread, still counted
    with pytest.raises(Overloaded):
        await a.run(lambda: 1)
    gate.release.set()
    await until(lambda: a.busy == 0)
    assert await a.run(lambda: 1) == 1


async def test_a_cancelled_waiter_leaks_nothing(gate: Gate) -> None:
    a = admission(slots=1, queue=2)
    running = asyncio.create_task(a.run(gate.job(0)))
    await until(lambda: gate.started == 1)
    cancelled = asyncio.create_task(a.run(gate.job(1)))
    kept = asyncio.create_task(a.run(gate.job(2)))
    await until(lambda: a.waiting == 2)
    cancelled.cancel()
    await until(lambda: a.waiting == 1)
    gate.release.set()
    assert list(await asyncio.gather(running, kept)) == [0, 2]
    assert gate.order == [0, 2]
    assert (a.busy, a.waiting) == (0, 0)


async def test_a_cancelled_caller_leaves_the_computation_counted(gate: Gate) -> None:
    a = admission(slots=1, queue=0)
    caller = asyncio.create_task(a.run(gate.job()))
    await until(lambda: gate.started == 1)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert a.busy == 1
    gate.release.set()
    await until(lambda: a.busy == 0)


@pytest.mark.parametrize(("slots", "queue"), [(1, 0), (2, 3), (4, 32)])
async def test_the_gate_admits_slots_plus_queue(slots: int, queue: int) -> None:
    a = admission(slots=slots, queue=queue)
    assert [a.admit() for _ in range(slots + queue)] == [True] * (slots + queue)
    assert not a.admit()
    a.leave()
    assert a.admit()


async def test_close_then_run_again() -> None:
    a = admission()
    assert await a.run(lambda: 1) == 1
    a.close()
    assert await a.run(lambda: 2) == 2


async def test_context_variables_reach_the_worker() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("request-7")
    a = admission()
    assert await a.run(var.get) == "request-7"


async def test_many_short_computations_keep_the_books(gate: Gate) -> None:
    """A burst larger than slots plus queue: every call either computes or is refused."""
    a = admission(slots=2, queue=3)
    gate.release.set()
    calls: list[Awaitable[Any]] = [a.run(gate.job(i)) for i in range(50)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(o == i or isinstance(o, Overloaded) for i, o in enumerate(outcomes))
    assert any(o == i for i, o in enumerate(outcomes))
    assert (a.busy, a.waiting) == (0, 0)
