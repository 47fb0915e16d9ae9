"""Small ``POST /v1/losses/<name>`` requests answered in one ASGI step, on the event loop.

A 3x3 cross-entropy with its reference, breakdown and warnings costs about as much as one pass
through FastAPI's request machinery (router, included-router matching, exit stacks, request and
response objects, the body stream): measured here, a trivial FastAPI route served fewer requests
a second than this service computes losses. So a request whose ``Content-Length`` is at most
``settings.inline_max_bytes`` is answered by this middleware directly: it reads the body from
``receive``, calls the same data plane as the route, and sends the same bytes (or the same
problem+json) the route would. Such a body holds a few hundred numbers at most, so computing it
inline blocks the loop for well under a millisecond, less than the hop to a worker thread costs,
for the losses that declare their cost linear in the elements (``Loss.inline``).

Everything else (larger or chunked bodies, unknown losses, other paths, any request when the
device is not the CPU) goes on to the app untouched. This middleware must be the innermost one:
middleware added after it (API keys, request ids, CORS, admission) wraps it and still sees every
request.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import error_response
from service.api.state import ServiceState
from service.errors import ServiceError
from service.jsonenc import dumps
from service.losses import registry

PREFIX = "/v1/losses/"
_JSON_HEADERS = [(b"content-type", b"application/json")]


class InlineSmallLosses:
    """Pure ASGI middleware: tiny loss requests computed inline, the rest passed on."""

    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state
        # Only on the CPU: a GPU computation waits on the device, which may hang or fault, and
        # only the worker threads of ``state.run`` are bounded by the request time limit.
        self.on_cpu = state.dataplane.device.type == "cpu"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self._small_loss_request(scope)
        if name is None:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away; there is no one to answer
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            content = self.state.run_inline(
                lambda: dumps(self.state.dataplane.compute_json(name, body))
            )
        except ServiceError as exc:
            await error_response(Request(scope), exc)(scope, receive, send)
            return
        await send(_start(content))
        await send({"type": "http.response.body", "body": content})

    def _small_loss_request(self, scope: Scope) -> str | None:
        """The loss's name when this is a POST of a known loss with a small declared body."""
        if scope["type"] != "http" or scope["method"] != "POST" or not self.on_cpu:
            return None
        path: str = scope["path"]
        if not path.startswith(PREFIX):
            return None
        name = path[len(PREFIX) :]
        loss = registry.get(name)
        if loss is None or not loss.inline:
            return None
        limit = self.state.settings.inline_max_bytes
        for key, value in scope["headers"]:
            if key == b"content-length":
                return name if value.isdigit() and int(value) <= limit else None
        return None


def _start(content: bytes) -> Message:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(content)).encode())]
    return {"type": "http.response.start", "status": 200, "headers": headers}
