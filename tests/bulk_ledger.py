"""Large ledgers, quickly: one real outcome's bytes, its ids and times varied, re-chained.

Encoding a real ExecutionOutcome per record costs tens of microseconds (uuid5 ids); the
readers' memory tests need tens of megabytes of records, so the body is a byte template
held equal to the real encoding of one outcome (:func:`template`), and each record is
chained with :class:`LedgerChain` as the writer chains them.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import msgspec

from execd.ledger.record import LedgerChain
from execd.ledger.segments import segment_name
from execd.model.messages import ExecutionOutcome, Source, encode

_BODY = (b'{"execution_id":"%s","intent_id":"%s","status":"FILLED","filled_quantity":"0.5",'
         b'"logical_time":%d,"plane":"paper","venue":"binance","symbol":"BTC/USDT",'
         b'"side":"buy","requested_quantity":"0.5","average_price":"50000.5",'
         b'"source":["f.jsonl",%d,%d],"intent":{"kind":"intent","venue":"binance",'
         b'"symbol":"BTC/USDT","side":"buy","quantity":"0.5"}}')
_INTENT = b'{"kind":"intent","venue":"binance","symbol":"BTC/USDT","side":"buy","quantity":"0.5"}'


def intent_id(n: int) -> uuid.UUID:
    """The intent id of record ``n``."""
    return uuid.UUID(int=n)


def body(n: int) -> bytes:
    """Record ``n``'s outcome body, as the writer would encode it."""
    return _BODY % (str(uuid.UUID(int=n ^ 0xABCDEF)).encode(), str(intent_id(n)).encode(),
                    n // 100, n, n * 10)


def template() -> tuple[bytes, bytes]:
    """One body from the template and the real encoding of the same outcome (equal)."""
    real = encode(ExecutionOutcome(
        execution_id=str(uuid.UUID(int=7 ^ 0xABCDEF)), intent_id=intent_id(7), status="FILLED",
        filled_quantity=Decimal("0.5"), logical_time=0, plane="paper", venue="binance",
        symbol="BTC/USDT", side="buy", requested_quantity=Decimal("0.5"),
        average_price=Decimal("50000.5"), source=Source("f.jsonl", 7, 70),
        intent=msgspec.Raw(_INTENT)))
    return body(7), real


def build(directory: Path, size: int) -> int:
    """Write one segment of outcome records, about ``size`` bytes; how many records."""
    directory.mkdir(parents=True, exist_ok=True)
    chain = LedgerChain()
    written = n = 0
    with open(directory / segment_name(1), "wb") as handle:
        while written < size:
            batch = [chain.append("outcome", (n + k) // 100, body(n + k)) for k in range(1000)]
            n += len(batch)
            data = b"".join(batch)
            handle.write(data)
            written += len(data)
    return n
