"""The access log: one line per answered request, formatted and written off the event loop.

On the loop a request leaves only a tuple of its fields in a queue (``AccessLog.line``); a
thread of the standard library's ``logging.handlers.QueueListener`` turns each into the
``LogRecord`` that ``access_log.info(...)`` would have made and hands it to the
``service.access`` logger, whose level, filters, handlers and propagation decide as before
where it goes and in which format (``service.observability.logs``). The record keeps the time
the request ended, not the time the thread got to it.

The queue is a ``deque`` that the thread drains every ``interval`` seconds (50 ms) rather than
a queue it waits on: waking a waiting thread is a system call, and it would be made for every
request, on the loop.

The listener runs from the app's start to its end (``start``/``stop`` in the lifespan); ``stop``
writes every line still queued. Outside that span (an app driven without its lifespan) lines
are written at once, on the caller's thread.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from logging.handlers import QueueListener
from typing import Any

from service.observability.logs import ACCESS_LOGGER

Fields = tuple[float, Any, str, str, int, float, str, str]
"""(time, client, method, route, status, seconds, loss, request id) of one answered request."""

_FORMAT = '%s "%s %s" %d %.3f ms loss=%s request_id=%s'


class AccessLog:
    """Access lines for the ``service.access`` logger."""

    def __init__(self, logger: logging.Logger | None = None, interval: float = 0.05) -> None:
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)
        self.interval = interval
        self._queue: deque[Fields | None] = deque()
        self._listener: QueueListener | None = None

    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def line(
        self,
        client: Any,
        method: str,
        route: str,
        status: int,
        seconds: float,
        loss: str,
        request_id: str,
    ) -> None:
        """One request's line; ``client`` is the ASGI scope's ``(host, port)`` or None."""
        fields = (time.time(), client, method, route, status, seconds, loss, request_id)
        if self._listener is not None:
            self._queue.append(fields)
        else:
            self.logger.handle(self.record(fields))

    def record(self, fields: Fields) -> logging.LogRecord:
        """The record ``logger.info`` would have made for the line (with its ``extra`` fields
        for the JSON format), stamped with the time the request ended."""
        created, client, method, route, status, seconds, loss, request_id = fields
        where = f"{client[0]}:{client[1]}" if client else ""
        duration_ms = round(seconds * 1000, 3)
        record = self.logger.makeRecord(
            self.logger.name,
            logging.INFO,
            "(unknown file)",
            0,
            _FORMAT,
            (where, method, route, status, duration_ms, loss or "-", request_id or "-"),
            None,
            extra={
                "request_id": request_id,
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "loss": loss,
                "client": where,
            },
        )
        record.created = created
        record.msecs = int((created - int(created)) * 1000) + 0.0
        record.relativeCreated = (created - logging._startTime) * 1000  # type: ignore[attr-defined]
        return record

    def start(self) -> None:
        """Write the lines from a thread of their own, until ``stop``."""
        if self._listener is None:
            listener = _Lines(self._queue, self)
            listener.start()
            self._listener = listener

    def stop(self) -> None:
        """Write every queued line, end the thread; lines are written at once from now on."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()


class _Lines(QueueListener):
    """The listener: each queued tuple becomes its record, handled by the access logger (which
    stands in the listener's list of handlers: ``Logger.handle`` applies its filters and
    handlers, then its ancestors')."""

    def __init__(self, queue: deque[Fields | None], log: AccessLog) -> None:
        super().__init__(queue, log.logger)  # type: ignore[arg-type]
        self.log = log
        self.lines = queue

    def dequeue(self, block: bool) -> Any:
        """The next queued line, looking again every ``interval`` seconds while there is
        none (``deque`` appends and pops are atomic)."""
        while True:
            try:
                return self.lines.popleft()
            except IndexError:
                time.sleep(self.log.interval)

    def enqueue_sentinel(self) -> None:
        self.lines.append(None)

    def prepare(self, record: Any) -> logging.LogRecord:
        return self.log.record(record)
