"""Reading the ledger for people: ``execd ledger tail``.

One line per record, or the stored JSON line itself with ``--json`` (for jq).
Tail does not verify the chain; ``execd ledger verify`` does.

Records are split on LF alone: a record can hold an input line's own bytes, and a
bare CR there is JSON whitespace, not the end of the record. Segments are read in
bounded chunks, never whole. A filter that could match no record (a status or kind
that does not exist) is refused by :func:`check_filters` instead of printing nothing.

Times: the ledger keeps integers; what a person reads shows wall-clock times as ISO
8601 UTC (:func:`execd.model.times.iso_utc`) and logical times as they are. A wall-clock
field (:data:`WALL_FIELDS`, nanoseconds since the epoch) is always one; a record's own
``time`` is one only in a run whose ``start`` record says ``clock = "wall"`` (then the
clock's unit is nanoseconds since the epoch, README.md, "Configuration"), and is left
as it is under the logical clock, whose unit is the producer's. ``--json`` prints the
stored line, byte for byte.
"""

from __future__ import annotations

import re
import time
import typing
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, TextIO

import msgspec
from msgspec import Struct

from execd.ledger.record import Record, record_decoder
from execd.ledger.segments import list_segments
from execd.model.errors import UsageError
from execd.model.messages import RecordKind
from execd.model.reasons import STATUSES
from execd.model.times import iso_utc

KINDS: Final[tuple[str, ...]] = typing.get_args(RecordKind)
# Intent ids are UUIDs in their canonical text form: a prefix is hex digits and dashes.
_INTENT_PREFIX: Final = re.compile(r"[0-9a-f-]{1,36}")
READ_CHUNK: Final = 1 << 20
# Every record field that holds a wall-clock time, in nanoseconds since the epoch
# (model/messages.py: the live records' wall_time); tests/unit/cli/test_tail_times.py
# fails when a record struct gains one that is not here.
WALL_FIELDS: Final = frozenset({"wall_time"})


class Filters(Struct, frozen=True):
    """Which records to show; an empty field matches everything.

    ``intent`` matches every intent id that starts with it. Build them with
    :func:`check_filters`, which normalises case and refuses what cannot match.
    """

    kind: str = ""
    venue: str = ""
    status: str = ""
    intent: str = ""

    def match(self, record: Record, body: dict[str, Any]) -> bool:
        """True when ``record`` passes every filter that is set."""
        if self.kind and record.kind != self.kind:
            return False
        if self.venue and body.get("venue") != self.venue:
            return False
        if self.status and body.get("status") != self.status:
            return False
        if self.intent:
            intent_id = body.get("intent_id")
            return isinstance(intent_id, str) and intent_id.startswith(self.intent)
        return True


def check_filters(kind: str, venue: str, status: str, intent: str) -> Filters:
    """Filters from the command line; UsageError, one line per mistake, for a value that
    no record can have. Statuses and intent ids are taken in any case."""
    problems = []
    if kind and kind not in KINDS:
        problems.append(f"--kind: expected one of {', '.join(KINDS)}, found {kind!r}")
    status_upper = status.upper()
    if status and status_upper not in STATUSES:
        problems.append(f"--status: expected one of {', '.join(STATUSES)} (any case), "
                        f"found {status!r}")
    intent_lower = intent.lower()
    if intent and not _INTENT_PREFIX.fullmatch(intent_lower):
        problems.append("--intent: expected an intent id or its first characters (hex "
                        f"digits and dashes, at most 36), found {intent!r}")
    if problems:
        raise UsageError("\n".join(problems))
    return Filters(kind, venue, status_upper, intent_lower)


def _wall(value: Any) -> Any:
    """A wall-clock field as people read it; anything but an integer as it is (tail
    does not verify, so a body may hold what no writer wrote)."""
    return iso_utc(value) if isinstance(value, int) and not isinstance(value, bool) else value


