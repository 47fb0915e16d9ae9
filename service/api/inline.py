"""Small loss requests answered in one ASGI step, on the event loop.

A 3x3 cross-entropy with its reference, breakdown and warnings costs about as much as one pass
through FastAPI's request machinery (router, included-router matching, exit stacks, request and
response objects, the body stream): measured here, a trivial FastAPI route served fewer requests
a second than this service computes losses. So a request whose ``Content-Length`` is at most
``settings.inline_max_bytes`` is answered directly: its body is read from ``receive``, the same
data plane as the route's computes it, and the same bytes (or the same problem+json) are sent.
Such a body holds a few hundred numbers at most, so computing it inline blocks the loop for
well under a millisecond, less than the hop to a worker thread costs, for the losses whose
record declares it (``Loss.inline``). A body whose ``include`` asks for ``precision`` is not:
that extra recomputes the loss in every dtype beside the reference (``service.precision``), so
such a body, however small, goes on to the route and its worker pool (``asks_precision``).

Two callers share the answer (``InlineAnswer``):

- ``SmallFront``, called by ``service.app.ServiceApp`` before FastAPI's middleware stack, on a
  service without CORS. It takes ``POST /v1/losses/<name>`` and the Open Inference Protocol's
  ``POST /v2/models/<name>[/versions/1]/infer`` with small JSON bodies, and passes each through
  the very steps the stack's middleware (``service.api.middleware``) is made of: the request
  id (``RequestIds``), the API keys (``ApiKeys.refusal``), the admission count (``Gate``), the
  body-time limit (``BodyDeadline``) and the answer to a cancelled request (``stopped``), in
  the stack's order, without the layers of calls around them.
- ``InlineSmallLosses``, the innermost middleware of the stack, for the same ``/v1`` requests
  when the front is off (a CORS deployment): the stack's own middleware has already done the
  steps above.

Everything else (larger or chunked bodies, unknown losses, other paths, any request when the
device is not the CPU) goes on to the stack untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.middleware import (
    ApiKeys,
    BodyDeadline,
    Gate,
    RequestIds,
    grew_too_large,
    refuse,
    stopped,
    take_cancellation,
)
from service.api.problems import error_response
from service.api.state import ServiceState
from service.errors import ServiceError
from service.jsonenc import dumps
from service.losses import registry
from service.losses.base import Loss
from service.precision import PRECISION
from service.protocol.infer import infer
from service.protocol.models import VERSION
from service.protocol.request import HEADER_LENGTH

PREFIX = "/v1/losses/"
V2_PREFIX = "/v2/models/"
_V2_SUFFIXES = (f"/versions/{VERSION}/infer", "/infer")  # the longer first
_JSON = b"application/json"
_PRECISION_BYTES = PRECISION.encode()
_HEADER_LENGTH_BYTES = HEADER_LENGTH.encode()

Work = Callable[[bytes], tuple[bytes, bytes, list[tuple[bytes, bytes]]]]
"""The computation of one taken request: body -> (content, media type, headers before
``content-length``), raising ``ServiceError`` for the client's errors."""


def asks_precision(body: bytes | bytearray) -> bool:
    """Whether the body's ``include`` lists ``"precision"``: the heavy extra that must not run
    on the event loop. The bytes are scanned first, so the usual body is never parsed twice;
    one that names it (or holds a ``\\u`` escape, which could spell it) is parsed to be sure.
    A body that is not a JSON object with a list ``include`` does not ask: the data plane
    refuses it, quickly, with the route's own message. (A ``/v2`` request cannot ask: its
    extras are outputs, and ``precision`` is none.)"""
    if _PRECISION_BYTES not in body and b"\\u" not in body:
        return False
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    include = parsed.get("include") if type(parsed) is dict else None
    return type(include) is list and PRECISION in include


