"""Per-request observation: one pure ASGI wrapper, outermost, that counts every answered
request in the metrics and writes its access line.

``service.app.ServiceApp`` calls it around everything, so it sees every answer, whoever gives
it: the routes, the middleware that refuses early (401, 413, 503 from the admission gate),
``service.api.inline`` (small loss requests answered before routing) and the small-request
front that answers them before the middleware stack. So the counting lives in one place. The
``route`` label is the template of the route the path belongs to (``/v1/losses/{name}``), never
the raw path, and
``unmatched`` for paths no route serves, so unknown paths cannot grow the label set. Templates
are resolved from the app's own routes once per distinct path and cached (the cache is bounded:
past its size new paths are resolved each time, not stored). A refusal's reason comes from the
problem that ``service.api.problems.error_response`` rendered (``scope["state"]``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount, Route, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import PROBLEM_KEY
from service.losses import registry
from service.observability.access import AccessLog
from service.observability.metrics import Bound, Metrics

UNMATCHED = "unmatched"
LOSS_ROUTE = "/v1/losses/{name}"

_LOSS_PREFIX = "/v1/losses/"
METRICS_PATH = "/metrics"
HEALTH_PREFIX = "/v2/health/"
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def is_probe(path: str) -> bool:
    """Health checks and scrapes: every few seconds, all alike; their access lines are dropped
    unless ``log_probes``."""
    return path.startswith(HEALTH_PREFIX) or path == METRICS_PATH


class RouteLabels:
    """``(route template, loss)`` of a path, from the app's routes; ``loss`` is the ``{name}``
    path parameter when it names a registered loss, else empty.

    The routes are read once, at the first request (when the app is complete), into a list of
    (compiled template, template) in routing order; included routers (which recent FastAPI keeps
    as one route holding the router) are walked into."""

    def __init__(self, routes: Callable[[], Sequence[BaseRoute]], max_cached: int = 4096) -> None:
        self.routes = routes
        self.max_cached = max_cached
        self.cache: dict[str, tuple[str, str]] = {}
        self._table: list[tuple[re.Pattern[str], str]] | None = None

    def __call__(self, path: str) -> tuple[str, str]:
        labels = self.cache.get(path)
        if labels is None:
            labels = self.resolve(path)
            if len(self.cache) < self.max_cached:
                self.cache[path] = labels
        return labels

    def resolve(self, path: str) -> tuple[str, str]:
        if self._table is None:
            compiled = (compile_path(t) for t in templates(self.routes()))
            self._table = [(regex, template) for regex, template, _ in compiled]
        # The method does not matter: a template names a path, and a 405 belongs to it too.
        for regex, template in self._table:
            match = regex.match(path)
            if match is None:
                continue
            name = match.groupdict().get("name")
            if template.startswith(_LOSS_PREFIX) and registry.get(template[len(_LOSS_PREFIX) :]):
                # each loss has its own POST route; they are all one template to an operator
                template, name = LOSS_ROUTE, template[len(_LOSS_PREFIX) :]
            loss = name if name is not None and registry.get(name) is not None else ""
            return template, loss
        return UNMATCHED, ""


def templates(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[str]:
    """Every route's full path template, in routing order (a mount's as ``<path>/{path}``)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from templates(included.routes, prefix + str(getattr(context, "prefix", "")))
        elif isinstance(route, Mount):
            yield prefix + route.path + "/{path:path}"
        elif isinstance(route, (Route, APIRoute)):
            yield prefix + route.path


class ObserveRequests:
    """Count each answered request (``Metrics.observe``) and log its access line.

    A request is counted when its answer starts (its status is known) and the app returns; one
    whose client left before any answer is not an answered request and is not counted."""

    def __init__(
        self,
        app: ASGIApp,
        labels: RouteLabels,
        metrics: Metrics | None,
        log_probes: bool,
        access: AccessLog | None = None,
    ) -> None:
        self.app = app
        self.labels = labels
        self.metrics = metrics
        self.log_probes = log_probes
        self.access = access or AccessLog()
        """The access lines (written by a thread of their own once ``access.start()``)."""
        self._bound: dict[str, tuple[str, str, Bound | None]] = {}
        """Each path's labels and bound metrics (``Metrics.bind``), as many as the labels'
        cache keeps."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        declared: int | None = None
        has_body = scope["method"] not in _BODYLESS
        received = 0
        if has_body:
            for key, value in scope["headers"]:
                if key == b"content-length":
                    if value.isdigit():
                        declared = int(value)
                    break

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def receive_counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        counting = has_body and declared is None
        try:
            await self.app(scope, receive_counted if counting else receive, send_observed)
        finally:
            if status:
                body = (declared if declared is not None else received) if has_body else None
                self.record(scope, status, time.perf_counter() - start, body)

    def bound(self, path: str) -> tuple[str, str, Bound | None]:
        """The path's ``(route, loss)`` labels and its metrics with their label children."""
        found = self._bound.get(path)
        if found is None:
            route, loss = self.labels(path)
            found = (route, loss, self.metrics.bind(route, loss) if self.metrics else None)
            if len(self._bound) < self.labels.max_cached:
                self._bound[path] = found
        return found

    def record(self, scope: Scope, status: int, seconds: float, body: int | None) -> None:
        path: str = scope["path"]
        route, loss, bound = self.bound(path)
        state = scope.get("state") or {}
        if bound is not None:
            bound.observe(status, seconds, body, state.get(PROBLEM_KEY))
        access = self.access
        if access.enabled() and (self.log_probes or not is_probe(path)):
            access.line(
                scope.get("client"),
                scope["method"],
                route,
                status,
                seconds,
                loss,
                state.get("request_id", ""),
            )
