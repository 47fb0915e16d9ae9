"""Prometheus metrics, through ``prometheus-client``.

One ``Metrics`` per app holds every metric the service exports (the README's table lists them).
With one worker they live in the app's own ``CollectorRegistry``, beside prometheus-client's
process, platform and GC collectors. With several workers each process writes its values to
memory-mapped files in one directory (prometheus-client's multiprocess mode) and a scrape of any
worker merges the files of all of them: counters and histograms add up, and each gauge says how
it is merged (``livesum``: the sum over the workers alive now). The directory is prepared by the
parent process before the workers start (``prepare_multiprocess_dir``): prometheus-client picks
its storage when it is first imported, from ``PROMETHEUS_MULTIPROC_DIR``.

The per-request hot path is ``Metrics.observe``: label children are looked up once per label set
and kept, so a request costs a few dictionary look-ups and increments, not ``labels()`` calls.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    multiprocess,
    values,
)
from prometheus_client.exposition import choose_encoder

from service.dtypes import DTYPE_NAMES

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Seconds: from 50 us (an inline 3x3 loss) to a minute (the default request time limit).
DURATION_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

#: Bytes: from a few hundred (a small JSON body) to the default 64 MiB limit and past it.
BODY_BUCKETS = tuple(float(4**k * 256) for k in range(11))  # 256 B .. 256 MiB

#: ``ServiceError.code`` of a refusal -> the ``reason`` label of ``loss_service_rejected_total``.
#: A malformed body is the client's invalid input too; 404/405 and "not ready" are not refusals.
REJECTION_REASONS = {
    "overloaded": "overloaded",
    "timed-out": "timed_out",
    "payload-too-large": "body_too_large",
    "body-timeout": "body_timeout",
    "unauthorized": "unauthorized",
    "limit-exceeded": "limit_exceeded",
    "invalid-input": "invalid_input",
    "malformed-body": "invalid_input",
    "device-error": "device_error",
}
REASONS = tuple(dict.fromkeys(REJECTION_REASONS.values()))


def multiprocess_mode() -> bool:
    """Whether prometheus-client stores values in the multiprocess directory (decided when it
    was imported, from ``PROMETHEUS_MULTIPROC_DIR``)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def prepare_multiprocess_dir(configured: str | None = None) -> Path:
    """Create (or clean) the multiprocess directory and export it as ``PROMETHEUS_MULTIPROC_DIR``
    for the workers about to start; call it in the parent process, before they exist.

    ``configured`` (``LOSS_SERVICE_METRICS_DIR``) wins, then a ``PROMETHEUS_MULTIPROC_DIR``
    already set; both are emptied of the ``*.db`` files a previous run left, whose counts would
    otherwise be added to this run's. Without either, a fresh directory under the temporary
    directory (the only writable place with a read-only root file system) is made and removed
    when the parent exits."""
    chosen = configured or os.environ.get(MULTIPROC_ENV)
    if chosen:
        path = Path(chosen)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="loss-service-metrics-"))
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")


