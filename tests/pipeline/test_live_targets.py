"""Targets on the live plane (the real ccxt against the fake Binance): a target reached
through partial fills, each newer target sending what the fills before left; a target
superseded mid-schedule, the schedule ended and the newer target's order computed from
what filled; a symbol the venue does not list refused. One order at the venue per
leg, never past the target.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from execd.app.daemon import Daemon
from execd.model import reasons
from tests.helpers import drop, lines, records
from tests.live import fake_exchange, live_intent
from tests.live_run import run_live

D = Decimal
LOT = D("0.00001")


def target(as_of: int, quantity: str, **fields: Any) -> dict[str, Any]:
    return {"kind": "target", "portfolio_id": "core", "source_run": "run-1", "as_of": as_of,
            "venue": "binance", "urgency": "critical",
            "targets": [{"symbol": "BTC/USDT", "quantity": quantity}], **fields}


def resting_target() -> dict[str, Any]:
    """0.03 BTC over a 3-slice TWAP, judged at 40,000: each child a limit near 40,000,
    which rests at the fake's 50,000 until filled by hand."""
    first = target(1, "0.03", execution={"algorithm": "twap", "duration": 100, "slices": 3},
                   urgency="medium")
    first["targets"][0]["price"] = "40000"
    return first


def _kind(directory: Path, kind: str) -> list[dict[str, Any]]:
    ledger = directory / "ledger"
    return [r["body"] for r in records(ledger) if r["kind"] == kind] if ledger.exists() else []


def _held(ledger: list[dict[str, Any]]) -> Decimal:
    """What the account holds from the legs' fills (net of the fee taken in BTC)."""
    held = D(0)
    for r in ledger:
        body = r["body"]
        if r["kind"] == "outcome" and body.get("side") and body.get("children") is None:
            fee = sum((D(c) for c, cur in body.get("fees", []) if cur == "BTC"), D(0))
            sign = 1 if body["side"] == "buy" else -1
            held += sign * D(body["filled_quantity"]) - (fee if sign > 0 else -fee)
    return held


def _one_order_per_leg(ledger: list[dict[str, Any]], fake: Any) -> None:
    outcomes = [r["body"] for r in ledger if r["kind"] == "outcome"]
    assert max(Counter(o["intent_id"] for o in outcomes).values()) == 1
    orders = [r["body"] for r in ledger if r["kind"] == "order"]
    # Every order record reached the venue once, and nothing else did.
    assert dict(fake.posts) == {o["client_order_id"]: 1 for o in orders}


def _prices(directory: Path) -> None:
    """The lakehouse's price, which each leg is judged (and floored) at."""
    market = directory / "lakehouse" / "market"
    market.mkdir(parents=True, exist_ok=True)
    (market / "prices.json").write_text('{"BTC/USDT": "50000"}')


async def test_a_target_is_reached_through_partial_fills(tmp_path: Path) -> None:
    fake = fake_exchange(liquidity=D("0.004"))
    await fake.start()

    async def refresh(daemon: Daemon) -> None:
        # Each newer target sends what the fills so far left, until it is reached.
        for as_of in range(2, 9):
            with anyio.fail_after(10):
                while len(_kind(tmp_path, "outcome")) < len(_kind(tmp_path, "order")) or (
                        len(_kind(tmp_path, "target")) < as_of - 1):
                    await anyio.sleep(0.02)
            legs = _kind(tmp_path, "target")[-1]["legs"]
            if legs[0][5] == "reached":
                break
            drop(tmp_path / "lakehouse" / "inbox", f"t{as_of}.jsonl",
                 lines(target(as_of, "0.01")))
        # The end of the test: an intent with nothing to do, whose outcome stops the run.
        drop(tmp_path / "lakehouse" / "inbox", "z.jsonl", lines(live_intent(99, action="HOLD")))

    _prices(tmp_path)
    try:
        ledger = await run_live(tmp_path, fake, [target(1, "0.01")], during=refresh,
                                until=f"00000000-0000-4000-8000-{99:012d}")
    finally:
        await fake.stop()
    targets = [r["body"] for r in ledger if r["kind"] == "target"]
    assert len(targets) >= 3
    fills = [r["body"] for r in ledger if r["kind"] == "outcome" and r["body"].get("side")
             and r["body"].get("reason") != reasons.INTENT_HOLD]
    assert {f["status"] for f in fills[:2]} == {"PARTIALLY_FILLED"}
    # What the fees in BTC leave is below the venue's floor: skipped, never sent.
    assert fills[-1]["reason"] == reasons.BELOW_FLOOR or targets[-1]["legs"][0][5] == "reached"
    # Every leg asked for no more than the target less what was held and in flight.
    for t in targets:
        [leg] = t["legs"]
        assert D(leg[2]) + D(leg[3]) <= D("0.01")
    assert D("0.01") - LOT * 2 <= D(targets[-1]["legs"][0][2]) + D(targets[-1]["legs"][0][3])
    _one_order_per_leg(ledger, fake)


