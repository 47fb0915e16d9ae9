"""The deployment files as the tests see them: kustomize's build output, the KServe resources,
the image's environment from the Dockerfile.

kustomize is the real one: kubectl's built-in ``kubectl kustomize`` (on this project's machines)
or a standalone ``kustomize``. Neither PyPI nor Debian packages a kustomize binary, so there is
nothing for ``pyproject.toml`` to install; without either, the tests that need a build fail in
CI and skip elsewhere, saying which command is missing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KSERVE = ROOT / "deploy" / "kserve"
DOCKERFILE = ROOT / "Dockerfile"

Resource = dict[str, Any]

# The kustomizations a user applies: the CPU default (the base) and each overlay.
KUSTOMIZATIONS = {"base": K8S, "gpu": K8S / "gpu"}

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_all(text: str) -> list[Resource]:
    return [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc is not None]


def load_file(path: Path) -> list[Resource]:
    return load_all(path.read_text())


def kustomize_command() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    message = "neither `kustomize` nor `kubectl` (whose `kubectl kustomize` builds) is on PATH"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@cache
def _build(directory: Path) -> str:
    done = subprocess.run(
        [*kustomize_command(), str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def kustomize_build(directory: Path) -> str:
    """The rendered YAML of a kustomization (cached: a build takes a fraction of a second, but
    many tests read the same one)."""
    return _build(directory)


def built(name: str) -> list[Resource]:
    return load_all(kustomize_build(KUSTOMIZATIONS[name]))


def one(resources: list[Resource], kind: str) -> Resource:
    found = [r for r in resources if r["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container_env(resources: list[Resource], container: Resource) -> dict[str, str]:
    """The environment Kubernetes gives ``container``: each ``envFrom`` ConfigMap of
    ``resources`` in order, then ``env`` on top (literal values only: the manifests use no
    ``valueFrom``)."""
    env: dict[str, str] = {}
    configmaps = {r["metadata"]["name"]: r for r in resources if r["kind"] == "ConfigMap"}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in configmaps, f"envFrom names ConfigMap {name!r}, which is not in the build"
        env.update({k: str(v) for k, v in configmaps[name].get("data", {}).items()})
    for item in container.get("env", []):
        assert "value" in item, f"{item['name']}: only literal values are supported here"
        env[item["name"]] = str(item["value"])
    return env


def image_env() -> dict[str, str]:
    """The ``ENV`` of the Dockerfile's final image, which every container starts with."""
    env: dict[str, str] = {}
    lines = DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
    for line in lines:
        words = shlex.split(line, comments=True)
        if words and words[0].upper() == "FROM":
            env.clear()
        if words and words[0].upper() == "ENV":
            for word in words[1:]:
                key, sep, value = word.partition("=")
                assert sep, f"unsupported ENV form: {line.strip()}"
                assert "$" not in value, f"unsupported ENV form: {line.strip()}"
                env[key] = value
    return env


def image_user() -> str:
    """The Dockerfile's last ``USER``."""
    users = [
        line.split()[1]
        for line in DOCKERFILE.read_text().splitlines()
        if line.upper().startswith("USER ")
    ]
    assert users, "the Dockerfile sets no USER"
    return users[-1]
