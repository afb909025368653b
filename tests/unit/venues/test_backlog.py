"""The live venue's waiting orders (execd.venues.ccxt.backlog): highest priority first,
then first come, whatever the order they were put in; reconciled orders before all."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from execd.venues.ccxt.backlog import RECONCILED, Waiting


@given(st.lists(st.integers(0, 100), max_size=50))
def test_taken_by_priority_then_first_come(priorities: list[int]) -> None:
    waiting: Waiting[int] = Waiting()
    for n, priority in enumerate(priorities):
        waiting.put(n, priority)
    waiting.put(-1, RECONCILED)
    taken = [waiting.take() for _ in range(len(priorities) + 1)]
    assert taken[0] == -1
    assert taken[1:] == sorted(range(len(priorities)), key=lambda n: (-priorities[n], n))
    assert len(waiting) == 0
