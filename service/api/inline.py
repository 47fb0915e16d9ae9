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

import asyncio

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.middleware import REQUEST_ID_BYTES, ApiKeys, RequestIds, refuse
from service.api.problems import error_response
from service.api.state import ServiceState
from service.errors import BodyTimeout, PayloadTooLarge, ServiceError, Unavailable
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


class SmallFront:
    """The same inline answer, given before FastAPI's middleware stack (``ServiceApp``).

    Each layer of that stack costs a few microseconds a request (FastAPI's telemetry check,
    Starlette's error middleware, the body-limit wrappers, our own middleware's closures), which
    together cost as much as computing a small loss. For the requests ``InlineSmallLosses``
    would compute, on a service without CORS, this does in one step what the stack would do
    around it: the request id (echoed or made, ``RequestIds``), the API key (a request without
    a valid one goes to the stack, which refuses it), the admission count (a full service: to
    the stack, which refuses it) with the memory trim's idle signal, the body-time limit (408)
    and the answer to a cancelled request (503), then the same bytes or problem as the route.
    A request it does not take, and any unexpected error, goes through the stack untouched
    (the error with its body replayed, so it is answered as the stack answers it)."""

    def __init__(
        self, state: ServiceState, ids: RequestIds, keys: ApiKeys | None, enabled: bool
    ) -> None:
        self.state = state
        self.ids = ids
        self.keys = keys
        settings = state.settings
        self.enabled = (
            enabled
            and state.dataplane.device.type == "cpu"
            and 0 < settings.inline_max_bytes <= settings.max_body_bytes
        )
        self.limit = settings.inline_max_bytes
        self.max_bytes = settings.max_body_bytes
        self.timeout = settings.body_timeout
        self.retry_after = settings.retry_after
        self.trim = state.trim if state.trim.enabled else None

    def takes(self, scope: Scope) -> str | None:
        """The loss's name when this request is one the front answers."""
        if not self.enabled or scope["type"] != "http" or scope["method"] != "POST":
            return None
        path: str = scope["path"]
        if not path.startswith(PREFIX):
            return None
        name = path[len(PREFIX) :]
        loss = registry.get(name)
        if loss is None or not loss.inline:
            return None
        declared = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                declared = value
            elif key == b"transfer-encoding":
                return None
        if declared is None or not declared.isdigit() or int(declared) > self.limit:
            return None
        if self.keys is not None:
            presented = self.keys.presented(scope)
            if presented is None or not self.keys.authorised(presented):
                return None
        return name

    async def answer(
        self, name: str, scope: Scope, receive: Receive, send: Send, stack: ASGIApp
    ) -> None:
        admission = self.state.admission
        if not admission.admit():
            await stack(scope, receive, send)  # whose gate refuses it, or admits it if freed
            return
        try:
            await self._answer(name, scope, receive, send, stack)
        finally:
            admission.leave()
            # as the admission gate does: the idle trim hears when the last request leaves
            if self.trim is not None and not admission.admitted:
                self.trim.idle()

    async def _answer(
        self, name: str, scope: Scope, receive: Receive, send: Send, stack: ASGIApp
    ) -> None:
        request_id = self.ids.assign(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*headers, (REQUEST_ID_BYTES, request_id)]
            await send(message)

        task = asyncio.current_task()
        complete = expired = False

        def expire() -> None:
            nonlocal expired
            if not complete and task is not None:
                expired = True
                task.cancel()

        timer = asyncio.get_running_loop().call_later(self.timeout, expire)
        body = bytearray()
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away; there is no one to answer
                body += message.get("body", b"")
                if len(body) > self.max_bytes:
                    too_large = PayloadTooLarge(
                        f"the body exceeds the limit of {self.max_bytes} bytes"
                    )
                    await refuse(scope, receive, send_with_id, too_large)
                    return
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if task is None:
                raise
            if hasattr(task, "uncancel"):  # Python >= 3.11 counts cancellations
                task.uncancel()
            if expired:
                late: ServiceError = BodyTimeout(
                    f"the body did not arrive within {self.timeout:g} s"
                )
            else:
                late = Unavailable(
                    "the server stopped before this request was answered; retry",
                    retry_after=self.retry_after,
                )
            await refuse(scope, receive, send_with_id, late)
            return
        finally:
            complete = True
            timer.cancel()
        raw = bytes(body)
        try:
            content = self.state.run_inline(
                lambda: dumps(self.state.dataplane.compute_json(name, body))
            )
        except ServiceError as exc:
            await error_response(Request(scope), exc)(scope, receive, send_with_id)
            return
        except Exception:  # answered as the stack answers it: the body replayed to it
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}

            await stack(scope, replay, send)
            return
        headers = [
            *_JSON_HEADERS,
            (b"content-length", str(len(content)).encode()),
            (REQUEST_ID_BYTES, request_id),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})
