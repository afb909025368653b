"""What a venue says the account holds (README, "What the venue holds"), sans I/O.

ccxt's ``fetch_balance`` gives, per asset, what is ``free``, ``used`` (in open orders)
and the ``total``. Every venue execd trades here is spot, where a position is an
amount of the base asset: the Risk Sentinel compares ``total`` with what the ledger
says (sentinel/drift.py), and a Safety Sell of what the venue holds sells ``free``.
Contract positions (``fetch_positions``) have no venue here to be tested against, so
they are not read.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from execd.venues.ccxt.prepare import number

# At most this many assets are kept from one reply (an exchange lists every coin it has).
MAX_ASSETS = 4096


def amounts(balance: Any, key: str) -> dict[str, Decimal]:
    """``balance[key]`` (``total`` or ``free``) as exact decimals, sorted by asset, without
    zeros or what is not a finite number at least 0; at most :data:`MAX_ASSETS`."""
    table = balance.get(key) if isinstance(balance, dict) else None
    if not isinstance(table, dict):
        return {}
    out: dict[str, Decimal] = {}
    for asset in sorted(a for a in table if isinstance(a, str) and 0 < len(a) <= 64):
        try:
            value = number(table[asset])
        except (ArithmeticError, ValueError, TypeError):  # a venue's odd value: not an amount
            continue
        if value is not None and value.is_finite() and value > 0:
            out[asset] = value
            if len(out) >= MAX_ASSETS:
                break
    return out
