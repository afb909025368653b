"""The fold: the state the ledger's records add up to, one record at a time (sans-I/O).

Start-up rebuilds the daemon's state by folding every record (``ledger/recovery.py``),
or the records after a checkpoint into the state its snapshot holds; while the daemon
runs, the checkpointer (``app/checkpointer.py``) folds each durable commit into a
shadow of the same state, to write the next snapshot. Both use this one :class:`Fold`,
so a snapshot is the state a full fold of its prefix gives.

Start-up reads bytes: :meth:`Fold.observe` decodes a record's body into a small view
of the fields the fold reads. The shadow has better: the very Structs the commit's
bodies were encoded from (``Commit.entries``), which :meth:`Fold.observe_body` folds
without decoding anything. Both go through the same code, so the two are one fold:
each view has the attribute names of its Struct, with the same values (``Decimal()``
of a view's string is the Decimal the Struct held, since a ledger body writes a
Decimal's ``str``), and ``tests/unit/app/test_checkpointer_bodies.py`` compares the
snapshots of both over generated inputs.

What it holds: which intent ids already have an outcome (so none is executed twice),
how far each input file was consumed (so a restart neither skips nor repeats a line),
which files were finished, the live orders without an outcome yet and their last
sends, each venue's plane, and for the Risk Sentinel the positions (from fills), the
pacing of each venue and the trading state.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import cast

import msgspec
from msgspec import Raw, Struct

from execd.ledger.index.files import DoneTable, FileTables, NameTable
from execd.ledger.record import Record
from execd.model import reasons
from execd.model.messages import (
    DriftRecord,
    ExecutionOutcome,
    Fee,
    HoldingsRecord,
    InputFileRecord,
    OrderRecord,
    ResumeRecord,
    RouteRecord,
    ScheduleRecord,
    SendAttemptRecord,
    Side,
    SlippageRecord,
    Source,
    StartRecord,
    TargetRecord,
    TickRecord,
    TradingStateRecord,
)
from execd.schedule.core import SchedulerCore
from execd.schedule.plan import lots_of
from execd.schedule.slippage import halt_reason
from execd.sentinel.core import Seen, SeenIds
from execd.sentinel.risk import Risk
from execd.sentinel.routes import Routed
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
    requested_quantity: str | None = None
    client_order_id: str | None = None
    fees: tuple[Fee, ...] = ()
    parent: uuid.UUID | None = None
    children: int | None = None
    # The line as received (an object, or a quarantined line's text): msgspec takes a
    # Raw with no union, so an absent one is empty.
    intent: Raw = Raw(b"")


class _TickView(Struct):
    source: Source | None = None


class _InputFileView(Struct):
    file: str
    size: int
    sha256: str | None
    disposition: str


class _NoView(Struct):
    """A body the fold counts but reads nothing of (a safety_sell): never decoded."""


_NO_VIEW = _NoView()

# What the fold reads of each kind's body: the view decoded from bytes, or the Struct a
# commit's entry carries (mypy checks each attribute read against both).
OutcomeBody = _OutcomeView | ExecutionOutcome
TickBody = _TickView | TickRecord
InputFileBody = _InputFileView | InputFileRecord

# The decoder of each kind the fold reads; a record of any other kind changes nothing,
# and neither its body nor the record is decoded any further.
_VIEWS: dict[str, Callable[[Raw], Struct]] = {
    "outcome": msgspec.json.Decoder(_OutcomeView).decode,
    "tick": msgspec.json.Decoder(_TickView).decode,
    "input_file": msgspec.json.Decoder(_InputFileView).decode,
    "start": msgspec.json.Decoder(StartRecord).decode,
    "trading_state": msgspec.json.Decoder(TradingStateRecord).decode,
    "order": msgspec.json.Decoder(OrderRecord).decode,
    "order_attempt": msgspec.json.Decoder(SendAttemptRecord).decode,
    "schedule": msgspec.json.Decoder(ScheduleRecord).decode,
    "slippage": msgspec.json.Decoder(SlippageRecord).decode,
    "resume": msgspec.json.Decoder(ResumeRecord).decode,
    "route": msgspec.json.Decoder(RouteRecord).decode,
    "holdings": msgspec.json.Decoder(HoldingsRecord).decode,
    "drift": msgspec.json.Decoder(DriftRecord).decode,
    "target": msgspec.json.Decoder(TargetRecord).decode,
    "safety_sell": lambda body: _NO_VIEW,
}
#: The record kinds the fold reads (every other kind leaves it as it is).
READ = frozenset(_VIEWS)
# Outcomes of orders that a venue was asked for (the rest never left execd).
_SENT = frozenset(("FILLED", "PARTIALLY_FILLED", "FAILED"))


class _IdView(Struct):
    intent_id: uuid.UUID
    status: str = ""


_id_view = msgspec.json.Decoder(_IdView).decode


class _TargetIdView(Struct):
    target_id: uuid.UUID


_target_id = msgspec.json.Decoder(_TargetIdView).decode


def id_of(record: Record) -> uuid.UUID | None:
    """The intent id ``record`` adds to the fold's ``seen`` (None: it adds none): an
    ``order``'s or a ``schedule``'s, or an ``outcome``'s unless it is QUARANTINED, as
    :meth:`Fold.observe` counts them. For an ids-only pass (rebuilding the id index)."""
    kind = record.kind
    if kind == "outcome":
        view = _id_view(record.body)
        return view.intent_id if view.status != "QUARANTINED" else None
    if kind in ("order", "schedule"):
        return _id_view(record.body).intent_id
    if kind == "target":
        return _target_id(record.body).target_id
    return None


class Fold:
    """The state the records folded so far add up to.

    With ``risk``, the Risk Sentinel's positions, pacing and trading state are folded
    into it too. Records of kinds the fold does not read (``checkpoint`` among them)
    change nothing.

    ``seen`` is the duplicate-id set the fold adds to (default: a new in-memory
    :class:`~execd.sentinel.core.SeenIds`); with checkpoints on it is the on-disk id
    index's ``IdIndex`` (``ledger/reindex.py``), which snapshots do not hold.

    ``files``: the consumed-file tables (``done``, ``rejected``, ``changed``) are then
    the on-disk :class:`~execd.ledger.index.files.FileTables`' views (checkpoints on,
    ``ledger/file_index.py``), else a dict and sets in memory.
    """

    def __init__(self, risk: Risk | None = None, seen: Seen | None = None,
                 files: FileTables | None = None) -> None:
        self.risk = risk
        self.seen: Seen = seen if seen is not None else SeenIds()
        # file -> (last line consumed, byte offset after it), for unfinished files
        self.progress: dict[str, tuple[int, int]] = {}
        # refused files (by claim name) whose outcome is recorded, input_file not yet
        self.refusing: set[str] = set()
        self.use_files(files)
        # live orders recorded without an outcome yet: intent id -> (record, its time)
        self.unresolved: dict[uuid.UUID, tuple[OrderRecord, int]] = {}
        # client order id -> the last send record of each unresolved order: how many
        # sends may have reached the venue, across every run so far.
        self.last_sends: dict[str, SendAttemptRecord] = {}
        # Each venue's plane as the last start that named it recorded it, and that
        # record's seq: a start without the venue does not erase its history.
        self.planes: dict[str, tuple[str, int]] = {}
        # The clock of the run being folded (its start record): order records made
        # before they carried wall_time have a wall-clock time only under "wall".
        self.clock = "logical"
        # Open parent orders and their progress (README, "Execution algorithms").
        self.schedules = SchedulerCore(timed=False)
        # Routed live orders in flight, and orders handed on (README, "Routes").
        self.routes = Routed()

    def use_files(self, files: FileTables | None) -> None:
        """Keep the consumed-file tables in ``files`` (None: in memory, empty)."""
        self.files = files
        # file -> (size, sha256) of files read to their end
        self.done: DoneTable = files.done if files is not None else {}
        # refused files whose refusal is complete
        self.rejected: NameTable = files.rejected if files is not None else set()
        # consumed files recorded as changed after they were read (they go to rejected/)
        self.changed: NameTable = files.changed if files is not None else set()

    def observe(self, record: Record) -> None:
        """Fold one record into the state, from its bytes (as start-up reads the ledger)."""
        view = _VIEWS.get(record.kind)
        if view is not None:
            self.observe_body(record.kind, record.seq, record.time, view(record.body))

    def observe_body(self, kind: str, seq: int, time: int, body: Struct) -> None:
        """Fold record ``seq`` of ``kind`` and ``time`` from its ``body``: the view
        :meth:`observe` decoded, or the Struct the body was encoded from (a durable
        commit's ``Entry.body``: nothing is decoded). A kind not in :data:`READ`
        changes nothing."""
        source: Source | None = None
        if kind == "outcome":
            view = cast(OutcomeBody, body)
            if view.status != "QUARANTINED":
                self.seen.add(view.intent_id)
                if self.risk is not None and self.risk.targets.pending:
                    self.risk.targets.taken(view.intent_id, view.children is not None)
                if self.routes.open or self.routes.awaiting:
                    self.routes.outcome(
                        view.intent_id, view.reason, Decimal(view.requested_quantity or 0),
                        Decimal(view.filled_quantity),
                        None if view.intent is None else bytes(view.intent), time)
                if view.children is not None:
                    # A parent's summary, no order: its schedule record moved the file's
                    # progress, and its children's outcomes hold the fills.
                    self.schedules.close(view.intent_id)
                    return
                if view.parent is not None:
                    self._child(view, time)
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
                # A whole-file outcome never moves the file's resume point.
                self._file_level(source.file, seq)
                return
        elif kind == "tick":
            source = cast(TickBody, body).source
        elif kind == "order":
            order = cast(OrderRecord, body)
            if order.wall_time is None and self.clock == "wall":
                order = msgspec.structs.replace(order, wall_time=time)
            self.seen.add(order.intent_id)
            if self.risk is not None and self.risk.targets.open:
                self.risk.targets.taken(order.intent_id, False)
            self.unresolved[order.intent_id] = (order, time)
            if self.routes.awaiting:
                self.routes.taken(order.intent_id)
            source = order.source
            if order.parent is not None:
                # A live child: out from its order record on, until its outcome.
                state = self.schedules.get(order.parent)
                if state is not None and state.out is None:
                    self.schedules.replay(order.parent, order.intent_id,
                                          lots_of(order.requested_quantity, state.record.lot)[0],
                                          time)
        elif kind == "schedule":
            record = cast(ScheduleRecord, body)
            self.seen.add(record.intent_id)
            if self.risk is not None and self.risk.targets.open:
                self.risk.targets.taken(record.intent_id, False)
            self.schedules.open(record, seq)
            source = record.source
        elif kind == "input_file":
            self._input_file(cast(InputFileBody, body), seq)
            return
        elif kind == "target":
            # A target portfolio (README, "Targets"): read once, as its id says.
            read = cast(TargetRecord, body)
            self.seen.add(read.target_id)
            if self.risk is not None:
                self.risk.targets.record(read)
            source = read.source
        else:
            self._other(kind, seq, body)
            return
        if source is not None:
            # Line 0 is a file-level outcome (an empty file): the file is started.
            self.progress[source.file] = (source.line, source.end)

    def _file_level(self, name: str, seq: int) -> None:
        """A whole-file outcome: one for a file already finished says it changed after
        it was read; any other, that its refusal is recorded."""
        files = self.files
        if files is not None:
            if files.done_before(name, seq):
                files.change(name, seq)
            else:
                self.refusing.add(name)
        elif name in self.done:
            self.changed.add(name)
        else:
            self.refusing.add(name)

    def _input_file(self, done: InputFileBody, seq: int) -> None:
        self.progress.pop(done.file, None)
        files = self.files
        if done.disposition == "archive":
            if files is not None:
                files.finish(done.file, done.size, done.sha256 or "", seq)
            else:
                self.done[done.file] = (done.size, done.sha256 or "")
        else:
            self.refusing.discard(done.file)
            if files is not None:
                files.reject(done.file, seq)
            else:
                self.rejected.add(done.file)

    def _other(self, kind: str, seq: int, body: Struct) -> None:
        """The kinds that move neither ids nor files."""
        if kind == "order_attempt":
            sent = cast(SendAttemptRecord, body)
            pending = self.unresolved.get(sent.intent_id)
            if pending is not None and pending[0].client_order_id == sent.client_order_id:
                self.last_sends[sent.client_order_id] = sent
        elif kind == "start":
            start = cast(StartRecord, body)
            self.clock = start.clock
            for venue, plane in start.planes.items():
                self.planes[venue] = (plane, seq)
        elif kind == "safety_sell":
            if self.risk is not None:
                self.risk.safety_sells += 1
        elif kind == "holdings":
            if self.risk is not None:  # a Safety Sell of what the venue holds reads it
                self.risk.drift.holdings(cast(HoldingsRecord, body), seq)
        elif kind == "drift":
            if self.risk is not None:  # baselines and drift in force, as the sentinel found
                self.risk.drift.record(cast(DriftRecord, body))
        elif kind == "trading_state":
            change = cast(TradingStateRecord, body)
            self.schedules.unstated = None
            if self.risk is not None:
                self.risk.set_state(change.state, f"{change.actor}: {change.reason}")
        elif kind == "slippage":
            # Its breach was found again on the child's settlement: recorded now.
            breach = cast(SlippageRecord, body)
            self.schedules.breaches.pop(breach.intent_id, None)
            if breach.response == "halt" and self.risk is not None and (
                    self.risk.state != "HALTED"):
                # As the trading_state record after it says; a stop may fall between,
                # and then the next start writes it.
                actor, reason = f"policy:{breach.rule}", halt_reason(breach)
                previous = self.risk.set_state("HALTED", f"{actor}: {reason}")
                self.schedules.unstated = TradingStateRecord("HALTED", previous, reason, actor)
        elif kind == "route":
            routed = cast(RouteRecord, body)
            known = self.planes.get(routed.venue or "")
            self.routes.record(routed, known is not None and known[0] == "live")
        elif kind == "resume":
            resumed = cast(ResumeRecord, body).intent_id
            state = self.schedules.get(resumed)
            if state is not None and state.paused:  # as the sentinel found it
                self.schedules.resume(resumed)

    def _closes(self, view: OutcomeBody) -> bool:
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

    def _child(self, view: OutcomeBody, time: int) -> None:
        """A schedule's child's outcome: its parent's progress moves as it did live."""
        assert view.parent is not None
        assert view.requested_quantity is not None
        schedules = self.schedules
        state = schedules.get(view.parent)
        if state is None:
            return  # the parent's own outcome came first: nothing is left to follow
        lot = state.record.lot
        if state.out != view.intent_id:
            schedules.replay(view.parent, view.intent_id,
                             lots_of(Decimal(view.requested_quantity), lot)[0], time)
        self._settle_child(view.intent_id, Decimal(view.filled_quantity),
                           Decimal(view.average_price) if view.average_price is not None
                           else None, lot)

    def _settle_child(self, child: uuid.UUID, executed: Decimal, price: Decimal | None,
                      lot: Decimal) -> None:
        """As ``Schedules.settle_live`` moves a parent on: a part lot counts whole."""
        whole, rest = lots_of(executed, lot)
        self.schedules.settled(child, whole + (1 if rest else 0), price if executed else None,
                               executed)

    def _sent(self, view: OutcomeBody) -> None:
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
