"""What a benchmark case is: a name, the figures it measures, and its own options."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.report import Figure


@dataclass(frozen=True)
class Context:
    """What the entry point hands every case: the parsed options and a scratch directory."""

    args: argparse.Namespace
    workdir: Path


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """For a case with no options of its own."""


@dataclass(frozen=True)
class Case:
    name: str
    summary: str
    run: Callable[[Context], list[Figure]]
    add_arguments: Callable[[argparse.ArgumentParser], None] = no_arguments
    needs_wrk: bool = False
