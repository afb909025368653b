"""The duplicate-id index while the daemon runs: a run per checkpoint, compaction aside.

Two :class:`~execd.ledger.index.ids.IdIndex` objects look up the same runs in
``<ledger_dir>/index/``: the sentinel's (ids enter its recent set at decision time,
before they are durable) and the checkpointer's shadow fold's (ids enter when their
records are durable). Each is used from its owner's thread only (the event loop; the
checkpointer's worker thread), and each holds its own descriptors (ids.py's seam).

At a checkpoint through X (docs/ARCHITECTURE.md, "Checkpoints"), :meth:`IdRuns.write`
(worker thread, the shadow has folded exactly through X) writes the run of the ids the
shadow added since the last run, durable before the snapshot and so before the
``checkpoint`` record, and the shadow forgets them; :meth:`IdRuns.hand_over` (event
loop) attaches the same run to the sentinel's index, which forgets exactly those ids
(ids it decided after X stay recent). Every few hundred thousand ids the shadow's
filter is saved beside the runs, so start-up re-reads only the runs after it.

A filter sized at start-up fills as ids come: once the shadow's holds more ids than it
was sized for, the checkpoint that finds it so rebuilds it at twice the ids (in the
worker thread, about a microsecond an id), saves it, and hands a copy to the
sentinel's index with the run; otherwise false positives would rise with history and
every start-up would have to build an over-full saved filter again from the runs.

Compaction (size-tiered, ``IndexStore.merge_due`` then ``adopt``) runs in a worker
thread of its own task (:meth:`IdRuns.compact`), never on the loop: the sentinel's
index swaps runs with ``replace`` on the loop once the merge is live, and the
shadow's in its own thread before its next lookup.
"""

from __future__ import annotations

from typing import Any

import anyio

from execd.ledger.index.filter import BlockedBloom, pack
from execd.ledger.index.ids import IdIndex
from execd.ledger.index.runs import KEY, Run
from execd.ledger.index.store import Compaction, IndexStore

# Ids between two saves of the shadow's filter: saving rewrites nearly every page of
# it (ledger/index/store.py), so not at every checkpoint; start-up re-adds the ids of
# the runs after the saved one, about a microsecond an id.
SAVE_EVERY = 200_000


