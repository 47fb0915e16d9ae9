"""Log format: ``LOSS_SERVICE_LOG_FORMAT=text`` (a line for people) or ``json`` (one object a
line for log collectors), the same for the service's loggers, uvicorn's and the root logger.

``log_config(settings)`` is a ``logging.config.dictConfig`` dictionary; the command line hands
it to uvicorn, which applies it in every worker process. uvicorn's own access log is turned off
there: the service writes its access lines itself (``service.observability.requests``), with
the route template, loss, request id and duration that uvicorn does not know.

No log line holds a request body (none is ever passed to a logger) or an API key: the access
line names no header, and both formatters also replace any configured key that reached a
message by some other way with ``[redacted]``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import orjson

from service.settings import Settings

ACCESS_LOGGER = "service.access"
REDACTED = "[redacted]"

#: Attributes every ``LogRecord`` has; whatever else a record carries came as ``extra=`` fields.
_STANDARD = frozenset(
    set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)
    | {"message", "asctime", "color_message", "taskName"}
)


_second: tuple[int, str] = (-1, "")
"""The last whole second formatted, and its text up to the dot (a line's time is formatted a
thousand times a second under load; its date and time change once)."""


def _iso_time(created: float) -> str:
    """UTC, millisecond precision: ``2026-12-01T21:30:00.123Z``."""
    global _second
    whole = int(created)
    micro = round((created - whole) * 1e6)  # as datetime rounds a timestamp: half to even
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    second, text = _second
    if second != whole:
        text = datetime.fromtimestamp(whole, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        _second = (whole, text)
    return f"{text}{micro // 1000:03d}Z"


class _Redacting(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.secrets = [s for s in secrets if s]

    def redact(self, line: str) -> str:
        for secret in self.secrets:
            if secret in line:
                line = line.replace(secret, REDACTED)
        return line


class JsonFormatter(_Redacting):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the record's
    ``extra`` fields (an access line's ``request_id``, ``method``, ``route``, ``status``,
    ``duration_ms``, ``loss``, ``client``) and ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return self.redact(orjson.dumps(out, default=str).decode())


class TextFormatter(_Redacting):
    """``2026-12-01T21:30:00.123Z INFO service.access: <message>``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(secrets, fmt="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _iso_time(record.created)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


def log_config(settings: Settings) -> dict[str, Any]:
    """The logging configuration for uvicorn's ``log_config``: one stderr handler in the chosen
    format for the service's, uvicorn's, torch's and the root logger."""
    formatter = JsonFormatter if settings.log_format == "json" else TextFormatter
    level = settings.log_level.upper()
    keys = [key.get_secret_value() for key in settings.api_keys]
    handler = ["default"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": f"{__name__}.{formatter.__name__}", "secrets": keys},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": handler, "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": handler, "level": level, "propagate": False},
            "service": {"handlers": handler, "level": level, "propagate": False},
            # torch installs its own handler and format on its logger; replace them
            "torch": {"handlers": handler, "level": "WARNING", "propagate": False},
        },
        "root": {"handlers": handler, "level": "WARNING"},
    }
