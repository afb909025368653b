"""The Ledger writer actor: orders records, chains them, commits them in groups.

Core (:class:`Reorder`): records arrive from several actors in whatever order
scheduling produces; they are released strictly in the reader's ingest order, so
the ledger never depends on scheduling.

Shell (:class:`LedgerWriter`): two tasks. The encoder drains every batch that is
ready, chains the records and hands one commit to the syncer; the syncer writes
and fsyncs it in a worker thread, then reports it durable. While one commit is
being synced the next is being built (``queues.commits`` bounds how many wait).

What waits on a record travels with it: an entry's ``then``
(:mod:`execd.model.once_durable`) is part of this writer's contract. After a
commit's fsync, and only then, ``on_durable`` gets the commit, and
:meth:`Commit.once_durable` lists each record's action with the record's ledger seq,
in commit order, for the hook to carry out. Nothing is registered beside the
stream, so a record's seq may still move (the sentinel numbers records of its own
before it) without anything losing track of it.

Checkpoints (README, "Checkpoints") sit at fixed places, so that a paper replay stays
byte-identical whatever the batch sizes (DESIGN §2): once the encoder has chained a
record X that a checkpoint follows (``ledger/cadence.py``: X's seq is a multiple of
``every``, or X's time is ``interval`` past the last checkpoint's), it commits the
records through X, takes nothing more from its stream until the checkpointer has
written the snapshot of the ledger through X (which waits for X to be durable), and
then chains the
``checkpoint`` record naming it as X + 1. The checkpointer answers within a bound
(``ledger.checkpoint_timeout_ms``), and at once in a drain; a snapshot it could not
write still gets its record at X + 1, one that names no snapshot and says why, so
storage never moves a later seq.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import anyio
from anyio.abc import ObjectReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from msgspec import Struct

from execd.ledger.cadence import Cadence
from execd.ledger.head import Head, HeadWitness
from execd.ledger.record import LedgerChain
from execd.ledger.segments import SegmentStore
from execd.model.messages import LATE, Entry, encode
from execd.model.once_durable import OnceDurable
from execd.service.liveness import Pulse, beating


class Reorder:
    """Releases entries in ingest-sequence order, holding any that arrive early."""

    def __init__(self, next_seq: int = 0) -> None:
        self.next_seq = next_seq
        self._early: dict[int, Entry] = {}

    @property
    def waiting(self) -> int:
        """Entries held back until an earlier one arrives."""
        return len(self._early)

    def push(self, batch: list[Entry]) -> list[Entry]:
        """Accept a batch (ascending seqs) and return every entry now releasable.

        A batch of LATE entries (never mixed with others) is released at once.
        """
        if not batch:
            return []
        first = batch[0].seq
        if first == LATE:
            # Outcomes of live orders: their order record already holds the place.
            return batch
        if not self._early and first == self.next_seq and batch[-1].seq == first + len(batch) - 1:
            # The common case: a contiguous batch that is next in line.
            self.next_seq = first + len(batch)
            return batch
        for entry in batch:
            self._early[entry.seq] = entry
        ready = []
        early = self._early
        seq = self.next_seq
        while seq in early:
            ready.append(early.pop(seq))
            seq += 1
        self.next_seq = seq
        return ready


class Commit(Struct):
    """One group commit: the bytes to append and the entries they hold."""

    data: bytes
    entries: list[Entry]
    last_seq: int
    last_hash: str

    def once_durable(self) -> list[tuple[int, Entry, OnceDurable]]:
        """What this commit's records asked for once durable, in commit order.

        Each is (the record's ledger seq, the record, its ``then``); records without
        one are left out. Call only once the commit is durable.
        """
        entries = self.entries
        # Most commits carry no action (paper fills): a plain scan finds that fastest.
        for entry in entries:
            if entry.then is not None:
                break
        else:
            return []
        first = self.last_seq - len(entries) + 1
        return [(first + index, entry, entry.then)
                for index, entry in enumerate(entries) if entry.then is not None]


class Checkpoints(Protocol):
    """What the writer needs of the checkpointer (``app/checkpointer.py``)."""

    # A checkpoint after each seq that is a multiple of ``every`` (at least 1), and with
    # ``interval`` (clock units; 0: none) after the first record that far past the last.
    every: int
    interval: int

    def durable(self, commit: Commit) -> None:
        """``commit`` is on disk (called before ``on_durable``, in commit order)."""

    async def take(self, through: int, head_hash: str) -> Struct:
        """Once record ``through`` (of hash ``head_hash``) is durable, write the snapshot
        through it; the body of the ``checkpoint`` record naming it. Bounded in time: a
        snapshot not written (too slow, a storage error, a drain) still gets its record,
        which says so, so that no later seq depends on storage."""

    def close(self) -> None:
        """Every commit is durable: no more will come."""

    async def run(self) -> None:
        """The checkpointer's own task, for as long as the writer runs (until ``close``)."""


# Called after each commit's fsync, in commit order (see the module docstring).
DurableHook = Callable[[Commit], None]
# Records in a commit and the seconds its write and fsync took (for metrics only:
# the time never reaches the ledger).
SyncHook = Callable[[int, float], None]


class LedgerWriter:
    """The single owner of the ledger's chain and segment files while the daemon runs."""

    def __init__(
        self,
        chain: LedgerChain,
        store: SegmentStore,
        *,
        first_ingest_seq: int = 0,
        commit_records: int,
        commits_in_flight: int,
        on_durable: DurableHook | None = None,
        on_synced: SyncHook | None = None,
        pulses: tuple[Pulse, Pulse] | None = None,
        witness: HeadWitness | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.chain = chain
        self.store = store
        self.reorder = Reorder(first_ingest_seq)
        self.commit_records = commit_records
        self.commits_in_flight = commits_in_flight
        self.on_durable = on_durable
        self.on_synced = on_synced
        # (encoder, syncer): the syncer's is busy for as long as an fsync takes.
        self.pulses = pulses
        # Refreshed after a commit is durable, in the same worker-thread call.
        self.witness = witness
        self.checkpoints = checkpoints
        self.committed = 0
        self._cadence: Cadence | None = None

    def write_now(self, kind: str, time: int, body: Struct) -> bytes:
        """Append and sync one record outside the pipeline (start and stop records),
        note the new head in the witness, and return the record's line."""
        line = self.chain.append(kind, time, encode(body))
        self.store.write_durably(line)
        if self.witness is not None:
            self.witness.now(Head(self.chain.next_seq - 1, self.chain.prev_hash))
        return line

    def _write(self, commit: Commit) -> float:
        """Write and fsync one commit, then refresh the witness; the write's seconds.

        Blocking (the syncer's worker thread).
        """
        started = time.perf_counter()
        self.store.write_durably(commit.data)
        seconds = time.perf_counter() - started
        if self.witness is not None:
            self.witness.after_commit(Head(commit.last_seq, commit.last_hash))
        return seconds

    def _lines(self, entries: list[Entry]) -> bytes:
        append = self.chain.append
        return b"".join([append(e.kind, e.time, encode(e.body)) for e in entries])

    async def run(self, receive: MemoryObjectReceiveStream[list[Entry]]) -> None:
        """Consume entry batches until every sender has closed, committing as it goes."""
        send_commit, receive_commit = anyio.create_memory_object_stream[Commit](
            self.commits_in_flight
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._sync, receive_commit)
            if self.checkpoints is not None:
                # From the last record written before (the run's start record).
                self._cadence = Cadence(self.checkpoints.every, self.checkpoints.interval,
                                        self.chain.last_time)
                tg.start_soon(self.checkpoints.run)
            async with send_commit, receive:
                async for batch in beating(receive, self.pulses and self.pulses[0]):
                    ready = self.reorder.push(batch)
                    while len(ready) < self.commit_records:
                        try:
                            more = receive.receive_nowait()
                        except (anyio.WouldBlock, anyio.EndOfStream):
                            break
                        ready.extend(self.reorder.push(more))
                    lead: Entry | None = None
                    while ready or lead is not None:
                        ready, lead = await self._commit(ready, lead, send_commit)
            if self.reorder.waiting:
                raise RuntimeError(
                    f"ledger writer stopped with {self.reorder.waiting} records waiting "
                    f"for ingest seq {self.reorder.next_seq}"
                )

    async def _commit(self, ready: list[Entry], lead: Entry | None,
                      send: MemoryObjectSendStream[Commit]) -> tuple[list[Entry], Entry | None]:
        """Chain ``lead`` (a checkpoint record) and ``ready`` into one commit, or only as far
        as the next record a checkpoint follows; the entries left, and that checkpoint's
        record when one was taken."""
        checkpoints, cadence = self.checkpoints, self._cadence
        rest: list[Entry] = []
        due = 0
        if cadence is not None:
            # A checkpoint record is never the record a checkpoint follows.
            first = self.chain.next_seq + (lead is not None)
            at = cadence.due(first, ready)
            if at >= 0:
                ready, rest = ready[:at + 1], ready[at + 1:]
                due = first + at
        entries = ready if lead is None else [lead, *ready]
        data = self._lines(entries)
        await send.send(Commit(data, entries, self.chain.next_seq - 1, self.chain.prev_hash))
        if not due:
            return rest, None
        assert checkpoints is not None
        body = await checkpoints.take(due, self.chain.prev_hash)
        return rest, Entry(LATE, "checkpoint", self.chain.last_time, body)

    @staticmethod
    async def _refresh_witness(witness: HeadWitness) -> None:
        """Bring head.json up to the newest durable commit when commits stop coming."""
        while True:
            await anyio.sleep(max(witness.every_s, 0.05))
            if witness.behind:
                await anyio.to_thread.run_sync(witness.refresh)

    async def _sync(self, receive: ObjectReceiveStream[Commit]) -> None:
        on_synced = self.on_synced
        async with receive, anyio.create_task_group() as tg:
            if self.witness is not None:
                tg.start_soon(self._refresh_witness, self.witness)
            await self._sync_commits(receive, on_synced)
            if self.checkpoints is not None:
                self.checkpoints.close()
            tg.cancel_scope.cancel()  # the refresher: every commit is durable now

    async def _sync_commits(self, receive: ObjectReceiveStream[Commit],
                            on_synced: SyncHook | None) -> None:
        async with receive:
            async for commit in beating(receive, self.pulses and self.pulses[1]):
                seconds = await anyio.to_thread.run_sync(self._write, commit)
                if on_synced is not None:
                    on_synced(len(commit.entries), seconds)
                self.committed += len(commit.entries)
                if self.checkpoints is not None:
                    self.checkpoints.durable(commit)
                if self.on_durable is not None:
                    self.on_durable(commit)
