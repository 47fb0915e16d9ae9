"""Reading a request body under a size cap, refusing early when the headers already say no."""

from __future__ import annotations

from fastapi import Request

from service.errors import MalformedBody, PayloadTooLarge


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or 413 as soon as it is known to exceed ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise MalformedBody("Content-Length is not a number") from None
        if size > max_bytes:
            raise PayloadTooLarge(f"the body has {size} bytes; the limit is {max_bytes}")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(f"the body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
