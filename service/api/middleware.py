"""Pure ASGI middleware: what every request passes before a route sees it.

Outermost first: request id, the answer to cancelled requests, CORS (only when configured),
API keys, the body limit, the admission gate. Each refuses as early and as cheaply as it can:
on headers alone where they suffice, before any body is read, rendering the same problem
documents as the routes do (``service.api.problems``). Pure ASGI rather than
``BaseHTTPMiddleware``: no extra task per request, and the body stream passes through untouched.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.admission import Admission
from service.api.docs import DOCS_PATHS, STATIC_PREFIX
from service.api.problems import error_response
from service.errors import (
    BodyTimeout,
    MalformedBody,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger("service.api")

REQUEST_ID = "x-request-id"
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")

#: Paths open without an API key. Health and metrics must stay open for orchestrators' probes
#: and Prometheus' scrapes; the docs (pages, document, their static files) when ``open_docs``.
HEALTH_PREFIX = "/v2/health/"
METRICS_PATH = "/metrics"
DOCS_STATIC = STATIC_PREFIX + "/"
#: The explainer page and its files (``service.api.page``): open with the docs, since they hold
#: no data; the page asks for a key when the API it calls answers 401.
PAGE_PATHS = frozenset({"/", "/explain"})
PAGE_STATIC_PREFIX = "/explain/static/"

_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


async def refuse(scope: Scope, receive: Receive, send: Send, exc: ServiceError) -> None:
    """Answer ``exc`` as the routes would, without calling the app."""
    await error_response(Request(scope), exc)(scope, receive, send)


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class RequestIds:
    """Request ids: a client's ``X-Request-ID`` when it is short and plain, else a made one.

    A made id is a random per-process prefix and a counter: unique across instances in
    practice, and far cheaper per request than ``uuid4``. One instance serves both the
    middleware and the small-request front (``service.api.inline``), so ids never repeat."""

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count(1)

    def assign(self, scope: Scope) -> bytes:
        """The request's id, also kept in ``scope["state"]["request_id"]`` for logs."""
        given = header(scope, REQUEST_ID_BYTES)
        if given is not None and _VALID_REQUEST_ID.fullmatch(given):
            request_id = given
        else:
            request_id = f"{self.prefix}-{next(self.counter):08x}".encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()
        return request_id

    @staticmethod
    def stamped(send: Send, request_id: bytes) -> Send:
        """``send`` with the request id on the answer's headers (replacing any the app set)."""

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    h for h in message.get("headers", ()) if h[0].lower() != REQUEST_ID_BYTES
                ]
                headers.append((REQUEST_ID_BYTES, request_id))
                message["headers"] = headers
            await send(message)

        return send_with_id


REQUEST_ID_BYTES = REQUEST_ID.encode()


class RequestId:
    """Echo a client's ``X-Request-ID`` (when it is short and plain) or make one, on every
    response, and keep it in ``scope["state"]["request_id"]`` for logs (``RequestIds``)."""

    def __init__(self, app: ASGIApp, ids: RequestIds | None = None) -> None:
        self.app = app
        self.ids = ids or RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self.ids.stamped(send, self.ids.assign(scope)))


# -- cancellation ------------------------------------------------------------------------------


def stopped(retry_after: int) -> Unavailable:
    """The answer to a request cancelled before its answer started: uvicorn cancels what is
    still running when the shutdown grace period ends."""
    return Unavailable(
        "the server stopped before this request was answered; retry", retry_after=retry_after
    )


def take_cancellation(task: asyncio.Task[Any] | None) -> bool:
    """Absorb a cancellation so that its request can still be answered: True when there is a
    task to answer from (its pending cancellation is withdrawn on Python >= 3.11, which counts
    them), False when the cancellation must propagate."""
    if task is None:
        return False
    if hasattr(task, "uncancel"):
        task.uncancel()
    return True


class AnswerCancelled:
    """A request cancelled before its answer started gets a 503 problem with ``Retry-After``
    (``stopped``) rather than uvicorn's plain-text 500, and its task ends normally. Its
    computation, if any, finishes in its worker thread or ends with the process."""

    def __init__(self, app: ASGIApp, retry_after: int) -> None:
        self.app = app
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except asyncio.CancelledError:
            if started or not take_cancellation(asyncio.current_task()):
                raise
            log.warning("%s %s cancelled before it was answered", scope["method"], scope["path"])
            await refuse(scope, receive, send, stopped(self.retry_after))


# -- API keys ----------------------------------------------------------------------------------


