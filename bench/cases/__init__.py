"""The benchmark's cases, one module each. Adding a case is adding a module that defines
``CASE`` (a :class:`bench.cases.base.Case`) and listing it here; ``bench/run.py`` runs what
``--cases`` names, in this order."""

from __future__ import annotations

from bench.cases import (
    burst_memory,
    catalogue,
    diagnose,
    large_binary,
    large_json,
    losses,
    memory,
    metrics_cost,
    reference_memory,
    small,
    stages,
    workers,
)
from bench.cases.base import Case, Context

CASES: dict[str, Case] = {
    c.name: c
    for c in (
        small.CASE,
        catalogue.CASE,
        stages.CASE,
        losses.CASE,
        diagnose.CASE,
        workers.CASE,
        large_json.CASE,
        large_binary.CASE,
        memory.CASE,
        reference_memory.CASE,
        burst_memory.CASE,
        metrics_cost.CASE,
    )
}

# names kept for the command lines people already have
ALIASES: dict[str, tuple[str, ...]] = {"large": ("large_json", "large_binary", "memory")}

__all__ = ["ALIASES", "CASES", "Case", "Context"]
