"""Slippage responses on the live plane: the daemon, the real ccxt, the fake Binance
filling part of each child at a price worse than the arrival price (the intent's
reference, 50000; the fake's market is at 50500: 100 bps worse for a buy).

The first child's durable outcome is measured; its breach is one ``slippage`` record
after it, and then: ``pause`` sends nothing until ``resume-schedule``; ``halt`` moves
trading to HALTED and ends the parent; ``passive`` sends the next child to the fake as
a post-only limit (LIMIT_MAKER) at the arrival price; ``slow`` stretches what is left.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from execd.app.daemon import Daemon
from execd.model import reasons
from execd.service.control import Request
from tests.helpers import drop, lines, records
from tests.live import fake_exchange, live_intent
from tests.live_run import run_live

D = Decimal
PARENT = "00000000-0000-4000-8000-000000000001"
POLICY = """
[rules.default]

[rules.guarded]
match = {{ plane = "live" }}

[rules.guarded.slippage]
max_order_bps = 50
response = "{response}"
"""


def _parent() -> dict[str, Any]:
    return live_intent(1, quantity="0.03",
                       execution={"algorithm": "twap", "duration": 100, "slices": 3})


def _policy(directory: Path, response: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "policies.toml"
    path.write_text(POLICY.format(response=response))
    return f'[policies]\nfile = "{path}"\n'


def _fake() -> Any:
    fake = fake_exchange(liquidity=D("0.006"))
    fake.markets["BTCUSDT"].price = D("50500")
    return fake


def _breaches(directory: Path) -> list[dict[str, Any]]:
    ledger = directory / "ledger"
    if not ledger.exists():
        return []
    return [r["body"] for r in records(ledger) if r["kind"] == "slippage"]


def _of(ledger: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r["body"] for r in ledger if r["kind"] == kind]


async def test_live_pause_holds_the_rest_until_resumed(tmp_path: Path) -> None:
    fake = _fake()
    await fake.start()
    answers: list[dict[str, Any]] = []

    async def resume_once_paused(daemon: Daemon) -> None:
        while not _breaches(tmp_path):
            await anyio.sleep(0.02)
        await anyio.sleep(0.3)  # nothing is sent while paused
        answers.append({"orders": len(fake.orders)})
        answers.append(await daemon._command(Request(
            "resume-schedule", intent=PARENT, reason="checked the book", actor="ops")))

    try:
        ledger = await run_live(tmp_path, fake, [{"kind": "tick", "time": 0}, _parent(),
                                                 {"kind": "tick", "time": 100}],
                                during=resume_once_paused, until=PARENT,
                                extra=_policy(tmp_path, "pause"))
    finally:
        await fake.stop()
    paused, resumed = answers
    assert paused["orders"] == 1 and resumed["ok"]
    # The child after the resume breached too (the market had not come back): it
    # covered every slice left, so the parent ended with it.
    breach, again = _of(ledger, "slippage")
    assert (breach["response"], breach["breached"], breach["bps"], breach["price"]) == (
        "pause", "order", "100", "50500")
    assert again["child"] != breach["child"] and again["response"] == "pause"
    children = [o for o in _of(ledger, "outcome") if o.get("parent") == PARENT]
    # The first child filled 0.006 of 0.01; after the resume the rest went as one child.
    assert [c["filled_quantity"] for c in children] == ["0.006", "0.006"]
    assert D(children[1]["requested_quantity"]) == D("0.024")
    assert len(fake.orders) == 2
    kinds = [r["kind"] for r in ledger]
    assert kinds.index("slippage") < kinds.index("resume")


async def test_live_halt_ends_the_parent_after_its_first_child(tmp_path: Path) -> None:
    fake = _fake()
    await fake.start()
    try:
        ledger = await run_live(tmp_path, fake, [{"kind": "tick", "time": 0}, _parent(),
                                                 {"kind": "tick", "time": 100}],
                                until=PARENT, extra=_policy(tmp_path, "halt"))
    finally:
        await fake.stop()
    [change] = _of(ledger, "trading_state")
    assert (change["state"], change["actor"]) == ("HALTED", "policy:guarded")
    [summary] = [o for o in _of(ledger, "outcome") if o["intent_id"] == PARENT]
    assert (summary["status"], summary["reason"], summary["filled_quantity"]) == (
        "PARTIALLY_FILLED", reasons.SCHEDULE_HALTED, "0.006")
    assert len(fake.orders) == 1


async def test_live_passive_sends_the_rest_as_post_only_limits_at_arrival(
        tmp_path: Path) -> None:
    fake = _fake()
    await fake.start()
    try:
        ledger = await run_live(tmp_path, fake, [{"kind": "tick", "time": 0}, _parent(),
                                                 {"kind": "tick", "time": 100}],
                                until=PARENT, extra=_policy(tmp_path, "passive"),
                                order_timeout_ms=400)
    finally:
        await fake.stop()
    first, second = fake.orders
    assert first.type == "MARKET"
    assert (second.type, second.price) == ("LIMIT_MAKER", D("50000"))
    children = [o for o in _of(ledger, "outcome") if o.get("parent") == PARENT]
    assert "post_only" in children[1]["plan"]["constraints"]
    assert children[1]["plan"]["price"] == "50000"
    # Below the market, it rested and expired unfilled.
    assert (children[1]["status"], children[1]["filled_quantity"]) == ("FAILED", "0")


async def test_live_slow_stretches_the_schedule_past_the_ticks_read(tmp_path: Path) -> None:
    fake = _fake()
    await fake.start()

    async def tick_later(daemon: Daemon) -> None:
        while not _breaches(tmp_path):
            await anyio.sleep(0.02)
        await anyio.sleep(0.3)
        drop(tmp_path / "lakehouse" / "inbox", "b.jsonl", lines({"kind": "tick", "time": 400}))

    try:
        ledger = await run_live(tmp_path, fake, [{"kind": "tick", "time": 0}, _parent(),
                                                 {"kind": "tick", "time": 100}],
                                during=tick_later, until=PARENT,
                                extra=_policy(tmp_path, "slow"))
    finally:
        await fake.stop()
    [schedule] = _of(ledger, "schedule")
    [first_due, *_] = schedule["slices"]
    [breach, *_] = _of(ledger, "slippage")
    # Slices due at 0, 33 and 66 now fall due at 0, 66 and 132.
    assert (breach["response"], breach["next_due"]) == ("slow", 66)
    children = [o for o in _of(ledger, "outcome") if o.get("parent") == PARENT]
    # At t=100 only slice 1 was due (unstretched, slices 1 and 2 would have gone as one
    # child); slice 2 waited for the tick at 400.
    assert [c["logical_time"] for c in children] == [0, 100, 400]
    assert first_due[0] == 0