class IdRuns:
    """The index's runs for one run of the daemon: written, handed over, compacted."""

    def __init__(self, store: IndexStore, sentinel: IdIndex, shadow: IdIndex, *,
                 saved_filter: bool, log: Any) -> None:
        self.store = store
        self.sentinel = sentinel
        self.shadow = shadow
        self.log = log
        # Ids in runs the saved filter does not cover (all of them when none was saved).
        self._unsaved = 0 if saved_filter else SAVE_EVERY
        # Runs written and not yet handed over, oldest first (a checkpoint cut short
        # after its run was written hands its run over with the next one's), each with
        # the shadow's filter grown or filled at its write, for the sentinel (or None).
        self._handoffs: list[tuple[Run, list[int], BlockedBloom | None]] = []
        # Compactions made live that the shadow has not applied yet (its thread does).
        self._compactions: list[Compaction] = []
        # Runs a compaction applied to the sentinel's index removed: one of them may be
        # the run written but not yet handed over (see hand_over).
        self._gone: set[str] = set()
        self._written = anyio.Event()
        self._closed = False
        self._prepared = False

    def prepare(self) -> None:
        """Give the shadow its filter, once, before its first lookup (its own thread).

        A copy of the sentinel's, taken now rather than at start-up (where it was a
        tenth of a second and 30 MB at 10M ids, before the daemon was ready): it holds
        every id of the runs the saved filter holds, and more (the ids the sentinel has
        decided since, which the shadow then asks the runs about: a false positive costs
        a lookup). The copy is one ``memcpy`` under the GIL, so the sentinel's thread
        never sees it half made; an id whose bits it was setting meanwhile is not in any
        run yet, so the shadow may call it new: it is, to the index.
        """
        if self._prepared:
            return
        self._prepared = True
        self.shadow.take_filter(self.sentinel.bloom.copy())
        # The runs' fence tables too, which start-up left to fill as lookups go (the
        # sentinel's runs share them): a quarter of a second at 100M ids, here.
        for run in self.shadow.runs:
            run.fences.fill()

    def write(self, through: int, through_hash: str) -> None:
        """Make the shadow's recent ids (every id of records up to ``through``, whose
        hash is ``through_hash``) a run covering ``through``, durably. Blocking: the
        checkpointer's worker thread.

        OSError when it cannot be written; the snapshot must then not be written either.
        """
        self.prepare()
        self.apply_compactions()
        if through <= self.store.through_seq:
            # A restart folded records an earlier run already covers: nothing is new.
            return
        keys = sorted(self.shadow.recent)
        run = self.store.write_run((key.to_bytes(KEY) for key in keys), through,
                                   through_hash=through_hash)
        handoff = run.reopen()
        self.shadow.attach(run, keys)
        self._unsaved += len(keys)
        grown = None
        if self.shadow.full or self.shadow.behind:
            if self.shadow.full:
                self.shadow.grow()
                self.log.info("index.filter_grown", capacity=self.shadow.bloom.capacity,
                              ids=len(self.shadow))
            else:
                # Start-up left the runs after the saved filter out of it (each was asked
                # through its own filter meanwhile): they go in here, off the loop.
                self.shadow.fill()
            grown = self.shadow.bloom.copy()
            self._unsaved = SAVE_EVERY  # saved now: a start-up then need not rebuild it
        self._handoffs.append((handoff, keys, grown))
        if self._unsaved >= SAVE_EVERY:
            try:
                self.store.save_filter(pack(self.shadow.bloom, through))
                self._unsaved = 0
            except OSError as exc:
                # A filter is rebuilt from the runs when it is missing: never fatal.
                self.log.warning("index.filter_unsaved", through_seq=through,
                                 error=exc.strerror or str(exc))

    def hand_over(self) -> None:
        """Attach the runs :meth:`write` made to the sentinel's index. On the event loop.

        Called after every write, even one whose checkpoint then failed or ran out of
        time (``Checkpointer.take``), and it hands over every run not handed over yet:
        a run left behind would let the next one's filter replace the sentinel's
        without its ids (review 3, F1: repeats of a checkpoint's ids filled twice).
        """
        handoffs, self._handoffs = self._handoffs, []
        for run, keys, grown in handoffs:
            self.sentinel.attach(run, keys)
            if grown is not None:
                # Every id of the runs through this one; the ids decided since are added
                # to it, and the runs after this one are attached to it next.
                self.sentinel.adopt_filter(grown)
            if run.info.name in self._gone:
                # A compaction planned after the run was live and applied before this
                # hand-over already holds its ids: drop the run again (replace closes the
                # runs it names and keeps one other, reopened, where it was).
                other = next(r for r in self.sentinel.runs if r.info.name != run.info.name)
                self.sentinel.replace(Compaction(other.reopen(),
                                                 (other.info.name, run.info.name)))
        if handoffs:
            self._written.set()

    def apply_compactions(self) -> None:
        """Swap the shadow's merged runs (its own thread, between lookups)."""
        while self._compactions:
            self.shadow.replace(self._compactions.pop(0))

    async def compact(self) -> None:
        """Merge due runs in a worker thread after each run written, until closed."""
        while True:
            await self._written.wait()
            self._written = anyio.Event()
            if self._closed:
                return
            while True:
                try:
                    merged = await anyio.to_thread.run_sync(self.store.merge_due)
                    if merged is None:
                        break
                    done = await anyio.to_thread.run_sync(self.store.adopt, merged)
                except (OSError, ValueError) as exc:
                    # As the file tables' merges (app/file_runs.py): the index stays as it
                    # was (the merged run, never named, is an orphan the next open
                    # removes) and the next run written tries again. RunDamaged stops.
                    self.log.warning("index.uncompacted", index="ids",
                                     error=getattr(exc, "strerror", None) or str(exc))
                    break
                self._compactions.append(Compaction(done.added.reopen(), done.removed))
                self.sentinel.replace(done)
                self._gone.update(done.removed)
                self.log.info("index.compacted", runs=len(done.removed),
                              ids=len(done.added), through_seq=done.added.info.through_seq)

    def close(self) -> None:
        """No run will be written any more: :meth:`compact` ends after its merge, and the
        shadow's descriptors are closed (its fold has ended)."""
        self._closed = True
        self._written.set()
        self.shadow.close()
