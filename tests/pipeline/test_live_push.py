"""Orders followed by push: the daemon in-process, the real ccxt and ccxt.pro, the fake
Binance's user data stream on 127.0.0.1.

The poll interval is set far longer (60 s) than run_live's fail_after (30 s): an
outcome that arrives at all in these tests came by push or by a sweep, not by a poll.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from execd.app.daemon import Daemon
from tests.fakes.binance import FakeBinance
from tests.live import API_KEY, SECRET, live_intent
from tests.live_run import LOOKUP, outcome_of, requests_besides_start, run_live

NO_POLL = {"poll_ms": 60_000, "order_timeout_ms": 120_000}


def resting(n: int = 1) -> dict[str, Any]:
    """A limit buy under the market (50,000): it rests until the fake fills it."""
    return live_intent(n, urgency="medium", order_type="limit", limit_price="49000")


async def rests_while_listening(daemon: Daemon, fake: FakeBinance, count: int = 1) -> None:
    """Until ``count`` orders rest at the fake and the venue's stream listens."""
    while not (daemon.live and daemon.live[0].stream.state == "listening"
               and len(fake.open_orders()) >= count):
        await anyio.sleep(0.01)


async def test_a_resting_order_filled_later_gets_its_outcome_by_push(
        tmp_path: Path, fake: FakeBinance) -> None:
    async def fill(daemon: Daemon) -> None:
        await rests_while_listening(daemon, fake)
        assert daemon.live[0].status()["stream"] == "listening"
        fake.fill_resting("BTCUSDT")

    ledger = await run_live(tmp_path, fake, [resting()], during=fill, **NO_POLL)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["filled_quantity"], outcome["average_price"]) == (
        "FILLED", "0.01", "49000")
    # The outcome was read by REST: one read, woken by the pushed fill (the pushed
    # "new" event matched what the create reply said and woke nothing), and its fees
    # from one read of its trades.
    assert requests_besides_start(fake) == {("POST", "/api/v3/order"): 1, LOOKUP: 1,
                                            ("GET", "/api/v3/myTrades"): 1}
    assert fake.stream_connections == 1


async def test_a_partial_fill_then_the_rest_both_wake_the_tracker(
        tmp_path: Path, fake: FakeBinance) -> None:
    async def fill(daemon: Daemon) -> None:
        await rests_while_listening(daemon, fake)
        fake.fill_resting("BTCUSDT", Decimal("0.004"))
        while len(fake.requests) < 4 or fake.requests[LOOKUP] < 1:
            await anyio.sleep(0.01)
        fake.fill_resting("BTCUSDT")

    ledger = await run_live(tmp_path, fake, [resting()], during=fill, **NO_POLL)
    assert outcome_of(ledger)["status"] == "FILLED"
    assert fake.requests[LOOKUP] == 2


async def test_a_fill_while_the_stream_is_down_is_swept_after_it_reconnects(
        tmp_path: Path, fake: FakeBinance) -> None:
    async def drop_then_fill(daemon: Daemon) -> None:
        await rests_while_listening(daemon, fake)
        # The socket goes; the fill happens before anything can reconnect, so no
        # subscriber hears of it.
        fake.drop_streams()
        fake.fill_resting("BTCUSDT")
        assert fake.subscribers() == 0

    ledger = await run_live(tmp_path, fake, [resting()], during=drop_then_fill,
                            ccxt_extra="stream_retry_ms = 50", **NO_POLL)
    assert outcome_of(ledger)["status"] == "FILLED"
    assert fake.stream_connections == 2


async def test_a_missed_final_event_falls_back_to_polling(
        tmp_path: Path, fake: FakeBinance) -> None:
    async def fill_unheard(daemon: Daemon) -> None:
        await rests_while_listening(daemon, fake)
        fake.stream_fault("miss")
        fake.fill_resting("BTCUSDT")

    ledger = await run_live(tmp_path, fake, [resting()], during=fill_unheard,
                            poll_ms=300, order_timeout_ms=120_000)
    assert outcome_of(ledger)["status"] == "FILLED"
    # Nothing was pushed for the fill and the stream never dropped: the poll found it.
    assert fake.pushed[-1]["X"] == "NEW" and fake.stream_connections == 1


async def test_refused_subscriptions_are_retried_and_never_stop_the_venue(
        tmp_path: Path, fake: FakeBinance, capsys: pytest.CaptureFixture[str]) -> None:
    fake.stream_fault("refuse", times=3)

    async def fill(daemon: Daemon) -> None:
        await rests_while_listening(daemon, fake, count=1)
        fake.fill_resting("BTCUSDT")

    # A market order fills while the stream is still being refused; the resting one
    # gets its outcome by push once the stream listens.
    ledger = await run_live(tmp_path, fake, [live_intent(1), resting(2)], during=fill,
                            ccxt_extra="stream_retry_ms = 20", **NO_POLL)
    assert outcome_of(ledger, 1)["status"] == "FILLED"
    assert outcome_of(ledger, 2)["status"] == "FILLED"
    assert fake.stream_connections == 4
    # Each refusal is one warning, and no credential is in any of them.
    logged = capsys.readouterr().out
    assert logged.count("stream.failed") == 3, logged
    assert API_KEY not in logged and SECRET not in logged


async def test_without_a_stream_the_venue_polls(tmp_path: Path, fake: FakeBinance) -> None:
    # Off by config here: the same path as an exchange whose ccxt.pro class has no
    # watchOrders (test_order_stream.test_which_exchanges_offer_push).
    states = []

    async def fill(daemon: Daemon) -> None:
        while not (daemon.live and daemon.live[0].ready.is_set() and fake.open_orders()):
            await anyio.sleep(0.01)
        states.append(daemon.live[0].status()["stream"])
        fake.fill_resting("BTCUSDT")

    ledger = await run_live(tmp_path, fake, [resting()], during=fill, poll_ms=300,
                            ccxt_extra="stream = false")
    assert outcome_of(ledger)["status"] == "FILLED"
    assert states == ["off: stream = false"] and fake.stream_connections == 0
