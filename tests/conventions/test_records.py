"""Tests generated from the records: every convention row of every loss against its library,
and every mistake named first when the user's number is produced the mistake's way.

The pairs come from the service's registry (``service.conventions.registry``) and the oracles
from ``tests.conventions.oracles``: a new record fails here until its oracle exists, and an
oracle without its record fails too.
"""

from __future__ import annotations

from typing import Any

import pytest

from service.conventions import conventions, diagnose, registry
from service.conventions import shared as shared_records
from service.conventions.records import Mistake
from service.dataplane import Dataplane
from tests.conventions import oracles
from tests.conventions.oracles.tools import assert_close

oracles.load()

ROWS = [(loss, id_) for loss in registry.names() for id_ in registry.require(loss).row_ids]
MISTAKES = [(loss, id_) for loss in registry.names() for id_ in registry.require(loss).mistake_ids]


def _ids(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"{loss}-{id_}" for loss, id_ in pairs]


def _cases(loss: str) -> list[tuple[str, oracles.Body]]:
    found = oracles.CASES.get(loss, [])
    assert found, f"tests/conventions/oracles declares no request bodies for {loss}"
    return found


@pytest.mark.parametrize(("loss", "row_id"), ROWS, ids=_ids(ROWS))
def test_row_is_its_librarys_answer(dataplane: Dataplane, loss: str, row_id: str) -> None:
    oracle = oracles.ROWS.get((loss, row_id))
    assert oracle is not None, f"no oracle for {loss}'s row {row_id!r} in tests/conventions/oracles"
    seen = 0
    for case, body in _cases(loss):
        out = conventions(dataplane, loss, body)
        rows = {r["id"]: r for r in out["conventions"]}
        assert list(rows) == [i for i in registry.require(loss).row_ids if i in rows]
        if row_id not in rows:
            continue
        seen += 1
        try:
            oracle(loss, body, rows[row_id])
        except AssertionError as exc:
            raise AssertionError(f"case {case!r}: {exc}") from exc
    assert seen, f"no case of {loss} has the row {row_id!r}"


@pytest.mark.parametrize(("loss", "mistake_id"), MISTAKES, ids=_ids(MISTAKES))
def test_mistake_is_named_first(dataplane: Dataplane, loss: str, mistake_id: str) -> None:
    """For each case where the mistake applies, the number it produces (computed here with
    torch or the library) is diagnosed as that mistake first."""
    oracle = oracles.mistake_oracle(loss, mistake_id)
    assert oracle is not None, f"no oracle for {loss}'s mistake {mistake_id!r}"
    seen = 0
    for case, body in _cases(loss):
        probe = diagnose(dataplane, loss, body | {"observed": 1.0})
        candidates = {c["id"]: c for c in probe["candidates"]}
        if mistake_id not in candidates:
            continue
        seen += 1
        observed = oracle(loss, body)
        answer: dict[str, Any] = diagnose(dataplane, loss, body | {"observed": observed})
        where = f"case {case!r}, observed {observed!r}"
        assert answer["matches"], f"{where}: nothing matches; candidates {answer['candidates']}"
        first = answer["matches"][0]
        assert first["id"] == mistake_id, f"{where}: {[m['id'] for m in answer['matches']]}"
        assert first["kind"] == "mistake"
        assert_close(first["value"], observed, rel=1e-9, what=where)
    assert seen, f"no case of {loss} exercises the mistake {mistake_id!r}"


def test_every_oracle_has_its_record() -> None:
    rows = set(ROWS)
    assert set(oracles.ROWS) <= rows, sorted(set(oracles.ROWS) - rows)
    mistakes = set(MISTAKES)
    assert set(oracles.MISTAKES) <= mistakes, sorted(set(oracles.MISTAKES) - mistakes)
    shared = {m.id for m in vars(shared_records).values() if isinstance(m, Mistake)}
    assert set(oracles.SHARED_MISTAKES) <= shared, sorted(set(oracles.SHARED_MISTAKES) - shared)
