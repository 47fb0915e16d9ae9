"""Starlette's TestClient (an httpx client that runs the lifespan) drives the app too."""

from fastapi.testclient import TestClient

from service.app import create_app
from tests.conftest import cpu_settings


def test_testclient_works() -> None:
    with TestClient(create_app(cpu_settings())) as c:
        r = c.post("/v1/losses/cross_entropy", json={"input": [[1.0, 2.0]], "target": [1]})
        assert r.status_code == 200
        assert c.get("/v2/health/ready").json() == {"ready": True}
