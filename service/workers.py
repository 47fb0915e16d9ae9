"""Serving with several worker processes: how many, and what each must be told.

The supervisor (``service.supervisor``) starts each worker with ``multiprocessing``'s *spawn*: a
fresh interpreter that imports the app from an import string (``service.app:create_app``, a
factory) and builds it from the environment. Nothing the parent computed reaches a worker except
through ``os.environ`` and the ``WorkerSpec`` it is handed (bind address, log level,
graceful-shutdown time), so the parent (``service.cli``) does its one-time work before the
supervisor starts them:

1. checks what must fail once rather than in every worker (the device exists), and
2. calls ``prepare_environment(settings)``, which writes the command line's overrides into the
   ``LOSS_SERVICE_*`` environment the workers inherit. One-time, parent-only setup that every
   worker must share (a directory for prometheus-client's multiprocess mode, say) belongs there.

Each worker then holds its own admission control, so ``MAX_CONCURRENCY`` and ``MAX_QUEUE`` (and
every other limit) are per worker: N workers compute up to N x ``MAX_CONCURRENCY`` at once.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from service.observability.metrics import prepare_multiprocess_dir
from service.settings import Settings

ENV_PREFIX = "LOSS_SERVICE_"

#: The settings the command line can override, which workers must therefore read from the
#: environment rather than from their own ``get_settings()`` alone.
CLI_FIELDS = ("host", "port", "device", "workers")

CGROUP_ROOT = Path("/sys/fs/cgroup")


def worker_count(spec: int | str) -> int:
    """The number of worker processes ``spec`` asks for: a positive count as is, ``auto`` one per
    CPU this process may use (``available_cpus``)."""
    if isinstance(spec, int):
        if spec < 1:
            raise ValueError(f"workers must be at least 1, got {spec}")
        return spec
    text = spec.strip().lower()
    if text == "auto":
        return available_cpus()
    count = int(text)
    return worker_count(count)


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask (``taskset``, a cpuset), capped by a
    cgroup CPU quota (a container's ``--cpus``, Kubernetes' CPU limit) rounded up, at least 1.

    ``os.cpu_count()`` counts the machine's CPUs, which in a container limited to two would start
    dozens of workers fighting over two CPUs' worth of time."""
    cpus = len(affinity())
    quota = cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def affinity() -> set[int]:
    """The CPUs the scheduler lets this process use (all of them where the platform cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs' worth of time the cgroup grants per period (``None``: no quota), from cgroup v2's
    ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``) along this process's cgroup and
    its ancestors, else cgroup v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1: none).
    The smallest quota on the path is the one that binds."""
    quotas = [q for q in _v2_quotas(root) if q is not None]
    if not quotas:
        v1 = _v1_quota(root)
        return v1
    return min(quotas)


def _v2_quotas(root: Path) -> list[float | None]:
    group = _own_cgroup_v2()
    if group is None:
        return []
    here = root / group.lstrip("/")
    paths = [here, *here.parents]
    return [_v2_quota(p / "cpu.max") for p in paths if p == root or root in p.parents]


def _own_cgroup_v2() -> str | None:
    """This process's cgroup v2 path (the ``0::`` line of /proc/self/cgroup)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def _v2_quota(path: Path) -> float | None:
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return _ratio(quota, period)


def _v1_quota(root: Path) -> float | None:
    for directory in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        try:
            quota = (root / directory / "cpu.cfs_quota_us").read_text().strip()
            period = (root / directory / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            continue
        return _ratio(quota, period)
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:
        return None
    return q / p


def prepare_environment(settings: Settings) -> None:
    """One-time setup in the parent process, before any worker exists.

    Writes the command line's overrides (host, port, device, workers) into ``os.environ`` as
    ``LOSS_SERVICE_*``, so that each spawned worker's ``get_settings()`` reads what the parent
    was told. This is the hook for anything every worker must share and only the parent may
    create (e.g. a fresh ``PROMETHEUS_MULTIPROC_DIR`` for prometheus-client's multiprocess mode):
    add it here, never in ``create_app``, which runs once per worker."""
    for name in CLI_FIELDS:
        os.environ[ENV_PREFIX + name.upper()] = str(getattr(settings, name))
    if settings.metrics and worker_count(settings.workers) > 1:
        # Every worker writes its metrics to files in one directory, merged at each scrape;
        # made (or emptied of a previous run's files) here, before any worker imports
        # prometheus-client, which picks its storage from PROMETHEUS_MULTIPROC_DIR then.
        prepare_multiprocess_dir(settings.metrics_dir)
