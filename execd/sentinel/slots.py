"""What the risk checks read for one venue and one (venue, symbol), found with one lookup.

:class:`VenueRisk` is a venue's share of the risk state: its book, its pacing, how its
outcomes settle, whether its intents must be signed. :class:`Slot` joins it with one
symbol's position and resolved limits, so the hot path does one dictionary lookup per
intent (docs/ARCHITECTURE.md, "Actors and streams").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from execd.config.schema import Config, VenueLimits
from execd.model.messages import Plane
from execd.sentinel.book import Position, Settlement, VenueBook
from execd.sentinel.limits import Limits
from execd.sentinel.pacing import FailureCooldown, OrderRate

if TYPE_CHECKING:
    from execd.sentinel.checks import Check


class VenueRisk:
    """The per-venue part of the state: book, pacing, and how outcomes settle."""

    __slots__ = ("book", "cooldown", "plane", "rate", "settlement", "signed")

    def __init__(self, book: VenueBook, limits: VenueLimits, settlement: Settlement,
                 plane: Plane, signed: bool) -> None:
        self.book = book
        self.settlement = settlement
        self.plane = plane
        self.signed = signed
        self.rate = (OrderRate(limits.max_orders, limits.rate_window)
                     if limits.max_orders and limits.rate_window else None)
        self.cooldown = (FailureCooldown(limits.failure_limit, limits.failure_window,
                                         limits.cooldown)
                         if limits.failure_limit and limits.failure_window and limits.cooldown
                         else None)

    def keep_history(self, old: VenueRisk) -> None:
        """Carry ``old``'s counted orders and failures over to these (new) limits."""
        if self.rate is not None and old.rate is not None:
            self.rate.keep(old.rate)
        if self.cooldown is not None and old.cooldown is not None:
            self.cooldown.keep(old.cooldown)


class Slot:
    """Everything the checks need for one (venue, symbol), found with one lookup.

    ``checks``: the risk checks that can refuse anything here (see
    :func:`execd.sentinel.checks.checks_for`), and ``tables`` the ones that can refuse
    an intent of each shape: ``tables[order_type][constrained]``, where ``constrained``
    says whether the intent carries constraints; ``child_tables`` the same for a
    schedule's children, less the checks their parent passed for them. All kept by the
    Risk Sentinel.
    ``at_once``: the venue settles an order as it accepts it (read when the slot is made).
    """

    __slots__ = ("at_once", "book", "checks", "child_tables", "limits", "position", "tables",
                 "venue")

    def __init__(self, venue: VenueRisk, position: Position, limits: Limits) -> None:
        self.venue = venue
        self.book = venue.book
        self.position = position
        self.limits = limits
        self.at_once = venue.settlement == "fill"
        self.checks: tuple[Check, ...] = ()
        self.tables: dict[str, tuple[tuple[Check, ...], tuple[Check, ...]]] = {}
        self.child_tables: dict[str, tuple[tuple[Check, ...], tuple[Check, ...]]] = {}


def settlement_of(config: Config, venue: str) -> Settlement:
    """How the adapter configured for ``venue`` settles its orders."""
    v = config.venues[venue]
    if v.adapter_kind == "paper":
        return "fill"
    if v.adapter_kind == "stub":
        return "fill" if v.stub_result == "fill" else "fail"
    return "async"
