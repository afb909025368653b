"""The Lakehouse reader actor: input files in, numbered items out.

Core (:class:`ReaderCore`, sans-I/O): splits bytes into lines, decodes each
strictly, stamps it with the ingest sequence number and the clock's time, and
turns every bad line into a quarantine outcome instead of an exception.

Shell (:class:`LakehouseReader`): takes files from an
:class:`~execd.reader.inbox.InputSource` (the inbox for ``execd run``, a list of files for
``execd replay``), reads them in chunks off the event loop and sends batches downstream.

What was consumed is known from the ledger alone: every record names its source
file, line and end offset, so a restart resumes exactly after the last durable one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import anyio
import msgspec
from anyio.abc import ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream

from execd.model import json_depth, reasons
from execd.model.clock import Clock, ClockRegression
from execd.model.input import InputDecoder
from execd.model.messages import (
    MAX_TIME,
    ClockTick,
    ContextIn,
    Entry,
    InputFileRecord,
    IntentIn,
    ReaderItem,
    Source,
    TickRecord,
    quarantine,
)
from execd.reader.context import ContextLoader, LakehouseContext
from execd.reader.inbox import (
    TRANSIENT,
    FileJob,
    InputSource,
    StatKey,
    describe_refused,
    digest_fd,
    open_regular,
    stat_key,
    why_unreadable,
)
from execd.service import logs
from execd.service.control import ControlRequest, answer, refuse_waiting
from execd.service.liveness import Pulse

_EXCERPT = 80
_BLANK = b" \t\r"  # JSON's whitespace, less the line feed that ends a line


def _excerpt(line: bytes) -> str:
    text = line[:_EXCERPT].decode("utf-8", errors="backslashreplace")
    return text + ("…" if len(line) > _EXCERPT else "")


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

    def start_file(self, name: str, offset: int = 0, line: int = 0, resumed: bool = False) -> None:
        """Begin ``name`` at byte ``offset``, whose preceding lines number ``line``.

        ``resumed``: the file already has records from before a restart (so reaching
        its end without a new record does not make it an empty file).
        """
        self._file = name
        self._line = line
        self._carry = b""
        self._carry_start = offset
        self._skipping = 0
        self._records = 1 if resumed else 0

    def _take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq = seq + 1
        return seq

    def _too_long(self, length: int, end: int) -> Entry:
        self._line += 1
        self._records += 1
        src = Source(self._file, self._line, end)
        return quarantine(
            self._take_seq(), self.clock.now(), src, reasons.INPUT_LINE_TOO_LONG,
            f"line is {length} bytes; input.max_line_bytes is {self.max_line_bytes}",
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
        if type(record) is ClockTick:
            return self._tick(record, src)
        # Only context is free JSON, so only an intent with one can nest deep and
        # still decode; it is judged by the same rule as a failed line.
        if record.context is not None and json_depth.exceeds(text):
            return self._too_deep(src)
        seq = self.next_seq  # _take_seq(), inline: once per intent
        self.next_seq = seq + 1
        return IntentIn(seq, self.clock.now(), src, record, text)

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
            item = self._one(self._carry, end)
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
        now = self.clock.now()
        items: list[ReaderItem] = []
        if not recorded:
            items.append(quarantine(self._take_seq(), now, Source(name, 0, size), reason, detail))
        items.append(Entry(self._take_seq(), "input_file", now,
                           InputFileRecord(name, size, sha256, lines, "reject")))
        return items


# --------------------------------------------------------------------------- shell


FinishHook = Callable[[str, int, str], None]
# Each input_file entry, before it is sent, with the file's stat key as the reader last
# saw it (None for a file refused unread): the inbox moves the file once it is durable.
FileEntryHook = Callable[[Entry, StatKey | None], None]
T = TypeVar("T")


class _Stopped(Exception):
    """The daemon began stopping while the reader waited on a blocking call."""


class LakehouseReader:
    """Reads files from a source and sends batches of items downstream."""

    def __init__(
        self,
        core: ReaderCore,
        source: InputSource,
        *,
        chunk_bytes: int,
        batch_items: int,
        stopping: anyio.Event,
        on_finished: FinishHook | None = None,
        probe: Callable[[list[ReaderItem]], None] | None = None,
        context: ContextLoader | None = None,
        on_file_entry: FileEntryHook | None = None,
        file_slots: anyio.Semaphore | None = None,
        pulse: Pulse | None = None,
    ) -> None:
        self.core = core
        # Waiting for a file is idle; opening, reading and sending one is work.
        self.pulse = pulse or Pulse("reader")
        self.on_file_entry = on_file_entry
        # Taken before each input_file record and given back once its file has moved:
        # the files finished but not yet moved are bounded.
        self.file_slots = file_slots
        self.context = context
        self._context: LakehouseContext | None = None
        # Held while items are made and sent, so an operator's tick is numbered and
        # sent between two chunks, never inside one.
        self._lock = anyio.Lock()
        self.probe = probe
        self.source = source
        self.chunk_bytes = chunk_bytes
        self.batch_items = batch_items
        self.stopping = stopping
        self.on_finished = on_finished

    async def _send(
        self, send: ObjectSendStream[list[ReaderItem]], items: list[ReaderItem]
    ) -> None:
        step = self.batch_items
        for start in range(0, len(items), step):
            batch = items[start : start + step]
            if self.probe is not None:
                self.probe(batch)
            await send.send(batch)

    async def _blocking(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a worker thread, given up on (``_Stopped``) once stopping.

        A read that never returns (a hung mount) must not keep a stop from stopping:
        the thread is left to finish on its own, and the ledger says where to resume.
        """
        done: list[T] = []
        failed: list[Exception] = []
        async with anyio.create_task_group() as tg:
            async def stop() -> None:
                await self.stopping.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(stop)
            try:
                done.append(await anyio.to_thread.run_sync(func, *args, abandon_on_cancel=True))
            except Exception as exc:  # raised here, not out of the group (no ExceptionGroup)
                failed.append(exc)
            tg.cancel_scope.cancel()
        if failed:
            raise failed[0]
        if not done:
            raise _Stopped
        return done[0]

    async def run(self, send: ObjectSendStream[list[ReaderItem]],
                  commands: MemoryObjectReceiveStream[ControlRequest] | None = None,
                  on_control: Callable[[ControlRequest], None] | None = None) -> None:
        """Read until the source is exhausted or stopping is set, then close ``send``.

        ``commands``: operator ticks (``execd ctl tick``), applied between chunks.
        """
        async with send, anyio.create_task_group() as tg:
            if commands is not None:
                tg.start_soon(self._commands, commands, send, on_control or (lambda r: None))
            pulse = self.pulse
            try:
                while not self.stopping.is_set():
                    pulse.rest()
                    job = await self.source.next_file()
                    pulse.busy()
                    if job is None:
                        break
                    if job.refuse:
                        await self._refuse(job, send)
                    else:
                        await self._read(job, send)
            except _Stopped:
                pass
            pulse.rest()
            tg.cancel_scope.cancel()

    async def _refuse(self, job: FileJob, send: ObjectSendStream[list[ReaderItem]]) -> None:
        """A file refused whole: its outcome (unless recorded) and its input_file record."""
        if job.missing:
            size, sha = job.offset, None
        else:
            size, sha = await self._blocking(describe_refused, job.path)
        await self._record_file(send, self.core.refuse_file(
            job.name, size, sha, job.refuse, recorded=job.refusal_recorded,
            reason=job.refuse_reason, lines=job.line), None)

    async def _record_file(self, send: ObjectSendStream[list[ReaderItem]],
                           items: list[ReaderItem], key: StatKey | None) -> None:
        """Send a file's last items; its input_file record (the last) is reported first."""
        if self.on_file_entry is not None:
            if self.file_slots is not None:
                await self.file_slots.acquire()
            last = items[-1]
            assert type(last) is Entry and last.kind == "input_file"
            self.on_file_entry(last, key)
        async with self._lock:
            await self._send(send, items)

    async def _commands(self, commands: MemoryObjectReceiveStream[ControlRequest],
                        send: ObjectSendStream[list[ReaderItem]],
                        on_control: Callable[[ControlRequest], None]) -> None:
        async with commands:
            try:
                async for request in commands:
                    await self._tick(request, send, on_control)
            finally:
                refuse_waiting(commands)

    async def _tick(self, request: ControlRequest, send: ObjectSendStream[list[ReaderItem]],
                    on_control: Callable[[ControlRequest], None]) -> None:
        req = request.request
        async with self._lock:
            out: list[ReaderItem] = []
            try:
                out = [self.core.operator_tick(req.time or 0, req.actor or "")]
                request.result = {"logical_time": req.time}
            except ClockRegression as exc:
                request.error = str(exc)
            await answer(request, out, send, on_control)

    async def _open(self, job: FileJob) -> tuple[int, hashlib._Hash, StatKey]:
        """Open the job's file; while the process is short of descriptors, wait and retry."""
        pause = 0.05
        while True:
            try:
                return await self._blocking(_open_at, job.path, job.offset)
            except OSError as exc:
                if exc.errno not in TRANSIENT:
                    raise
                logs.get("reader").warning("input.open_retry", file=job.name,
                                           error=exc.strerror or str(exc))
            with anyio.move_on_after(pause):
                await self.stopping.wait()
            if self.stopping.is_set():
                raise _Stopped
            pause = min(pause * 2, 2.0)

    async def _read(self, job: FileJob, send: ObjectSendStream[list[ReaderItem]]) -> None:
        after = f" after line {job.line}" if job.resumed else ""
        try:
            fd, digest, opened = await self._open(job)
        except FileNotFoundError:
            await self._record_file(send, self.core.refuse_file(
                job.name, job.offset, None, f"deleted from work/ after it was claimed; "
                f"not read{after}", reason=reasons.INPUT_FILE_CHANGED, lines=job.line), None)
            return
        except OSError as exc:
            await self._record_file(send, self.core.refuse_file(
                job.name, job.offset, None, f"{why_unreadable(exc)}; not read{after}",
                reason=reasons.INPUT_FILE_UNREADABLE, lines=job.line), None)
            return
        core = self.core
        if self.context is not None:
            context = await self._blocking(self.context.load)
            if context is not self._context:
                self._context = context
                async with self._lock:
                    await self._send(send, [core.context(context)])
        core.start_file(job.name, job.offset, job.line, job.resumed)
        size = job.offset
        problem: tuple[str, str] | None = None
        try:
            while True:
                if self.stopping.is_set():
                    # Stop between chunks; the ledger says where to resume.
                    return
                try:
                    data = await self._blocking(_read_chunk, fd, digest, self.chunk_bytes)
                    if not data:
                        final = stat_key(await self._blocking(os.fstat, fd))
                except OSError as exc:
                    problem = (reasons.INPUT_FILE_UNREADABLE,
                               f"read failed at byte {size}: {why_unreadable(exc)}; "
                               "nothing after it was read")
                    break
                self.pulse.busy()
                if not data:
                    if final[1] > size:
                        continue  # appended to while it was read: read on
                    break
                size += len(data)
                async with self._lock:
                    await self._send(send, core.feed(data))
            sha = digest.hexdigest()
            if problem is None and final != opened:
                problem = (reasons.INPUT_FILE_CHANGED,
                           await self._blocking(_what_changed, fd, opened, final, size, sha))
        except _Stopped:
            fd = -1  # the abandoned thread may still use it; it goes when the process does
            raise
        finally:
            if fd >= 0:
                os.close(fd)
        await self._record_file(send, core.finish_file(size, sha, problem=problem),
                                None if problem is not None else final)
        if self.on_finished is not None:
            self.on_finished(job.name, size, sha)


