"""Liveness and readiness, as the Open Inference Protocol names them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from service.api.state import ServiceState, get_state
from service.errors import Unavailable

router = APIRouter(tags=["health"])

StateDep = Annotated[ServiceState, Depends(get_state)]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


@router.get("/v2/health/live", response_model=Live, name="server_live")
async def live() -> Live:
    """200 while the process answers at all."""
    return Live(live=True)


@router.get(
    "/v2/health/ready",
    response_model=Ready,
    responses={503: {"description": "The device is not initialised or not usable."}},
    name="server_ready",
)
async def ready(state: StateDep) -> Ready:
    """200 once the device is initialised and a warm-up loss has run on it."""
    if not await state.ensure_ready():
        raise Unavailable(f"the device is not usable: {state.warm_up_error}", retry_after=5)
    return Ready(ready=True)
