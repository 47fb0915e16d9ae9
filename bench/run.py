"""loss-service benchmark: each figure beside a floor measured in the same run.

Run from the repository root: ``python bench/run.py`` (``make bench``), ``--help`` for options.
It starts the service, and for the small case the obvious service (``bench/obvious_service.py``),
on free loopback ports, then measures:

- small: the article's 3x3 ``cross_entropy`` body (breakdown and reference on) with
  ``wrk -t1 -c8``, against the obvious service in alternating rounds; the figure is the median
  ratio of requests per second (target >= 2). The server's CPU time per request is shown too: on
  a shared machine it is steadier than throughput.
- large JSON: 64x32000 float32 logits (about 22 MB) with class-index targets and
  ``reference: false``, end to end (send, compute, answer) against ``orjson.loads`` +
  ``np.asarray`` of the same body in this process (target <= 0.5 of it).
- large binary: the same logits through ``POST /v2/models/cross_entropy/infer`` with the binary
  tensor extension (reference on), against torch plus the NumPy reference on the same arrays in
  this process (target <= 1.5x). Skipped with a message where the endpoint answers 404.
- memory: peak resident memory growth of the server process while it serves one large request
  (``VmHWM`` reset through ``/proc/<pid>/clear_refs``, else sampled), as a multiple of the body
  (targets: 2.5x for JSON, 1.5x for binary; the obvious service's is shown for comparison).

Everything is bounded in time and requests and stays on 127.0.0.1. Timings are medians of
several rounds; the machine may be shared, so compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/run.py` from anywhere

HOST = "127.0.0.1"
CLASSES = 32000
ROWS = 64


# -- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"


@contextlib.contextmanager
def serve(
    name: str, cmd: Sequence[str], port: int, ready_path: str, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start ``cmd`` (which must listen on ``port``), wait for ``ready_path`` to answer 200,
    and stop it afterwards."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        list(cmd), cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    server = Server(name, proc, port)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"{name} exited with {proc.returncode}: {err[-2000:]}")
            with contextlib.suppress(OSError):
                if request(port, "GET", ready_path)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not become ready in 90 s")
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def service_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "service", "--host", HOST, "--port", str(port)]


def obvious_cmd(port: int) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "obvious_service.py"), "--port", str(port)]


SERVICE_ENV = {"LOSS_SERVICE_LOG_LEVEL": "warning"}


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    """One HTTP/1.1 exchange (on ``conn`` when given, kept alive)."""
    own = conn is None
    c = conn or http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, data, {k.lower(): v for k, v in r.getheaders()}
    finally:
        if own:
            c.close()


# -- /proc ----------------------------------------------------------------------------------


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


# -- load generation ------------------------------------------------------------------------


@dataclass
class Load:
    requests: int
    seconds: float
    errors: int
    tool: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


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
    if shutil.which("wrk"):
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


# -- bodies and floors ----------------------------------------------------------------------


def small_body() -> bytes:
    from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET

    return orjson.dumps({"input": ARTICLE_INPUT, "target": ARTICLE_TARGET})


def large_arrays(
    rows: int = ROWS, classes: int = CLASSES
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    rng = np.random.default_rng(20261127)
    logits = (rng.standard_normal((rows, classes)) * 3).astype(np.float32)
    return logits, rng.integers(0, classes, rows)


def large_json_body(logits: npt.NDArray[np.float32], target: npt.NDArray[np.int64]) -> bytes:
    """The JSON a client holding float32 logits sends (orjson writes float32's shortest form)."""
    body = {"input": logits, "target": target, "reference": False}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def large_binary_body(
    logits: npt.NDArray[np.float32], target: npt.NDArray[np.int64], reference: bool = True
) -> tuple[bytes, dict[str, str]]:
    """An Open Inference Protocol request with both inputs as binary tensors."""
    x = np.ascontiguousarray(logits, dtype="<f4").tobytes()
    y = np.ascontiguousarray(target, dtype="<i8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(logits.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(x)},
                },
                {
                    "name": "target",
                    "shape": list(target.shape),
                    "datatype": "INT64",
                    "parameters": {"binary_data_size": len(y)},
                },
            ],
            "parameters": {"reference": reference},
        }
    )
    headers = {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }
    return header + x + y, headers


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


