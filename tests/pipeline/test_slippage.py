"""Slippage responses on the paper plane, end to end: the daemon in-process, its inbox
fed one file at a time while the lakehouse's price moves between them (a scripted price
path). Paper children of a schedule under a tolerance fill at the lakehouse's price as
they are released, so a price that moves away from the arrival price breaches:

* ``slow``: what is left of the schedule lasts twice as long (its next slice is later);
* ``passive``: the children left are post-only limits at the arrival price;
* ``pause``: no child until ``resume-schedule``, then the slices due go out as one;
* ``halt``: trading goes to HALTED, and the schedule ends;
* ``continue``: recorded, nothing else changes.

Each breach is one ``slippage`` record right after the child's outcome; a restart's
fold finds the same state (tests/crash/test_schedule_crashes.py cuts at every record).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger.recovery import recover
from execd.ledger.scan import scan
from execd.model import reasons
from execd.service.control import Request
from tests.helpers import drop, intent, ledger_bytes, lines, records, replay, write_config

D = Decimal
PARENT = "00000000-0000-4000-8000-000000000001"
POLICY = """
[rules.default]

[rules.guarded]
match = {{ symbol = "BTC/*" }}

[rules.guarded.slippage]
max_order_bps = 50
response = "{response}"
"""


def _parent(**fields: Any) -> dict[str, Any]:
    return intent(1, quantity="0.4", execution={"algorithm": "twap", "duration": 100,
                                                 "slices": 4}, **fields)


def _configured(directory: Path, response: str) -> config.LoadedConfig:
    policy = directory / "policies.toml"
    directory.mkdir(parents=True, exist_ok=True)
    policy.write_text(POLICY.format(response=response))
    (directory / "lakehouse" / "market").mkdir(parents=True, exist_ok=True)
    return config.load(write_config(directory, extra=f'[policies]\nfile = "{policy}"\n'))


def _step(directory: Path, price: str, name: str, rows: list[Any]) -> None:
    """BTC/USDT's lakehouse price is ``price`` from now on; then ``rows`` are dropped."""
    lakehouse = directory / "lakehouse"
    (lakehouse / "market" / "prices.json").write_text(json.dumps({"BTC/USDT": price}))
    drop(lakehouse / "inbox", name, lines(*rows))


async def _run(directory: Path, response: str, steps: list[tuple[str, list[Any]]],
               between: Any = None) -> list[dict[str, Any]]:
    """Run the daemon; for each step, set BTC/USDT's lakehouse price, drop its lines, and
    wait until the file is read. ``between(daemon, index)`` runs after each step."""
    daemon = Daemon(_configured(directory, response))
    ledger = directory / "ledger"

    def read(name: str) -> bool:
        return ledger.exists() and any(
            r["kind"] == "input_file" and r["body"]["file"].endswith(name)
            for r in records(ledger))

    async def driver() -> None:
        for index, (price, rows) in enumerate(steps):
            name = f"{index:02d}.jsonl"
            _step(directory, price, name, rows)
            while not read(name):
                await anyio.sleep(0.02)
            if between is not None:
                await between(daemon, index)
        daemon.stopping.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver)
            await daemon.run()
    assert scan(ledger).torn is None
    return records(ledger)


def _tick(time: int) -> dict[str, Any]:
    return {"kind": "tick", "time": time}


def _children(ledger: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["body"] for r in ledger if r["kind"] == "outcome"
            and r["body"].get("parent") == PARENT]


def _kinds_after(ledger: list[dict[str, Any]], kind: str) -> list[str]:
    kinds = [r["kind"] for r in ledger]
    return kinds[kinds.index(kind) - 1:kinds.index(kind) + 2]


# The price path: arrival 100; the second child meets 101 (100 bps worse, a breach).
PATH = [("100", [_tick(0), _parent()]), ("101", [_tick(25)]), ("100", [_tick(50)]),
        ("100", [_tick(75)]), ("100", [_tick(100)]), ("100", [_tick(150)]),
        ("100", [_tick(250)])]


