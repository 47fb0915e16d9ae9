"""Load generation: ``wrk`` where installed, else a slower keep-alive generator in threads."""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.servers import request


@dataclass
class Load:
    requests: int
    seconds: float
    errors: int
    tool: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk_script(body: bytes, directory: Path) -> Path:
    level = 0
    while b"]" + b"=" * level + b"]" in body:
        level += 1
    eq = "=" * level
    script = directory / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [{eq}[{body.decode()}]{eq}]\n"
    )
    return script


def parse_wrk(output: str) -> tuple[int, float, int]:
    """(requests, seconds, non-2xx-or-socket errors) from wrk's report."""
    done = re.search(r"(\d+) requests in ([\d.]+)(m?s)", output)
    if done is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    seconds = float(done.group(2)) / (1000 if done.group(3) == "ms" else 1)
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: .*?(\d+) timeout"):
        found = re.search(pattern, output)
        if found:
            errors += int(found.group(1))
    return int(done.group(1)), seconds, errors


def load(url: str, body: bytes, seconds: float, connections: int, workdir: Path) -> Load:
    """``wrk -t1 -c<connections>`` POSTing ``body``, or the Python load generator without wrk."""
    if have_wrk():
        script = wrk_script(body, workdir)
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
        n, secs, errors = parse_wrk(out.stdout)
        return Load(n, secs, errors, "wrk")
    return python_load(url, body, seconds, connections)


def python_load(url: str, body: bytes, seconds: float, connections: int) -> Load:
    """A keep-alive load generator in threads: slower than wrk (it shares the CPU with the
    server in Python), so its figures compare only with each other."""
    match = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    assert match is not None
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    counts = [0] * connections
    errors = [0] * connections
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        while time.monotonic() < stop:
            status, _, _ = request(
                port, "POST", path, body, {"Content-Type": "application/json"}, conn
            )
            counts[i] += 1
            errors[i] += status != 200
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Load(sum(counts), time.monotonic() - start, sum(errors), "python")
