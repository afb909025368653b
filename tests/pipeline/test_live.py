"""The live plane end to end: the daemon, the real ccxt, a fake Binance on 127.0.0.1.

The daemon and the fake share one event loop here; the crash tests
(test_live_crash.py) run the daemon as a real process.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger.recovery import recover
from execd.model import ids, reasons
from execd.sentinel.risk import Risk
from execd.service.control import Request
from tests.fakes.binance import FakeBinance
from tests.helpers import drop, lines, records
from tests.live import fake_exchange, live_intent, place_directly
from tests.live_run import LOOKUP, ORDER, outcome_of, requests_besides_start, run_live, sends

D = Decimal
# An order that filled with no fees in the reply it came in (a lookup's, a poll's)
# has them read from its trades, once.
TRADES = ("GET", "/api/v3/myTrades")


async def test_a_market_order_fills_through_the_real_ccxt(tmp_path: Path,
                                                          fake: FakeBinance) -> None:
    ledger = await run_live(tmp_path, fake, [live_intent(1)])
    kinds = [r["kind"] for r in ledger]
    # The order record (naming the client order id) is durable before the outcome.
    assert kinds.index("order") < kinds.index("outcome")
    order = next(r["body"] for r in ledger if r["kind"] == "order")
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["filled_quantity"], outcome["average_price"]) == (
        "FILLED", "0.01", "50000")
    assert outcome["plane"] == "live" and outcome["slippage_bps"] == "0.00"
    assert outcome["fees"] == [["0.00001", "BTC"]]
    assert outcome["client_order_id"] == order["client_order_id"]
    assert [o.clientOrderId for o in fake.orders] == [order["client_order_id"]]
    assert outcome["venue_order_id"] == str(fake.orders[0].orderId)
    # The send is recorded with the venue's answer.
    [sent] = sends(ledger)
    assert (sent["attempt"], sent["answer"], sent["venue_order_id"], sent["venue_status"]) == (
        1, "placed", outcome["venue_order_id"], "closed")
    # Start-up is two requests; the order is one more; nothing else is asked.
    assert requests_besides_start(fake) == {ORDER: 1}
    start = next(r["body"] for r in ledger if r["kind"] == "start")
    assert start["planes"] == {"binance": "live", "paper": "paper"}


async def test_a_reply_for_another_client_order_id_is_not_taken_for_this_order(
        tmp_path: Path, fake: FakeBinance) -> None:
    # Intent 1 fills; the send of intent 2 is answered with intent 1's reply (a
    # confused proxy) and never reaches the venue. Intent 2 is looked up by its own
    # client id, not found, and recorded not sent: it never borrows order 1's fill.
    async def after_the_first(daemon: Daemon) -> None:
        while outcomes_in(tmp_path) < 1:
            await anyio.sleep(0.01)
        fake.inject("200_other_order")
        drop(tmp_path / "lakehouse" / "inbox", "b.jsonl", lines(live_intent(2)))

    ledger = await run_live(tmp_path, fake, [live_intent(1)], expect=2,
                            during=after_the_first)
    first, second = outcome_of(ledger, 1), outcome_of(ledger, 2)
    assert first["status"] == "FILLED"
    assert (second["status"], second["reason"]) == ("FAILED", reasons.EXECUTION_NOT_SENT)
    [sent] = sends(ledger, 2)
    assert sent["answer"] == "unknown" and "another order" in sent["message"]
    assert [o.clientOrderId for o in fake.orders] == [first["client_order_id"]]


def outcomes_in(directory: Path) -> int:
    ledger = directory / "ledger"
    return sum(1 for r in records(ledger) if r["kind"] == "outcome") if ledger.exists() else 0


# Every reply that leaves the order's fate open, and whether the venue took the order.
FAULTS = [("lost_reply", True), ("timeout", True), ("503_json_placed", True),
          ("5xx_unknown_code_placed", True), ("200_not_an_order_placed", True),
          ("venue_busy_placed", True),
          ("503_json", False), ("503_plain", False), ("429", False), ("drop", False)]


@pytest.mark.parametrize(("fault", "placed"), FAULTS)
async def test_each_fault_gives_one_send_and_one_outcome_by_default(
        tmp_path: Path, fake: FakeBinance, fault: str, placed: bool) -> None:
    """A reply that leaves the order's fate open never leads to a second send by default: one send,
    a lookup by client order id, one outcome.
    """
    # Seed 000: execution never retries on its own. Where the venue never got the
    # order, it is FAILED EXECUTION_NOT_SENT after one POST, and the ledger says so.
    fake.inject(fault, delay=3.0)
    ledger = await run_live(tmp_path, fake, [live_intent(1)], timeout_ms=1000)
    outcome = outcome_of(ledger)
    [sent] = sends(ledger)
    assert (sent["attempt"], sent["answer"], sent.get("resend", False)) == (1, "unknown", False)
    assert sent["message"] and sent["wall_time"] <= outcome["wall_time"]
    # Looked up by client order id; when the venue has nothing, asked once more after
    # the acceptance window, and then not sent again.
    assert requests_besides_start(fake) == (
        {ORDER: 1, LOOKUP: 1, TRADES: 1} if placed else {ORDER: 1, LOOKUP: 2})
    if placed:
        assert outcome["status"] == "FILLED"
        assert (sent["lookup"], sent["venue_order_id"]) == ("found", outcome["venue_order_id"])
        assert len(fake.orders) == 1 and fake.orders[0].clientOrderId == outcome["client_order_id"]
    else:
        assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_NOT_SENT)
        assert "sent 1 of send_attempts=1 times, not sent again" in outcome["detail"]
        assert sent["lookup"] == "absent" and fake.orders == []
    # The send record is durable before (in the same commit as, or ahead of) the outcome.
    kinds = [r["kind"] for r in ledger]
    assert kinds.index("order") < kinds.index("order_attempt") < kinds.index("outcome")


@pytest.mark.parametrize(("fault", "placed"), FAULTS)
async def test_explicit_resends_record_every_send(
        tmp_path: Path, fake: FakeBinance, fault: str, placed: bool) -> None:
    fake.inject(fault, delay=3.0)
    ledger = await run_live(tmp_path, fake, [live_intent(1)], timeout_ms=1000, send_attempts=2)
    outcome = outcome_of(ledger)
    assert outcome["status"] == "FILLED"
    assert len(fake.orders) == 1 and fake.orders[0].clientOrderId == outcome["client_order_id"]
    answers = [(s["attempt"], s["answer"], s.get("lookup"), s.get("resend", False))
               for s in sends(ledger)]
    if placed:
        assert answers == [(1, "unknown", "found", False)]
        assert requests_besides_start(fake) == {ORDER: 1, LOOKUP: 1, TRADES: 1}
    else:
        # The second send went out only after the first one's record said so.
        assert answers == [(1, "unknown", "absent", True), (2, "placed", None, False)]
        assert sends(ledger)[1]["venue_order_id"] == outcome["venue_order_id"]
        assert requests_besides_start(fake) == {ORDER: 2, LOOKUP: 2}


async def test_a_documented_refusal_code_fails_at_once_without_a_lookup(
        tmp_path: Path, fake: FakeBinance) -> None:
    # -1021 (timestamp outside recvWindow) is Binance's documented "not processed".
    fake.inject("clock")
    outcome = outcome_of(await run_live(tmp_path, fake, [live_intent(1)]))
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_REJECTED)
    assert "-1021" in outcome["detail"]
    assert fake.orders == [] and requests_besides_start(fake) == {ORDER: 1}


async def test_a_duplicate_client_id_refusal_follows_the_order_the_venue_has(
        tmp_path: Path, fake: FakeBinance) -> None:
    """A duplicate-client-id refusal is never taken for a refusal of the order: the order the venue
    holds is followed and nothing more is sent.
    """
    # The venue already holds an open order under the intent's client order id (sent
    # by a run whose record of it is gone): the refusal of the duplicate is not a
    # refusal of the order. execd looks it up, follows it, and sends nothing more.
    intent = live_intent(1, order_type="limit", limit_price="49000", urgency="low")
    client_id = ids.client_order_id(uuid.UUID(intent["intent_id"]), "binance", "x", 32)

    async def place_first(daemon: Daemon) -> None:
        await place_directly(fake, "binance", {"clientOrderId": client_id})

    async def fill_after_the_duplicate(daemon: Daemon) -> None:
        while fake.requests[ORDER] < 2:
            await anyio.sleep(0.01)
        fake.fill_resting("BTC/USDT")

    ledger = await run_live(tmp_path, fake, [intent], before=place_first,
                            during=fill_after_the_duplicate)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["client_order_id"]) == ("FILLED", client_id)
    [sent] = sends(ledger)
    assert (sent["answer"], sent["lookup"]) == ("exists", "found")
    assert "Duplicate order sent" in sent["message"]
    assert [o.clientOrderId for o in fake.orders] == [client_id]
    assert fake.posts[client_id] == 2


async def test_venue_refusals_fail_with_the_venue_message(tmp_path: Path) -> None:
    fake = fake_exchange(balances={"BTC": D("0"), "USDT": D("10")})
    await fake.start()
    try:
        ledger = await run_live(tmp_path, fake, [live_intent(1)])
    finally:
        await fake.stop()
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_REJECTED)
    assert "insufficient balance" in outcome["detail"]
    assert fake.orders == [] and requests_besides_start(fake) == {ORDER: 1}


async def test_precision_and_floor_before_anything_is_sent(tmp_path: Path,
                                                          fake: FakeBinance) -> None:
    intents = [
        live_intent(1, quantity="0.000001"),                       # rounds to 0
        live_intent(2, quantity="0.00009", reference_price="50000"),  # 4.5 USDT < 5
        live_intent(3, symbol="DOGE/USDT"),
        live_intent(4, order_type="limit", limit_price="49000",
                    constraints={"post_only": True}),         # rests as LIMIT_MAKER
        live_intent(5, quantity="0.0123456"),                      # truncated to 0.01234
        live_intent(6, urgency="medium", quantity="0.01", reference_price="50000",
                    constraints={"max_slippage_bps": 10}),
    ]
    ledger = await run_live(tmp_path, fake, intents, order_timeout_ms=300)
    assert (outcome_of(ledger, 1)["status"], outcome_of(ledger, 1)["reason"]) == (
        "SKIPPED", reasons.BELOW_FLOOR)
    assert outcome_of(ledger, 1)["detail"].startswith("amount=0.00000 (quantity=0.000001")
    assert outcome_of(ledger, 2)["detail"] == (
        "notional=4.50000 (amount=0.00009 x price=50000) < min_notional=5")
    assert outcome_of(ledger, 3)["reason"] == reasons.VENUE_SYMBOL_UNKNOWN
    assert outcome_of(ledger, 4)["reason"] == reasons.EXECUTION_EXPIRED  # order_timeout_ms
    # Rounding to the lot size sent less than requested: it filled in full, yet the
    # intent did not get its quantity (seed 000: FILLED means the requested quantity).
    rounded = outcome_of(ledger, 5)
    assert (rounded["status"], rounded["reason"]) == ("PARTIALLY_FILLED",
                                                      reasons.EXECUTION_LOT_ROUNDED)
    assert (rounded["requested_quantity"], rounded["sent_quantity"],
            rounded["filled_quantity"]) == ("0.0123456", "0.01234", "0.01234")
    # Medium urgency: a limit at 50,000 + 10 bps, which crosses at 50,000 and fills there.
    assert outcome_of(ledger, 6)["status"] == "FILLED"
    sent = {o.clientOrderId: o for o in fake.orders}
    assert sorted(o.type for o in sent.values()) == ["LIMIT", "LIMIT_MAKER", "MARKET"]
    limit = next(o for o in sent.values() if o.type == "LIMIT")
    assert limit.price == D("50050.00") and limit.timeInForce == "GTC"
    extra = requests_besides_start(fake)
    assert extra[ORDER] == 3 and extra[("DELETE", "/api/v3/order")] == 1
    # Each order's plan says what was sent, or what would have been and why not.
    assert outcome_of(ledger, 1)["plan"] == {
        "order_type": "market", "size": "0.00000", "constraints": ["lot_rounding"],
        "skip_reason": reasons.BELOW_FLOOR}
    assert "plan" not in outcome_of(ledger, 3)  # refused: it never became an order
    assert outcome_of(ledger, 4)["plan"] == {
        "order_type": "limit", "size": "0.01", "price": "49000", "constraints": ["post_only"]}
    assert outcome_of(ledger, 5)["plan"] == {"order_type": "market", "size": "0.01234",
                                             "constraints": ["lot_rounding"]}
    assert outcome_of(ledger, 6)["plan"] == {
        "order_type": "limit", "size": "0.01", "time_in_force": "GTC", "price": "50050",
        "constraints": ["limit_from_reference"]}


async def test_a_partial_fill_is_partially_filled(tmp_path: Path) -> None:
    fake = fake_exchange(liquidity=D("0.004"))
    await fake.start()
    try:
        ledger = await run_live(tmp_path, fake, [live_intent(1)])
    finally:
        await fake.stop()
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"], outcome["filled_quantity"]) == (
        "PARTIALLY_FILLED", reasons.EXECUTION_EXPIRED, "0.004")
    assert outcome["detail"] == "filled=0.004 of amount=0.01 (venue status expired)"


async def test_a_resting_limit_is_followed_until_it_fills(tmp_path: Path,
                                                          fake: FakeBinance) -> None:
    async def fill_later(daemon: Daemon) -> None:
        while not fake.open_orders():
            await anyio.sleep(0.01)
        await anyio.sleep(0.1)
        fake.fill_resting("BTC/USDT")

    intent = live_intent(1, order_type="limit", limit_price="49000", urgency="low")
    ledger = await run_live(tmp_path, fake, [intent], during=fill_later)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["average_price"]) == ("FILLED", "49000")
    assert outcome["slippage_bps"] == "-200.00"  # bought 2% under the reference
    extra = requests_besides_start(fake)
    assert extra[ORDER] == 1 and extra[LOOKUP] >= 1 and set(extra) == {ORDER, LOOKUP, TRADES}


async def test_a_resting_limit_is_cancelled_after_the_order_timeout(
        tmp_path: Path, fake: FakeBinance) -> None:
    intent = live_intent(1, order_type="limit", limit_price="49000", urgency="low")
    ledger = await run_live(tmp_path, fake, [intent], order_timeout_ms=200)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_EXPIRED)
    assert "cancelled by execd after order_timeout_ms" in outcome["detail"]
    assert fake.orders[0].status == "CANCELED"
    # The cancel execd asked for on its own is in the ledger, before the outcome.
    [cancel] = [r for r in ledger if r["kind"] == "order_cancel"]
    assert (cancel["body"]["why"], cancel["body"]["answer"], cancel["body"]["venue_order_id"]) == (
        "order_timeout_ms", "canceled", outcome["venue_order_id"])
    assert ledger.index(cancel) < next(i for i, r in enumerate(ledger) if r["kind"] == "outcome")
    assert requests_besides_start(fake)[("DELETE", "/api/v3/order")] == 1


async def test_a_cancel_the_venue_keeps_refusing_does_not_stop_the_order_being_read(
        tmp_path: Path, fake: FakeBinance) -> None:
    # order_timeout_ms passes, and every cancel gets a 503; meanwhile the order fills.
    # The reads between cancels see it filled: one outcome, FILLED, and only a few
    # cancel attempts (each recorded), not one per loop.
    cancel = ("DELETE", "/api/v3/order")
    fake.inject("503_json", method="DELETE", path="/api/v3/order", times=1000)

    async def fill_after_the_first_cancel(daemon: Daemon) -> None:
        while fake.requests[cancel] < 1:
            await anyio.sleep(0.01)
        fake.fill_resting("BTC/USDT")

    intent = live_intent(1, order_type="limit", limit_price="49000", urgency="low")
    ledger = await run_live(tmp_path, fake, [intent], order_timeout_ms=200,
                            during=fill_after_the_first_cancel)
    assert outcome_of(ledger)["status"] == "FILLED"
    cancels = [r["body"] for r in ledger if r["kind"] == "order_cancel"]
    assert 1 <= len(cancels) <= 3 and all("503" in c["answer"] or "Internal" in c["answer"]
                                           for c in cancels)
    assert fake.requests[cancel] == len(cancels)


async def test_a_stop_cancels_at_once_whatever_backoff_a_refused_cancel_left(
        tmp_path: Path, fake: FakeBinance) -> None:
    # The first cancel (order_timeout_ms) gets a 503 and backs off; then the daemon
    # stops. The stop's own cancel goes at once, and while it too is backed off the
    # order is read at the poll pace, not in a tight loop; the third cancel lands.
    cancel, read = ("DELETE", "/api/v3/order"), ("GET", "/api/v3/order")
    fake.inject("503_json", method="DELETE", path="/api/v3/order", times=2)
    reads_at_stop: list[int] = []

    async def stop_after_the_first_cancel(daemon: Daemon) -> None:
        while fake.requests[cancel] < 1:
            await anyio.sleep(0.01)
        reads_at_stop.append(fake.requests[read])
        daemon.stopping.set()

    intent = live_intent(1, order_type="limit", limit_price="49000", urgency="low")
    ledger = await run_live(tmp_path, fake, [intent], order_timeout_ms=200, poll_ms=200,
                            during=stop_after_the_first_cancel)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_EXPIRED)
    whys = [(r["body"]["why"], "503" in r["body"]["answer"] or "Internal" in r["body"]["answer"])
            for r in ledger if r["kind"] == "order_cancel"]
    assert whys == [("order_timeout_ms", True), ("stopping", True), ("stopping", False)]
    # 0.8 s of backoff at a 200 ms poll: a handful of reads, not hundreds.
    assert fake.requests[read] - reads_at_stop[0] <= 10


async def test_an_unreachable_venue_fails_the_order_without_sending(
        tmp_path: Path, fake: FakeBinance) -> None:
    async def go_down(daemon: Daemon) -> None:
        # Take the venue away once the daemon is ready (the order is then sent).
        while not (daemon.live and daemon.live[0].ready.is_set()):
            await anyio.sleep(0.01)
        await fake.stop()

    ledger = await run_live(tmp_path, fake, [live_intent(1)], before=go_down)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == ("FAILED",
                                                      reasons.EXECUTION_NOT_AVAILABLE)
    assert fake.orders == []


async def test_a_stalled_venue_refuses_its_backlog_and_stalls_nothing_else(
        tmp_path: Path, fake: FakeBinance) -> None:
    """A stalled venue never grows an unbounded queue or holds up another venue: beyond in_flight
    and backlog it refuses VENUE_BACKLOG_FULL.
    """
    # Every order waits 2 s for its reply: one in flight, one waiting, the rest refused.
    fake.inject("timeout", times=3, delay=2.0)
    intents = [live_intent(n) for n in (1, 2, 3, 4)]
    intents.append(live_intent(5, venue="paper", urgency="medium"))
    paper_done_at: list[int] = []

    async def watch_paper(daemon: Daemon) -> None:
        while not any(r["kind"] == "outcome" and r["body"]["venue"] == "paper"
                      for r in (records(tmp_path / "ledger")
                                if (tmp_path / "ledger").exists() else [])):
            await anyio.sleep(0.01)
        # How many live outcomes were durable by then (the first reply is held 2 s).
        paper_done_at.append(sum(1 for r in records(tmp_path / "ledger")
                                 if r["kind"] == "outcome" and r["body"]["venue"] == "binance"
                                 and r["body"].get("reason") != reasons.VENUE_BACKLOG_FULL))

    ledger = await run_live(tmp_path, fake, intents, during=watch_paper, in_flight=1,
                            backlog=1, timeout_ms=5000)
    refused = [n for n in (1, 2, 3, 4) if outcome_of(ledger, n).get("reason")
               == reasons.VENUE_BACKLOG_FULL]
    assert refused == [3, 4]
    assert outcome_of(ledger, 3)["status"] == "REJECTED"
    assert [outcome_of(ledger, n)["status"] for n in (1, 2, 5)] == ["FILLED"] * 3
    # The paper fill was durable while the first live order was still unanswered.
    assert paper_done_at == [0]
    assert len(fake.orders) == 2


async def test_no_such_order_is_trusted_only_after_the_acceptance_window(
        tmp_path: Path, fake: FakeBinance) -> None:
    """A "no such order" is never trusted inside the acceptance window, so an order the venue places
    late is never sent twice.
    """
    # The venue answers 503 at once and places the order 0.3 s later: a lookup at
    # 20 ms finds nothing, and sending again then would fill twice.
    fake.inject("503_then_placed", delay=0.3)
    ledger = await run_live(tmp_path, fake, [live_intent(1)], acceptance_window_ms=1000)
    outcome = outcome_of(ledger)
    assert outcome["status"] == "FILLED"
    assert len(fake.orders) == 1
    assert requests_besides_start(fake) == {ORDER: 1, LOOKUP: 2, TRADES: 1}


async def test_a_stop_records_queued_orders_as_not_sent(tmp_path: Path,
                                                        fake: FakeBinance) -> None:
    """A stop never leaves a queued order without an outcome, and never sends it: it is FAILED
    EXECUTION_NOT_SENT.
    """
    fake.inject("timeout", delay=1.0)

    async def stop_once_sent(daemon: Daemon) -> None:
        while not fake.orders:
            await anyio.sleep(0.01)
        daemon.stopping.set()

    ledger = await run_live(tmp_path, fake, [live_intent(n) for n in (1, 2, 3)],
                            during=stop_once_sent, in_flight=1, backlog=4)
    assert outcome_of(ledger, 1)["status"] == "FILLED"
    for n in (2, 3):
        assert (outcome_of(ledger, n)["status"], outcome_of(ledger, n)["reason"]) == (
            "FAILED", reasons.EXECUTION_NOT_SENT)
        assert outcome_of(ledger, n)["detail"] == "not sent: the daemon was stopping"
    assert len(fake.orders) == 1
    assert ledger[-1]["kind"] == "stop"


async def test_a_restart_after_live_orders_recovers_them_and_sends_nothing_again(
        tmp_path: Path, fake: FakeBinance) -> None:
    """A restart never sends an order a second time nor leaves one without its outcome."""
    # Resting limits make their outcomes late: later lines' records come first.
    first = [live_intent(1, order_type="limit", limit_price="45000", urgency="low"),
             *(live_intent(n) for n in range(2, 8))]
    await run_live(tmp_path, fake, first, order_timeout_ms=300)
    second = [live_intent(n) for n in range(8, 11)]
    ledger = await run_live(tmp_path, fake, second, expect=10, name="b.jsonl")
    out = [r["body"]["intent_id"][-2:] for r in ledger if r["kind"] == "outcome"]
    assert sorted(out) == [f"{n:02d}" for n in range(1, 11)]
    assert len(fake.orders) == 10
    assert sum(1 for r in ledger if r["kind"] == "start") == 2


async def test_under_the_logical_clock_paper_keeps_tick_time_and_live_records_add_wall_time(
        tmp_path: Path, fake: FakeBinance) -> None:
    # A ccxt venue beside a paper venue, on the logical clock: ticks are the only
    # logical time on both planes; live records carry the wall clock besides.
    resting = live_intent(1, order_type="limit", limit_price="49000", urgency="low")
    intents = [{"kind": "tick", "time": 1000}, resting, {"kind": "tick", "time": 2000},
               live_intent(2, venue="paper", urgency="medium"), live_intent(3)]

    async def fill_after_the_rest(daemon: Daemon) -> None:
        # The resting order fills once the later lines have their outcomes, so its
        # own outcome is appended after records of time 2000.
        def done() -> int:
            return sum(1 for r in records(tmp_path / "ledger") if r["kind"] == "outcome") \
                if (tmp_path / "ledger").exists() else 0
        while done() < 2 or not fake.open_orders():
            await anyio.sleep(0.01)
        fake.fill_resting("BTC/USDT")

    before = time.time_ns()
    ledger = await run_live(tmp_path, fake, intents, during=fill_after_the_rest, expect=3)
    after = time.time_ns()
    assert next(r["body"]["clock"] for r in ledger if r["kind"] == "start") == "logical"
    paper = next(r for r in ledger if r["kind"] == "outcome" and r["body"]["venue"] == "paper")
    assert (paper["time"], paper["body"]["logical_time"]) == (2000, 2000)
    assert "wall_time" not in paper["body"]
    live = [r for r in ledger if r["kind"] in ("order", "outcome")
            and r["body"]["venue"] == "binance"]
    by = {(r["kind"], r["body"]["intent_id"][-1]): r for r in live}
    for n, tick in (("1", 1000), ("3", 2000)):
        order, outcome = by[("order", n)], by[("outcome", n)]
        assert order["time"] == outcome["time"] == outcome["body"]["logical_time"] == tick
        assert before <= order["body"]["wall_time"] <= outcome["body"]["wall_time"] <= after
    assert by[("outcome", "1")]["body"]["status"] == "FILLED"
    # The resting order's outcome came after a record of time 2000: logical time is
    # the intent's own, not the time at which the venue answered.
    assert live.index(by[("outcome", "1")]) > live.index(by[("outcome", "3")])

    # A restart resumes the clock at the largest time recorded (2000), not at the
    # last record's: a tick of 1500 goes back in time.
    ledger = await run_live(tmp_path, fake, [{"kind": "tick", "time": 1500}], expect=4,
                            name="b.jsonl")
    refused = [r["body"] for r in ledger if r["kind"] == "outcome"][-1]
    assert refused["reason"] == reasons.INPUT_CLOCK_REGRESSION


async def test_a_stop_during_a_lookup_records_the_send_and_the_restart_settles_it(
        tmp_path: Path, fake: FakeBinance) -> None:
    """A stop during a lookup never loses the send or leaves the order without an outcome: the
    restart settles it.
    """
    # The venue answers 503 and never places the order. The stop comes while execd
    # waits out the acceptance window: the send is recorded with its lookup pending,
    # the order stays unresolved, and the next start's lookup settles it.
    fake.inject("503_json")

    async def stop_during_the_window(daemon: Daemon) -> None:
        while fake.requests[LOOKUP] < 1:
            await anyio.sleep(0.01)
        daemon.stopping.set()

    ledger = await run_live(tmp_path, fake, [live_intent(1)], expect=0,
                            during=stop_during_the_window, acceptance_window_ms=3000)
    assert [(s["attempt"], s["lookup"]) for s in sends(ledger)] == [(1, "pending")]
    assert not [r for r in ledger if r["kind"] == "outcome"]
    ledger = await run_live(tmp_path, fake, [], expect=1, name="b.jsonl",
                            acceptance_window_ms=300)
    assert [(s["attempt"], s["answer"], s["lookup"]) for s in sends(ledger)] == [
        (1, "unknown", "pending"), (1, "unknown", "absent")]
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_NOT_SENT)
    assert fake.orders == [] and fake.posts[outcome["client_order_id"]] == 1


async def test_a_safety_sell_on_a_ccxt_venue_exits_the_positions_its_fills_made(
        tmp_path: Path) -> None:
    # The account starts with quote only: what it holds after the buys is exactly what
    # they filled, less the fees the venue took in the base asset.
    fake = fake_exchange(balances={"BTC": D("0"), "ETH": D("0"), "USDT": D("1000000")})
    await fake.start()
    answers: list[dict[str, Any]] = []

    async def halt_then_safety_sell(daemon: Daemon) -> None:
        while sum(1 for r in records(tmp_path / "ledger") if r["kind"] == "outcome") < 2:
            await anyio.sleep(0.01)
        # Seed 000: Safety Sell bypasses the lifecycle checks, a halt among them.
        for request in (Request("halt", reason="incident", actor="ops"),
                        Request("safety-sell", venue="binance", reason="incident",
                                actor="ops")):
            answers.append(await daemon._command(request))

    try:
        ledger = await run_live(tmp_path, fake, [live_intent(1),
                                                 live_intent(2, symbol="ETH/USDT",
                                                             quantity="0.5")],
                                during=halt_then_safety_sell, expect=4)
    finally:
        await fake.stop()
    assert all(answer["ok"] for answer in answers), answers
    [sell] = [r["body"] for r in ledger if r["kind"] == "safety_sell"]
    assert (sell["venue"], sell["orders"]) == ("binance", 2)
    exits = [r["body"] for r in ledger if r["kind"] == "outcome"
             and r["body"]["side"] == "sell"]
    assert sorted((o["symbol"], o["status"], o["filled_quantity"]) for o in exits) == [
        ("BTC/USDT", "FILLED", "0.00999"), ("ETH/USDT", "FILLED", "0.4995")]
    assert all(o["plane"] == "live" and o["venue_order_id"] for o in exits)
    # Market exits through the real ccxt, under the client ids the ledger recorded.
    orders = [r["body"] for r in ledger if r["kind"] == "order" and r["body"]["side"] == "sell"]
    assert {o["type"] for o in orders} == {"market"}
    venue = {o.clientOrderId: o for o in fake.orders}
    assert {(venue[o["client_order_id"]].side, venue[o["client_order_id"]].type)
            for o in orders} == {("SELL", "MARKET")}
    # Flat: the venue holds nothing of either asset any more, and neither does the
    # book that a restart rebuilds from the ledger.
    assert (fake.balance("BTC").free, fake.balance("ETH").free) == (0, 0)
    risk = Risk(config.load(tmp_path / "execd.toml").config)
    recover(tmp_path / "ledger", repair=False, risk=risk)
    assert risk.book.open_positions("binance") == []
