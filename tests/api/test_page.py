"""The explainer page's routes: HTML for browsers, a JSON index for JSON clients, the package's
static files, open when API keys are required, and shipped as package data."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import httpx
import pytest

from service.api.page import STATIC_DIR, prefers_json
from service.app import create_app
from service.conventions import names
from tests.conftest import cpu_settings

pytestmark = pytest.mark.anyio

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", ["/", "/explain"])
async def test_browsers_get_the_page(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path, headers={"accept": BROWSER_ACCEPT})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<link rel="icon" href="data:,">' in r.text  # no favicon request, no 404 logged
    assert 'type="module"' in r.text
    assert "http://" not in r.text.replace("http://www.w3.org", "")  # nothing off-origin
    assert "https://" not in r.text


async def test_json_clients_get_an_index(client: httpx.AsyncClient) -> None:
    r = await client.get("/", headers={"accept": "application/json"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    index = r.json()
    assert "cross_entropy" in index["losses"]
    assert index["endpoints"]["conventions"] == "POST /v1/conventions/{name}"
    assert index["endpoints"]["diagnose"] == "POST /v1/diagnose/{name}"
    assert index["conventions"] == names()
    assert {"cross_entropy", "binary_cross_entropy"} <= set(index["conventions"])


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        ("application/json", True),
        ("application/json, text/plain, */*", True),
        (BROWSER_ACCEPT, False),
        ("*/*", False),
        ("", False),
        ("text/html;q=0.5, application/json", True),
        ("application/json;q=0.1, text/html", False),
    ],
)
def test_prefers_json(accept: str, json: bool) -> None:
    assert prefers_json(accept) is json


@pytest.mark.parametrize(
    "name", sorted(p.name for p in STATIC_DIR.iterdir() if p.suffix in (".js", ".css"))
)
async def test_static_files(client: httpx.AsyncClient, name: str) -> None:
    r = await client.get(f"/explain/static/{name}")
    assert r.status_code == 200
    kind = "javascript" if name.endswith(".js") else "css"
    assert kind in r.headers["content-type"]
    assert "https://" not in r.text
    assert "cdn" not in r.text.lower()


def test_every_module_the_page_loads_is_shipped() -> None:
    """The page's script and stylesheet, and each ES module's relative imports, are files of the
    static folder: a module renamed without its importers would fail only in a browser."""
    page = (STATIC_DIR / "index.html").read_text()
    wanted = set(re.findall(r'(?:src|href)="explain/static/([^"]+)"', page))
    assert {"main.js", "explain.css"} <= wanted
    for module in STATIC_DIR.glob("*.js"):
        wanted |= set(re.findall(r'from "\./([^"]+)"', module.read_text()))
    assert len(wanted) > 2
    for name in sorted(wanted):
        assert (STATIC_DIR / name).is_file(), name


def test_every_static_file_is_package_data() -> None:
    """The wheel (and so the Docker image) carries every file the page needs."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    found = re.search(r"^service = \[(.*)\]$", section, re.M)
    assert found, "pyproject.toml declares no package data for service"
    patterns = [p.strip().strip('"') for p in found.group(1).split(",")]
    package = ROOT / "service"
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert files
    for path in files:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


async def test_the_page_stays_open_when_keys_are_required() -> None:
    app = create_app(cpu_settings(api_keys="sesame"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.get("/explain")).status_code == 200
        assert (await c.get("/explain/static/main.js")).status_code == 200
        assert (await c.get("/", headers={"accept": BROWSER_ACCEPT})).status_code == 200
        r = await c.post("/v1/conventions/cross_entropy", json={})
        assert r.status_code == 401
        r = await c.post(
            "/v1/conventions/cross_entropy",
            json={"input": [[1.0, 2.0]], "target": [1]},
            headers={"authorization": "Bearer sesame"},
        )
        assert r.status_code == 200
