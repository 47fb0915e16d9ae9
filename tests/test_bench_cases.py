"""Smoke tests of the benchmark's newer cases and helpers: the stage table, the end-to-end loss
table's targets, the alternating timer, the stage clock (the benchmark itself is never a test)."""

from __future__ import annotations

import time

import orjson
import pytest

from bench import cases, run
from bench.cases import large_binary, losses, stages
from service.losses import registry
from service.stages import STAGES, StageClock


def test_the_new_cases_are_listed_and_selectable() -> None:
    assert {"stages", "losses"} <= set(cases.CASES)
    assert run.selected("losses,stages") == ["stages", "losses"]


def test_a_stage_clock_charges_each_lap_to_its_stage() -> None:
    ticks = iter([0, 10, 25, 25, 100])
    clock = StageClock(lambda: next(ticks))
    clock.lap("parse")
    clock.lap("validate")
    clock.start()  # a new computation: the gap is nobody's
    clock.lap("parse")
    assert clock.spent == {"parse": 10 + 75, "validate": 15}


def test_the_stage_table_has_every_loss_and_each_stage() -> None:
    rows = stages.bodies()
    assert [r[1] for r in rows[1:]] == registry.names()
    picked = [rows[0], next(r for r in rows if r[1] == "mse_loss")]
    times = stages.stage_times(picked, rounds=1, budget_s=0.002)
    for label, _, _ in picked:
        measured = times[label]
        assert set(STAGES) <= set(measured)
        assert all(measured[s] > 0 for s in STAGES)
        assert measured["total"] >= max(measured[s] for s in STAGES)
    text = stages.row_text("mse_loss", times["mse_loss"], {"front": 1.0, "observe/log": 2.0})
    assert text.startswith("mse_loss")
    assert len(text.split()) == 1 + len(stages.COLUMNS) + 3


def test_the_fixed_costs_are_measured_around_a_stubbed_computation() -> None:
    fixed = stages.fixed_costs(requests=20, rounds=1)
    assert set(fixed) == {"front", "observe/log", "access line (its thread)"}
    assert fixed["front"] > 0


def test_the_loss_table_posts_every_example_v2_and_a_batch() -> None:
    targets = losses.targets(batch_items=4)
    labels = [t.label for t in targets]
    assert labels == ["article", *registry.names(), "v2", "batch"]
    batch = next(t for t in targets if t.label == "batch")
    assert batch.items == 4
    assert len(orjson.loads(batch.body)["items"]) == 4
    v2 = orjson.loads(next(t for t in targets if t.label == "v2").body)
    assert [i["name"] for i in v2["inputs"]] == ["input", "target"]


def test_the_round_robin_timer_times_each_function() -> None:
    calls: list[str] = []

    def slow() -> None:
        calls.append("slow")
        time.sleep(0.004)

    def fast() -> None:
        calls.append("fast")

    slow_s, fast_s = large_binary.timed_round_robin([slow, fast], rounds=3)
    assert calls == ["slow", "fast"] * 4  # one warm-up call each, then alternating
    assert slow_s >= 0.004 > fast_s


@pytest.mark.parametrize("case", ["stages", "losses", "large_binary"])
def test_each_case_says_what_it_measures(case: str) -> None:
    assert cases.CASES[case].summary
