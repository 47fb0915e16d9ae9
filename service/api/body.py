"""Reading a request body under a size cap, refusing early when the headers already say no."""

from __future__ import annotations

from fastapi import Request

from service.errors import MalformedBody, PayloadTooLarge


def _declared_size(request: Request, max_bytes: int) -> int | None:
    """``Content-Length`` as a number, or 413 at once when it exceeds ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    try:
        size = int(declared)
    except ValueError:
        raise MalformedBody("Content-Length is not a number") from None
    if size > max_bytes:
        raise PayloadTooLarge(f"the body has {size} bytes; the limit is {max_bytes}")
    return size


async def read_body(request: Request, max_bytes: int) -> bytearray:
    """The whole body, or 413 as soon as it is known to exceed ``max_bytes``.

    One growing buffer (``read_body_buffer``) rather than chunks and their join, which would
    hold a large body twice; the data plane empties it as soon as it is parsed."""
    return await read_body_buffer(request, max_bytes)


async def read_body_buffer(request: Request, max_bytes: int) -> bytearray:
    """The whole body in one writable buffer, under the same cap as ``read_body``.

    For bodies that are viewed in place rather than parsed (binary tensors): a writable buffer
    lets ``np.frombuffer`` views reach torch without a copy (torch warns on read-only memory),
    and extending one buffer never holds the chunks and their join at once, which would double
    the body in memory. The buffer grows as data arrives (large reallocations remap pages
    rather than copy them) instead of being sized from ``Content-Length`` up front, so a client
    that declares a large body and sends little commits no memory for it."""
    _declared_size(request, max_bytes)
    buffer = bytearray()
    async for chunk in request.stream():
        if len(buffer) + len(chunk) > max_bytes:
            raise PayloadTooLarge(f"the body exceeds the limit of {max_bytes} bytes")
        buffer += chunk
    return buffer
