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

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.admission import Admission
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

#: Paths open without an API key. Health must stay open for orchestrators' probes.
HEALTH_PREFIX = "/v2/health/"
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
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
        request_id = self.ids.assign(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*headers, (REQUEST_ID.encode(), request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)


class AnswerCancelled:
    """A request cancelled before its answer started (uvicorn cancels what is still running when
    the shutdown grace period ends) gets a 503 problem with ``Retry-After`` rather than
    uvicorn's plain-text 500, and its task ends normally. Its computation, if any, finishes in
    its worker thread or ends with the process."""

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
            task = asyncio.current_task()
            if started or task is None:
                raise
            if hasattr(task, "uncancel"):  # Python >= 3.11 counts cancellations
                task.uncancel()
            log.warning("%s %s cancelled before it was answered", scope["method"], scope["path"])
            stopped = Unavailable(
                "the server stopped before this request was answered; retry",
                retry_after=self.retry_after,
            )
            await refuse(scope, receive, send, stopped)


class ApiKeys:
    """Require one of the configured keys as ``Authorization: Bearer <key>`` or
    ``X-API-Key: <key>``; health (and the docs and the explainer page, when ``open_docs``)
    stays open.

    Keys are compared as SHA-256 digests with ``hmac.compare_digest`` against every configured
    key, so neither a key's length nor which key matched shows in the timing."""

    def __init__(self, app: ASGIApp, keys: Iterable[str], open_docs: bool) -> None:
        self.app = app
        self.digests = [hashlib.sha256(k.encode()).digest() for k in keys]
        self.open_docs = open_docs

    def is_open(self, path: str) -> bool:
        if path.startswith(HEALTH_PREFIX):
            return True
        return self.open_docs and (
            path in DOCS_PATHS or path in PAGE_PATHS or path.startswith(PAGE_STATIC_PREFIX)
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.digests or self.is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        key = self.presented(scope)
        if key is None:
            why = "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            await refuse(scope, receive, send, Unauthorized(why))
            return
        if not self.authorised(key):
            await refuse(scope, receive, send, Unauthorized("the API key is not valid"))
            return
        await self.app(scope, receive, send)


class AdmissionGate:
    """Count requests that carry a body in before the body is read; when the service already
    holds as many as it can compute and queue, answer 503 with ``Retry-After`` at once."""

    def __init__(
        self, app: ASGIApp, admission: Admission, on_idle: Callable[[], None] | None = None
    ) -> None:
        self.app = app
        self.admission = admission
        self.on_idle = on_idle
        """Called on the loop when the last request in progress leaves (``IdleTrim.idle``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS:
            await self.app(scope, receive, send)
            return
        if not self.admission.admit():
            why = f"the service is full ({self.admission.capacity} requests in progress)"
            await refuse(scope, receive, send, self.admission.overloaded(why))
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave()
            if self.on_idle is not None and not self.admission.admitted:
                self.on_idle()


class BodyLimit:
    """Refuse a body larger than ``max_bytes`` (413) on its ``Content-Length`` before reading
    it, or as soon as a chunked body passes the limit; refuse a body still incomplete after
    ``timeout`` seconds (408), so a slow client cannot hold a place for ever.

    The time limit is one timer per request that has a body, cancelled when the body is
    complete; should it fire first, it cancels the request's task, which is then answered 408.
    One timer costs far less than a timeout around every ``receive``."""

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
                too_large = PayloadTooLarge(
                    f"the body has {size} bytes; the limit is {self.max_bytes}"
                )
                await refuse(scope, receive, send, too_large)
                return
            if size >= self.large_bytes and self.on_large is not None:
                self.on_large()
        chunked = header(scope, b"transfer-encoding") is not None
        task = asyncio.current_task()
        received = 0
        complete = not chunked and (declared is None or int(declared) == 0)
        expired = False
        started = False
        timer: asyncio.TimerHandle | None = None

        def expire() -> None:
            nonlocal expired
            if not complete and task is not None:
                expired = True
                task.cancel()

        if not complete:
            timer = asyncio.get_running_loop().call_later(self.timeout, expire)

        async def limited_receive() -> Message:
            nonlocal received, complete
            message = await receive()
            if complete:
                return message
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(f"the body exceeds the limit of {self.max_bytes} bytes")
                complete = not message.get("more_body", False)
            else:
                complete = True
            if complete and timer is not None:
                timer.cancel()
            if complete and chunked and received >= self.large_bytes and self.on_large:
                self.on_large()
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, send_tracked)
        except asyncio.CancelledError:
            if not expired or started or task is None:
                raise
            if hasattr(task, "uncancel"):  # Python >= 3.11 counts cancellations
                task.uncancel()
            late = BodyTimeout(f"the body did not arrive within {self.timeout:g} s")
            await refuse(scope, receive, send, late)
        finally:
            if timer is not None:
                timer.cancel()
