"""Execution policies through the whole paper pipeline (execd replay in-process): the
rule's default execution for an intent that names none, its refusals of order types,
times in force and pacing, the plan every outcome carries, and the policy file's digest
in the start record. (A reload while schedules run: tests/process/test_policy_process.py.)
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import msgspec

from execd.config import schema as config
from execd.config.digest import outcome_settings_sha256
from execd.model import reasons
from execd.model.messages import ScheduleRecord
from execd.schedule.children import parent_intent
from tests.helpers import intent, ledger_bytes, lines, outcomes, records, replay, write_config

POLICY = """
[rules.default]
[rules.default.algorithms.low]
algorithm = "twap"
duration = 100
slices = 4

[rules.limits-only]
match = { venue = "alpaca" }
order_types = ["limit"]
times_in_force = ["GTC", "IOC"]

[rules.paced]
match = { symbol = "ETH/*" }

[rules.paced.pacing]
max_participation = "0.1"
min_duration = 50
max_duration = 1000
max_child_notional = "1000"
"""


def _run_inputs(directory: Path, rows: list[dict[str, Any]]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "in.jsonl"
    path.write_bytes(lines(*rows))
    return [path]


def _policy(directory: Path, text: str = POLICY) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "policies.toml"
    path.write_text(text)
    return {"extra": f'[policies]\nfile = "{path}"\n'}


def _by_id(ledger: Path) -> dict[int, dict[str, Any]]:
    return {uuid.UUID(o["intent_id"]).int & 0xFFFFFFFFFFFF: o for o in outcomes(ledger)
            if o.get("parent") is None}


async def test_a_low_urgency_intent_gets_the_rules_twap_and_every_child_names_the_rule(
        tmp_path: Path) -> None:
    rows = [{"kind": "tick", "time": 1000}, intent(1, urgency="low", quantity="1.00",
                                                  limit_price="100", order_type="limit"),
            *({"kind": "tick", "time": t} for t in (1025, 1050, 1075, 1200))]
    ledger = await replay(tmp_path / "run", _run_inputs(tmp_path, rows), **_policy(tmp_path))
    [schedule] = [r["body"] for r in records(ledger) if r["kind"] == "schedule"]
    assert schedule["rule"] == "default"
    assert schedule["execution"] == {"algorithm": "twap", "duration": 100, "slices": 4}
    assert schedule["algorithm"] == "twap"
    # The line as received: no execution of its own.
    assert "execution" not in schedule["intent"]
    done = outcomes(ledger)
    children = [o for o in done if o.get("parent") is not None]
    assert len(children) == 4
    assert all(c["plan"] == {"order_type": "limit", "size": "0.25", "time_in_force": "GTC",
                             "price": "100", "constraints": ["policy:default"]}
               for c in children)
    [parent] = [o for o in done if o.get("children") is not None]
    assert (parent["status"], parent["filled_quantity"], parent["children"]) == (
        "FILLED", "1.00", 4)
    assert "plan" not in parent  # a summary, never an order


async def test_order_types_and_times_in_force_the_rule_does_not_allow_are_refused(
        tmp_path: Path) -> None:
    rows = [{"kind": "tick", "time": 10},
            intent(1, venue="alpaca"),  # a market order: only limits here
            intent(2, venue="alpaca", order_type="limit", limit_price="10",
                   execution={"time_in_force": "FOK"}),
            intent(3, venue="alpaca", order_type="limit", limit_price="10"),
            # A market intent with a reference price becomes a limit: allowed.
            intent(4, venue="alpaca", reference_price="10"),
            # Critical, it stays a market order: refused, saying why.
            intent(5, venue="alpaca", reference_price="10", urgency="critical"),
            # Another venue: the catch-all, which allows anything.
            intent(6)]
    ledger = await replay(tmp_path / "run", _run_inputs(tmp_path, rows), **_policy(tmp_path))
    got = _by_id(ledger)
    assert {n: (o["status"], o.get("reason")) for n, o in got.items()} == {
        1: ("REJECTED", reasons.POLICY_ORDER_TYPE_REFUSED),
        2: ("REJECTED", reasons.POLICY_TIME_IN_FORCE_REFUSED),
        3: ("FILLED", None), 4: ("FILLED", None),
        5: ("REJECTED", reasons.POLICY_ORDER_TYPE_REFUSED), 6: ("FILLED", None)}
    assert got[1]["detail"] == ("rule limits-only: a market order is not allowed "
                                "(allowed: limit)")
    assert got[2]["detail"] == ("rule limits-only: time in force FOK is not allowed "
                                "(allowed: GTC, IOC)")
    assert "plan" not in got[1]  # refused before it became an order
    assert got[3]["plan"] == {"order_type": "limit", "size": "0.5", "time_in_force": "GTC",
                              "price": "10", "constraints": ["policy:limits-only"]}
    assert got[4]["plan"] == {"order_type": "limit", "size": "0.5", "time_in_force": "GTC",
                              "price": "10",
                              "constraints": ["policy:limits-only", "limit_from_reference"]}
    assert got[6]["plan"] == {"order_type": "market", "size": "0.5",
                              "constraints": ["policy:default"]}


async def test_pacing_refuses_what_trades_too_fast_too_slow_or_too_large(
        tmp_path: Path) -> None:
    eth = {"symbol": "ETH/USDT", "order_type": "limit", "limit_price": "1000"}
    twap = {"algorithm": "twap", "slices": 2}
    rows = [{"kind": "tick", "time": 10},
            intent(1, **eth, quantity="1", execution={
                "algorithm": "pov", "duration": 100, "participation": "0.2"}),
            intent(2, **eth, quantity="1", execution={**twap, "duration": 20}),
            intent(3, **eth, quantity="1", execution={**twap, "duration": 5000}),
            intent(4, **eth, quantity="4", execution={**twap, "duration": 100}),
            intent(5, **eth, quantity="1", execution={**twap, "duration": 100}),
            # One immediate order is one child: its notional is 2 x 1000.
            intent(6, **eth, quantity="2"),
            # A market order with no price anywhere: its notional cannot be judged.
            intent(7, symbol="ETH/USDT", quantity="0.1"),
            # A window begun in the past: its due slices go at once, as one child of 2
            # (each slice is 1), and what is left of it is too short.
            intent(8, **eth, quantity="10", execution={"algorithm": "twap", "start": 0,
                                                       "end": 100, "slices": 10}),
            intent(9, **eth, quantity="1", execution={"algorithm": "twap", "start": 0,
                                                      "end": 50, "slices": 1}),
            {"kind": "tick", "time": 500}]
    ledger = await replay(tmp_path / "run", _run_inputs(tmp_path, rows), **_policy(tmp_path))
    got = _by_id(ledger)
    statuses = {n: (o["status"], o.get("reason")) for n, o in got.items()}
    paced = ("REJECTED", reasons.POLICY_PACING_EXCEEDED)
    assert statuses == {1: paced, 2: paced, 3: paced, 4: paced, 5: ("FILLED", None),
                        6: paced, 7: paced, 8: paced, 9: paced}
    assert got[8]["detail"] == ("rule paced: a child of 2 at 1000 is 2000: above "
                                "max_child_notional=1000")
    assert got[9]["detail"] == ("rule paced: the window left, [10, 50), lasts 40: shorter "
                                "than min_duration=50")
    assert got[1]["detail"] == "rule paced: participation=0.2 is above max_participation=0.1"
    assert got[2]["detail"] == ("rule paced: the window left, [10, 30), lasts 20: shorter "
                                "than min_duration=50")
    assert got[3]["detail"] == ("rule paced: the window left, [10, 5010), lasts 5000: longer "
                                "than max_duration=1000")
    assert got[4]["detail"] == ("rule paced: a child of 2 at 1000 is 2000: above "
                                "max_child_notional=1000")
    assert got[7]["detail"].startswith("rule paced: max_child_notional=1000: no price")


async def test_replays_under_one_policy_are_byte_identical_and_the_policy_is_in_the_digest(
        tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"kind": "tick", "time": 0}]
    for n in range(1, 40):
        rows.append(intent(n, urgency=("low", "medium", "high")[n % 3], quantity="1.00",
                           venue=("binance", "alpaca")[n % 2], order_type="limit",
                           limit_price="50"))
        rows.append({"kind": "tick", "time": n * 10})
    inputs = _run_inputs(tmp_path, rows)
    first = await replay(tmp_path / "a", inputs, **_policy(tmp_path / "a"))
    second = await replay(tmp_path / "b", inputs, **_policy(tmp_path / "b"), items=3, q=1,
                          commit_records=5)
    assert ledger_bytes(first) == ledger_bytes(second)
    assert any(r["kind"] == "schedule" for r in records(first))
    other = await replay(tmp_path / "c", inputs,
                         **_policy(tmp_path / "c", POLICY.replace("slices = 4", "slices = 5")))
    plain = await replay(tmp_path / "d", inputs)
    starts = [next(r["body"] for r in records(ledger) if r["kind"] == "start")
              for ledger in (first, other, plain)]
    digests = [s["config_sha256"] for s in starts]
    assert len(set(digests)) == 3
    # Without a policy file the digest is the config's as it always was.
    assert digests[2] == outcome_settings_sha256(
        config.load(write_config(tmp_path / "d")).config)
    # A policy file of the same bytes elsewhere is the same policy: the same digest.
    assert digests[0] == next(r["body"] for r in records(second)
                              if r["kind"] == "start")["config_sha256"]


async def test_a_rules_leverage_cap_lowers_the_intents_and_is_in_the_plan(
        tmp_path: Path) -> None:
    text = POLICY + '\n[rules.levered]\nmatch = { venue = "binance", symbol = "SOL/*" }\n' \
        'max_leverage = "2"\n'
    limit = {"symbol": "SOL/USDT", "order_type": "limit", "limit_price": "100"}
    rows = [{"kind": "tick", "time": 10},
            intent(1, quantity="1500", **limit),  # 150,000 on 100,000 equity: 1.5
            intent(2, quantity="1000", **limit),  # 2.5 in all: above the rule's 2
            # Its own cap is lower than the rule's: its own stays, and refuses it.
            intent(3, quantity="10", constraints={"max_leverage": "1.2"}, **limit),
            # Its own cap is higher: the rule's applies.
            intent(4, quantity="10", constraints={"max_leverage": "5"}, **limit),
            # A schedule: its children are checked under the rule's cap, after a restart
            # too (the record keeps it; the line as received has none).
            intent(5, quantity="40", execution={"algorithm": "twap", "duration": 20,
                                                "slices": 2}, **limit),
            {"kind": "tick", "time": 40}]
    risk = 'signatures = "none"\n[risk.limits]\nequity = "100000"\n'
    ledger = await replay(tmp_path / "run", _run_inputs(tmp_path, rows), risk=risk,
                          **_policy(tmp_path, text))
    got = _by_id(ledger)
    assert {n: (o["status"], o.get("reason")) for n, o in got.items()} == {
        1: ("FILLED", None), 2: ("REJECTED", reasons.RISK_LEVERAGE_EXCEEDED),
        3: ("REJECTED", reasons.RISK_LEVERAGE_EXCEEDED), 4: ("FILLED", None),
        5: ("FILLED", None)}
    assert got[2]["detail"].endswith("max_leverage=2")
    assert got[3]["detail"].endswith("max_leverage=1.2")
    for n in (1, 4):
        plan = got[n]["plan"]
        assert plan["max_leverage"] == "2"
        assert plan["constraints"] == ["policy:levered", "leverage_cap"]
    # The line as received keeps the intent's own cap.
    assert got[4]["intent"]["constraints"] == {"max_leverage": "5"}
    [record] = [r["body"] for r in records(ledger) if r["kind"] == "schedule"]
    assert record["max_leverage"] == "2"
    rebuilt = parent_intent(msgspec.json.decode(msgspec.json.encode(record), type=ScheduleRecord))
    assert rebuilt.constraints is not None and rebuilt.constraints.max_leverage == 2
    children = [o for o in outcomes(ledger) if o.get("parent")]
    assert len(children) == 2 and all(c["plan"]["max_leverage"] == "2" for c in children)
