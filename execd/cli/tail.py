"""Reading the ledger for people: ``execd ledger tail``.

One line per record, or the stored JSON line itself with ``--json`` (for jq).
Tail does not verify the chain; ``execd ledger verify`` does.

Records are split on LF alone: a record can hold an input line's own bytes, and a
bare CR there is JSON whitespace, not the end of the record. Segments are read in
bounded chunks, never whole. A filter that could match no record (a status or kind
that does not exist) is refused by :func:`check_filters` instead of printing nothing.
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

KINDS: Final[tuple[str, ...]] = typing.get_args(RecordKind)
# Intent ids are UUIDs in their canonical text form: a prefix is hex digits and dashes.
_INTENT_PREFIX: Final = re.compile(r"[0-9a-f-]{1,36}")
READ_CHUNK: Final = 1 << 20


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


def describe(record: Record, body: dict[str, Any]) -> str:
    """A one-line human rendering of a record."""
    head = f"#{record.seq} t={record.time} {record.kind}"
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


def _render(line: bytes, filters: Filters, as_json: bool) -> str | None:
    try:
        record = record_decoder.decode(line)
        body = msgspec.json.decode(record.body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return f"(unreadable line: {line[:80]!r})"
    if not isinstance(body, dict):
        body = {}
    if not filters.match(record, body):
        return None
    return line.decode() if as_json else describe(record, body)


def tail(directory: Path, out: TextIO, *, last: int, follow: bool, as_json: bool,
         filters: Filters, poll_seconds: float = 0.2) -> None:
    """Print the last ``last`` matching records; with ``follow``, keep printing new ones."""
    shown: deque[str] = deque(maxlen=last if last > 0 else None)
    position: dict[Path, int] = {}
    for path in list_segments(directory):
        position[path] = 0
        for line, end in _lines(path, 0):
            position[path] = end
            text = _render(line, filters, as_json)
            if text is not None:
                shown.append(text)
    for text in shown:
        out.write(f"{text}\n")
    out.flush()
    while follow:
        time.sleep(poll_seconds)
        for text in _new(directory, position, filters, as_json):
            out.write(f"{text}\n")
        out.flush()


def _new(directory: Path, position: dict[Path, int], filters: Filters,
         as_json: bool) -> Iterator[str]:
    for path in list_segments(directory):
        for line, end in _lines(path, position.setdefault(path, 0)):
            position[path] = end
            text = _render(line, filters, as_json)
            if text is not None:
                yield text
