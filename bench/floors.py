"""Floors measured in this process, and the alternating timer that compares a figure with one."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import orjson


def timed_pair(
    fn: Callable[[], object], floor: Callable[[], object] | None, rounds: int
) -> tuple[float, float]:
    """Median wall times of ``fn`` and of its ``floor``, measured alternately, so that a burst
    of load from elsewhere on a shared machine lands on both rather than on one of them."""
    fn()
    if floor is not None:
        floor()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for f, out in ((fn, times[0]), (floor, times[1])):
            if f is None:
                continue
            start = time.perf_counter()
            f()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1]) if times[1] else 0.0


def parse_floor(raw: bytes) -> Callable[[], object]:
    """``orjson.loads`` + ``np.asarray`` of the logits: what parsing into Python floats costs."""

    def run() -> object:
        return np.asarray(orjson.loads(raw)["input"])

    return run


def compute_floor(
    logits: npt.NDArray[np.float32], target: npt.NDArray[np.int64]
) -> Callable[[], object]:
    """torch's cross-entropy plus the service's NumPy reference on the same arrays, in this
    process: what the binary path cannot avoid computing. The reference's part includes
    ``prepare`` (the float64 copy of the logits it works on, the checks of the targets)."""
    import torch

    from service import losses
    from service.losses import registry
    from service.losses.cross_entropy import CrossEntropyParams

    losses.load()
    torch.set_num_threads(1)  # as the service runs by default (settings.torch_threads)
    loss = registry.get("cross_entropy")
    assert loss is not None
    params = CrossEntropyParams.model_validate({"input": logits, "target": target})
    x, y = torch.from_numpy(logits), torch.from_numpy(target)

    def run() -> object:
        with torch.inference_mode():
            torch.nn.functional.cross_entropy(x, y)
        return loss.reference(params, loss.prepare(params, "float32"), frozenset())

    return run