# -- cases ----------------------------------------------------------------------------------


@dataclass
class Figure:
    case: str
    what: str
    value: float
    unit: str
    floor: float | None = None
    floor_what: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def small_case(args: argparse.Namespace, workdir: Path) -> list[Figure]:
    body = small_body()
    ours_port, obvious_port = free_port(), free_port()
    with (
        serve(
            "loss-service", service_cmd(ours_port), ours_port, "/v2/health/ready", SERVICE_ENV
        ) as ours,
        serve("obvious", obvious_cmd(obvious_port), obvious_port, "/docs") as obvious,
    ):
        check = request(ours.port, "POST", "/v1/losses/cross_entropy", body)
        answer = orjson.loads(check[1])
        if check[0] != 200 or not (answer["breakdown"] and answer["reference"]):
            raise RuntimeError(f"the small request did not compute its breakdown: {check}")
        ratios, cpu_ratios, rows = [], [], []
        for _ in range(args.rounds):
            measured = {}
            for server, path in ((obvious, "/cross_entropy"), (ours, "/v1/losses/cross_entropy")):
                cpu0 = cpu_seconds(server.pid)
                result = load(server.url(path), body, args.seconds, 8, workdir)
                cpu = cpu_seconds(server.pid) - cpu0
                if result.errors:
                    raise RuntimeError(f"{server.name}: {result.errors} failed requests")
                measured[server.name] = (result.rps, cpu / result.requests * 1e6, result.tool)
            ours_rps, ours_cpu, tool = measured["loss-service"]
            obvious_rps, obvious_cpu, _ = measured["obvious"]
            ratios.append(ours_rps / obvious_rps)
            cpu_ratios.append(obvious_cpu / ours_cpu)
            rows.append((obvious_rps, ours_rps, obvious_cpu, ours_cpu))
    ratio = statistics.median(ratios)
    obvious_rps = statistics.median(r[0] for r in rows)
    ours_rps = statistics.median(r[1] for r in rows)
    return [
        Figure(
            "small",
            f"3x3 cross_entropy, reference+breakdown, {tool} -t1 -c8",
            ours_rps,
            "req/s",
            obvious_rps,
            "obvious service",
            ratio,
            ">= 2x",
            ratio >= 2,
            note="per round: " + ", ".join(f"{r:.2f}x" for r in ratios),
        ),
        Figure(
            "small",
            "server CPU time per request",
            statistics.median(r[3] for r in rows),
            "us",
            statistics.median(r[2] for r in rows),
            "obvious service",
            statistics.median(cpu_ratios),
            "(shown: obvious / ours)",
            note="per round: " + ", ".join(f"{r:.2f}x" for r in cpu_ratios),
        ),
    ]


