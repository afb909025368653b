"""Schedules on the live plane, end to end: the daemon, the real ccxt, the fake Binance.

A live child is an order like any other (order record durable before the send, one
outcome); its fill, once durable, moves its parent on: the unfilled part carries into
the next child, a rejected child does not end the schedule, a halt cancels the resting
child, and the parent gets one outcome that sums its children.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from execd.app.daemon import Daemon
from execd.model import reasons
from execd.service.control import Request
from tests.helpers import drop, lines, records
from tests.live import fake_exchange, live_intent
from tests.live_run import ORDER, requests_besides_start, run_live

D = Decimal
PARENT = "00000000-0000-4000-8000-000000000001"


def parent(quantity: str = "0.03", **fields: Any) -> dict[str, Any]:
    body = live_intent(1, quantity=quantity,
                       execution={"algorithm": "twap", "duration": 100, "slices": 3})
    body.update(fields)
    return body


def ticks(*times: int) -> list[dict[str, Any]]:
    return [{"kind": "tick", "time": t} for t in times]


def check(ledger: list[dict[str, Any]], fake: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One outcome per id, the parent the sum of its children, one venue order a child."""
    done = [r["body"] for r in ledger if r["kind"] == "outcome"]
    assert max(Counter(o["intent_id"] for o in done).values()) == 1
    [summary] = [o for o in done if o["intent_id"] == PARENT]
    children = [o for o in done if o.get("parent") == PARENT]
    assert summary["children"] == len(children)
    assert sum(D(c["filled_quantity"]) for c in children) == D(summary["filled_quantity"])
    assert D(summary["filled_quantity"]) <= D(summary["requested_quantity"])
    orders = [r["body"] for r in ledger if r["kind"] == "order"]
    own = [o for o in orders if o.get("parent") == PARENT]
    sent = {c["client_order_id"] for c in children if c.get("client_order_id")}
    assert sent == {o["client_order_id"] for o in own}
    # Each order sent at most once: no more create-order requests than order records.
    assert requests_besides_start(fake).get(ORDER, 0) <= len(orders)
    assert len({o.clientOrderId for o in fake.orders}) == len(fake.orders)
    return summary, children


async def test_a_live_twap_sends_its_children_one_at_a_time_and_sums_them(
        tmp_path: Path) -> None:
    fake = fake_exchange()
    await fake.start()
    try:
        ledger = await run_live(tmp_path, fake, [*ticks(0), parent(), *ticks(50, 100)],
                                until=PARENT)
        summary, children = check(ledger, fake)
    finally:
        await fake.stop()
    assert (summary["status"], summary["filled_quantity"], summary["plane"]) == (
        "FILLED", "0.03", "live")
    assert all(c["status"] == "FILLED" and c["plane"] == "live" for c in children)
    [schedule] = [r["body"] for r in ledger if r["kind"] == "schedule"]
    assert schedule["lot"] == "0.00001"  # the market's amount step, from ccxt
    kinds = [r["kind"] for r in ledger]
    assert kinds.index("schedule") < kinds.index("order")


async def test_partial_fills_carry_into_later_children(tmp_path: Path) -> None:
    fake = fake_exchange(liquidity=D("0.004"))
    await fake.start()
    try:
        ledger = await run_live(tmp_path, fake, [*ticks(0), parent(), *ticks(50, 100)],
                                until=PARENT)
        summary, children = check(ledger, fake)
    finally:
        await fake.stop()
    assert all(c["filled_quantity"] == "0.004" for c in children)
    asked = [D(c["requested_quantity"]) for c in children]
    # Each child asks for its slices and what the ones before left unfilled.
    assert asked[0] == D("0.01") and asked[1] >= D("0.016")
    assert (summary["status"], summary["reason"]) == ("PARTIALLY_FILLED",
                                                      reasons.SCHEDULE_INCOMPLETE)


async def test_a_rejected_child_does_not_end_the_schedule(tmp_path: Path) -> None:
    fake = fake_exchange(balances={"BTC": D("0"), "USDT": D("10")})
    await fake.start()
    try:
        ledger = await run_live(tmp_path, fake, [*ticks(0), parent(), *ticks(50, 100)],
                                until=PARENT)
        summary, children = check(ledger, fake)
    finally:
        await fake.stop()
    assert len(children) >= 2  # a child after the rejected one was still sent
    assert all((c["status"], c["reason"]) == ("FAILED", reasons.EXECUTION_REJECTED)
               for c in children)
    assert (summary["status"], summary["reason"], summary["filled_quantity"]) == (
        "FAILED", reasons.SCHEDULE_INCOMPLETE, "0")


