"""The snapshot format: a fold's state at one record, as bytes (sans-I/O).

A checkpoint (docs/ARCHITECTURE.md, "Checkpoints") writes the state a full fold of the
ledger through record X gives, so that start-up folds only what follows X. The
snapshot is a pure function of that prefix and of the config the fold reads, so its
bytes, and the sha256 the ``checkpoint`` record carries, are the same in every replay
of the same input (DESIGN §2).

Canonical encoding: msgpack with map keys sorted; sets are sorted lists; the fold's
dicts, whose order is their insertion order (which is ledger order, and which the
daemon iterates), are lists of pairs in that order. Decimals are stored verbatim as
strings (``str(Decimal)`` keeps every digit and exponent): the book's ``gross`` is a
running sum, and a refusal's detail prints it, so it is never recomputed.

``fold_key`` is a digest of the config the fold reads (the venues, their planes and
their pacing limits: ``Risk.observe`` skips venues it does not know, and the pacing
deques' lengths and the cooldown depend on the limits). A snapshot with another key is
not this config's fold, and start-up ignores it.

The duplicate-id set is not in a snapshot: it grows with history, so it lives in the
on-disk id index (``<ledger_dir>/index/``, :mod:`execd.ledger.index`), and the
checkpointer writes the run of the ids folded through X before the snapshot through X
(``app/checkpointer.py``). ``index_through`` (always X) is the record the index must
cover for this snapshot to be whole; start-up rebuilds an index that covers less
(``ledger/reindex.py``). Version 1 held the ids inline and is no snapshot any more.

Nor are the consumed-file tables (finished, rejected and changed files, and the repeats
of each name), for the same reason: they are in ``<ledger_dir>/index/files/``
(:mod:`execd.ledger.index.files`), whose run through X the checkpointer writes before
the snapshot too, and ``index_through`` is the record that index must cover as well
(``ledger/file_index.py``). Version 2 held them inline and is no snapshot any more:
start-up ignores it with its reason and folds the whole ledger.

Each venue's order rate is stored pruned (``OrderRate.prune``: only the times that can
still refuse an order, about one window's worth), so its size follows the recent
order rate, not history. Version 3 held the whole deque (up to ``max_orders`` times)
and is ignored, like versions 1 and 2, for the full fold.

Open schedules (README, "Execution algorithms") are kept whole: each one's ``schedule``
record as its JSON and its progress (the next slice, the carry, the child out, the lots
filled and their notional), and the schedules that ended before the parent's outcome was
recorded. Version 4 had none: it is ignored for the full fold, like the versions before.
"""

from __future__ import annotations

import hashlib
import uuid
from array import array
from decimal import Decimal
from typing import Literal

import msgspec
from msgspec import Struct

from execd.config.schema import Config
from execd.ledger.fold import Fold
from execd.model.messages import (
    OrderRecord,
    RouteRecord,
    ScheduleRecord,
    SendAttemptRecord,
    SlippageRecord,
    TradingState,
    TradingStateRecord,
    encode,
)
from execd.schedule.core import Done, OpenState, SchedulerCore, compact
from execd.sentinel.book import Position, VenueBook
from execd.sentinel.drift import DriftState
from execd.sentinel.limits import merged
from execd.sentinel.risk import Risk
from execd.sentinel.routes import Handed
from execd.sentinel.targets import Targets

VERSION: Literal[5] = 5


class PositionState(Struct, frozen=True, array_like=True):
    """One position of a venue's book, verbatim."""

    symbol: str
    filled: str
    pending_buy: str
    pending_sell: str
    mark: str | None
    counted: str


class VenueState(Struct, frozen=True):
    """One venue's book and pacing, verbatim."""

    gross: str
    unmarked: list[str]
    positions: list[PositionState]
    # The order-rate deque as OrderRate.prune leaves it and the failure deque (None:
    # that pacing is off), and the end of a cooldown in force.
    rate: list[int] | None
    failures: list[int] | None
    until: int | None


class RiskState(Struct, frozen=True):
    """The Risk Sentinel's part of the fold."""

    state: TradingState
    state_note: str
    safety_sells: int
    venues: list[tuple[str, VenueState]]
    # Drift baselines, drift in force and each venue's last holdings (DriftState.encode).
    drift: bytes | None = None
    # Every portfolio's last target (Targets.encode).
    targets: bytes | None = None


class ScheduleState(Struct, frozen=True, array_like=True):
    """One open schedule: its record's JSON (without its slices), the slices' due times
    and lots, and its progress, verbatim."""

    record: bytes
    dues: list[int]
    shares: list[int]
    order: int
    next: int
    carry: int
    out: str | None
    out_lots: int
    filled: int
    notional: str
    children: int
    ended: str | None
    note: str | None
    executed: str
    since: int = -1  # a POV's last release (older snapshots have no POV)
    passive: bool = False  # slippage responses in force (older snapshots have none)
    paused: bool = False


