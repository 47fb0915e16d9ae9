"""Settings come from LOSS_SERVICE_* variables and change what requests get by default."""

from __future__ import annotations

import httpx
import pytest

from service.app import create_app
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from service.settings import Settings
from tests.conftest import cpu_settings


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOSS_SERVICE_DEVICE", "cpu")
    monkeypatch.setenv("LOSS_SERVICE_DTYPE", "float64")
    monkeypatch.setenv("LOSS_SERVICE_REFERENCE", "false")
    monkeypatch.setenv("LOSS_SERVICE_PORT", "9123")
    s = Settings()
    assert (s.device, s.dtype, s.reference, s.port) == ("cpu", "float64", False, 9123)


def test_default_dtype_is_also_read_under_its_long_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOSS_SERVICE_DEFAULT_DTYPE", "bfloat16")
    assert Settings().dtype == "bfloat16"


@pytest.mark.anyio
async def test_defaults_from_settings_apply_to_requests() -> None:
    app = create_app(cpu_settings(dtype="float64", reference=False))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        body = {"input": ARTICLE_INPUT, "target": ARTICLE_TARGET}
        out = (await c.post("/v1/losses/cross_entropy", json=body)).json()
        assert out["dtype"] == "float64"
        assert out["reference"] is None
        out = (await c.post("/v1/losses/cross_entropy", json=body | {"reference": True})).json()
        assert out["reference"]["agrees"] is True
