"""Every crash point inside schedules on the paper plane: the restart never sends a child
twice, never loses one, and gives every parent exactly one outcome, the sum of its
children's; with checkpoints on, recovery from a snapshot holding open schedules is the
full fold's state.

A run commits one record at a time, so every record boundary is a point where the daemon
could have died: the ledger is cut there (the input file back in ``work/``, where a crash
leaves it), the daemon restarts and runs until idle, and the outcomes must be the ones the
uninterrupted run gave: the same children, the same fills, one outcome each.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from execd.app.daemon import Daemon
from execd.config import schema as config
from tests.helpers import ROOT, intent, lines, records, write_config
from tests.pipeline.test_crash_states import same_state_as_full_fold

ROWS: list[dict[str, Any]] = [
    {"kind": "tick", "time": 10},
    intent(1, quantity="1.0", limit_price="10", order_type="limit",
           execution={"algorithm": "twap", "duration": 40, "slices": 4}),
    intent(2, quantity="0.3"),
    intent(3, side="sell", quantity="7", reference_price="5",
           execution={"algorithm": "iceberg", "visible": "3"}),
    {"kind": "tick", "time": 25},
    intent(4, quantity="2", execution={"algorithm": "vwap", "end": 100, "slices": 3}),
    intent(5, quantity="3.0", execution={"algorithm": "pov", "end": 190,
                                         "participation": "0.2"}),
    {"kind": "tick", "time": 45}, {"kind": "tick", "time": 60}, {"kind": "tick", "time": 80},
    {"kind": "tick", "time": 200},
]
# The market's volume the POV follows (lakehouse market/volume.json).
VOLUME = {"BTC/USDT": [[10, 20, "10"], [20, 30, "5"], [30, 40, "3"], [50, 60, "10"],
                      [70, 80, "4"]]}
# A POV and a TWAP due at the same tick under a limit of one order a window: which gets
# it depends on the POV seeing the market's volume, after a restart too (the context is
# recorded and used before the catch-up, not only before the next file).
RACE_RISK = 'signatures = "none"\n[risk.limits]\nmax_orders = 1\nrate_window = 5\n'
RACE: list[dict[str, Any]] = [
    {"kind": "tick", "time": 10},
    intent(1, quantity="4", limit_price="10", order_type="limit",
           execution={"algorithm": "pov", "end": 100, "participation": "0.2"}),
    intent(2, quantity="2", limit_price="10", order_type="limit",
           execution={"algorithm": "twap", "start": 20, "end": 60, "slices": 2}),
    *({"kind": "tick", "time": t} for t in (20, 30, 40, 50, 60, 80, 200))]
# Under the shipped policy (paper: low urgency naming no execution gets a TWAP of 3 over
# 60): schedules whose execution is the rule's, not their line's, rebuilt after a cut
# from the schedule record's own.
POLICY_RISK = (f'signatures = "none"\n[policies]\nfile = "{ROOT / "config" / "policies.toml"}"'
               "\n")
POLICED: list[dict[str, Any]] = [
    {"kind": "tick", "time": 10},
    intent(1, quantity="0.9", limit_price="10", order_type="limit", urgency="low"),
    intent(2, side="sell", quantity="3", reference_price="5", urgency="low",
           constraints={"post_only": True}),
    intent(3, quantity="1", urgency="medium"),
    *({"kind": "tick", "time": t} for t in (20, 30, 50, 60, 100))]
# Slippage responses (README, "Execution policies"): a buy limit at 101 fills at its
# limit on paper, 100 bps worse than the lakehouse's 100 it arrived at: the breach, its
# record and its response (passive children, a stretched schedule, a halt that ends
# every schedule) are rebuilt by the fold after any cut, and never taken twice.
PRICES = {"ETH/USDT": "100", "SOL/USDT": "100", "XRP/USDT": "100"}
SLIPPAGE_POLICY = """
[rules.default]
[rules.passive]
match = { symbol = "ETH/*" }
slippage = { max_order_bps = 50, response = "passive" }
[rules.slow]
match = { symbol = "SOL/*" }
slippage = { max_order_bps = 50, response = "slow", stretch = 3 }
[rules.halt]
match = { symbol = "XRP/*" }
slippage = { max_parent_bps = 50, response = "halt" }
"""
SLIP_RISK = 'signatures = "none"\n[policies]\nfile = "{policy}"\n'
SLIPPED: list[dict[str, Any]] = [
    {"kind": "tick", "time": 10},
    *(intent(n, symbol=symbol, quantity="1.0", limit_price="101", order_type="limit",
             execution={"algorithm": "twap", "duration": 40, "slices": 4})
      for n, symbol in ((1, "ETH/USDT"), (2, "SOL/USDT"))),
    *({"kind": "tick", "time": t} for t in (20, 30, 50)),
    intent(3, symbol="XRP/USDT", quantity="1", limit_price="101", order_type="limit",
           execution={"algorithm": "twap", "duration": 40, "slices": 2}),
    *({"kind": "tick", "time": t} for t in (60, 100, 200))]
NAME = "s.jsonl"
# With limits: a schedule whose last child the rate limit refuses ends with lots unsent,
# and what every later intent is judged against depends on what the schedules still hold
# pending, across a restart too (the probe: a buy that fits only while nothing is held).
RISK = ('signatures = "none"\n[risk.limits]\nmax_asset_exposure = "100"\n'
        'max_orders = 1\nrate_window = 25\n')
RISKY: list[dict[str, Any]] = [
    {"kind": "tick", "time": 10},
    intent(1, quantity="10", order_type="limit", limit_price="10",
           execution={"algorithm": "twap", "duration": 40, "slices": 2}),
    {"kind": "tick", "time": 30}, {"kind": "tick", "time": 100},
    intent(50, quantity="10", order_type="limit", limit_price="10"),
    intent(51, quantity="4", order_type="limit", limit_price="10", side="sell",
           execution={"algorithm": "iceberg", "visible": "1"}),
    {"kind": "tick", "time": 200}, intent(52, quantity="3", order_type="limit",
                                          limit_price="10")]


def configured(directory: Path, every: int, risk: str = 'signatures = "none"') -> Path:
    return write_config(directory, items=1, commit_records=1, q=1, risk=risk,
                        segment_bytes=f"{256 << 20}\ncheckpoint_records = {every}\n"
                                      "checkpoints_kept = 1000")


async def run_until_idle(directory: Path, every: int, risk: str = 'signatures = "none"') -> None:
    path = configured(directory, every, risk)
    market = directory / "lakehouse" / "market"
    market.mkdir(parents=True, exist_ok=True)
    (market / "volume.json").write_text(json.dumps(VOLUME))
    (market / "prices.json").write_text(json.dumps(PRICES))
    daemon = Daemon(config.load(path), mode="run")
    lakehouse = directory / "lakehouse"

    async def driver() -> None:
        while True:
            await anyio.sleep(0.01)
            if not any(any((lakehouse / d).iterdir()) for d in ("inbox", "work")
                       if (lakehouse / d).exists()):
                daemon.stopping.set()
                return

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver)
            await daemon.run()


def outcomes_by_id(directory: Path) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for record in records(directory / "ledger"):
        if record["kind"] == "outcome":
            found.setdefault(record["body"]["intent_id"], []).append(record["body"])
    return found


def check(directory: Path) -> dict[str, tuple[str, str, str | None]]:
    """One outcome per intent, each parent the sum of its children; (id -> status, filled)."""
    found = outcomes_by_id(directory)
    assert all(len(v) == 1 for v in found.values()), {k: len(v) for k, v in found.items()}
    sums: Counter[str] = Counter()
    for [body] in found.values():
        if "parent" in body:
            sums[body["parent"]] += 1
    schedules = [r["body"]["intent_id"] for r in records(directory / "ledger")
                 if r["kind"] == "schedule"]
    assert len(schedules) == len(set(schedules)) >= 2
    for parent in schedules:
        [body] = found[parent]
        children = [b for [b] in found.values() if b.get("parent") == parent]
        assert body["children"] == len(children) == sums[parent]
        assert sum(Decimal(b["filled_quantity"]) for b in children) == Decimal(
            body["filled_quantity"]) <= Decimal(body["requested_quantity"])
    return {k: (b["status"], b["filled_quantity"], b.get("reason")) for k, [b] in found.items()}


@pytest.mark.parametrize(("every", "rows", "risk"), [
    (0, ROWS, 'signatures = "none"'), (3, ROWS, 'signatures = "none"'), (0, RISKY, RISK),
    (3, RISKY, RISK), (0, RACE, RACE_RISK), (2, RACE, RACE_RISK), (0, POLICED, POLICY_RISK),
    (2, POLICED, POLICY_RISK), (0, SLIPPED, SLIP_RISK), (2, SLIPPED, SLIP_RISK)])
async def test_every_crash_point_inside_schedules_recovers_to_one_outcome_each(
        tmp_path: Path, every: int, rows: list[dict[str, Any]], risk: str) -> None:
    if rows is SLIPPED:
        (tmp_path / "slippage.toml").write_text(SLIPPAGE_POLICY)
        risk = risk.format(policy=tmp_path / "slippage.toml")
    base = tmp_path / "base"
    inbox = base / "lakehouse" / "inbox"
    inbox.mkdir(parents=True)
    data = lines(*rows)
    (inbox / NAME).write_bytes(data)
    await run_until_idle(base, every, risk)
    expected = check(base)
    full = (base / "ledger" / "segment-00000001.jsonl").read_bytes().splitlines(keepends=True)
    kinds = [json.loads(x)["kind"] for x in full]
    assert kinds.count("schedule") >= 2
    if rows is ROWS:  # the POV sized its children by the volume, and filled
        pov = [o["body"] for o in map(json.loads, full) if o["kind"] == "outcome"
               and o["body"].get("parent", "").endswith("5")]
        assert [c["filled_quantity"] for c in pov] == ["0.6", "2.0", "0.4"]
    if rows is RACE:  # the POV's child took the window's one order, the TWAP's was refused
        first = [o["body"] for o in map(json.loads, full) if o["kind"] == "outcome"
                 and o["body"]["logical_time"] == 20 and "parent" in o["body"]]
        assert [(c["parent"][-1], c["status"]) for c in first] == [("1", "FILLED"),
                                                                    ("2", "REJECTED")]
    if rows is POLICED:  # two TWAPs of the rule's, their children planned as it says
        bodies = [o["body"] for o in map(json.loads, full)]
        assert [b.get("rule") for b in bodies if "slices" in b] == ["paper", "paper"]
        children = [b for b in bodies if b.get("parent")]
        assert len(children) == 6
        assert all(c["plan"]["constraints"][0] == "policy:paper" for c in children)
        assert {c["plan"]["constraints"][-1] for c in children
                if c["parent"].endswith("2")} == {"post_only"}
    if rows is SLIPPED:
        bodies = [o["body"] for o in map(json.loads, full)]
        found = Counter((b["response"], b["breached"]) for b in bodies if "breached" in b)
        # Passive children fill at the arrival price: one breach; every slow child
        # breaches again (each stretches what is left once more) until the halt.
        assert found[("passive", "order")] == 1 and found[("halt", "parent")] == 1
        assert found[("slow", "order")] >= 2
        assert kinds.count("trading_state") == 1
        passive = [b for b in bodies if b.get("parent", "").endswith("1")]
        assert [c["average_price"] for c in passive] == ["101", "100", "100", "100"]
    if rows is RISKY:  # the cases the limits make: a refused child, a refused probe
        reasons = {o["body"].get("reason") for o in map(json.loads, full)
                   if o["kind"] == "outcome"}
        assert {"RISK_ORDER_RATE_EXCEEDED", "SCHEDULE_INCOMPLETE"} <= reasons, reasons
    tried = 0
    used: set[str | None] = set()
    for k in range(1, len(full)):
        if kinds[k - 1] == "input_file":
            continue  # the file is finished: nothing is left to resume
        directory = tmp_path / f"k{k}"
        (directory / "ledger").mkdir(parents=True)
        (directory / "ledger" / "segment-00000001.jsonl").write_bytes(b"".join(full[:k]))
        work = directory / "lakehouse" / "work"
        work.mkdir(parents=True)
        (work / NAME).write_bytes(data)
        if every:
            # From the whole run's snapshots (those this cut never recorded are not used),
            # open schedules and all: the state the full fold of the cut gives.
            configured(directory, every, risk)
            used.add(same_state_as_full_fold(directory, base / "ledger" / "checkpoints"))
            shutil.rmtree(directory / "ledger" / "checkpoints")
            shutil.rmtree(directory / "ledger" / "index", ignore_errors=True)
        await run_until_idle(directory, every, risk)
        assert check(directory) == expected, k
        if rows is SLIPPED:  # the halt's record, even when the cut fell right before it
            states = [r["body"]["actor"] for r in records(directory / "ledger")
                      if r["kind"] == "trading_state"]
            assert states == ["policy:halt"], k
        tried += 1
    assert tried > 15
    if every:
        assert len(used - {None}) >= 4
