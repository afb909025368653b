"""Volume profiles for VWAP schedules: ``market/volume_profile.json`` in the lakehouse.

One object per symbol: the length of the profile's period in clock units (a day, for a
daily profile) and the share of the market's volume in each of its equal bins, from
the period's start (clock time 0 modulo the period)::

    {"BTC/USDT": {"period": 86400, "weights": ["0.9", "0.6", "0.5", "0.8", "1.2"]}}

Weights are decimals in JSON number syntax, at least 0 and not all 0 (they need not sum
to 1: only their ratios count), at most 10,000 bins. A symbol with no profile plans as
the default, a flat profile (README, "Execution algorithms"). A symbol whose profile is
unusable, or every symbol when the file cannot be read or decoded, is *unprofiled*: a
VWAP on it is refused rather than planned on a guess (fail closed, as every lakehouse
file is: reader/context.py).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from execd.schedule.plan import Profile

MAX_BINS = 10_000
Name = Annotated[str, Meta(min_length=1, max_length=256)]


class _Entry(Struct, frozen=True, forbid_unknown_fields=True):
    period: int
    weights: list[Decimal]


_decode = msgspec.json.Decoder(dict[Name, _Entry]).decode


class Profiles(Struct, frozen=True):
    """The usable profiles, and what is unprofiled: ``every`` symbol (the file could
    not be read), or those ``symbols`` whose profile is unusable."""

    profiles: dict[str, Profile]
    every: bool = False
    symbols: frozenset[str] = frozenset()

    def unusable(self, symbol: str) -> bool:
        """Whether a VWAP on ``symbol`` must be refused."""
        return self.every or symbol in self.symbols


NONE = Profiles({})


def _usable(entry: _Entry) -> Profile | None:
    weights = entry.weights
    if not (0 < entry.period <= 2**63 - 1 and 1 <= len(weights) <= MAX_BINS):
        return None
    if not all(w.is_finite() and w >= 0 and (w == 0 or -18 <= w.adjusted() <= 15)
               for w in weights) or not any(weights):
        return None
    return Profile(entry.period, tuple(weights))


def parse(data: bytes, name: str) -> tuple[Profiles, str | None]:
    """The profiles in ``data`` (the file's bytes) and the problem, if any."""
    try:
        entries = _decode(data)
    except msgspec.DecodeError as exc:
        return Profiles({}, every=True), f"{name}: {exc}"
    except RecursionError:
        return Profiles({}, every=True), f"{name}: JSON nested too deep to decode"
    good, bad = {}, []
    for symbol, entry in entries.items():
        profile = _usable(entry)
        if profile is None:
            bad.append(symbol)
        else:
            good[symbol] = profile
    if not bad:
        return Profiles(good), None
    shown = ", ".join(sorted(bad)[:5])
    return (Profiles(good, symbols=frozenset(bad)),
            f"{name}: no usable profile for {shown} (period > 0; 1 to {MAX_BINS} weights, "
            "each at least 0, not all 0)")


def path_of(market: Path) -> Path:
    """Where the profiles are, in the lakehouse's ``market/``."""
    return market / "volume_profile.json"
