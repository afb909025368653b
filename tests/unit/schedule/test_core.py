"""The scheduler core, sans-I/O, driven by hand: every lot of a plan is asked for once
(no child twice, none lost), the unfilled part of a child carries into the next, slices
due together go out as one child (the catch-up rule), a schedule waits for its child's
fill before the next, and each parent ends exactly once with the children's sums."""

from __future__ import annotations

import uuid
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec import Raw

from execd.model.ids import child_intent_id
from execd.model.messages import ScheduleRecord
from execd.schedule import plan
from execd.schedule.core import NEVER, Done, SchedulerCore
from execd.schedule.intake import slices_json
from execd.schedule.plan import Floor

LOT = Decimal("0.01")
PARENT = uuid.UUID(int=7)


def _record(parent: uuid.UUID, made: plan.Plan, merge: bool = True) -> ScheduleRecord:
    return ScheduleRecord(parent, "paper", "BTC/USDT", "buy", "twap", made.planned, LOT,
                          slices_json(made.slices), Raw(b"{}"),
                          made.unplanned, merge)


def _twap(lots: int, slices: int, end: int = 100, parent: uuid.UUID = PARENT) -> ScheduleRecord:
    return _record(parent, plan.twap(lots * LOT, 0, end, slices, Floor(LOT)))


def test_a_twap_driven_by_ticks_asks_for_each_slice_once_and_ends_filled() -> None:
    core = SchedulerCore()
    record = _twap(100, 4)
    core.open(record, 0)
    asked, done = [], None
    for now in (0, 10, 25, 26, 50, 75, 99, 100):
        for release in core.due(now):
            asked.append((now, release.slice, release.lots))
            done = core.settled(release.child, release.lots, Decimal(100))
    assert asked == [(0, 0, 25), (25, 1, 25), (50, 2, 25), (75, 3, 25)]
    assert done == Done(record, 100, 100, Decimal(100) * 100 * LOT, 4, executed=100 * LOT)
    assert PARENT not in core and not core.due(10**9)


def test_slices_due_together_go_as_one_child_with_the_carry() -> None:
    core = SchedulerCore()
    core.open(_twap(100, 4), 0)
    [first] = core.due(0)
    assert core.settled(first.child, 5, Decimal(10)) is None  # 20 lots carry
    assert core.due(10) == []
    [caught_up] = core.due(80)  # slices 1, 2 and 3 were due: one child
    assert (caught_up.slice, caught_up.lots) == (1, 75 + 20)
    assert caught_up.child == child_intent_id(PARENT, 1, 0)
    done = core.settled(caught_up.child, 95, Decimal(10))
    assert done is not None and (done.filled, done.children, done.ended) == (100, 2, None)


def test_no_child_goes_while_the_one_before_is_out() -> None:
    core = SchedulerCore()
    core.open(_twap(100, 4), 0)
    [first] = core.due(0)
    assert core.due(60) == []  # the first has not settled: its fill decides the carry
    assert core.settled(first.child, 25, Decimal(1)) is None
    [second] = core.due(60)
    assert (second.slice, second.lots) == (1, 50)


def test_an_ended_schedule_sends_nothing_more_and_ends_once() -> None:
    core = SchedulerCore()
    record = _twap(100, 4)
    core.open(record, 0)
    [first] = core.due(0)
    assert core.end(PARENT, "SCHEDULE_HALTED") is None  # a child is out
    assert core.due(100) == [] and core.next_due == NEVER
    done = core.settled(first.child, 10, Decimal(2))
    assert done == Done(record, 100, 10, Decimal(2) * 10 * LOT, 1, "SCHEDULE_HALTED",
                        executed=10 * LOT)
    assert core.end(PARENT, "again") is None
    other = _twap(10, 2, parent=uuid.UUID(int=8))
    core.open(other, 0)
    assert core.end(other.intent_id, "SCHEDULE_CANCELLED") == Done(
        other, 10, 0, Decimal(0), 0, "SCHEDULE_CANCELLED")