async def test_slow_stretches_the_rest_of_the_schedule_after_a_breach(tmp_path: Path) -> None:
    ledger = await _run(tmp_path, "slow", PATH)
    [schedule] = [r["body"] for r in ledger if r["kind"] == "schedule"]
    assert (schedule["arrival"], schedule["slippage"]) == (
        "100", {"response": "slow", "max_order_bps": 50})
    [breach] = [r["body"] for r in ledger if r["kind"] == "slippage"]
    assert (breach["breached"], breach["bps"], breach["price"], breach["response"],
            breach["rule"]) == ("order", "100", "101", "slow", "guarded")
    # Slice 1 went at 25; what is left is twice as long from there: 75 and 125.
    assert breach["next_due"] == 75
    children = _children(ledger)
    times = [c["logical_time"] for c in children]
    assert times == [0, 25, 75, 150]  # the slice due at 125 waited for the tick at 150
    assert [c["average_price"] for c in children] == ["100", "101", "100", "100"]
    assert _kinds_after(ledger, "slippage")[0] == "outcome"


async def test_passive_sends_the_rest_as_post_only_limits_at_the_arrival_price(
        tmp_path: Path) -> None:
    ledger = await _run(tmp_path, "passive", PATH)
    children = _children(ledger)
    assert [c["plan"]["order_type"] for c in children] == ["limit", "limit", "limit", "limit"]
    later = children[2:]
    assert all(c["plan"]["price"] == "100" and "post_only" in c["plan"]["constraints"]
               for c in later)
    assert all("post_only" not in c["plan"]["constraints"] for c in children[:2])
    assert [c["status"] for c in children] == ["FILLED"] * 4


async def test_pause_holds_the_schedule_until_an_operator_resumes_it(tmp_path: Path) -> None:
    answers: list[dict[str, Any]] = []

    async def resume_after(daemon: Daemon, index: int) -> None:
        if index == 1:  # the breach: a wrong id, then the paused parent
            answers.append(await daemon._command(Request(
                "resume-schedule", intent="00000000-0000-4000-8000-000000000009",
                reason="r", actor="ops")))
            answers.append(await daemon._command(Request("status")))
        if index == 3:
            answers.append(await daemon._command(Request(
                "resume-schedule", intent=PARENT, reason="spread is back", actor="ops")))

    ledger = await _run(tmp_path, "pause", PATH, resume_after)
    wrong, status, resumed = answers
    assert not wrong["ok"] and "no paused schedule" in wrong["error"]
    [shown] = status["schedules"]
    assert shown["held"] == "paused"
    assert resumed["ok"] and resumed["released"] == 1
    [resume] = [r["body"] for r in ledger if r["kind"] == "resume"]
    assert (resume["intent_id"], resume["actor"], resume["reason"]) == (
        PARENT, "ops", "spread is back")
    children = _children(ledger)
    # Nothing at 50 or 75 while paused; at the resume (t=75) slices 2 and 3 go as one.
    assert [(c["logical_time"], c["requested_quantity"]) for c in children] == [
        (0, "0.1"), (25, "0.1"), (75, "0.2")]
    [summary] = [r["body"] for r in ledger if r["kind"] == "outcome"
                 and r["body"]["intent_id"] == PARENT]
    assert summary["status"] == "FILLED"


async def test_halt_moves_trading_to_halted_and_ends_the_schedule(tmp_path: Path) -> None:
    ledger = await _run(tmp_path, "halt", [*PATH[:3], ("100", [intent(2, quantity="0.1")])])
    kinds = [r["kind"] for r in ledger]
    at = kinds.index("slippage")
    assert kinds[at + 1] == "trading_state"
    change = ledger[at + 1]["body"]
    assert (change["previous"], change["state"], change["actor"]) == (
        "ACTIVE", "HALTED", "policy:guarded")
    [summary] = [r["body"] for r in ledger if r["kind"] == "outcome"
                 and r["body"]["intent_id"] == PARENT]
    assert (summary["status"], summary["reason"], summary["filled_quantity"]) == (
        "PARTIALLY_FILLED", reasons.SCHEDULE_HALTED, "0.2")
    [later] = [r["body"] for r in ledger if r["kind"] == "outcome"
               and r["body"]["intent_id"].endswith("000000000002")]
    assert later["reason"] == reasons.TRADING_HALTED
    assert len(_children(ledger)) == 2


