"""A bare ASGI app that reads a request body and answers its size, or with ``--answer-bytes N``
a fixed JSON document of exactly N bytes: the cost of moving a body and an answer over loopback
through uvicorn (same loop and HTTP parser as the service), with no work done.

``bench/run.py`` times the large binary body against it to show how much of the service's time
is transport rather than decoding and computing, and, answering a JSON the size of the
service's answer, measures the server CPU per small request that no service can go below.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Message = MutableMapping[str, Any]


def fixed_json(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes (at least 10)."""
    return b'{"pad":"' + b"x" * max(0, size - 10) + b'"}'


def make_app(answer: bytes | None = None) -> Any:
    """The app; ``answer`` is sent as JSON when given, else the body's size as text."""

    async def app(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        await _app(scope, receive, send, answer)

    return app


async def _app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
    answer: bytes | None,
) -> None:
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    content = str(size).encode() if answer is None else answer
    media = b"text/plain" if answer is None else b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", media), (b"content-length", str(len(content)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": content})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--answer-bytes", type=int, help="answer a fixed JSON of this size")
    args = parser.parse_args()
    answer = None if args.answer_bytes is None else fixed_json(args.answer_bytes)
    uvicorn.run(make_app(answer), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
