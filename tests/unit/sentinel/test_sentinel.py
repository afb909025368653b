"""The sentinel core's structural checks: each has an accepting and a refusing case."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execd.model import reasons
from execd.model.messages import Accepted, Entry, ExecutionOutcome, IntentIn, OrderIntent, Source
from execd.sentinel.core import SeenIds, SentinelCore
from tests.helpers import intent


def item(n: int = 1, **fields: Any) -> IntentIn:
    body = intent(n, **fields)
    body.pop("kind")
    parsed = msgspec.convert(body, OrderIntent)
    return IntentIn(n, 0, Source("f", n, 0), parsed, b"{}")


def core() -> SentinelCore:
    return SentinelCore({"binance": "paper", "live1": "live"}, SeenIds())


def refusal(result: Any) -> tuple[str, str, str]:
    assert isinstance(result, Entry) and isinstance(result.body, ExecutionOutcome)
    body = result.body
    assert body.filled_quantity == 0
    return body.status, body.reason or "", body.detail or ""


def test_accepts_a_plain_intent_with_its_plane() -> None:
    result = core().handle(item(venue="live1"))
    assert isinstance(result, Accepted) and result.plane == "live" and result.side == "buy"


@pytest.mark.parametrize(("fields", "reason", "detail"), [
    ({"venue": "kraken"}, reasons.INTENT_UNKNOWN_VENUE, "venue='kraken'"),
    ({"quantity": "0"}, reasons.INTENT_QUANTITY_NOT_POSITIVE, "quantity=0 must be > 0"),
    ({"quantity": "-2"}, reasons.INTENT_QUANTITY_NOT_POSITIVE, "quantity=-2"),
    ({"quantity": "NaN"}, reasons.INTENT_QUANTITY_NOT_POSITIVE, "quantity=NaN"),
    ({"order_type": "limit"}, reasons.INTENT_LIMIT_PRICE_MISSING, "needs limit_price"),
    ({"limit_price": "0"}, reasons.INTENT_PRICE_NOT_POSITIVE, "limit_price=0"),
    ({"reference_price": "-1"}, reasons.INTENT_PRICE_NOT_POSITIVE, "reference_price=-1"),
    ({"side": None}, reasons.INTENT_SIDE_MISSING, "side is missing"),
    ({"side": "sell", "action": "ADD"}, reasons.INTENT_SIDE_CONFLICT, "implies buy"),
])
def test_refuses_with_reason_and_numbers(fields: dict[str, Any], reason: str, detail: str) -> None:
    status, got_reason, got_detail = refusal(core().handle(item(**fields)))
    assert (status, got_reason) == ("REJECTED", reason)
    assert detail in got_detail


@pytest.mark.parametrize(("action", "side"), [("ADD", "buy"), ("RECLAIM", "buy"),
                                              ("TRIM", "sell"), ("EXIT", "sell"),
                                              ("EMERGENCY_EXIT", "sell")])
def test_action_implies_side(action: str, side: str) -> None:
    result = core().handle(item(side=None, action=action))
    assert isinstance(result, Accepted) and result.side == side


def test_hold_is_skipped_not_sent() -> None:
    assert refusal(core().handle(item(side=None, action="HOLD")))[:2] == \
        ("SKIPPED", reasons.INTENT_HOLD)


def test_a_repeated_intent_id_gets_no_second_order() -> None:
    """An intent id seen before never reaches a venue again: it is refused INTENT_DUPLICATE."""
    sentinel = core()
    assert isinstance(sentinel.handle(item(7)), Accepted)
    status, reason, _ = refusal(sentinel.handle(item(7, quantity="9")))
    assert (status, reason) == ("REJECTED", reasons.INTENT_DUPLICATE)


def test_a_refused_intent_id_is_also_taken() -> None:
    sentinel = core()
    refusal(sentinel.handle(item(8, quantity="0")))
    assert refusal(sentinel.handle(item(8)))[1] == reasons.INTENT_DUPLICATE


def test_identical_intents_without_ids_are_duplicates() -> None:
    """Two identical intents without ids never both reach a venue: their derived ids are equal."""
    sentinel = core()
    first = sentinel.handle(item(1, intent_id=None))
    assert isinstance(first, Accepted)
    assert refusal(sentinel.handle(item(1, intent_id=None)))[1] == reasons.INTENT_DUPLICATE
    other = sentinel.handle(item(1, intent_id=None, quantity=str(Decimal("0.6"))))
    assert isinstance(other, Accepted) and other.intent_id != first.intent_id


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 2**128 - 1), st.booleans()), max_size=300))
def test_seen_ids_behave_like_a_set(ops: list[tuple[int, bool]]) -> None:
    """The compact seen-id store never answers differently from a set, even when ids crowd one
    bucket.
    """
    seen, model = SeenIds(), set()
    for value, same_bucket in ops:
        if same_bucket:
            value = (value & ~0xFFFF) | 0x1234  # crowd one bucket, force straddling matches
        key = uuid.UUID(int=value)
        assert seen.add(key) == (value not in model)
        model.add(value)
    assert len(seen) == len(model)


def test_seen_ids_ignore_a_match_straddling_two_entries() -> None:
    tail = b"\x12\x34"  # the low 16 bits choose the bucket: both entries share one
    first = bytes(range(1, 15)) + tail
    second = tail + bytes(range(20, 32)) + tail
    seen = SeenIds()
    assert seen.add(uuid.UUID(bytes=first)) and seen.add(uuid.UUID(bytes=second))
    straddling = (first + second)[2:18]
    assert straddling.endswith(tail)
    assert seen.add(uuid.UUID(bytes=straddling)), "bytes across two entries are not an entry"
    assert not seen.add(uuid.UUID(bytes=straddling))
