"""The service's error hierarchy.

The domain raises these and never imports FastAPI; the HTTP layer has one handler that renders
any ``ServiceError`` as an RFC 9457 problem (or as the Open Inference Protocol's ``{"error"}``
envelope on ``/v2``). Each class carries its status code, so the mapping lives in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of the request. ``field`` is a dotted path (``target``,
    ``weight``, ``inputs.0.shape``); an empty string means the body as a whole."""

    field: str
    message: str


class ServiceError(Exception):
    """Base of every error the service answers deliberately."""

    status: int = 500
    code: str = "internal-error"
    title: str = "Internal error"

    def __init__(self, detail: str, *, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = tuple(errors)

    @property
    def field(self) -> str | None:
        return self.errors[0].field if self.errors else None


class InvalidInput(ServiceError):
    """A well-formed request whose content cannot be computed (shapes, ranges, types)."""

    status = 422
    code = "invalid-input"
    title = "Invalid input"

    @classmethod
    def at(cls, field_name: str, message: str) -> InvalidInput:
        """The usual case: one field, one reason; ``detail`` names both."""
        where = f"'{field_name}'" if field_name else "body"
        return cls(f"{where}: {message}", errors=[FieldError(field_name, message)])

    @classmethod
    def many(cls, errors: Sequence[FieldError]) -> InvalidInput:
        parts = [f"'{e.field}': {e.message}" if e.field else e.message for e in errors]
        return cls("; ".join(parts), errors=errors)


class MalformedBody(ServiceError):
    """The body is not parseable at all (not JSON, truncated, bad binary framing)."""

    status = 400
    code = "malformed-body"
    title = "Malformed request body"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload-too-large"
    title = "Payload too large"


class NotFound(ServiceError):
    status = 404
    code = "not-found"
    title = "Not found"


class NotImplementedByTorch(ServiceError):
    """The installed torch lacks what the loss needs (``Loss.requires``): a newer torch would
    compute it. Not the client's error, and not a fault of this server's: 501."""

    status = 501
    code = "not-implemented"
    title = "Not implemented by the installed torch"


class Unavailable(ServiceError):
    """The service cannot answer now (not ready, overloaded, device unusable)."""

    status = 503
    code = "unavailable"
    title = "Service unavailable"

    def __init__(
        self, detail: str, *, retry_after: float | None = None, errors: Sequence[FieldError] = ()
    ) -> None:
        super().__init__(detail, errors=errors)
        self.retry_after = retry_after


class DeviceError(ServiceError):
    """The device failed while computing one request (for example out of memory)."""

    status = 503
    code = "device-error"
    title = "Device error"


class LimitExceeded(InvalidInput):
    """The request is well formed but larger than this server's configured limits (nesting
    depth, rank, dimension size, element count); a different server may accept it."""

    code = "limit-exceeded"
    title = "Limit exceeded"


class Unauthorized(ServiceError):
    """No valid API key; the HTTP layer adds ``WWW-Authenticate: Bearer``."""

    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class BodyTimeout(ServiceError):
    """The client took longer than the configured time to send its body."""

    status = 408
    code = "body-timeout"
    title = "Request body timeout"


class Overloaded(Unavailable):
    """Every computation slot and queue place is taken, or the wait for a slot ran out: the
    request was never computed and may be retried after ``Retry-After`` seconds."""

    code = "overloaded"
    title = "Overloaded"


class TimedOut(ServiceError):
    """The computation ran past the per-request time limit; its worker finishes on its own and
    keeps its slot until then, so retrying at once rarely helps."""

    status = 504
    code = "timed-out"
    title = "Time limit exceeded"
