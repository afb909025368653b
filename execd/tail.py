"""Reading the ledger for people: ``execd ledger tail``.

One line per record, or the stored JSON line itself with ``--json`` (for jq).
Tail does not verify the chain; ``execd ledger verify`` does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import msgspec
from msgspec import Struct

from execd.ledger.record import Record, record_decoder
from execd.ledger.segments import list_segments


class Filters(Struct, frozen=True):
    """Which records to show; an empty field matches everything."""

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
        return not (self.intent and body.get("intent_id") != self.intent)


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


def _lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """Complete lines of ``path`` from ``offset`` on, and the offset after them."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), offset + end


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
        lines, position[path] = _lines(path, 0)
        for line in lines:
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
        lines, position[path] = _lines(path, position.get(path, 0))
        for line in lines:
            text = _render(line, filters, as_json)
            if text is not None:
                yield text
