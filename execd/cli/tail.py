"""Reading the ledger for people: ``execd ledger tail``.

One line per record, or the stored JSON line itself with ``--json`` (for jq).
Tail does not verify the chain; ``execd ledger verify`` does.

Records are split on LF alone: a record can hold an input line's own bytes, and a
bare CR there is JSON whitespace, not the end of the record. Segments are read in
bounded chunks, never whole, and a line longer than any record
(:data:`~execd.ledger.segments.MAX_LINE`) is shown as a note, never held. ``-n 0`` writes
each line as it goes; ``--intent`` skips, from their bytes, records that cannot match,
and reads the part of the ledger the positions index covers through it
(cli/tail_index.py): its cost follows the intent's records, not the ledger's length.
A filter that could match no record (a status or kind
that does not exist) is refused by :func:`check_filters` instead of printing nothing.

Times: the ledger keeps integers; what a person reads shows wall-clock times as ISO
8601 UTC (:func:`execd.model.times.iso_utc`) and logical times as they are. A wall-clock
field (:data:`WALL_FIELDS`, nanoseconds since the epoch) is always one; a record's own
``time`` is one only in a run whose ``start`` record says ``clock = "wall"`` (then the
clock's unit is nanoseconds since the epoch, README.md, "Configuration"), and is left
as it is under the logical clock, whose unit is the producer's.

Tail reads what it has not verified, so it prints every record whatever its body holds
(a field of the wrong shape as its JSON) and writes bytes: ``--json`` writes each stored
line exactly, a line that is not UTF-8 or not a record included, and readable lines are
encoded for the terminal with what it cannot show replaced.
"""

from __future__ import annotations

import re
import sys
import time
import typing
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final, TextIO

import msgspec
from msgspec import Struct

from execd.cli.tail_index import indexed
from execd.ledger.record import Record, record_decoder
from execd.ledger.segments import MAX_LINE, list_segments, read_lines
from execd.model import json_depth
from execd.model.errors import UsageError
from execd.model.messages import RecordKind
from execd.model.reasons import STATUSES
from execd.model.text import printable
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


# Tail reads ledgers it has not verified, so every field below is rendered by what it
# holds, not what the writer would have put there: each helper is total, and a value
# of the wrong shape prints as its JSON instead of ending the command.

def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _text(value: Any) -> str:
    """A field that should be a string or a number: a string as it is, else its JSON."""
    return value if isinstance(value, str) else _json(value)


def _quoted(value: Any) -> str:
    """A field of free text (a detail, a reason): a string quoted, else its JSON."""
    return repr(value) if isinstance(value, str) else _json(value)


def _or_dash(value: Any) -> str:
    return "-" if value is None or value == "" else _text(value)


def _source(value: Any) -> str:
    """An outcome's source, ``[file, line, end]`` (model/messages.py ``Source``), as
    ``file:line``; anything else as its JSON."""
    if isinstance(value, list) and len(value) >= 2 and isinstance(value[0], str) \
            and isinstance(value[1], int) and not isinstance(value[1], bool):
        return f"{value[0]}:{value[1]}"
    return _json(value)


