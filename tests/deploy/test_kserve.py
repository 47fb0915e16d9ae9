"""deploy/kserve: the ServingRuntime and the InferenceService are valid against KServe's CRDs
(unknown fields rejected), and they fit together and with the service."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from tests.deploy.kserve_schema import CRD_FILES, CRD_SHA256, CRDS, errors
from tests.deploy.manifests import (
    KSERVE,
    Resource,
    built,
    container_env,
    image_user,
    load_file,
    one,
)

FILES = ["servingruntime.yaml", "inferenceservice.yaml"]


def resources() -> list[Resource]:
    return [r for name in FILES for r in load_file(KSERVE / name)]


def runtime_container() -> Resource:
    (container,) = one(resources(), "ServingRuntime")["spec"]["containers"]
    assert isinstance(container, dict)
    return container


@pytest.mark.parametrize("name", sorted(CRD_SHA256))
def test_vendored_crds_are_unmodified(name: str) -> None:
    assert hashlib.sha256((CRDS / name).read_bytes()).hexdigest() == CRD_SHA256[name]
    assert (CRDS / "LICENSE").read_text().lstrip().startswith("Apache License")


@pytest.mark.parametrize("name", FILES)
def test_manifest_is_valid_against_kserves_crd(name: str) -> None:
    (resource,) = load_file(KSERVE / name)
    assert resource["kind"] in CRD_FILES
    assert errors(resource) == []


def set_path(resource: Resource, path: tuple[Any, ...], value: Any) -> Resource:
    out = copy.deepcopy(resource)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("name", "path", "value", "complaint"),
    [
        # Misspelt fields, at the top of spec and deep inside: what only strictness catches.
        ("servingruntime.yaml", ("spec", "protocolVersion"), ["v2"], "protocolVersion"),
        ("servingruntime.yaml", ("spec", "containers", 0, "readinesProbe"), {}, "readinesProbe"),
        (
            "servingruntime.yaml",
            ("spec", "containers", 0, "securityContext", "readOnlyRoot"),
            True,
            "readOnlyRoot",
        ),
        ("servingruntime.yaml", ("metadata", "annotation"), {"a": "b"}, "annotation"),
        (
            "inferenceservice.yaml",
            ("spec", "predictor", "model", "runtimeName"),
            "x",
            "runtimeName",
        ),
        ("inferenceservice.yaml", ("spec", "predictor", "minReplica"), 1, "minReplica"),
        # Wrong types and shapes.
        ("servingruntime.yaml", ("spec", "protocolVersions"), "v2", "not of type 'array'"),
        ("servingruntime.yaml", ("spec", "containers", 0, "ports", 0, "containerPort"), "8080", ""),
        ("inferenceservice.yaml", ("spec", "predictor", "model", "modelFormat"), {}, "'name'"),
    ],
)
def test_validator_rejects_what_the_api_server_would(
    name: str, path: tuple[Any, ...], value: Any, complaint: str
) -> None:
    (resource,) = load_file(KSERVE / name)
    found = errors(set_path(resource, path, value))
    assert found, f"{'/'.join(map(str, path))} = {value!r} passed"
    assert any(complaint in line for line in found), found


def test_validator_keeps_maps_and_preserved_fields_open() -> None:
    """Labels, annotations and resource names are maps, and status preserves unknown fields:
    closing the schema must not refuse those."""
    (resource,) = load_file(KSERVE / "inferenceservice.yaml")
    resource = set_path(resource, ("metadata", "labels"), {"team": "ml", "tier": "gold"})
    resource = set_path(
        resource, ("spec", "predictor", "model", "resources", "limits", "nvidia.com/gpu"), 1
    )
    resource["status"] = {"anything": {"at": "all"}}
    assert errors(resource) == []


def test_runtime_speaks_v2_on_kserves_port() -> None:
    runtime = one(resources(), "ServingRuntime")
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    container = runtime_container()
    assert container["name"] == "kserve-container"
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    env = container_env(resources(), container)
    assert env["LOSS_SERVICE_PORT"] == "8080"
    assert env["LOSS_SERVICE_HOST"] == "0.0.0.0"
    assert env["LOSS_SERVICE_WORKERS"] == "1"
    for probe, path in (
        ("readinessProbe", "/v2/health/ready"),
        ("livenessProbe", "/v2/health/live"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": 8080}


def test_runtime_runs_as_the_images_user_on_a_read_only_root() -> None:
    runtime = one(resources(), "ServingRuntime")
    container = runtime_container()
    security = container["securityContext"]
    user, _, group = image_user().partition(":")
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == user
    assert str(security["runAsGroup"]) == (group or user)
    assert security["readOnlyRootFilesystem"] is True
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert [v["name"] for v in runtime["spec"]["volumes"] if "emptyDir" in v] == ["tmp"]


def test_inference_service_uses_the_runtime() -> None:
    runtime = one(resources(), "ServingRuntime")
    model = one(resources(), "InferenceService")["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["protocolVersion"] == "v2"
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["modelFormat"]["name"] in formats
    assert "storageUri" not in model, "the losses need no model files"


def test_runtime_runs_the_same_cpu_image_as_the_deployment() -> None:
    (container,) = one(built("base"), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert runtime_container()["image"] == container["image"]
