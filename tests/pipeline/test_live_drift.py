"""What the venue holds, on the live plane (the real ccxt against the fake Binance):
the account's balances are read at start-up and every ``holdings_ms``; a quiet read
(no order in flight) is compared with the ledger. A balance changed behind execd's
back is a ``drift`` record, the drift gauge, and with ``action = "reduce"`` trading
goes to REDUCING; a Safety Sell ``--basis venue`` sells what the venue holds, not only
execd's own fills. A read while an order rests is not compared.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger.recovery import recover
from execd.sentinel.risk import Risk
from execd.service.control import Request
from tests.fakes.binance import FakeBinance
from tests.helpers import records
from tests.live import fake_exchange, live_intent
from tests.live_run import outcome_of, run_live

D = Decimal
REDUCE = """
[venues.binance.drift]
action = "reduce"
"""


def _kind(directory: Path, kind: str) -> list[dict[str, Any]]:
    ledger = directory / "ledger"
    return [r["body"] for r in records(ledger) if r["kind"] == kind] if ledger.exists() else []


async def _until(done: Callable[[], bool]) -> None:
    with anyio.fail_after(15):
        while not done():
            await anyio.sleep(0.02)


async def test_a_balance_changed_behind_execds_back_is_drift_and_reduces(
        tmp_path: Path) -> None:
    fake = fake_exchange(balances={"BTC": D("1"), "USDT": D("1000000")})
    await fake.start()
    answers: list[dict[str, Any]] = []
    seen: dict[str, Any] = {}

    async def drift_then_sell(daemon: Daemon) -> None:
        # The buy fills: the next quiet read fixes the baseline (1 BTC besides execd's).
        await _until(lambda: any(d["state"] == "baseline" for d in _kind(tmp_path, "drift")))
        fake.balances["BTC"].free += D("0.5")  # a deposit execd knows nothing of
        await _until(lambda: any(d["state"] == "drift" for d in _kind(tmp_path, "drift")))
        await _until(lambda: any(s["state"] == "REDUCING"
                                 for s in _kind(tmp_path, "trading_state")))
        status = await daemon._command(Request("status"))
        seen["state"] = status["state"]
        seen["gauge"] = dict(daemon.risk.drift.drifting) if daemon.risk else {}
        # A read older than the operator allows is not sold from: nothing is recorded.
        stale = await daemon._command(Request(
            "safety-sell", venue="binance", reason="flatten the account", actor="ops",
            basis="venue", max_age=1e-9))
        seen["stale"] = stale
        answers.append(await daemon._command(Request(
            "safety-sell", venue="binance", reason="flatten the account", actor="ops",
            basis="venue")))

    try:
        ledger = await run_live(tmp_path, fake, [live_intent(1)], during=drift_then_sell,
                                expect=2, holdings_ms=50, extra=REDUCE)
    finally:
        await fake.stop()
    assert outcome_of(ledger, 1)["status"] == "FILLED"
    drifts = [r["body"] for r in ledger if r["kind"] == "drift"]
    base, drift = drifts[0], drifts[1]
    # 0.01 bought, less the fee in BTC: the ledger holds 0.00999, the account 1.00999.
    assert (D(base["baseline"]), D(base["ledger_low"])) == (D(1), D("0.00999"))
    assert (drift["asset"], D(drift["venue_quantity"]), drift["action"]) == (
        "BTC", D("1.50999"), "reduce")
    assert seen["state"] == "REDUCING"
    assert seen["gauge"] == {("binance", "BTC"): D("0.5")}
    [state] = [r["body"] for r in ledger if r["kind"] == "trading_state"]
    assert (state["state"], state["actor"]) == ("REDUCING", "drift")
    # The drift record is after the holdings record it compared.
    seqs = {r["seq"]: r for r in ledger}
    assert seqs[drift["holdings"]]["kind"] == "holdings"
    # The Safety Sell sold what the venue held (free), not the ledger's 0.00999.
    assert not seen["stale"]["ok"], seen["stale"]
    assert "its last holdings read (record seq " in seen["stale"]["error"]
    assert "old, more than --max-age 1e-09 s" in seen["stale"]["error"]
    [answer] = answers
    assert answer["ok"], answer
    [sell] = [r["body"] for r in ledger if r["kind"] == "safety_sell"]
    assert sell["basis"] == "venue" and seqs[sell["holdings"]]["kind"] == "holdings"
    [exit_] = [r["body"] for r in ledger if r["kind"] == "outcome" and r["body"]["side"] == "sell"]
    assert (exit_["status"], D(exit_["filled_quantity"])) == ("FILLED", D("1.50999"))
    assert fake.balance("BTC").free == 0
    # A restart finds the baseline, the drift in force and the last holdings again.
    risk = Risk(config.load(tmp_path / "execd.toml").config)
    recover(tmp_path / "ledger", repair=False, risk=risk)
    assert risk.drift.baselines == {("binance", "BTC"): D(1)}
    assert ("binance", "BTC") in risk.drift.drifting
    last = [r for r in ledger if r["kind"] == "holdings"][-1]
    assert risk.drift.held["binance"].seq == last["seq"]
    assert risk.state == "REDUCING"


async def test_a_read_while_an_order_rests_is_not_compared(
        tmp_path: Path, fake: FakeBinance) -> None:
    async def rest_then_fill(daemon: Daemon) -> None:
        await _until(lambda: bool(fake.open_orders()))
        # The resting buy locks quote: the holdings change, read while busy.
        await _until(lambda: any(not h.get("quiet") for h in _kind(tmp_path, "holdings")
                                 if h["why"] == "poll"))
        # With baseline = "zero" every BTC the account holds would be drift, were a
        # read compared while the order rests.
        await anyio.sleep(0.3)
        assert not _kind(tmp_path, "drift")
        fake.fill_resting("BTC/USDT", None)

    ledger = await run_live(tmp_path, fake, [live_intent(
        1, order_type="limit", limit_price="49000", urgency="low")], during=rest_then_fill,
        holdings_ms=50, order_timeout_ms=20000,
        extra='[venues.binance.drift]\nbaseline = "zero"\n')
    assert outcome_of(ledger, 1)["status"] == "FILLED"
    holdings = [r["body"] for r in ledger if r["kind"] == "holdings"]
    assert holdings[0]["why"] == "start" and holdings[0]["quiet"] is True
    assert any(h["why"] == "poll" and not h.get("quiet") for h in holdings)


async def test_a_steady_account_read_on_is_fresh_for_a_safety_sell(tmp_path: Path) -> None:
    """Holdings are recorded when they change; reads that find them the same keep
    them fresh, so a Safety Sell of a steady account is not refused as stale."""
    fake = fake_exchange(balances={"BTC": D("1"), "USDT": D("1000000")})
    await fake.start()
    answers: list[dict[str, Any]] = []

    async def wait_then_sell(daemon: Daemon) -> None:
        await _until(lambda: bool(_kind(tmp_path, "outcome")))
        await anyio.sleep(0.6)  # twelve reads of 50 ms: more than three, all the same
        answers.append(await daemon._command(Request(
            "safety-sell", venue="binance", reason="flatten", actor="ops", basis="venue")))

    try:
        ledger = await run_live(tmp_path, fake, [live_intent(1)], during=wait_then_sell,
                                expect=2, holdings_ms=50)
    finally:
        await fake.stop()
    [answer] = answers
    assert answer["ok"], answer
    sell = next(r for r in ledger if r["kind"] == "safety_sell")
    before = [r for r in ledger if r["kind"] == "holdings" and r["seq"] < sell["seq"]]
    # Sold from the record written after the fill, 0.6 s (four times three reads) old:
    # the reads since found the same and wrote none.
    assert sell["body"]["holdings"] == before[-1]["seq"]
    assert before[-1]["body"]["why"] == "poll"
