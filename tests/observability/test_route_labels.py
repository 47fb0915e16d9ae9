"""Route labels: the template a path belongs to, never the raw path; ``unmatched`` otherwise."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from service.observability.requests import UNMATCHED, RouteLabels, is_probe, templates
from tests.observability.conftest import app_of


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return app_of()


@pytest.mark.parametrize(
    ("path", "route", "loss"),
    [
        ("/v1/losses/cross_entropy", "/v1/losses/{name}", "cross_entropy"),
        ("/v1/losses/mse_loss", "/v1/losses/{name}", "mse_loss"),
        ("/v1/losses/not_a_loss", "/v1/losses/{name}", ""),
        ("/v1/losses", "/v1/losses", ""),
        ("/v1/losses:batch", "/v1/losses:batch", ""),
        ("/v2/models/cross_entropy/infer", "/v2/models/{name}/infer", "cross_entropy"),
        (
            "/v2/models/nll_loss/versions/1/infer",
            "/v2/models/{name}/versions/{version}/infer",
            "nll_loss",
        ),
        ("/v2/models/nope/ready", "/v2/models/{name}/ready", ""),
        ("/v2/health/ready", "/v2/health/ready", ""),
        ("/v2", "/v2", ""),
        ("/metrics", "/metrics", ""),
        ("/docs", "/docs", ""),
        ("/docs/static/swagger-ui/swagger-ui.css", "/docs/static/{path}", ""),
        ("/openapi.json", "/openapi.json", ""),
        ("/", "/", ""),
        ("/explain", "/explain", ""),
        ("/explain/static/app.js", "/explain/static/{path}", ""),
        ("/v1/losses/", UNMATCHED, ""),
        ("/v1/losses/cross_entropy/extra", UNMATCHED, ""),
        ("/etc/passwd", UNMATCHED, ""),
    ],
)
def test_paths_map_to_their_template_and_loss(
    app: FastAPI, path: str, route: str, loss: str
) -> None:
    assert RouteLabels(lambda: app.router.routes)(path) == (route, loss)


def test_the_cache_is_bounded(app: FastAPI) -> None:
    labels = RouteLabels(lambda: app.router.routes, max_cached=8)
    for i in range(50):
        assert labels(f"/nowhere/{i}") == (UNMATCHED, "")
    assert len(labels.cache) == 8
    assert labels("/v1/losses/cross_entropy") == ("/v1/losses/{name}", "cross_entropy")


def test_every_route_of_the_app_has_a_template(app: FastAPI) -> None:
    found = list(templates(app.router.routes))
    assert "/v1/losses/{name}" in found
    assert "/v2/models/{name}/infer" in found
    assert "/docs/static/{path:path}" in found


@pytest.mark.parametrize(
    ("path", "probe"),
    [
        ("/v2/health/live", True),
        ("/v2/health/ready", True),
        ("/metrics", True),
        ("/metrics/x", False),
        ("/v1/losses/cross_entropy", False),
        ("/docs", False),
    ],
)
def test_probes(path: str, probe: bool) -> None:
    assert is_probe(path) is probe
