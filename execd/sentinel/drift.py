"""Drift: what a live venue holds against what the ledger says execd holds there
(README, "What the venue holds"). Pure; the Risk Sentinel keeps one :class:`DriftState`
(``Risk.drift``), which the fold rebuilds from ``drift`` and ``holdings`` records.

Every venue here is spot: execd's position in a symbol is an amount of its base
asset, so each base asset is compared, summed over the venue's symbols that share it:

* the ledger's band is ``[sum(filled - pending_sell), sum(filled + pending_buy)]``:
  whatever the orders in flight do, the account ends inside it, so an order in flight
  is never drift;
* the account holds more than execd's fills (what it held before, deposits): the
  *baseline*. With ``baseline = "first"`` it is fixed by the first comparison with
  nothing in flight on the asset (a ``drift`` record in state ``baseline``);
  ``"zero"`` says every unit is execd's;
* drift is the venue's total outside ``baseline + band`` by more than the tolerance
  (default: the largest lot of the symbols), recorded once when it starts and once
  when it ends (``cleared``).

An asset that is the *quote* of one of the venue's symbols is never compared (its
balance moves with every trade's notional and fee, which the ledger does not book),
nor is an asset in the config's ``ignore``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

import msgspec
from msgspec import Struct

from execd.config.schema import CcxtConfig, DriftConfig
from execd.model.messages import DriftRecord, HoldingsRecord
from execd.sentinel.book import VenueBook

_ZERO = Decimal(0)


class Held(Struct, frozen=True):
    """A venue's last holdings record and its seq (a Safety Sell of what it holds)."""

    record: HoldingsRecord
    seq: int
    read: int | None = None  # a later read found the same (ns, wall clock)


# How old a holdings read may be for a Safety Sell of it, by default: three reads'
# worth, or five minutes where holdings are read at start-up only (holdings_ms = 0).
_READS, _START_ONLY_NS = 3, 300 * 10**9


def stale(held: Held, venue: str, wall: int | None, max_age: float | None,
          ccxt: CcxtConfig | None) -> str | None:
    """Why ``held`` is too old to sell from at wall time ``wall`` (ns), or None.

    ``max_age`` (seconds) is the operator's; by default three ``holdings_ms``. A record
    without a wall time (or a request without one) cannot be judged, and is not refused.
    """
    read = held.read if held.read is not None else held.record.wall_time
    if wall is None or read is None:
        return None
    every = ccxt.holdings_ms if ccxt is not None else 0
    if max_age is not None:
        limit, why = int(max_age * 1e9), f"--max-age {max_age:g} s"
    elif every:
        limit, why = _READS * every * 10**6, f"{_READS} x ccxt.holdings_ms ({every} ms)"
    else:
        limit, why = _START_ONLY_NS, "300 s (ccxt.holdings_ms = 0: read at start-up only)"
    age = wall - read
    if age <= limit:
        return None
    return (f"venue={venue!r}: its last holdings read (record seq {held.seq}) is "
            f"{age / 1e9:.1f} s old, more than {why}: what the account holds now may "
            "differ. Wait for the next read, or give --max-age")


class DriftState:
    """Per (venue, asset): the baseline, and the drift now (venue minus the band's
    nearer edge; absent while inside it); per venue, the last holdings."""

    def __init__(self) -> None:
        self.baselines: dict[tuple[str, str], Decimal] = {}
        self.drifting: dict[tuple[str, str], Decimal] = {}
        self.held: dict[str, Held] = {}

    def record(self, record: DriftRecord) -> None:
        """Apply one ``drift`` record (the sentinel's own, or the fold's)."""
        key = (record.venue, record.asset)
        if record.state == "baseline":
            self.baselines[key] = record.baseline
        elif record.state == "drift":
            self.drifting[key] = distance(record)
        else:
            self.drifting.pop(key, None)

    def holdings(self, record: HoldingsRecord, seq: int, read: int | None = None) -> None:
        """A ``holdings`` record, at ``seq`` (``read``: a later read found the same)."""
        self.held[record.venue] = Held(record, seq, read)

    def encode(self) -> bytes:
        """The state as JSON, for a snapshot."""
        return msgspec.json.encode({
            "baselines": [[v, a, str(q)] for (v, a), q in sorted(self.baselines.items())],
            "drifting": [[v, a, str(q)] for (v, a), q in sorted(self.drifting.items())],
            "held": [[h.seq, msgspec.json.decode(msgspec.json.encode(h.record))]
                     for _, h in sorted(self.held.items())]})

    @classmethod
    def decode(cls, data: bytes) -> DriftState:
        """A state :meth:`encode` made."""
        raw = msgspec.json.decode(data, type=_Encoded)
        state = cls()
        state.baselines = {(v, a): q for v, a, q in raw.baselines}
        state.drifting = {(v, a): q for v, a, q in raw.drifting}
        state.held = {record.venue: Held(record, seq) for seq, record in raw.held}
        return state