class ApiKeys:
    """Require one of the configured keys as ``Authorization: Bearer <key>`` or
    ``X-API-Key: <key>``; health and metrics (and the docs and the explainer page, when
    ``open_docs``) stay open.

    Keys are compared as SHA-256 digests with ``hmac.compare_digest`` against every configured
    key, so neither a key's length nor which key matched shows in the timing. ``refusal`` is
    the check itself; the small-request front (``service.api.inline``) calls it too."""

    def __init__(self, app: ASGIApp | None, keys: Iterable[str], open_docs: bool) -> None:
        self.app = app
        self.digests = [hashlib.sha256(k.encode()).digest() for k in keys]
        self.open_docs = open_docs

    def is_open(self, path: str) -> bool:
        if path.startswith(HEALTH_PREFIX) or path == METRICS_PATH:
            return True
        return self.open_docs and (
            path in DOCS_PATHS
            or path in PAGE_PATHS
            or path.startswith((DOCS_STATIC, PAGE_STATIC_PREFIX))
        )

    def presented(self, scope: Scope) -> bytes | None:
        auth = header(scope, b"authorization")
        if auth is not None:
            scheme, _, credentials = auth.strip().partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                return credentials.strip()
        return header(scope, b"x-api-key")

    def authorised(self, key: bytes) -> bool:
        digest = hashlib.sha256(key).digest()
        matches = [hmac.compare_digest(digest, known) for known in self.digests]
        return any(matches)

    def refusal(self, scope: Scope) -> Unauthorized | None:
        """Why this request may not pass (401), or None when it may."""
        if not self.digests or self.is_open(scope["path"]):
            return None
        key = self.presented(scope)
        if key is None:
            why = "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            return Unauthorized(why)
        if not self.authorised(key):
            return Unauthorized("the API key is not valid")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "ApiKeys without an app is a checker only"
        if scope["type"] == "http":
            refused = self.refusal(scope)
            if refused is not None:
                await refuse(scope, receive, send, refused)
                return
        await self.app(scope, receive, send)


# -- admission ---------------------------------------------------------------------------------


class Gate:
    """The admission count of requests that carry a body, kept before the body is read: the
    middleware (``AdmissionGate``) and the small-request front both pass through one of these.
    ``on_idle`` is called on the loop when the last request in progress leaves
    (``IdleTrim.idle``)."""

    def __init__(self, admission: Admission, on_idle: Callable[[], None] | None = None) -> None:
        self.admission = admission
        self.on_idle = on_idle

    def enter(self) -> ServiceError | None:
        """Count the request in, or the 503 to answer (without counting it) when the service
        already holds as many as it can compute and queue."""
        if self.admission.admit():
            return None
        why = f"the service is full ({self.admission.capacity} requests in progress)"
        return self.admission.overloaded(why)

    def leave(self) -> None:
        self.admission.leave()
        if self.on_idle is not None and not self.admission.admitted:
            self.on_idle()


class AdmissionGate:
    """Count requests that carry a body in before the body is read; when the service already
    holds as many as it can compute and queue, answer 503 with ``Retry-After`` at once."""

    def __init__(
        self, app: ASGIApp, admission: Admission, on_idle: Callable[[], None] | None = None
    ) -> None:
        self.app = app
        self.gate = Gate(admission, on_idle)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS:
            await self.app(scope, receive, send)
            return
        refused = self.gate.enter()
        if refused is not None:
            await refuse(scope, receive, send, refused)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.leave()


# -- the body: its size and its time -----------------------------------------------------------


def too_large(size: int, max_bytes: int) -> PayloadTooLarge:
    """413 for a body declared (``Content-Length``) larger than the limit."""
    return PayloadTooLarge(f"the body has {size} bytes; the limit is {max_bytes}")


def grew_too_large(max_bytes: int) -> PayloadTooLarge:
    """413 for a body whose bytes, as they arrive, pass the limit."""
    return PayloadTooLarge(f"the body exceeds the limit of {max_bytes} bytes")


class BodyDeadline:
    """The body-time limit of one request: one timer, started when the body is awaited and
    cancelled when it is complete (far cheaper than a timeout around every ``receive``); should
    it fire first, it cancels the request's task, which its owner then answers 408
    (``refusal``). The middleware (``BodyLimit``) and the small-request front both use it."""

    __slots__ = ("_timer", "complete", "expired", "task", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.complete = False
        self.expired = False
        self.task: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.task = asyncio.current_task()
        self._timer = asyncio.get_running_loop().call_later(self.timeout, self._expire)

    def _expire(self) -> None:
        if not self.complete and self.task is not None:
            self.expired = True
            self.task.cancel()

    def done(self) -> None:
        """The body is complete (or no longer awaited): the limit no longer applies."""
        self.complete = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def refusal(self) -> BodyTimeout:
        return BodyTimeout(f"the body did not arrive within {self.timeout:g} s")


class BodyLimit:
    """Refuse a body larger than ``max_bytes`` (413) on its ``Content-Length`` before reading
    it, or as soon as a chunked body passes the limit; refuse a body still incomplete after
    ``timeout`` seconds (408, ``BodyDeadline``), so a slow client cannot hold a place for
    ever."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        timeout: float,
        on_large: Callable[[], None] | None = None,
        large_bytes: int = 1 << 20,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.on_large = on_large
        """Called for a body of ``large_bytes`` or more (``IdleTrim.large``)."""
        self.large_bytes = large_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await refuse(scope, receive, send, MalformedBody("Content-Length is not a number"))
                return
            size = int(declared)
            if size > self.max_bytes:
                await refuse(scope, receive, send, too_large(size, self.max_bytes))
                return
            if size >= self.large_bytes and self.on_large is not None:
                self.on_large()
        chunked = header(scope, b"transfer-encoding") is not None
        received = 0
        deadline = BodyDeadline(self.timeout)
        if chunked or (declared is not None and int(declared) != 0):
            deadline.start()
        else:
            deadline.complete = True
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if deadline.complete:
                return message
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise grew_too_large(self.max_bytes)
                if message.get("more_body", False):
                    return message
            deadline.done()
            if chunked and received >= self.large_bytes and self.on_large:
                self.on_large()
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, send_tracked)
        except asyncio.CancelledError:
            if not deadline.expired or started or not take_cancellation(deadline.task):
                raise
            await refuse(scope, receive, send, deadline.refusal())
        finally:
            deadline.done()
