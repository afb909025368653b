"""Can it trade now, on the live plane (the real ccxt against the fake Binance): market
rules and the venue's status are read again every ``markets_refresh_ms``. A market that
Binance halts (``status: BREAK`` in exchangeInfo, so ccxt's ``active`` is false) after
start-up, or the platform in maintenance (GET /sapi/v1/system/status ``{"status": 1}``),
gives SKIPPED with its own reason and sends nothing; each change is one
``venue_status`` record; when the venue trades again, so does execd. A route passes a
venue in maintenance over. A status that cannot be read is not maintenance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from execd.app.daemon import Daemon
from execd.model import reasons
from execd.service.control import Request
from tests.fakes.binance import FakeBinance
from tests.helpers import drop, lines
from tests.live import fake_exchange, live_intent
from tests.live_run import outcome_of, run_live

STATUS = ("GET", "/sapi/v1/system/status")


async def _venue(daemon: Daemon, name: str = "binance") -> dict[str, Any]:
    status = await daemon._command(Request("status"))
    return dict(status["venues"][name])


async def _until(daemon: Daemon, done: Callable[[dict[str, Any]], bool]) -> None:
    with anyio.fail_after(10):
        while not done(await _venue(daemon)):
            await anyio.sleep(0.02)


def _statuses(ledger: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["body"] for r in ledger if r["kind"] == "venue_status"]


async def test_a_market_halted_after_start_up_is_skipped_until_it_trades_again(
        tmp_path: Path, fake: FakeBinance) -> None:
    inbox = tmp_path / "lakehouse" / "inbox"

    async def halt_then_resume(daemon: Daemon) -> None:
        while outcome_count(tmp_path) < 1:
            await anyio.sleep(0.02)
        fake.markets["BTCUSDT"].status = "BREAK"
        await _until(daemon, lambda v: v.get("inactive") == 1)
        drop(inbox, "b.jsonl", lines(live_intent(2)))
        while outcome_count(tmp_path) < 2:
            await anyio.sleep(0.02)
        fake.markets["BTCUSDT"].status = "TRADING"
        await _until(daemon, lambda v: v.get("inactive") == 0)
        drop(inbox, "c.jsonl", lines(live_intent(3)))

    ledger = await run_live(tmp_path, fake, [live_intent(1)], during=halt_then_resume,
                            expect=3, markets_refresh_ms=50)
    assert outcome_of(ledger, 1)["status"] == "FILLED"
    halted = outcome_of(ledger, 2)
    assert (halted["status"], halted["reason"]) == ("SKIPPED", reasons.VENUE_MARKET_INACTIVE)
    assert halted["plan"]["skip_reason"] == reasons.VENUE_MARKET_INACTIVE
    assert outcome_of(ledger, 3)["status"] == "FILLED"
    # Two orders reached the venue (1 and 3); the halted one was never sent.
    assert fake.requests[("POST", "/api/v3/order")] == 2
    assert [(s["status"], s.get("inactive", 0), s.get("halted", []), s.get("resumed", []))
            for s in _statuses(ledger)] == [("ok", 1, ["BTC/USDT"], []),
                                            ("ok", 0, [], ["BTC/USDT"])]


async def test_maintenance_skips_every_order_and_a_route_passes_the_venue_over(
        tmp_path: Path, fake: FakeBinance) -> None:
    backup = fake_exchange()
    await backup.start()
    inbox = tmp_path / "lakehouse" / "inbox"
    routed = live_intent(2, route="btc")
    del routed["venue"]

    async def maintenance(daemon: Daemon) -> None:
        while outcome_count(tmp_path) < 1:
            await anyio.sleep(0.02)
        fake.system_status = 1
        await _until(daemon, lambda v: v.get("venue_status") == "maintenance")
        drop(inbox, "b.jsonl", lines(routed, live_intent(3)))
        while outcome_count(tmp_path) < 3:
            await anyio.sleep(0.02)
        fake.system_status = 0
        await _until(daemon, lambda v: v.get("venue_status") == "ok")
        drop(inbox, "c.jsonl", lines(live_intent(4)))

    try:
        ledger = await run_live(
            tmp_path, fake, [live_intent(1)], during=maintenance, expect=4,
            markets_refresh_ms=50, extra=_backup(tmp_path, backup.url))
    finally:
        await backup.stop()
    assert outcome_of(ledger, 1)["status"] == "FILLED"
    # The route passed binance over (in maintenance) for backup.
    [route] = [r["body"] for r in ledger if r["kind"] == "route"]
    assert route["venue"] == "backup"
    assert route["hops"][0][0] == "binance" and reasons.VENUE_MAINTENANCE in route["hops"][0][1]
    assert outcome_of(ledger, 2)["status"] == "FILLED" and outcome_of(ledger, 2)["venue"] == (
        "backup")
    skipped = outcome_of(ledger, 3)
    assert (skipped["status"], skipped["reason"]) == ("SKIPPED", reasons.VENUE_MAINTENANCE)
    assert outcome_of(ledger, 4)["status"] == "FILLED"
    assert fake.requests[("POST", "/api/v3/order")] == 2
    assert backup.requests[("POST", "/api/v3/order")] == 1
    assert fake.requests[STATUS] >= 2
    assert [s["status"] for s in _statuses(ledger) if s["venue"] == "binance"] == [
        "maintenance", "ok"]


async def test_a_status_that_cannot_be_read_is_not_maintenance(
        tmp_path: Path, fake: FakeBinance) -> None:
    async def unreadable(daemon: Daemon) -> None:
        fake.inject("503_plain", path="/sapi/v1/system/status", method="GET", times=1000)
        while fake.requests[STATUS] < 3:
            await anyio.sleep(0.02)
        drop(tmp_path / "lakehouse" / "inbox", "b.jsonl", lines(live_intent(2)))

    ledger = await run_live(tmp_path, fake, [live_intent(1)], during=unreadable, expect=2,
                            markets_refresh_ms=30)
    assert outcome_of(ledger, 2)["status"] == "FILLED"
    assert _statuses(ledger) == []


def outcome_count(directory: Path) -> int:
    from tests.helpers import records

    ledger = directory / "ledger"
    return sum(1 for r in records(ledger) if r["kind"] == "outcome") if ledger.exists() else 0


def _backup(directory: Path, url: str) -> str:
    return f"""
[venues.backup]
plane = "live"
adapter = "ccxt"

[venues.backup.ccxt]
exchange = "binance"
credentials_file = "{directory / 'binance.json'}"
base_url = "{url}"
rate_limit_ms = 0
timeout_ms = 2000
poll_interval_ms = 20
lookup_delay_ms = 20
acceptance_window_ms = 300

[routes.btc]
venues = ["binance", "backup"]
"""
