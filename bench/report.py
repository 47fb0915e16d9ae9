"""Figures and the table that prints each beside its floor, ratio and target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    case: str
    what: str
    value: float
    unit: str
    floor: float | None = None
    floor_what: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    command: str = ""  # the command that reproduces this figure's case
    extra: dict[str, Any] = field(default_factory=dict)


def report(figures: list[Figure], command: str) -> str:
    """The table: one line per figure (value, floor, ratio, target and verdict), the floor's
    name and notes under it, the command that reruns each case after its last figure, and the
    whole run's command at the end."""
    lines = [f"{'case':<13} {'figure':<62} {'value':>11} {'floor':>11} {'ratio':>7}  target"]
    for i, f in enumerate(figures):
        last_of_case = i + 1 == len(figures) or figures[i + 1].command != f.command
        rerun = [f"{'':<13}   reproduce: {f.command}"] if f.command and last_of_case else []
        if f.unit == "":  # a line of text (a table's row carries its own label in its note)
            lines.append(
                f"{f.case:<13} {f.what:<62} {f.note}" if f.what else f"{f.case:<13} {f.note}"
            )
            lines += rerun
            continue
        value = f"{f.value:,.1f} {f.unit}"
        floor = f"{f.floor:,.1f} {f.unit}" if f.floor is not None else ""
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        verdict = "" if f.met is None else ("  met" if f.met else "  NOT met")
        lines.append(
            f"{f.case:<13} {f.what:<62} {value:>11} {floor:>11} {ratio:>7}  {f.target}{verdict}"
        )
        if f.floor_what:
            lines.append(f"{'':<13}   floor: {f.floor_what}" + (f"; {f.note}" if f.note else ""))
        lines += rerun
    lines.append("")
    lines.append(f"reproduce: {command}")
    return "\n".join(lines)
