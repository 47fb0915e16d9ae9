"""/docs and /redoc are served with files of the service's own: no URL in their pages leaves the
origin, the vendored files are the recorded releases, and the wheel ships them."""

from __future__ import annotations

import hashlib
import re
import sys
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest

from service.api import docs
from tests.observability.conftest import app_of, asgi_client

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
VENDORED = docs.STATIC_DIR / "VENDORED.md"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


# (not named "page": that is pytest-playwright's fixture, which would make this a browser test)
@pytest.mark.parametrize("docs_page", ["/docs", "/redoc"])
async def test_pages_name_only_same_origin_files(client: httpx.AsyncClient, docs_page: str) -> None:
    html = (await client.get(docs_page)).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert urls, html
    assert all(u.startswith("/") for u in urls), urls
    assert "https://" not in html.replace("https://loss-service.dev", "")
    for url in urls:
        answer = await client.get(url)
        assert answer.status_code == 200, url


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/docs/static/swagger-ui/swagger-ui-bundle.js", "text/javascript"),
        ("/docs/static/swagger-ui/swagger-ui.css", "text/css"),
        ("/docs/static/redoc/redoc.standalone.js", "text/javascript"),
        ("/docs/static/swagger-ui/favicon-32x32.png", "image/png"),
        ("/favicon.ico", "image/png"),
        ("/docs/oauth2-redirect", "text/html"),
    ],
)
async def test_static_files_are_served(
    client: httpx.AsyncClient, path: str, media_type: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == media_type


async def test_redoc_is_served_without_its_offsite_logo(client: httpx.AsyncClient) -> None:
    served = (await client.get("/docs/static/redoc/redoc.standalone.js")).content
    assert docs.REDOC_OFFSITE_LOGO in (docs.STATIC_DIR / docs.REDOC_JS).read_bytes()
    assert b"cdn.redoc.ly" not in served
    assert len(served) > 1_000_000


@pytest.mark.parametrize(
    "path", ["/docs", "/redoc", "/docs/static/swagger-ui/swagger-ui.css", "/favicon.ico"]
)
async def test_docs_and_their_files_are_open_like_docs_with_api_keys(path: str) -> None:
    async with asgi_client(app_of(api_keys=["docs-key"])) as keyed:
        assert (await keyed.get(path)).status_code == 200
    async with asgi_client(app_of(api_keys=["docs-key"], open_docs=False)) as closed:
        assert (await closed.get(path)).status_code == 401


def test_vendored_files_match_their_recorded_checksums() -> None:
    recorded = dict(
        (name, digest)
        for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)", VENDORED.read_text(), re.M)
    )
    files = sorted(
        str(p.relative_to(docs.STATIC_DIR)) for p in docs.STATIC_DIR.rglob("*") if p.is_file()
    )
    assert sorted(recorded) == [f for f in files if f != "VENDORED.md"]
    for name, digest in recorded.items():
        assert hashlib.sha256((docs.STATIC_DIR / name).read_bytes()).hexdigest() == digest, name


def test_swagger_ui_is_release_5_which_reads_openapi_3_1() -> None:
    bundle = (docs.STATIC_DIR / docs.SWAGGER_JS).read_text()
    assert "5.35.0" in VENDORED.read_text()
    assert re.search(r'version:"5\.\d+\.\d+"|"5\.\d+\.\d+"', bundle)
    assert (docs.STATIC_DIR / "swagger-ui" / "LICENSE").is_file()
    assert (docs.STATIC_DIR / "redoc" / "LICENSE").is_file()


def test_the_wheel_ships_every_static_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["service.api"]
    base = ROOT / "service" / "api"
    for path in docs.STATIC_DIR.rglob("*"):
        if path.is_file():
            relative = str(path.relative_to(base))
            assert any(fnmatch(relative, p) for p in patterns), relative
