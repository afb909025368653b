"""Targets, by property (Hypothesis over paper replays, execd in-process): after any
sequence of targets (full and drift, immediate and TWAP, repeated, stale) and the
fills they lead to, the positions equal the last target of each symbol; a repeated
target sends nothing; every leg moves its symbol toward its target and never past it
(a superseding target never overshoots).
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execd.model import reasons
from tests.helpers import lines, records, replay

D = Decimal
SYMBOLS = ("BTC/USDT", "ETH/USDT")
_quantities = st.sampled_from(["0", "0.5", "1", "1.5", "2", "3.25"])
_execution = st.sampled_from([None, {"algorithm": "twap", "duration": 30, "slices": 3}])


@st.composite
def _targets(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"kind": "tick", "time": 0}]
    time, as_of = 0, 0
    for _ in range(draw(st.integers(1, 5))):
        as_of += draw(st.integers(0, 2))        # 0: stale (not after the last)
        symbols = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=2,
                                unique=True))
        if draw(st.booleans()):
            row = {"kind": "target", "portfolio_id": "p", "source_run": "run-1",
                   "as_of": as_of, "venue": "binance",
                   "targets": [{"symbol": s, "quantity": draw(_quantities)} for s in symbols]}
            execution = draw(_execution)
            if execution is not None:
                row["execution"] = execution
        else:
            row = {"kind": "drift_target", "portfolio_id": "p", "source_run": "run-1",
                   "as_of": as_of, "venue": "binance",
                   "orders": [{"symbol": s, "target_quantity": draw(_quantities)}
                              for s in symbols]}
        rows.append(row)
        if draw(st.booleans()):
            rows.append(row)                    # the same target again
        time += draw(st.sampled_from([0, 5, 10]))
        rows.append({"kind": "tick", "time": time})
    rows.append({"kind": "tick", "time": time + 1000})  # every schedule runs to its end
    return rows


def _replay(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        path = directory / "in.jsonl"
        path.write_bytes(lines(*rows))
        ledger = anyio.run(lambda: replay(directory, [path]))
        return records(ledger)


def _last_targets(ledger: list[dict[str, Any]]) -> dict[str, Decimal]:
    wanted: dict[str, Decimal] = {}
    for r in ledger:
        if r["kind"] == "target":
            body = r["body"]
            if not body.get("partial"):
                wanted = dict.fromkeys(wanted, D(0))
            for symbol, target, *_ in body["legs"]:
                wanted[symbol] = D(target)
    return wanted


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_targets())
def test_positions_end_at_the_last_targets_and_no_leg_overshoots(
        rows: list[dict[str, Any]]) -> None:
    ledger = _replay(rows)
    held = dict.fromkeys(SYMBOLS, D(0))
    legs: dict[str, tuple[Decimal, Decimal, Decimal]] = {}   # leg id -> position, target, qty
    repeated = 0
    for r in ledger:
        body = r["body"]
        if r["kind"] == "target":
            for _symbol, target, position, quantity, leg, what, *_ in body["legs"]:
                if leg is not None:
                    legs[leg] = (D(position), D(target), D(quantity))
                    assert what == "sent"
                else:
                    assert what == "reached" and D(target) == D(position)
        if r["kind"] == "outcome" and body.get("reason") == reasons.TARGET_REPEATED:
            repeated += 1
        if r["kind"] == "outcome" and body.get("children") is None and body.get("side") and (
                body["status"] in ("FILLED", "PARTIALLY_FILLED")):
            sign = 1 if body["side"] == "buy" else -1
            held[body["symbol"]] += sign * D(body["filled_quantity"])
    for position, target, quantity in legs.values():
        # Toward the target, never past it.
        assert quantity != 0 and (target - position) * quantity > 0
        assert abs(quantity) <= abs(target - position)
    wanted = _last_targets(ledger)
    assert {s: held[s] for s in wanted} == wanted
    # A target whose content came before is refused as a repeat, and sends nothing.
    seen: list[dict[str, Any]] = []
    expected = 0
    for row in rows:
        if row["kind"] != "tick":
            expected += row in seen
            seen.append(row)
    assert repeated == expected
