"""The paper plane: seed 000's deterministic fill rule, exactly.

Every accepted intent is FILLED for its requested quantity, with no reason, no
partial fill and no failure. No I/O, no pricing logic: the recorded average price
is the intent's own limit (or reference) price when it gave one.
"""

from __future__ import annotations

from typing import Literal

from msgspec import Raw

from execd import ids
from execd.messages import Accepted, Entry, ExecutionOutcome


class PaperAdapter:
    """Fills everything, deterministically."""

    plane: Literal["paper"] = "paper"

    def __init__(self, venue: str) -> None:
        self.venue = venue

    def execute(self, item: Accepted) -> Entry:
        """The full fill of ``item``."""
        intent = item.intent
        outcome = ExecutionOutcome(
            execution_id=ids.execution_id(item.intent_id, self.venue, "paper"),
            intent_id=item.intent_id,
            status="FILLED",
            filled_quantity=intent.quantity,
            logical_time=item.time,
            plane="paper",
            venue=self.venue,
            symbol=intent.symbol,
            side=item.side,
            requested_quantity=intent.quantity,
            average_price=intent.limit_price if intent.limit_price is not None
            else intent.reference_price,
            source=item.source,
            intent=Raw(item.raw),
        )
        return Entry(item.seq, "outcome", item.time, outcome)
