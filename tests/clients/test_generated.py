"""Clients generated from the live ``/openapi.json`` work, as a new user would generate them.

Three generators: openapi-python-client, OpenAPI Generator's ``python`` client (its jar, from
PyPI's openapi-generator-cli, run by the system's Java) and openapi-typescript with
openapi-fetch (compiled with ``tsc --strict``, run with node). Each must generate every
operation of the document, none skipped; through each client the test then sends every loss's
catalogue example (``GET /v1/losses/{name}``'s ``example``), a batch, a conventions request and a
refused one (a 422 problem), and each answer must be the one a direct httpx request gets: the
same status and the same JSON, and the client's typed model must read it.

Java and the npm packages (``npm ci --prefix tests/clients``) are installed by ``.ci/run``:
under ``CI=true`` their absence fails; elsewhere those two clients are skipped.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import sys
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.clients import generators
from tests.server import LiveServer

pytestmark = pytest.mark.slow

CI = os.environ.get("CI", "").lower() == "true"


@dataclass(frozen=True)
class Call:
    """One request, by operation id, with its path template, path parameters and JSON body."""

    op: str
    method: str
    template: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None

    @property
    def path(self) -> str:
        return self.template.format(**self.params)

    @property
    def id(self) -> str:
        return f"{self.op}({self.params['name']})" if self.params else self.op


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


@pytest.fixture(scope="module")
def document(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The live document, saved where its generated clients are kept."""
    raw = httpx.get(server.url + "/openapi.json").content
    where = generators.cache_dir(raw)
    where.mkdir(parents=True, exist_ok=True)
    path = where / "openapi.json"
    path.write_bytes(raw)
    return path


