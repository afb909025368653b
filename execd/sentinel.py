"""The Risk Sentinel actor: decides whether an intent may reach a venue.

Core (:class:`SentinelCore`): a pure function of (intent, what it has seen,
config). Every refusal is an outcome with a reason code and a detail that names
the numbers. This issue's checks are structural; risk limits build on the same core.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal

from anyio.abc import ObjectReceiveStream, ObjectSendStream

from execd import ids, reasons
from execd.messages import (
    Accepted,
    Entry,
    ExecutionOutcome,
    IntentIn,
    OrderIntent,
    Plane,
    ReaderItem,
    RouterItem,
    Side,
    encode,
)

_ZERO = Decimal(0)
# What an action implies about the side of the order, for long positions.
_ACTION_SIDE: dict[str, Side] = {
    "ADD": "buy", "RECLAIM": "buy", "TRIM": "sell", "EXIT": "sell", "EMERGENCY_EXIT": "sell",
}


class SeenIds:
    """Intent ids that already have an outcome: a second intent with one gets no order.

    Exact, and compact because it lives as long as the ledger: each id is its 16
    raw bytes appended to one of 65,536 bytearray buckets chosen by its low bits,
    about 18 bytes an id where a set of ints costs about 95. A lookup scans one
    bucket with ``bytearray.find`` (a few hundred bytes at a million ids).
    """

    _BUCKETS = 1 << 16

    def __init__(self) -> None:
        self._buckets = [bytearray() for _ in range(self._BUCKETS)]
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, intent_id: uuid.UUID) -> bool:
        """Record ``intent_id``; False if it was already there."""
        key = intent_id.int
        needle = key.to_bytes(16, "big")
        bucket = self._buckets[key & 0xFFFF]
        at = bucket.find(needle)
        while at >= 0:
            if at % 16 == 0:
                return False
            # A match straddling two entries is not an entry: look further.
            at = bucket.find(needle, at + 1)
        bucket += needle
        self._count += 1
        return True


def _positive(value: Decimal) -> bool:
    # is_finite first: ordering a NaN raises InvalidOperation.
    return value.is_finite() and value > _ZERO


class SentinelCore:
    """Structural checks, in a fixed order; the first failure is the outcome."""

    def __init__(self, planes: Mapping[str, Plane], seen: SeenIds) -> None:
        self.planes = planes
        self.seen = seen

    def handle(self, item: IntentIn) -> RouterItem:
        """Accept ``item`` for its venue, or return its refusal outcome."""
        intent = item.intent
        intent_id = intent.intent_id
        if intent_id is None:
            # No id given: the id of the intent's canonical content.
            intent_id = ids.derived_intent_id(encode(intent))
        if not self.seen.add(intent_id):
            return self._refuse(item, intent_id, "REJECTED", reasons.INTENT_DUPLICATE,
                                f"intent_id={intent_id} already has an outcome")
        plane = self.planes.get(intent.venue)
        if plane is None:
            return self._refuse(item, intent_id, "REJECTED", reasons.INTENT_UNKNOWN_VENUE,
                                f"venue={intent.venue!r} is not in the config "
                                f"(known: {', '.join(sorted(self.planes))})")
        quantity = intent.quantity
        if not (quantity.is_finite() and quantity > _ZERO):
            return self._refuse(item, intent_id, "REJECTED", reasons.INTENT_QUANTITY_NOT_POSITIVE,
                                f"quantity={intent.quantity} must be > 0")
        side = self._side(intent)
        if isinstance(side, tuple):
            return self._refuse(item, intent_id, "REJECTED", *side)
        if intent.action == "HOLD":
            return self._refuse(item, intent_id, "SKIPPED", reasons.INTENT_HOLD,
                                "action=HOLD: nothing to execute")
        limit, reference = intent.limit_price, intent.reference_price
        if not ((limit is None or (limit.is_finite() and limit > _ZERO))
                and (reference is None or (reference.is_finite() and reference > _ZERO))
                and (limit is not None or intent.order_type == "market")):
            return self._refuse(item, intent_id, "REJECTED", *self._prices(intent))
        return Accepted(item.seq, item.time, item.source, intent, item.raw, intent_id,
                        side or "buy", plane)

    @staticmethod
    def _side(intent: OrderIntent) -> Side | tuple[str, str] | None:
        if intent.action is None and intent.side is not None:
            return intent.side
        implied = _ACTION_SIDE.get(intent.action or "")
        if intent.side is None:
            if implied is None and intent.action != "HOLD":
                return (reasons.INTENT_SIDE_MISSING,
                        f"side is missing and action={intent.action} implies none")
            return implied
        if implied is not None and implied != intent.side:
            return (reasons.INTENT_SIDE_CONFLICT,
                    f"side={intent.side} but action={intent.action} implies {implied}")
        return intent.side

    @staticmethod
    def _prices(intent: OrderIntent) -> tuple[str, str]:
        """Why the prices of ``intent`` are refused (called only when they are)."""
        if intent.order_type == "limit" and intent.limit_price is None:
            return (reasons.INTENT_LIMIT_PRICE_MISSING, "order_type=limit needs limit_price")
        for name in ("limit_price", "reference_price"):
            value = getattr(intent, name)
            if value is not None and not _positive(value):
                return (reasons.INTENT_PRICE_NOT_POSITIVE, f"{name}={value} must be > 0")
        raise AssertionError("prices refused without a reason")

    def _refuse(self, item: IntentIn, intent_id: uuid.UUID, status: str, reason: str,
                detail: str) -> Entry:
        intent = item.intent
        plane = self.planes.get(intent.venue)
        outcome = ExecutionOutcome(
            execution_id=ids.execution_id(intent_id, intent.venue, plane or "none"),
            intent_id=intent_id,
            status=status,  # type: ignore[arg-type]
            filled_quantity=_ZERO,
            logical_time=item.time,
            plane=plane,
            venue=intent.venue,
            symbol=intent.symbol,
            side=intent.side,
            requested_quantity=intent.quantity,
            reason=reason,
            detail=detail,
            source=item.source,
        )
        return Entry(item.seq, "outcome", item.time, outcome)

    def handle_batch(self, batch: list[ReaderItem]) -> list[RouterItem]:
        """Decide every intent of a batch; other items pass through unchanged."""
        handle = self.handle
        return [handle(item) if type(item) is IntentIn else item for item in batch]  # type: ignore[misc]


async def run_sentinel(
    core: SentinelCore,
    receive: ObjectReceiveStream[list[ReaderItem]],
    send: ObjectSendStream[list[RouterItem]],
) -> None:
    """The sentinel's shell: batches in, decided batches out, until the reader closes."""
    async with receive, send:
        async for batch in receive:
            await send.send(core.handle_batch(batch))