def _planes(value: Any) -> str:
    """A start record's ``{venue: plane}`` as ``venue:plane,...``; else its JSON."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return ",".join(f"{venue}:{_text(plane)}" for venue, plane in value.items())
    return _json(value)


def _outcome(body: dict[str, Any]) -> str:
    parts = [_text(body.get("status", "?")), _or_dash(body.get("plane")),
             _or_dash(body.get("venue")), _or_dash(body.get("symbol")),
             _or_dash(body.get("side")),
             f"{_text(body.get('filled_quantity', '-'))}/"
             f"{_text(body.get('requested_quantity', '-'))}",
             f"intent={_text(body.get('intent_id', '-'))}"]
    if body.get("reason"):
        parts.append(f"reason={_text(body['reason'])}")
    if body.get("detail"):
        parts.append(f"detail={_quoted(body['detail'])}")
    if body.get("source") is not None:
        parts.append(f"src={_source(body['source'])}")
    if body.get("wall_time") is not None:
        parts.append(f"wall={_text(body['wall_time'])}")
    if body.get("parent") is not None:
        parts.append(f"parent={_text(body['parent'])}")
    if body.get("children") is not None:
        parts.append(f"children={_text(body['children'])}")
    if body.get("plan") is not None:
        parts.append(f"plan={_plan(body['plan'])}")
    if body.get("sizing") is not None:
        parts.append(f"sized={_sizing(body['sizing'])}")
    return " ".join(parts)


def _sizing(sizing: Any) -> str:
    """How a quantity was resolved, in one token: ``BASIS:FRAC*BASE=QUANTITY``, and
    for an allocation ``[NAME@PRICE]`` (``allocation:0.5*0.2=0.1[book:B1@50000]``)."""
    if not isinstance(sizing, dict):
        return _json(sizing)
    token = (f"{_text(sizing.get('basis', '?'))}:{_text(sizing.get('frac', '?'))}*"
             f"{_text(sizing.get('base', '?'))}={_text(sizing.get('quantity', '?'))}")
    if sizing.get("allocation") is not None:
        token += f"[{_text(sizing['allocation'])}@{_text(sizing.get('price', '?'))}]"
    return token


def _plan(plan: Any) -> str:
    """An order's plan in one token: ``TYPE,SIZE[@PRICE][,TIF][,constraint…]
    [,max_leverage=CAP][,skipped:WHY]``
    (``limit,0.25@100,GTC,policy:default``)."""
    if not isinstance(plan, dict):
        return _json(plan)
    head = f"{_text(plan.get('order_type', '?'))},{_text(plan.get('size', '?'))}"
    if plan.get("price") is not None:
        head += f"@{_text(plan['price'])}"
    parts = [head]
    if plan.get("time_in_force") is not None:
        parts.append(_text(plan["time_in_force"]))
    constraints = plan.get("constraints")
    if isinstance(constraints, list):
        parts += [_text(c) for c in constraints]
    elif constraints is not None:
        parts.append(_json(constraints))
    if plan.get("max_leverage") is not None:
        parts.append(f"max_leverage={_text(plan['max_leverage'])}")
    if plan.get("skip_reason") is not None:
        parts.append(f"skipped:{_text(plan['skip_reason'])}")
    return ",".join(parts)


def _schedule(body: dict[str, Any]) -> str:
    get = body.get
    slices = get("slices")
    if isinstance(slices, list) and slices and all(
            isinstance(s, list) and len(s) == 2 for s in slices):
        window = f"slices={len(slices)} due={_text(slices[0][0])}..{_text(slices[-1][0])}"
    else:
        window = f"slices={_json(slices)}"
    return (f"{_text(get('algorithm'))} {_or_dash(get('side'))} {_text(get('quantity'))} "
            f"{_or_dash(get('venue'))} {_or_dash(get('symbol'))} {window} "
            f"lot={_text(get('lot'))} intent={_text(get('intent_id', '-'))}"
            + (f" rule={_text(get('rule'))}" if get("rule") is not None else "")
            + (f" default={_json(get('execution'))}" if get("execution") is not None else "")
            + (f" slippage={_json(get('slippage'))} arrival={_text(get('arrival'))}"
               if get("slippage") is not None else "")
            + (f" sized={_sizing(get('sizing'))}" if get("sizing") is not None else ""))


def _tick(body: dict[str, Any]) -> str:
    actor = body.get("actor")
    by = "" if actor is None or actor == "" else f" by={_text(actor)}"
    return f"{_text(body.get('time'))}{by}"


def _context(body: dict[str, Any]) -> str:
    parts = [f"runs={_text(body.get('runs'))}", f"regime={_or_dash(body.get('regime'))}",
             f"prices={_text(body.get('prices'))}",
             f"overrides={_text(body.get('overrides'))}", f"plans={_text(body.get('plans'))}"]
    problems = body.get("problems")
    if isinstance(problems, list):
        parts += [f"problem={_quoted(p)}" for p in problems]
    elif problems is not None:
        parts.append(f"problems={_json(problems)}")
    return " ".join(parts)


def _by_kind(kind: str, body: dict[str, Any]) -> str:
    """The part of a record's line after its kind."""
    get = body.get
    if kind == "outcome":
        return _outcome(body)
    if kind == "tick":
        return _tick(body)
    if kind == "input_file":
        return (f"{_text(get('file'))} lines={_text(get('lines'))} "
                f"size={_text(get('size'))} -> {_text(get('disposition'))}")
    if kind == "start":
        return (f"mode={_text(get('mode'))} clock={_text(get('clock'))} "
                f"planes={_planes(get('planes'))}")
    if kind == "stop":
        return _text(get("reason"))
    if kind == "trading_state":
        return (f"{_text(get('previous'))} -> {_text(get('state'))} "
                f"by={_text(get('actor'))} reason={_quoted(get('reason'))}")
    if kind == "safety_sell":
        return (f"venue={_text(get('venue'))} symbol={_text(get('symbol') or '*')} "
                f"orders={_text(get('orders'))} by={_text(get('actor'))} "
                f"reason={_quoted(get('reason'))}")
    if kind == "override":
        return (f"intent={_text(get('intent_id'))} regime={_text(get('regime'))} "
                f"by={_text(get('operator'))} reason={_quoted(get('reason'))}")
    if kind == "context":
        return _context(body)
    if kind == "checkpoint":
        return f"through={_text(get('through_seq'))} snapshot={_text(get('snapshot'))}"
    if kind == "schedule":
        return _schedule(body)
    if kind == "slippage":
        due = get("next_due")
        return (f"{_text(get('breached'))} -> {_text(get('response'))} "
                f"intent={_text(get('intent_id'))} child={_text(get('child'))} "
                f"bps={_text(get('bps'))} parent_bps={_text(get('parent_bps'))} "
                f"arrival={_text(get('arrival'))} price={_text(get('price'))} "
                f"rule={_text(get('rule'))}" + ("" if due is None else f" next_due={_text(due)}"))
    if kind == "route":
        hops = get("hops")
        passed = " ".join(f"passed={_text(h[0])}:{_quoted(h[1])}" for h in hops
                          if isinstance(h, list) and len(h) == 2) if isinstance(
            hops, list) else f"hops={_json(hops)}"
        after = get("after")
        return (f"{_text(get('route'))} intent={_text(get('intent_id'))} -> "
                f"{_or_dash(get('venue'))} {_or_dash(get('symbol'))}"
                + (f" {passed}" if passed else "")
                + ("" if after is None else f" after={_text(after)} quantity="
                   f"{_text(get('quantity'))}"))
    if kind == "resume":
        return (f"intent={_text(get('intent_id'))} by={_text(get('actor'))} "
                f"reason={_quoted(get('reason'))}")
    if kind == "target":
        legs = get("legs")
        shown = (" ".join(f"{_text(leg[0])}:{_text(leg[2])}->{_text(leg[1])}"
                          f"({_text(leg[5])} {_text(leg[3])})"
                          for leg in legs[:12] if isinstance(leg, list) and len(leg) >= 6)
                 + (f" (+{len(legs) - 12} more)" if len(legs) > 12 else "")
                 if isinstance(legs, list) else _json(legs))
        return (f"{_text(get('portfolio_id'))} as_of={_text(get('as_of'))} "
                f"{_text(get('venue'))} target={_text(get('target_id'))}"
                + (" partial" if get("partial") else "") + (" signed" if get("signed") else "")
                + ("" if get("supersedes") is None else f" supersedes={_text(get('supersedes'))}")
                + (f" {shown}" if shown else ""))
    if kind == "holdings":
        total = get("total")
        shown = (" ".join(f"{_text(a)}={_text(q)}" for a, q in list(total.items())[:8])
                 + (f" (+{len(total) - 8} more)" if len(total) > 8 else "")
                 if isinstance(total, dict) else _json(total))
        return (f"{_text(get('venue'))} {_text(get('why'))} "
                f"{'quiet' if get('quiet') else 'busy'} {shown or '(nothing)'}")
    if kind == "drift":
        return (f"{_text(get('state'))} {_text(get('venue'))} {_text(get('asset'))} "
                f"venue={_text(get('venue_quantity'))} ledger={_text(get('ledger_low'))}.."
                f"{_text(get('ledger_high'))} baseline={_text(get('baseline'))} "
                f"tolerance={_text(get('tolerance'))} action={_text(get('action', 'alert'))}"
                + ("" if get("holdings") is None else f" holdings={_text(get('holdings'))}"))
    if kind == "venue_status":
        moved = "".join(
            f" {name}=" + (",".join(_text(s) for s in value) if isinstance(value, list)
                           else _json(value))
            for name in ("halted", "resumed") if (value := get(name)))
        return (f"{_text(get('venue'))} status={_text(get('status'))} "
                f"markets={_text(get('markets'))} inactive={_text(get('inactive', 0))}"
                + moved)
    return _json(body)


