"""What ``/proc`` says about a server process: CPU time and resident memory."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def status_kib(pid: int, key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    if match is None:
        raise RuntimeError(f"no {key} in /proc/{pid}/status")
    return int(match.group(1))


@contextlib.contextmanager
def peak_rss_growth(pid: int) -> Iterator[dict[str, float]]:
    """Measures how far the process's resident memory rises above where it stood on entry:
    ``VmHWM`` after resetting it (``clear_refs``), and a 1 ms sampler as a cross-check."""
    out: dict[str, float] = {}
    base = status_kib(pid, "VmRSS")
    reset = True
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        reset = False
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                peak[0] = max(peak[0], status_kib(pid, "VmRSS"))
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield out
    finally:
        stop.set()
        sampler.join()
        hwm = status_kib(pid, "VmHWM") if reset else peak[0]
        out["growth_bytes"] = max(hwm, peak[0]) * 1024.0 - base * 1024.0
        out["method"] = 1.0 if reset else 0.0


def worker_pids(parent: int) -> list[int]:
    """The worker processes of a ``--workers N`` server: the children its multiprocessing
    supervisor spawned (not its resource tracker), found in /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"multiprocessing.spawn" in cmdline:
            found.append(int(entry.name))
    return sorted(found)