def forget_dead_workers(path: str) -> None:
    """Drop the live gauges of worker processes that no longer exist (a crashed worker cannot
    do it itself), so that ``livesum`` gauges count the living only."""
    for name in os.listdir(path):
        match = _LIVE_FILE.fullmatch(name)
        if match and not _alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), path)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Metrics:
    """Every metric of one app, and its exposition."""

    def __init__(self, device: torch.device, losses: Iterable[str] = ()) -> None:
        """``losses``: the registered loss names, whose reference-disagreement series are
        exported at 0 from the start (with every compute dtype), as the rejection reasons are:
        an alert on ``increase(...) > 0`` sees the first disagreement only if the series existed
        before it."""
        # ``*_created`` series (one per label set, the time it first appeared) would double the
        # exposition for what Prometheus itself infers from a counter's resets.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.multiprocess = multiprocess_mode()
        self.path = os.environ.get(MULTIPROC_ENV, "") if self.multiprocess else ""
        # In multiprocess mode the metrics write to files and a scrape builds a fresh registry
        # over those files; registering them anywhere would export this process's values twice.
        self.registry: CollectorRegistry | None = None
        if not self.multiprocess:
            self.registry = CollectorRegistry(auto_describe=True)
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        reg = self.registry
        self.requests = Counter(
            "loss_service_requests",
            "Requests answered, by route template, loss and HTTP status.",
            ["route", "loss", "status"],
            registry=reg,
        )
        self.duration = Histogram(
            "loss_service_request_duration_seconds",
            "Time from a request's arrival to the end of its answer.",
            ["route", "loss"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.body = Histogram(
            "loss_service_request_body_bytes",
            "Size of request bodies (Content-Length, or the bytes received when chunked).",
            ["route"],
            buckets=BODY_BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "loss_service_in_flight",
            "Computations running in the worker threads (timed-out ones until they end).",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.queued = Gauge(
            "loss_service_queued",
            "Requests waiting for a computation slot.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "loss_service_rejected",
            "Requests refused, by reason.",
            ["reason"],
            registry=reg,
        )
        self.disagreements = Counter(
            "loss_service_reference_disagreements",
            "Responses whose NumPy float64 reference disagrees with torch (agrees: false).",
            ["loss", "dtype"],
            registry=reg,
        )
        self.batch_items = Counter(
            "loss_service_batch_items",
            "Items of POST /v1/losses:batch, by loss (empty when unknown) and item status.",
            ["loss", "status"],
            registry=reg,
        )
        self._rejected = {reason: self.rejected.labels(reason) for reason in REASONS}
        self._disagreed = {
            (loss, dtype): self.disagreements.labels(loss, dtype)
            for loss in losses
            for dtype in DTYPE_NAMES
        }
        self._bound: dict[tuple[str, str], Bound] = {}
        self._sized: dict[str, Any] = {}
        self.device = device
        self.device_memory: Gauge | None = None
        if device.type == "cuda":
            self.device_memory = Gauge(
                "loss_service_device_memory_bytes",
                "CUDA memory held by torch (allocated: in tensors; reserved: by its cache).",
                ["device", "kind"],
                registry=reg,
                multiprocess_mode="livesum",
            )
            self.update_device_memory()

    # -- recording ------------------------------------------------------------------------------

    def observe(
        self,
        route: str,
        loss: str,
        status: int,
        seconds: float,
        body_bytes: int | None,
        problem: str | None,
    ) -> None:
        """One answered request."""
        self.bind(route, loss).observe(status, seconds, body_bytes, problem)

    def bind(self, route: str, loss: str) -> Bound:
        """The label children of one ``(route, loss)``, looked up once and kept: the
        per-request hot path (``Bound.observe``) then costs a few increments."""
        bound = self._bound.get((route, loss))
        if bound is None:
            bound = self._bound[(route, loss)] = Bound(self, route, loss)
        return bound

    def disagreement(self, loss: str, dtype: str) -> None:
        child = self._disagreed.get((loss, dtype))
        if child is None:
            child = self._disagreed[loss, dtype] = self.disagreements.labels(loss, dtype)
        child.inc()

    def batch_item(self, loss: str, status: int) -> None:
        self.batch_items.labels(loss, str(status)).inc()

    def admission_changed(self, busy: int, waiting: int) -> None:
        """Admission control's counts, published as they change (each worker its own)."""
        self.in_flight.set(busy)
        self.queued.set(waiting)

    def update_device_memory(self) -> None:
        if self.device_memory is None:
            return
        index = self.device.index if self.device.index is not None else 0
        name = f"cuda:{index}"
        self.device_memory.labels(name, "allocated").set(torch.cuda.memory_allocated(index))
        self.device_memory.labels(name, "reserved").set(torch.cuda.memory_reserved(index))

    # -- exposition -----------------------------------------------------------------------------

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition (text format, or OpenMetrics when ``accept`` asks for it) and its
        content type. In multiprocess mode: the merge of every worker's files."""
        self.update_device_memory()
        registry = self.registry
        if registry is None:
            registry = CollectorRegistry()
            forget_dead_workers(self.path)
            multiprocess.MultiProcessCollector(registry, path=self.path)  # type: ignore[no-untyped-call]
            PlatformCollector(registry=registry)
        encoder, content_type = choose_encoder(accept or "")
        return encoder(registry), content_type

    def close(self) -> None:
        """At a worker's shutdown: its live gauges leave the sum."""
        if self.multiprocess:
            with contextlib.suppress(OSError):
                multiprocess.mark_process_dead(os.getpid(), self.path)  # type: ignore[no-untyped-call]


class Bound:
    """The metrics of one ``(route, loss)``, their label children bound: the request counter of
    each status seen, the duration histogram, and the route's body-size histogram."""

    __slots__ = ("counted", "duration", "loss", "metrics", "rejected", "route", "sized")

    def __init__(self, metrics: Metrics, route: str, loss: str) -> None:
        self.metrics = metrics
        self.route = route
        self.loss = loss
        self.counted: dict[int, Any] = {}
        self.duration = metrics.duration.labels(route, loss)
        sized = metrics._sized.get(route)
        if sized is None:
            sized = metrics._sized[route] = metrics.body.labels(route)
        self.sized = sized
        self.rejected = metrics._rejected

    def observe(
        self, status: int, seconds: float, body_bytes: int | None, problem: str | None
    ) -> None:
        """One answered request."""
        counted = self.counted.get(status)
        if counted is None:
            counted = self.counted[status] = self.metrics.requests.labels(
                self.route, self.loss, str(status)
            )
        counted.inc()
        self.duration.observe(seconds)
        if body_bytes is not None:
            self.sized.observe(body_bytes)
        if problem is not None:
            reason = REJECTION_REASONS.get(problem)
            if reason is not None:
                self.rejected[reason].inc()
        if self.metrics.device_memory is not None:
            self.metrics.update_device_memory()
