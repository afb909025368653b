"""The Lakehouse reader's core (sans-I/O): the bytes of input files in, numbered items out.

:class:`ReaderCore` splits bytes into lines, decodes each strictly, stamps it with the
ingest sequence number and the clock's time, and turns every bad line into a
quarantine outcome instead of an exception. It does no I/O and never waits: the shell
(:mod:`execd.reader.shell`) reads the files and feeds it, and tests drive it directly.

What was consumed is known from the ledger alone: every record names its source
file, line and end offset, so a restart resumes exactly after the last durable one.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from execd.model import json_depth, reasons
from execd.model.clock import Clock
from execd.model.errors import ClockRegression
from execd.model.input import InputDecoder, WireDriftTarget, WireTarget
from execd.model.messages import (
    MAX_TIME,
    ClockTick,
    ContextIn,
    DriftTarget,
    Entry,
    InputFileRecord,
    IntentIn,
    OrderIntent,
    ReaderItem,
    Source,
    Target,
    TargetIn,
    TickRecord,
    quarantine,
)
from execd.reader.context import LakehouseContext

_TARGETS = frozenset((Target, DriftTarget, WireTarget, WireDriftTarget))
_TARGET_KINDS = frozenset(("target", "drift_target"))
_EXCERPT = 80
_BLANK = b" \t\r"  # JSON's whitespace, less the line feed that ends a line


def _excerpt(line: bytes) -> str:
    text = line[:_EXCERPT].decode("utf-8", errors="backslashreplace")
    return text + ("…" if len(line) > _EXCERPT else "")


class _Kind(msgspec.Struct):
    """A target file's ``kind``, read before the file is (every other field skipped)."""

    kind: object = None


_kind_of = msgspec.json.Decoder(_Kind).decode