async def test_a_target_superseded_mid_schedule_ends_it_and_sends_the_difference(
        tmp_path: Path) -> None:
    fake = fake_exchange()
    await fake.start()
    twap = {"algorithm": "twap", "duration": 100, "slices": 3}

    async def supersede(daemon: Daemon) -> None:
        with anyio.fail_after(10):
            while not any(o.get("parent") for o in _kind(tmp_path, "outcome")):
                await anyio.sleep(0.02)
        drop(tmp_path / "lakehouse" / "inbox", "b.jsonl",
             lines(target(2, "0.02"), {"kind": "tick", "time": 200}))

    try:
        ledger = await run_live(
            tmp_path, fake, [{"kind": "tick", "time": 0}, target(1, "0.03", execution=twap)],
            during=supersede, expect=3)
    finally:
        await fake.stop()
    first, second = (r["body"] for r in ledger if r["kind"] == "target")
    [parent] = [r["body"] for r in ledger if r["kind"] == "outcome"
                and r["body"].get("children") is not None]
    assert parent["reason"] == reasons.SCHEDULE_SUPERSEDED
    assert second["ended"] == [parent["intent_id"]] == [first["legs"][0][4]]
    # The newer target's order is computed from what the first child filled.
    child = next(r["body"] for r in ledger if r["kind"] == "outcome" and r["body"].get("parent"))
    [leg] = second["legs"]
    assert D(leg[2]) == D(child["filled_quantity"]) - D("0.00001")  # the fee, in BTC
    assert D(leg[2]) + D(leg[3]) <= D("0.02")
    assert D("0.02") - D(leg[2]) - D(leg[3]) < LOT
    _one_order_per_leg(ledger, fake)


async def test_a_superseded_child_resting_at_the_venue_defers_the_newer_order_until_it_settles(
        tmp_path: Path) -> None:
    """The first target's child rests (a limit below the market) and part fills; a newer
    target ends the schedule and cancels the child. Its order for the symbol waits for
    the cancel's outcome and is computed from what the child filled: the account ends at
    the newer target (counted as pending, the child's unfilled rest would have left it
    short), never past it, and never an order twice."""
    fake = fake_exchange()
    await fake.start()
    first = resting_target()

    async def supersede(daemon: Daemon) -> None:
        with anyio.fail_after(10):
            while not fake.open_orders():
                await anyio.sleep(0.02)
        fake.fill_resting("BTC/USDT", D("0.004"))      # 0.004 of the child's 0.01
        drop(tmp_path / "lakehouse" / "inbox", "b.jsonl", lines(target(2, "0.02")))
        with anyio.fail_after(10):  # the newer target's order, once it is sent
            while len([o for o in _kind(tmp_path, "outcome") if o.get("side")]) < 2:
                await anyio.sleep(0.02)
        drop(tmp_path / "lakehouse" / "inbox", "z.jsonl", lines(live_intent(99, action="HOLD")))

    try:
        ledger = await run_live(tmp_path, fake, [{"kind": "tick", "time": 0}, first],
                                during=supersede, until=f"00000000-0000-4000-8000-{99:012d}")
    finally:
        await fake.stop()
    older, newer = (r["body"] for r in ledger if r["kind"] == "target")
    [leg] = newer["legs"]
    assert leg[5] == "deferred" and leg[4] is not None
    assert newer["ended"] == [older["legs"][0][4]]
    outcomes = [r["body"] for r in ledger if r["kind"] == "outcome"]
    child = next(o for o in outcomes if o.get("parent"))
    assert (child["status"], D(child["filled_quantity"])) == ("PARTIALLY_FILLED", D("0.004"))
    [sent] = [o for o in outcomes if o["intent_id"] == leg[4]]
    seqs = {r["body"].get("intent_id"): r["seq"] for r in ledger if r["kind"] == "outcome"}
    assert seqs[leg[4]] > seqs[child["intent_id"]]  # after the child settled, not before
    assert sent["status"] == "FILLED"
    assert D("0.02") - 2 * LOT <= _held(ledger) <= D("0.02")
    _one_order_per_leg(ledger, fake)


