"""Choosing the torch device from the configuration, and proving it works before we say ready."""

from __future__ import annotations

import re

import torch

#: ``torch.AcceleratorError`` (torch >= 2.8) is what CUDA errors raise; older releases raise a
#: plain ``RuntimeError`` whose message names the failing library.
_ACCELERATOR_ERROR: type[Exception] | None = getattr(torch, "AcceleratorError", None)
_DEVICE_FAULT = re.compile(r"CUDA error|CUBLAS_STATUS_|CUDNN_STATUS_|cuDNN error|HIP error")


class DeviceUnavailable(RuntimeError):
    """The configured device does not exist on this machine; start-up stops with this message."""


_SPEC = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(spec: str) -> torch.device:
    """``auto`` is cuda when available, else cpu; anything explicit must exist."""
    spec = spec.strip().lower()
    if not _SPEC.match(spec):
        raise DeviceUnavailable(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceUnavailable("configured device 'mps' is not available on this machine")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"configured device {spec!r} is not available: torch sees no CUDA device"
        )
    device = torch.device(spec)
    index = device.index if device.index is not None else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceUnavailable(
            f"configured device {spec!r} does not exist: torch sees {count} CUDA device(s)"
        )
    return device


def warm_up(device: torch.device) -> None:
    """Run one small loss on ``device`` so that kernels load before the first real request."""
    x = torch.randn(4, 3, device=device)
    y = torch.tensor([0, 1, 2, 0], device=device)
    torch.nn.functional.cross_entropy(x, y).item()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release_memory(device: torch.device) -> None:
    """Return cached device memory after a failure, so the next request starts clean."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def is_device_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is the device failing (a CUDA error, a device-side assert) rather than
    torch refusing the input: the first is a 503 and makes readiness re-probe the device."""
    if _ACCELERATOR_ERROR is not None and isinstance(exc, _ACCELERATOR_ERROR):
        return True
    return isinstance(exc, RuntimeError) and bool(_DEVICE_FAULT.search(str(exc)))
