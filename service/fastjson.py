"""Large JSON bodies straight into NumPy buffers, without a Python object per number.

``orjson.loads`` followed by ``np.asarray`` makes one Python float per number (about 32 bytes and
a few dozen nanoseconds each) before NumPy copies them out again; for a 22 MB body of logits that
is most of the request's time and six times the body in memory. Here the body is split instead:

- a cheap structural scan (``bytes.find``, which runs at memory speed) locates the strings and
  the brackets; each top-level array value becomes a *span*;
- the rest of the object (keys, options, scalars), with each span replaced by a placeholder, is
  a few dozen bytes that ``orjson`` parses, so duplicate keys, escapes and the like behave
  exactly as on the ordinary path;
- a tensor span is checked from its brackets alone (every innermost list at the same depth, the
  same number of lists in every list of a level, nothing but whitespace and one comma between
  sibling lists) and its innermost lists are parsed by simdjson in pieces of at most
  ``PIECE_BYTES``, each flattened into a preallocated float64 or int64 array.

This module decides nothing about what is acceptable. It either returns arrays identical to what
``np.asarray`` makes of the ordinary parse (same shape, same dtype, same values), or ``None``
("cannot vouch"), and the caller takes the ordinary path, where ``service.arrays`` states every
rule (ragged arrays, booleans, strings, null, depth, element limits, huge integers) and words
the 422. Anything unusual therefore costs speed, never correctness: escapes in strings, nested
objects, strings inside a tensor, empty or mixed-depth lists, numbers simdjson will not parse
into 64 bits, many short rows (where the per-row cost would exceed orjson's), and bodies under
``min_bytes`` (where orjson is faster anyway).
"""

from __future__ import annotations

import bisect
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import orjson
import simdjson

from service.arrays import DEFAULT_LIMITS, ArrayError, ArrayLimits, check_shape

#: Bodies smaller than this take the ordinary path: orjson is faster there and memory is no issue.
MIN_BYTES: Final = 256 * 1024
#: simdjson parses at most this much text at once, so its tape (16 bytes a number) stays small.
PIECE_BYTES: Final = 1 << 20
#: Give up (ordinary path) past this many brackets or strings: the scan is a Python loop over them.
MAX_EVENTS: Final = 1 << 16
#: Rows must average at least this many bytes; shorter rows cost more per row than orjson does.
MIN_ROW_BYTES: Final = 512

Raw = bytes | bytearray

_WS: Final = b" \t\n\r"
_OPEN: Final = 0x5B  # [
_CLOSE: Final = 0x5D  # ]
_PLACEHOLDER: Final = b'{"#":%d}'


class _CannotVouch(Exception):
    """Internal: this body takes the ordinary path."""


@dataclass(frozen=True)
class Tuning:
    """Where the fast path gives up or cuts; the tests shrink these to reach every branch."""

    min_row_bytes: int = MIN_ROW_BYTES
    piece_bytes: int = PIECE_BYTES


DEFAULT_TUNING: Final = Tuning()


@dataclass(frozen=True)
class _Span:
    """A top-level array value: ``raw[start:end + 1]``, with its bracket events inside."""

    start: int
    end: int
    events: list[tuple[int, int]]


def loads(
    raw: Raw,
    tensor_fields: Collection[str],
    *,
    limits: ArrayLimits = DEFAULT_LIMITS,
    min_bytes: int = MIN_BYTES,
    tuning: Tuning = DEFAULT_TUNING,
) -> dict[str, Any] | None:
    """The JSON object in ``raw`` with each field of ``tensor_fields`` that holds an array
    already an ``ndarray``; ``None`` when this body should take the ordinary path."""
    if len(raw) < min_bytes:
        return None
    try:
        return _loads(raw, frozenset(tensor_fields), limits, tuning)
    except _CannotVouch:
        return None


def tensor(
    text: Raw, *, limits: ArrayLimits = DEFAULT_LIMITS, tuning: Tuning = DEFAULT_TUNING
) -> npt.NDArray[Any] | None:
    """The JSON array ``text`` as ``np.asarray(orjson.loads(text))`` would make it, or ``None``
    when that needs the ordinary path (the body's spans go through the same code)."""
    try:
        if _positions(text, b'"', 0, len(text)):
            return None
        spans = _spans(text, _brackets(text, []))
        if len(spans) != 1 or text[: spans[0].start].strip(_WS):
            return None
        if text[spans[0].end + 1 :].strip(_WS):
            return None
        return _tensor(text, spans[0], limits, tuning, envelope=0)
    except _CannotVouch:
        return None


