"""Client generators run on the live OpenAPI document, once per document: their output is kept
under ``.cache/openapi-clients/<hash of the document>/`` (ignored by git), so a session that does
not change the document generates nothing.

Each ``generate_*`` returns the directory holding the client and the generator's own output,
which the tests read for skipped operations and warnings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import openapi_generator_cli

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "openapi-clients"
NODE_DIR = Path(__file__).resolve().parent
NODE_BIN = NODE_DIR / "node_modules" / ".bin"

PY_PACKAGE = "loss_service_client"
"""openapi-python-client's package name."""
OG_PACKAGE = "loss_service_og_client"
"""OpenAPI Generator's (``python``) package name."""

#: OpenAPI Generator's warnings that say nothing is missing: 3.1 being in beta, and a schema
#: without a type (``Any``: a loss's ``value``, a breakdown) typed as ``typing.Any``.
OG_BENIGN_WARNINGS = (
    "OpenAPI 3.1 support is still in beta",
    "Codegen property is null (e.g. map/dict of undefined type). Default to typing.Any.",
    "Failed to get the schema name: null",
)


@dataclass(frozen=True)
class Generated:
    path: Path
    log: str


def cache_dir(document: bytes) -> Path:
    return CACHE / hashlib.sha256(document).hexdigest()[:16]


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}):\n{log}")
    return log


def _once(out: Path, make: Path, build: list[list[str]], cwd: Path | None = None) -> Generated:
    """Run ``build`` into ``make`` unless ``out`` already holds a finished run of the same
    commands (the document is the same: ``out`` lies in its hash's folder)."""
    log_file = out / "generator.log"
    commands = json.dumps(build)
    done = out / "commands.json"
    if log_file.exists() and done.exists() and done.read_text() == commands:
        return Generated(out, log_file.read_text())
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log = "".join(_run(cmd, cwd) for cmd in build)
    assert make.exists(), log
    (out / "commands.json").write_text(commands)
    log_file.write_text(log)
    return Generated(out, log)


def generate_python(document: Path) -> Generated:
    """openapi-python-client, with no post-hooks (formatting the output is not our test)."""
    out = document.parent / "openapi-python-client"
    config = document.parent / "openapi-python-client.yaml"
    config.write_text(f"post_hooks: []\npackage_name_override: {PY_PACKAGE}\n")
    exe = Path(sys.executable).parent / "openapi-python-client"
    cmd = [str(exe), "generate", "--path", str(document), "--meta", "none"]
    cmd += ["--output-path", str(out / PY_PACKAGE), "--config", str(config)]
    return _once(out, out / PY_PACKAGE, [cmd])


def java() -> str | None:
    return shutil.which("java")


def generate_openapi_generator(document: Path) -> Generated:
    """OpenAPI Generator's ``python`` client, from the jar that PyPI's openapi-generator-cli
    wheel carries (Java from the system)."""
    out = document.parent / "openapi-generator"
    jar = Path(openapi_generator_cli.__file__).parent / "openapi-generator.jar"
    cmd = [str(java()), "-jar", str(jar), "generate", "-i", str(document), "-g", "python"]
    cmd += ["-o", str(out / "src"), "--package-name", OG_PACKAGE]
    cmd += ["--global-property", "apiTests=false,modelTests=false,apiDocs=false,modelDocs=false"]
    return _once(out, out / "src" / OG_PACKAGE, [cmd])


def node_ready() -> bool:
    return shutil.which("node") is not None and (NODE_BIN / "tsc").exists()


def generate_typescript(document: Path) -> Generated:
    """openapi-typescript's types of the document (``schema.d.ts``), for openapi-fetch.

    ``--default-non-nullable=false``, as the README tells TypeScript users: by default
    openapi-typescript 7 makes every property with a ``default`` required unless the schema is
    written inline in the request body, so the named request models (``CrossEntropyParams``)
    would demand ``reduction`` and the like (openapi-typescript's issues 1741 and 2012)."""
    out = document.parent / "typescript"
    cmd = [str(NODE_BIN / "openapi-typescript"), str(document), "-o", str(out / "schema.d.ts")]
    cmd.append("--default-non-nullable=false")
    return _once(out, out / "schema.d.ts", [cmd])


def compile_and_run_typescript(out: Path, source: str) -> str:
    """Compile ``source`` (an ES module using openapi-fetch and ``./schema``) with
    ``tsc --strict`` and run it with node; its standard output."""
    link = out / "node_modules"
    if not link.exists():
        os.symlink(NODE_DIR / "node_modules", link)
    (out / "main.mts").write_text(source)
    _run(
        [
            str(NODE_BIN / "tsc"),
            "--strict",
            "--noEmitOnError",
            "--target",
            "es2022",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--lib",
            "es2022,dom",
            "main.mts",
        ],
        cwd=out,
    )
    return _run(["node", "main.mjs"], cwd=out)
