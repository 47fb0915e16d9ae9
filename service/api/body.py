"""Reading a request body under a size cap, refusing early when the headers already say no."""

from __future__ import annotations

from fastapi import Request

from service.errors import MalformedBody, PayloadTooLarge


async def read_body(request: Request, max_bytes: int) -> bytearray:
    """The whole body, or 413 as soon as it is known to exceed ``max_bytes``.

    The chunks are copied into one buffer of the declared size as they arrive, rather than
    gathered and joined, so a large body is never held twice; the data plane empties the
    ``bytearray`` once it has parsed it."""
    declared = request.headers.get("content-length")
    size = 0
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise MalformedBody("Content-Length is not a number") from None
        if size > max_bytes:
            raise PayloadTooLarge(f"the body has {size} bytes; the limit is {max_bytes}")
    body = bytearray(size)
    total = 0
    async for chunk in request.stream():
        end = total + len(chunk)
        if end > max_bytes:
            raise PayloadTooLarge(f"the body exceeds the limit of {max_bytes} bytes")
        if end <= size:
            body[total:end] = chunk
        else:
            del body[total:]
            body += chunk
        total = end
    del body[total:]
    return body
