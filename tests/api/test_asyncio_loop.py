"""The app on a plain asyncio loop (pytest-asyncio), built without running its lifespan: the
way many users' own test suites drive an ASGI app with httpx."""

from __future__ import annotations

import httpx
import pytest

from service.app import create_app
from tests.conftest import cpu_settings


@pytest.mark.asyncio
async def test_a_fresh_app_answers_without_its_lifespan() -> None:
    app = create_app(cpu_settings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.post("/v1/losses/cross_entropy", json={"input": [[1.0, 2.0]], "target": [1]})
        assert r.status_code == 200
        ready = await c.get("/v2/health/ready")
        assert ready.json() == {"ready": True}
