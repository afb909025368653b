"""A refusal: why the sentinel gives an intent an outcome instead of an order.

A value, not an exception: a refused intent is an ordinary result of checking it, and it
becomes exactly one outcome in the ledger (docs/ARCHITECTURE.md, "Actors and streams").
"""

from __future__ import annotations

from typing import Literal

from msgspec import Struct


class Refusal(Struct, frozen=True, gc=False):
    """Why an intent gets no order: its reason code, a detail naming the numbers, its status.

    ``reason`` is one of the codes in :mod:`execd.model.reasons` (each documented in the
    README); ``detail`` says what was found against what was allowed
    (``notional=125000 > max_order_notional=100000``). ``status`` is REJECTED, or
    SKIPPED when there was simply nothing to do (a HOLD).
    """

    reason: str
    detail: str
    status: Literal["REJECTED", "SKIPPED"] = "REJECTED"
