"""The steps the middleware stack and the small-request front share (``service.api.middleware``):
one implementation each of the request id's header, the API-key check, the admission gate and
the body deadline."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from service.api.admission import Admission
from service.api.middleware import (
    ApiKeys,
    BodyDeadline,
    Gate,
    RequestIds,
    stopped,
    take_cancellation,
)
from service.errors import BodyTimeout, Overloaded, Unauthorized, Unavailable

pytestmark = pytest.mark.anyio


async def test_the_request_id_replaces_any_the_app_set() -> None:
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    stamped = RequestIds.stamped(send, b"id-7")
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"X-Request-ID", b"theirs")],
    }
    await stamped(start)
    await stamped({"type": "http.response.body", "body": b"{}"})
    assert sent[0]["headers"] == [
        (b"content-type", b"application/json"),
        (b"x-request-id", b"id-7"),
    ]
    assert sent[1] == {"type": "http.response.body", "body": b"{}"}


def scope(path: str = "/v1/losses/mse_loss", **headers: str) -> dict[str, Any]:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "method": "POST", "path": path, "headers": raw}


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "an API key is required"),
        ({"x_api_key": "wrong"}, "the API key is not valid"),
        ({"authorization": "Bearer wrong"}, "the API key is not valid"),
        ({"authorization": "Basic secret"}, "an API key is required"),
        ({"x_api_key": "secret"}, None),
        ({"authorization": "Bearer secret"}, None),
    ],
)
def test_api_keys_refusal(headers: dict[str, str], why: str | None) -> None:
    keys = ApiKeys(None, ["secret"], open_docs=True)
    refused = keys.refusal(scope(**headers))
    if why is None:
        assert refused is None
    else:
        assert isinstance(refused, Unauthorized)
        assert refused.detail.startswith(why)
    assert keys.refusal(scope("/v2/health/ready")) is None  # open paths need no key
    assert ApiKeys(None, [], open_docs=True).refusal(scope()) is None  # no keys configured


def test_the_gate_counts_refuses_when_full_and_signals_idle() -> None:
    admission = Admission(slots=1, queue=1, timeout=1.0, retry_after=3)
    idle: list[int] = []
    gate = Gate(admission, on_idle=lambda: idle.append(admission.admitted))
    assert gate.enter() is None
    assert gate.enter() is None
    refused = gate.enter()
    assert isinstance(refused, Overloaded)
    assert refused.retry_after == 3
    assert admission.admitted == 2
    gate.leave()
    assert idle == []
    gate.leave()
    assert idle == [0]  # the last one out


async def test_the_deadline_cancels_a_body_that_does_not_arrive() -> None:
    deadline = BodyDeadline(0.02)

    async def read() -> None:
        deadline.start()
        await asyncio.sleep(5)

    task = asyncio.create_task(read())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deadline.expired
    assert isinstance(deadline.refusal(), BodyTimeout)


async def test_a_body_complete_in_time_is_never_cancelled() -> None:
    deadline = BodyDeadline(0.02)
    deadline.start()
    deadline.done()
    await asyncio.sleep(0.05)
    assert not deadline.expired


async def test_a_cancellation_is_absorbed_only_where_there_is_a_task() -> None:
    assert not take_cancellation(None)
    outcome: list[bool] = []

    async def cancelled() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            outcome.append(take_cancellation(asyncio.current_task()))

    task = asyncio.create_task(cancelled())
    await asyncio.sleep(0)
    task.cancel()
    await task  # ends normally: its cancellation was taken
    assert outcome == [True]
    assert isinstance(stopped(2), Unavailable)
    assert stopped(2).retry_after == 2
