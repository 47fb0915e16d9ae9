"""``python -m tests.gpu.check``: the service on a GPU, checked end to end (``.ci/gpu-check`` runs
it after the ``gpu``-marked tests; never CI, which has no GPU).

1. Starts the service (``python -m tests.robustness.hooked_service``: the real service, with
   the test hook that runs out of memory on cue) with ``LOSS_SERVICE_DEVICE`` set to the device.
2. Posts every loss's catalogue example (``GET /v1/losses/{name}``) in float32, float16 and
   bfloat16, and compares each answer with torch called here, in this process, on the same
   device: the same function on the same numbers, within the loss's tolerance for the dtype.
   Where torch has no kernel for a dtype on the device, the service must say so (422 naming
   ``dtype``); a loss the installed torch lacks must be the documented 501.
3. The large binary case (64 x 32000 float32 logits through ``/v2`` binary tensors): its time,
   median of a few, beside the in-process floor (the same cross-entropy in torch on the device,
   the copy to it included).
4. Out of memory on cue: the service must answer 503 ``device-error``, then compute the next
   request and be ready again.

Every step prints what it did; any failure makes the exit status 1. ``--device cpu`` rehearses
all of it on a machine without a GPU (step 4 then raises ``torch.OutOfMemoryError`` instead of
asking the device for a petabyte), and says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

from service.dataplane import Dataplane
from service.errors import InvalidInput
from service.losses import registry
from service.settings import Settings
from tests.losses.harness import as_f64, oracle, prepared, torch_inputs
from tests.protocol.wire import Request, Tensor
from tests.server import live_server

DTYPES = ("float32", "float16", "bfloat16")
LARGE = (64, 32000)
ROUNDS = 5


class Check:
    """Counts failures and prints every step."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def ok(self, what: str) -> None:
        print(f"  ok    {what}", flush=True)

    def note(self, what: str) -> None:
        print(f"  note  {what}", flush=True)

    def fail(self, what: str) -> None:
        self.failures.append(what)
        print(f"  FAIL  {what}", flush=True)


def in_process(
    dataplane: Dataplane, name: str, body: dict[str, Any], dtype: str
) -> np.ndarray[Any, Any]:
    """torch's value for ``body``, called here on the device (the harness's oracle)."""
    loss = registry.require(name)
    params, prep = prepared(dataplane, loss, body, dtype)
    tensors = {k: t.to(dataplane.device) for k, t in torch_inputs(prep, dtype).items()}
    with torch.inference_mode():
        return as_f64(oracle(loss, params, tensors).cpu())


def check_catalogue(check: Check, client: httpx.Client, dataplane: Dataplane) -> None:
    print("catalogue examples, by dtype, against torch in-process", flush=True)
    for entry in client.get("/v1/losses").json()["losses"]:
        name = entry["name"]
        example = client.get(f"/v1/losses/{name}").json()["example"]
        for dtype in DTYPES:
            answer = client.post(f"/v1/losses/{name}", json={**example, "dtype": dtype})
            what = f"{name} {dtype}"
            if not entry["available"]:
                if answer.status_code == 501:
                    check.ok(f"{what}: 501, this torch lacks it ({entry['torch_required']}+)")
                else:
                    check.fail(f"{what}: {answer.status_code} for an unavailable loss")
                continue
            try:
                want = in_process(dataplane, name, example, dtype)
            except (RuntimeError, NotImplementedError, InvalidInput) as exc:
                refused = answer.status_code == 422 and answer.json().get("field") == "dtype"
                reason = str(exc).strip().splitlines()[0][:80]
                if refused:
                    check.ok(f"{what}: no kernel here ({reason}); the service says so")
                else:
                    check.fail(f"{what}: torch fails ({reason}) but the service {answer.text}")
                continue
            if answer.status_code != 200:
                check.fail(f"{what}: {answer.status_code} {answer.text[:200]}")
                continue
            body = answer.json()
            if not body["device"].startswith(dataplane.device.type):
                check.fail(f"{what}: computed on {body['device']}")
                continue
            got = np.asarray(body["value"], dtype=np.float64)
            loss = registry.require(name)
            tol = loss.tolerance(dtype)
            close = got.shape == want.shape and np.allclose(
                got, want, rtol=tol.rtol, atol=tol.atol, equal_nan=True
            )
            agrees = body["reference"]["agrees"]
            if close and agrees:
                check.ok(f"{what}: {got.ravel()[:1]} as in-process torch; reference agrees")
            else:
                check.fail(f"{what}: {got} vs in-process {want}; reference agrees={agrees}")


