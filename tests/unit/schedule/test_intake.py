"""An intent's execution object, checked and planned: any parameters give either a
refusal with an EXECUTION_* reason or a schedule whose slices add up to the parent
exactly, in whole lots, inside the window, at most MAX_SLICES of them."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from execd.model.messages import Execution, OrderIntent, ScheduleRecord
from execd.model.refusal import Refusal
from execd.schedule import plan
from execd.schedule.intake import MAX_SLICES, lot_of, schedule_of
from execd.schedule.plan import Floor

PARENT = uuid.UUID(int=5)
maybe_time = st.none() | st.integers(-5, 2_000)


def _intent(quantity: str, execution: Execution) -> OrderIntent:
    return OrderIntent(venue="binance", symbol="BTC/USDT", quantity=Decimal(quantity),
                       source_run="run-1", intent_id=PARENT, side="buy", execution=execution)


@given(st.sampled_from(["twap", "vwap", "iceberg", "immediate", "pov", "x"]),
       maybe_time, maybe_time, maybe_time, st.none() | st.integers(-2, 20_000),
       st.none() | st.integers(-2, 500),
       st.none() | st.decimals("-1", "50", places=2, allow_nan=False),
       st.sampled_from(["1", "7", "0.5", "12.34", "1E+2", "0.001"]), st.integers(0, 1_000))
def test_any_execution_is_refused_with_its_reason_or_plans_exactly(
        algorithm: str, start: int | None, end: int | None, duration: int | None,
        slices: int | None, interval: int | None, visible: Decimal | None, quantity: str,
        now: int) -> None:
    fields: dict[str, Any] = {"start": start, "end": end, "duration": duration,
                              "slices": slices, "interval": interval, "visible": visible}
    execution = Execution(algorithm, **fields)
    intent = _intent(quantity, execution)
    got = schedule_of(intent, PARENT, "buy", "paper", now, msgspec.json.encode(intent), None)
    if isinstance(got, Refusal):
        assert got.reason.startswith("EXECUTION_") and got.status == "REJECTED"
        assert got.detail
        return
    if got is None:
        assert algorithm == "immediate"
        return
    assert isinstance(got, ScheduleRecord)
    lot = lot_of(Decimal(quantity))
    slices = msgspec.json.decode(got.slices, type=list[tuple[int, int]])
    assert got.lot == lot and got.unplanned == 0
    assert sum(lots for _, lots in slices) * lot == Decimal(quantity)
    assert all(lots >= 1 for _, lots in slices)
    assert 1 <= len(slices) <= MAX_SLICES
    first = now if start is None else start
    if algorithm == "iceberg":
        assert all(due == first for due, _ in slices)
        assert got.merge is False
    else:
        last = end if end is not None else first + (duration or 0)
        assert all(first <= due < last for due, _ in slices)
        assert now < last
        assert [d for d, _ in slices] == sorted(d for d, _ in slices)


@given(st.integers(1, 5_000), st.integers(1, 400), st.integers(1, 5))
def test_an_iceberg_shows_its_visible_size_and_the_last_child_takes_the_rest(
        lots: int, visible: int, smallest: int) -> None:
    lot = Decimal("0.01")
    floor = Floor(lot, min_quantity=smallest * lot)
    made = plan.iceberg(lots * lot, 3, visible * lot, floor)
    shares = [s.lots for s in made.slices]
    assert sum(shares) == lots and all(s.due == 3 for s in made.slices)
    assert all(s >= min(smallest, lots) for s in shares)
    assert all(s == max(visible, smallest) for s in shares[:-1])
