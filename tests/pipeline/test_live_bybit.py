"""The live plane on Bybit end to end: the daemon, the real ccxt ``bybit``, the fake Bybit.

The fake (tests/fakes/bybit.py) follows Bybit's v5 documentation for a unified
account's spot trading. The helpers are test_live.py's (tests/live_run.py): what is
proved here is that the same promises hold on a second exchange, whose replies and
lookups differ.
"""

from __future__ import annotations

import collections
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from execd.app.daemon import Daemon
from execd.model import ids, reasons
from tests.fakes.bybit import CREATE_PATH, FakeBybit
from tests.live import fake_exchange, live_intent, place_directly
from tests.live_run import outcome_of, run_live, sends

D = Decimal
VENUE = "bybit"
ORDER = ("POST", CREATE_PATH)
OPEN = ("GET", "/v5/order/realtime")
HISTORY = ("GET", "/v5/order/history")
CANCEL = ("POST", "/v5/order/cancel")
TRADES = ("GET", "/v5/execution/list")
# Start-up: the spot instruments once, the unified wallet once; no coin list
# (/v5/asset/coin/query-info) and no account probing (/v5/user/query-api,
# /v5/account/info): the capability table tells ccxt the account is unified.
START = {("GET", "/v5/market/instruments-info"): 1, ("GET", "/v5/account/wallet-balance"): 1}


def intent(n: int, **fields: Any) -> dict[str, Any]:
    """A critical (market) buy of 0.01 BTC on the Bybit venue."""
    return live_intent(n, venue=VENUE, **fields)


def resting(n: int = 1) -> dict[str, Any]:
    """A limit buy under the market (49,000 against 50,000): it rests."""
    return intent(n, order_type="limit", limit_price="49000", urgency="low")


async def bybit_run(directory: Path, fake: FakeBybit, intents: list[dict[str, Any]],
                    **overrides: Any) -> list[dict[str, Any]]:
    """test_live.run_live with the venue on the fake Bybit."""
    return await run_live(directory, fake, intents, exchange=VENUE, **overrides)


def requests_besides_start(fake: FakeBybit) -> dict[tuple[str, str], int]:
    """The fake's request counts, less exactly one start-up's."""
    left = collections.Counter(fake.requests)
    left.subtract(START)
    assert all(v == 0 for k, v in left.items() if k in START), fake.requests
    return {k: v for k, v in left.items() if v}


@pytest.fixture
async def fake() -> Any:
    exchange = fake_exchange(exchange=VENUE)
    await exchange.start()
    yield exchange
    await exchange.stop()


async def test_a_market_order_fills_and_start_up_costs_two_requests(
        tmp_path: Path, fake: FakeBybit) -> None:
    ledger = await bybit_run(tmp_path, fake, [intent(1)])
    order = next(r["body"] for r in ledger if r["kind"] == "order")
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["filled_quantity"], outcome["average_price"]) == (
        "FILLED", "0.01", "50000")
    # Bybit takes a spot buy's fee in the base coin.
    assert outcome["fees"] == [["0.00001", "BTC"]]
    [placed] = fake.orders
    assert (placed.orderLinkId, placed.marketUnit, placed.qty) == (
        order["client_order_id"], "baseCoin", D("0.01"))
    assert outcome["client_order_id"] == order["client_order_id"]
    assert outcome["venue_order_id"] == placed.orderId
    [sent] = sends(ledger)
    assert (sent["answer"], sent["venue_order_id"]) == ("placed", placed.orderId)
    # Bybit's create reply holds only the ids: one read of the order gives its state.
    assert requests_besides_start(fake) == {ORDER: 1, OPEN: 1}
    start = next(r["body"] for r in ledger if r["kind"] == "start")
    assert start["planes"] == {VENUE: "live", "paper": "paper"}


async def test_a_resting_limit_is_followed_until_it_fills(tmp_path: Path,
                                                          fake: FakeBybit) -> None:
    async def fill_later(daemon: Daemon) -> None:
        while not fake.open_orders():
            await anyio.sleep(0.01)
        await anyio.sleep(0.1)
        fake.fill_resting("BTC/USDT")

    ledger = await bybit_run(tmp_path, fake, [resting()], during=fill_later)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["average_price"]) == ("FILLED", "49000")
    assert outcome["slippage_bps"] == "-200.00"
    assert outcome["fees"] == [["0.00001", "BTC"]]
    assert fake.orders[0].orderStatus == "Filled"
    extra = requests_besides_start(fake)
    assert extra[ORDER] == 1 and extra[OPEN] >= 2 and set(extra) == {ORDER, OPEN}