async def test_a_halt_mid_schedule_cancels_the_resting_child_and_ends_the_parent(
        tmp_path: Path) -> None:
    fake = fake_exchange()
    await fake.start()
    answers: list[dict[str, Any]] = []

    async def halt_once_resting(daemon: Daemon) -> None:
        while not fake.open_orders():
            await anyio.sleep(0.01)
        answers.append(await daemon._command(Request("halt", reason="incident", actor="ops")))

    resting = parent(order_type="limit", limit_price="49000", urgency="low")
    try:
        ledger = await run_live(tmp_path, fake, [*ticks(0), resting, *ticks(50, 100)],
                                during=halt_once_resting, until=PARENT,
                                order_timeout_ms=60_000)
        summary, [child] = check(ledger, fake)
    finally:
        await fake.stop()
    assert answers and answers[0]["ok"]
    [cancel] = [r["body"] for r in ledger if r["kind"] == "order_cancel"]
    assert cancel["why"] == "schedule_ended"
    assert (child["status"], child["reason"]) == ("FAILED", reasons.EXECUTION_EXPIRED)
    assert (summary["status"], summary["reason"]) == ("FAILED", reasons.SCHEDULE_HALTED)
    assert "HALTED by ops: incident" in summary["detail"]
    assert fake.orders[0].status == "CANCELED"
    assert not [r for r in records(tmp_path / "ledger") if r["kind"] == "outcome"
                and r["body"]["intent_id"] != PARENT and "parent" not in r["body"]]


async def test_under_the_wall_clock_slices_fall_due_with_no_input_at_all(
        tmp_path: Path) -> None:
    """No record moves a wall clock: the sentinel's schedule task wakes for each slice."""
    fake = fake_exchange()
    await fake.start()
    window = 1_500_000_000  # 1.5 s in the wall clock's nanoseconds: a slice every 0.5 s
    try:
        ledger = await run_live(tmp_path, fake, [live_intent(
            1, quantity="0.03", execution={"algorithm": "twap", "duration": window,
                                           "slices": 3})], until=PARENT, clock="wall")
        summary, children = check(ledger, fake)
    finally:
        await fake.stop()
    assert (summary["status"], summary["filled_quantity"]) == ("FILLED", "0.03")
    times = [r["time"] for r in ledger if r["kind"] == "order"]
    # Three children at their slices' times: one at once, then 0.5 s and 1 s on.
    assert len(children) == 3 and times == sorted(times)
    assert times[2] - times[0] >= window * 2 // 3 - 100_000_000


async def test_what_a_child_leaves_unfilled_stays_held_and_is_released_at_the_end(
        tmp_path: Path) -> None:
    """A cap counts the carry once: after a parent that filled short, nothing is pending and
    an order that would pass the cap with the filled part is refused."""
    fake = fake_exchange(liquidity=D("0.004"))
    await fake.start()
    answers: list[dict[str, Any]] = []
    probe = live_intent(9, quantity="0.05")

    async def probe_after_the_parent(daemon: Daemon) -> None:
        while not any(r["kind"] == "outcome" and r["body"]["intent_id"] == PARENT
                      for r in records(tmp_path / "ledger")):
            await anyio.sleep(0.01)
        answers.append(await daemon._command(Request("status")))
        drop(tmp_path / "lakehouse" / "inbox", "b.jsonl", lines(probe))

    try:
        ledger = await run_live(tmp_path, fake, [*ticks(0), parent(), *ticks(50, 100)],
                                during=probe_after_the_parent, until=probe["intent_id"],
                                extra='[risk.limits]\nmax_asset_exposure = "2000"\n')
        summary, _ = check(ledger, fake)
    finally:
        await fake.stop()
    assert summary["status"] == "PARTIALLY_FILLED"
    [position] = answers[0]["positions"]  # zeros are left out of the status
    assert D(position.get("pending_buy", "0")) == D(position.get("pending_sell", "0")) == 0, (
        position)
    [refused] = [r["body"] for r in ledger if r["kind"] == "outcome"
                 and r["body"]["intent_id"] == probe["intent_id"]]
    assert refused["reason"] == reasons.RISK_ASSET_EXPOSURE_EXCEEDED


