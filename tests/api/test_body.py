"""Reading bodies under the cap: chunked or sized, into bytes or into one writable buffer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from starlette.requests import Request
from starlette.types import Message

from service.api.body import read_body, read_body_buffer
from service.errors import PayloadTooLarge

pytestmark = pytest.mark.anyio

CHUNKS = [b"abc", b"defgh", b"", b"ij"]
BODY = b"".join(CHUNKS)


def request(chunks: list[bytes], content_length: int | None) -> Request:
    messages: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0)

    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


Reader = Callable[[Request, int], Awaitable[bytes | bytearray]]


@pytest.mark.parametrize("reader", [read_body, read_body_buffer])
@pytest.mark.parametrize("declared", [None, len(BODY), len(BODY) - 4, len(BODY) + 4])
async def test_the_body_read_is_what_was_sent(reader: Reader, declared: int | None) -> None:
    got = await reader(request(CHUNKS, declared), 100)
    assert bytes(got) == BODY


async def test_buffer_is_writable() -> None:
    got = await read_body_buffer(request(CHUNKS, len(BODY)), 100)
    assert isinstance(got, bytearray)


@pytest.mark.parametrize("reader", [read_body, read_body_buffer])
@pytest.mark.parametrize("declared", [None, len(BODY), 5])
async def test_over_the_cap_is_413(reader: Reader, declared: int | None) -> None:
    with pytest.raises(PayloadTooLarge):
        await reader(request(CHUNKS, declared), len(BODY) - 1)
