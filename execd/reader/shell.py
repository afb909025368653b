"""The Lakehouse reader's shell: takes files, reads them off the event loop, sends batches.

:class:`LakehouseReader` takes files from an :class:`~execd.reader.inbox.InputSource`
(the inbox for ``execd run``, a list of files for ``execd replay``), opens, reads and
hashes them in chunks in worker threads, feeds the chunks to the core
(:class:`~execd.reader.core.ReaderCore`, which decides what every line becomes) and
sends its items downstream in batches. Its blocking calls are given up on once the
daemon stops (docs/ARCHITECTURE.md, "Durability and restart").
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from anyio.abc import ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream

from execd.model import reasons
from execd.model.errors import ClockRegression, ExecdError
from execd.model.messages import Entry, ReaderItem
from execd.reader.context import ContextLoader, LakehouseContext
from execd.reader.core import ReaderCore
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
from execd.reader.lakehouse import whole_file
from execd.service import logs
from execd.service.control import ControlRequest, answer, refuse_waiting
from execd.service.liveness import Pulse

FinishHook = Callable[[str, int, str], None]
# Each input_file entry, before it is sent, with the file's stat key as the reader last
# saw it (None for a file refused unread): the inbox moves the file once it is durable.
FileEntryHook = Callable[[Entry, StatKey | None], None]
T = TypeVar("T")


class _Stopped(ExecdError):
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
        context_every: float | None = None,
    ) -> None:
        self.core = core
        # Under the wall clock, the context is also read again every so often while no
        # file comes (a live POV follows the market's volume with no input at all);
        # under the logical clock only before each file, so a replay sees it the same.
        self.context_every = context_every
        self._loading = anyio.Lock()  # one load at a time: the loader's cache is not shared
        self._reading = False  # a file is being read: its own load came before it
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
            except Exception as exc:  # noqa: BLE001 - handed to the caller, not out of the group
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
            if self.context is not None and self.context_every is not None:
                tg.start_soon(self._context_every, send, self.context_every)
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

    def started_with(self, context: LakehouseContext) -> None:
        """``context`` was loaded (and is recorded by the sentinel) before the reader
        starts: it is sent again only once it changes."""
        self._context = context

    async def _load_context(self, send: ObjectSendStream[list[ReaderItem]]) -> None:
        """Load the context; when it changed, send it (the records after it are judged
        under it)."""
        assert self.context is not None
        async with self._loading:
            context = await self._blocking(self.context.load)
            if context is not self._context:
                self._context = context
                async with self._lock:
                    await self._send(send, [self.core.context(context)])

    async def _context_every(self, send: ObjectSendStream[list[ReaderItem]],
                             interval: float) -> None:
        while True:
            with anyio.move_on_after(interval):
                await self.stopping.wait()
            if self.stopping.is_set():
                return
            if self._reading:
                continue  # a file's context is the one loaded before it
            try:
                await self._load_context(send)
            except _Stopped:
                return

    async def _refuse(self, job: FileJob, send: ObjectSendStream[list[ReaderItem]]) -> None:
        """A file refused whole: its outcome (unless recorded) and its input_file record."""
        if job.missing:
            size, sha = job.offset, None
        else:
            size, sha = await self._blocking(describe_refused, job.path)
        await self._record_file(send, lambda: self.core.refuse_file(
            job.name, size, sha, job.refuse, recorded=job.refusal_recorded,
            reason=job.refuse_reason, lines=job.line), None)

    async def _record_file(self, send: ObjectSendStream[list[ReaderItem]],
                           make: Callable[[], list[ReaderItem]], key: StatKey | None) -> None:
        """Number and send a file's last items; its input_file record (the last) is
        reported first.

        ``make`` numbers them, so it runs under the lock, after the wait for a
        ``queues.files`` slot: items numbered before that wait could be overtaken by an
        operator's tick numbered after them, and the sentinel, which inserts its own
        records by the order it receives seqs in, would then leave a gap in the ledger's
        sequence that the writer waits on for ever.
        """
        if self.on_file_entry is not None and self.file_slots is not None:
            await self.file_slots.acquire()
        async with self._lock:
            items = make()
            if self.on_file_entry is not None:
                last = items[-1]
                assert type(last) is Entry
                assert last.kind == "input_file"
                self.on_file_entry(last, key)
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
            await self._record_file(send, lambda: self.core.refuse_file(
                job.name, job.offset, None, f"deleted from work/ after it was claimed; "
                f"not read{after}", reason=reasons.INPUT_FILE_CHANGED, lines=job.line), None)
            return
        except OSError as exc:
            why = why_unreadable(exc)
            await self._record_file(send, lambda: self.core.refuse_file(
                job.name, job.offset, None, f"{why}; not read{after}",
                reason=reasons.INPUT_FILE_UNREADABLE, lines=job.line), None)
            return
        core = self.core
        if self.context is not None:
            await self._load_context(send)
        core.start_file(job.name, job.offset, job.line, job.resumed, whole_file(job.name))
        self._reading = True
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
            self._reading = False
            if fd >= 0:
                os.close(fd)
        await self._record_file(send, lambda: core.finish_file(size, sha, problem=problem),
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