class EndedState(Struct, frozen=True, array_like=True):
    """A schedule that ended whose parent's outcome is not recorded yet."""

    record: bytes
    planned: int
    filled: int
    notional: str
    children: int
    ended: str | None
    note: str | None
    executed: str


class ChainEnd(Struct, frozen=True):
    """Where the folded prefix ends: its last record, its count, its largest time, and
    ``resume``, the bytes of the ledger (all segments, in order) before the next record."""

    through_seq: int
    head_hash: str
    records: int
    last_time: int
    resume: int


class Snapshot(Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the fold rebuilds, as of record ``end.through_seq``."""

    version: Literal[5]
    fold_key: str
    end: ChainEnd
    clock: str
    planes: list[tuple[str, str, int]]
    progress: list[tuple[str, int, int]]
    refusing: list[str]
    # (the order record's JSON, its record's time), in the fold's order
    unresolved: list[tuple[bytes, int]]
    last_sends: list[bytes]  # each a send record's JSON, in the fold's order
    risk: RiskState | None
    # The record the on-disk indexes (ids, consumed files) cover for this snapshot (its
    # own last record).
    index_through: int
    schedules: list[ScheduleState]
    unrecorded: list[EndedState]
    # Slippage breaches found whose record is not in the ledger yet (each its JSON).
    breaches: list[bytes] = []
    # Routes (execd.sentinel.routes.Routed): the route records of routed live orders in
    # flight, and the orders handed on whose rest is not routed yet (each its JSON).
    routed: list[bytes] = []
    handed: list[tuple[str, bytes]] = []
    # A halt's trading_state record a stop cut off after its slippage record (JSON).
    unstated: bytes | None = None


_encoder = msgspec.msgpack.Encoder(order="sorted")
_decoder = msgspec.msgpack.Decoder(Snapshot)
_order = msgspec.json.Decoder(OrderRecord).decode
_schedule = msgspec.json.Decoder(ScheduleRecord).decode
_attempt = msgspec.json.Decoder(SendAttemptRecord).decode
_breach = msgspec.json.Decoder(SlippageRecord).decode
_state = msgspec.json.Decoder(TradingStateRecord).decode
_route = msgspec.json.Decoder(RouteRecord).decode
_handed = msgspec.json.Decoder(Handed).decode


def fold_key(config: Config) -> str:
    """The digest of what in ``config`` the fold reads (see the module docstring)."""
    venues = []
    for name in sorted(config.venues):
        venue = config.venues[name]
        limits = merged(config.risk.limits, venue.limits)
        venues.append((name, venue.plane, limits.max_orders, limits.rate_window,
                       limits.failure_limit, limits.failure_window, limits.cooldown))
    return hashlib.sha256(_encoder.encode((VERSION, venues))).hexdigest()


def _venue(book: VenueBook, risk: Risk, name: str) -> VenueState:
    pacing = risk.venues.get(name)
    rate = pacing.rate if pacing is not None else None
    cooldown = pacing.cooldown if pacing is not None else None
    if rate is not None:
        # Canonical, whenever the fold last pruned (and bounded by the recent orders).
        rate.prune()
    return VenueState(
        str(book.gross), sorted(book.unmarked),
        [PositionState(p.symbol, str(p.filled), str(p.pending_buy), str(p.pending_sell),
                       None if p.mark is None else str(p.mark), str(p.counted))
         for p in book.positions.values()],
        list(rate.sent) if rate is not None else None,
        list(cooldown.failures) if cooldown is not None else None,
        cooldown.until if cooldown is not None else None)


def _risk(risk: Risk | None) -> RiskState | None:
    if risk is None:
        return None
    drift = risk.drift
    return RiskState(risk.state, risk.state_note, risk.safety_sells,
                     [(name, _venue(book, risk, name)) for name, book in risk.book.venues.items()],
                     drift.encode() if drift.baselines or drift.drifting or drift.held else None,
                     risk.targets.encode() if risk.targets.portfolios else None)


def take(fold: Fold, end: ChainEnd, key: str) -> Snapshot:
    """The snapshot of ``fold``, which has folded the prefix ``end`` describes.

    Take it before any hold is added (recovery holds what open orders reserve after the
    fold, and does so again after loading a snapshot). It prunes each venue's order rate
    (``OrderRate.prune``), which changes no decision.
    """
    return Snapshot(
        VERSION, key, end, fold.clock,
        [(venue, plane, seq) for venue, (plane, seq) in fold.planes.items()],
        [(name, line, offset) for name, (line, offset) in fold.progress.items()],
        sorted(fold.refusing),
        [(encode(order), time) for order, time in fold.unresolved.values()],
        [encode(sent) for sent in fold.last_sends.values()],
        _risk(fold.risk), end.through_seq,
        [ScheduleState(encode(state.record), list(state.dues), list(state.shares),
                       state.order, state.next, state.carry,
                       None if state.out is None else str(state.out), state.out_lots,
                       state.filled, str(state.notional), state.children, state.ended,
                       state.note, str(state.executed), state.since, state.passive,
                       state.paused)
         for state in fold.schedules],
        [EndedState(encode(done.record), done.planned, done.filled, str(done.notional),
                    done.children, done.ended, done.note, str(done.executed))
         for done in fold.schedules.unrecorded.values()],
        [encode(breach) for breach in fold.schedules.breaches.values()],
        [encode(record) for record in fold.routes.open.values()],
        [(str(i), encode(handed)) for i, handed in fold.routes.handed.items()],
        None if fold.schedules.unstated is None else encode(fold.schedules.unstated))


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The snapshot's canonical bytes."""
    return _encoder.encode(snapshot)


def decode_snapshot(data: bytes) -> Snapshot:
    """The snapshot in ``data``; msgspec.DecodeError (or ValidationError) when it is none."""
    return _decoder.decode(data)


def _restore_venue(risk: Risk, name: str, state: VenueState) -> None:
    book = risk.book.venue(name)
    book.gross = Decimal(state.gross)
    book.unmarked = set(state.unmarked)
    book.positions = {}
    for p in state.positions:
        position = book.positions[p.symbol] = Position(p.symbol)
        position.filled = Decimal(p.filled)
        position.pending_buy = Decimal(p.pending_buy)
        position.pending_sell = Decimal(p.pending_sell)
        position.mark = None if p.mark is None else Decimal(p.mark)
        position.counted = Decimal(p.counted)
    pacing = risk.venues.get(name)
    if pacing is None:
        return
    if pacing.rate is not None and state.rate is not None:
        pacing.rate.restore(state.rate)
    if pacing.cooldown is not None and state.failures is not None:
        pacing.cooldown.failures.clear()
        pacing.cooldown.failures.extend(state.failures)
        pacing.cooldown.until = state.until


def _schedules(snapshot: Snapshot) -> SchedulerCore:
    core = SchedulerCore(timed=False)  # a fold's (Schedules.keep_time starts the heap)
    for s in snapshot.schedules:
        core.adopt(OpenState(_schedule(s.record), s.order, s.next, s.carry,
                             None if s.out is None else uuid.UUID(s.out), s.out_lots,
                             s.filled, Decimal(s.notional), s.children, s.ended,
                             note=s.note, executed=Decimal(s.executed),
                             dues=array("q", s.dues), shares=compact(s.shares),
                             since=s.since, passive=s.passive, paused=s.paused))
    for e in snapshot.unrecorded:
        record = _schedule(e.record)
        core.unrecorded[record.intent_id] = Done(record, e.planned, e.filled,
                                                 Decimal(e.notional), e.children, e.ended,
                                                 e.note, Decimal(e.executed))
    for data in snapshot.breaches:
        breach = _breach(data)
        core.breaches[breach.intent_id] = breach
    if snapshot.unstated is not None:
        core.unstated = _state(snapshot.unstated)
    return core


def restore(snapshot: Snapshot, fold: Fold) -> None:
    """Make ``fold`` (new, nothing folded yet) the state ``snapshot`` holds.

    The fold's Risk, when it has one, must be new too: made from a config whose
    :func:`fold_key` is the snapshot's. Its ``seen`` and its consumed-file tables are not
    touched: they are the on-disk indexes', through ``snapshot.index_through``.
    """
    fold.clock = snapshot.clock
    fold.planes = {venue: (plane, seq) for venue, plane, seq in snapshot.planes}
    fold.progress = {name: (line, offset) for name, line, offset in snapshot.progress}
    fold.refusing = set(snapshot.refusing)
    orders = [(_order(data), time) for data, time in snapshot.unresolved]
    fold.unresolved = {order.intent_id: (order, time) for order, time in orders}
    sends = [_attempt(data) for data in snapshot.last_sends]
    fold.last_sends = {sent.client_order_id: sent for sent in sends}
    fold.schedules = _schedules(snapshot)
    for data in snapshot.routed:
        record = _route(data)
        fold.routes.open[record.intent_id] = record
    for intent_id, data in snapshot.handed:
        fold.routes.hand(uuid.UUID(intent_id), _handed(data))
    risk, state = fold.risk, snapshot.risk
    if risk is not None and state is not None:
        risk.safety_sells = state.safety_sells
        if (state.state, state.state_note) != (risk.state, risk.state_note):
            risk.set_state(state.state, state.state_note)
        for name, venue in state.venues:
            _restore_venue(risk, name, venue)
        if state.drift is not None:
            risk.drift = DriftState.decode(state.drift)
        if state.targets is not None:
            risk.targets = Targets.decode(state.targets)