# -- the body -------------------------------------------------------------------------------


def _loads(
    raw: Raw, tensor_fields: frozenset[str], limits: ArrayLimits, tuning: Tuning
) -> dict[str, Any]:
    if b"\\" in raw:
        raise _CannotVouch  # escapes in strings: quotes no longer pair up simply
    quotes = _positions(raw, b'"', 0, len(raw))
    if len(quotes) % 2:
        raise _CannotVouch
    braces = [p for p in _positions(raw, b"{", 0, len(raw)) if not _in_string(quotes, p)]
    closing = [p for p in _positions(raw, b"}", 0, len(raw)) if not _in_string(quotes, p)]
    if len(braces) != 1 or len(closing) != 1:
        raise _CannotVouch  # not a flat object: the ordinary path handles nesting
    spans = _spans(raw, _brackets(raw, quotes))
    if not spans:
        raise _CannotVouch  # nothing large to gain
    pieces: list[Raw] = []
    cursor = 0
    for i, span in enumerate(spans):
        pieces += (raw[cursor : span.start], _PLACEHOLDER % i)
        cursor = span.end + 1
    pieces.append(raw[cursor:])
    try:
        body = orjson.loads(b"".join(pieces))
    except orjson.JSONDecodeError:
        raise _CannotVouch from None
    if not isinstance(body, dict):
        raise _CannotVouch
    if sum(isinstance(v, dict) for v in body.values()) != len(spans):
        raise _CannotVouch  # a duplicate key hid an array: the ordinary path still parses it
    out: dict[str, Any] = {}
    for key, value in body.items():
        if isinstance(value, dict):
            span = spans[value["#"]]
            if key in tensor_fields:
                if _positions(raw, b'"', span.start, span.end):
                    raise _CannotVouch  # strings in a tensor: the ordinary path words the 422
                out[key] = _tensor(raw, span, limits, tuning, envelope=1)
            else:
                out[key] = orjson.loads(raw[span.start : span.end + 1])
        else:
            out[key] = value
    return out


def _spans(raw: Raw, events: list[tuple[int, int]]) -> list[_Span]:
    """Split bracket events into top-level arrays; the object's own brackets are braces."""
    spans: list[_Span] = []
    depth = 0
    current: list[tuple[int, int]] = []
    for event in events:
        current.append(event)
        depth += 1 if event[1] == _OPEN else -1
        if depth < 0:
            raise _CannotVouch
        if depth == 0:
            spans.append(_Span(current[0][0], event[0], current))
            current = []
    if depth:
        raise _CannotVouch
    return spans


# -- one tensor -----------------------------------------------------------------------------


def _tensor(
    raw: Raw, span: _Span, limits: ArrayLimits, tuning: Tuning, envelope: int
) -> npt.NDArray[Any]:
    """The array in ``span``; ``envelope`` is how deep in the document it sits (1 in a body)."""
    rows, shape = _structure(raw, span.events)
    rank = len(shape) + 1
    if rank > limits.max_rank or rank + envelope > limits.max_depth:
        raise _CannotVouch  # the ordinary path words the depth error
    if len(rows) > 1 and (span.end - span.start) // len(rows) < tuning.min_row_bytes:
        raise _CannotVouch
    if all(raw.find(c, span.start, span.end) == -1 for c in (b".", b"e", b"E")):
        kind: Literal["d", "i"] = "i"  # no fraction or exponent anywhere: all integers
        dtype: np.dtype[Any] = np.dtype(np.int64)
    else:
        kind, dtype = "d", np.dtype(np.float64)
    first_start, first_end = rows[0]
    commas = raw.count(b",", first_start, first_end)
    row_len = commas + 1 if commas or raw[first_start + 1 : first_end].strip(_WS) else 0
    try:
        check_shape((*shape, row_len), limits)  # before anything of that shape is allocated
    except ArrayError:
        raise _CannotVouch from None  # the ordinary path words the limit
    total = row_len * len(rows)
    if total == 0:
        dtype = np.dtype(np.float64)  # np.asarray([[], []]) is float64
    flat = np.empty(total, dtype)
    parser = simdjson.Parser()
    for n, (start, end) in enumerate(rows):
        _row_into(parser, raw, start, end, kind, flat[n * row_len : (n + 1) * row_len], tuning)
    return flat.reshape((*shape, row_len))


