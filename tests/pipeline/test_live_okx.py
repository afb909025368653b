"""The live plane on OKX end to end: the daemon, the real ccxt ``okx`` class, a fake OKX.

The fake (tests/fakes/okx.py) follows OKX's v5 documentation: place-order replies
carry no state, refusals come back HTTP 200 with the reason in the order's
``sCode``, and its "result unknown" codes come at HTTP 400 (50004) and 500
(51149). The daemon runs in-process as in tests/pipeline/test_live.py, through the same
helpers (tests/live_run.py); the seeded SIGKILL test (tests/process/test_live_crash.py)
covers OKX through ``tests.live.VENUES``.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import anyio
import pytest

from execd.app.daemon import Daemon
from execd.config.schema import CcxtConfig, ConfigError
from execd.model import ids, reasons
from execd.venues.ccxt.credentials import load_credentials
from tests.fakes.okx import ORDER_PATH, FakeOkx
from tests.live import (
    API_KEY,
    OKX_PASSPHRASE,
    SECRET,
    fake_exchange,
    live_intent,
    place_directly,
)
from tests.live_run import outcome_of, run_live, sends

D = Decimal
ORDER = ("POST", ORDER_PATH)
LOOKUP = ("GET", "/api/v5/trade/order")
CANCEL = ("POST", "/api/v5/trade/cancel-order")
MARKETS = ("GET", "/api/v5/public/instruments")
BALANCE = ("GET", "/api/v5/account/balance")
CURRENCIES = ("GET", "/api/v5/asset/currencies")
# ccxt measures OKX's clock once (adjustForTimeDifference), for the expTime deadline.
TIME = ("GET", "/api/v5/public/time")
START = {MARKETS: 1, BALANCE: 1, TIME: 1}


def okx_intent(n: int, **fields: Any) -> dict[str, Any]:
    """:func:`tests.live.live_intent` on the OKX venue."""
    return live_intent(n, **{"venue": "okx", **fields})


async def run_okx(directory: Any, fake: FakeOkx, intents: list[dict[str, Any]],
                  **overrides: Any) -> list[dict[str, Any]]:
    """:func:`tests.pipeline.test_live.run_live` with the venue ``okx``."""
    return await run_live(directory, fake, intents, exchange="okx", **overrides)


def requests_besides_start(fake: FakeOkx, starts: int = 1) -> dict[tuple[str, str], int]:
    """The requests beyond start-up, once start-up is checked: markets and balance once each."""
    left = collections.Counter(fake.requests)
    assert all(left[k] == starts for k in START), fake.requests
    assert left[CURRENCIES] == 0, fake.requests
    for key in START:
        del left[key]
    return {k: v for k, v in left.items() if v}


def client_id(intent: dict[str, Any]) -> str:
    """The client order id execd gives ``intent``'s order on OKX (``clOrdId``)."""
    return ids.client_order_id(uuid.UUID(intent["intent_id"]), "okx", "x", 32)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOkx]:
    exchange = fake_exchange(exchange="okx")
    await exchange.start()
    yield exchange
    await exchange.stop()


async def test_a_market_order_fills_and_start_up_costs_two_requests(
        tmp_path: Any, fake: FakeOkx) -> None:
    ledger = await run_okx(tmp_path, fake, [okx_intent(1)])
    order = next(r["body"] for r in ledger if r["kind"] == "order")
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["filled_quantity"], outcome["average_price"]) == (
        "FILLED", "0.01", "50000")
    # OKX charges the fee in the currency received: base on a buy.
    assert outcome["fees"] == [["0.00001", "BTC"]]
    assert outcome["client_order_id"] == order["client_order_id"] == client_id(okx_intent(1))
    [placed] = fake.orders
    assert (placed.clOrdId, placed.ordType, placed.tgtCcy, placed.sz) == (
        order["client_order_id"], "market", "base_ccy", D("0.01"))
    assert outcome["venue_order_id"] == placed.ordId
    [sent] = sends(ledger)
    # The place-order reply carries no state: the order is read once to learn its fill.
    assert (sent["attempt"], sent["answer"], sent["venue_order_id"], sent.get("venue_status")) == (
        1, "placed", placed.ordId, None)
    # Start-up: markets in one request (no currencies request), balance once; the
    # order is one create and one read.
    assert requests_besides_start(fake) == {ORDER: 1, LOOKUP: 1}
    assert fake.posts == {order["client_order_id"]: 1}