def large_request(
    logits: np.ndarray[Any, Any], target: np.ndarray[Any, Any]
) -> tuple[bytes, dict[str, str]]:
    tensors = [Tensor("input", "FP32", logits, True), Tensor("target", "INT64", target, True)]
    return Request(tensors, parameters={"reference": False}).encode()


def check_large(check: Check, client: httpx.Client, device: torch.device) -> None:
    print(f"large binary case: {LARGE[0]} x {LARGE[1]} float32 logits through /v2", flush=True)
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(LARGE, dtype=np.float32)
    target = rng.integers(0, LARGE[1], LARGE[0])
    body, headers = large_request(logits, target)
    want = float(
        torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(target))
    )
    served = []
    for _ in range(ROUNDS + 1):
        start = time.perf_counter()
        r = client.post("/v2/models/cross_entropy/infer", content=body, headers=headers)
        served.append(time.perf_counter() - start)
        if r.status_code != 200:
            check.fail(f"large binary: {r.status_code} {r.text[:200]}")
            return
    floor = []
    for _ in range(ROUNDS + 1):
        start = time.perf_counter()
        x = torch.from_numpy(logits).to(device)
        y = torch.from_numpy(target).to(device)
        value = float(torch.nn.functional.cross_entropy(x, y))
        if device.type == "cuda":
            torch.cuda.synchronize()
        floor.append(time.perf_counter() - start)
    # The first of each is a warm-up.
    t_served, t_floor = statistics.median(served[1:]), statistics.median(floor[1:])
    print(
        f"  time  served {t_served * 1e3:.1f} ms, in-process floor {t_floor * 1e3:.2f} ms "
        f"({t_served / t_floor:.0f}x; reference off, body {len(body) / 1e6:.1f} MB)",
        flush=True,
    )
    if abs(value - want) <= 1e-4 * max(1.0, abs(want)):
        check.ok(f"large binary: in-process {value:.6f} matches the CPU's {want:.6f}")
    else:
        check.fail(f"large binary: in-process {value} vs the CPU's {want}")


def check_out_of_memory(check: Check, client: httpx.Client, cue: Path, device: str) -> None:
    how = "a real CUDA out of memory" if device.startswith("cuda") else "torch.OutOfMemoryError"
    print(f"out of memory on cue ({how})", flush=True)
    rng = np.random.default_rng(1)
    body = {"input": rng.standard_normal((64, 40)).tolist(), "target": list(range(40)) + [0] * 24}
    before = client.post("/v1/losses/cross_entropy", json=body)
    if before.status_code != 200:
        check.fail(f"before: {before.status_code} {before.text[:200]}")
        return
    cue.touch()
    failed = client.post("/v1/losses/cross_entropy", json=body)
    if failed.status_code == 503 and failed.json()["type"].endswith("/device-error"):
        check.ok(f"503 device-error: {failed.json()['detail']}")
    else:
        check.fail(f"expected 503 device-error, got {failed.status_code} {failed.text[:200]}")
    if cue.exists():
        check.fail("the cue was never taken: no out of memory happened")
    after = client.post("/v1/losses/cross_entropy", json=body)
    if after.status_code == 200 and after.json()["value"] == before.json()["value"]:
        check.ok("the next request computes the same value")
    else:
        check.fail(f"after: {after.status_code} {after.text[:200]}")
    ready = client.get("/v2/health/ready")
    if ready.status_code == 200:
        check.ok("ready again (the device was re-probed)")
    else:
        check.fail(f"not ready after: {ready.status_code} {ready.text[:200]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (rehearsal)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, python {sys.version.split()[0]}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        flush=True,
    )
    if device.type != "cuda":
        print("REHEARSAL on the CPU: the CUDA-only parts (a real out of memory) are simulated")
    check = Check()
    dataplane = Dataplane(Settings(device=args.device), device)
    with tempfile.TemporaryDirectory() as cue_dir:
        env = {
            "LOSS_SERVICE_DEVICE": args.device,
            "LOSS_SERVICE_TEST_OOM_DIR": cue_dir,
            "LOSS_SERVICE_LOG_LEVEL": "warning",
        }
        with (
            live_server(env=env, module="tests.robustness.hooked_service") as server,
            httpx.Client(base_url=server.url, timeout=120) as client,
        ):
            print(f"service on {server.url}: {client.get('/v2').json()}", flush=True)
            check_catalogue(check, client, dataplane)
            check_large(check, client, device)
            check_out_of_memory(check, client, Path(cue_dir) / "oom", args.device)
    elapsed = time.monotonic() - started
    if check.failures:
        print(f"GPU CHECK FAILED: {len(check.failures)} failures in {elapsed:.0f} s")
        for failure in check.failures:
            print(f"  - {failure}")
        return 1
    print(f"GPU check passed in {elapsed:.0f} s on {device}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