def _structure(raw: Raw, events: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[int]]:
    """The innermost lists (``[``, ``]`` positions) and the counts of lists at each level above
    them, after checking that the brackets describe a rectangular nest and that nothing but
    whitespace and single commas sits between sibling lists."""
    rows: list[tuple[int, int]] = []
    counts: list[int | None] = []
    stack: list[int] = []  # child lists seen so far, per open list
    row_depth = -1
    prev_pos, prev_kind = -1, -1
    for pos, kind in events:
        if prev_kind == _OPEN and kind == _CLOSE:
            depth = len(stack)
            if row_depth not in (-1, depth):
                raise _CannotVouch  # leaves at different depths
            row_depth = depth
            rows.append((prev_pos, pos))
        elif prev_kind != -1:
            gap = raw[prev_pos + 1 : pos].strip(_WS)
            want = b"," if (prev_kind, kind) == (_CLOSE, _OPEN) else b""
            if gap != want:
                raise _CannotVouch  # a scalar among lists, a missing or doubled comma
        if kind == _OPEN:
            if stack:
                stack[-1] += 1
            stack.append(0)
        else:
            children = stack.pop()
            if children:
                level = len(stack)
                while len(counts) <= level:
                    counts.append(None)
                if counts[level] not in (None, children):
                    raise _CannotVouch  # ragged: lists of one level differ in length
                counts[level] = children
        prev_pos, prev_kind = pos, kind
    shape = [c for c in counts if c is not None]
    if len(shape) != row_depth - 1:
        raise _CannotVouch
    return rows, shape


def _row_into(
    parser: simdjson.Parser,
    raw: Raw,
    start: int,
    end: int,
    kind: Literal["d", "i"],
    out: npt.NDArray[Any],
    tuning: Tuning,
) -> None:
    """Parse the innermost list ``raw[start:end + 1]`` into ``out``, which it must fill exactly;
    simdjson sees pieces of at most about ``piece_bytes``, cut at commas."""
    filled = 0
    lo = start + 1
    while True:
        cut = raw.find(b",", lo + tuning.piece_bytes, end) if end - lo > tuning.piece_bytes else -1
        # simdjson copies its input (to pad it) anyway: hand it a view when no brackets are needed
        text = memoryview(raw)[start : end + 1] if cut == -1 and lo == start + 1 else None
        hi = end if cut == -1 else cut
        try:
            doc = parser.parse(text if text is not None else b"[" + raw[lo:hi] + b"]")
            if not isinstance(doc, simdjson.Array):
                raise _CannotVouch
            values = np.frombuffer(doc.as_buffer(of_type=kind), dtype=out.dtype)
        except (ValueError, TypeError, RuntimeError):
            raise _CannotVouch from None  # bools, null, big integers: the ordinary path says
        finally:
            doc = None  # the parser refuses to parse again while a proxy lives
        if filled + values.size > out.size:
            raise _CannotVouch  # ragged: a longer row
        out[filled : filled + values.size] = values
        filled += values.size
        if cut == -1:
            break
        lo = cut + 1
    if filled != out.size:
        raise _CannotVouch  # ragged: a shorter row


# -- scanning -------------------------------------------------------------------------------


def _positions(raw: Raw, char: bytes, start: int, end: int) -> list[int]:
    out: list[int] = []
    pos = raw.find(char, start, end)
    while pos != -1:
        out.append(pos)
        if len(out) > MAX_EVENTS:
            raise _CannotVouch
        pos = raw.find(char, pos + 1, end)
    return out


def _in_string(quotes: list[int], pos: int) -> bool:
    return bisect.bisect(quotes, pos) % 2 == 1


def _brackets(raw: Raw, quotes: list[int]) -> list[tuple[int, int]]:
    opens = [(p, _OPEN) for p in _positions(raw, b"[", 0, len(raw))]
    closes = [(p, _CLOSE) for p in _positions(raw, b"]", 0, len(raw))]
    events = sorted(opens + closes)
    if quotes:
        events = [e for e in events if not _in_string(quotes, e[0])]
    return events
