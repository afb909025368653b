"""The duplicate-id index: ``add(id) -> bool`` with memory and cost flat in history.

:class:`IdIndex` answers what ``sentinel.core.SeenIds`` answers (has this intent id
been seen?) from three places, cheapest first:

1. ``recent``: the exact set of ids added since the last run that holds them, so a
   duplicate of a recent intent (a pipeline writing a file again) costs a set lookup;
2. a blocked Bloom filter over every id (:mod:`execd.ledger.index.filter`, 1.5 bytes
   an id): "surely new" for about 99% of new ids, which then cost one filter update
   and one set insertion;
3. the sorted runs on disk, largest first, each asked through its own filter (a
   word read) before its block is read (:class:`~execd.ledger.index.runs.Run`: a
   bisect of the fences in memory, one 512-byte ``pread``, a search in the block), so
   an older duplicate reads one block however many runs there are.

A "maybe" from the filter that neither ``recent`` nor any run confirms is a new id
(a false positive): the filter only ever decides "surely new", so it never refuses an
intent. With no runs (``IdIndex()``) this is a pure in-memory index, for unit tests
and replays.

The seam for the daemon (docs/ARCHITECTURE.md, "Durability and restart"): ids enter
``recent`` at decision time, before they are durable. At a checkpoint through seq X
the checkpointer writes a run of the ids its durable fold added up to X
(:meth:`~execd.ledger.index.store.IndexStore.write_run`) and sends the run and those
ids to the sentinel, whose :meth:`IdIndex.attach` forgets exactly those from
``recent`` (ids decided after X stay). A compaction's result is applied with
:meth:`IdIndex.replace`. Every method of one IdIndex is called from one thread (the
owner's); only runs are shared, each owner holding its own descriptor (``reopen``).
``recent`` is a set of ints (about 100 bytes an id), so it is bounded by the
checkpoint interval alone: with no runs written it grows with history.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Set

from execd.ledger.index.filter import BITS_PER_ID, M64, SPREAD, BlockedBloom, probe
from execd.ledger.index.runs import Run
from execd.ledger.index.store import Compaction

# The smallest filter worth making: 1.5 MB, so a short replay never grows one.
MIN_CAPACITY = 1 << 20


class IdIndex:
    """Intent ids that already have an outcome or order: a second one gets no order."""

    __slots__ = ("_asks", "_behind", "_filter", "_recent", "_runs", "bits_per_id",
                 "false_positives")

    def __init__(self, runs: Iterable[Run] = (), expected: int = 0,
                 bits_per_id: int = BITS_PER_ID, capacity: int | None = None,
                 bloom: BlockedBloom | None = None, bloom_through: int | None = None) -> None:
        """Take ownership of ``runs`` (oldest first) and build the filter over them,
        sized for ``capacity`` ids if given, else for ``expected`` ids or twice what
        the runs hold, whichever is more (at least :data:`MIN_CAPACITY`).
        Blocking: reads every run once (about a microsecond an id).

        ``bloom`` is a filter saved earlier (``IndexStore.load_filter``) that holds
        every id through ledger seq ``bloom_through`` (None: every id of ``runs``), and
        then nothing is read: the runs through a later seq are *behind* it, asked
        through their own filters as well until :meth:`fill` (or :meth:`grow`, or
        :meth:`adopt_filter`) puts their ids in (a start-up reading them was up to half
        a second for the 200,000 ids between two saves, app/id_runs.py). Bits are only
        ever set, so a filter older than the runs is a safe subset, never a wrong answer.
        """
        self._runs = list(runs)
        self._asks = self._by_size()
        self._recent: set[int] = set()
        self._behind: list[Run] = []
        self.bits_per_id = bits_per_id
        #: Filter "maybe"s that turned out new: the price of the filter, for metrics.
        self.false_positives = 0
        if bloom is not None:
            self._filter = bloom
            if bloom_through is not None:
                self._behind = [run for run in self._runs
                                if run.info.through_seq > bloom_through]
            return
        held = sum(map(len, self._runs))
        if capacity is None:
            capacity = max(MIN_CAPACITY, expected, 2 * held)
        self._filter = BlockedBloom(capacity, bits_per_id)
        for run in self._runs:
            self._filter.update(run.keys())

    def __len__(self) -> int:
        # Runs written from an IdIndex's recent ids are disjoint, so this is exact.
        return sum(map(len, self._runs)) + len(self._recent)

    @property
    def recent(self) -> Set[int]:
        """Ids added since the run that holds them (as 128-bit integers); read only."""
        return self._recent

    @property
    def runs(self) -> tuple[Run, ...]:
        """The runs looked up, oldest first."""
        return tuple(self._runs)

    @property
    def filter_bytes(self) -> int:
        """The filter's size in bytes."""
        return self._filter.nbytes

    @property
    def bloom(self) -> BlockedBloom:
        """The filter itself, to save beside the runs it covers (``to_bytes``)."""
        return self._filter

    def add(self, intent_id: uuid.UUID) -> bool:
        """Record ``intent_id``; False if it was already there."""
        key = intent_id.int
        recent = self._recent
        if key in recent:
            return False
        probed = self._filter.admit(key)
        if probed is not None:
            if self._in_runs(key, *probed):
                return False
            self.false_positives += 1
        elif self._behind and self._in_behind(key):
            return False
        recent.add(key)
        return True

    def __contains__(self, intent_id: uuid.UUID) -> bool:
        key = intent_id.int
        if key in self._recent:
            return True
        if self._filter.may_contain(key):
            return self._in_runs(key, *probe(key))
        return bool(self._behind) and self._in_behind(key)

    def _in_behind(self, key: int) -> bool:
        # "Surely new" from the filter says nothing of the runs it does not hold yet.
        x, m = probe(key)
        y = (x * SPREAD) & M64
        return any(run.filter.view[(y * run.filter.words) >> 64] & m == m and run.has(key)
                   for run in self._behind)

    @property
    def behind(self) -> bool:
        """Whether some runs' ids are not in the filter yet (see ``__init__``)."""
        return bool(self._behind)

    def fill(self) -> None:
        """Put the ids of the runs behind the filter in it. Blocking, about a
        microsecond an id: the checkpointer's thread (app/id_runs.py)."""
        for run in self._behind:
            self._filter.update(run.keys())
        self._behind = []

    def _in_runs(self, key: int, x: int, m: int) -> bool:
        # RunFilter.may_hold of each run, inline (one mix for all of them): a duplicate
        # asks every run's filter until one says "maybe" and holds it.
        y = (x * SPREAD) & M64
        for view, words, run in self._asks:
            if view[(y * words) >> 64] & m == m and run.has(key):
                return True
        return False

    def _by_size(self) -> list[tuple[memoryview, int, Run]]:
        # Largest first: an earlier id is in a run with odds in proportion to its size,
        # so a duplicate asks the fewest runs' filters before the one that holds it.
        return [(run.filter.view, run.filter.words, run)
                for run in sorted(self._runs, key=len, reverse=True)]

    def attach(self, run: Run, ids: Iterable[int]) -> None:
        """Look ``run`` up from now on, and forget its ``ids`` (its keys, as integers)
        from ``recent``. An id of the run this index never added enters the filter."""
        recent, bloom = self._recent, self._filter
        for key in ids:
            if key in recent:
                recent.remove(key)
            else:
                bloom.add(key)
        self._runs.append(run)
        self._asks = self._by_size()

    def replace(self, compaction: Compaction) -> None:
        """Swap the runs a compaction merged for its result (same ids, fewer runs)."""
        behind = {run.info.name for run in self._behind}
        self._runs = compaction.swapped(self._runs)
        self._asks = self._by_size()
        if behind:
            # A merge of a run behind the filter holds ids the filter lacks.
            if behind.intersection(compaction.removed):
                behind.add(compaction.added.info.name)
            self._behind = [run for run in self._runs if run.info.name in behind]

    @property
    def full(self) -> bool:
        """Whether the filter holds more ids than it was sized for (time to grow)."""
        return self._filter.count > self._filter.capacity

    def grow(self, capacity: int | None = None) -> None:
        """Rebuild the filter for ``capacity`` ids (default: twice the ids held) from
        the runs and ``recent``. Blocking, about a microsecond an id: call it off the
        hot path (at start-up, sizing ``expected``, avoids it)."""
        bigger = BlockedBloom(capacity or 2 * len(self), self.bits_per_id)
        for run in self._runs:
            bigger.update(run.keys())
        bigger.update(self._recent)
        self._filter = bigger
        self._behind = []

    def adopt_filter(self, bloom: BlockedBloom) -> None:
        """Use ``bloom`` (a filter over every id of this index's runs, built elsewhere:
        the checkpointer's grown one) from now on, with this index's recent ids added."""
        self.take_filter(bloom)
        self._behind = []

    def take_filter(self, bloom: BlockedBloom) -> None:
        """Use ``bloom`` (a filter over at least the ids of this index's runs that are not
        behind, built elsewhere: a copy of the sentinel's, app/id_runs.py) from now on,
        with this index's recent ids added; the runs behind stay behind."""
        bloom.update(self._recent)
        self._filter = bloom

    def close(self) -> None:
        """Close the runs' descriptors."""
        for run in self._runs:
            run.close()
        self._runs.clear()
        self._asks.clear()
        self._behind.clear()


def every_id_maybe() -> BlockedBloom:
    """A filter that answers "maybe" for every id: never wrong (each lookup goes on to
    the recent ids and the runs), for an index whose own filter comes later
    (:meth:`IdIndex.take_filter`)."""
    return BlockedBloom(1, data=b"\xff" * 8)
