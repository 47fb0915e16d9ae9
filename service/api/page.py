"""The explainer page (``GET /`` and ``GET /explain``) and the JSON index of the API.

The page is plain HTML, CSS and ES modules shipped in the package (``service/static/explain``),
served as files: no build step, no CDN. Its numbers all come from the API it calls: the losses
that have conventions (``GET /v1/conventions``), each one's inputs, options and example
(``GET /v1/losses/{name}``), and per edit ``POST /v1/losses/{name}``,
``/v1/conventions/{name}`` and, for a number the user typed, ``/v1/diagnose/{name}``. A client
that prefers JSON at ``/`` (``Accept: application/json``) gets a short index of the API instead
of the page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from service import __version__, conventions
from service.jsonenc import dumps
from service.losses import registry

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "explain"
STATIC_PREFIX = "/explain/static"


def prefers_json(accept: str) -> bool:
    """Whether an ``Accept`` header ranks application/json above text/html (a browser's
    ``text/html,...,*/*;q=0.8`` does not; ``application/json`` alone does)."""
    ranks: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranks[media.lower()] = max(q, ranks.get(media.lower(), 0.0))
    json_q = ranks.get("application/json", 0.0)
    html_q = max(ranks.get("text/html", 0.0), ranks.get("*/*", 0.0) if json_q == 0 else 0.0)
    return json_q > 0 and json_q >= html_q


def index() -> dict[str, object]:
    return {
        "name": "loss-service",
        "version": __version__,
        "description": "torch.nn.functional losses over HTTP, each beside an independent NumPy "
        "float64 reference, a breakdown and warnings.",
        "endpoints": {
            "losses": "GET /v1/losses",
            "loss": "GET /v1/losses/{name}",
            "compute": "POST /v1/losses/{name}",
            "batch": "POST /v1/losses:batch",
            "conventions": "POST /v1/conventions/{name}",
            "diagnose": "POST /v1/diagnose/{name}",
            "open_inference_protocol": "/v2",
            "health": "GET /v2/health/live, GET /v2/health/ready",
            "openapi": "GET /openapi.json",
            "docs": "GET /docs",
            "explain": "GET /explain",
        },
        "losses": registry.names(),
        "conventions": conventions.names(),
    }


def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


def build_router() -> APIRouter:
    router = APIRouter(tags=["page"])

    @router.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        if prefers_json(request.headers.get("accept", "")):
            return Response(dumps(index()), media_type="application/json")
        return page()

    @router.get("/explain", include_in_schema=False)
    async def explain() -> Response:
        return page()

    return router


def install(app: FastAPI) -> None:
    """The routes and the static files (Starlette's ``StaticFiles``, from the package)."""
    app.include_router(build_router())
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="explain-static")
