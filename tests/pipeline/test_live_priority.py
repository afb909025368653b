"""Priority in a live venue's backlog (README, "Execution algorithms", priority): while
every worker is busy, the orders waiting are sent highest priority first, then in the
order they came; each is sent once. The daemon, the real ccxt and a fake Binance on
127.0.0.1 in one event loop."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.binance import FakeBinance
from tests.live import live_intent
from tests.live_run import outcome_of, run_live


async def test_a_busy_venue_sends_its_waiting_orders_highest_priority_first(
        tmp_path: Path, fake: FakeBinance) -> None:
    # The first order's reply is held a second: the one worker is busy, the rest wait.
    fake.inject("timeout", delay=1.0)
    priorities = {1: 100, 2: 10, 3: 90, 4: 50, 5: 90, 6: 0}
    ledger = await run_live(tmp_path, fake,
                            [live_intent(n, priority=p) for n, p in priorities.items()],
                            in_flight=1, backlog=8)
    client = {r["body"]["client_order_id"]: int(r["body"]["intent_id"][-12:])
              for r in ledger if r["kind"] == "order"}
    sent = [client[order.clientOrderId] for order in fake.orders]
    assert sent == [1, 3, 5, 4, 2, 6]
    assert all(outcome_of(ledger, n)["status"] == "FILLED" for n in priorities)
    # The ledger keeps the intents' order: priority moves sends, not records.
    assert list(client.values()) == [1, 2, 3, 4, 5, 6]
