"""The life of one live order, sans I/O: what to do next, given what the venue said.

An :class:`Order` is fed the venue's replies and errors (already classified by
:mod:`~execd.venues.ccxt.exchanges`) and ``now``, and returns the next action:
send attempt n, look the order up, read it, cancel it, read its trades, write
records, wait until a time, or be done with its outcome. It reads no clock, does
no I/O and never sleeps; the shell (:mod:`~execd.venues.ccxt.driver`) carries out
the actions, one at a time, and feeds each one's result back: the sans-I/O core in
a thin async shell of docs/ARCHITECTURE.md. One shell drives any number of orders,
each its own small object (the vocabulary is :mod:`~execd.venues.ccxt.actions`;
following a placed order is :mod:`~execd.venues.ccxt.following`).

The rules are those of docs/ARCHITECTURE.md ("Live sends, times and the drain")
and the README's fault table: every send is recorded, another is made only as ``send_attempts``
allows and once the record before it is durable (:mod:`.attempts`); "no such
order" counts only after the acceptance window since the send; a resting order
is cancelled after ``order_timeout_ms`` (a refused cancel is tried again after a
backoff, with reads between), a stop cancels at once; a start-up reconciles what
an earlier run left without an outcome (:func:`.attempts.at_start`).

Two times come in with every step, each for one purpose. ``now`` (monotonic
nanoseconds) decides: the acceptance window since a send or since the start, waits,
backoffs and the order's deadline, so a step of the system clock (NTP, a resumed VM)
can never make "no such order" trusted early, cut a window short or move a deadline.
``wall`` (wall-clock nanoseconds) is only recorded: the ``wall_time`` of records, and
the age of an order an earlier run recorded (whose records carry wall time).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal

from execd.config.schema import CcxtConfig
from execd.model import reasons
from execd.model.messages import (
    LATE,
    CancelRecord,
    Entry,
    LookupResult,
    OrderRecord,
    SendAttemptRecord,
)
from execd.venues.ccxt import attempts, following
from execd.venues.ccxt.actions import (
    MAX_BACKOFF,
    MS,
    STOP_DOUBT,
    TRIES_WHILE_STOPPING,
    Action,
    AfterWindow,
    CallFailed,
    CancelWhy,
    Done,
    Event,
    Found,
    Lookup,
    Note,
    Placed,
    Queue,
    Send,
    SendFailed,
    Steps,
    Wait,
    Write,
)
from execd.venues.ccxt.results import is_final, not_executed


class Order:
    """One live order's lifecycle: :meth:`start`, then :meth:`handle` each result.

    ``table`` holds the settings in force: the shell may replace it on a reload,
    and each is read when next used. ``stop`` tells it the daemon is stopping.
    """

    def __init__(self, record: OrderRecord, time: int, table: CcxtConfig, *,
                 execution_id: str, trades_readable: bool) -> None:
        self.record = record
        # The intent's logical time: every record of the order carries it.
        self.time = time
        self.table = table
        self.execution_id = execution_id
        # Whether the venue lists an order's trades (ccxt's fetchOrderTrades).
        self.trades_readable = trades_readable
        self.stopping = False
        # A schedule's child whose schedule ended: cancel it at the next step.
        self.cancel_asked = False
        # Monotonic ns, for every decision; wall-clock ns, for records and ages.
        self.now = 0
        self.wall = 0
        # The number of its next send, and the record of its last one.
        self.attempt = 1
        self.last: SendAttemptRecord | None = None
        # The venue's state of the order, when a start-up found it already there.
        self.found: dict[str, Any] | None = None
        # Records that go with the outcome, in its commit (the send of an order the
        # venue filled at once: nothing waits on that record alone).
        self.held: list[Entry] = []
        self.notes: list[Note] = []
        self._steps: Steps = self._new()

    @classmethod
    def unresolved(cls, record: OrderRecord, time: int, table: CcxtConfig, *,
                   execution_id: str, trades_readable: bool, last: SendAttemptRecord | None,
                   started: int) -> Order:
        """An order an earlier run recorded without an outcome, reconciled from ``started``."""
        order = cls(record, time, table, execution_id=execution_id,
                    trades_readable=trades_readable)
        order.last = last
        order._steps = order._reconcile(started)
        return order

    def start(self, now: int, wall: int | None = None) -> Action:
        """The first action: Queue for a new order, a lookup for an unresolved one.

        ``now`` is monotonic ns; ``wall`` the wall clock's (``now`` when not given: a
        test's one hand-driven clock).
        """
        self.now = now
        self.wall = now if wall is None else wall
        return next(self._steps)

    def handle(self, event: Event, now: int, wall: int | None = None) -> Action:
        """Feed the result of the last action; the next action (times as for start)."""
        self.now = now
        self.wall = now if wall is None else wall
        return self._steps.send(event)

    def stop(self) -> None:
        """The daemon is stopping: cancel at once, leave in doubt what cannot be settled."""
        self.stopping = True

    def take_notes(self) -> list[Note]:
        """The log lines since the last call, oldest first."""
        notes, self.notes = self.notes, []
        return notes

    # ------------------------------------------------------------------ helpers

    def note(self, level: Literal["info", "warning"], event: str, **fields: Any) -> None:
        self.notes.append(Note(level, event, fields))

    def _attempt_entry(self, sent: SendAttemptRecord) -> Entry:
        self.last = sent
        return Entry(LATE, "order_attempt", self.time, sent)

    def _failed(self, reason: str, detail: str, *before: Entry) -> Done:
        return Done(not_executed(self.record, execution_id=self.execution_id, time=self.time,
                                 reason=reason, detail=detail, wall_time=self.wall), before)

    def cancel_entry(self, venue_order_id: Any, why: CancelWhy, answer: str) -> Write:
        record = self.record
        return Write((Entry(LATE, "order_cancel", self.time, CancelRecord(
            intent_id=record.intent_id, venue=record.venue,
            client_order_id=record.client_order_id, why=why, answer=answer, wall_time=self.wall,
            venue_order_id=str(venue_order_id) if venue_order_id else None)),))

    # --------------------------------------------------------------- the phases

    def _new(self) -> Steps:
        yield Queue()
        yield from self._execute()

    def _execute(self) -> Steps:
        """Once a worker has it (and its record is durable): send, follow, end."""
        if self.found is None and self.stopping:
            # A drain never waits on a venue for orders it has not sent yet.
            yield self._failed(reasons.EXECUTION_NOT_SENT, "not sent: the daemon was stopping")
            return
        if self.found is None and self.cancel_asked and self.last is None:
            # A schedule's child whose schedule ended before any send of it.
            yield self._failed(reasons.EXECUTION_NOT_SENT,
                               "not sent: its schedule ended before it was sent")
            return
        order = self.found
        if order is None:
            order = yield from self._send()
            if order is None:
                return
        yield from following.track(self, order)

    def _send(self) -> Generator[Action, Event, dict[str, Any] | None]:
        """Send until the order is placed or found (its state), or has ended (None).

        A send that leaves the order's fate open is followed by lookups; another
        send is made only if ``attempts.after_send`` says so (never by default), and
        only once this one's record is durable.
        """
        record = self.record
        while True:
            attempt, sent_at = self.attempt, self.now
            event = yield Send(attempt)
            if isinstance(event, Placed):
                placed = event.order
                entry = self._attempt_entry(attempts.attempt_record(
                    record, attempt, "placed", self.wall, venue_order_id=str(placed.get("id")),
                    venue_status=placed.get("status")))
                if is_final(placed):
                    self.held.append(entry)
                else:
                    yield Write((entry,))
                return placed
            assert isinstance(event, SendFailed)
            answer, message = event.verdict, event.message
            self.note("warning", "order.send_failed", attempt=attempt, verdict=answer,
                       error=message)
            found: dict[str, Any] | None = None
            lookup: LookupResult | None = None
            if answer in ("unknown", "exists"):
                settled, found = yield from self._settle_lookup(sent_at)
                if not settled:
                    yield Write((self._attempt_entry(attempts.attempt_record(
                        record, attempt, answer, self.wall, message=message,
                        lookup="pending")),))
                    yield Done(in_doubt=STOP_DOUBT)
                    return None
                lookup = "found" if found is not None else "absent"
            step = attempts.after_send(attempt, answer, message, lookup,
                                       self.table.send_attempts)
            venue_id = found.get("id") if found is not None else None
            sent = self._attempt_entry(attempts.attempt_record(
                record, attempt, answer, self.wall, message=message, lookup=lookup,
                venue_order_id=str(venue_id) if venue_id else None,
                venue_status=found.get("status") if found is not None else None,
                resend=step.action == "resend"))
            if step.action == "track":
                assert found is not None
                self.note("info", "order.found_after_error", venue_status=found.get("status"))
                yield Write((sent,))
                return found
            if step.action == "fail":
                yield self._failed(step.reason or "", step.detail or "", sent)
                return None
            yield Write((sent,), durable=True)
            self.attempt = attempt + 1

    def _settle_lookup(self, sent_at: int
                       ) -> Generator[Action, Event, tuple[bool, dict[str, Any] | None]]:
        """After an answer that left the fate open: (settled, the venue's order or None).

        "No such order" counts only once the acceptance window since the send has
        passed, since the venue may act late on a request it did not answer; a stop
        that cuts the wait short leaves it unsettled.
        """
        end = sent_at + self.table.acceptance_window_ms * MS
        settled, found = yield from self._lookup(self.table.lookup_delay_ms * MS)
        if settled and found is None and end - self.now > 0:
            settled, found = yield from self._lookup(end - self.now)
            if settled and found is None and self.now < end:
                return False, None  # the wait was cut short by a stop
        return settled, found

    def _lookup(self, delay: int) -> Generator[Action, Event, tuple[bool, dict[str, Any] | None]]:
        """Look up after ``delay``, asking again (with backoff) while the venue cannot say.

        (False, None) once the daemon is stopping and it still cannot.
        """
        wait, failures = delay, 0
        while True:
            if wait:
                yield Wait(self.now + wait)
            event = yield Lookup()
            if isinstance(event, Found):
                return True, event.order
            assert isinstance(event, CallFailed)
            failures += 1
            self.note("warning", "order.lookup_failed", error=event.message, failures=failures)
            if self.stopping and failures >= TRIES_WHILE_STOPPING:
                return False, None
            wait = min(max(wait * 2, self.table.poll_interval_ms * MS), MAX_BACKOFF)

    # ------------------------------------------------------------------ start-up

    def _reconcile(self, started: int) -> Steps:
        """An unresolved order: look it up; if absent, again after the window since start.

        The earlier run sent nothing later than ``started``, so once the acceptance
        window since then has passed, "no such order" is final. What follows is
        :func:`attempts.at_start`'s decision.
        """
        settled, found = yield from self._lookup(0)
        if settled and found is None:
            yield AfterWindow(started + self.table.acceptance_window_ms * MS)
            if self.stopping:
                settled = False  # the stop came first: nothing settles it in this run
            else:
                settled, found = yield from self._lookup(0)
        if not settled:
            yield Done(in_doubt=STOP_DOUBT)
            return
        yield from self._resolve(found)

    def _resolve(self, found: dict[str, Any] | None) -> Steps:
        """Carry out start-up's decision; a send the ledger does not show is recorded first."""
        record, table = self.record, self.table
        # Age on the wall clock: logical time says nothing about how long ago.
        age_ms = None if record.wall_time is None else (self.wall - record.wall_time) // MS
        venue_id = found.get("id") if found is not None else None
        settle, step = attempts.at_start(
            record, self.last, found is not None, self.wall, send_attempts=table.send_attempts,
            resend_window_ms=table.resend_window_ms, age_ms=age_ms,
            venue_order_id=str(venue_id) if venue_id else None,
            venue_status=found.get("status") if found is not None else None)
        self.found = found
        before = () if settle is None else (self._attempt_entry(settle),)
        if step.action == "fail":
            self.note("warning", "order.not_sent" if step.reason == reasons.EXECUTION_NOT_SENT
                       else "order.reconciled", reason=step.reason, detail=step.detail,
                       age_ms=age_ms)
            yield self._failed(step.reason or "", step.detail or "", *before)
            return
        if before:
            yield Write(before, durable=step.action == "resend")
        if step.action == "resend":
            self.attempt = settle.attempt + 1 if settle is not None else 1
            self.note("info", "order.resend_unsent", attempt=self.attempt, age_ms=age_ms)
        else:
            self.note("info", "order.reconciled", venue_status=(found or {}).get("status"),
                       age_ms=age_ms)
        yield Queue()
        yield from self._execute()