def large_cases(args: argparse.Namespace) -> list[Figure]:
    logits, target = large_arrays()
    raw = large_json_body(logits, target)
    binary, binary_headers = large_binary_body(logits, target)
    json_headers = {"Content-Type": "application/json"}
    figures = []
    port = free_port()
    with serve("loss-service", service_cmd(port), port, "/v2/health/ready", SERVICE_ENV) as ours:
        conn = http.client.HTTPConnection(HOST, port, timeout=120)

        def post_json() -> None:
            status, data, _ = request(
                port, "POST", "/v1/losses/cross_entropy", raw, json_headers, conn
            )
            if status != 200:
                raise RuntimeError(f"large JSON: {status} {data[:300]!r}")

        # memory first, on a server that has served nothing large yet
        with peak_rss_growth(ours.pid) as first:
            post_json()
        with peak_rss_growth(ours.pid) as second:
            post_json()
        e2e, floor = timed_pair(post_json, parse_floor(raw), args.large_rounds)
        mb = len(raw) / 1e6
        figures.append(
            Figure(
                "large JSON",
                f"64x32000 float32 ({mb:.1f} MB), reference off, end to end",
                e2e * 1e3,
                "ms",
                floor * 1e3,
                "orjson.loads + np.asarray",
                e2e / floor,
                "<= 0.5x",
                e2e / floor <= 0.5,
            )
        )
        figures.append(memory_figure("the large JSON", [first, second], len(raw), 2.5))

        status, data, _ = request(
            port, "POST", "/v2/models/cross_entropy/infer", binary, binary_headers
        )
        if status == 404:
            figures.append(
                Figure(
                    "large binary",
                    "POST /v2/models/cross_entropy/infer",
                    0,
                    "",
                    note="skipped: the endpoint answers 404 "
                    "(the Open Inference Protocol is not served by this build)",
                )
            )
        elif status != 200:
            raise RuntimeError(f"large binary: {status} {data[:300]!r}")
        else:

            def post_binary() -> None:
                code, body, _ = request(
                    port, "POST", "/v2/models/cross_entropy/infer", binary, binary_headers, conn
                )
                if code != 200:
                    raise RuntimeError(f"large binary: {code} {body[:300]!r}")

            e2e_binary, floor_binary = timed_pair(
                post_binary, compute_floor(logits, target), args.large_rounds
            )
            figures.append(
                Figure(
                    "large binary",
                    f"same logits, binary extension ({len(binary) / 1e6:.1f} MB), reference on",
                    e2e_binary * 1e3,
                    "ms",
                    floor_binary * 1e3,
                    "in-process torch + reference",
                    e2e_binary / floor_binary,
                    "<= 1.5x",
                    e2e_binary / floor_binary <= 1.5,
                )
            )
            figures.append(transport_figure(binary, binary_headers, e2e_binary, floor_binary))
        conn.close()
    if any(f.case == "large binary" and f.unit for f in figures):
        figures.append(binary_memory(logits, target))

    if not args.no_obvious_memory:
        port = free_port()
        obvious_body = orjson.dumps(
            {"input": logits, "target": target}, option=orjson.OPT_SERIALIZE_NUMPY
        )
        with serve("obvious", obvious_cmd(port), port, "/docs") as obvious:
            measured = []
            for _ in range(2):
                with peak_rss_growth(obvious.pid) as theirs:
                    status, data, _ = request(
                        port, "POST", "/cross_entropy", obvious_body, json_headers
                    )
                if status != 200:
                    raise RuntimeError(f"obvious service: {status} {data[:300]!r}")
                measured.append(theirs)
            figure = memory_figure("the same JSON", measured, len(obvious_body), None)
            figure.what = "for comparison, the obvious service: " + figure.what
            figures.append(figure)
    return figures


def sink_cmd(port: int) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "sink_service.py"), "--port", str(port)]


def transport_figure(
    body: bytes, headers: dict[str, str], e2e: float, compute_floor_s: float
) -> Figure:
    """The same body sent to an app that only reads it: what loopback and uvicorn cost before
    any decoding or computing. The service's own overhead is what remains of its time after
    this and the in-process computation."""
    port = free_port()
    with serve("sink", sink_cmd(port), port, "/"):
        conn = http.client.HTTPConnection(HOST, port, timeout=120)

        def post() -> None:
            code, data, _ = request(port, "POST", "/", body, headers, conn)
            if code != 200:
                raise RuntimeError(f"sink: {code} {data[:200]!r}")

        transport, _ = timed_pair(post, None, 15)
        conn.close()
    overhead = e2e - transport - compute_floor_s
    return Figure(
        "large binary",
        "transport only: the same body to a bare uvicorn app that just reads it",
        transport * 1e3,
        "ms",
        compute_floor_s * 1e3,
        "in-process torch + reference",
        transport / compute_floor_s,
        "",
        None,
        note=f"the service's time beyond transport and computation: {overhead * 1e3:.1f} ms",
    )


