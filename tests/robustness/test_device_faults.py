"""Fault injection on the device path: a device error inside one request is a clear 503 for that
request, device memory is released, the next request works, and readiness re-probes the device
(and says 503 for as long as the probe fails).

Faults are injected by replacing ``torch.nn.functional.cross_entropy``, which both requests and
the readiness probe call, with one that raises a chosen number of times."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import torch

import service.dataplane
from service.api.problems import PROBLEM_MEDIA_TYPE
from service.api.state import ServiceState
from service.app import create_app
from service.device import is_device_fault
from service.settings import Settings
from tests.robustness.conftest import (
    ARTICLE,
    SMALL_LIMITS,
    asgi_client,
    assert_article_ok,
    small_app,
    torch_cross_entropy,
)

pytestmark = pytest.mark.anyio

CE = "/v1/losses/cross_entropy"
READY = "/v2/health/ready"


class Faults:
    """Makes the next ``times`` calls of cross-entropy raise ``exc``; then torch runs again."""

    def __init__(self, exc: BaseException, times: int) -> None:
        self.exc = exc
        self.times = times
        self.raised = 0
        self.original: Callable[..., torch.Tensor] = torch.nn.functional.cross_entropy

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.raised < self.times:
            self.raised += 1
            raise self.exc
        return self.original(*args, **kwargs)


FAULTS = [
    pytest.param(
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        "device-error",
        True,
        id="cuda-out-of-memory",
    ),
    pytest.param(
        torch.AcceleratorError("CUDA error: an illegal memory access was encountered"),
        "device-error",
        True,
        id="cuda-accelerator-error",
    ),
    pytest.param(
        RuntimeError("CUDA error: device-side assert triggered"),
        "device-error",
        True,
        id="cuda-error-as-runtime-error",
    ),
    pytest.param(MemoryError(), "unavailable", False, id="host-out-of-memory"),
]


@pytest.mark.parametrize(
    ("exc", "is_fault"),
    [
        (torch.AcceleratorError("CUDA error: an illegal memory access was encountered"), True),
        (RuntimeError("CUDA error: device-side assert triggered"), True),
        (RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling cublasSgemm"), True),
        (RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR"), True),
        (RuntimeError("Expected target size [2, 3], got [2]"), False),
        (ValueError("Expected input batch_size (2) to match target batch_size (3)."), False),
        (IndexError("Target 5 is out of bounds."), False),
    ],
    ids=repr,
)
def test_device_faults_are_told_from_rejected_input(exc: Exception, is_fault: bool) -> None:
    assert is_device_fault(exc) is is_fault


async def test_torch_rejecting_the_input_is_not_a_device_fault(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = small_app()
    state: ServiceState = app.state.service
    async with asgi_client(app) as client:
        released = inject(monkeypatch, Faults(RuntimeError("Expected target size [2]"), 1))
        assert_problem(await client.post(CE, json=ARTICLE), 422, "invalid-input")
        assert released == []
        assert not state.device_suspect
        assert_article_ok(await client.post(CE, json=ARTICLE))


def inject(monkeypatch: pytest.MonkeyPatch, faults: Faults) -> list[torch.device]:
    """Install ``faults``; returns the list that records each ``release_memory`` call."""
    released: list[torch.device] = []
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", faults)
    monkeypatch.setattr(service.dataplane, "release_memory", released.append)
    return released


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = response.json()
    assert problem["type"].endswith("/" + code)
    assert "Traceback" not in problem["detail"]


@pytest.mark.parametrize(("exc", "code", "is_device_fault"), FAULTS)
async def test_one_fault_fails_one_request_and_the_next_works(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException, code: str, is_device_fault: bool
) -> None:
    app = small_app()
    state: ServiceState = app.state.service
    async with asgi_client(app) as client:
        released = inject(monkeypatch, Faults(exc, times=1))
        assert_problem(await client.post(CE, json=ARTICLE), 503, code)
        assert released == ([torch.device("cpu")] if is_device_fault else [])
        assert state.device_suspect is is_device_fault
        assert_article_ok(await client.post(CE, json=ARTICLE))
        ready = await client.get(READY)
        assert ready.status_code == 200
        assert ready.json() == {"ready": True}
        assert not state.device_suspect
        assert (state.admission.busy, state.admission.admitted) == (0, 0)


async def test_readiness_reports_a_device_that_stays_broken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = small_app()
    async with asgi_client(app) as client:
        broken = torch.AcceleratorError("CUDA error: device-side assert triggered")
        faults = Faults(broken, times=10**9)
        inject(monkeypatch, faults)
        assert_problem(await client.post(CE, json=ARTICLE), 503, "device-error")
        for _ in range(2):  # every check re-probes while the device is suspect
            ready = await client.get(READY)
            assert ready.status_code == 503
            assert ready.headers["content-type"] == "application/json"
            assert "device" in ready.json()["error"]
            assert "retry-after" in ready.headers
        assert (await client.get("/v2/health/live")).json() == {"live": True}
        faults.times = faults.raised  # the device recovers
        assert (await client.get(READY)).status_code == 200
        assert_article_ok(await client.post(CE, json=ARTICLE))


async def test_a_fault_while_computing_gradients_is_handled_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = small_app()
    async with asgi_client(app) as client:
        released = inject(monkeypatch, Faults(torch.OutOfMemoryError("CUDA out of memory"), 1))
        response = await client.post(CE, json={**ARTICLE, "include": ["grad"]})
        assert_problem(response, 503, "device-error")
        assert released == [torch.device("cpu")]
        assert_article_ok(await client.post(CE, json=ARTICLE))


class RealOutOfMemory:
    """Asks the device for far more memory than it has before computing, once: the genuine
    ``torch.OutOfMemoryError`` from the CUDA caching allocator, not a constructed one."""

    def __init__(self) -> None:
        self.original: Callable[..., torch.Tensor] = torch.nn.functional.cross_entropy
        self.done = False

    def __call__(self, input: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if not self.done:
            self.done = True
            torch.empty(1 << 50, dtype=torch.uint8, device=input.device)  # a petabyte
        return self.original(input, *args, **kwargs)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
async def test_a_real_cuda_out_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(Settings(device="cuda", **SMALL_LIMITS))
    expected = torch_cross_entropy(ARTICLE)  # on the CPU: the GPU may differ in the last bits

    async def article_ok() -> None:
        response = await client.post(CE, json=ARTICLE)
        assert response.status_code == 200, response.text
        assert response.json()["device"].startswith("cuda")
        assert abs(response.json()["value"] - expected) < 1e-6

    async with asgi_client(app) as client:
        await article_ok()
        allocated = torch.cuda.memory_allocated()
        monkeypatch.setattr(torch.nn.functional, "cross_entropy", RealOutOfMemory())
        assert_problem(await client.post(CE, json=ARTICLE), 503, "device-error")
        assert torch.cuda.memory_allocated() <= allocated
        await article_ok()
        assert (await client.get(READY)).status_code == 200
