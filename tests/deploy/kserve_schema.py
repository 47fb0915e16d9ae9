"""Offline validation of KServe resources against KServe's own CRDs (vendored in crds/).

`kubernetes-validate` knows only Kubernetes' built-in kinds (it passes a ServingRuntime without
looking), so the KServe resources are checked here with ``jsonschema`` against the
``openAPIV3Schema`` of their CRD, the way the API server checks them with strict field
validation (``kubectl --validate=strict``):

- A CRD schema is *structural*: an object with ``properties`` admits only those, unless it sets
  ``x-kubernetes-preserve-unknown-fields`` (then anything goes below it) or states its own
  ``additionalProperties`` (maps such as ``labels`` or ``resources.limits``). JSON Schema admits
  unknown properties by default, so the validator adds ``additionalProperties: false`` to every
  object schema with ``properties`` that says neither.
- ``metadata`` is ``type: object`` in every CRD; the API server checks it as ObjectMeta. Here it
  is checked by `kubernetes-validate`'s own strict ObjectMeta schema.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

from tests.deploy.manifests import load_file

CRDS = Path(__file__).parent / "crds"
CRD_FILES = {
    "ServingRuntime": CRDS / "serving.kserve.io_servingruntimes.yaml",
    "InferenceService": CRDS / "serving.kserve.io_inferenceservices.yaml",
}
# The files as vendored (README.md in crds/ records where from); a test pins them unmodified.
CRD_SHA256 = {
    "serving.kserve.io_servingruntimes.yaml": (
        "5a262831474e7bd23e7c4f76556d84e1a11fb3ad74a78a6d18cfc71fd8fca7a2"
    ),
    "serving.kserve.io_inferenceservices.yaml": (
        "57c3bf13f77de94678bf2ae3748056ec071ad2b9e88d6a28f44fb4710758fcff"
    ),
}


def closed(schema: Any) -> Any:
    """A copy of ``schema`` in which every object that lists ``properties`` and neither
    preserves unknown fields nor states ``additionalProperties`` rejects unknown ones."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("x-kubernetes-preserve-unknown-fields") is True:
        return copy.deepcopy(schema)
    out = {key: closed(value) for key, value in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


@cache
def crd_schema(kind: str, api_version: str) -> dict[str, Any]:
    """The closed ``openAPIV3Schema`` of ``kind`` at ``api_version`` (group/version)."""
    (crd,) = load_file(CRD_FILES[kind])
    group = crd["spec"]["group"]
    assert crd["spec"]["names"]["kind"] == kind
    for version in crd["spec"]["versions"]:
        if f"{group}/{version['name']}" == api_version:
            assert version["served"], f"{api_version} {kind} is not served"
            schema: dict[str, Any] = closed(version["schema"]["openAPIV3Schema"])
            return schema
    raise AssertionError(f"{kind} has no version {api_version}")


def errors(resource: dict[str, Any]) -> list[str]:
    """Every reason the API server would refuse ``resource`` under strict validation, as
    ``path: message`` lines; empty when it is valid."""
    kind, api_version = resource.get("kind"), resource.get("apiVersion")
    if kind not in CRD_FILES:
        return [f"kind {kind!r} is not a KServe resource known here"]
    validator = jsonschema.Draft7Validator(crd_schema(kind, str(api_version)))
    found = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(resource), key=lambda e: list(e.absolute_path))
    ]
    # ObjectMeta, through a built-in kind whose metadata is exactly ObjectMeta.
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": resource.get("metadata", {})}
    try:
        kubernetes_validate.validate(probe, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as e:
        found.append(f"metadata: {e.message}")
    return found
