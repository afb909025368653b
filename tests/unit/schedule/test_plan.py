"""The planners as pure functions: the slices add up to the parent exactly (what is
below one lot stays out, said), none is below the venue's floor, all fall inside the
window in time order, a VWAP follows its profile within one lot, a POV child is never
above its cap, and an iceberg never leaves a remainder no child could send."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from execd.schedule import plan
from execd.schedule.plan import Floor, Profile

LOTS = st.sampled_from([Decimal("0.001"), Decimal("0.01"), Decimal("1"), Decimal("0.00000001")])
COUNTS = st.integers(1, 200)
WINDOWS = st.tuples(st.integers(0, 10**12), st.integers(1, 10**9)).map(
    lambda t: (t[0], t[0] + t[1]))


@st.composite
def floors(draw: st.DrawFn) -> Floor:
    lot = draw(LOTS)
    return Floor(lot, min_quantity=draw(st.none() | st.integers(1, 50).map(lambda n: n * lot)),
                 min_notional=draw(st.none() | st.sampled_from([Decimal(5), Decimal(10)])),
                 price=draw(st.sampled_from([Decimal("0.5"), Decimal(100), Decimal(30000)])))


def quantities(lot: Decimal) -> st.SearchStrategy[Decimal]:
    return st.integers(0, 10**6).map(lambda n: n * lot) | st.decimals(
        min_value=0, max_value=10**4, places=9, allow_nan=False, allow_infinity=False)


def _holds(result: plan.Plan, quantity: Decimal, floor: Floor, start: int, end: int) -> None:
    assert result.planned + result.unplanned == quantity
    assert Decimal(0) <= result.unplanned < floor.lot
    times = [s.due for s in result.slices]
    assert times == sorted(times) and all(start <= t < end for t in times)
    total = sum(s.lots for s in result.slices)
    if total >= floor.smallest():
        # Below the floor altogether, the one slice is the caller's to refuse.
        assert all(s.lots >= floor.smallest() for s in result.slices)
    assert all(s.lots > 0 for s in result.slices)


@given(st.data(), floors(), WINDOWS, COUNTS)
def test_twap_slices_add_up_and_none_is_below_the_floor(
        data: st.DataObject, floor: Floor, window: tuple[int, int], count: int) -> None:
    quantity = data.draw(quantities(floor.lot))
    result = plan.twap(quantity, *window, count, floor)
    _holds(result, quantity, floor, *window)
    assert len(result.slices) <= count
    lots = [s.lots for s in result.slices]
    if len(lots) == count:  # nothing merged: equal shares, within one lot
        assert max(lots) - min(lots) <= 1


PROFILES = st.lists(st.integers(0, 20).map(Decimal), min_size=1, max_size=48).filter(any).map(
    lambda w: Profile(86_400, tuple(w)))


@given(st.data(), floors(), WINDOWS, COUNTS, PROFILES)
def test_vwap_follows_its_profile_within_one_lot(
        data: st.DataObject, floor: Floor, window: tuple[int, int], count: int,
        profile: Profile) -> None:
    quantity = data.draw(quantities(floor.lot))
    times = plan.due_times(*window, count)
    weights = [Fraction(profile.weight_at(t)) for t in times]
    assume(any(weights))
    result = plan.vwap(quantity, *window, count, floor, profile)
    _holds(result, quantity, floor, *window)
    units, _ = plan.lots_of(quantity, floor.lot)
    spread = plan.allocate(units, weights, 1)  # before any merge below the floor
    total = sum(weights)
    for share, weight in zip(spread, weights, strict=True):
        assert abs(share - units * weight / total) < 1
    if all(share == 0 or share >= floor.smallest() for share in spread):
        assert [s.lots for s in result.slices] == [s for s in spread if s]


@given(st.integers(0, 10**6), st.lists(st.integers(0, 9), min_size=1, max_size=60).filter(any),
       st.integers(1, 500))
def test_allocate_is_exact_and_merges_only_what_is_below_the_floor(
        units: int, weights: list[int], floor: int) -> None:
    shares = plan.allocate(units, weights, floor)
    assert sum(shares) == units and len(shares) == len(weights)
    if units >= floor:
        assert all(s == 0 or s >= floor for s in shares)
    else:
        assert shares.count(0) >= len(shares) - 1


@given(st.integers(0, 10**6), st.decimals(0, 10**6, places=3), st.decimals("0.001", 1, places=3),
       floors())
def test_a_pov_child_is_never_above_its_cap_nor_leaves_dust(
        left: int, volume: Decimal, participation: Decimal, floor: Floor) -> None:
    share = plan.pov_share(left, volume, participation, floor.lot, floor.smallest())
    assert 0 <= share <= left
    assert share * floor.lot <= volume * participation
    if share:
        assert share >= floor.smallest()
        assert left - share == 0 or left - share >= floor.smallest()


@given(st.data(), st.integers(1, 10**6), floors())
def test_iceberg_children_add_up_and_none_is_below_the_floor(
        data: st.DataObject, total: int, floor: Floor) -> None:
    visible = data.draw(st.integers(max(1, total // 300), max(1, total)))
    left, children = total, []
    while left:
        child = plan.iceberg_share(left, visible, floor)
        assert 0 < child <= left
        children.append(child)
        left -= child
    assert sum(children) == total
    if total >= floor.smallest():
        assert all(c >= floor.smallest() for c in children)
    assert all(c <= max(visible, floor.smallest()) for c in children[:-1])


def test_a_window_that_ends_before_it_starts_or_no_slices_is_refused() -> None:
    floor = Floor(Decimal("0.01"))
    for start, end, count in ((10, 10, 3), (10, 5, 3), (0, 10, 0)):
        with pytest.raises(ValueError, match=r"slices|window"):
            plan.twap(Decimal(1), start, end, count, floor)
    with pytest.raises(ValueError, match="profile"):
        plan.vwap(Decimal(1), 0, 10, 2, floor, Profile(100, (Decimal(0), Decimal(1))))


def test_a_twap_in_the_readme() -> None:
    # 1 BTC in 4 slices of lot 0.001 over an hour of wall clock.
    hour = 3_600 * 10**9
    result = plan.twap(Decimal("1.0005"), 0, hour, 4, Floor(Decimal("0.001")))
    assert [(s.due, s.lots) for s in result.slices] == [
        (0, 250), (hour // 4, 250), (hour // 2, 250), (3 * hour // 4, 250)]
    assert result.unplanned == Decimal("0.0005")