def describe(record: Record, body: dict[str, Any], *, wall_clock: bool = False) -> str:
    """A one-line human rendering of a record.

    ``wall_clock``: the record's run is on the wall clock, so its ``time`` is a
    wall-clock time and shown as one.
    """
    shown = iso_utc(record.time) if wall_clock else record.time
    head = f"#{record.seq} t={shown} {record.kind}"
    body = {k: _wall(v) if k in WALL_FIELDS else v for k, v in body.items()}
    if record.kind == "outcome":
        parts = [body.get("status", "?"), body.get("plane") or "-", body.get("venue") or "-",
                 body.get("symbol") or "-", body.get("side") or "-",
                 f"{body.get('filled_quantity')}/{body.get('requested_quantity', '-')}",
                 f"intent={body.get('intent_id')}"]
        if body.get("reason"):
            parts.append(f"reason={body['reason']}")
        if body.get("detail"):
            parts.append(f"detail={body['detail']!r}")
        src = body.get("source")
        if src:
            parts.append(f"src={src[0]}:{src[1]}")
        if body.get("wall_time") is not None:
            parts.append(f"wall={body['wall_time']}")
        return f"{head} " + " ".join(str(p) for p in parts)
    if record.kind == "tick" and not body.get("actor"):
        return f"{head} {body.get('time')}"
    if record.kind == "input_file":
        return (f"{head} {body.get('file')} lines={body.get('lines')} size={body.get('size')} "
                f"-> {body.get('disposition')}")
    if record.kind == "start":
        planes = ",".join(f"{v}:{p}" for v, p in (body.get("planes") or {}).items())
        return f"{head} mode={body.get('mode')} clock={body.get('clock')} planes={planes}"
    if record.kind == "stop":
        return f"{head} {body.get('reason')}"
    if record.kind == "tick" and body.get("actor"):
        return f"{head} {body.get('time')} by={body['actor']}"
    if record.kind == "trading_state":
        return (f"{head} {body.get('previous')} -> {body.get('state')} "
                f"by={body.get('actor')} reason={body.get('reason')!r}")
    if record.kind == "safety_sell":
        return (f"{head} venue={body.get('venue')} symbol={body.get('symbol') or '*'} "
                f"orders={body.get('orders')} by={body.get('actor')} "
                f"reason={body.get('reason')!r}")
    if record.kind == "override":
        return (f"{head} intent={body.get('intent_id')} regime={body.get('regime')} "
                f"by={body.get('operator')} reason={body.get('reason')!r}")
    if record.kind == "context":
        parts = [f"runs={body.get('runs')}", f"regime={body.get('regime') or '-'}",
                 f"prices={body.get('prices')}", f"overrides={body.get('overrides')}",
                 f"plans={body.get('plans')}"]
        parts += [f"problem={p!r}" for p in body.get("problems") or ()]
        return f"{head} " + " ".join(parts)
    return f"{head} {msgspec.json.encode(body).decode()}"


def _lines(path: Path, offset: int) -> Iterator[tuple[bytes, int]]:
    """Each complete line of ``path`` from ``offset`` on, split on LF alone, with the
    offset just after it; read in chunks of READ_CHUNK bytes."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        pending: list[bytes] = []  # the start of a line that the next chunk ends
        while chunk := handle.read(READ_CHUNK):
            if b"\n" not in chunk:
                pending.append(chunk)
                continue
            pieces = chunk.split(b"\n")
            pieces[0] = b"".join([*pending, pieces[0]])
            pending = [pieces.pop()]
            for line in pieces:
                offset += len(line) + 1
                yield line, offset


class _Reading:
    """Records rendered in ledger order, remembering the clock of the run being read:
    each ``start`` record says it, for the records after it (filtered out or not)."""

    def __init__(self, filters: Filters, as_json: bool) -> None:
        self.filters = filters
        self.as_json = as_json
        self.wall_clock = False

    def render(self, line: bytes) -> str | None:
        """The line to print for one stored line, or None when the filters drop it."""
        try:
            record = record_decoder.decode(line)
            body = msgspec.json.decode(record.body)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            return f"(unreadable line: {line[:80]!r})"
        if not isinstance(body, dict):
            body = {}
        if record.kind == "start":
            self.wall_clock = body.get("clock") == "wall"
        if not self.filters.match(record, body):
            return None
        if self.as_json:
            return line.decode()
        return describe(record, body, wall_clock=self.wall_clock)


def tail(directory: Path, out: TextIO, *, last: int, follow: bool, as_json: bool,
         filters: Filters, poll_seconds: float = 0.2) -> None:
    """Print the last ``last`` matching records; with ``follow``, keep printing new ones."""
    shown: deque[str] = deque(maxlen=last if last > 0 else None)
    position: dict[Path, int] = {}
    reading = _Reading(filters, as_json)
    for path in list_segments(directory):
        position[path] = 0
        for line, end in _lines(path, 0):
            position[path] = end
            text = reading.render(line)
            if text is not None:
                shown.append(text)
    for text in shown:
        out.write(f"{text}\n")
    out.flush()
    while follow:
        time.sleep(poll_seconds)
        for text in _new(directory, position, reading):
            out.write(f"{text}\n")
        out.flush()


def _new(directory: Path, position: dict[Path, int], reading: _Reading) -> Iterator[str]:
    for path in list_segments(directory):
        for line, end in _lines(path, position.setdefault(path, 0)):
            position[path] = end
            text = reading.render(line)
            if text is not None:
                yield text
