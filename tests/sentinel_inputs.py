"""What the Risk Sentinel's core is fed in its tests: a lakehouse context, and an intent
as the reader hands it on (each with its own ingest number unless one is given)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec

from execd.model.messages import ContextRecord, IntentIn, OrderIntent, Source
from execd.reader.context import LakehouseContext, Override
from tests.helpers import intent


def ctx(runs: tuple[str, ...] = ("run-1",), regime: str | None = None,
        prices: dict[str, str] | None = None, overrides: tuple[Override, ...] = (),
        plans: dict[str, str] | None = None) -> LakehouseContext:
    """A lakehouse context naming ``runs``, with an optional regime, prices, overrides, plans."""
    return LakehouseContext(
        frozenset(runs), regime, {k: Decimal(v) for k, v in (prices or {}).items()},
        {o.intent_id: o for o in overrides}, plans or {},
        ContextRecord(len(runs), None, regime, 0, None, 0, None, 0, None))


# Ingest numbers for items made without one: one counter for every test module, so items
# made by different helpers in one test never share a number.
SEQ = iter(range(1_000_000))


def item(n: int, time: int = 0, seq: int | None = None, **fields: Any) -> IntentIn:
    """Intent ``n`` (:func:`tests.helpers.intent` with ``fields``) as the reader hands it on."""
    body = intent(n, **fields)
    raw = json.dumps(body).encode()
    parsed = msgspec.json.decode(raw, type=OrderIntent)
    return IntentIn(next(SEQ) if seq is None else seq, time, Source("f", n, 0), parsed, raw)
