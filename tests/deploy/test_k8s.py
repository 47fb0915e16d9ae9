"""deploy/k8s: kustomize builds the base and every overlay, `kubernetes-validate --strict`
accepts the output (its bundled Kubernetes schemas, unknown fields rejected), and the pieces
agree with each other and with the image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import (
    KUSTOMIZATIONS,
    Resource,
    built,
    container_env,
    image_user,
    kustomize_build,
    load_all,
    one,
)

KUBERNETES_VALIDATE = [sys.executable, "-m", "kubernetes_validate"]


def kubernetes_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KUBERNETES_VALIDATE, "--strict", "--quiet", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def deployment_container(resources: list[Resource]) -> Resource:
    containers = one(resources, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: Resource = containers[0]
    return container


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_build_passes_kubernetes_validate_strict(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.yaml"
    out.write_text(kustomize_build(KUSTOMIZATIONS[name]))
    done = kubernetes_validate(out)
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = sorted(r["kind"] for r in load_all(out.read_text()))
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
    ]


@pytest.mark.parametrize(
    ("where", "typo"),
    [
        ("container", "readinesProbe"),
        ("pod", "terminationGracePeriod"),
    ],
)
def test_kubernetes_validate_strict_rejects_a_typo(where: str, typo: str, tmp_path: Path) -> None:
    """The validator is not a rubber stamp: a misspelt field in the same build fails."""
    resources = built("base")
    deployment = one(resources, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (pod["containers"][0] if where == "container" else pod)[typo] = 1
    out = tmp_path / "typo.yaml"
    out.write_text(yaml.safe_dump_all(resources))
    done = kubernetes_validate(out)
    assert done.returncode != 0
    assert typo in done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_probes_hit_the_port_the_service_listens_on(name: str) -> None:
    resources = built(name)
    container = deployment_container(resources)
    env = container_env(resources, container)
    (port,) = container["ports"]
    assert port["name"] == "http"
    assert env["LOSS_SERVICE_PORT"] == str(port["containerPort"])
    assert env["LOSS_SERVICE_HOST"] == "0.0.0.0"
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe")}
    probes["livenessProbe"] = container["livenessProbe"]["httpGet"]
    assert {kind: p["path"] for kind, p in probes.items()} == {
        "startupProbe": "/v2/health/ready",
        "readinessProbe": "/v2/health/ready",
        "livenessProbe": "/v2/health/live",
    }
    assert all(p["port"] in ("http", port["containerPort"]) for p in probes.values())
    annotations = one(resources, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_pod_runs_as_the_images_user_on_a_read_only_root(name: str) -> None:
    resources = built(name)
    pod = one(resources, "Deployment")["spec"]["template"]["spec"]
    container = deployment_container(resources)
    user, _, group = image_user().partition(":")
    assert user.isdigit(), "the image's USER must be numeric for runAsNonRoot to verify it"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == user
    assert str(pod["securityContext"]["runAsGroup"]) == (group or user)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # The one writable place is an emptyDir at /tmp (tempfile.gettempdir() in the container).
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp": "tmp"}
    assert "emptyDir" in volumes["tmp"]


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_shutdown_fits_in_the_termination_grace_period(name: str) -> None:
    """preStop pause + LOSS_SERVICE_SHUTDOWN_GRACE < terminationGracePeriodSeconds, so the
    process ends by itself (status 0) before the kubelet's SIGKILL."""
    resources = built(name)
    pod = one(resources, "Deployment")["spec"]["template"]["spec"]
    container = deployment_container(resources)
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = int(command[1])
    assert 1 <= pause <= 10
    grace = int(container_env(resources, container)["LOSS_SERVICE_SHUTDOWN_GRACE"])
    assert pause + grace < pod["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_one_worker_per_pod_and_the_autoscaler_adds_pods(name: str) -> None:
    resources = built(name)
    deployment = one(resources, "Deployment")
    container = deployment_container(resources)
    assert container_env(resources, container)["LOSS_SERVICE_WORKERS"] == "1"
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns the count"
    resources_ = container["resources"]
    assert {"cpu", "memory"} <= set(resources_["requests"]) <= set(resources_["limits"])
    hpa = one(resources, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_service_and_disruption_budget_select_the_pods(name: str) -> None:
    resources = built(name)
    deployment = one(resources, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert one(resources, "Service")["spec"]["selector"] == selector
    pdb = one(resources, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert (
        pdb["spec"]["minAvailable"]
        < one(resources, "HorizontalPodAutoscaler")["spec"]["minReplicas"]
    )
    (port,) = one(resources, "Service")["spec"]["ports"]
    assert port["targetPort"] == "http"


def test_gpu_overlay_asks_for_one_gpu_and_computes_on_cuda() -> None:
    base, gpu = built("base"), built("gpu")
    base_container, gpu_container = deployment_container(base), deployment_container(gpu)
    assert container_env(base, base_container)["LOSS_SERVICE_DEVICE"] == "cpu"
    gpu_env = container_env(gpu, gpu_container)
    assert gpu_env["LOSS_SERVICE_DEVICE"] == "cuda"
    # Only the device differs in the settings.
    assert {k: v for k, v in gpu_env.items() if k != "LOSS_SERVICE_DEVICE"} == {
        k: v for k, v in container_env(base, base_container).items() if k != "LOSS_SERVICE_DEVICE"
    }
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu_container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in base_container["resources"]["limits"]
    base_image, gpu_image = base_container["image"], gpu_container["image"]
    assert gpu_image.endswith("-cuda")
    assert gpu_image.removesuffix("-cuda") == base_image
