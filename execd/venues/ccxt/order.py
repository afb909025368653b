"""The life of one live order, sans I/O: what to do next, given what the venue said.

An :class:`Order` is fed the venue's replies and errors (already classified by
:mod:`~execd.venues.ccxt.exchanges`) and ``now``, and returns the next action:
send attempt n, look the order up, read it, cancel it, read its trades, write
records, wait until a time, or be done with its outcome. It reads no clock, does
no I/O and never sleeps; the shell (:mod:`~execd.venues.ccxt.venue`) carries out
the actions, one at a time, and feeds each one's result back (as h11's
``Connection`` is driven). One shell drives any number of orders, each its own
small object.

The rules are those of docs/ARCHITECTURE.md (the live plane) and the README's
fault table: every send is recorded, another is made only as ``send_attempts``
allows and once the record before it is durable (:mod:`.attempts`); "no such
order" counts only after the acceptance window since the send; a resting order
is cancelled after ``order_timeout_ms`` (a refused cancel is tried again after a
backoff, with reads between), a stop cancels at once; a start-up reconciles what
an earlier run left without an outcome (:func:`.attempts.at_start`).

Time is one clock: ``now`` is nanoseconds on the wall clock the shell reads, the
clock the venue's own acceptance window (``recvWindow``, ``expTime``) is measured on
and the one an earlier run's records carry, so a start-up can tell an order's age.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal

from msgspec import Struct

from execd.config.schema import CcxtConfig
from execd.model import reasons
from execd.model.messages import (
    LATE,
    CancelRecord,
    Entry,
    ExecutionOutcome,
    LookupResult,
    OrderRecord,
    SendAttemptRecord,
)
from execd.venues.ccxt import attempts
from execd.venues.ccxt.exchanges import Verdict
from execd.venues.ccxt.results import (
    fees_of_trades,
    fees_so_far,
    filled_of,
    is_final,
    not_executed,
    outcome_of_order,
    own_fees,
)

MS = 1_000_000
# The longest pause between reads of an order whose state cannot be read.
MAX_BACKOFF = 30_000 * MS
# Calls that may still fail once the daemon is stopping, before an order is left
# for the next start-up to reconcile.
TRIES_WHILE_STOPPING = 3
STOP_DOUBT = "the venue could not say what became of it during the stop"

CancelWhy = Literal["order_timeout_ms", "stopping"]

# ------------------------------------------------------------------- actions


class Wait(Struct, frozen=True):
    """Wait until ``until``; earlier on an update pushed for the order, or on a stop."""

    until: int
    push: bool = False
    stop: bool = True


class AfterWindow(Struct, frozen=True):
    """A start-up's lookups found nothing: ask again once the acceptance window since
    the start (``until``) has passed; the shell waits once for all such orders."""

    until: int


class Send(Struct, frozen=True):
    """Send the order (its ``attempt``-th send); feed back Placed or SendFailed."""

    attempt: int


class Lookup(Struct, frozen=True):
    """Look the order up by client order id; feed back Found or CallFailed."""


class Follow(Struct, frozen=True):
    """The order is at the venue: follow it on the order stream from now on; feed Ok."""

    venue_order_id: Any
    order: dict[str, Any]


class Read(Struct, frozen=True):
    """Read the followed order by its venue id; feed back Got or CallFailed."""

    venue_order_id: Any


class Cancel(Struct, frozen=True):
    """Ask the venue to cancel it; feed back Cancelled or CallFailed."""

    venue_order_id: Any
    why: CancelWhy


class ReadTrades(Struct, frozen=True):
    """Read the final order's trades (for its fees); feed back Got or CallFailed."""

    venue_order_id: Any


class Write(Struct, frozen=True):
    """Hand ``entries`` to the ledger (and, ``durable``, wait until they are); feed Ok."""

    entries: tuple[Entry, ...]
    durable: bool = False


class Queue(Struct, frozen=True):
    """Reconciled: give the order to a worker, which feeds Ok when it takes it."""


class Done(Struct, frozen=True):
    """The end: write ``outcome`` after ``before`` (one commit), or leave it in doubt."""

    outcome: ExecutionOutcome | None = None
    before: tuple[Entry, ...] = ()
    in_doubt: str | None = None


Action = Wait | AfterWindow | Send | Lookup | Follow | Read | Cancel | ReadTrades | Write \
    | Queue | Done

# -------------------------------------------------------------------- events


class Ok(Struct, frozen=True):
    """The action is carried out (a wait ended, records handed over, the order taken)."""


class Placed(Struct, frozen=True):
    """The venue answered the send with this order (readable: see exchanges.readable_order)."""

    order: dict[str, Any]


class SendFailed(Struct, frozen=True):
    """The send failed or its reply was not the order: what that says, and the message."""

    verdict: Verdict
    message: str


class Found(Struct, frozen=True):
    """A lookup's answer: the venue's order, or None for "no such order"."""

    order: dict[str, Any] | None


class Got(Struct, frozen=True):
    """A read's answer: the order (Read) or its trades (ReadTrades)."""

    value: Any


