"""Schedules in the Risk Sentinel's core: the parent's hold counts against every cap at
once, each child is re-checked without counting its quantity twice, halt, reduce and
cancel end schedules with one outcome each, and what is held is released at the end."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from execd.model import reasons
from execd.model.messages import (
    Accepted,
    Entry,
    ExecutionOutcome,
    RouterItem,
    SlippageRecord,
    TickRecord,
)
from execd.sentinel.core import SentinelCore, control
from execd.service.control import ControlRequest, Request
from tests.sentinel_inputs import ctx, item
from tests.unit.sentinel.test_risk import build, refused

EXPOSURE = '[risk.limits]\nmax_asset_exposure = "100000"\n'


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{n:012d}")


def twap(n: int, quantity: str, time: int = 0, **execution: Any) -> Any:
    params: dict[str, Any] = {"algorithm": "twap", "duration": 100, "slices": 4}
    params.update(execution)
    return item(n, time=time, quantity=quantity, execution=params)


def tick(time: int) -> Entry:
    return Entry(10**6 + time, "tick", time, TickRecord(time))


def position(core: SentinelCore, symbol: str = "BTC/USDT") -> tuple[Decimal, Decimal]:
    assert core.risk is not None
    p = core.risk.book.venue("binance").position(symbol)
    return p.filled, p.pending_buy


def outcomes(out: list[RouterItem]) -> list[ExecutionOutcome]:
    return [e.body for e in out if isinstance(e, Entry) and isinstance(e.body, ExecutionOutcome)]


def children(out: list[RouterItem]) -> list[Accepted]:
    return [a for a in out if isinstance(a, Accepted) and a.parent is not None]


def test_the_parents_hold_counts_against_the_cap_so_no_set_of_schedules_passes_it(
        tmp_path: Path) -> None:
    core = build(tmp_path, EXPOSURE, prices={"BTC/USDT": "50000"})
    out = core.handle_batch([twap(1, "1.6")])
    assert [type(x).__name__ for x in out] == ["Entry", "Accepted"]  # schedule, first child
    assert position(core) == (Decimal("0.4"), Decimal("1.2"))
    # A second schedule, or a plain order, that would pass the cap with the first
    # schedule's unsent children counted is refused now, not when its children go.
    refused(core.handle(twap(2, "0.5")), reasons.RISK_ASSET_EXPOSURE_EXCEEDED)
    refused(core.handle(item(3, quantity="0.5")), reasons.RISK_ASSET_EXPOSURE_EXCEEDED)
    out = core.handle_batch([tick(100)])
    assert [a.intent.quantity for a in children(out)] == [Decimal("1.2")]  # caught up
    [parent] = outcomes(out)
    assert (parent.status, parent.filled_quantity, parent.children) == ("FILLED",
                                                                      Decimal("1.6"), 2)
    assert position(core) == (Decimal("1.6"), Decimal(0))


def test_a_child_refused_on_its_recheck_carries_and_the_parent_ends_incomplete(
        tmp_path: Path) -> None:
    core = build(tmp_path, '[risk.limits]\nmax_order_notional = "30000"\n',
                 prices={"BTC/USDT": "50000"})
    # The parent's notional is 40000 at admission if the price is 10000...
    assert core.risk is not None
    core.risk.set_context(ctx(prices={"BTC/USDT": "10000"}))
    refused(core.handle(twap(1, "4", slices=2)), reasons.RISK_NOTIONAL_EXCEEDED)
    core.risk.set_context(ctx(prices={"BTC/USDT": "5000"}))
    out = core.handle_batch([twap(2, "4", slices=2)])
    assert [a.intent.quantity for a in children(out)] == [Decimal(2)]
    assert position(core) == (Decimal(2), Decimal(2))
    # ...and the price moves: the second child (2 x 20000) is over the cap.
    core.risk.set_context(ctx(prices={"BTC/USDT": "20000"}))
    out = core.handle_batch([tick(60)])
    [child, parent] = outcomes(out)
    assert (child.status, child.reason, child.parent) == (
        "REJECTED", reasons.RISK_NOTIONAL_EXCEEDED, uid(2))
    assert (parent.status, parent.reason, parent.filled_quantity) == (
        "PARTIALLY_FILLED", reasons.SCHEDULE_INCOMPLETE, Decimal(2))
    assert "filled 2 of 4" in (parent.detail or "")
    assert position(core) == (Decimal(2), Decimal(0))  # the hold is released


def test_halt_ends_every_schedule_and_reduce_keeps_only_the_shrinking_ones(
        tmp_path: Path) -> None:
    core = build(tmp_path)
    core.handle_batch([item(1, quantity="10")])  # long 10
    core.handle_batch([twap(2, "4", time=0), twap(3, "4", time=0, start=50),
                       item(4, side="sell", quantity="8", time=0,
                            execution={"algorithm": "twap", "duration": 100, "slices": 4})])
    out = core.set_state("REDUCING", "drawdown", "alice")
    ended = outcomes(out)
    assert [(o.intent_id, o.status, o.reason) for o in ended] == [
        (uid(2), "PARTIALLY_FILLED", reasons.SCHEDULE_REDUCING),
        (uid(3), "SKIPPED", reasons.SCHEDULE_REDUCING)]
    assert "REDUCING by alice: drawdown" in (ended[0].detail or "")
    assert len(core.schedules.core) == 1  # the sell goes on
    out = core.handle_batch([tick(30)])
    assert [a.intent.quantity for a in children(out)] == [Decimal(2)]
    out = core.set_state("HALTED", "outage", "bob")
    [sell] = outcomes(out)
    assert (sell.intent_id, sell.status, sell.reason, sell.filled_quantity) == (
        uid(4), "PARTIALLY_FILLED", reasons.SCHEDULE_HALTED, Decimal(4))
    assert not core.schedules.core and not children(core.handle_batch([tick(100)]))
    assert position(core) == (Decimal(10) + 1 - 4, Decimal(0))


def test_cancel_ends_one_schedule_and_says_who(tmp_path: Path) -> None:
    core = build(tmp_path)
    core.handle_batch([twap(1, "4"), twap(2, "4")])
    request = ControlRequest(Request("cancel", reason="wrong size", actor="carol",
                                     intent=str(uid(1))))
    [entry] = control(core, request)
    assert request.result is not None and request.result["ended"]
    body = entry.body
    assert isinstance(body, ExecutionOutcome)
    assert (body.status, body.reason, body.filled_quantity) == (
        "PARTIALLY_FILLED", reasons.SCHEDULE_CANCELLED, Decimal(1))
    assert "cancelled by carol: wrong size" in (body.detail or "")
    again = ControlRequest(Request("cancel", reason="x", actor="carol",
                                   intent=str(uid(1))))
    assert control(core, again) == [] and "no open schedule" in (again.error or "")
    bad = ControlRequest(Request("cancel", reason="x", actor="carol", intent="nope"))
    assert control(core, bad) == [] and "not a UUID" in (bad.error or "")
    status = ControlRequest(Request("status"))
    control(core, status)
    assert status.result is not None
    [shown] = status.result["schedules"]
    assert (shown["intent_id"], shown["filled"], shown["planned"], shown["next_due"]) == (
        str(uid(2)), "1", "4", 25)


def test_children_follow_the_record_that_moved_the_clock_whatever_the_batches(
        tmp_path: Path) -> None:
    """The same items cut into batches of every size give the same numbered records."""
    def run(cut: int, most: int | None = None) -> list[tuple[int, str, str]]:
        core = build(tmp_path / f"{cut}-{most}")
        items: list[Any] = [twap(1, "8", time=0, slices=8), item(2, time=0, seq=None),
                            twap(3, "5", time=0, slices=5, start=13),
                            twap(4, "9", time=0, slices=3, start=13)]
        items += [tick(t) for t in (5, 13, 13, 40, 41, 99, 200)]
        for n, it in enumerate(items):
            it.seq = n
        seen = []
        for start in range(0, len(items), cut):
            batch = items[start:start + cut]
            for part in core.decide(batch, most):
                # Children never grow a part much past most (a parent's outcome rides along).
                assert most is None or len(part) <= len(batch) + most + 1
                for x in part:
                    what = x.intent.quantity if isinstance(x, Accepted) else x.kind
                    seen.append((x.seq, type(x).__name__, str(what)))
        return seen

    runs = [run(cut) for cut in (1, 2, 3, 9)] + [run(9, most) for most in (1, 2, 5)]
    assert all(r == runs[0] for r in runs)
    assert next(s for s in runs[0] if s[1] == "Accepted") == (1, "Accepted", "1")



def test_a_breach_a_settlement_found_is_recorded_before_the_next_intent(
        tmp_path: Path) -> None:
    """A live child's settlement (between two batches) found a halting breach: it is
    recorded, and trading halted, before the next input is decided."""
    core = build(tmp_path, "")
    core.handle_batch([tick(5)])
    core.schedules.core.breaches[uid(9)] = SlippageRecord(
        uid(9), uid(10), "r", Decimal(100), Decimal(102), Decimal(200), Decimal(102),
        Decimal(200), "order", "halt")
    out = core.handle_batch([item(1, time=6, quantity="0.1")])
    kinds = [x.kind if isinstance(x, Entry) else "accepted" for x in out]
    assert kinds == ["slippage", "trading_state", "outcome"]
    assert [x.seq for x in out] == sorted(x.seq for x in out)
    refused(out[-1], reasons.TRADING_HALTED)
