"""The service started the way a manifest says, answering the manifest's probes.

For the Deployment (base, and the GPU overlay where there is a GPU) and the KServe
ServingRuntime: the environment is exactly the image's ``ENV`` with the container's
(ConfigMap ``envFrom``, then ``env``) on top, nothing inherited from the test's process; the
working directory and ``HOME`` are read-only; the only writable place is ``TMPDIR``, standing
for the emptyDir the manifest mounts at /tmp (the container's ``tempfile.gettempdir()``).
Python's writes anywhere else are refused and reported (``readonly_service``). Two things
differ from a pod, both forced by the test machine: the server binds 127.0.0.1 on a free port
(``--host``/``--port``, which override ``LOSS_SERVICE_HOST``/``PORT``), and ``PATH`` and
``PYTHONPATH`` point at this checkout's interpreter and code instead of the image's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy.manifests import (
    KSERVE,
    ROOT,
    Resource,
    built,
    container_env,
    image_env,
    load_file,
    one,
)
from tests.deploy.readonly_service import REPORT
from tests.server import live_server

pytestmark = pytest.mark.slow

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


@dataclass
class Target:
    """What a manifest says about its one container."""

    env: dict[str, str]
    probes: dict[str, str]  # probe kind -> path
    scrape_path: str
    grace: float  # seconds SIGTERM may take: terminationGracePeriodSeconds less preStop


def deployment_target(name: str) -> Target:
    resources = built(name)
    deployment = one(resources, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    return Target(
        env=container_env(resources, container),
        probes={kind: container[kind]["httpGet"]["path"] for kind in PROBES if kind in container},
        scrape_path=deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"],
        grace=pod["terminationGracePeriodSeconds"] - pause,
    )


def serving_runtime_target() -> Target:
    (runtime,) = load_file(KSERVE / "servingruntime.yaml")
    (container,) = runtime["spec"]["containers"]
    resources: list[Resource] = [runtime]
    return Target(
        env=container_env(resources, container),
        probes={kind: container[kind]["httpGet"]["path"] for kind in PROBES if kind in container},
        scrape_path=runtime["metadata"]["annotations"]["prometheus.kserve.io/path"],
        # KServe leaves the pod's default grace, 30 s.
        grace=30.0,
    )


@dataclass
class Run:
    target: Target
    responses: dict[str, httpx.Response]
    exit_code: int
    stop_seconds: float
    output: str
    read_only_entries: list[str]
    tmp_entries: list[str]


@pytest.fixture(
    scope="module",
    params=[
        "deployment",
        pytest.param("deployment-gpu", marks=pytest.mark.gpu),
        "servingruntime",
    ],
)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    name: str = request.param
    target = {
        "deployment": lambda: deployment_target("base"),
        "deployment-gpu": lambda: deployment_target("gpu"),
        "servingruntime": serving_runtime_target,
    }[name]()
    read_only = tmp_path_factory.mktemp(f"{name}-root")
    (read_only / "cwd").mkdir()
    (read_only / "home").mkdir()
    tmp = tmp_path_factory.mktemp(f"{name}-tmp")
    env = {
        **image_env(),
        **target.env,
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "HOME": str(read_only / "home"),
        "TMPDIR": str(tmp),
    }
    for path in (read_only / "cwd", read_only / "home", read_only):
        path.chmod(0o555)
    try:
        with live_server(
            env=env,
            module="tests.deploy.readonly_service",
            cwd=str(read_only / "cwd"),
            inherit_env=False,
        ) as server:
            paths = {*target.probes.values(), target.scrape_path}
            responses = {path: httpx.get(server.url + path, timeout=10) for path in paths}
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            try:
                exit_code = server.process.wait(timeout=target.grace)
            except subprocess.TimeoutExpired:
                exit_code = -1
            stop_seconds = time.monotonic() - started
            output = server.process.stdout.read().decode() if server.process.stdout else ""
        yield Run(
            target=target,
            responses=responses,
            exit_code=exit_code,
            stop_seconds=stop_seconds,
            output=output,
            read_only_entries=sorted(str(p.relative_to(read_only)) for p in read_only.rglob("*")),
            tmp_entries=sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*")),
        )
    finally:
        for path in (read_only, read_only / "cwd", read_only / "home"):
            path.chmod(0o755)


def test_every_probe_answers_as_the_kubelet_expects(run: Run) -> None:
    """An httpGet probe succeeds on 200-399; once started, all of them must."""
    assert run.target.probes, "the manifest declares no probes"
    for kind, path in run.target.probes.items():
        response = run.responses[path]
        assert 200 <= response.status_code < 400, (kind, path, response.status_code)
    assert run.responses["/v2/health/ready"].json() == {"ready": True}
    assert run.responses["/v2/health/live"].json() == {"live": True}


def test_the_scrape_path_serves_prometheus_text(run: Run) -> None:
    response = run.responses[run.target.scrape_path]
    assert response.status_code == 200, response.text[:200]
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE" in response.text


def test_sigterm_ends_the_process_with_status_0_within_the_grace(run: Run) -> None:
    assert run.exit_code == 0, run.output[-2000:]
    assert run.stop_seconds < run.target.grace


def test_nothing_is_written_outside_the_declared_volumes(run: Run) -> None:
    refused = [line for line in run.output.splitlines() if line.startswith(REPORT)]
    assert refused == []
    assert run.read_only_entries == ["cwd", "home"]
    # Whatever the service keeps under the temporary directory is its own business; that it
    # stays there is the point. The test's ENV must also be the manifest's exactly.
    assert "TMPDIR" not in run.target.env
    assert os.path.isabs(run.target.scrape_path)


def test_the_read_only_emulation_refuses_and_reports_writes(tmp_path: Path) -> None:
    """The control: under the same hook, a write outside TMPDIR fails and is reported, one
    inside succeeds."""
    outside, inside = tmp_path / "root", tmp_path / "tmp"
    outside.mkdir()
    inside.mkdir()
    script = (
        "import sys, tests.deploy.readonly_service as r\n"
        "sys.addaudithook(r._hook)\n"
        "open('inside.txt', 'w').close()\n"
        "try:\n"
        "    open(sys.argv[1], 'w')\n"
        "except PermissionError as e:\n"
        "    print('refused', e.errno)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(outside / "file")],
        cwd=inside,
        env={"PYTHONPATH": str(ROOT), "TMPDIR": str(inside)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused 30"
    assert f"{REPORT} open {outside / 'file'}" in done.stderr
    assert (inside / "inside.txt").exists()
    assert not (outside / "file").exists()
