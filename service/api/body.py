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


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or 413 as soon as it is known to exceed ``max_bytes``."""
    _declared_size(request, max_bytes)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(f"the body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body_buffer(request: Request, max_bytes: int) -> bytearray:
    """The whole body in one writable buffer, under the same cap as ``read_body``.

    For bodies that are viewed in place rather than parsed (binary tensors): a writable buffer
    lets ``np.frombuffer`` views reach torch without a copy (torch warns on read-only memory),
    and filling a buffer sized from ``Content-Length`` never holds the chunks and their join at
    once, which would double the body in memory."""
    declared = _declared_size(request, max_bytes)
    buffer = bytearray(declared or 0)
    total = 0
    async for chunk in request.stream():
        end = total + len(chunk)
        if end > max_bytes:
            raise PayloadTooLarge(f"the body exceeds the limit of {max_bytes} bytes")
        if end <= len(buffer):
            buffer[total:end] = chunk
        else:
            del buffer[total:]
            buffer += chunk
        total = end
    del buffer[total:]
    return buffer
