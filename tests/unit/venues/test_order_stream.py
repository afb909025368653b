"""The order stream's core (which followed order an update wakes, what a failure or a
new subscription means) and the pieces of its shell that need no daemon."""

from __future__ import annotations

from typing import Any

import anyio
import ccxt.async_support as accxt

from execd.venues.ccxt.order_stream import StreamCore, Waker, offers_push, pro_twin, ws_base
from tests.fakes.binance import rewrite_urls
from tests.fakes.binance_setup import KEY, OPTIONS, SECRET, new_fake


def update(venue_id: str | None, client_id: str | None, status: str = "closed",
           filled: Any = 1.0) -> dict[str, Any]:
    return {"id": venue_id, "clientOrderId": client_id, "status": status, "filled": filled}


def test_an_update_wakes_its_order_by_venue_id_or_client_id() -> None:
    core = StreamCore(1.0)
    core.follow("a", "1")
    core.follow("b", None)
    core.follow("c", "3")
    assert core.pushed([update("1", "other"), update(None, "b"), update("9", "z")]) == ["a", "b"]
    # Once a read by REST gave the venue id, it matches by that too.
    core.known("b", {"id": "2", "status": "open", "filled": 0.0})
    assert core.pushed([update("2", None)]) == ["b"]
    # Two updates for one order wake it once.
    assert core.pushed([update("3", "c"), update("3", "c", filled=2.0)]) == ["c"]
    core.unfollow("a")
    assert core.pushed([update("1", "a")]) == [] and core.followed() == ["b", "c"]


def test_an_update_that_shows_what_rest_said_wakes_nothing() -> None:
    core = StreamCore(1.0)
    core.follow("a", "1")
    core.known("a", {"id": "1", "status": "open", "filled": 0.0})
    # The order's own "new" event, pushed after the create reply: no read.
    assert core.pushed([update("1", "a", "open", 0.0)]) == []
    assert core.pushed([update("1", "a", "open", "0.004")]) == ["a"]
    assert core.pushed([update("1", "a", "canceled", 0.0)]) == ["a"]
    # Unreadable updates wake (a read costs one request; a missed fill costs more).
    assert core.pushed([update("1", "a", None, 0.0)]) == ["a"]
    assert core.pushed([update("1", "a", "open", "n/a")]) == ["a"]


def test_failures_back_off_and_listening_sweeps_every_followed_order() -> None:
    core = StreamCore(0.5, max_retry_s=3.0)
    core.connecting()
    assert core.state == "connecting"
    assert [core.failed("NetworkError: gone") for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert core.state == "down: NetworkError: gone"
    core.connecting()
    assert core.state == "reconnecting (5)"
    core.follow("a", "1")
    core.follow("b", None)
    # Updates may have been lost while it did not listen: every order is read again.
    assert core.listening() == ["a", "b"]
    assert core.state == "listening" and core.failures == 0
    assert core.failed("x") == 0.5
    core.off("stream = false")
    assert core.state == "off: stream = false"


async def test_a_wake_is_kept_until_it_is_waited_for() -> None:
    waker = Waker()
    waker.wake()
    assert await waker.wait(10) is True      # returns at once: the wake was kept
    assert await waker.wait(0.01) is False   # and used up
    stop = anyio.Event()
    stop.set()
    assert await waker.wait(10, stop) is False


def test_which_exchanges_offer_push() -> None:
    assert offers_push("binance") and offers_push("okx") and offers_push("bybit")
    assert not offers_push("coincheck")   # a ccxt.pro class without watchOrders
    assert not offers_push("bitflyer")    # no ccxt.pro class at all
    assert ws_base("http://127.0.0.1:9") == "ws://127.0.0.1:9"
    assert ws_base("https://testnet.example") == "wss://testnet.example"


async def test_the_twin_takes_the_markets_keys_and_moved_urls() -> None:
    fake = new_fake()
    await fake.start()
    rest = accxt.binance({"apiKey": KEY, "secret": SECRET, "enableRateLimit": False,
                          "options": {**OPTIONS, "recvWindow": 4000}})
    rest.timeout_on_exit = 0
    rewrite_urls(rest, fake.url)
    pro: Any = None
    try:
        await rest.load_markets()
        pro = pro_twin(rest, fake.url)
        assert (pro.apiKey, pro.secret, pro.options["recvWindow"]) == (KEY, SECRET, 4000)
        assert pro.markets is not None and "BTC/USDT" in pro.markets
        ws = fake.url.replace("http://", "ws://")
        assert pro.urls["api"]["ws"]["ws-api"]["spot"] == ws + "/ws-api/v3"
        assert pro.urls["api"]["public"].startswith(fake.url)
        # Its markets came from the REST instance: no request of its own.
        assert fake.requests == {("GET", "/api/v3/exchangeInfo"): 1}
    finally:
        await rest.close()
        if pro is not None:
            pro.timeout_on_exit = 0
            await pro.close()
        await fake.stop()