def binary_memory(logits: npt.NDArray[np.float32], target: npt.NDArray[np.int64]) -> Figure:
    """Peak growth of a fresh server's first two binary requests, with the reference off as
    for JSON (its float64 temporaries alone are twice a float32 body), then one with it on."""
    lean, lean_headers = large_binary_body(logits, target, reference=False)
    full, full_headers = large_binary_body(logits, target, reference=True)
    port = free_port()
    measured = []
    with serve("loss-service", service_cmd(port), port, "/v2/health/ready", SERVICE_ENV) as ours:
        for body, headers in ((lean, lean_headers), (lean, lean_headers), (full, full_headers)):
            with peak_rss_growth(ours.pid) as growth:
                code, data, _ = request(
                    port, "POST", "/v2/models/cross_entropy/infer", body, headers
                )
            if code != 200:
                raise RuntimeError(f"large binary: {code} {data[:300]!r}")
            measured.append(growth)
    figure = memory_figure("the large binary, reference off", measured[:2], len(lean), 1.5)
    figure.note += f"; a third, reference on: {measured[2]['growth_bytes'] / len(full):.2f}x"
    return figure


def memory_figure(
    what: str, measured: list[dict[str, float]], body: int, target: float | None
) -> Figure:
    """The worse of a cold server's first large request and the next one: the first pays
    one-time costs, the next may find the allocator's retained memory fragmented."""
    worst = max(m["growth_bytes"] for m in measured)
    ratio = worst / body
    note = ", ".join(
        f"request {i + 1}: {m['growth_bytes'] / body:.2f}x" for i, m in enumerate(measured)
    )
    if not all(m["method"] for m in measured):
        note += " (sampled every ms: VmHWM reset unavailable)"
    return Figure(
        "memory",
        f"peak RSS growth serving {what} (worse of 2)",
        worst / 1e6,
        "MB",
        body / 1e6,
        "body size",
        ratio,
        "" if target is None else f"<= {target}x",
        None if target is None else ratio <= target,
        note=note,
    )


# -- report ---------------------------------------------------------------------------------


def report(figures: list[Figure], command: str) -> str:
    lines = [f"{'case':<13} {'figure':<62} {'value':>11} {'floor':>11} {'ratio':>7}  target"]
    for f in figures:
        if f.unit == "":
            lines.append(f"{f.case:<13} {f.what:<62} {f.note}")
            continue
        value = f"{f.value:,.1f} {f.unit}"
        floor = f"{f.floor:,.1f} {f.unit}" if f.floor is not None else ""
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        verdict = "" if f.met is None else ("  met" if f.met else "  NOT met")
        lines.append(
            f"{f.case:<13} {f.what:<62} {value:>11} {floor:>11} {ratio:>7}  {f.target}{verdict}"
        )
        if f.floor_what:
            lines.append(f"{'':<13}   floor: {f.floor_what}" + (f"; {f.note}" if f.note else ""))
    lines.append("")
    lines.append(f"reproduce: {command}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="loss-service benchmark (see the module doc)")
    parser.add_argument("--cases", default="small,large", help="comma-separated: small, large")
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating small-case rounds")
    parser.add_argument("--large-rounds", type=int, default=9, help="timed large requests")
    parser.add_argument("--no-obvious-memory", action="store_true", help="skip that comparison")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    cases = {c.strip() for c in args.cases.split(",") if c.strip()}
    if not shutil.which("wrk") and "small" in cases:
        print(
            "wrk not found (install it: apt-get update && apt-get install -y wrk); "
            "using the built-in Python load generator, whose figures are lower and noisier.",
            file=sys.stderr,
        )
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        if "small" in cases:
            figures += small_case(args, Path(tmp))
        if "large" in cases:
            figures += large_cases(args)
    command = " ".join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])])
    print(report(figures, command))
    if args.json:
        args.json.write_text(json.dumps([f.__dict__ for f in figures], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
