"""What the daemon knows at start-up, rebuilt from the ledger alone.

The ledger is the only durable state: which intent ids already have an outcome
(so none is executed twice), how far each input file was consumed (so a restart
neither skips nor repeats a line), which files were finished, the logical time,
and for the Risk Sentinel the positions (from fills), the pacing of each venue and
the trading state the daemon was left in.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import msgspec
from msgspec import Struct

from execd.ledger import head
from execd.ledger.record import Record
from execd.ledger.scan import ScanResult, scan
from execd.model import reasons
from execd.model.errors import LedgerCorrupt, WitnessUnreadable
from execd.model.messages import (
    Fee,
    OrderRecord,
    SendAttemptRecord,
    Side,
    Source,
    StartRecord,
    TradingStateRecord,
)
from execd.sentinel.core import SeenIds
from execd.sentinel.risk import Risk
from execd.venues.ccxt.results import held_change


class _OutcomeView(Struct):
    intent_id: uuid.UUID
    status: str
    filled_quantity: str
    logical_time: int
    plane: str | None = None
    venue: str | None = None
    symbol: str | None = None
    side: Side | None = None
    average_price: str | None = None
    reason: str | None = None
    source: Source | None = None
    client_order_id: str | None = None
    fees: tuple[Fee, ...] = ()


class _TickView(Struct):
    source: Source | None = None


class _InputFileView(Struct):
    file: str
    size: int
    sha256: str | None
    disposition: str


_outcome = msgspec.json.Decoder(_OutcomeView).decode
_tick = msgspec.json.Decoder(_TickView).decode
_input_file = msgspec.json.Decoder(_InputFileView).decode
_start = msgspec.json.Decoder(StartRecord).decode
_trading_state = msgspec.json.Decoder(TradingStateRecord).decode
_order = msgspec.json.Decoder(OrderRecord).decode
_attempt = msgspec.json.Decoder(SendAttemptRecord).decode
# Outcomes of orders that a venue was asked for (the rest never left execd).
_SENT = frozenset(("FILLED", "PARTIALLY_FILLED", "FAILED"))


class RecoveredState:
    """The daemon's starting state, as the ledger records it."""

    def __init__(self, risk: Risk | None = None) -> None:
        self.risk = risk
        self.scan = ScanResult()
        self.seen = SeenIds()
        # file -> (last line consumed, byte offset after it), for unfinished files
        self.progress: dict[str, tuple[int, int]] = {}
        # file -> (size, sha256) of files read to their end
        self.done: dict[str, tuple[int, str]] = {}
        # refused files (by claim name) whose outcome is recorded, input_file not yet
        self.refusing: set[str] = set()
        # refused files whose refusal is complete
        self.rejected: set[str] = set()
        # consumed files recorded as changed after they were read (they go to rejected/)
        self.changed: set[str] = set()
        # live orders recorded without an outcome yet: intent id -> (record, its time)
        self.unresolved: dict[uuid.UUID, tuple[OrderRecord, int]] = {}
        # client order id -> the last send record of each unresolved order: how many
        # sends may have reached the venue, across every run so far.
        self.last_sends: dict[str, SendAttemptRecord] = {}
        # Each venue's plane as the last start that named it recorded it, and that
        # record's seq: a start without the venue does not erase its history.
        self.planes: dict[str, tuple[str, int]] = {}
        # The ledger has records and no head witness beside it (deleted, or written
        # before witnesses existed): a cut end could not be noticed this time.
        self.head_missing = False
        # The clock of the run being folded (its start record): order records made
        # before they carried wall_time have a wall-clock time only under "wall".
        self._clock = "logical"

    def observe(self, record: Record) -> None:
        """Fold one record into the state."""
        kind = record.kind
        source: Source | None = None
        if kind == "outcome":
            view = _outcome(record.body)
            if view.status != "QUARANTINED":
                self.seen.add(view.intent_id)
                if self.unresolved and self._closes(view):
                    # A live order's outcome, written whenever the venue answered: its
                    # order record already moved the file's progress, and later lines
                    # may have moved it further since.
                    if view.status in _SENT and self.risk is not None:
                        self._sent(view)
                    return
                if view.status in _SENT and self.risk is not None:
                    self._sent(view)
            source = view.source
            if view.reason in reasons.FILE_LEVEL and source is not None:
                # A whole-file outcome never moves the file's resume point. One for a
                # file already finished says it changed after it was read.
                if source.file in self.done:
                    self.changed.add(source.file)
                else:
                    self.refusing.add(source.file)
                return
        elif kind == "tick":
            source = _tick(record.body).source
        elif kind == "order":
            order = _order(record.body)
            if order.wall_time is None and self._clock == "wall":
                order = msgspec.structs.replace(order, wall_time=record.time)
            self.seen.add(order.intent_id)
            self.unresolved[order.intent_id] = (order, record.time)
            source = order.source
        elif kind == "order_attempt":
            sent = _attempt(record.body)
            pending = self.unresolved.get(sent.intent_id)
            if pending is not None and pending[0].client_order_id == sent.client_order_id:
                self.last_sends[sent.client_order_id] = sent
            return
        elif kind == "start":
            start = _start(record.body)
            self._clock = start.clock
            for venue, plane in start.planes.items():
                self.planes[venue] = (plane, record.seq)
            return
        elif kind == "safety_sell":
            if self.risk is not None:
                self.risk.safety_sells += 1
            return
        elif kind == "trading_state":
            change = _trading_state(record.body)
            if self.risk is not None:
                self.risk.set_state(change.state, f"{change.actor}: {change.reason}")
            return
        elif kind == "input_file":
            done = _input_file(record.body)
            self.progress.pop(done.file, None)
            if done.disposition == "archive":
                self.done[done.file] = (done.size, done.sha256 or "")
            else:
                self.refusing.discard(done.file)
                self.rejected.add(done.file)
            return
        if source is not None:
            # Line 0 is a file-level outcome (an empty file): the file is started.
            self.progress[source.file] = (source.line, source.end)

    def _closes(self, view: _OutcomeView) -> bool:
        """Whether ``view`` is the outcome of an unresolved order (and resolve it).

        Only the outcome that names the order's client order id closes it. Other
        outcomes may name the same intent id (a repeat of the line refused as a
        duplicate while the order was still at the venue): they close nothing, and
        the order is still reconciled at start-up.
        """
        pending = self.unresolved.get(view.intent_id)
        if pending is None or view.client_order_id != pending[0].client_order_id:
            return False
        del self.unresolved[view.intent_id]
        self.last_sends.pop(pending[0].client_order_id, None)
        return True

    def _sent(self, view: _OutcomeView) -> None:
        """Positions, pacing and failures, from an order's recorded outcome."""
        assert self.risk is not None
        if view.venue is None or view.symbol is None or view.side is None:
            return
        filled = Decimal(view.filled_quantity)
        if view.plane == "live":
            # As the venue settled it: what the account holds, net of base-asset fees.
            filled = held_change(view.symbol, view.side, filled, view.fees)
        price = Decimal(view.average_price) if view.average_price is not None else None
        self.risk.observe(view.venue, view.symbol, view.side, view.status, view.reason,
                          filled, price, view.logical_time, None)


def recover(directory: Path, *, repair: bool = True, risk: Risk | None = None) -> RecoveredState:
    """Scan (and with ``repair``, mend a torn tail of) the ledger in ``directory``.

    With ``risk``, also rebuild its positions, pacing and trading state.
    """
    state = RecoveredState(risk)
    try:
        expect = head.read(directory)
    except WitnessUnreadable as exc:
        raise LedgerCorrupt(
            f"{exc}; it is written only by execd: if you know why it is damaged, check the "
            "chain with `execd ledger verify --expect SEQ:HASH` against the last ledger.head "
            "logged, then remove it") from None
    state.scan = scan(directory, state.observe, repair=repair, expect=expect)
    state.head_missing = expect is None and state.scan.records > 0
    if risk is not None:
        # Orders still open at the venue for all we know: held pending, as when sent.
        for order, _ in state.unresolved.values():
            risk.hold(order.venue, order.symbol, order.side, order.requested_quantity)
    return state