class Cancelled(Struct, frozen=True):
    """The venue took the cancel (its reply), or None: it had no such order open."""

    order: dict[str, Any] | None


class CallFailed(Struct, frozen=True):
    """A lookup, read or cancel failed: the venue's message."""

    message: str


Event = Ok | Placed | SendFailed | Found | Got | Cancelled | CallFailed


class Note(Struct, frozen=True):
    """A log line the shell writes for the order (the shell adds its ids)."""

    level: Literal["info", "warning"]
    event: str
    fields: dict[str, Any]


Steps = Generator[Action, Event, None]


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
        self.now = 0
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

    def start(self, now: int) -> Action:
        """The first action: Queue for a new order, a lookup for an unresolved one."""
        self.now = now
        return next(self._steps)

    def handle(self, event: Event, now: int) -> Action:
        """Feed the result of the last action; the next action."""
        self.now = now
        return self._steps.send(event)

    def stop(self) -> None:
        """The daemon is stopping: cancel at once, leave in doubt what cannot be settled."""
        self.stopping = True

    def take_notes(self) -> list[Note]:
        """The log lines since the last call, oldest first."""
        notes, self.notes = self.notes, []
        return notes

    # ------------------------------------------------------------------ helpers

    def _note(self, level: Literal["info", "warning"], event: str, **fields: Any) -> None:
        self.notes.append(Note(level, event, fields))

    def _attempt_entry(self, sent: SendAttemptRecord) -> Entry:
        self.last = sent
        return Entry(LATE, "order_attempt", self.time, sent)

    def _failed(self, reason: str, detail: str, *before: Entry) -> Done:
        return Done(not_executed(self.record, execution_id=self.execution_id, time=self.time,
                                 reason=reason, detail=detail, wall_time=self.now), before)

    def _cancel_entry(self, venue_order_id: Any, why: CancelWhy, answer: str) -> Write:
        record = self.record
        return Write((Entry(LATE, "order_cancel", self.time, CancelRecord(
            intent_id=record.intent_id, venue=record.venue,
            client_order_id=record.client_order_id, why=why, answer=answer, wall_time=self.now,
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
        order = self.found
        if order is None:
            order = yield from self._send()
            if order is None:
                return
        yield from self._track(order)

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
                    record, attempt, "placed", self.now, venue_order_id=str(placed.get("id")),
                    venue_status=placed.get("status")))
                if is_final(placed):
                    self.held.append(entry)
                else:
                    yield Write((entry,))
                return placed
            assert isinstance(event, SendFailed)
            answer, message = event.verdict, event.message
            self._note("warning", "order.send_failed", attempt=attempt, verdict=answer,
                       error=message)
            found: dict[str, Any] | None = None
            lookup: LookupResult | None = None
            if answer in ("unknown", "exists"):
                settled, found = yield from self._settle_lookup(sent_at)
                if not settled:
                    yield Write((self._attempt_entry(attempts.attempt_record(
                        record, attempt, answer, self.now, message=message,
                        lookup="pending")),))
                    yield Done(in_doubt=STOP_DOUBT)
                    return None
                lookup = "found" if found is not None else "absent"
            step = attempts.after_send(attempt, answer, message, lookup,
                                       self.table.send_attempts)
            venue_id = found.get("id") if found is not None else None
            sent = self._attempt_entry(attempts.attempt_record(
                record, attempt, answer, self.now, message=message, lookup=lookup,
                venue_order_id=str(venue_id) if venue_id else None,
                venue_status=found.get("status") if found is not None else None,
                resend=step.action == "resend"))
            if step.action == "track":
                assert found is not None
                self._note("info", "order.found_after_error", venue_status=found.get("status"))
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
            self._note("warning", "order.lookup_failed", error=event.message, failures=failures)
            if self.stopping and failures >= TRIES_WHILE_STOPPING:
                return False, None
            wait = min(max(wait * 2, self.table.poll_interval_ms * MS), MAX_BACKOFF)

    def _track(self, order: dict[str, Any]) -> Steps:
        """Follow the order until it is final; cancel it after order_timeout_ms or at stop."""
        order_id = order.get("id")
        yield Follow(order_id, order)
        deadline = self.now + self.table.order_timeout_ms * MS
        poll = self.table.poll_interval_ms * MS
        cancelled = False
        failures = polls_after_cancel = cancel_failures = 0
        # A refused cancel is tried again only after a backoff, with reads between:
        # the venue may refuse it because the order has just ended.
        next_cancel = 0
        # A stop cancels at once, whatever backoff a refused cancel left.
        stop_cancel_sent = False
        while not is_final(order):
            if cancelled:
                # Cancelled, not yet final: read at the normal pace, and while stopping
                # only a few times before leaving it to reconciliation.
                polls_after_cancel += 1
                if self.stopping and polls_after_cancel > TRIES_WHILE_STOPPING:
                    yield Done(in_doubt=STOP_DOUBT)
                    return
                yield Wait(self.now + poll, push=True, stop=False)
            elif ((self.stopping and not stop_cancel_sent)
                  or ((self.stopping or self.now >= deadline) and self.now >= next_cancel)):
                why: CancelWhy = "stopping" if self.stopping else "order_timeout_ms"
                stop_cancel_sent = stop_cancel_sent or why == "stopping"
                event = yield Cancel(order_id, why)
                if isinstance(event, Cancelled):
                    # Some venues (OKX, Bybit) answer a cancel without the order's state:
                    # the request was taken, and the reads below show the state. "Not
                    # found": it ended on its own meanwhile.
                    if event.order is not None:
                        order = event.order
                    answer = ("not found" if event.order is None
                              else str(order.get("status") or "accepted"))
                    yield self._cancel_entry(order_id, why, answer)
                    cancelled = True
                    if is_final(order):
                        break
                else:
                    assert isinstance(event, CallFailed)
                    yield self._cancel_entry(order_id, why, event.message)
                    cancel_failures += 1
                    self._note("warning", "order.cancel_failed", error=event.message,
                               failures=cancel_failures)
                    if self.stopping and cancel_failures >= TRIES_WHILE_STOPPING:
                        yield Done(in_doubt=STOP_DOUBT)
                        return
                    next_cancel = self.now + min(poll * 2 ** cancel_failures, MAX_BACKOFF)
            else:
                # Until the next read, or an update pushed for it (a wake-up: the state
                # is still read by REST, just below), or the next cancel. Once
                # stopping, the stop is no reason to wake: it has happened.
                due = max(deadline, next_cancel) - self.now
                yield Wait(self.now + min(poll, max(due, 0)), push=True, stop=not self.stopping)
            event = yield Read(order_id)
            if isinstance(event, Got):
                order = event.value
                continue
            assert isinstance(event, CallFailed)
            failures += 1
            self._note("warning", "order.poll_failed", error=event.message, failures=failures)
            if self.stopping and failures >= TRIES_WHILE_STOPPING:
                yield Done(in_doubt=STOP_DOUBT)
                return
            yield Wait(self.now + min(poll * failures, MAX_BACKOFF))
        yield from self._fees(order, cancelled)

    def _fees(self, order: dict[str, Any], cancelled: bool) -> Steps:
        """The outcome of the final ``order``, with its fees and whether they are all.

        The order's own structure is enough when its fees cover all it filled (a
        FULL create reply lists its fills): no request. Otherwise its trades are
        read, and again after ``fee_read_pause_ms`` while they add up to less than
        the fill (the venue's trade list can lag the order), ``fee_reads`` times at
        most and only once while stopping. What is still short then is recorded
        with the fees known so far, marked incomplete.
        """
        filled = filled_of(order)
        known = own_fees(order)
        complete = known.covered >= filled
        order_id = order.get("id")
        readable = bool(order_id) and self.trades_readable
        why = "fee_reads=0" if readable else "the venue cannot list this order's trades"
        reads = 0
        while not complete and readable and reads < self.table.fee_reads:
            if reads:
                yield Wait(self.now + self.table.fee_read_pause_ms * MS)
            reads += 1
            event = yield ReadTrades(order_id)
            if isinstance(event, Got):
                read = fees_of_trades(event.value)
                if read.covered >= filled:
                    known, complete = read, True
                    break
                known = fees_so_far(known, read)
                why = f"the trades add up to {read.covered} of filled={filled}"
            else:
                assert isinstance(event, CallFailed)
                why = event.message
            if self.stopping:
                break
        if not complete:
            self._note("warning", "order.fees_incomplete", reads=reads, why=why,
                       fees=[[str(f.cost), f.currency] for f in known.fees],
                       covered=str(known.covered), filled=str(filled))
        yield Done(outcome_of_order(
            self.record, order, execution_id=self.execution_id, time=self.time,
            cancelled_by_us=cancelled, wall_time=self.now, fees=known.fees,
            fees_complete=complete), tuple(self.held))

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
        age_ms = None if record.wall_time is None else (self.now - record.wall_time) // MS
        venue_id = found.get("id") if found is not None else None
        settle, step = attempts.at_start(
            record, self.last, found is not None, self.now, send_attempts=table.send_attempts,
            resend_window_ms=table.resend_window_ms, age_ms=age_ms,
            venue_order_id=str(venue_id) if venue_id else None,
            venue_status=found.get("status") if found is not None else None)
        self.found = found
        before = () if settle is None else (self._attempt_entry(settle),)
        if step.action == "fail":
            self._note("warning", "order.not_sent" if step.reason == reasons.EXECUTION_NOT_SENT
                       else "order.reconciled", reason=step.reason, detail=step.detail,
                       age_ms=age_ms)
            yield self._failed(step.reason or "", step.detail or "", *before)
            return
        if before:
            yield Write(before, durable=step.action == "resend")
        if step.action == "resend":
            self.attempt = settle.attempt + 1 if settle is not None else 1
            self._note("info", "order.resend_unsent", attempt=self.attempt, age_ms=age_ms)
        else:
            self._note("info", "order.reconciled", venue_status=(found or {}).get("status"),
                       age_ms=age_ms)
        yield Queue()
        yield from self._execute()
