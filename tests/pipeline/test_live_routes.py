"""Routes on the live plane: two fake Binances (the real ccxt, HTTP on 127.0.0.1), the
route ``btc`` preferring ``binance`` to ``backup``.

* The first venue goes down after start-up (its fake refuses connections): each order
  sent there fails EXECUTION_NOT_AVAILABLE, and what it left goes to the next venue,
  once, as a new order whose ``route`` record names the one it follows; after
  ``failure_limit`` such failures the first venue cools down, and the next routed intent
  passes it over at once (its hop says why).
* The first venue's backlog is full: the orders it refuses (VENUE_BACKLOG_FULL) are
  handed on the same way.

Exactly one order at the fakes per order handed on; one outcome per id.
"""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from execd.app.daemon import Daemon
from execd.model import reasons
from execd.sentinel.routes import handoff_id
from tests.helpers import drop, lines, records
from tests.live import fake_exchange, live_intent
from tests.live_run import run_live

D = Decimal


def _extra(directory: Path, backup_url: str, limits: str = "") -> str:
    return f"""
[venues.binance.limits]
failure_limit = 2
failure_window = 1000000
cooldown = 1000000
{limits}
[venues.backup]
plane = "live"
adapter = "ccxt"

[venues.backup.ccxt]
exchange = "binance"
credentials_file = "{directory / 'binance.json'}"
base_url = "{backup_url}"
rate_limit_ms = 0
timeout_ms = 2000
poll_interval_ms = 20
lookup_delay_ms = 20
acceptance_window_ms = 300

[routes.btc]
venues = ["binance", "backup"]
"""


def routed(n: int) -> dict[str, Any]:
    body = live_intent(n, route="btc")
    del body["venue"]
    return body


def _of(ledger: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r["body"] for r in ledger if r["kind"] == kind]


def _one_outcome_each(ledger: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    done = _of(ledger, "outcome")
    assert max(Counter(o["intent_id"] for o in done).values()) == 1
    return {o["intent_id"]: o for o in done}


async def test_a_venue_down_hands_each_order_on_once_then_cools_down(tmp_path: Path) -> None:
    primary, backup = fake_exchange(), fake_exchange()
    await primary.start()
    await backup.start()
    first = [routed(1)["intent_id"], routed(2)["intent_id"]]

    async def go_down(daemon: Daemon) -> None:
        while not all(v.ready.is_set() for v in daemon.live) or len(daemon.live) < 2:
            await anyio.sleep(0.01)
        await primary.stop()

    async def then_more(daemon: Daemon) -> None:
        # Once both are handed on and filled, the first venue is cooling down.
        handed = {str(handoff_id(uuid.UUID(i))) for i in first}
        while not handed <= {o["intent_id"] for o in _filled(tmp_path)}:
            await anyio.sleep(0.02)
        drop(tmp_path / "lakehouse" / "inbox", "b.jsonl", lines(routed(3)))

    try:
        ledger = await run_live(tmp_path, primary, [routed(1), routed(2)], expect=5,
                                before=go_down, during=then_more,
                                extra=_extra(tmp_path, backup.url))
    finally:
        await backup.stop()
    done = _one_outcome_each(ledger)
    routes = _of(ledger, "route")
    assert primary.orders == []
    assert len(backup.orders) == 3
    assert len({o.clientOrderId for o in backup.orders}) == 3
    for n in (1, 2):
        original = routed(n)["intent_id"]
        assert (done[original]["status"], done[original]["reason"], done[original]["venue"]
                ) == ("FAILED", reasons.EXECUTION_NOT_AVAILABLE, "binance")
        rest = str(handoff_id(uuid.UUID(original)))
        assert (done[rest]["status"], done[rest]["venue"], done[rest]["filled_quantity"]) == (
            "FILLED", "backup", "0.01")
        # Its line is the first order's, whose outcome moved the file's progress.
        assert "source" not in done[rest] and "source" in done[original]
        [hand] = [r for r in routes if r.get("after") == original]
        assert (hand["intent_id"], hand["venue"], hand["quantity"], hand["hops"]) == (
            rest, "backup", "0.01", [])
    [third] = [r for r in routes if r["intent_id"] == routed(3)["intent_id"]]
    [(passed, why)] = third["hops"]
    assert passed == "binance" and why.startswith(reasons.RISK_VENUE_COOLDOWN)
    assert third["venue"] == "backup"
    assert done[routed(3)["intent_id"]]["status"] == "FILLED"


def _filled(directory: Path) -> list[dict[str, Any]]:
    ledger = directory / "ledger"
    if not ledger.exists():
        return []
    return [r["body"] for r in records(ledger)
            if r["kind"] == "outcome" and r["body"]["status"] == "FILLED"]


async def test_orders_a_full_backlog_refuses_go_to_the_next_venue(tmp_path: Path) -> None:
    primary, backup = fake_exchange(), fake_exchange()
    await primary.start()
    await backup.start()
    # Every order at the first venue waits 2 s for its reply: one in flight, one
    # waiting; the rest are refused there and handed on.
    primary.inject("timeout", times=3, delay=2.0)
    intents = [routed(n) for n in (1, 2, 3, 4)]
    try:
        ledger = await run_live(tmp_path, primary, intents, expect=6, in_flight=1, backlog=1,
                                timeout_ms=5000, extra=_extra(tmp_path, backup.url))
    finally:
        await backup.stop()
        await primary.stop()
    done = _one_outcome_each(ledger)
    full = [n for n in (1, 2, 3, 4)
            if done[routed(n)["intent_id"]].get("reason") == reasons.VENUE_BACKLOG_FULL]
    assert full == [3, 4]
    assert len(primary.orders) == 2 and len(backup.orders) == 2
    for n in full:
        rest = str(handoff_id(uuid.UUID(routed(n)["intent_id"])))
        assert (done[rest]["status"], done[rest]["venue"]) == ("FILLED", "backup")


async def test_a_venue_with_no_backlog_but_free_workers_takes_the_order(
        tmp_path: Path) -> None:
    primary, backup = fake_exchange(), fake_exchange()
    await primary.start()
    await backup.start()
    try:
        ledger = await run_live(tmp_path, primary, [routed(1)], in_flight=4, backlog=0,
                                extra=_extra(tmp_path, backup.url))
    finally:
        await backup.stop()
        await primary.stop()
    [route] = _of(ledger, "route")
    assert (route["venue"], route["hops"]) == ("binance", [])
    assert len(primary.orders) == 1 and backup.orders == []