@pytest.fixture(scope="module")
def spec(document: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(document.read_bytes())
    return loaded


def operations(spec: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Every operation id with its method and path."""
    return {
        op["operationId"]: (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }


@pytest.fixture(scope="module")
def calls(server: LiveServer, spec: dict[str, Any]) -> list[Call]:
    catalogue = httpx.get(server.url + "/v1/losses").json()["losses"]
    out = [Call("describe_loss", "GET", "/v1/losses/{name}", {"name": "cross_entropy"})]
    for entry in catalogue:
        example = httpx.get(f"{server.url}/v1/losses/{entry['name']}").json()["example"]
        out.append(
            Call(f"compute_{entry['name']}", "POST", f"/v1/losses/{entry['name']}", {}, example)
        )
    by_name = {e["name"]: e for e in catalogue}
    batch = {
        "items": [
            {"loss": "cross_entropy", "args": by_name["cross_entropy"]["example"]},
            {"loss": "mse_loss", "args": by_name["mse_loss"]["example"]},
            {"loss": "cross_entropy", "args": {"input": [[0.1, 0.2]], "target": [5]}},
        ]
    }
    out.append(Call("compute_batch", "POST", "/v1/losses:batch", {}, batch))
    ce = by_name["cross_entropy"]["example"]
    out.append(Call("conventions_cross_entropy", "POST", "/v1/conventions/cross_entropy", {}, ce))
    refused = {"input": [[0.1, 0.7, 0.2]], "target": [5]}
    out.append(Call("compute_cross_entropy", "POST", "/v1/losses/cross_entropy", {}, refused))
    known = operations(spec)
    for call in out:
        assert known[call.op] == (call.method, call.template), call
    return out


@pytest.fixture(scope="module")
def direct(server: LiveServer, calls: list[Call]) -> list[Answer]:
    """What plain httpx gets for each call: the answers every client must reproduce."""
    out = []
    for call in calls:
        r = httpx.request(call.method, server.url + call.path, json=call.body, timeout=60)
        out.append(Answer(r.status_code, r.json()))
    assert [a.status for a in out[:-1]] == [200] * (len(out) - 1)
    assert out[-1].status == 422
    assert out[-1].body["type"].endswith("/invalid-input")
    assert out[-2].body["conventions"]
    assert [r["status"] for r in out[-3].body["results"]] == [200, 200, 422]
    return out


def assert_same(calls: list[Call], got: list[Answer], want: list[Answer]) -> None:
    assert len(got) == len(want)
    for call, g, w in zip(calls, got, want, strict=True):
        assert g.status == w.status, (call.id, g.body)
        assert g.body == w.body, call.id


@contextlib.contextmanager
def importable(folder: Path) -> Iterator[None]:
    """``folder`` on ``sys.path`` for the duration, and its packages forgotten after."""
    before = set(sys.modules)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for name in set(sys.modules) - before:
            del sys.modules[name]


def submodules(package: str) -> dict[str, Any]:
    """Every module of ``package``, by its last name."""
    root = importlib.import_module(package)
    found = {}
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        found[info.name.rsplit(".", 1)[-1]] = importlib.import_module(info.name)
    return found


# -- openapi-python-client ---------------------------------------------------------------------


def test_openapi_python_client(
    server: LiveServer,
    document: Path,
    spec: dict[str, Any],
    calls: list[Call],
    direct: list[Answer],
) -> None:
    generated = generators.generate_python(document)
    assert "Skipping" not in generated.log
    assert "Warning" not in generated.log, generated.log
    package = generated.path / generators.PY_PACKAGE
    written = {p.stem for p in (package / "api").rglob("*.py") if p.stem != "__init__"}
    assert written == set(operations(spec)), "operations missing from the client"

    with importable(generated.path):
        client_module = importlib.import_module(f"{generators.PY_PACKAGE}.client")
        api = submodules(f"{generators.PY_PACKAGE}.api")
        client = client_module.Client(base_url=server.url, timeout=httpx.Timeout(60.0))
        got = []
        with client:
            for call in calls:
                module = api[call.op]
                kwargs: dict[str, Any] = dict(call.params)
                if call.body is not None:
                    model = typing.get_type_hints(module._get_kwargs)["body"]
                    kwargs["body"] = model.from_dict(call.body)
                response = module.sync_detailed(client=client, **kwargs)
                got.append(Answer(int(response.status_code), orjson.loads(response.content)))
                read_typed(call, response.parsed, got[-1])
    assert_same(calls, got, direct)


def read_typed(call: Call, parsed: Any, answer: Answer) -> None:
    """The client's model of the answer holds what the JSON holds."""
    kind = type(parsed).__name__
    if answer.status != 200:
        assert kind == "Problem", call.id
        assert (parsed.type_, parsed.field) == (answer.body["type"], answer.body["field"])
    elif call.op == "compute_batch":
        assert kind == "BatchResponse"
        assert [r.status for r in parsed.results] == [r["status"] for r in answer.body["results"]]
    elif call.op.startswith("conventions_"):
        assert kind == "ConventionsResponse"
        assert [r.id for r in parsed.conventions] == [r["id"] for r in answer.body["conventions"]]
    elif call.op.startswith("compute_"):
        assert kind == "LossResponse"
        assert (parsed.name, parsed.value) == (answer.body["name"], answer.body["value"])
        assert parsed.reference.agrees is answer.body["reference"]["agrees"] is True
    else:
        assert kind == "LossSummary"
        assert parsed.example.to_dict() == answer.body["example"]


# -- OpenAPI Generator (python) ------------------------------------------------------------------


def _needs(ready: bool, what: str) -> None:
    if not ready:
        if CI:
            pytest.fail(f"{what} is missing; .ci/run installs it")
        pytest.skip(f"{what} is not installed here (.ci/run installs it)")


def test_openapi_generator_python(
    server: LiveServer,
    document: Path,
    spec: dict[str, Any],
    calls: list[Call],
    direct: list[Answer],
) -> None:
    _needs(generators.java() is not None, "java (apt: default-jre-headless)")
    generated = generators.generate_openapi_generator(document)
    warnings = [line for line in generated.log.splitlines() if " WARN " in line or "ERROR" in line]
    unexpected = [w for w in warnings if not any(b in w for b in generators.OG_BENIGN_WARNINGS)]
    assert not unexpected, unexpected
    src = generated.path / "src"
    with importable(src):
        package = importlib.import_module(generators.OG_PACKAGE)
        exceptions = importlib.import_module(f"{generators.OG_PACKAGE}.exceptions")
        config = package.Configuration(host=server.url)
        api_client = package.ApiClient(config)
        apis = [getattr(package, n)(api_client) for n in dir(package) if n.endswith("Api")]
        methods = {op: api for api in apis for op in operations(spec) if hasattr(api, op)}
        assert set(methods) == set(operations(spec)), "operations missing from the client"
        got = []
        for call in calls:
            method = getattr(methods[call.op], call.op + "_with_http_info")
            args: list[Any] = list(call.params.values())
            if call.body is not None:
                op = spec["paths"][call.template][call.method.lower()]
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                model = getattr(package, ref.rsplit("/", 1)[-1])
                args.append(model.from_dict(call.body))
            try:
                response = method(*args, _request_timeout=60)
            except exceptions.ApiException as exc:
                got.append(Answer(exc.status, orjson.loads(exc.body)))
                continue
            got.append(Answer(response.status_code, orjson.loads(response.raw_data)))
            assert response.data is not None
            assert type(response.data).__name__ == (
                "LossSummary"
                if call.method == "GET"
                else "BatchResponse"
                if call.op == "compute_batch"
                else "ConventionsResponse"
                if call.op.startswith("conventions_")
                else "LossResponse"
            )
    assert_same(calls, got, direct)


# -- openapi-typescript + openapi-fetch ---------------------------------------------------------


def typescript_driver(base_url: str, calls: list[Call]) -> str:
    """An ES module that sends ``calls`` through openapi-fetch, typed by the generated
    ``paths``: each body is a literal that ``tsc --strict`` checks against its schema."""
    lines = [
        'import createClient from "openapi-fetch";',
        'import type { paths } from "./schema.js";',
        "",
        f"const client = createClient<paths>({{ baseUrl: {json.dumps(base_url)} }});",
        "const out: { status: number; body: unknown }[] = [];",
        "",
    ]
    for call in calls:
        options: list[str] = []
        if call.params:
            options.append(f"params: {{ path: {json.dumps(call.params)} }}")
        if call.body is not None:
            options.append(f"body: {json.dumps(call.body)}")
        lines += [
            "{",
            f"  const {{ data, error, response }} = await client.{call.method}("
            f"{json.dumps(call.template)}, {{ {', '.join(options)} }});",
            "  out.push({ status: response.status, body: data ?? error });",
            "}",
        ]
    lines.append("console.log(JSON.stringify(out));")
    return "\n".join(lines) + "\n"


def test_openapi_typescript_fetch(
    server: LiveServer, document: Path, calls: list[Call], direct: list[Answer]
) -> None:
    _needs(generators.node_ready(), "node with tests/clients/node_modules (npm ci)")
    generated = generators.generate_typescript(document)
    stdout = generators.compile_and_run_typescript(
        generated.path, typescript_driver(server.url, calls)
    )
    got = [Answer(a["status"], a["body"]) for a in json.loads(stdout)]
    assert_same(calls, got, direct)
