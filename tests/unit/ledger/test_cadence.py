"""Where checkpoints fall: by seq and by the records' own times, whatever the batching."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from execd.ledger.cadence import Cadence
from execd.model.messages import Entry, TickRecord


def entries(times: list[int]) -> list[Entry]:
    return [Entry(n, "tick", t, TickRecord(t)) for n, t in enumerate(times)]


def placed(times: list[int], sizes: list[int], every: int, interval: int,
           start: int = 0) -> list[int]:
    """The seqs checkpoints follow when the records come in batches of ``sizes`` (cycled),
    chained as the writer does: from seq 2 (after a start record), a checkpoint record
    taking the seq after the record it follows."""
    cadence = Cadence(every, interval, start)
    pending = entries(times)
    next_seq, lead, marks, turn = 2, False, [], 0
    while pending:
        size = sizes[turn % len(sizes)]
        turn += 1
        ready, pending = pending[:size], pending[size:]
        while ready:
            first = next_seq + lead
            at = cadence.due(first, ready)
            taken = len(ready) if at < 0 else at + 1
            next_seq = first + taken
            ready = ready[taken:]
            lead = at >= 0
            if lead:
                marks.append(next_seq - 1)
    return marks


def test_by_seq_alone_every_multiple_then_its_record() -> None:
    # 30 records from seq 2 and a checkpoint record after each multiple: through seq 35.
    assert placed([0] * 30, [4], every=7, interval=0) == [7, 14, 21, 28, 35]


def test_by_time_the_first_record_that_far_past_the_last_checkpoint() -> None:
    times = [0, 3, 9, 10, 12, 19, 25, 26, 40]
    # From 0: 10 is the first 10 past it (seq 5); from 10: 25 (seq 9, the checkpoint
    # record at 6 shifting it); from 25: 40 (seq 12).
    assert placed(times, [100], every=1000, interval=10) == [5, 9, 12]


def test_a_late_time_older_than_the_newest_never_makes_a_checkpoint() -> None:
    assert placed([50, 5, 6, 7, 55, 8, 59, 60], [1], every=1000, interval=10,
                  start=50) == [9]


def test_both_rules_together() -> None:
    # By seq after 4 and 8 (each seq after a checkpoint record shifts the rest); by time
    # after the record at time 30.
    assert placed([0, 1, 30, 31, 32, 33, 34, 35], [3], every=4, interval=20) == [4, 8]
    assert placed([0, 1, 2, 30, 31, 32, 33, 34], [3], every=100, interval=20) == [5]


@given(st.lists(st.integers(0, 200), max_size=120), st.lists(st.integers(1, 9), min_size=1,
       max_size=5), st.integers(1, 12), st.integers(0, 40))
def test_the_places_never_depend_on_the_batch_sizes(times: list[int], sizes: list[int],
                                                    every: int, interval: int) -> None:
    """The replay contract (DESIGN §2): one record at a time or in any batches, the same."""
    times = sorted(times) if interval % 2 else times  # mostly rising, or any order (LATE)
    assert placed(times, sizes, every, interval) == placed(times, [1], every, interval)