async def test_a_halt_while_the_child_waits_in_the_backlog_sends_nothing_for_it(
        tmp_path: Path) -> None:
    fake = fake_exchange()
    await fake.start()
    answers: list[dict[str, Any]] = []
    blocker = live_intent(5, order_type="limit", limit_price="49000", urgency="low")

    async def halt_once_queued(daemon: Daemon) -> None:
        while not any(r["kind"] == "order" and r["body"].get("parent") == PARENT
                      for r in records(tmp_path / "ledger")):
            await anyio.sleep(0.01)
        answers.append(await daemon._command(Request("halt", reason="incident", actor="ops")))

    try:
        ledger = await run_live(tmp_path, fake, [*ticks(0), blocker, parent(), *ticks(50, 100)],
                                during=halt_once_queued, until=PARENT, in_flight=1,
                                order_timeout_ms=1500)
        summary, [child] = check(ledger, fake)
    finally:
        await fake.stop()
    assert answers and answers[0]["ok"]
    assert (child["status"], child["reason"]) == ("FAILED", reasons.EXECUTION_NOT_SENT)
    assert "its schedule ended before it was sent" in child["detail"]
    assert (summary["status"], summary["reason"]) == ("SKIPPED", reasons.SCHEDULE_HALTED) or (
        summary["reason"] == reasons.SCHEDULE_HALTED)
    assert [o.clientOrderId for o in fake.orders] != [child["client_order_id"]]
    assert child["client_order_id"] not in {o.clientOrderId for o in fake.orders}


async def test_a_schedules_time_in_force_goes_with_every_child_or_refuses_the_parent(
        tmp_path: Path) -> None:
    fake = fake_exchange()
    await fake.start()
    ioc = parent(order_type="limit", limit_price="49000", urgency="low",
                 execution={"algorithm": "twap", "duration": 100, "slices": 2,
                            "time_in_force": "IOC"})
    fok_market = live_intent(2, quantity="0.02", execution={
        "algorithm": "twap", "duration": 100, "slices": 2, "time_in_force": "FOK"})
    try:
        ledger = await run_live(tmp_path, fake, [*ticks(0), fok_market, ioc, *ticks(50, 100)],
                                until=PARENT)
        summary, children = check(ledger, fake)
    finally:
        await fake.stop()
    assert {o.timeInForce for o in fake.orders} == {"IOC"}
    assert all(c["reason"] == reasons.EXECUTION_EXPIRED for c in children)
    assert (summary["status"], summary["reason"]) == ("FAILED", reasons.SCHEDULE_INCOMPLETE)
    [refused] = [r["body"] for r in ledger if r["kind"] == "outcome"
                 and r["body"]["intent_id"] == fok_market["intent_id"]]
    assert (refused["status"], refused["reason"]) == (
        "REJECTED", reasons.EXECUTION_TIME_IN_FORCE_UNSUPPORTED)


async def test_a_live_pov_follows_the_volume_file_with_no_input_at_all(
        tmp_path: Path) -> None:
    """Under the wall clock the lakehouse context is read again while no file comes: each
    interval a market-data job adds to market/volume.json sizes one child, at most the
    participation of it, and the parent ends with the sum of its children."""
    fake = fake_exchange()
    await fake.start()
    market = tmp_path / "lakehouse" / "market"
    bars: list[list[Any]] = []

    def publish() -> None:
        staged = market / ".volume.json.tmp"
        staged.write_text(json.dumps({"BTC/USDT": bars}))
        staged.rename(market / "volume.json")  # write-then-rename, as every producer

    async def before(daemon: Daemon) -> None:
        market.mkdir(parents=True, exist_ok=True)
        publish()  # listed, no interval ended yet

    async def during(daemon: Daemon) -> None:
        def orders() -> int:
            return sum(1 for r in records(tmp_path / "ledger") if r["kind"] == "order")

        while not any(r["kind"] == "schedule" for r in records(tmp_path / "ledger")):
            await anyio.sleep(0.02)
        for volume, want in (("0.02", 1), ("0", 1), ("0.1", 2)):
            now = time.time_ns()
            bars.append([now - 1, now, volume])
            publish()
            with anyio.fail_after(10):
                while orders() < want:
                    await anyio.sleep(0.02)
            await anyio.sleep(1.2)  # one reading of the context at least

    try:
        ledger = await run_live(tmp_path, fake, [live_intent(
            1, quantity="0.03", execution={"algorithm": "pov", "duration": 60_000_000_000,
                                           "participation": "0.5"})],
                                before=before, during=during, until=PARENT, clock="wall")
        summary, children = check(ledger, fake)
    finally:
        await fake.stop()
    assert (summary["status"], summary["filled_quantity"]) == ("FILLED", "0.03")
    # Half of 0.02, then nothing for an interval of no volume, then the 0.02 left.
    assert [c["filled_quantity"] for c in children] == ["0.01", "0.02"]
    contexts = [r["body"] for r in ledger if r["kind"] == "context"]
    assert len(contexts) >= 3 and contexts[-1]["volumes"] == 1