async def test_a_resting_limit_is_followed_until_it_fills(tmp_path: Any, fake: FakeOkx) -> None:
    async def fill_later(daemon: Daemon) -> None:
        while not fake.open_orders():
            await anyio.sleep(0.01)
        await anyio.sleep(0.1)
        fake.fill_resting("BTC/USDT")

    intent = okx_intent(1, order_type="limit", limit_price="49000", urgency="low")
    ledger = await run_okx(tmp_path, fake, [intent], during=fill_later)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["average_price"]) == ("FILLED", "49000")
    assert outcome["slippage_bps"] == "-200.00"
    # Filled as maker: the fee is the maker fill's, in BTC.
    assert outcome["fees"] == [["0.00001", "BTC"]]
    [placed] = fake.orders
    assert (placed.ordType, placed.px, placed.state) == ("limit", D("49000"), "filled")
    extra = requests_besides_start(fake)
    assert extra[ORDER] == 1 and extra[LOOKUP] >= 2 and set(extra) == {ORDER, LOOKUP}


async def test_a_resting_limit_is_cancelled_after_the_order_timeout(
        tmp_path: Any, fake: FakeOkx) -> None:
    intent = okx_intent(1, order_type="limit", limit_price="49000", urgency="low")
    ledger = await run_okx(tmp_path, fake, [intent], order_timeout_ms=200)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_EXPIRED)
    assert "cancelled by execd after order_timeout_ms" in outcome["detail"]
    [placed] = fake.orders
    assert (placed.state, placed.cancelSource) == ("canceled", "1")
    # OKX's cancel reply says the request was taken (sCode 0) but not the state:
    # the record says so, and the order is read until it is final.
    [cancel] = [r for r in ledger if r["kind"] == "order_cancel"]
    assert (cancel["body"]["why"], cancel["body"]["answer"], cancel["body"]["venue_order_id"]) == (
        "order_timeout_ms", "accepted", placed.ordId)
    assert ledger.index(cancel) < next(i for i, r in enumerate(ledger) if r["kind"] == "outcome")
    assert requests_besides_start(fake)[CANCEL] == 1


async def test_a_market_order_short_of_liquidity_is_partially_filled(tmp_path: Any) -> None:
    # OKX cancels a market order's rest when the book runs out: state canceled,
    # accFillSz what it took.
    fake = fake_exchange(liquidity=D("0.004"), exchange="okx")
    await fake.start()
    try:
        ledger = await run_okx(tmp_path, fake, [okx_intent(1)])
    finally:
        await fake.stop()
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"], outcome["filled_quantity"]) == (
        "PARTIALLY_FILLED", reasons.EXECUTION_EXPIRED, "0.004")
    assert outcome["detail"] == "filled=0.004 of amount=0.01 (venue status canceled)"
    assert outcome["fees"] == [["0.000004", "BTC"]]
    assert [(o.state, o.accFillSz) for o in fake.orders] == [("canceled", D("0.004"))]


# Every reply that leaves the order's fate open on OKX, whether the venue took the
# order, and the ccxt class execd saw (it decides nothing: the status and code do).
FAULTS = [
    ("lost_reply", True, "ExchangeNotAvailable"),     # processed, connection dropped
    ("timeout", True, "RequestTimeout"),               # processed, reply held past timeout_ms
    ("503_json_placed", True, "OnMaintenance"),        # 5xx with a known code (50001)
    ("5xx_unknown_code_placed", True, "ExchangeError"),  # 51149 at HTTP 500, unmapped
    ("200_not_an_order_placed", True, "the reply is not an order"),  # a proxy's HTML page
    ("venue_busy_placed", True, "RequestTimeout"),     # 50004 at HTTP 400
    ("503_json", False, "OnMaintenance"),              # 5xx with a known code, not processed
    ("503_plain", False, "ExchangeNotAvailable"),      # 5xx with no JSON
    ("429", False, "RateLimitExceeded"),               # 50011
    ("drop", False, "ExchangeNotAvailable"),          # dropped before processing
]


@pytest.mark.parametrize(("fault", "placed", "seen"), FAULTS)
async def test_each_fault_gives_one_send_and_the_right_outcome(
        tmp_path: Any, fake: FakeOkx, fault: str, placed: bool, seen: str) -> None:
    fake.inject(fault, delay=3.0)
    ledger = await run_okx(tmp_path, fake, [okx_intent(1)], timeout_ms=1000)
    outcome = outcome_of(ledger)
    order = next(r["body"] for r in ledger if r["kind"] == "order")
    [sent] = sends(ledger)
    assert (sent["attempt"], sent["answer"], sent.get("resend", False)) == (1, "unknown", False)
    assert seen in sent["message"], sent["message"]
    assert fake.posts == {outcome["client_order_id"]: 1}
    if placed:
        # Looked up by clOrdId once; the order it finds is final (a market order).
        assert (outcome["status"], outcome["filled_quantity"]) == ("FILLED", "0.01")
        assert (sent["lookup"], sent["venue_order_id"]) == ("found", fake.orders[0].ordId)
        assert outcome["venue_order_id"] == fake.orders[0].ordId
        assert outcome["fees"] == [["0.00001", "BTC"]]
        assert requests_besides_start(fake) == {ORDER: 1, LOOKUP: 1}
    else:
        # Not found at once, and not again once the acceptance window has passed.
        assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_NOT_SENT)
        assert "sent 1 of send_attempts=1 times, not sent again" in outcome["detail"]
        assert sent["lookup"] == "absent" and fake.orders == []
        assert outcome["wall_time"] - order["wall_time"] >= 300 * 1_000_000
        assert requests_besides_start(fake) == {ORDER: 1, LOOKUP: 2}
    kinds = [r["kind"] for r in ledger]
    assert kinds.index("order") < kinds.index("order_attempt") < kinds.index("outcome")


