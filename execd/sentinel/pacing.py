"""Per-venue pacing: an order-rate throttle and a cooldown after repeated failures.

Both count in clock time (the logical clock's unit in the paper plane, so both are
deterministic there), and both are rebuilt from the ledger on restart: the
throttle from the orders sent, the cooldown from the venue's failures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

# Below this many orders counted, the rate is never pruned: its deque is small anyway
# (and bounded by max_orders), and it decides exactly as it always did.
PRUNE_FROM = 1024


class OrderRate:
    """At most ``limit`` orders in any ``window`` of clock time.

    ``sent`` holds the times of the last ``limit`` orders counted, in the order they were
    counted (a LATE outcome read back at start-up can add a time older than the newest),
    less the oldest ones that can no longer decide anything (:meth:`prune`): so with a
    large ``limit`` it holds about the orders of the last window, not all of history.
    ``note`` is the deque's own append, so that counting an accepted order (once per
    intent) costs no call of ours; the order-rate check, which reads the deque's length
    for every intent anyway, asks :meth:`refusal` once it reaches ``watch``, and that
    prunes (amortized: after a prune the next is due when the deque has doubled).
    """

    __slots__ = ("_prune_at", "limit", "note", "sent", "watch", "window")

    def __init__(self, limit: int, window: int) -> None:
        self.limit = limit
        self.window = window
        self.sent: deque[int] = deque(maxlen=limit)
        self.note: Callable[[int], None] = self.sent.append
        self._prune_at = PRUNE_FROM
        #: The deque's length from which :meth:`refusal` must be asked (checks.order_rate).
        self.watch = min(limit, PRUNE_FROM)

    def prune(self) -> None:
        """Forget the oldest times that can no longer decide anything.

        A time t counts only as ``sent[0]`` of a full deque, where it refuses an order at
        ``now`` when ``now - t < window``. Every later decision is at a time at least
        the newest time counted (the logical clock never goes back, and resumes from the
        ledger's largest time: docs/ARCHITECTURE.md, "Live sends, times and the drain"),
        so a time at or before ``max(sent) - window`` refuses nothing more. Dropped from
        the left only, what is kept is the newest part of what an unpruned deque would
        hold, and whenever the unpruned deque would be full but this one is not, the
        unpruned ``sent[0]`` is such a time: the same orders pass and the same are
        refused (tests/unit/sentinel/test_pacing.py). Only a backward step of the wall
        clock can ask about an earlier time; then an order that the unpruned deque would
        refuse, for an order more than a window before the newest, passes instead
        (never the other way round).

        What is left depends only on the orders counted, never on when pruning ran
        (each time dropped lies before the largest time of its prune, so it leaves the
        unpruned deque no later than that time does), and so a snapshot of it is the
        same whatever the fold's history (``ledger/snapshot.py``).
        """
        sent = self.sent
        if sent:
            horizon = max(sent) - self.window
            while sent[0] <= horizon:
                sent.popleft()
        self._prune_at = max(PRUNE_FROM, 2 * len(sent))
        self.watch = min(self.limit, self._prune_at)

    def refusal(self, now: int) -> str | None:
        """Why one more order now would break the rate, or None."""
        sent = self.sent
        if len(sent) >= self._prune_at:
            self.prune()
        if len(sent) == self.limit and now - sent[0] < self.window:
            return (f"orders={self.limit} in the last {now - sent[0]} clock units; "
                    f"max={self.limit} per rate_window={self.window}")
        return None

    def take(self, now: int) -> str | None:
        """Count one more order at ``now`` if the rate allows it; else why not."""
        why = self.refusal(now)
        if why is None:
            self.sent.append(now)
        return why

    def keep(self, old: OrderRate) -> None:
        """Count the orders ``old`` counted (a reload changes the limit, not the history).

        What ``old`` pruned is gone: with a wider ``window`` than ``old``'s, orders more
        than ``old.window`` before its newest no longer count.
        """
        self.sent.extend(old.sent)
        self.prune()

    def restore(self, sent: list[int]) -> None:
        """Count exactly ``sent`` (as :meth:`prune` leaves it): the state a snapshot holds."""
        self.sent.clear()
        self.sent.extend(sent)
        self.prune()


class FailureCooldown:
    """``limit`` failures within ``window`` make the venue refuse orders for ``cooldown``."""

    __slots__ = ("cooldown", "failures", "limit", "until", "window")

    def __init__(self, limit: int, window: int, cooldown: int) -> None:
        self.limit = limit
        self.window = window
        self.cooldown = cooldown
        self.failures: deque[int] = deque(maxlen=limit)
        self.until: int | None = None

    def refusal(self, now: int) -> str | None:
        """Why the venue is cooling down at ``now``, or None."""
        until = self.until
        if until is not None and now < until:
            return (f"cooling down until t={until} (now t={now}) after {self.limit} failures "
                    f"within failure_window={self.window}")
        return None

    def note_failure(self, now: int) -> None:
        """The venue failed an order at ``now``."""
        failures = self.failures
        failures.append(now)
        if len(failures) == self.limit and now - failures[0] <= self.window:
            self.until = now + self.cooldown
            failures.clear()

    def keep(self, old: FailureCooldown) -> None:
        """Count the failures ``old`` counted, and any cooldown it is in (a reload)."""
        self.failures.extend(old.failures)
        self.until = old.until