def replayed(raw: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, once, then defers to ``receive``."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return replay


def declared_length(scope: Scope, limit: int) -> bool:
    """Whether the request declares a ``Content-Length`` of at most ``limit`` bytes and is not
    chunked."""
    declared = None
    for key, value in scope["headers"]:
        if key == b"content-length":
            declared = value
        elif key == b"transfer-encoding":
            return False
    return declared is not None and declared.isdigit() and int(declared) <= limit


def inline_loss(name: str) -> Loss[Any] | None:
    """The loss answering to ``name`` when its record lets it be computed on the loop."""
    loss = registry.get(name)
    return loss if loss is not None and loss.inline else None


def inline_limit(loss: Loss[Any], limit: int) -> int:
    """The largest body of ``loss`` computed on the loop: the service's ``limit``, or the
    loss's own lower one (``Loss.inline_max_bytes``)."""
    own = loss.inline_max_bytes
    return limit if own is None else min(limit, own)


def v2_model(path: str) -> str | None:
    """The model named by ``/v2/models/<name>/infer`` or ``.../versions/1/infer``."""
    rest = path[len(V2_PREFIX) :]
    for suffix in _V2_SUFFIXES:
        if rest.endswith(suffix):
            name = rest[: -len(suffix)]
            return name if name and "/" not in name else None
    return None


class InlineAnswer:
    """The computation and the answer of a taken request, on the loop: the route's bytes
    (``/v1``: the data plane's ``compute_json``; ``/v2``: ``service.protocol.infer``) with the
    route's headers, or the problem it would render."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    def v1(self, name: str) -> Work:
        state = self.state

        def work(raw: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
            content = state.run_inline(lambda: dumps(state.dataplane.compute_json(name, raw)))
            return content, _JSON, []

        return work

    def v2(self, name: str, scope: Scope) -> Work:
        state = self.state
        header_length = None
        for key, value in scope["headers"]:
            if key == _HEADER_LENGTH_BYTES:
                header_length = value.decode("latin-1")
                break
        version = VERSION if "/versions/" in scope["path"] else None

        def work(raw: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
            # writable, as the route's buffer is: binary tensors reach torch as views of it
            body = bytearray(raw)
            encoded = state.run_inline(
                lambda: infer(state.dataplane, name, version, body, header_length)
            )
            headers = [(k.lower().encode(), v.encode()) for k, v in encoded.headers().items()]
            return encoded.body, encoded.media_type.encode(), headers

        return work

    @staticmethod
    async def compute(
        work: Work, raw: bytes, scope: Scope, receive: Receive, send: Send
    ) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]] | None:
        """``work(raw)``, or None once the client's error has been answered with the route's
        problem. Any other exception propagates: the caller decides who answers it."""
        try:
            return work(raw)
        except ServiceError as exc:
            await error_response(Request(scope), exc)(scope, receive, send)
            return None

    @staticmethod
    async def respond(done: tuple[bytes, bytes, list[tuple[bytes, bytes]]], send: Send) -> None:
        """The computed answer, with the route's headers in the route's order
        (``starlette.responses.Response``: its own, then length, then type)."""
        content, media_type, headers = done
        headers.append((b"content-length", str(len(content)).encode()))
        headers.append((b"content-type", media_type))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


class InlineSmallLosses:
    """Pure ASGI middleware, innermost in the stack: tiny ``/v1`` loss requests computed
    inline, the rest passed on."""

    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state
        self.answer = InlineAnswer(state)
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
        raw = bytes(body)
        if asks_precision(raw):
            await self.app(scope, replayed(raw, receive), send)
            return
        done = await self.answer.compute(self.answer.v1(name), raw, scope, receive, send)
        if done is not None:
            await self.answer.respond(done, send)

    def _small_loss_request(self, scope: Scope) -> str | None:
        """The loss's name when this is a POST of a known loss with a small declared body."""
        if scope["type"] != "http" or scope["method"] != "POST" or not self.on_cpu:
            return None
        path: str = scope["path"]
        if not path.startswith(PREFIX):
            return None
        name = path[len(PREFIX) :]
        loss = inline_loss(name)
        if loss is None:
            return None
        limit = inline_limit(loss, self.state.settings.inline_max_bytes)
        return name if declared_length(scope, limit) else None


class SmallFront:
    """The inline answer, given before FastAPI's middleware stack (``ServiceApp``).

    Each layer of that stack costs a few microseconds a request (FastAPI's telemetry check,
    Starlette's error middleware, the body-limit wrappers, our own middleware's closures), which
    together cost as much as computing a small loss. For the requests it takes, on a service
    without CORS, the front goes through the stack's own steps in one coroutine: the request id,
    the API key, the admission count (with the memory trim's idle signal), the body-time limit
    (408) and the answer to a cancelled request (503), then the same bytes or problem as the
    route. A request it does not take goes through the stack untouched; so does one asking for
    the ``precision`` extra, and one whose computation fails unexpectedly (its body replayed,
    so that it is answered as the stack answers it)."""

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
        trim = state.trim if state.trim.enabled else None
        self.gate = Gate(state.admission, trim.idle if trim is not None else None)
        self.inline = InlineAnswer(state)

    def takes(self, scope: Scope) -> str | None:
        """The loss's name when this request is one the front answers."""
        if not self.enabled or scope["type"] != "http" or scope["method"] != "POST":
            return None
        path: str = scope["path"]
        if path.startswith(PREFIX):
            name: str | None = path[len(PREFIX) :]
        elif path.startswith(V2_PREFIX):
            name = v2_model(path)
            if name is None or not _plain_encoding(scope):
                return None
        else:
            return None
        loss = inline_loss(name) if name is not None else None
        if loss is None:
            return None
        return name if declared_length(scope, inline_limit(loss, self.limit)) else None

    async def answer(
        self, name: str, scope: Scope, receive: Receive, send: Send, stack: ASGIApp
    ) -> None:
        stamped = self.ids.stamped(send, self.ids.assign(scope))
        refused: ServiceError | None = None
        if self.keys is not None:
            refused = self.keys.refusal(scope)
        if refused is None:
            refused = self.gate.enter()
            if refused is None:
                await self._admitted(name, scope, receive, send, stamped, stack)
                return
        await refuse(scope, receive, stamped, refused)

    async def _admitted(
        self, name: str, scope: Scope, receive: Receive, send: Send, stamped: Send, stack: ASGIApp
    ) -> None:
        """The request, counted in by the gate: answered, or declined to the stack once the gate
        has let it go."""
        try:
            declined = await self._answer(name, scope, receive, stamped)
        finally:
            self.gate.leave()
        if declined is not None:
            # to the stack, admitted there (and so counted once), whose request id it gets
            await stack(scope, replayed(declined, receive), send)

    async def _answer(self, name: str, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """Read, compute and answer; or return the body, read but not answered, when the stack
        must answer it (``precision``, or an unexpected error)."""
        raw = await self._body(scope, receive, send)
        if raw is None:
            return None  # refused, or the client went away
        if scope["path"].startswith(PREFIX):
            if asks_precision(raw):
                return raw
            work = self.inline.v1(name)
        else:
            work = self.inline.v2(name, scope)
        try:
            done = await self.inline.compute(work, raw, scope, receive, send)
        except Exception:  # answered as the stack answers it: the body replayed to it
            return raw
        if done is not None:
            await self.inline.respond(done, send)
        return None

    async def _body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body within the size and time limits, or None once the request has been
        answered (413, 408, 503 when the server stops) or its client has gone."""
        deadline = BodyDeadline(self.timeout)
        deadline.start()
        try:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client went away; there is no one to answer
            body = message.get("body", b"")
            if not message.get("more_body", False):
                return bytes(body)
            chunks = bytearray(body)
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None
                chunks += message.get("body", b"")
                if len(chunks) > self.max_bytes:
                    await refuse(scope, receive, send, grew_too_large(self.max_bytes))
                    return None
                if not message.get("more_body", False):
                    return bytes(chunks)
        except asyncio.CancelledError:
            if not take_cancellation(deadline.task):
                raise
            late = deadline.refusal() if deadline.expired else stopped(self.retry_after)
            await refuse(scope, receive, send, late)
            return None
        finally:
            deadline.done()


def _plain_encoding(scope: Scope) -> bool:
    """No ``Content-Encoding`` (or ``identity``): a compressed ``/v2`` body goes to the route,
    which inflates it under the body limit in a worker thread."""
    for key, value in scope["headers"]:
        if key == b"content-encoding":
            return value.strip().lower() in (b"", b"identity")
    return True
