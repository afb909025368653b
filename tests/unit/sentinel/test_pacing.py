"""The order rate forgets what can no longer refuse an order, and decides as if it had not."""

from __future__ import annotations

import random
from collections import deque

from hypothesis import example, given, settings
from hypothesis import strategies as st

from execd.sentinel.pacing import PRUNE_FROM, OrderRate


class Unpruned:
    """The rate as it was before pruning (the last ``limit`` times, all kept): the spec."""

    def __init__(self, limit: int, window: int) -> None:
        self.limit, self.window = limit, window
        self.sent: deque[int] = deque(maxlen=limit)

    def refusal(self, now: int) -> str | None:
        sent = self.sent
        if len(sent) == self.limit and now - sent[0] < self.window:
            return (f"orders={self.limit} in the last {now - sent[0]} clock units; "
                    f"max={self.limit} per rate_window={self.window}")
        return None

    def take(self, now: int) -> str | None:
        why = self.refusal(now)
        if why is None:
            self.sent.append(now)
        return why


# Each step: count an order at a time relative to the newest counted (negative: a LATE
# outcome read back at start-up), decide (or take) at the clock moved on by d >= 0 (the
# logical clock never goes back, and starts from the ledger's largest time), prune, go
# through a snapshot, or reload with another limit.
steps = st.lists(st.one_of(
    st.tuples(st.just("note"), st.integers(-12, 4)),
    st.tuples(st.sampled_from(["refusal", "take"]), st.integers(0, 4)),
    st.tuples(st.sampled_from(["prune", "snapshot"]), st.just(0)),
    st.tuples(st.just("reload"), st.integers(1, 8)),
), max_size=120)


@settings(max_examples=1000, deadline=None)
@given(st.integers(1, 6), st.integers(1, 8), steps)
# The edge: 10 - 8 < 3, so the order at 8 still refuses one at 10 (and only at 10).
@example(2, 3, [("note", 8), ("note", 2), ("prune", 0), ("refusal", 0)])
def test_pruning_never_changes_a_decision(limit: int, window: int,
                                          plan: list[tuple[str, int]]) -> None:
    rate, spec = OrderRate(limit, window), Unpruned(limit, window)
    newest = 0  # the largest time counted or decided at so far
    for step, value in plan:
        if step == "note":
            time = max(0, newest + value)  # clock times are never negative
            rate.note(time)
            spec.sent.append(time)
            newest = max(newest, time)
        elif step in ("refusal", "take"):
            newest += value
            assert getattr(rate, step)(newest) == getattr(spec, step)(newest)
        elif step == "prune":
            rate.prune()
        elif step == "snapshot":
            rate.prune()
            again = OrderRate(limit, window)
            again.restore(list(rate.sent))
            rate = again
        else:
            limit = value
            fresh, spec_fresh = OrderRate(limit, window), Unpruned(limit, window)
            fresh.keep(rate)
            spec_fresh.sent.extend(spec.sent)
            rate, spec = fresh, spec_fresh
        # What is kept is always the newest part of what the unpruned rate holds.
        assert list(rate.sent) == list(spec.sent)[len(spec.sent) - len(rate.sent):]
    # Pruned now, it is what pruning the unpruned deque once gives: whatever the history
    # of prunes, a snapshot holds the same times.
    rate.prune()
    once = OrderRate(limit, window)
    once.sent.extend(spec.sent)
    once.prune()
    assert list(rate.sent) == list(once.sent)


def test_a_huge_max_orders_holds_about_one_window_of_orders() -> None:
    """With max_orders = 1e9 (as the bench config), 100,000 orders, some of them LATE,
    leave a deque that follows the orders of the last window, not history; every
    decision on the way is the unpruned one's."""
    picks = random.Random(15)
    rate, spec = OrderRate(10**9, 50), Unpruned(10**9, 50)
    clock = 0
    for n in range(100_000):
        if n % 10 == 0:
            clock += 1
        late = picks.random() < 0.05
        time = clock - picks.randrange(80) if late else clock
        # As the sentinel counts an order: the check (which prunes), then the count.
        if len(rate.sent) >= rate.watch:
            assert rate.refusal(clock) == spec.refusal(clock)
        rate.note(time)
        spec.sent.append(time)
        assert len(rate.sent) <= 2 * 10 * (50 + 80) + PRUNE_FROM
    rate.prune()
    # Only times within the window of the newest, and the LATE ones behind the first of
    # them, stay once pruned.
    assert rate.sent[0] > clock - 50 and len(rate.sent) <= 10 * (50 + 80)
    assert len(spec.sent) == 100_000


def test_a_small_limit_is_bounded_by_itself_and_never_pruned_on_the_way() -> None:
    rate = OrderRate(3, 10)
    for now in range(1, 6):
        rate.note(now)
    assert list(rate.sent) == [3, 4, 5] and rate.watch == 3
    assert rate.take(6) is not None  # 3 in the last 3 units
    rate.note(40)
    rate.prune()
    assert list(rate.sent) == [40]
    assert rate.take(41) is None and list(rate.sent) == [40, 41]
