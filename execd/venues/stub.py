"""The live stub: a live-plane venue with no I/O and a fixed answer.

Configured per venue to fill every intent, or to fail every intent with one of the
execution reason codes (README, Outcomes, statuses and reason codes). It exists so
the live path (plane recording, failure outcomes) can be exercised deterministically
without an exchange.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from msgspec import Raw

from execd.model import ids
from execd.model.messages import Accepted, Entry, ExecutionOutcome
from execd.policy.orders import paper_plan

_ZERO = Decimal(0)


class StubAdapter:
    """Deterministic success or deterministic failure."""

    plane: Literal["live"] = "live"

    def __init__(self, venue: str, result: Literal["fill", "fail"], reason: str) -> None:
        self.venue = venue
        self.result = result
        self.reason = reason
        self._execution_id = ids.ExecutionIds(venue, "live")

    def execute(self, item: Accepted) -> Entry:
        """The configured answer for ``item``."""
        intent = item.intent
        filled = self.result == "fill"
        outcome = ExecutionOutcome(
            execution_id=self._execution_id(item.intent_id),
            intent_id=item.intent_id,
            status="FILLED" if filled else "FAILED",
            filled_quantity=intent.absolute if filled else _ZERO,
            logical_time=item.time,
            plane="live",
            venue=self.venue,
            symbol=intent.symbol,
            side=item.side,
            requested_quantity=intent.quantity,
            reason=None if filled else self.reason,
            detail=None if filled else "live stub configured to fail",
            source=item.source,
            intent=Raw(item.raw),
            # No market rules: its plan is the paper plane's, which it mirrors.
            plan=paper_plan(intent, item.rule),
            sizing=item.sizing,
        )
        return Entry(item.seq, "outcome", item.time, outcome)
