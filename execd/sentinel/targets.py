"""Target portfolios (README, "Targets"): what a portfolio should hold, turned into the
orders that get it there.

A producer says what portfolio ``P`` should hold at a venue (quantities, or weights of
a capital); execd sends, per symbol, **target - position - pending** (QuantConnect
LEAN's rule): the position and what is in flight are the Risk Sentinel's (filled plus
pending buys minus pending sells), so an order in flight is never sent twice and a
newer target never overshoots. Each difference goes on as an intent of its own (a
*leg*) through every check, the policy and the scheduler, with an id derived from
the target's digest and the symbol: a target read again sends nothing.

A newer target for the same portfolio (a later ``as_of``) supersedes the one before:
the open schedules of its legs end (``SCHEDULE_SUPERSEDED``; a live child out is
cancelled), then the new differences are computed from what filled and what is still
in flight; a symbol whose ended schedule still has a live child out is *deferred*
until that child settles (:func:`release`), since what it fills is not known before.
A full target sets every symbol of the one it supersedes that it leaves out to 0
(LEAN); a drift monitor's target orders (``drift_target``) leave them as they were.
The decisions are pure functions of the sentinel's state; the state
(:class:`Targets`) is the fold's too, rebuilt from ``target`` records.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import msgspec
from msgspec import Struct

from execd.model import ids, reasons
from execd.model.messages import (
    Action,
    DriftTarget,
    Entry,
    ExecutionOutcome,
    IntentIn,
    LegRecord,
    OrderIntent,
    RouterItem,
    Side,
    Target,
    TargetIn,
    TargetRecord,
    encode,
)
from execd.model.refusal import Refusal
from execd.sentinel.signatures import sign, verify
from execd.sentinel.sizing import _EXACT, _plain, expected
from execd.venues.ccxt.prepare import round_down

if TYPE_CHECKING:
    from execd.sentinel.core import SentinelCore
    from execd.sentinel.risk import Risk

_ZERO, _ONE = Decimal(0), Decimal(1)
# At most this many symbols in one target.
MAX_SYMBOLS = 1000
# Within 1e-18 .. 1e15 by adjusted exponent, as every number the sentinel takes
# (sentinel/core.py): below 1e16.
_LEAST, _BEYOND = Decimal("1e-18"), Decimal("1e16")


class Portfolio(Struct):
    """A portfolio's last target: its id, as_of, venue, each symbol's target, and the
    leg ids sent for it (symbol -> id)."""

    target_id: uuid.UUID
    as_of: int
    venue: str
    targets: dict[str, Decimal]
    legs: dict[str, uuid.UUID]


class _Encoded(Struct):
    portfolios: list[tuple[str, Portfolio]]
    owners: list[tuple[str, str, str]] = []
    # Each target record with legs awaiting once, and those legs' ids.
    awaiting: list[tuple[TargetRecord, list[uuid.UUID]]] = []
    ending: list[tuple[uuid.UUID, str]] = []


class _EncodedLater(_Encoded):
    """With deferred legs: each target record with some once, (leg id, the superseded
    parent). A state without any is encoded as :class:`_Encoded`, so its checkpoints'
    bytes are what they were before deferred legs existed."""

    deferred: list[tuple[TargetRecord, list[tuple[uuid.UUID, uuid.UUID]]]] = []


class Targets:
    """Every portfolio's last target and who owns each (venue, symbol); and what a stop
    may have cut off after a ``target`` record: legs with no order, outcome or schedule
    record yet (``awaiting``), and superseded schedules with no outcome yet
    (``ending``), which the next start carries out (:func:`catch_up`). Bounded by the
    portfolios, the symbols their targets name and what is in flight."""

    def __init__(self) -> None:
        self.portfolios: dict[str, Portfolio] = {}
        self.owners: dict[tuple[str, str], str] = {}
        self.awaiting: dict[uuid.UUID, tuple[TargetRecord, LegRecord]] = {}
        self.ending: dict[uuid.UUID, str] = {}
        # Legs computed once a superseded schedule's live child settles: leg id ->
        # (its target record, the leg, that schedule's parent).
        self.deferred: dict[uuid.UUID, tuple[TargetRecord, LegRecord, uuid.UUID]] = {}

    @property
    def open(self) -> bool:
        """Whether a record may still take a leg off (awaiting or deferred)."""
        return bool(self.awaiting or self.deferred)

    @property
    def pending(self) -> bool:
        """Whether a start has anything of targets to carry out (:func:`catch_up`)."""
        return bool(self.awaiting or self.ending or self.deferred)

    def record(self, record: TargetRecord) -> None:
        """Apply one ``target`` record (the sentinel's own, or the fold's)."""
        before = self.portfolios.get(record.portfolio_id)
        targets = dict(before.targets) if before is not None and record.partial else {}
        legs = dict(before.legs) if before is not None and record.partial else {}
        for leg in record.legs:
            targets[leg.symbol] = leg.target
            if leg.leg is not None and leg.what == "deferred":
                parent = before.legs.get(leg.symbol) if before is not None else None
                if parent in self.deferred:  # replacing a deferred one: the same child
                    parent = self.deferred[parent][2]
                if parent is not None:
                    self.deferred[leg.leg] = (record, leg, parent)
                legs[leg.symbol] = leg.leg
            elif leg.leg is not None:
                legs[leg.symbol] = leg.leg
                self.awaiting[leg.leg] = (record, leg)
            else:
                legs.pop(leg.symbol, None)
            self.owners[(record.venue, leg.symbol)] = record.portfolio_id
        for parent in record.ended:
            self.ending[parent] = f"superseded by target {record.target_id} of portfolio " \
                                  f"{record.portfolio_id}"
        # A symbol at 0 with no leg out is dropped: the state is bounded by what is held
        # or wanted, not by every symbol ever named.
        targets = {s: t for s, t in targets.items() if t or s in legs}
        self.portfolios[record.portfolio_id] = Portfolio(
            record.target_id, record.as_of, record.venue, targets, legs)

    def taken(self, intent_id: uuid.UUID, summary: bool) -> None:
        """``intent_id`` has an order, schedule or outcome record (``summary``: a
        parent's outcome): a leg awaiting it, or a superseded schedule, is done."""
        self.awaiting.pop(intent_id, None)
        self.deferred.pop(intent_id, None)
        if summary:
            self.ending.pop(intent_id, None)

    def encode(self) -> bytes:
        """The state as JSON, for a snapshot."""
        records: dict[uuid.UUID, tuple[TargetRecord, list[uuid.UUID]]] = {}
        for leg_id_, (record, _) in self.awaiting.items():
            records.setdefault(record.target_id, (record, []))[1].append(leg_id_)
        later: dict[uuid.UUID, tuple[TargetRecord, list[tuple[uuid.UUID, uuid.UUID]]]] = {}
        for leg_id_, (record, _, parent) in self.deferred.items():
            later.setdefault(record.target_id, (record, []))[1].append((leg_id_, parent))
        parts = (sorted(self.portfolios.items()),
                 [(v, s, p) for (v, s), p in sorted(self.owners.items())],
                 list(records.values()), list(self.ending.items()))
        return msgspec.json.encode(_EncodedLater(*parts, list(later.values())) if later
                                   else _Encoded(*parts))

    @classmethod
    def decode(cls, data: bytes) -> Targets:
        """A state :meth:`encode` made."""
        raw = msgspec.json.decode(data, type=_EncodedLater)
        state = cls()
        state.portfolios = dict(raw.portfolios)
        state.owners = {(venue, symbol): name for venue, symbol, name in raw.owners}
        for record, waiting in raw.awaiting:
            legs = {leg.leg: leg for leg in record.legs if leg.leg is not None}
            state.awaiting.update((i, (record, legs[i])) for i in waiting if i in legs)
        state.ending = dict(raw.ending)
        for record, held in raw.deferred:
            legs = {leg.leg: leg for leg in record.legs if leg.leg is not None}
            state.deferred.update((i, (record, legs[i], parent)) for i, parent in held
                                  if i in legs)
        return state


def digest(target: Target | DriftTarget) -> tuple[str, uuid.UUID]:
    """A target's canonical digest and id: reformatting a file is no new target. Its
    signature is part of it: a target refused unsigned (its id has its one outcome)
    may come again signed."""
    sha = hashlib.sha256(encode(target)).hexdigest()
    return sha, uuid.UUID(ids.uuid5(ids.TARGET_NS, sha.encode()))


def leg_id(sha: str, venue: str, symbol: str) -> uuid.UUID:
    """The id of the one order a target may send for ``symbol``."""
    return uuid.UUID(ids.uuid5(ids.TARGET_NS, f"{sha}|{venue}|{symbol}".encode()))


def _decimal_ok(value: Decimal, *, zero: bool) -> bool:
    try:
        return value.is_finite() and ((value == 0 and zero) or _LEAST <= value < _BEYOND)
    except InvalidOperation:
        return False


def wanted(core: SentinelCore, item: TargetIn
           ) -> tuple[dict[str, Decimal], dict[str, Decimal]] | Refusal:
    """What each symbol the target names should be (a weight at its price), and the
    price known for each; or why the target cannot be worked. Checks that need no state
    but the venue's listing."""
    target = item.target
    if not isinstance(target, DriftTarget) and target.route is not None:
        return Refusal(reasons.TARGET_INVALID, "a target names a venue, not a route")
    if target.venue not in core.planes:
        return Refusal(reasons.TARGET_INVALID, f"venue={target.venue!r} is not in the config "
                       f"(known: {', '.join(sorted(core.planes))})")
    pairs: list[tuple[str, Decimal | None, Decimal | None, Decimal | None]]
    if isinstance(target, DriftTarget):
        pairs = [(o.symbol, o.target_quantity, None, None) for o in target.orders]
        capital = None
    else:
        pairs = [(leg.symbol, leg.quantity, leg.weight, leg.price) for leg in target.targets]
        capital = target.capital
    if not pairs or len(pairs) > MAX_SYMBOLS:
        return Refusal(reasons.TARGET_INVALID, f"{len(pairs)} symbols: a target names 1 to "
                       f"{MAX_SYMBOLS}")
    names = [p[0] for p in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return Refusal(reasons.TARGET_INVALID, f"symbols named twice: {', '.join(twice[:5])}")
    both = [p[0] for p in pairs if (p[1] is None) == (p[2] is None)]
    if both:
        return Refusal(reasons.TARGET_INVALID,
                       f"{both[0]}: give exactly one of quantity and weight")
    weights = [p for p in pairs if p[2] is not None]
    if capital is not None and not _decimal_ok(capital, zero=False):
        return Refusal(reasons.TARGET_CAPITAL_INVALID,
                       f"capital={capital} must be a decimal within 1e-18 .. 1e15")
    if weights and capital is None:
        return Refusal(reasons.TARGET_CAPITAL_INVALID, "weights need a capital")
    total = _ZERO
    out: dict[str, Decimal] = {}
    prices: dict[str, Decimal] = {}
    known = core.risk.context.prices if core.risk is not None else {}
    market = core.schedules.markets.get(target.venue)
    for symbol, quantity, weight, price in pairs:
        if market is not None and symbol not in market.rules:
            return Refusal(reasons.TARGET_UNKNOWN_SYMBOL,
                           f"{symbol} is not listed on venue {target.venue}")
        if quantity is not None:
            if not _decimal_ok(quantity, zero=True):
                return Refusal(reasons.TARGET_INVALID, f"{symbol}: quantity={quantity} must be "
                               "0 or a decimal within 1e-18 .. 1e15 (spot: no short)")
            out[symbol] = quantity
            price = price if price is not None else known.get(symbol)
            if price is not None and _decimal_ok(price, zero=False):
                prices[symbol] = price
            continue
        assert weight is not None
        assert capital is not None
        if not _decimal_ok(weight, zero=True) or weight > _ONE:
            return Refusal(reasons.TARGET_INVALID, f"{symbol}: weight={weight} must be within "
                           "0 .. 1 (spot: no short)")
        total += weight
        price = price if price is not None else known.get(symbol)
        if price is None or not _decimal_ok(price, zero=False):
            return Refusal(reasons.TARGET_PRICE_UNKNOWN, f"{symbol}: weight={weight} needs a "
                           "price (the target's, or market/prices.json)")
        out[symbol] = _plain(_EXACT.divide(_EXACT.multiply(weight, capital), price))
        prices[symbol] = price
    if total > _ONE and not (not isinstance(target, DriftTarget) and target.leverage_allowed):
        return Refusal(reasons.TARGET_WEIGHTS_EXCEEDED,
                       f"weights add up to {total} > 1 without leverage_allowed")
    return out, prices


def _refused(item: TargetIn, seq: int, target_id: uuid.UUID, refusal: Refusal) -> Entry:
    target = item.target
    return Entry(seq, "outcome", item.time, ExecutionOutcome(
        execution_id=ids.execution_id(target_id, target.venue, "none"), intent_id=target_id,
        status=refusal.status, filled_quantity=_ZERO, logical_time=item.time,
        venue=target.venue, reason=refusal.reason, detail=refusal.detail,
        source=item.source, intent=msgspec.Raw(item.raw)))


def target(core: SentinelCore, item: TargetIn) -> Entry:
    """``item``'s ``target`` record (its legs and what it supersedes go to the core's
    inserted records, after it), or its refusal."""
    seq = item.seq + core.shift
    spec = item.target
    sha, target_id = digest(spec)
    if not core.seen.add(target_id):
        return _refused(item, seq, target_id, Refusal(
            reasons.TARGET_REPEATED, f"target {target_id} was read before: nothing to send",
            "SKIPPED"))
    risk = core.require_risk()
    signed = _signature(risk, item)
    if isinstance(signed, Refusal):
        return _refused(item, seq, target_id, signed)
    state = risk.targets
    before = state.portfolios.get(spec.portfolio_id)
    if before is not None and spec.as_of <= before.as_of:
        return _refused(item, seq, target_id, Refusal(
            reasons.TARGET_STALE, f"as_of={spec.as_of} is not after the portfolio's last "
            f"target's ({before.as_of}, target {before.target_id})"))
    got = wanted(core, item)
    if isinstance(got, Refusal):
        return _refused(item, seq, target_id, got)
    found, prices = got
    claimed = sorted(symbol for symbol in found
                     if state.owners.get((spec.venue, symbol), spec.portfolio_id)
                     != spec.portfolio_id)
    if claimed:
        return _refused(item, seq, target_id, Refusal(
            reasons.TARGET_SYMBOL_CLAIMED, f"{', '.join(claimed[:5])} at {spec.venue} "
            f"belong to portfolio {state.owners[(spec.venue, claimed[0])]!r}"))
    if before is not None and before.venue != spec.venue:
        return _refused(item, seq, target_id, Refusal(
            reasons.TARGET_INVALID, f"portfolio {spec.portfolio_id!r} is held at venue "
            f"{before.venue} (its targets name one venue)"))
    partial = isinstance(spec, DriftTarget)
    if before is not None and not partial:
        for symbol, was in before.targets.items():  # LEAN: left out of a full target: 0
            if was:  # one already at 0 stays there without a leg (and out of the record)
                found.setdefault(symbol, _ZERO)
    core.next_in = item.seq + 1
    ending = sorted(leg for symbol, leg in (before.legs.items() if before else ())
                    if symbol in found and leg in core.schedules.core)
    if ending:
        # First: what the ended schedules held pending is released before the new
        # differences are computed (their records still follow the target's).
        _end(core, set(ending), state, item.time)
    # A superseded schedule with a live child out ends when that child settles: what
    # it fills is not known yet, so the symbol's order waits for it.
    # A deferred order of the target before, for a symbol this one names, is replaced
    # by this one's (deferred too while that child is still out).
    replaced = {symbol: prev for symbol, prev in (before.legs.items() if before else ())
                if symbol in found and prev in state.deferred}
    waits = {symbol: state.deferred[prev][2] if symbol in replaced else prev
             for symbol, prev in (before.legs.items() if before else ())
             if symbol in found and (prev in ending or symbol in replaced)}
    later = {symbol for symbol, parent in waits.items() if parent in core.schedules.core}
    legs = list(_legs(core, spec, sha, found, prices, later))
    record = TargetRecord(
        target_id, sha, spec.portfolio_id, spec.source_run, spec.as_of, spec.venue, legs,
        partial, None if isinstance(spec, DriftTarget) else spec.capital,
        before.target_id if before is not None else None, ending, spec.urgency, spec.priority,
        None if isinstance(spec, DriftTarget) else spec.plan_id,
        None if isinstance(spec, DriftTarget) else spec.execution, item.source, signed)
    state.record(record)
    for parent in ending:
        if parent not in core.schedules.core:  # its outcome is recorded with this target
            state.ending.pop(parent, None)
    for prev in sorted(replaced.values()):
        _replaced(core, state, prev, record, item.seq + 1)
    for leg in legs:
        if leg.leg is not None and leg.what == "sent":
            _send(core, record, leg, item.seq + 1, item.time)
    return Entry(seq, "target", item.time, record)


def _replaced(core: SentinelCore, state: Targets, prev: uuid.UUID, by: TargetRecord,
              seq: int) -> None:
    """The outcome of a deferred order, never sent, that the newer target ``by``
    replaces: SKIPPED ``TARGET_SUPERSEDED`` (its one outcome)."""
    record, leg, _ = state.deferred.pop(prev)
    _skip(core, record, leg, seq, Refusal(
        reasons.TARGET_SUPERSEDED, f"{leg.symbol}: deferred, never sent; target "
        f"{by.target_id} of portfolio {by.portfolio_id} came first", "SKIPPED"))


def _skip(core: SentinelCore, record: TargetRecord, leg: LegRecord, seq: int,
          refusal: Refusal) -> None:
    """A deferred leg's one outcome without an order (``refusal``): an intent of
    quantity 0 on the side it would have taken, in the core's inserted records."""
    assert leg.leg is not None
    way = _ONE if leg.target >= leg.position else -_ONE
    intent = leg_intent(record, msgspec.structs.replace(leg, quantity=way))
    item = IntentIn(seq, core.time, None, msgspec.structs.replace(intent, quantity=_ZERO),
                    encode(intent))
    if core.seen.add(leg.leg):
        core._inserted.append(core.refuse(item, leg.leg, refusal))
        core.shift += 1


def _signature(risk: Risk, item: TargetIn) -> bool | Refusal:
    """Whether the target is signed and its signature valid; or why it is refused: a
    venue that requires signatures requires them of targets as of intents (README,
    "Signatures"), and a signature there is checked whenever a key is."""
    spec, key = item.target, risk.rules.key
    venue = risk.venues.get(spec.venue)
    if spec.signature is None:
        if venue is None or not venue.signed:
            return False
        return Refusal(reasons.PROVENANCE_SIGNATURE_MISSING,
                       f"venue={spec.venue} is on the {venue.plane} plane and "
                       f"risk.signatures={risk.rules.signatures!r}")
    if key is None:
        return False  # nothing to prove it with, and not required
    try:
        valid = verify(key, item.raw, spec.signature)
    except ValueError:
        valid = False
    if not valid:
        return Refusal(reasons.PROVENANCE_SIGNATURE_INVALID,
                       "HMAC-SHA256 of the canonical target does not match signature="
                       f"{spec.signature[:12]}…")
    return True


def catch_up(core: SentinelCore) -> list[RouterItem]:
    """What a stop cut off after ``target`` records (a start's, after the fold): the
    superseded schedules ended, then the legs sent, as the uninterrupted run did."""
    state = core.require_risk().targets
    if state.ending:
        _end(core, set(state.ending), state, core.time)
    for record, leg in list(state.awaiting.values()):
        _send(core, record, leg, core.next_in, core.time)
    out = list(core._inserted)
    core._inserted.clear()
    return out + (release(core) if state.deferred else [])


def _end(core: SentinelCore, parents: set[uuid.UUID], state: Targets, now: int) -> None:
    """End the open schedules of ``parents``, at ``now``: their outcomes go to the
    core's inserted records (a live one's when its child out settles)."""
    out: list[RouterItem] = []
    note = next((state.ending[p] for p in sorted(parents) if p in state.ending),
                "superseded by a newer target")
    core.schedules.end(lambda s: s.record.intent_id not in parents,
                       reasons.SCHEDULE_SUPERSEDED, now, core._number, out, note)
    for entry in out:
        if type(entry) is Entry and type(entry.body) is ExecutionOutcome:
            state.ending.pop(entry.body.intent_id, None)
    core._inserted.extend(out)


def _legs(core: SentinelCore, spec: Target | DriftTarget, sha: str,
          found: dict[str, Decimal], prices: dict[str, Decimal], later: set[str]
          ) -> Iterator[LegRecord]:
    """Per symbol: the target, the position with what is in flight, and the order (of
    a symbol in ``later``: deferred, its quantity computed when it is sent)."""
    for symbol, goal in sorted(found.items()):
        now, diff = _difference(core, spec.venue, symbol, goal)
        if symbol in later:
            yield LegRecord(symbol, goal, now, _ZERO, leg_id(sha, spec.venue, symbol),
                            "deferred", prices.get(symbol))
        elif not diff:
            yield LegRecord(symbol, goal, now, _ZERO, None, "reached")
        else:
            yield LegRecord(symbol, goal, now, diff, leg_id(sha, spec.venue, symbol),
                            "sent", prices.get(symbol))


def _difference(core: SentinelCore, venue: str, symbol: str, goal: Decimal
                ) -> tuple[Decimal, Decimal]:
    """The position with what is in flight, and the order that brings it to ``goal``."""
    held = core.require_risk().book.venue(venue).positions.get(symbol)
    now = expected(held) if held is not None else _ZERO
    diff = _EXACT.subtract(goal, now)
    if diff < 0 and held is not None:
        # Spot: a leg never sells more than is held now, whatever buys are in flight
        # (they may not fill); what they add, a later target trims.
        diff = max(diff, -max(held.filled - held.pending_sell, _ZERO))
    elif diff < 0:
        diff = _ZERO
    market = core.schedules.markets.get(venue)
    rules = market.rules.get(symbol) if market is not None else None
    if rules is not None and rules.amount_step is not None:
        # Toward zero, on the venue's lot: never more than the difference.
        diff = round_down(abs(diff), rules.amount_step) * (1 if diff > 0 else -1)
    return now, _plain(diff)  # cut toward zero to 1e-18: never past the target


def release(core: SentinelCore) -> list[RouterItem]:
    """The deferred legs whose superseded schedules have ended (their live child
    settled, the parent's outcome recorded): each computed now and sent, or, when
    nothing is left to do, ``SKIPPED`` ``TARGET_REACHED``."""
    state = core.require_risk().targets
    for leg_id_, (record, leg, parent) in sorted(state.deferred.items()):
        if parent in core.schedules.core:
            continue
        state.ending.pop(parent, None)  # its outcome is recorded (the step before this)
        del state.deferred[leg_id_]
        now, diff = _difference(core, record.venue, leg.symbol, leg.target)
        due = msgspec.structs.replace(leg, position=now, quantity=diff, what="sent")
        if diff:
            _send(core, record, due, core.next_in, core.time)
            continue
        _skip(core, record, due, core.next_in, Refusal(
            reasons.TARGET_REACHED, f"{leg.symbol} holds {now} with what is in flight: "
            f"target {leg.target} of target {record.target_id} is reached now that "
            "the schedule it superseded has settled", "SKIPPED"))
    out = list(core._inserted)
    core._inserted.clear()
    return out


def leg_intent(record: TargetRecord, leg: LegRecord) -> OrderIntent:
    """The order of one leg, as its ``target`` record says (live, and at a restart)."""
    assert leg.leg is not None
    side: Side = "buy" if leg.quantity > 0 else "sell"
    action: Action = "ADD" if leg.quantity > 0 else ("EXIT" if leg.target == 0 else "TRIM")
    return OrderIntent(
        venue=record.venue, symbol=leg.symbol, quantity=abs(leg.quantity),
        source_run=record.source_run, intent_id=leg.leg, side=side, action=action,
        reference_price=leg.price,
        urgency=record.urgency, priority=record.priority, plan_id=record.plan_id,
        execution=record.execution, reason_codes=("TARGET",),
        context={"target_id": str(record.target_id), "portfolio_id": record.portfolio_id,
                 "target": str(leg.target), "position": str(leg.position)})


def _send(core: SentinelCore, record: TargetRecord, leg: LegRecord, seq: int,
          now: int) -> None:
    """One leg through every check, numbered after what came before it."""
    assert leg.leg is not None
    core.require_risk().targets.awaiting.pop(leg.leg, None)
    intent = leg_intent(record, leg)
    raw = encode(intent)
    key = core.require_risk().rules.key
    if record.signed and key is not None:
        # Derived from a target whose signature was verified: execd signs the leg with
        # the same key, so the one signature check holds it as it holds an intent.
        intent = msgspec.structs.replace(intent, signature=sign(key, raw))
        raw = encode(intent)
    got = core.handle(IntentIn(seq, now, None, intent, raw))
    core.shift += 1
    core._inserted.append(got)
