"""After a burst of concurrent large JSON requests, a live server gives the memory back: its
resident set (VmRSS in /proc) is within 100 MB of the level before the burst within 10 s.

Without the idle trim (``service.memory.IdleTrim``) glibc keeps the freed blocks of the burst:
measured with 64 such requests, RSS stayed about 400 MB up. The burst here is one full house
(``MAX_CONCURRENCY`` + ``MAX_QUEUE`` requests, all admitted) of 256x4000 logits, about 11 MB each,
and the test checks that RSS really rose by more than the margin, so that the return it then
sees is the trim's doing."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from tests.server import live_server
from tests.test_memory import glibc

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not glibc(), reason="needs glibc")]

CONCURRENCY = 4
QUEUE = 28
BURST = CONCURRENCY + QUEUE
MARGIN_MB = 100
WITHIN_S = 10


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match is not None
    return int(match.group(1)) / 1024


def body() -> bytes:
    rng = np.random.default_rng(20261201)
    logits = (rng.standard_normal((256, 4000)) * 3).astype(np.float32)
    target = rng.integers(0, 4000, 256)
    return orjson.dumps({"input": logits, "target": target}, option=orjson.OPT_SERIALIZE_NUMPY)


def test_memory_goes_back_after_a_burst_of_large_requests() -> None:
    raw = body()
    env = {
        "LOSS_SERVICE_LOG_LEVEL": "warning",
        "LOSS_SERVICE_MAX_CONCURRENCY": str(CONCURRENCY),
        "LOSS_SERVICE_MAX_QUEUE": str(QUEUE),
    }
    headers = {"content-type": "application/json"}
    with live_server(env=env) as server, ThreadPoolExecutor(BURST) as pool:
        url = server.url + "/v1/losses/cross_entropy"
        pid = server.process.pid

        def post() -> int:
            return httpx.post(url, content=raw, headers=headers, timeout=120).status_code

        assert post() == 200  # one of the kind first: imports and first-use pools are paid
        time.sleep(WITHIN_S / 5)
        before = rss_mb(pid)
        futures = [pool.submit(post) for _ in range(BURST)]
        peak = before
        while not all(f.done() for f in futures):
            peak = max(peak, rss_mb(pid))
            time.sleep(0.01)
        assert [f.result() for f in futures] == [200] * BURST
        ended = time.monotonic()
        assert peak - before > 2 * MARGIN_MB, f"the burst raised RSS by {peak - before:.0f} MB only"
        while (above := rss_mb(pid) - before) > MARGIN_MB:
            assert time.monotonic() - ended < WITHIN_S, (
                f"RSS still {above:.0f} MB above its level before the burst "
                f"{WITHIN_S} s after it (peak {peak - before:.0f} MB above)"
            )
            time.sleep(0.1)
