"""One place that turns errors into HTTP answers.

``/v1`` and everything else speaks RFC 9457 (``application/problem+json``: ``type``, ``title``,
``status``, ``detail``, plus ``errors`` listing each field and reason). ``/v2`` speaks the Open
Inference Protocol's ``{"error": "..."}`` because its clients read exactly that.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.errors import FieldError, ServiceError, Unauthorized, Unavailable

log = logging.getLogger("service.api")

PROBLEM_TYPE_BASE = "https://loss-service.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_body(
    status: int, code: str, title: str, detail: str, errors: tuple[FieldError, ...], instance: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors:
        body["field"] = errors[0].field
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return body


def error_response(request: Request, exc: ServiceError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, Unavailable) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="loss-service"'
    if request.url.path.startswith("/v2"):
        # The protocol answers every bad input with 400; it has no 422.
        status = 400 if exc.status == 422 else exc.status
        return Response(
            orjson.dumps({"error": exc.detail}),
            status_code=status,
            media_type="application/json",
            headers=headers,
        )
    body = problem_body(exc.status, exc.code, exc.title, exc.detail, exc.errors, request.url.path)
    return Response(
        orjson.dumps(body), status_code=exc.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _http_error(status: int, detail: str) -> ServiceError:
    err = ServiceError(detail)
    err.status = status
    err.code = {404: "not-found", 405: "method-not-allowed"}.get(status, f"http-{status}")
    err.title = {404: "Not found", 405: "Method not allowed"}.get(status, "HTTP error")
    return err


#: RFC 9110's methods, in its order: the candidates an ``Allow`` header may list.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (RFC 9110's ``Allow``).

    Each method is tried against the app's routes through ``BaseRoute.matches``, the one
    interface every route keeps: FastAPI 0.165 wraps included routers in a route class without
    ``methods``, and Starlette's own ``Allow`` names only the first route whose path matched
    (``GET /v1/losses/{name}`` would hide ``POST .../cross_entropy``)."""
    allowed: list[str] = []
    for method in HTTP_METHODS:
        scope = dict(request.scope, method=method)
        for route in request.app.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                allowed.append(method)
                break
    return allowed


def install(app: FastAPI) -> None:
    """Register the handlers; every error the app can raise goes through ``error_response``."""

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [FieldError(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        err = ServiceError("; ".join(f"'{e.field}': {e.message}" for e in errors), errors=errors)
        err.status, err.code, err.title = 422, "invalid-input", "Invalid input"
        return error_response(request, err)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.status_code)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}"
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        response = error_response(request, _http_error(exc.status_code, detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        methods = allowed_methods(request) if exc.status_code == 405 else []
        if methods:
            response.headers["Allow"] = ", ".join(methods)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, ServiceError("internal error; the server log has details"))
