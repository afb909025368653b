"""Per-venue pacing: an order-rate throttle and a cooldown after repeated failures.

Both count in clock time (the logical clock's unit in the paper plane, so both are
deterministic there), and both are rebuilt from the ledger on restart: the
throttle from the orders sent, the cooldown from the venue's failures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class OrderRate:
    """At most ``limit`` orders in any ``window`` of clock time."""

    __slots__ = ("limit", "note", "sent", "window")

    def __init__(self, limit: int, window: int) -> None:
        self.limit = limit
        self.window = window
        self.sent: deque[int] = deque(maxlen=limit)
        # An order was sent at ``now``: the deque's own append, so that counting an
        # accepted order (once per intent) costs no call of ours.
        self.note: Callable[[int], None] = self.sent.append

    def refusal(self, now: int) -> str | None:
        """Why one more order now would break the rate, or None."""
        sent = self.sent
        if len(sent) == self.limit and now - sent[0] < self.window:
            return (f"orders={self.limit} in the last {now - sent[0]} clock units; "
                    f"max={self.limit} per rate_window={self.window}")
        return None

    def take(self, now: int) -> str | None:
        """Count one more order at ``now`` if the rate allows it; else why not."""
        sent = self.sent
        if len(sent) == self.limit and now - sent[0] < self.window:
            return self.refusal(now)
        sent.append(now)
        return None

    def keep(self, old: OrderRate) -> None:
        """Count the orders ``old`` counted (a reload changes the limit, not the history)."""
        self.sent.extend(old.sent)


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
