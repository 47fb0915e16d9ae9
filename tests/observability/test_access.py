"""The access log (``service.observability.access``): lines queued on the loop and written by a
thread are the records ``logger.info`` would have written, stamped with the request's end, and
none is lost when the log stops; the line's time is formatted as ``datetime`` does."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from service.observability import logs
from service.observability.access import AccessLog


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, Collect]]:
    """A logger of its own, propagating to a parent that holds the handler (as
    ``service.access`` propagates to ``service``)."""
    parent = logging.getLogger("test-access-parent")
    child = logging.getLogger("test-access-parent.access")
    collect = Collect()
    parent.addHandler(collect)
    parent.setLevel(logging.INFO)
    yield child, collect
    parent.removeHandler(collect)


FIELDS = (("127.0.0.1", 5000), "POST", "/v1/losses/{name}", 200, 0.0012345, "mse_loss", "id-1")


def expected(record: logging.LogRecord) -> None:
    assert record.getMessage() == (
        '127.0.0.1:5000 "POST /v1/losses/{name}" 200 1.234 ms loss=mse_loss request_id=id-1'
    )
    assert record.levelno == logging.INFO
    extra = {k: record.__dict__[k] for k in ("request_id", "method", "route", "status")}
    assert extra == {
        "request_id": "id-1",
        "method": "POST",
        "route": "/v1/losses/{name}",
        "status": 200,
    }
    fields = record.__dict__
    assert (fields["duration_ms"], fields["loss"], fields["client"]) == (
        1.234,
        "mse_loss",
        "127.0.0.1:5000",
    )


def test_without_its_thread_a_line_is_written_at_once(
    logger: tuple[logging.Logger, Collect],
) -> None:
    child, collect = logger
    AccessLog(child).line(*FIELDS)
    assert len(collect.records) == 1
    expected(collect.records[0])


def test_the_thread_writes_every_line_by_the_time_it_stops(
    logger: tuple[logging.Logger, Collect],
) -> None:
    child, collect = logger
    log = AccessLog(child, interval=0.01)
    log.start()
    before = time.time()
    for _ in range(500):
        log.line(*FIELDS)
    after = time.time()
    log.stop()
    assert len(collect.records) == 500
    for record in collect.records:
        expected(record)
        assert before <= record.created <= after  # the request's end, not the write's
    log.line(*FIELDS)  # stopped: written at once again
    assert len(collect.records) == 501


def test_a_missing_client_and_request_id_read_as_the_logger_wrote_them(
    logger: tuple[logging.Logger, Collect],
) -> None:
    child, collect = logger
    AccessLog(child).line(None, "GET", "unmatched", 404, 0.0, "", "")
    record = collect.records[0]
    assert record.getMessage() == ' "GET unmatched" 404 0.000 ms loss=- request_id=-'
    fields = record.__dict__
    assert (fields["client"], fields["loss"], fields["request_id"]) == ("", "", "")


def test_a_disabled_level_writes_nothing(logger: tuple[logging.Logger, Collect]) -> None:
    child, _ = logger
    logging.getLogger("test-access-parent").setLevel(logging.WARNING)
    assert not AccessLog(child).enabled()


def _datetime_text(created: float) -> str:
    stamp = datetime.fromtimestamp(created, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def test_times_are_formatted_as_datetime_formats_them() -> None:
    rng = random.Random(17)
    times = [rng.uniform(0, 4e9) for _ in range(20_000)]
    times += [int(t) + 0.9999996 for t in times[:2000]]  # rounds up into the next second
    times += [1.7e9 + rng.random() for _ in range(2000)]  # many in one second (the cache)
    for created in times:
        assert logs._iso_time(created) == _datetime_text(created), created