def _open_at(path: str, offset: int) -> tuple[int, hashlib._Hash, StatKey]:
    """Open the regular file ``path`` at ``offset``: its descriptor, a digest of the bytes
    before it, and its stat key as opened (what a producer's later write changes)."""
    fd = open_regular(path)
    try:
        key = stat_key(os.fstat(fd))
        digest = hashlib.sha256()
        done = 0
        while done < offset:
            chunk = os.read(fd, min(offset - done, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            done += len(chunk)
    except BaseException:
        os.close(fd)
        raise
    return fd, digest, key


def _read_chunk(fd: int, digest: hashlib._Hash, size: int) -> bytes:
    """Read and digest one chunk (in a worker thread: hashing releases the GIL)."""
    data = os.read(fd, size)
    digest.update(data)
    return data


def _what_changed(fd: int, opened: StatKey, final: StatKey, size: int, sha: str) -> str:
    """Why a file that changed while it was read differs (its detail). Blocking."""
    if final[0] != opened[0]:
        return "replaced while it was read"
    if final[1] < max(size, opened[1]):
        return (f"truncated while it was read: it held {opened[1]} bytes when opened, "
                f"{size} were read, it now holds {final[1]}; what was cut was never read")
    _, now = digest_fd(fd, final[1])
    if now == sha:
        return (f"appended to after it was claimed ({opened[1]} bytes then, {size} now); "
                "every line was read")
    return (f"rewritten while it was read: the {size} bytes read (sha256 {sha[:12]}…) are "
            f"not what it holds now (sha256 {now[:12]}…); lines were read as they were")
