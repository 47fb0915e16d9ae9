"""The stages of one computation, timed where someone asks (the benchmark's stage table).

``Dataplane.compute_json_timed`` and the losses' own small paths call ``clock.lap(stage)`` at
the end of each stage when they are handed a ``StageClock``; without one (every request the
service answers) they only test for ``None``. A lap charges the time since the previous lap to its
stage, so the stages of one computation add up to its whole time, and each is measured in
place, after the stages before it, rather than alone in a tight loop (where caches and branch
predictors flatter it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: The data plane's stages, in order. ``validate`` holds the loss's own checks (``prepare``)
#: beside the parameters' validation; ``reference`` holds the comparison with torch's value.
STAGES = ("parse", "validate", "torch", "reference", "warnings", "serialise")


class StageClock:
    """Nanoseconds spent in each stage, over any number of computations."""

    __slots__ = ("_last", "now", "spent")

    def __init__(self, now: Callable[[], int] = time.perf_counter_ns) -> None:
        self.now = now
        """The clock read, in ns: wall time by default; ``time.thread_time_ns`` counts only this
        thread's CPU time, which a machine shared with other work disturbs less."""
        self.spent: dict[str, int] = {}
        self._last = now()

    def start(self) -> None:
        """A computation begins: what came before is charged to no stage."""
        self._last = self.now()

    def lap(self, stage: str) -> None:
        now = self.now()
        self.spent[stage] = self.spent.get(stage, 0) + now - self._last
        self._last = now
