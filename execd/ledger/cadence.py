"""Where checkpoints fall in the ledger: a pure function of the records chained (sans-I/O).

A checkpoint follows record X (README, "Checkpoints") when X's seq is a multiple of
``ledger.checkpoint_records``, and, with ``ledger.checkpoint_interval``, when X is the
first record whose time is that far past the newest time at the last checkpoint (or
at the daemon's start). Both rules read only seqs and the records' own times, never a
clock or the batch sizes, so a paper replay stays byte-identical (DESIGN §2); under
the wall clock the records' times are wall times, so the interval is one of real time
while records come (an idle daemon has nothing new to checkpoint).

The writer (``ledger/writer.py``) asks :meth:`Cadence.due` for each commit it chains.
"""

from __future__ import annotations

from collections.abc import Sequence

from execd.model.messages import Entry


class Cadence:
    """The checkpoint rules and what they remember between commits: the newest time."""

    def __init__(self, every: int, interval: int, time: int) -> None:
        # every: a checkpoint after each seq that is a multiple of it (0: by seq never);
        # interval: clock units between checkpoints by time (0: by time never).
        self.every = every
        self.interval = interval
        # The newest record time chained so far, and the newest at the last checkpoint.
        self.newest = self.since = time

    def due(self, first: int, ready: Sequence[Entry]) -> int:
        """The index in ``ready`` (chained from seq ``first`` on) of the record a checkpoint
        follows, or -1 for none; the records through that index (all of them for -1) are
        then taken as chained."""
        at = -1
        end = len(ready)
        every = self.every
        if every:
            index = -(-first // every) * every - first
            if index < end:
                at, end = index, index + 1
        interval = self.interval
        if interval:
            newest, since = self.newest, self.since
            for index in range(end):
                time = ready[index].time
                if time > newest:
                    newest = time
                    if newest - since >= interval:
                        at = index
                        break
            self.newest = newest
        if at >= 0:
            self.since = self.newest
        return at
