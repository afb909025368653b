"""The checkpointer: a shadow of the start-up fold, kept up to date while the daemon runs.

It folds every durable commit into a :class:`~execd.ledger.fold.Fold` of its own, in
a worker thread, as commits come: from the Structs the commit's bodies were encoded
from (``Commit.entries``) rather than from the bytes written, which is what start-up
reads. That is ``Fold.observe_body``: the same fold, so the same snapshot, without two
JSON decodes a record (``tests/unit/app/test_checkpointer_bodies.py`` and
``tests/pipeline/test_fold_bodies.py`` hold the two equal). A record of a kind the fold
does not read is skipped from its kind alone. The start record, written outside the
pipeline, is folded from its line (:meth:`Checkpointer.observe_line`).

When the writer's encoder has chained a record X that a checkpoint follows, it stops
and asks :meth:`Checkpointer.take`: once the fold has reached X (so X is durable), the
snapshot of the ledger through X is written to ``checkpoints/`` and the body of the
``checkpoint`` record naming it is returned (docs/ARCHITECTURE.md, "Checkpoints").
The snapshot is a pure function of the ledger's prefix and of the config the fold
reads, never of timing.

With the on-disk id index (``app/id_runs.py``), the fold's ids are an ``IdIndex`` over
its runs, and before each snapshot through X the run of the ids folded since the last
one is written (durable before the snapshot, so before its record) and then handed
to the sentinel's index; snapshots hold no ids (``ledger/snapshot.py``).

The commits waiting to be folded are bounded without a queue of their own: the
encoder takes nothing while a checkpoint is due, so at most ``every`` records (and
the commits in flight) wait.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import anyio

from execd.app import file_runs
from execd.app.id_runs import IdRuns
from execd.app.position_runs import PositionRuns
from execd.config.schema import Config
from execd.ledger import checkpoints
from execd.ledger.file_index import OpenFiles
from execd.ledger.fold import READ, Fold
from execd.ledger.index.ids import IdIndex, every_id_maybe
from execd.ledger.record import record_decoder
from execd.ledger.recovery import RecoveredState
from execd.ledger.reindex import OpenIndex
from execd.ledger.snapshot import ChainEnd, Snapshot, encode_snapshot, restore, take
from execd.ledger.writer import Commit
from execd.model.messages import CheckpointRecord
from execd.sentinel.risk import Risk
from execd.service import logs


class Checkpointer:
    """The writer's :class:`~execd.ledger.writer.Checkpoints`: fold, then write snapshots."""

    def __init__(self, ledger: Path, fold: Fold, end: ChainEnd, *, key: str, every: int,
                 kept: int, log: Any, interval: int = 0, timeout_s: float = 30.0,
                 stopping: anyio.Event | None = None, good: set[str] | None = None,
                 ids: IdRuns | None = None) -> None:
        self.ledger = ledger
        self.fold = fold
        # The id index's runs (None: the fold's ids are in memory, as in unit tests).
        self.ids = ids
        # Beside the id index, the positions index tail --intent reads (caught up aside).
        self.positions = PositionRuns(ledger, log) if ids is not None else None
        self.every = every
        self.interval = interval
        self.kept = kept
        self.key = key
        self.log = log
        # How long the encoder may wait for one checkpoint, and the drain that skips it.
        self.timeout_s = timeout_s
        self.stopping = stopping
        # Snapshots a durable checkpoint record vouches for: only these count as kept.
        self.good: set[str] = set(good or ())
        # The snapshot just written and its record's seq: pruned for once that is durable.
        self._recorded: tuple[str, int] | None = None
        self._passed_over: set[str] = set()
        # The prefix folded so far (the fields of a ChainEnd, kept mutable here).
        self.seq, self.hash, self.records = end.through_seq, end.head_hash, end.records
        self.last_time, self.offset = end.last_time, end.resume
        self._pending: list[Commit] = []
        self._arrived = anyio.Event()
        self._folded = anyio.Event()
        self._closed = False

    def observe_line(self, line: bytes) -> None:
        """Fold one record written outside the pipeline (the start record). Blocking."""
        self._fold_lines(line, 1)

    def durable(self, commit: Commit) -> None:
        """``commit`` is on disk: fold it (soon, in the folding task)."""
        self._pending.append(commit)
        self._arrived.set()

    def close(self) -> None:
        """No commit will come any more: the folding task ends."""
        self._closed = True
        self._arrived.set()

    async def run(self) -> None:
        """Fold durable commits as they come, in a worker thread, until closed; beside
        it, the id index's compactions."""
        ids = self.ids
        if ids is None:
            await self._fold_loop()
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(ids.compact)
            try:
                await self._fold_loop()
            finally:
                ids.close()
                if self.positions is not None:
                    self.positions.close()

    async def _fold_loop(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived = anyio.Event()
            if self._pending:
                batch, self._pending = self._pending, []
                await anyio.to_thread.run_sync(self._fold_commits, batch)
                self._folded.set()
            if self._closed and not self._pending:
                return

    async def take(self, through: int, head_hash: str) -> CheckpointRecord:
        """Write the snapshot through record ``through`` once it is folded; its record's body.

        ``head_hash`` is record ``through``'s hash, as the encoder chained it. Nothing
        after ``through`` can arrive meanwhile: the encoder waits for this, but
        never longer than ``timeout_s``, and not at all in a drain. A checkpoint that is
        not written in time, or cannot be, still gets its record (its snapshot null, and
        why): the ledger's seqs never depend on storage (DESIGN §2).
        """
        if self.stopping is not None and self.stopping.is_set():
            # A normal stop: not an error for anyone alerting on errors.
            return self._skipped(through, head_hash, "the daemon is draining", level="info")
        with anyio.move_on_after(self.timeout_s):
            while self.seq < through:
                await self._folded.wait()
                self._folded = anyio.Event()
            if self.seq != through:
                raise RuntimeError(f"checkpoint through {through} asked after record {self.seq}")
            # Encoding is CPU alone (bounded): it finishes even when the bound is passed,
            # so no thread reads the fold while the next commits are folded into it.
            try:
                data = await anyio.to_thread.run_sync(self._encode)
            finally:
                if self.ids is not None:
                    # The run through X is durable, whatever becomes of the snapshot (a
                    # file index that cannot be written, the bound passed meanwhile):
                    # here, on the event loop where the sentinel asks its index, it takes
                    # the run's ids over from its recent ones (IdRuns.hand_over).
                    self.ids.hand_over()
            if isinstance(data, str):
                return self._skipped(through, head_hash, data)
            # Storage can block without end (a hung mount): past the bound, the thread is
            # left to finish, and its file, which no record names, is never used.
            record = await anyio.to_thread.run_sync(self._write, data, abandon_on_cancel=True)
            if record.snapshot is not None:
                self._recorded = (record.snapshot, through + 1)  # the record comes next
            return record
        return self._skipped(through, head_hash, f"not written within {self.timeout_s:g} s "
                                      "(ledger.checkpoint_timeout_ms)")

    def _skipped(self, through: int, head_hash: str, reason: str,
                 level: str = "error") -> CheckpointRecord:
        """The record of a checkpoint with no snapshot (logged: derived state only)."""
        getattr(self.log, level)(
            "checkpoint.skipped", through_seq=through, reason=reason,
            note="the ledger is whole; start-up folds from an older checkpoint")
        return CheckpointRecord(through, head_hash, None, None, None, skipped=reason)

    def _fold_commits(self, batch: list[Commit]) -> None:
        if self.ids is not None:
            self.ids.prepare()
            self.ids.apply_compactions()
        for commit in batch:
            self._fold_entries(commit)
            if self._recorded is not None and self.seq >= self._recorded[1]:
                self._prune()

    def _fold_entries(self, commit: Commit) -> None:
        """Fold ``commit`` from its entries' bodies, as its bytes would fold. Blocking."""
        entries = commit.entries
        if not entries:
            return
        observe, read = self.fold.observe_body, READ
        last_time = self.last_time
        # The commit's records are seqs last_seq - len + 1 .. last_seq, in entry order.
        for seq, entry in enumerate(entries, commit.last_seq - len(entries) + 1):
            time = entry.time
            if entry.kind in read:
                observe(entry.kind, seq, time, entry.body)
            if time > last_time:
                last_time = time
        self.seq, self.hash = commit.last_seq, commit.last_hash
        self.records += len(entries)
        self.last_time = last_time
        self.offset += len(commit.data)

    def _fold_lines(self, data: bytes, count: int) -> None:
        observe, decode = self.fold.observe, record_decoder.decode
        last_time = self.last_time
        start = 0
        record = None
        for _ in range(count):
            end = data.index(b"\n", start)
            record = decode(data[start:end])
            observe(record)
            if record.time > last_time:
                last_time = record.time
            start = end + 1
        if record is not None:
            self.seq, self.hash = record.seq, record.hash
        self.records += count
        self.last_time = last_time
        self.offset += len(data)

    def _encode(self) -> bytes | str:
        """The run of the fold's new ids, then the snapshot of the fold as it is now (a str:
        why no snapshot can be taken). Blocking (a worker thread)."""
        if self.ids is not None:
            try:
                self.ids.write(self.seq, self.hash)
            except OSError as exc:
                # The snapshot would hold no ids the index covers: none is written.
                why = f"id index: {exc.strerror or exc}"
                self.log.error("checkpoint.unwritten", through_seq=self.seq, error=why)
                return why
            assert self.positions is not None
            self.positions.due(self.seq, self.offset, self.hash)
        if self.fold.files is not None:
            try:
                file_runs.write(self.fold.files, self.seq, self.hash, self.log)
            except OSError as exc:
                # As for the ids: the snapshot would name tables that do not cover it.
                why = f"file index: {exc.strerror or exc}"
                self.log.error("checkpoint.unwritten", through_seq=self.seq, error=why)
                return why
        end = ChainEnd(self.seq, self.hash, self.records, self.last_time, self.offset)
        return encode_snapshot(take(self.fold, end, self.key))

    def _write(self, data: bytes) -> CheckpointRecord:
        """Write the snapshot; its record's body. Blocking (a worker thread)."""
        file_name = checkpoints.name(self.seq)
        try:
            checkpoints.write(self.ledger, file_name, data)
        except OSError as exc:
            # Derived state: the ledger is whole without it. Never a reason to stop trading.
            # The ledger names the file as the ledger's own, never by where it is mounted.
            where = Path(exc.filename or checkpoints.DIRECTORY)
            if where.is_relative_to(self.ledger):
                where = where.relative_to(self.ledger)
            self.log.error("checkpoint.unwritten", path=str(exc.filename or self.ledger),
                           error=exc.strerror or str(exc))
            return self._skipped(self.seq, self.hash, f"{where}: {exc.strerror or exc}")
        digest = hashlib.sha256(data).hexdigest()
        self.log.info("checkpoint.written", through_seq=self.seq, snapshot=file_name,
                      bytes=len(data))
        return CheckpointRecord(self.seq, self.hash, file_name, digest, len(data), self.seq)

    def _prune(self) -> None:
        """The newest snapshot's record is durable: it counts as kept, older ones may go.

        Only now: pruned before, a crash could leave no vouched snapshot. A failed prune
        is logged and changes nothing else. Blocking (the folding thread).
        """
        assert self._recorded is not None
        (newest, seq), self._recorded = self._recorded, None
        self.good.add(newest)
        try:
            removed, skipped = checkpoints.prune(self.ledger, self.kept, seq - 1, self.good)
        except OSError as exc:
            self.log.error("checkpoint.unpruned", path=str(exc.filename or self.ledger),
                           error=exc.strerror or str(exc))
            return
        self.good.difference_update(removed)
        for path in skipped:
            if path.name not in self._passed_over:  # once per run: it stays there
                self._passed_over.add(path.name)
                self.log.warning("checkpoint.not_a_file", path=str(path),
                                 note="not a regular file: left alone, never counted as kept")
        if removed:
            self.log.info("checkpoint.pruned", removed=removed)


def _restored(config: Config, unheld: Snapshot, index: OpenIndex | None,
              files: OpenFiles | None = None) -> Fold:
    seen = None
    if index is not None:
        # Its own IdIndex over the same runs (the same ones behind its filter), whose
        # filter is a copy of the sentinel's taken before its first fold (IdRuns.prepare:
        # 30 MB at 10M ids, off start-up); until then every id is a "maybe". The ids of
        # the records after the snapshot are added again.
        seen = IdIndex(index.store.open_runs(), bloom=every_id_maybe(),
                       bloom_through=index.bloom_through)
        for key in index.ids.recent:
            seen.add(uuid.UUID(int=key))
    shadow = Fold(Risk(config), seen, files.shadow() if files is not None else None)
    restore(unheld, shadow)
    return shadow


async def shadow_fold(config: Config, ledger: Path, state: RecoveredState, start: bytes,
                      stopping: anyio.Event | None = None) -> Checkpointer | None:
    """The run's checkpointer, from the recovered fold before its holds and the run's start
    record (``start``, its line); None with checkpoints off. ``stopping``: the drain."""
    unheld, state.unheld = state.unheld, None  # the shadow holds it from here on
    if unheld is None:
        return None
    log = logs.get("ledger")
    index, ids = state.index, None
    # In a worker thread: a copy of every position, and the index's runs opened again,
    # must not hold up the loop.
    shadow = await anyio.to_thread.run_sync(_restored, config, unheld, index, state.file_index)
    if index is not None:
        assert isinstance(shadow.seen, IdIndex)
        ids = IdRuns(index.store, index.ids, shadow.seen, saved_filter=index.saved_filter,
                     log=log)
    checkpointer = Checkpointer(
        ledger, shadow, unheld.end, key=unheld.fold_key,
        every=config.ledger.checkpoint_records, kept=config.ledger.checkpoints_kept,
        log=log, interval=config.ledger.checkpoint_interval or 0,
        timeout_s=config.ledger.checkpoint_timeout_ms / 1000,
        stopping=stopping, good={state.checkpoint} if state.checkpoint else set(), ids=ids)
    checkpointer.observe_line(start)
    return checkpointer