async def test_a_resting_limit_is_cancelled_after_the_order_timeout(
        tmp_path: Path, fake: FakeBybit) -> None:
    ledger = await bybit_run(tmp_path, fake, [resting()], order_timeout_ms=200)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_EXPIRED)
    assert "cancelled by execd after order_timeout_ms" in outcome["detail"]
    assert fake.orders[0].orderStatus == "Cancelled"
    [cancel] = [r["body"] for r in ledger if r["kind"] == "order_cancel"]
    # Bybit's cancel reply holds only the ids: the record says the venue took it.
    assert (cancel["why"], cancel["answer"], cancel["venue_order_id"]) == (
        "order_timeout_ms", "accepted", outcome["venue_order_id"])
    assert requests_besides_start(fake)[CANCEL] == 1
    # What the order held is free again.
    assert fake.balance("USDT").locked == 0


async def test_a_resting_limit_partly_filled_then_cancelled_is_partially_filled(
        tmp_path: Path, fake: FakeBybit) -> None:
    async def fill_part(daemon: Daemon) -> None:
        while not fake.open_orders():
            await anyio.sleep(0.01)
        fake.fill_resting("BTC/USDT", D("0.004"))

    ledger = await bybit_run(tmp_path, fake, [resting()], during=fill_part,
                             order_timeout_ms=300)
    outcome = outcome_of(ledger)
    assert fake.orders[0].orderStatus == "PartiallyFilledCanceled"
    assert (outcome["status"], outcome["reason"], outcome["filled_quantity"]) == (
        "PARTIALLY_FILLED", reasons.EXECUTION_EXPIRED, "0.004")
    assert outcome["average_price"] == "49000"
    assert outcome["fees"] == [["0.000004", "BTC"]]
    assert "cancelled by execd after order_timeout_ms" in outcome["detail"]


async def test_a_market_order_the_book_fills_in_part_is_partially_filled(
        tmp_path: Path) -> None:
    # Bybit ends a spot market order it could not fill in full PartiallyFilledCanceled.
    fake = fake_exchange(liquidity=D("0.004"), exchange=VENUE)
    await fake.start()
    try:
        ledger = await bybit_run(tmp_path, fake, [intent(1)])
    finally:
        await fake.stop()
    assert fake.orders[0].orderStatus == "PartiallyFilledCanceled"
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"], outcome["filled_quantity"]) == (
        "PARTIALLY_FILLED", reasons.EXECUTION_EXPIRED, "0.004")
    assert outcome["fees"] == [["0.000004", "BTC"]]


# Every reply that leaves the order's fate open, and whether the venue took the order.
FAULTS = [
    ("lost_reply", True),               # placed, connection closed before the reply
    ("timeout", True),                  # placed, the reply later than timeout_ms
    ("503_json_placed", True),          # HTTP 503 + 10016 "Server error."
    ("5xx_unknown_code_placed", True),  # HTTP 502 + 10000, a code ccxt does not map
    ("200_not_an_order_placed", True),  # HTTP 200, a proxy's HTML page
    ("venue_busy_placed", True),        # HTTP 200 + 170146 "Order creation timeout"
    ("server_timeout_placed", True),    # HTTP 200 + 10000 "Server Timeout"
    ("503_json", False),                # HTTP 503 + 10016, not processed
    ("503_plain", False),               # HTTP 503, HTML: no JSON code
    ("429", False),                     # HTTP 200 + 10006 "Too many visits"
    ("429_http", False),                # HTTP 429, plain text
    ("403_ip_limit", False),            # HTTP 403, Bybit's IP rate limit
    ("drop", False),                    # connection closed before anything
]


