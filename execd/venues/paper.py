"""The paper plane: a deterministic full fill of every accepted intent (docs/CONTRACT.md, Planes).

Every accepted intent is FILLED for its requested quantity, with no reason, no
partial fill and no failure. No I/O, no pricing logic: the recorded average price
is the intent's own limit (or reference) price when it gave one.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import Raw

from execd.model import ids
from execd.model.messages import Accepted, Entry, ExecutionOutcome
from execd.policy.orders import paper_plan


class PaperAdapter:
    """Fills everything, deterministically."""

    plane: Literal["paper"] = "paper"

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._execution_id = ids.ExecutionIds(venue, "paper")

    def execute(self, item: Accepted) -> Entry:
        """The full fill of ``item``."""
        intent = item.intent
        quantity = intent.absolute
        price = intent.limit_price
        # Positional: this runs once per intent, and keywords cost a third more.
        outcome = ExecutionOutcome(
            self._execution_id(item.intent_id), item.intent_id, "FILLED", quantity, item.time,
            "paper", self.venue, intent.symbol, item.side, quantity,
            price if price is not None else intent.reference_price,
            None, None, item.source, Raw(item.raw), plan=paper_plan(intent, item.rule),
            sizing=item.sizing,
        )
        if item.parent is not None:
            # A schedule's child (README, "Execution algorithms") names its parent.
            outcome = msgspec.structs.replace(outcome, parent=item.parent)
        return Entry(item.seq, "outcome", item.time, outcome)
