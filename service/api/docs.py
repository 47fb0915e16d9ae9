"""``/docs`` (Swagger UI 5) and ``/redoc`` served with their files from the service itself.

FastAPI's default pages load Swagger UI and ReDoc from a CDN, a blank page on a machine without
internet. Following FastAPI's self-hosting recipe, the app is built with ``docs_url=None`` and
``redoc_url=None`` and these routes render the same pages (``get_swagger_ui_html``,
``get_redoc_html``) pointing at the files vendored in ``static/`` (``static/VENDORED.md`` says
which releases, from where, under which licences). ReDoc's Google fonts are left out: the page
falls back to the browser's fonts rather than reach another origin.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/docs/static"
DOCS = "/docs"
REDOC = "/redoc"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
FAVICON = "/favicon.ico"

SWAGGER_JS = "swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui/swagger-ui.css"
REDOC_JS = "redoc/redoc.standalone.js"
FAVICON_FILE = "swagger-ui/favicon-32x32.png"

#: Paths the docs need; open without an API key when ``open_docs`` (with ``STATIC_PREFIX``).
DOCS_PATHS = frozenset({DOCS, OAUTH2_REDIRECT, REDOC, "/openapi.json", FAVICON})


#: ReDoc 2 shows Redocly's logo in its side menu, loaded from their CDN whatever the options.
#: The bundle is served with that one URL emptied (the image then hides itself, the "API docs by
#: Redocly" link stays); the vendored file itself stays byte for byte as released.
REDOC_OFFSITE_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@lru_cache(maxsize=1)
def redoc_bundle() -> bytes:
    return (STATIC_DIR / REDOC_JS).read_bytes().replace(REDOC_OFFSITE_LOGO, b"")


def install(app: FastAPI) -> None:
    """Add the docs pages, the static files and a favicon (browsers ask for ``/favicon.ico``;
    a 404 there is a console error on every page)."""

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get(DOCS, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=base + str(app.openapi_url),
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=base + OAUTH2_REDIRECT,
            swagger_js_url=f"{base}{STATIC_PREFIX}/{SWAGGER_JS}",
            swagger_css_url=f"{base}{STATIC_PREFIX}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{base}{STATIC_PREFIX}/{FAVICON_FILE}",
            # Swagger UI's validator badge would send the document to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(
            openapi_url=base + str(app.openapi_url),
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{base}{STATIC_PREFIX}/{REDOC_JS}",
            redoc_favicon_url=f"{base}{STATIC_PREFIX}/{FAVICON_FILE}",
            with_google_fonts=False,
        )

    @app.get(FAVICON, include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / FAVICON_FILE, media_type="image/png")

    # Before the mount, so that this route answers for the bundle's path.
    @app.get(f"{STATIC_PREFIX}/{REDOC_JS}", include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(
            redoc_bundle(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="docs-static")