@pytest.mark.parametrize(("fault", "placed", "seen"), FAULTS)
async def test_with_two_sends_an_unplaced_order_is_sent_again_and_fills(
        tmp_path: Any, fake: FakeOkx, fault: str, placed: bool, seen: str) -> None:
    fake.inject(fault, delay=3.0)
    ledger = await run_okx(tmp_path, fake, [okx_intent(1)], timeout_ms=1000, send_attempts=2)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["filled_quantity"]) == ("FILLED", "0.01")
    [order] = fake.orders
    assert order.clOrdId == outcome["client_order_id"] == outcome["client_order_id"]
    answers = [(s["attempt"], s["answer"], s.get("lookup"), s.get("resend", False))
               for s in sends(ledger)]
    if placed:
        assert answers == [(1, "unknown", "found", False)]
        assert fake.posts == {order.clOrdId: 1}
        assert requests_besides_start(fake) == {ORDER: 1, LOOKUP: 1}
    else:
        assert answers == [(1, "unknown", "absent", True), (2, "placed", None, False)]
        assert sends(ledger)[1]["venue_order_id"] == outcome["venue_order_id"] == order.ordId
        assert fake.posts == {order.clOrdId: 2}
        # Two lookups of the first send, one read of the second's order.
        assert requests_besides_start(fake) == {ORDER: 2, LOOKUP: 3}


async def test_a_venue_that_places_late_after_a_503_is_found_after_the_window(
        tmp_path: Any, fake: FakeOkx) -> None:
    # 50001 at once, the order placed 0.3 s later: the first lookup finds nothing,
    # the one after the acceptance window finds it, and nothing is sent again.
    fake.inject("503_then_placed", delay=0.3)
    ledger = await run_okx(tmp_path, fake, [okx_intent(1)], acceptance_window_ms=1000,
                           send_attempts=2)
    outcome = outcome_of(ledger)
    assert outcome["status"] == "FILLED"
    assert [(s["answer"], s["lookup"]) for s in sends(ledger)] == [("unknown", "found")]
    assert len(fake.orders) == 1 and fake.posts == {outcome["client_order_id"]: 1}
    assert requests_besides_start(fake) == {ORDER: 1, LOOKUP: 2}


async def test_an_order_request_okx_would_act_on_after_the_window_is_never_processed(
        tmp_path: Any, fake: FakeOkx) -> None:
    """On OKX, a request the venue gets round to after the acceptance window is never processed, so
    "no such order" after the window is final.
    """
    # 50001 at once, and the venue gets round to the request 1.5 s later, past the
    # 1 s acceptance window (inside OKX's own 30 s timestamp expiry). execd has
    # recorded it not sent by then; the expTime it put on the request (half the
    # window) keeps the venue from placing it after all.
    fake.inject("503_then_placed", delay=1.5)
    ledger = await run_okx(tmp_path, fake, [okx_intent(1)], acceptance_window_ms=1000)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_NOT_SENT)
    while fake._late:
        await anyio.sleep(0.05)
    assert fake.orders == [] and fake.expired == 1


async def test_the_order_deadline_is_on_okxs_clock_not_a_fast_local_one(
        tmp_path: Any, fake: FakeOkx) -> None:
    # OKX's clock runs 4 s behind ours (within its 30 s timestamp tolerance): a
    # deadline stamped by our clock would leave OKX 4 s more to act on a request
    # execd has recorded not sent. On OKX's clock the request expires in time.
    fake.time_offset_ms = -4000
    fake.inject("503_then_placed", delay=1.5)
    ledger = await run_okx(tmp_path, fake, [okx_intent(1)], acceptance_window_ms=1000)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_NOT_SENT)
    while fake._late:
        await anyio.sleep(0.05)
    assert fake.orders == [] and fake.expired == 1


