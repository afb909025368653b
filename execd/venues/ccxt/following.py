"""Following a placed order to its end, sans I/O: reads, cancels, fees, the outcome.

Part of one :class:`~execd.venues.ccxt.order.Order`'s lifecycle (the steps after
the venue has the order), kept apart so each module has one job. The rules are
docs/ARCHITECTURE.md's ("Live sends, times and the drain"): the order is read every
``poll_interval_ms`` (sooner when the order stream pushes an update), cancelled
once ``order_timeout_ms`` has passed or at once on a stop; a refused cancel is
tried again after a backoff, with reads between (the venue may refuse it because
the order has just ended); while stopping, only a few failures are borne before the
order is left to the next start. Once final, its fees are read from its trades
when its own structure does not cover its fill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from execd.venues.ccxt.actions import (
    MAX_BACKOFF,
    MS,
    STOP_DOUBT,
    TRIES_WHILE_STOPPING,
    CallFailed,
    Cancel,
    Cancelled,
    CancelWhy,
    Done,
    Follow,
    Got,
    Read,
    ReadTrades,
    Steps,
    Wait,
)
from execd.venues.ccxt.results import (
    fees_of_trades,
    fees_so_far,
    filled_of,
    is_final,
    outcome_of_order,
    own_fees,
)

if TYPE_CHECKING:
    from execd.venues.ccxt.order import Order


def track(machine: Order, order: dict[str, Any]) -> Steps:
    """Follow the order until it is final; cancel it after order_timeout_ms or at stop."""
    order_id = order.get("id")
    yield Follow(order_id, order)
    deadline = machine.now + machine.table.order_timeout_ms * MS
    poll = machine.table.poll_interval_ms * MS
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
            if machine.stopping and polls_after_cancel > TRIES_WHILE_STOPPING:
                yield Done(in_doubt=STOP_DOUBT)
                return
            yield Wait(machine.now + poll, push=True, stop=False)
        elif ((machine.stopping and not stop_cancel_sent)
              or ((machine.stopping or machine.cancel_asked or machine.now >= deadline)
                  and machine.now >= next_cancel)):
            why: CancelWhy = ("stopping" if machine.stopping else "schedule_ended"
                              if machine.cancel_asked else "order_timeout_ms")
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
                yield machine.cancel_entry(order_id, why, answer)
                cancelled = True
                if is_final(order):
                    break
            else:
                assert isinstance(event, CallFailed)
                yield machine.cancel_entry(order_id, why, event.message)
                cancel_failures += 1
                machine.note("warning", "order.cancel_failed", error=event.message,
                           failures=cancel_failures)
                if machine.stopping and cancel_failures >= TRIES_WHILE_STOPPING:
                    yield Done(in_doubt=STOP_DOUBT)
                    return
                next_cancel = machine.now + min(poll * 2 ** cancel_failures, MAX_BACKOFF)
        else:
            # Until the next read, or an update pushed for it (a wake-up: the state
            # is still read by REST, just below), or the next cancel. Once
            # stopping, the stop is no reason to wake: it has happened.
            due = max(deadline, next_cancel) - machine.now
            yield Wait(machine.now + min(poll, max(due, 0)), push=True, stop=not machine.stopping)
        event = yield Read(order_id)
        if isinstance(event, Got):
            order = event.value
            continue
        assert isinstance(event, CallFailed)
        failures += 1
        machine.note("warning", "order.poll_failed", error=event.message, failures=failures)
        if machine.stopping and failures >= TRIES_WHILE_STOPPING:
            yield Done(in_doubt=STOP_DOUBT)
            return
        yield Wait(machine.now + min(poll * failures, MAX_BACKOFF))
    yield from outcome(machine, order, cancelled)

def outcome(machine: Order, order: dict[str, Any], cancelled: bool) -> Steps:
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
    readable = bool(order_id) and machine.trades_readable
    why = "fee_reads=0" if readable else "the venue cannot list this order's trades"
    reads = 0
    while not complete and readable and reads < machine.table.fee_reads:
        if reads:
            yield Wait(machine.now + machine.table.fee_read_pause_ms * MS)
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
        if machine.stopping:
            break
    if not complete:
        machine.note("warning", "order.fees_incomplete", reads=reads, why=why,
                   fees=[[str(f.cost), f.currency] for f in known.fees],
                   covered=str(known.covered), filled=str(filled))
    yield Done(outcome_of_order(
        machine.record, order, execution_id=machine.execution_id, time=machine.time,
        cancelled_by_us=cancelled, wall_time=machine.wall, fees=known.fees,
        fees_complete=complete), tuple(machine.held))