def describe(record: Record, body: Any, *, wall_clock: bool = False) -> str:
    """A one-line human rendering of a record, whatever its body holds.

    ``wall_clock``: the record's run is on the wall clock, so its ``time`` is a
    wall-clock time and shown as one. A body that is not an object, and any field of
    a shape the writer never writes, is shown as its JSON.
    """
    shown = iso_utc(record.time) if wall_clock else record.time
    head = f"#{record.seq} t={shown} {record.kind}"
    if not isinstance(body, dict):
        return printable(f"{head} {_json(body)}")
    body = {k: _wall(v) if k in WALL_FIELDS else v for k, v in body.items()}
    return printable(f"{head} {_by_kind(record.kind, body)}")


# Deeper than any record the writer makes (an input's MAX_JSON_DEPTH levels inside a
# record's few), and far from the recursion limit of the decoder (model/json_depth.py).
MAX_RECORD_DEPTH: Final = 2 * json_depth.MAX_JSON_DEPTH


def _decode(line: bytes) -> tuple[Record, Any] | None:
    """A stored line's record and decoded body, or None when it is not a record."""
    if json_depth.exceeds(line, MAX_RECORD_DEPTH):
        return None
    try:
        record = record_decoder.decode(line)
        return record, msgspec.json.decode(record.body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None


class _Reading:
    """Records rendered in ledger order, remembering the clock of the run being read:
    each ``start`` record says it, for the records after it (filtered out or not).

    What is printed is bytes: with ``--json`` the stored line itself, whatever it
    holds; for people, the rendering in ``encoding`` (the terminal's), a character it
    cannot write replaced rather than ending the command.
    """

    def __init__(self, filters: Filters, as_json: bool, encoding: str) -> None:
        self.filters = filters
        self.as_json = as_json
        self.encoding = encoding
        self.wall_clock = False
        self.needle = filters.intent.encode() if filters.intent else None

    def _cannot_match(self, line: bytes) -> bool:
        """True when ``line`` is a record, not a ``start``, whose intent id cannot start
        with the ``--intent`` asked for: judged from its bytes, its body not decoded
        (most of what reading a record costs).

        An intent id is a JSON string: with no escape in the line its text is its
        bytes, so an id that starts with the prefix puts the prefix in the line. ASCII
        and not too deep, the body is one the full decode also reads (:func:`_decode`),
        so what is skipped here is what :meth:`render` would have dropped. (One body
        the envelope accepts and the full decode refuses stays: a number no float
        holds, such as 1e400, which no writer writes. It is skipped, not shown as
        unreadable.)
        """
        if self.needle is None or self.needle in line or b"\\" in line \
                or not line.isascii() or json_depth.exceeds(line, MAX_RECORD_DEPTH):
            return False
        try:
            return record_decoder.decode(line).kind != "start"
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False

    def render(self, line: bytes) -> bytes | None:
        """What to print for one stored line (newline included), or None when the
        filters drop it. A line that is not a record is always printed: no filter
        can say it is not the one asked for."""
        if self._cannot_match(line):
            return None
        decoded = _decode(line)
        if decoded is None:
            return line + b"\n" if self.as_json else \
                f"(unreadable line: {line[:80]!r})\n".encode(self.encoding, "replace")
        record, body = decoded
        fields = body if isinstance(body, dict) else {}
        if record.kind == "start":
            self.wall_clock = fields.get("clock") == "wall"
        if not self.filters.match(record, fields):
            return None
        if self.as_json:
            return line + b"\n"
        text = describe(record, body, wall_clock=self.wall_clock)
        return f"{text}\n".encode(self.encoding, "replace")

    def too_long(self) -> bytes:
        """What is printed for a line longer than any record (its bytes were not kept),
        with ``--json`` too: no record, and no filter can say it is not the one asked for."""
        return f"(unreadable line: longer than {MAX_LINE} bytes)\n".encode()


def tail(directory: Path, out: BinaryIO, *, last: int, follow: bool, as_json: bool,
         filters: Filters, encoding: str = "utf-8", poll_seconds: float = 0.2,
         err: TextIO | None = None) -> None:
    """Print the last ``last`` matching records on ``out`` (0: all of them); with
    ``follow``, keep printing new ones. ``encoding`` is the one readable lines are
    written in; with ``as_json`` the stored lines are written exactly, whatever bytes
    they hold.

    Memory is bounded: the last ``last`` lines are kept, or, for all of them, each is
    written as it is read; segments are read in chunks, each line at most
    :data:`~execd.ledger.segments.MAX_LINE` bytes. With ``--intent``, the part of the
    ledger the positions index covers is read through it (cli/tail_index.py; what it
    says of the index goes to ``err``, stderr by default).
    """
    position: dict[Path, int] = {}
    reading = _Reading(filters, as_json, encoding)
    first = _first(directory, position, reading, sys.stderr if err is None else err)
    if last > 0:
        shown: deque[bytes] = deque(maxlen=last)
        shown.extend(first)
        out.write(b"".join(shown))
    else:
        _write(out, first)
    out.flush()
    while follow:
        time.sleep(poll_seconds)
        _write(out, _new(directory, position, reading))
        out.flush()


def _write(out: BinaryIO, texts: Iterator[bytes]) -> None:
    """Write ``texts`` on ``out`` in pieces of about READ_CHUNK bytes."""
    batch: list[bytes] = []
    held = 0
    for text in texts:
        batch.append(text)
        held += len(text)
        if held >= READ_CHUNK:
            out.write(b"".join(batch))
            batch, held = [], 0
    out.write(b"".join(batch))


def _first(directory: Path, position: dict[Path, int], reading: _Reading,
           err: TextIO) -> Iterator[bytes]:
    """What to print for the ledger as it is now: through the positions index for the
    part it covers when ``--intent`` is given, then :func:`_new` from where it left off."""
    if reading.filters.intent:
        yield from indexed(directory, reading.filters.intent, reading.render, position, err)
    yield from _new(directory, position, reading)


def _new(directory: Path, position: dict[Path, int], reading: _Reading) -> Iterator[bytes]:
    """What to print for each line after ``position`` (per segment), moving it on."""
    for path in list_segments(directory):
        for line in read_lines(path, position.setdefault(path, 0), READ_CHUNK):
            position[path] = line.end
            text = reading.render(line.data) if not line.too_long else reading.too_long()
            if text is not None:
                yield text