async def test_continue_records_the_breach_and_changes_nothing_else(tmp_path: Path) -> None:
    ledger = await _run(tmp_path, "continue", PATH)
    [breach] = [r["body"] for r in ledger if r["kind"] == "slippage"]
    assert breach["response"] == "continue" and "next_due" not in breach
    assert [c["logical_time"] for c in _children(ledger)] == [0, 25, 50, 75]


async def test_a_restart_folds_the_same_paused_schedule(tmp_path: Path) -> None:
    ledger = await _run(tmp_path, "pause", PATH[:3])
    loaded = config.load(tmp_path / "execd.toml")
    from execd.sentinel.risk import Risk

    state = recover(tmp_path / "ledger", repair=False, risk=Risk(loaded.config))
    [open_] = list(state.schedules)
    assert open_.paused and open_.next == 2 and not state.schedules.breaches
    assert [r["kind"] for r in ledger].count("slippage") == 1


async def test_a_tolerance_without_an_arrival_price_is_refused(tmp_path: Path) -> None:
    ledger = await _run(tmp_path, "slow", [("100", [_tick(0), _parent(symbol="BTC/EUR")])])
    [outcome] = [r["body"] for r in ledger if r["kind"] == "outcome"]
    assert (outcome["status"], outcome["reason"]) == ("REJECTED",
                                                      reasons.POLICY_NO_ARRIVAL_PRICE)
    assert D(outcome["filled_quantity"]) == 0


HALTING = """
[rules.default]
[rules.halt]
match = { symbol = "XRP/*" }
slippage = { max_order_bps = 50, response = "halt" }
"""


async def test_a_halt_gives_the_same_ledger_whatever_the_batch_and_queue_sizes(
        tmp_path: Path) -> None:
    """Three schedules due at once, the first to breach halts: the others end before
    their children are sent, however many items a batch holds."""
    rows: list[Any] = [_tick(10), *(
        intent(n, symbol=symbol, quantity="1.0", limit_price="101", order_type="limit",
               execution={"algorithm": "twap", "start": 20, "duration": 40, "slices": 2})
        for n, symbol in ((1, "XRP/USDT"), (2, "SOL/USDT"), (3, "BTC/USDT"))),
        _tick(20), intent(4, quantity="0.1"), _tick(100)]
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(*rows))
    ledgers = []
    for name, sizes in (("a", {}), ("b", {"items": 1, "q": 1, "commit_records": 1})):
        directory = tmp_path / name
        market = directory / "lakehouse" / "market"
        market.mkdir(parents=True)
        (market / "prices.json").write_text(json.dumps(
            {"XRP/USDT": "100", "SOL/USDT": "100", "BTC/USDT": "100"}))
        policy = directory / "policies.toml"
        policy.write_text(HALTING)
        ledgers.append(await replay(directory, [source],
                                    extra=f'[policies]\nfile = "{policy}"\n', **sizes))
    first, second = ledgers
    assert ledger_bytes(first) == ledger_bytes(second)
    done = {r["body"]["intent_id"][-1]: r["body"] for r in records(first)
            if r["kind"] == "outcome" and "parent" not in r["body"]}
    assert (done["1"]["status"], done["1"]["reason"]) == ("PARTIALLY_FILLED",
                                                          reasons.SCHEDULE_HALTED)
    # Ended before their first child: nothing was sent for them.
    assert all((done[n]["status"], done[n]["children"]) == ("SKIPPED", 0) for n in "23")
    assert done["4"]["reason"] == reasons.TRADING_HALTED
