"""What a replay did, counted from the ledger it wrote: outcomes by status and reason.

:func:`count` reads the ledger back after the run, line by line in bounded chunks
(the reader of ``execd ledger tail``, each line bounded too: a longer one counts as
unreadable), and keeps only counters: its memory does not
grow with the ledger. It counts what is on disk, not what the daemon meant to write,
so the table cannot disagree with ``execd ledger tail``. :func:`table` renders it for
people; :func:`fields` gives the same numbers as one log event for machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import msgspec
from msgspec import Struct

from execd.ledger.record import record_decoder
from execd.ledger.segments import list_segments, read_lines
from execd.model.reasons import STATUSES
from execd.model.times import duration

# A plain fill has no reason code: shown as this in the table.
NO_REASON: Final = "(no reason)"


class _Outcome(Struct):
    """The two fields of an outcome body that are counted; the rest is skipped unread."""

    status: str
    reason: str | None = None


class _InputFile(Struct):
    """The line count of an input_file body."""

    lines: int = 0


_outcome = msgspec.json.Decoder(_Outcome)
_input_file = msgspec.json.Decoder(_InputFile)


class Summary(Struct):
    """The ledger's counts: records, outcomes by (status, reason), input files and lines."""

    records: int = 0
    last_seq: int = 0
    outcomes: dict[tuple[str, str], int] = msgspec.field(default_factory=dict)
    """(status, reason or "") -> outcomes."""
    files: int = 0
    lines: int = 0
    unreadable: int = 0
    """Lines that are not a record (none, in a ledger a run just wrote)."""

    @property
    def total(self) -> int:
        """Every outcome."""
        return sum(self.outcomes.values())

    def by_status(self) -> dict[str, int]:
        """Status -> outcomes, in the order of :data:`execd.model.reasons.STATUSES`."""
        counts: dict[str, int] = {}
        for (status, _), n in self.outcomes.items():
            counts[status] = counts.get(status, 0) + n
        return {s: counts[s] for s in _ordered(counts)}


def _ordered(statuses: dict[str, Any]) -> list[str]:
    """Statuses in their documented order; any other after them, sorted."""
    known = [s for s in STATUSES if s in statuses]
    return known + sorted(s for s in statuses if s not in STATUSES)


def count(directory: Path) -> Summary:
    """Count the ledger in ``directory``, streaming its segments."""
    summary = Summary()
    outcomes = summary.outcomes
    for path in list_segments(directory):
        for line in read_lines(path):
            if line.too_long:
                summary.unreadable += 1
                continue
            try:
                record = record_decoder.decode(line.data)
                if record.kind == "outcome":
                    body = _outcome.decode(record.body)
                    key = (body.status, body.reason or "")
                    outcomes[key] = outcomes.get(key, 0) + 1
                elif record.kind == "input_file":
                    summary.files += 1
                    summary.lines += _input_file.decode(record.body).lines
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                summary.unreadable += 1
                continue
            summary.records += 1
            summary.last_seq = record.seq
    return summary


def _many(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def _rate(n: int, elapsed: float) -> str:
    return f"{n / elapsed:,.0f}" if elapsed > 0 else "-"


def table(summary: Summary, elapsed: float) -> str:
    """The summary for people: one row per status, its reasons under it, then the totals.

    ``elapsed``: seconds the replay took, for the time and the rates.
    """
    rows: list[tuple[str, int]] = []
    by_status = summary.by_status()
    for status, n in by_status.items():
        rows.append((status, n))
        reasons = sorted(((reason, k) for (s, reason), k in summary.outcomes.items()
                          if s == status), key=lambda rk: (-rk[1], rk[0]))
        if reasons != [("", n)]:  # a status whose outcomes all have no reason needs no rows
            rows += [(f"  {reason or NO_REASON}", k) for reason, k in reasons]
    rows.append(("total", summary.total))
    width = max([len(label) for label, _ in rows] + [len("outcomes")])
    digits = max([len(f"{n:,}") for _, n in rows] + [len("count")])
    lines = [f"{'outcomes':<{width}}  {'count':>{digits}}"]
    lines += [f"{label:<{width}}  {n:>{digits},}" for label, n in rows]
    lines.append(f"ledger: {_many(summary.records, 'record')}, last seq {summary.last_seq}")
    lines.append(f"input: {_many(summary.files, 'file')}, {_many(summary.lines, 'line')}")
    lines.append(f"time: {duration(elapsed)}, {_rate(summary.lines, elapsed)} lines/s, "
                 f"{_rate(summary.total, elapsed)} outcomes/s")
    if summary.unreadable:
        lines.append(f"unreadable ledger lines: {summary.unreadable} "
                     "(run `execd ledger verify`)")
    return "\n".join(lines)


def fields(summary: Summary, elapsed: float) -> dict[str, Any]:
    """The summary as the fields of one ``replay.summary`` log event."""
    reasons: dict[str, dict[str, int]] = {}
    for (status, reason), n in sorted(summary.outcomes.items()):
        reasons.setdefault(status, {})[reason] = n
    return {"outcomes": summary.total, "by_status": summary.by_status(),
            "by_reason": {s: reasons[s] for s in _ordered(reasons)},
            "records": summary.records, "last_seq": summary.last_seq,
            "files": summary.files, "lines": summary.lines,
            "elapsed_s": round(elapsed, 3), "unreadable": summary.unreadable}
