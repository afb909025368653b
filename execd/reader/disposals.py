"""The inbox's third job: moving files out of work/ once their records are durable.

Once an input_file record is durable (its ``MoveFile`` action, see
``execd.app.durable``), :meth:`Disposals.record_durable` queues the file, and
:meth:`Disposals.run`, a task of its own, compares its stat key with the one the
reader saw at the end, and moves it, in a worker thread like the claims: to
``archive/``, or to ``rejected/`` with a LATE ``INPUT_FILE_CHANGED`` outcome, durable
before the move, when a producer touched it since (docs/ARCHITECTURE.md,
"Durability and restart"). Each queued file holds one of ``queues.files`` slots that
the reader took before recording it, so the queue is bounded.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ObjectSendStream
from msgspec import Struct

from execd.model import reasons
from execd.model.messages import LATE, Entry, InputFileRecord, Source, quarantine
from execd.model.once_durable import Wake
from execd.reader.lakehouse import Lakehouse, StatKey, move_into, stat_key


class Finished(Struct):
    """An input_file record made durable, and the file as the reader last saw it.

    ``problem``: already known to have changed (found at start-up); ``slot``: the
    reader took a slot for it (start-up's leftovers take none).
    """

    record: InputFileRecord
    time: int
    key: StatKey | None
    problem: str | None = None
    slot: bool = True


class Disposals:
    """Moves finished files out of work/, in the order their records became durable."""

    def __init__(self, lakehouse: Lakehouse, *, log: Any, finished_files: int,
                 wait_durable: bool) -> None:
        self.work = lakehouse.work
        self.archive = lakehouse.archive
        self.rejected_dir = lakehouse.rejected
        self.log = log
        # A ledger writer runs the records' actions (the daemon's): a changed file's
        # outcome is then durable before the file moves. Without one, nothing waits.
        self.wait_durable = wait_durable
        # Finished files whose input_file record is durable, waiting to be moved; each
        # holds a slot the reader took before recording it, so the queue is bounded.
        self._finished: collections.deque[Finished] = collections.deque()
        self._finished_ready = anyio.Event()
        self.slots = anyio.Semaphore(finished_files)
        self._slot_count = finished_files
        self._reading_done = False
        # What start-up found changed is recorded before the reader's first record, so
        # the ledger's order does not depend on which task runs first.
        self.changed_at_start = 0
        self.start_recorded = anyio.Event()

    def found_changed(self, record: InputFileRecord, time: int, problem: str) -> None:
        """Start-up found a finished file changed: record that, then move it (no slot)."""
        self._finished.append(Finished(record, time, None, problem, slot=False))
        self.changed_at_start += 1

    def move_logged(self, path: Path, target: Path, event: str) -> bool:
        """Move a file out of work/; a failure is logged and leaves it there (never fatal).

        The ledger already says what became of the file; a move that cannot be done
        (archive/ on another filesystem, or not a directory) must not stop the daemon,
        and the next start tries again.
        """
        try:
            move_into(path, target)
        except OSError as exc:
            self.log.error("input.move_failed", file=path.name, to=str(target),
                           error=exc.strerror or str(exc), note="left in work/")
            return False
        log = self.log.info if target == self.archive else self.log.warning
        log(event, file=path.name, to=target.name)
        return True

    def reading_done(self) -> None:
        """The reader records no more files: disposals end once the last is moved."""
        self._reading_done = True
        self._finished_ready.set()

    def record_durable(self, entry: Entry, key: StatKey | None) -> None:
        """An input_file record is durable: queue its file to be moved (no I/O here)."""
        assert type(entry.body) is InputFileRecord
        self._finished.append(Finished(entry.body, entry.time, key))
        self._finished_ready.set()

    def _check(self, finished: Finished) -> tuple[Path, str | None] | None:
        """Where a finished file goes, and what changed since it was read (None: nothing).

        None when the file is no longer in work/. Blocking (worker thread).
        """
        record = finished.record
        source = self.work / record.file
        try:
            now = stat_key(os.lstat(source))
        except FileNotFoundError:
            self.log.warning("input.already_moved", file=record.file)
            return None
        except OSError as exc:
            # As for a failed move: the ledger already says what became of the file; it
            # stays in work/ and the next start checks it again. Never fatal.
            self.log.error("input.move_failed", file=record.file, to=str(self.archive),
                           error=exc.strerror or str(exc), note="left in work/")
            return None
        problem = finished.problem
        if finished.key is not None and now != finished.key:
            problem = (f"written after it was read and recorded (size {record.size}): now "
                       f"size {now[1]}; nothing after the recorded size was read")
        if problem is not None or record.disposition == "reject":
            return self.rejected_dir, problem
        return self.archive, None

    async def _record_change(self, send: ObjectSendStream[list[Entry]], finished: Finished,
                             problem: str) -> None:
        """Send a finished file's INPUT_FILE_CHANGED outcome and wait until it is durable."""
        self.log.warning("input.changed", file=finished.record.file, problem=problem)
        entry = quarantine(LATE, finished.time,
                           Source(finished.record.file, 0, finished.record.size),
                           reasons.INPUT_FILE_CHANGED, problem)
        durable = anyio.Event()
        if self.wait_durable:
            entry.then = Wake(durable)
        else:
            durable.set()
        await send.send([entry])
        await durable.wait()

    async def run(self, send: ObjectSendStream[list[Entry]]) -> None:
        """Move finished files out of work/ as their records become durable.

        A file that changed after it was recorded gets an INPUT_FILE_CHANGED outcome,
        appended when found (LATE: the file's place in the ledger is long taken).
        Ends once the reader has stopped and every file it recorded has moved.
        """
        async with send:
            while True:
                while self._finished:
                    finished = self._finished.popleft()
                    checked = await anyio.to_thread.run_sync(self._check, finished)
                    if checked is not None:
                        target, problem = checked
                        if problem is not None:
                            # Recorded before the move: a crash between the two leaves the
                            # file in work/, and the next start moves it (it is marked changed).
                            await self._record_change(send, finished, problem)
                        await anyio.to_thread.run_sync(
                            self.move_logged, self.work / finished.record.file, target,
                            "input.done")
                    if finished.slot:
                        self.slots.release()
                self.start_recorded.set()  # the first drain took what start-up found
                if self._reading_done and self.slots.value == self._slot_count:
                    return
                self._finished_ready = anyio.Event()
                if self._finished or (self._reading_done
                                      and self.slots.value == self._slot_count):
                    continue
                await self._finished_ready.wait()