def test_opening_twice_or_an_empty_plan_is_refused() -> None:
    core = SchedulerCore()
    core.open(_twap(10, 2), 0)
    with pytest.raises(ValueError, match="open already"):
        core.open(_twap(10, 2), 0)
    with pytest.raises(ValueError, match="no slice"):
        core.open(_twap(0, 2, parent=uuid.UUID(int=9)), 0)


def test_an_iceberg_sends_its_slices_one_by_one_even_when_all_are_due() -> None:
    core = SchedulerCore()
    record = _record(PARENT, plan.Plan(tuple(plan.Slice(0, 3) for _ in range(3)), LOT,
                                       Decimal(0)), merge=False)
    core.open(record, 0)
    sent = []
    while core.next_due <= 50:
        [release] = core.due(50)
        sent.append((release.slice, release.lots))
        core.settled(release.child, release.lots - 1 if release.slice == 0 else release.lots,
                     Decimal(1))
    assert sent == [(0, 3), (1, 4), (2, 3)]  # the unfilled lot of the first rides along


def test_schedules_due_together_go_in_the_order_of_their_records() -> None:
    core = SchedulerCore()
    parents = [uuid.UUID(int=100 + n) for n in (3, 1, 2)]
    for seq, parent in enumerate(parents):
        core.open(_twap(10, 2, parent=parent), seq)
    assert [r.parent for r in core.due(0)] == parents


def test_replay_from_outcomes_rebuilds_what_due_did_and_refuses_a_stranger() -> None:
    live, folded = SchedulerCore(), SchedulerCore()
    record = _twap(100, 4)
    live.open(record, 0)
    folded.open(record, 0)
    for now, fill in ((0, 5), (80, 90)):
        [release] = live.due(now)
        folded.replay(PARENT, release.child, release.lots)
        assert live.settled(release.child, fill, Decimal(1)) == folded.settled(
            release.child, fill, Decimal(1))
        # The slice replay released is not due again (its heap entry is stale).
        assert folded.next_due == live.next_due
    other = SchedulerCore()
    other.open(record, 0)
    with pytest.raises(ValueError, match="not the child"):
        other.replay(PARENT, child_intent_id(PARENT, 0, 0), 26)


@given(st.lists(st.tuples(st.integers(1, 500), st.integers(1, 30)), min_size=1, max_size=6),
       st.lists(st.integers(0, 120), min_size=1, max_size=40), st.data())
def test_every_planned_lot_is_asked_for_at_most_once_and_each_parent_ends_once(
        parents: list[tuple[int, int]], times: list[int], data: st.DataObject) -> None:
    core = SchedulerCore()
    plans = {}
    for n, (lots, slices) in enumerate(parents):
        parent = uuid.UUID(int=1000 + n)
        plans[parent] = _twap(lots, slices, parent=parent)
        core.open(plans[parent], n)
    filled: dict[uuid.UUID, int] = dict.fromkeys(plans, 0)
    children: set[uuid.UUID] = set()
    ended: list[Done] = []
    for now in [*sorted(times), 10**6, 10**6]:
        for release in core.due(now):
            assert release.child not in children
            children.add(release.child)
            # A child never asks for more than the plan less what is filled already:
            # what is sent again is only what earlier children left unfilled.
            planned = sum(lots for _, lots in msgspec.json.decode(
                plans[release.parent].slices, type=list[tuple[int, int]]))
            assert release.lots + filled[release.parent] <= planned
            fill = data.draw(st.integers(0, release.lots))
            filled[release.parent] += fill
            done = core.settled(release.child, fill, Decimal(3))
            if done is not None:
                ended.append(done)
    assert sorted(d.record.intent_id for d in ended) == sorted(plans)
    for done in ended:
        assert done.filled == filled[done.record.intent_id] <= done.planned
        assert done.planned * LOT == plans[done.record.intent_id].quantity