@pytest.mark.parametrize(("fault", "placed"), FAULTS)
async def test_each_fault_gives_one_send_and_one_outcome_by_default(
        tmp_path: Path, fake: FakeBybit, fault: str, placed: bool) -> None:
    """On Bybit, a reply that leaves the order's fate open never leads to a second send by default:
    one send, a lookup, one outcome.
    """
    fake.inject(fault, delay=3.0)
    ledger = await bybit_run(tmp_path, fake, [intent(1)], timeout_ms=1000)
    outcome = outcome_of(ledger)
    [sent] = sends(ledger)
    assert (sent["attempt"], sent["answer"], sent.get("resend", False)) == (1, "unknown", False)
    assert sent["message"]
    if placed:
        # Found by orderLinkId in the first list call, already final: nothing more.
        assert outcome["status"] == "FILLED" and outcome["fees"] == [["0.00001", "BTC"]]
        assert (sent["lookup"], sent["venue_order_id"]) == ("found", outcome["venue_order_id"])
        assert [o.orderLinkId for o in fake.orders] == [outcome["client_order_id"]]
        assert requests_besides_start(fake) == {ORDER: 1, OPEN: 1}
    else:
        # Not in the open-and-recent list nor in the history, at once and again after
        # the acceptance window; then not sent again.
        assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_NOT_SENT)
        assert "sent 1 of send_attempts=1 times, not sent again" in outcome["detail"]
        assert sent["lookup"] == "absent" and fake.orders == []
        assert requests_besides_start(fake) == {ORDER: 1, OPEN: 2, HISTORY: 2}
    assert fake.posts[outcome["client_order_id"]] == 1
    kinds = [r["kind"] for r in ledger]
    assert kinds.index("order") < kinds.index("order_attempt") < kinds.index("outcome")


@pytest.mark.parametrize(("fault", "placed"), FAULTS)
async def test_with_two_send_attempts_only_an_unplaced_order_is_sent_again(
        tmp_path: Path, fake: FakeBybit, fault: str, placed: bool) -> None:
    fake.inject(fault, delay=3.0)
    ledger = await bybit_run(tmp_path, fake, [intent(1)], timeout_ms=1000, send_attempts=2)
    outcome = outcome_of(ledger)
    assert outcome["status"] == "FILLED"
    assert [o.orderLinkId for o in fake.orders] == [outcome["client_order_id"]]
    answers = [(s["attempt"], s["answer"], s.get("lookup"), s.get("resend", False))
               for s in sends(ledger)]
    if placed:
        assert answers == [(1, "unknown", "found", False)]
        assert requests_besides_start(fake) == {ORDER: 1, OPEN: 1}
    else:
        assert answers == [(1, "unknown", "absent", True), (2, "placed", None, False)]
        assert sends(ledger)[1]["venue_order_id"] == outcome["venue_order_id"]
        # The second send's reply holds only the ids: one read of it follows.
        assert requests_besides_start(fake) == {ORDER: 2, OPEN: 3, HISTORY: 2}


async def test_a_documented_refusal_fails_at_once_with_the_venue_message(
        tmp_path: Path) -> None:
    fake = fake_exchange(balances={"BTC": D("0"), "USDT": D("10")}, exchange=VENUE)
    await fake.start()
    try:
        ledger = await bybit_run(tmp_path, fake, [intent(1)])
    finally:
        await fake.stop()
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_REJECTED)
    assert "Insufficient balance" in outcome["detail"]
    [sent] = sends(ledger)
    assert (sent["answer"], sent.get("lookup")) == ("rejected", None)
    assert fake.orders == [] and requests_besides_start(fake) == {ORDER: 1}


async def test_a_timestamp_outside_the_window_is_a_refusal(tmp_path: Path,
                                                           fake: FakeBybit) -> None:
    # 10002: the request was outside recv_window, so Bybit did not process it.
    fake.inject("clock")
    outcome = outcome_of(await bybit_run(tmp_path, fake, [intent(1)]))
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_REJECTED)
    assert "recv_window" in outcome["detail"]
    assert fake.orders == [] and requests_besides_start(fake) == {ORDER: 1}


async def test_a_duplicate_client_id_refusal_follows_the_order_the_venue_has(
        tmp_path: Path, fake: FakeBybit) -> None:
    # The venue already holds an open order under the intent's orderLinkId (sent by a
    # run whose record of it is gone): 170141 is not a refusal of the order. execd
    # looks it up, follows it until it fills, and sends nothing more.
    first = resting()
    client_id = ids.client_order_id(uuid.UUID(first["intent_id"]), VENUE, "x", 32)

    async def place_first(daemon: Daemon) -> None:
        await place_directly(fake, "bybit", {"orderLinkId": client_id})

    async def fill_after_the_duplicate(daemon: Daemon) -> None:
        while fake.requests[ORDER] < 2:
            await anyio.sleep(0.01)
        fake.fill_resting("BTC/USDT")

    ledger = await bybit_run(tmp_path, fake, [first], before=place_first,
                             during=fill_after_the_duplicate)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["client_order_id"]) == ("FILLED", client_id)
    [sent] = sends(ledger)
    assert (sent["answer"], sent["lookup"]) == ("exists", "found")
    assert "Duplicate clientOrderId" in sent["message"]
    assert [o.orderLinkId for o in fake.orders] == [client_id]
    assert fake.posts[client_id] == 2
    assert outcome["venue_order_id"] == fake.orders[0].orderId


