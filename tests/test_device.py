"""Device selection: auto picks what exists, an explicit device that does not exist stops
start-up with one line saying so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from service.device import DeviceUnavailable, resolve_device


def test_auto_picks_cuda_when_available_else_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_cpu_always_exists() -> None:
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "", "gpu0"])
def test_unknown_device_names_are_refused(spec: str) -> None:
    with pytest.raises(DeviceUnavailable, match="unknown device"):
        resolve_device(spec)


def test_missing_cuda_index_is_refused() -> None:
    with pytest.raises(DeviceUnavailable, match="cuda:99"):
        resolve_device("cuda:99")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused() -> None:
    with pytest.raises(DeviceUnavailable, match="not available"):
        resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has cuda:7")
def test_start_up_stops_with_one_line_for_a_missing_device() -> None:
    env = {**os.environ, "LOSS_SERVICE_DEVICE": "cuda:7"}
    proc = subprocess.run(
        [sys.executable, "-m", "service", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "cuda:7" in lines[0]


@pytest.mark.gpu
def test_cuda_device_computes_like_cpu_torch() -> None:
    from service.dataplane import Dataplane
    from service.losses import registry
    from tests.conftest import cpu_settings

    device = resolve_device("cuda")
    dataplane = Dataplane(cpu_settings(device="cuda"), device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    loss = registry.get("cross_entropy")
    assert loss is not None
    out = dataplane.compute(loss, {"input": x.tolist(), "target": y.tolist()})
    assert out["device"].startswith("cuda")
    expected = torch.nn.functional.cross_entropy(x, y)
    assert float(out["value"]) == pytest.approx(float(expected), rel=1e-5)
    assert out["reference"]["agrees"]