async def test_a_duplicate_client_id_refusal_follows_the_order_the_venue_has(
        tmp_path: Any, fake: FakeOkx) -> None:
    # The venue already holds a pending order under the intent's clOrdId (sent by a
    # run whose record of it is gone): OKX refuses the second with sCode 51016 in an
    # HTTP 200 reply. That is not a refusal of the order: execd looks it up by
    # clOrdId, follows it, and sends nothing more.
    intent = okx_intent(1, order_type="limit", limit_price="49000", urgency="low")
    cid = client_id(intent)

    async def place_first(daemon: Daemon) -> None:
        await place_directly(fake, "okx", {"clientOrderId": cid})

    async def fill_after_the_duplicate(daemon: Daemon) -> None:
        while fake.posts[cid] < 2:
            await anyio.sleep(0.01)
        fake.fill_resting("BTC/USDT")

    ledger = await run_okx(tmp_path, fake, [intent], before=place_first,
                           during=fill_after_the_duplicate)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["client_order_id"]) == ("FILLED", cid)
    [sent] = sends(ledger)
    assert (sent["answer"], sent["lookup"]) == ("exists", "found")
    assert "Client order ID already exists" in sent["message"]
    [placed] = fake.orders
    assert (placed.clOrdId, outcome["venue_order_id"]) == (cid, placed.ordId)
    assert fake.posts[cid] == 2
    # Besides the daemon's start-up, the other client loaded markets once; two
    # creates (one each), the daemon's lookup and reads, and no cancel.
    fake.requests[MARKETS] -= 1
    extra = requests_besides_start(fake)
    assert extra[ORDER] == 2 and set(extra) == {ORDER, LOOKUP}


async def test_an_insufficient_balance_fails_at_once_with_the_venue_message(
        tmp_path: Any) -> None:
    fake = fake_exchange(balances={"BTC": D("0"), "USDT": D("10")}, exchange="okx")
    await fake.start()
    try:
        ledger = await run_okx(tmp_path, fake, [okx_intent(1)])
    finally:
        await fake.stop()
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reasons.EXECUTION_REJECTED)
    assert "Insufficient USDT balance" in outcome["detail"]
    [sent] = sends(ledger)
    assert (sent["answer"], sent.get("lookup")) == ("rejected", None)
    assert fake.orders == [] and requests_besides_start(fake) == {ORDER: 1}


async def test_a_restart_reconciles_an_order_left_without_an_outcome_by_its_client_id(
        tmp_path: Any, fake: FakeOkx) -> None:
    """On OKX, an order left without an outcome by a stop is never sent again after a restart: it is
    looked up by its clOrdId.
    """
    # The venue places the order and holds its reply; the stop's drain bound cuts
    # the call, so the ledger has the order record and nothing else: no send record,
    # no venue order id. The next start finds the order by clOrdId and records it.
    fake.inject("timeout", delay=600.0)

    async def stop_once_placed(daemon: Daemon) -> None:
        while not fake.orders:
            await anyio.sleep(0.01)
        daemon.stopping.set()

    ledger = await run_okx(tmp_path, fake, [okx_intent(1)], expect=0, during=stop_once_placed,
                           timeout_ms=60000, drain_timeout_ms=300)
    assert [r["kind"] for r in ledger if r["kind"] in ("order_attempt", "outcome")] == []
    assert ledger[-1]["kind"] == "stop"
    ledger = await run_okx(tmp_path, fake, [], expect=1, name="b.jsonl")
    outcome = outcome_of(ledger)
    [placed] = fake.orders
    assert (outcome["status"], outcome["venue_order_id"]) == ("FILLED", placed.ordId)
    assert outcome["client_order_id"] == placed.clOrdId
    [sent] = sends(ledger)
    assert (sent["attempt"], sent["answer"], sent["lookup"]) == (1, "not_recorded", "found")
    assert fake.posts == {placed.clOrdId: 1}
    # Two starts; one create; the restart's one lookup by clOrdId settled it.
    assert requests_besides_start(fake, starts=2) == {ORDER: 1, LOOKUP: 1}


def test_okx_credentials_from_the_environment_need_the_passphrase_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKX_API_KEY", API_KEY)
    monkeypatch.setenv("OKX_SECRET", SECRET)
    monkeypatch.delenv("OKX_PASSWORD", raising=False)
    table = CcxtConfig("okx", credentials_env="OKX")
    with pytest.raises(ConfigError) as caught:
        load_credentials("okx", table, "c.toml")
    assert str(caught.value) == (
        "c.toml: venues.okx.ccxt.credentials_env: expected OKX_PASSWORD set in the "
        "environment (okx signs every request with the API key's passphrase), found "
        "OKX_PASSWORD unset or empty")
    monkeypatch.setenv("OKX_PASSWORD", OKX_PASSPHRASE)
    assert load_credentials("okx", table, "c.toml").password == OKX_PASSPHRASE
    # Binance has no passphrase: its credentials never need one.
    assert load_credentials("v", CcxtConfig("binance", credentials_env="OKX"),
                            "c.toml").api_key == API_KEY
