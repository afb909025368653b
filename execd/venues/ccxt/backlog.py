"""The orders waiting for a live venue's workers, highest priority first. Sans-I/O.

The venue's work stream keeps what it always did, its bound (``backlog``: a full one
refuses the next order with ``VENUE_BACKLOG_FULL``) and its close (the workers end once
intake and start-up have both closed their ends); but what it carries is a ticket per
order. The orders themselves wait here, and a worker that takes a ticket takes the best
order waiting: the highest ``priority`` (an intent's 0-100; a child has its parent's),
then the first to come. An order reconciled at start-up (sent by an earlier run) goes
before all of them. So priority decides which order a free worker sends next, and only
that: it never reorders orders already in a worker's hands.
"""

from __future__ import annotations

import heapq
from typing import Final, Generic, TypeVar

#: Above every intent's priority: what an earlier run already sent comes first.
RECONCILED: Final = 101

Job = TypeVar("Job")


class Waiting(Generic[Job]):
    """Orders waiting for a worker: :meth:`take` gives the highest priority, then the
    oldest. Each :meth:`put` is followed by one ticket on the work stream, and each ticket
    taken by one :meth:`take`, so there is always an order for a ticket."""

    __slots__ = ("_count", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Job]] = []
        self._count = 0

    def put(self, job: Job, priority: int) -> None:
        """``job`` waits, at ``priority``."""
        # The count is unique: two entries never compare their jobs.
        heapq.heappush(self._heap, (-priority, self._count, job))
        self._count += 1

    def take(self) -> Job:
        """The order a free worker sends next."""
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return len(self._heap)