async def test_a_restart_reconciles_an_order_left_without_an_outcome_by_order_link_id(
        tmp_path: Path, fake: FakeBybit) -> None:
    """On Bybit, an order left without an outcome by a stop is never sent again after a restart: it
    is looked up by its orderLinkId.
    """
    # The venue placed the order and holds its reply past the drain bound: the stop
    # leaves it in doubt. Before the next start, 500 later orders end, so the order
    # is no longer in /v5/order/realtime's recent list: only the history has it.
    fake.inject("timeout", delay=30.0)

    async def stop_once_placed(daemon: Daemon) -> None:
        while not fake.orders:
            await anyio.sleep(0.01)
        daemon.stopping.set()

    ledger = await bybit_run(tmp_path, fake, [intent(1)], expect=0, during=stop_once_placed,
                             timeout_ms=30000, drain_timeout_ms=200)
    assert not [r for r in ledger if r["kind"] == "outcome"]
    [placed] = fake.orders
    for n in range(500):
        fake._place({"category": "spot", "symbol": "BTCUSDT", "side": "Buy",
                     "orderType": "Market", "qty": "0.001", "marketUnit": "baseCoin",
                     "orderLinkId": f"other-{n}"})
    fake.requests.clear()
    ledger = await bybit_run(tmp_path, fake, [], expect=1, name="b.jsonl")
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["client_order_id"], outcome["venue_order_id"]) == (
        "FILLED", placed.orderLinkId, placed.orderId)
    assert fake.posts[placed.orderLinkId] == 1
    # The send the stopped run could not record is recorded, with what the lookup found.
    assert [(s["attempt"], s["answer"], s["lookup"]) for s in sends(ledger)] == [
        (1, "not_recorded", "found")]
    # Start-up, then one look in each list by orderLinkId; nothing sent.
    assert requests_besides_start(fake) == {OPEN: 1, HISTORY: 1}



async def test_a_lookup_answered_by_a_proxy_page_is_not_taken_for_no_such_order(
        tmp_path: Path, fake: FakeBybit) -> None:
    # The reply to the create is lost after the venue placed the order, and the first
    # lookups by orderLinkId get a proxy's HTML page with HTTP 200. ccxt reads such a
    # page as an empty list; taken for "no such order" it would record a filled order
    # FAILED EXECUTION_NOT_SENT. It is a lookup that failed, and is asked again.
    fake.inject("lost_reply")
    fake.inject("200_not_an_order_placed", method="GET", path=OPEN[1], times=2)
    fake.inject("200_not_an_order_placed", method="GET", path=HISTORY[1], times=2)
    ledger = await bybit_run(tmp_path, fake, [intent(1)])
    outcome = outcome_of(ledger)
    assert outcome["status"] == "FILLED"
    [sent] = sends(ledger)
    assert (sent["answer"], sent["lookup"], sent["venue_order_id"]) == (
        "unknown", "found", outcome["venue_order_id"])
    assert fake.pending_faults() == 2  # the history was never asked: no false "absent"
    assert requests_besides_start(fake) == {ORDER: 1, OPEN: 3}


async def test_an_order_that_left_the_recent_list_while_followed_is_read_from_the_history(
        tmp_path: Path, fake: FakeBybit) -> None:
    # An order is followed by its id through /v5/order/realtime, which holds open
    # orders and only the 500 latest ended ones. If 500 other orders end between two
    # reads (a busy account, or reads backed off after failures), the read says "not
    # found": the order is then asked for by orderLinkId, which reaches the history.
    async def fill_then_bury(daemon: Daemon) -> None:
        while not fake.open_orders():
            await anyio.sleep(0.01)
        fake.fill_resting("BTC/USDT")
        for n in range(500):
            fake._place({"category": "spot", "symbol": "BTCUSDT", "side": "Buy",
                         "orderType": "Market", "qty": "0.001", "marketUnit": "baseCoin",
                         "orderLinkId": f"other-{n}"})

    ledger = await bybit_run(tmp_path, fake, [resting()], during=fill_then_bury,
                             poll_ms=200)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["venue_order_id"]) == ("FILLED", "1")
    assert outcome["fees"] == [["0.00001", "BTC"]]
    assert requests_besides_start(fake)[HISTORY] == 1
