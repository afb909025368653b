"""Targets across crashes (paper, the daemon in-process): the ledger of a run that works
targets (a TWAP leg, a superseding target, a drift monitor's target orders) is cut at
every record and the daemon started again on it, checkpoints off and on. Every cut
ends as the uncut run did: one outcome per id, the same positions (no overshoot, no
leg sent twice), each target recorded once, and the targets state the full fold
gives.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execd.config import schema as config
from execd.ledger.recovery import recover
from execd.sentinel.risk import Risk
from tests.helpers import intent, lines, records
from tests.pipeline.test_crash_states import same_state_as_full_fold
from tests.pipeline.test_schedule_crashes import configured, outcomes_by_id, run_until_idle

NAME = "t.jsonl"


def target(as_of: int, legs: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"kind": "target", "portfolio_id": "core", "source_run": "run-1", "as_of": as_of,
            "venue": "binance", "targets": legs, **fields}


ROWS: list[dict[str, Any]] = [
    {"kind": "tick", "time": 0}, intent(1, quantity="0.5"),
    target(1, [{"symbol": "BTC/USDT", "quantity": "3"}, {"symbol": "ETH/USDT", "quantity": "2"}],
           execution={"algorithm": "twap", "duration": 30, "slices": 3}),
    {"kind": "tick", "time": 10},
    target(2, [{"symbol": "BTC/USDT", "quantity": "1"}, {"symbol": "ETH/USDT", "quantity": "2"}]),
    {"kind": "tick", "time": 20},
    {"kind": "drift_target", "portfolio_id": "core", "source_run": "run-1", "as_of": 3,
     "venue": "binance", "orders": [{"symbol": "ETH/USDT", "target_quantity": "1.5"}]},
    target(2, [{"symbol": "BTC/USDT", "quantity": "9"}]),     # stale
    {"kind": "tick", "time": 100},
]


def positions(directory: Path) -> dict[str, Decimal]:
    held: Counter[str] = Counter()
    for r in records(directory / "ledger"):
        body = r["body"]
        if r["kind"] == "outcome" and body.get("children") is None and body.get("side"):
            sign = 1 if body["side"] == "buy" else -1
            held[body["symbol"]] += sign * Decimal(body["filled_quantity"])  # type: ignore[assignment]
    return dict(held)


def check(directory: Path) -> tuple[dict[str, Any], dict[str, Decimal], list[str]]:
    found = outcomes_by_id(directory)
    assert all(len(v) == 1 for v in found.values()), {k: len(v) for k, v in found.items()}
    ids = [r["body"]["target_id"] for r in records(directory / "ledger")
           if r["kind"] == "target"]
    assert len(ids) == len(set(ids))
    return ({k: (b["status"], b["filled_quantity"], b.get("reason")) for k, [b] in found.items()},
            positions(directory), ids)


def targets_state(directory: Path) -> Any:
    risk = Risk(config.load(directory / "execd.toml").config)
    recover(directory / "ledger", repair=False, risk=risk)
    return json.loads(risk.targets.encode())


@pytest.mark.parametrize("every", [0, 2])
async def test_every_crash_point_while_targets_are_worked_recovers_as_the_uncut_run(
        tmp_path: Path, every: int) -> None:
    base = tmp_path / "base"
    inbox = base / "lakehouse" / "inbox"
    inbox.mkdir(parents=True)
    data = lines(*ROWS)
    (inbox / NAME).write_bytes(data)
    await run_until_idle(base, every)
    expected = check(base)
    assert expected[1] == {"BTC/USDT": Decimal(1), "ETH/USDT": Decimal("1.5")}
    state = targets_state(base)
    full = (base / "ledger" / "segment-00000001.jsonl").read_bytes().splitlines(keepends=True)
    kinds = [json.loads(x)["kind"] for x in full]
    assert kinds.count("target") == 3
    tried = 0
    used: set[str | None] = set()
    for k in range(1, len(full)):
        if kinds[k - 1] == "input_file":
            continue
        directory = tmp_path / f"k{k}"
        (directory / "ledger").mkdir(parents=True)
        (directory / "ledger" / "segment-00000001.jsonl").write_bytes(b"".join(full[:k]))
        work = directory / "lakehouse" / "work"
        work.mkdir(parents=True)
        (work / NAME).write_bytes(data)
        if every:
            configured(directory, every)
            used.add(same_state_as_full_fold(directory, base / "ledger" / "checkpoints"))
            shutil.rmtree(directory / "ledger" / "checkpoints")
            shutil.rmtree(directory / "ledger" / "index", ignore_errors=True)
        await run_until_idle(directory, every)
        assert check(directory) == expected, k
        assert targets_state(directory) == state, k
        tried += 1
    assert tried > 15
    if every:
        assert len(used - {None}) >= 4