class _Encoded(Struct):
    baselines: list[tuple[str, str, Decimal]]
    drifting: list[tuple[str, str, Decimal]]
    held: list[tuple[int, HoldingsRecord]]


def distance(record: DriftRecord) -> Decimal:
    """How far the venue's quantity is outside the baseline plus the ledger's band
    (positive: the venue holds more; negative: less)."""
    low, high = record.baseline + record.ledger_low, record.baseline + record.ledger_high
    if record.venue_quantity > high:
        return record.venue_quantity - high
    if record.venue_quantity < low:
        return record.venue_quantity - low
    return _ZERO


def _base(symbol: str) -> tuple[str, str] | None:
    """(base, quote) of a spot symbol; None for a contract (``BTC/USDT:USDT``)."""
    base, slash, quote = symbol.partition("/")
    if not slash or ":" in quote or not base or not quote:
        return None
    return base, quote


def compare(state: DriftState, venue: str, holdings: HoldingsRecord, seq: int,
            book: VenueBook, config: DriftConfig, lots: Mapping[str, Decimal | None]
            ) -> list[DriftRecord]:
    """The ``drift`` records a quiet ``holdings`` read at ``seq`` gives (each applied to
    ``state``): baselines fixed, drift started or cleared. ``lots``: each symbol's lot at
    the venue (None: unknown), for the default tolerance."""
    bands: dict[str, list[Decimal]] = {}
    quotes: set[str] = set(config.ignore)
    lot: dict[str, Decimal] = {}
    for symbol, position in sorted(book.positions.items()):
        pair = _base(symbol)
        if pair is None:
            continue
        base, quote = pair
        quotes.add(quote)
        band = bands.setdefault(base, [_ZERO, _ZERO, _ZERO])
        band[0] += position.filled - position.pending_sell
        band[1] += position.filled + position.pending_buy
        band[2] += position.pending_buy + position.pending_sell
        step = lots.get(symbol)
        if step is not None:
            lot[base] = max(lot.get(base, _ZERO), step)
    out: list[DriftRecord] = []
    for asset in sorted(set(bands) - quotes):
        low, high, pending = bands[asset]
        held = holdings.total.get(asset, _ZERO)
        tolerance = config.tolerance if config.tolerance is not None else lot.get(asset, _ZERO)
        key = (venue, asset)
        baseline = state.baselines.get(key)
        if baseline is None and config.baseline == "zero":
            baseline = _ZERO
        if baseline is None:
            if pending:
                continue  # fixed by a later read with nothing in flight
            record = DriftRecord(venue, asset, "baseline", held, low, high, held - low,
                                 tolerance, config.action, seq)
            state.record(record)
            out.append(record)
            continue
        outside = held > baseline + high + tolerance or held < baseline + low - tolerance
        if outside == (key in state.drifting):
            if outside:  # still drifting: the gauge follows it
                state.drifting[key] = distance(DriftRecord(
                    venue, asset, "drift", held, low, high, baseline, tolerance))
            continue
        record = DriftRecord(venue, asset, "drift" if outside else "cleared", held, low, high,
                             baseline, tolerance, config.action, seq)
        state.record(record)
        out.append(record)
    return out


def venue_exits(held: HoldingsRecord, symbols: Iterable[str], symbol: str | None
                ) -> list[tuple[str, Decimal]] | str:
    """What a Safety Sell of what the venue holds sells (README, "Safety Sell"): per
    symbol, the ``free`` amount of its base asset; or why it cannot say. ``symbols``:
    the venue's symbols execd knows (its book); ``symbol``: only that one."""
    chosen = [symbol] if symbol is not None else sorted(set(symbols))
    by_asset: dict[str, list[str]] = {}
    for name in chosen:
        pair = _base(name)
        if pair is not None:
            by_asset.setdefault(pair[0], []).append(name)
    shared = sorted(asset for asset, names in by_asset.items() if len(names) > 1)
    if shared:
        return (f"{', '.join(shared)} is the base of several symbols "
                f"({', '.join(by_asset[shared[0]])}): name one with --symbol")
    return [(names[0], held.free[asset]) for asset, names in sorted(by_asset.items())
            if held.free.get(asset, _ZERO) > _ZERO]
