"""Recovery folds the ledger into the daemon's starting state: the cases that decide orders."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

from msgspec import Raw

from execd.ledger.record import LedgerChain
from execd.ledger.recovery import recover
from execd.ledger.segments import SegmentStore
from execd.model.messages import ExecutionOutcome, OrderRecord, Source, encode

INTENT = uuid.UUID("00000000-0000-4000-8000-000000000001")


def order() -> OrderRecord:
    return OrderRecord(intent_id=INTENT, venue="binance", symbol="BTC/USDT", side="buy",
                       client_order_id="x0123", type="market", amount=Decimal("0.01"),
                       requested_quantity=Decimal("0.01"), intent=Raw(b"{}"),
                       source=Source("a.jsonl", 1, 10))


def write(directory: Path, *bodies: tuple[str, object]) -> None:
    store = SegmentStore(directory, 1 << 20)
    store.open()
    chain = LedgerChain()
    store.write_durably(b"".join(chain.append(kind, 0, encode(body)) for kind, body in bodies))
    store.close()


def outcome(**fields: object) -> ExecutionOutcome:
    base: dict[str, object] = {"execution_id": "e", "intent_id": INTENT, "status": "FILLED",
                               "filled_quantity": Decimal("0.01"), "logical_time": 0,
                               "plane": "live", "venue": "binance", "symbol": "BTC/USDT",
                               "side": "buy", "source": Source("a.jsonl", 1, 10)}
    base.update(fields)
    return ExecutionOutcome(**base)  # type: ignore[arg-type]


def test_a_duplicate_refusal_does_not_resolve_the_order(tmp_path: Path) -> None:
    """A duplicate's refusal, which names the same intent id, is never taken for the order's own
    outcome: the order stays to be reconciled.
    """
    write(tmp_path, ("order", order()),
          ("outcome", outcome(status="REJECTED", filled_quantity=Decimal(0),
                              reason="INTENT_DUPLICATE", source=Source("a.jsonl", 2, 20))))
    state = recover(tmp_path)
    assert list(state.unresolved) == [INTENT]


def test_the_order_s_own_outcome_resolves_it(tmp_path: Path) -> None:
    write(tmp_path, ("order", order()),
          ("outcome", outcome(status="REJECTED", filled_quantity=Decimal(0),
                              reason="INTENT_DUPLICATE", source=Source("a.jsonl", 2, 20))),
          ("outcome", outcome(client_order_id="x0123")))
    state = recover(tmp_path)
    assert state.unresolved == {}
    # The later duplicate moved the file's progress; the late outcome never moves it back.
    assert state.progress["a.jsonl"] == (2, 20)
