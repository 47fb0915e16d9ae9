"""How many workers ``--workers`` / ``LOSS_SERVICE_WORKERS`` asks for, and what the parent tells
them: ``auto`` honours the affinity mask and a cgroup CPU quota (read from files laid out as
cgroup v2 and v1 lay them out, under a temporary root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from service import workers
from service.cli import _workers_arg
from service.settings import Settings
from service.workers import available_cpus, cgroup_cpu_quota, prepare_environment, worker_count


def pretend(monkeypatch: pytest.MonkeyPatch, cpus: set[int], quota: float | None) -> None:
    monkeypatch.setattr(workers, "affinity", lambda: cpus)
    monkeypatch.setattr(workers, "cgroup_cpu_quota", lambda: quota)


@pytest.mark.parametrize(
    ("cpus", "quota", "expected"),
    [
        ({0, 1, 2, 3}, None, 4),  # no quota: the affinity mask
        ({2, 5}, None, 2),  # taskset -c 2,5 on a large machine
        ({0, 1, 2, 3, 4, 5, 6, 7}, 2.0, 2),  # a container limited to 2 CPUs
        ({0, 1, 2, 3, 4, 5, 6, 7}, 1.5, 2),  # part of a CPU still gets a worker
        ({0, 1, 2, 3}, 0.25, 1),  # at least one
        ({0, 1}, 16.0, 2),  # a quota larger than the mask: the mask binds
    ],
)
def test_auto_is_one_worker_per_usable_cpu(
    monkeypatch: pytest.MonkeyPatch, cpus: set[int], quota: float | None, expected: int
) -> None:
    pretend(monkeypatch, cpus, quota)
    assert available_cpus() == expected
    assert worker_count("auto") == expected


def test_auto_on_this_machine_is_within_the_affinity_mask() -> None:
    assert 1 <= worker_count("auto") <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("spec", "expected"), [(1, 1), (3, 3), ("2", 2), (" AUTO ", None)])
def test_counts_are_taken_as_given(
    monkeypatch: pytest.MonkeyPatch, spec: int | str, expected: int | None
) -> None:
    pretend(monkeypatch, {0, 1, 2}, None)
    assert worker_count(spec) == (3 if expected is None else expected)


@pytest.mark.parametrize("spec", [0, -1, "0"])
def test_fewer_than_one_worker_is_refused(spec: int | str) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        worker_count(spec)


def cgroup_v2(
    monkeypatch: pytest.MonkeyPatch, root: Path, group: str, files: dict[str, str]
) -> None:
    monkeypatch.setattr(workers, "_own_cgroup_v2", lambda: group)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "200000 100000\n"}, 2.0),
        ({"kubepods/pod/cpu.max": "50000 100000\n"}, 0.5),
        # the tightest quota on the way up to the root binds
        ({"kubepods/pod/cpu.max": "max 100000\n", "kubepods/cpu.max": "300000 100000\n"}, 3.0),
        ({"kubepods/pod/cpu.max": "400000 100000\n", "cpu.max": "150000 100000\n"}, 1.5),
        ({}, None),
    ],
)
def test_cgroup_v2_quota(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, files: dict[str, str], expected: float | None
) -> None:
    cgroup_v2(monkeypatch, tmp_path, "/kubepods/pod", files)
    assert cgroup_cpu_quota(tmp_path) == expected


@pytest.mark.parametrize(
    ("directory", "quota", "expected"),
    [("cpu", "-1", None), ("cpu", "250000", 2.5), ("cpu,cpuacct", "100000", 1.0)],
)
def test_cgroup_v1_quota(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, directory: str, quota: str, expected: float
) -> None:
    cgroup_v2(
        monkeypatch,
        tmp_path,
        "/",
        {f"{directory}/cpu.cfs_quota_us": quota + "\n", f"{directory}/cpu.cfs_period_us": "100000"},
    )
    assert cgroup_cpu_quota(tmp_path) == expected


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("2", 2), ("1", 1)])
def test_the_setting_reads_counts_and_auto(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int | str
) -> None:
    monkeypatch.setenv("LOSS_SERVICE_WORKERS", value)
    assert Settings().workers == expected


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_the_setting_refuses_other_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LOSS_SERVICE_WORKERS", value)
    with pytest.raises(ValidationError):
        Settings()


def test_the_default_is_one_worker() -> None:
    assert Settings.model_fields["workers"].default == 1


@pytest.mark.parametrize(("text", "expected"), [("auto", "auto"), ("4", 4)])
def test_the_option_reads_counts_and_auto(text: str, expected: int | str) -> None:
    assert _workers_arg(text) == expected


def test_the_parent_hands_the_command_line_to_workers_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HOST", "PORT", "DEVICE", "WORKERS"):
        monkeypatch.setenv(f"LOSS_SERVICE_{name}", "stale")  # restored after the test
    settings = Settings(host="127.0.0.2", port=8123, device="cpu", workers=3)
    prepare_environment(settings)
    spawned = Settings()  # what a worker's get_settings() builds
    assert (spawned.host, spawned.port, spawned.device, spawned.workers) == (
        "127.0.0.2",
        8123,
        "cpu",
        3,
    )
