"""The derived files' fold (execd/audit/derive.py), pure: positions and average cost
(weighted on increases, kept on reductions, reset on a flip), fills only, latencies from
the records' wall times, and the same records always giving the same bytes."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from execd.audit.derive import Derivation

D = Decimal


def _fill(n: int, side: str, qty: str, price: str, **extra: Any) -> dict[str, Any]:
    return {"intent_id": f"i{n}", "status": "FILLED", "filled_quantity": qty, "venue": "v",
            "symbol": "BTC/USDT", "side": side, "average_price": price,
            "intent": {"source_run": "run-1"}, **extra}


def _feed(rows: list[tuple[str, Any]]) -> tuple[Derivation, list[bytes], list[bytes]]:
    derivation = Derivation()
    logs: list[bytes] = []
    audits: list[bytes] = []
    for seq, (kind, body) in enumerate(rows, 1):
        log, audit = derivation.feed(seq, kind, 0, body, f"h{seq}")
        logs += log
        audits += audit
    return derivation, logs, audits


def test_the_average_cost_is_weighted_on_increases_kept_on_reductions_reset_on_a_flip() -> None:
    derivation, logs, audits = _feed([
        ("outcome", _fill(1, "buy", "1", "100")), ("outcome", _fill(2, "buy", "3", "200")),
        ("outcome", _fill(3, "sell", "2", "500")),
        ("outcome", {**_fill(4, "buy", "5", "1"), "status": "REJECTED"}),
        ("outcome", {**_fill(5, "buy", "5", "1"), "children": 2}),
    ])
    state = json.loads(derivation.state())
    held = state["venues"]["v"]["BTC/USDT"]
    assert (D(held["position"]), D(held["average_cost"])) == (D(2), D(175))
    assert held["last_fill"] == {"seq": 3, "time": 0, "price": "500"}
    assert len(logs) == len(audits) == 3  # no refusal, no parent's summary
    flip, _, _ = _feed([("outcome", _fill(1, "buy", "1", "100")),
                        ("outcome", _fill(2, "sell", "3", "90"))])
    after = json.loads(flip.state())["venues"]["v"]["BTC/USDT"]
    assert (D(after["position"]), D(after["average_cost"])) == (D(-2), D(90))
    flat, _, _ = _feed([("outcome", _fill(1, "buy", "1", "100")),
                        ("outcome", _fill(2, "sell", "1", "90"))])
    assert json.loads(flat.state())["venues"]["v"]["BTC/USDT"]["average_cost"] is None


def test_latency_is_from_the_order_record_to_the_outcome_and_targets_are_compared() -> None:
    derivation, logs, audits = _feed([
        ("start", {"clock": "logical"}),
        ("target", {"portfolio_id": "p", "target_id": "t", "as_of": 1, "venue": "v",
                    "legs": [["BTC/USDT", "3", "0", "3", "i1", "sent", None]]}),
        ("order", {"intent_id": "i1", "wall_time": 1_000_000_000}),
        ("order_attempt", {"intent_id": "i1", "answer": "placed", "wall_time": 1_002_000_000}),
        ("outcome", _fill(1, "buy", "1", "100", wall_time=1_010_000_000,
                          intent={"source_run": "r", "context": {"target_id": "t"}})),
    ])
    [log] = [json.loads(x) for x in logs]
    assert (log["sent"], log["accepted"], log["latency_ms"], log["read"]) == (
        1_000_000_000, 1_002_000_000, 10.0, None)
    [audit] = [json.loads(x) for x in audits]
    assert (audit["source_run"], audit["target_id"], audit["seq"], audit["hash"]) == (
        "r", "t", 5, "h5")
    state = json.loads(derivation.state())
    assert state["portfolios"]["p"]["symbols"]["BTC/USDT"] == {
        "target": "3", "actual": "1", "difference": "2"}
    assert (state["as_of_seq"], state["as_of_hash"]) == (5, "h5")