class ReaderCore:
    """Turns the bytes of one file at a time into reader items."""

    def __init__(self, clock: Clock, next_seq: int, max_line_bytes: int) -> None:
        self.clock = clock
        self.next_seq = next_seq
        self.max_line_bytes = max_line_bytes
        self._decode = InputDecoder().decode
        self._file = ""
        self._line = 0
        self._carry = b""
        self._carry_start = 0
        self._skipping = 0
        self._records = 0
        self._whole = False  # the open file is one record (a target file), not lines
        # What this run has read, for a progress display (:attr:`consumed`): counted
        # once per file, so the per-line path pays nothing for it.
        self._files_done = 0
        self._lines_done = 0
        self._bytes_done = 0
        self._began: tuple[int, int] | None = None  # (line, offset) the open file began at

    @property
    def consumed(self) -> tuple[int, int, int]:
        """Files finished, lines and bytes read by this core so far (resumed parts not
        included): what ``execd replay`` shows while it runs. Exact as of the last chunk."""
        files, lines, size = self._files_done, self._lines_done, self._bytes_done
        if self._began is not None:
            lines += self._line - self._began[0]
            size += self._carry_start + len(self._carry) - self._began[1]
        return files, lines, size

    def _file_done(self, size: int) -> None:
        """The open file ends at byte ``size`` (its input_file record is being made)."""
        if self._began is not None:
            self._lines_done += self._line - self._began[0]
            self._bytes_done += max(size - self._began[1], 0)
        self._files_done += 1
        self._began = None

    def start_file(self, name: str, offset: int = 0, line: int = 0, resumed: bool = False,
                   whole: bool = False) -> None:
        """Begin ``name`` at byte ``offset``, whose preceding lines number ``line``.

        ``resumed``: the file already has records from before a restart (so reaching
        its end without a new record does not make it an empty file). ``whole``: the
        file is one JSON object over any number of lines (a target file), read at its end.
        """
        self._whole = whole
        self._file = name
        self._line = line
        self._carry = b""
        self._carry_start = offset
        self._skipping = 0
        self._records = 1 if resumed else 0
        self._began = (line, offset)

    def _take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq = seq + 1
        return seq

    def _too_long(self, length: int, end: int) -> Entry:
        self._line += 1
        self._records += 1
        src = Source(self._file, self._line, end)
        what = "the target file" if self._whole else "line"
        return quarantine(
            self._take_seq(), self.clock.now(), src, reasons.INPUT_LINE_TOO_LONG,
            f"{what} is {length} bytes; input.max_line_bytes is {self.max_line_bytes}",
        )

    def _one(self, line: bytes, end: int) -> ReaderItem | None:
        self._line += 1
        # Most lines are exactly one JSON object; only others need stripping. A line
        # of only JSON whitespace (space, tab, CR) is not a record and gets no outcome
        # (its number still counts); other bytes, form feeds included, are read as JSON.
        text = line if line[:1] == b"{" and line[-1:] == b"}" else line.strip(_BLANK)
        if not text:
            return None
        self._records += 1
        src = Source(self._file, self._line, end)
        try:
            record = self._decode(text)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            return self._unreadable(text, src, exc)
        kind = type(record)
        if kind is ClockTick:
            return self._tick(record, src)  # type: ignore[arg-type]
        if kind in _TARGETS:
            # A target portfolio (README, "Targets"): the sentinel makes its orders.
            return TargetIn(self._take_seq(), self.clock.now(), src, record, text)  # type: ignore[arg-type]
        intent: OrderIntent = record  # type: ignore[assignment]
        # Only context is free JSON, so only an intent with one can nest deep and
        # still decode; it is judged by the same rule as a failed line.
        if intent.context is not None and json_depth.exceeds(text):
            return self._too_deep(src)
        seq = self.next_seq  # _take_seq(), inline: once per intent
        self.next_seq = seq + 1
        return IntentIn(seq, self.clock.now(), src, intent, text)

    def _target_file(self, data: bytes, end: int) -> ReaderItem | None:
        """A whole target file: one target (``kind`` defaults to ``target``), or a drift
        target; anything else in it is refused, never executed."""
        text = original = data.strip(_BLANK)
        kind: object = None
        try:
            kind = _kind_of(text).kind
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            pass  # _one says what is wrong with it
        else:
            if kind is None:
                rest = text[1:].lstrip(_BLANK)
                text = b'{"kind":"target"' + (b"" if rest[:1] == b"}" else b",") + text[1:]
            elif not isinstance(kind, str) or kind not in _TARGET_KINDS:
                self._line += 1
                self._records += 1
                return quarantine(
                    self._take_seq(), self.clock.now(), Source(self._file, self._line, end),
                    reasons.INPUT_SCHEMA_VIOLATION,
                    f"a target file holds one target (kind target or drift_target), not {kind!r}")
        item = self._one(text, end)
        if type(item) is TargetIn:
            # The object as its producer wrote (and signed) it, without the kind added.
            item = msgspec.structs.replace(item, raw=original)
        return item

    def _unreadable(self, text: bytes, src: Source, exc: Exception) -> Entry:
        """The quarantine of a line that did not decode, with the reason that explains it.

        Nesting is judged first and from the bytes alone: how deep a decoder gets
        before it fails (or runs out of stack) depends on where it is called from,
        so the first fault it reports must not decide the reason.
        """
        if isinstance(exc, RecursionError) or json_depth.exceeds(text):
            return self._too_deep(src)
        now = self.clock.now()
        if isinstance(exc, msgspec.ValidationError):
            return quarantine(self._take_seq(), now, src, reasons.INPUT_SCHEMA_VIOLATION,
                              str(exc))
        if isinstance(exc, UnicodeDecodeError):
            return quarantine(self._take_seq(), now, src, reasons.INPUT_INVALID_UTF8,
                              f"{exc.reason} at byte {exc.start}")
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as bad:
            return quarantine(self._take_seq(), now, src, reasons.INPUT_INVALID_UTF8,
                              f"{bad.reason} at byte {bad.start}")
        return quarantine(self._take_seq(), now, src, reasons.INPUT_MALFORMED_JSON,
                          f"{exc}; line begins {_excerpt(text)!r}")

    def _too_deep(self, src: Source) -> Entry:
        return quarantine(self._take_seq(), self.clock.now(), src, reasons.INPUT_TOO_DEEP,
                          f"arrays and objects nest more than {json_depth.MAX_JSON_DEPTH} "
                          "levels deep; the line is not read")

    def _tick(self, tick: ClockTick, src: Source) -> Entry:
        if not self.clock.logical:
            return quarantine(self._take_seq(), self.clock.now(), src,
                              reasons.INPUT_TICK_UNDER_WALL_CLOCK,
                              f"tick to {tick.time} ignored: clock.kind is wall")
        try:
            self.clock.advance(tick.time)
        except ClockRegression as exc:
            return quarantine(self._take_seq(), self.clock.now(), src,
                              reasons.INPUT_CLOCK_REGRESSION, str(exc))
        return Entry(self._take_seq(), "tick", tick.time, TickRecord(tick.time, src))

    def context(self, context: LakehouseContext) -> ContextIn:
        """The lakehouse context the next lines are judged under."""
        return ContextIn(self._take_seq(), self.clock.now(), context.record, context)

    def operator_tick(self, time: int, actor: str) -> Entry:
        """An operator moved the logical clock (``execd ctl tick``).

        Raises ClockRegression when the clock cannot move there; nothing is recorded then.
        """
        if not self.clock.logical:
            raise ClockRegression("clock.kind is wall: the clock cannot be moved by a tick")
        if not 0 <= time <= MAX_TIME:
            # The same range as a tick line's: the ledger's integer range.
            raise ClockRegression(f"time {time} is outside 0 .. {MAX_TIME}")
        self.clock.advance(time)
        return Entry(self._take_seq(), "tick", time, TickRecord(time, None, actor))

    def feed(self, data: bytes) -> list[ReaderItem]:
        """Consume the next bytes of the current file; return items for complete lines."""
        if self._whole:
            # JSON strings hold no line feed, so a space for each changes no value and
            # keeps every offset: the file is one line, read when it ends.
            data = data.replace(b"\n", b" ")
        buffer = self._carry + data if self._carry else data
        pos = self._carry_start
        parts = buffer.split(b"\n")
        tail = parts.pop()
        items: list[ReaderItem] = []
        limit = self.max_line_bytes
        one = self._one
        for part in parts:
            end = pos + len(part) + 1
            if self._skipping:
                items.append(self._too_long(self._skipping + len(part), end))
                self._skipping = 0
            elif len(part) > limit:
                items.append(self._too_long(len(part), end))
            else:
                item = one(part, end)
                if item is not None:
                    items.append(item)
            pos = end
        if self._skipping or len(tail) > limit:
            # Inside an over-long line: drop its bytes as they come, keep its length.
            self._skipping += len(tail)
            self._carry = b""
            self._carry_start = pos + len(tail)
        else:
            self._carry = tail
            self._carry_start = pos
        return items

    def finish_file(
        self, size: int, sha256: str | None,
        disposition: Literal["archive", "reject"] = "archive",
        problem: tuple[str, str] | None = None,
    ) -> list[ReaderItem]:
        """End the current file: its last line if unterminated, then the input_file record.

        ``problem``: (reason, detail) of a file that changed after it was claimed or
        could not be read to its end: its whole-file outcome comes before the record,
        and the file is rejected.
        """
        items: list[ReaderItem] = []
        end = self._carry_start + len(self._carry)
        if self._skipping:
            items.append(self._too_long(self._skipping, end))
        elif self._carry:
            item = (self._target_file if self._whole else self._one)(self._carry, end)
            if item is not None:
                items.append(item)
        self._carry = b""
        self._skipping = 0
        if not self._records and problem is None:
            src = Source(self._file, self._line, size)
            items.append(quarantine(self._take_seq(), self.clock.now(), src,
                                    reasons.INPUT_EMPTY_FILE, f"{size} bytes, no records"))
        if problem is not None:
            items.append(quarantine(self._take_seq(), self.clock.now(),
                                    Source(self._file, 0, size), *problem))
            disposition = "reject"
        body = InputFileRecord(self._file, size, sha256, self._line, disposition)
        items.append(Entry(self._take_seq(), "input_file", self.clock.now(), body))
        self._file_done(size)
        return items

    def refuse_file(self, name: str, size: int, sha256: str | None, detail: str,
                    *, recorded: bool = False, reason: str = reasons.INPUT_FILE_REPEATED,
                    lines: int = 0) -> list[ReaderItem]:
        """A whole file refused (unread, or no further): its outcome, then its input_file record.

        ``recorded``: the outcome is already in the ledger (the daemon stopped before
        the input_file record), so only the input_file record is still owed. ``lines``:
        how many lines of it were read before (a file that became unreadable).
        """
        self.start_file(name)
        self._began = None  # nothing of it is read now
        self._file_done(size)
        now = self.clock.now()
        items: list[ReaderItem] = []
        if not recorded:
            items.append(quarantine(self._take_seq(), now, Source(name, 0, size), reason, detail))
        items.append(Entry(self._take_seq(), "input_file", now,
                           InputFileRecord(name, size, sha256, lines, "reject")))
        return items
