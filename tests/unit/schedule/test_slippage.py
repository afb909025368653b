"""Slippage against the arrival price, sans-I/O: which fills breach a schedule's
tolerance (exactly, for either side), and what each response changes in the scheduler
core: ``slow`` stretches what is left, ``passive`` marks the children left, ``pause``
releases nothing until resumed, ``continue`` and ``halt`` change no slice (halt is the
sentinel's). The same settlements in the fold's untimed core find the same breaches."""

from __future__ import annotations

import uuid
from decimal import Context, Decimal, localcontext

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec import Raw

from execd.model.messages import Response, ScheduleRecord, Side, Slippage
from execd.schedule import plan, slippage
from execd.schedule.core import NEVER, SchedulerCore, progress
from execd.schedule.intake import slices_json
from execd.schedule.plan import Floor

LOT = Decimal("0.01")
PARENT = uuid.UUID(int=9)
D = Decimal


def _record(response: Response, side: Side = "buy", order: int | None = 50,
            parent_bps: int | None = None, stretch: int | None = None,
            slices: int = 4) -> ScheduleRecord:
    made = plan.twap(100 * LOT, 0, 100, slices, Floor(LOT))
    return ScheduleRecord(PARENT, "paper", "BTC/USDT", side, "twap", made.planned, LOT,
                          slices_json(made.slices), Raw(b"{}"), made.unplanned, rule="r",
                          slippage=Slippage(response, order, parent_bps, stretch),
                          arrival=D(100))


def _first(core: SchedulerCore, record: ScheduleRecord, price: str) -> None:
    core.open(record, 0)
    [child] = core.due(0)
    core.settled(child.child, child.lots, D(price))


@pytest.mark.parametrize(("side", "price", "bps", "breached"), [
    ("buy", "100.5", D(50), False),   # exactly at the tolerance: within
    ("buy", "100.51", D(51), True),
    ("buy", "99", D(-100), False),    # better than arrival
    ("sell", "99.49", D(51), True),   # a sell below arrival is worse
    ("sell", "101", D(-100), False),
])
def test_a_fill_worse_than_arrival_by_more_than_the_tolerance_is_a_breach(
        side: Side, price: str, bps: Decimal, breached: bool) -> None:
    core = SchedulerCore()
    _first(core, _record("continue", side), price)
    assert slippage.bps(side, D(100), D(price)) == bps
    found = core.breaches.get(PARENT)
    assert (found is not None) == breached
    if found is not None:
        assert (found.breached, found.response, found.bps, found.rule) == (
            "order", "continue", bps, "r")


def test_the_parents_average_breaches_though_no_child_alone_does() -> None:
    core = SchedulerCore()
    core.open(_record("continue", order=30, parent_bps=20), 0)
    [one] = core.due(0)
    core.settled(one.child, one.lots, D("100.25"))  # 25 bps: parent too
    found = core.breaches.pop(PARENT)
    assert found.breached == "parent" and found.parent_bps == D(25)
    [two] = core.due(25)
    core.settled(two.child, two.lots, D("100.05"))  # 5 bps; the average 15: within
    assert PARENT not in core.breaches
    [three] = core.due(50)
    core.settled(three.child, three.lots, D("100.5"))  # 50: both
    assert core.breaches[PARENT].breached == "order,parent"


def test_slow_stretches_what_is_left_from_the_slice_just_sent() -> None:
    core = SchedulerCore()
    _first(core, _record("slow", stretch=3), "101")
    assert core.breaches[PARENT].next_due == 75  # 25 after slice 0 at 0, three times
    assert [r.lots for r in core.due(74)] == []
    [second] = core.due(75)
    assert second.slice == 1
    state = core.get(PARENT)
    assert state is not None and list(state.dues) == [0, 75, 150, 225]


def test_pause_releases_nothing_until_resumed_then_the_due_slices_go_as_one() -> None:
    core = SchedulerCore()
    _first(core, _record("pause"), "101")
    assert core.next_due == NEVER and core.due(10**6) == []
    assert [p.held for p in progress(core)] == ["paused"]
    core.resume(PARENT)
    [caught_up] = core.due(60)  # slices 1 and 2 fell due while paused: one child
    assert (caught_up.slice, caught_up.lots) == (1, 50)
    with pytest.raises(ValueError, match="no paused schedule"):
        core.resume(PARENT)


@pytest.mark.parametrize("response", ["passive", "continue", "halt"])
def test_passive_marks_the_schedule_and_no_response_moves_a_slice(response: Response) -> None:
    core = SchedulerCore()
    _first(core, _record(response), "101")
    state = core.get(PARENT)
    assert state is not None
    assert list(state.dues) == [0, 25, 50, 75]
    assert state.passive == (response == "passive") and not state.paused
    assert core.breaches[PARENT].response == response


@given(st.lists(st.decimals(D("90"), D("110"), places=2), min_size=1, max_size=4),
       st.sampled_from(["slow", "pause", "passive"]))
def test_the_folds_untimed_core_finds_the_same_breaches_and_responses(
        prices: list[Decimal], response: Response) -> None:
    timed, untimed = SchedulerCore(), SchedulerCore(timed=False)
    record = _record(response, order=20, parent_bps=10)
    timed.open(record, 0)
    untimed.open(record, 0)
    found_timed, found_untimed = [], []
    for price in prices:
        released = timed.due(10**6)
        if not released:
            timed.resume(PARENT)
            untimed.resume(PARENT)
            released = timed.due(10**6)
        if not released:
            break
        [child] = released
        untimed.replay(PARENT, child.child, child.lots, 10**6)
        timed.settled(child.child, child.lots, price)
        untimed.settled(child.child, child.lots, price)
        found_timed.append(timed.breaches.pop(PARENT, None))
        found_untimed.append(untimed.breaches.pop(PARENT, None))
        a, b = timed.get(PARENT), untimed.get(PARENT)
        if a is None or b is None:
            assert a is b
            break
        assert (list(a.dues), a.passive, a.paused) == (list(b.dues), b.passive, b.paused)
    assert found_timed == found_untimed
    assert msgspec.json.encode(found_timed) == msgspec.json.encode(found_untimed)


def test_a_stretch_never_leaves_the_ledgers_range_of_times() -> None:
    dues = [0, 2**62, 2**62 + 1]
    assert slippage.stretch(dues, 1, 100) == 2**63 - 1
    assert dues == [0, 2**63 - 1, 2**63 - 1]


def test_the_parents_average_is_judged_exactly_however_many_digits() -> None:
    # 24 digits times 8: beyond the 28 digits of Python's default context. Every child
    # fills at the arrival price, so nothing breaches, even a tolerance of 0 bps.
    arrival = D("683596247868.972445326775")
    record = msgspec.structs.replace(
        _record("halt", "sell", order=0, parent_bps=0), arrival=arrival,
        lot=D(1), quantity=D(29962628))
    core = SchedulerCore()
    core.open(record, 0)
    for now in (0, 25, 50, 75):
        for child in core.due(now):
            core.settled(child.child, child.lots, arrival, D(29962628))
    assert core.breaches == {}


def test_a_breach_by_the_least_amount_is_found_at_any_number_of_digits() -> None:
    arrival = D("1." + "7" * 150)
    with localcontext(Context(prec=400)):
        worse = arrival + arrival * D(50) / D(10_000) + D("1e-140")
    core = SchedulerCore()
    _first(core, msgspec.structs.replace(_record("continue"), arrival=arrival), str(worse))
    assert core.breaches[PARENT].breached == "order"
