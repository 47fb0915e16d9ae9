"""loss-service benchmark: each figure beside a floor measured in the same run.

Run from the repository root: ``python bench/run.py`` (``make bench``), ``--help`` for options,
``--cases small,large_json`` for some of the cases. Each case is a module of ``bench/cases/``
(its docstring says what it measures and against which floor); servers, load generation,
bodies and floors are shared helpers beside this file. Everything is bounded in time and
requests and stays on 127.0.0.1. Timings are medians of several rounds; the machine may be
shared, so compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/run.py` from anywhere

from bench.cases import ALIASES, CASES, Context  # noqa: E402
from bench.load import have_wrk  # noqa: E402
from bench.report import Figure, report  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="loss-service benchmark (see the module doc)")
    names = ", ".join([*CASES, *(f"{a} (= {'+'.join(c)})" for a, c in ALIASES.items())])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {names}")
    p.add_argument("--seconds", type=int, default=5, help="wrk duration per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds under load")
    p.add_argument("--large-rounds", type=int, default=9, help="timed large requests")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    for case in CASES.values():
        case.add_arguments(p)
    return p


def selected(spec: str) -> list[str]:
    """The case names ``--cases`` asks for, aliases expanded, in the registry's order."""
    wanted: set[str] = set()
    for name in (n.strip() for n in spec.split(",")):
        if not name:
            continue
        if name in ALIASES:
            wanted.update(ALIASES[name])
        elif name in CASES:
            wanted.add(name)
        else:
            raise SystemExit(f"unknown case {name!r}; known: {', '.join([*CASES, *ALIASES])}")
    return [n for n in CASES if n in wanted]


def case_command(argv: Sequence[str], name: str) -> str:
    """The command that reruns one case with the same options."""
    rest: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--cases", "--json"):
            skip = True
            continue
        if arg.startswith(("--cases=", "--json=")):
            continue
        rest.append(arg)
    return " ".join(["python", "bench/run.py", "--cases", name, *rest])


def main(argv: Sequence[str] | None = None) -> int:
    given = list(argv if argv is not None else sys.argv[1:])
    args = parser().parse_args(given)
    names = selected(args.cases)
    if not have_wrk() and any(CASES[n].needs_wrk for n in names):
        print(
            "wrk not found (install it: apt-get update && apt-get install -y wrk); "
            "using the built-in Python load generator, whose figures are lower and noisier.",
            file=sys.stderr,
        )
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(args, Path(tmp))
        for name in names:
            measured = CASES[name].run(ctx)
            for figure in measured:
                figure.command = case_command(given, name)
            figures += measured
    print(report(figures, " ".join(["python", "bench/run.py", *given])))
    if args.json:
        args.json.write_text(json.dumps([f.__dict__ for f in figures], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