@pytest.mark.parametrize("third", ["0.005", "0", "left out"])
async def test_a_newer_target_while_a_leg_is_deferred_replaces_it(tmp_path: Path,
                                                                  third: str) -> None:
    """Target 2 is deferred behind a child the venue will not cancel; target 3 comes
    before the child settles (lower, 0, or a full target that leaves the symbol out:
    0). Target 2's order is never sent (TARGET_SUPERSEDED), target 3's waits for the
    same child and is computed from its fill: the account ends at target 3, not past."""
    fake = fake_exchange()
    await fake.start()
    first = resting_target()
    newest = target(3, "0") if third == "left out" else target(3, third)
    if third == "left out":
        newest["targets"] = [{"symbol": "ETH/USDT", "quantity": "0"}]

    async def chain(daemon: Daemon) -> None:
        with anyio.fail_after(10):
            while not fake.open_orders():
                await anyio.sleep(0.02)
        fake.inject("503_json", method="DELETE", path="/api/v3/order", times=1000)
        for n, row in ((2, target(2, "0.02")), (3, newest)):
            drop(tmp_path / "lakehouse" / "inbox", f"t{n}.jsonl", lines(row))
            with anyio.fail_after(10):
                while len(_kind(tmp_path, "target")) < n:
                    await anyio.sleep(0.02)
        fake.fill_resting("BTC/USDT")  # the child fills in full after all
        leg = next(g for g in _kind(tmp_path, "target")[2]["legs"] if g[0] == "BTC/USDT")
        with anyio.fail_after(10):
            while not any(o["intent_id"] == leg[4] for o in _kind(tmp_path, "outcome")):
                await anyio.sleep(0.02)
        drop(tmp_path / "lakehouse" / "inbox", "z.jsonl", lines(live_intent(99, action="HOLD")))

    try:
        ledger = await run_live(tmp_path, fake, [{"kind": "tick", "time": 0}, first],
                                during=chain, until=f"00000000-0000-4000-8000-{99:012d}")
    finally:
        await fake.stop()
    _, second, last = (r["body"] for r in ledger if r["kind"] == "target")
    [deferred] = second["legs"]
    btc = next(g for g in last["legs"] if g[0] == "BTC/USDT")
    assert deferred[5] == btc[5] == "deferred"
    outcomes = {r["body"]["intent_id"]: r["body"] for r in ledger if r["kind"] == "outcome"}
    assert (outcomes[deferred[4]]["status"], outcomes[deferred[4]]["reason"]) == (
        "SKIPPED", reasons.TARGET_SUPERSEDED)
    assert not any(r["kind"] == "order" and r["body"]["intent_id"] == deferred[4]
                   for r in ledger)
    assert outcomes[btc[4]]["side"] == "sell"
    wanted = D(0) if third == "left out" else D(third)
    assert wanted - 2 * LOT <= _held(ledger) <= wanted + LOT
    _one_order_per_leg(ledger, fake)


async def test_a_symbol_the_venue_does_not_list_refuses_the_target(
        tmp_path: Path) -> None:
    fake = fake_exchange()
    await fake.start()
    try:
        ledger = await run_live(tmp_path, fake, [
            target(1, "0.01", targets=[{"symbol": "DOGE/USDT", "quantity": "5"}])])
    finally:
        await fake.stop()
    [outcome] = [r["body"] for r in ledger if r["kind"] == "outcome"]
    assert (outcome["status"], outcome["reason"]) == ("REJECTED", reasons.TARGET_UNKNOWN_SYMBOL)
    assert not fake.orders
