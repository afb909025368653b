"""Sending a live order, the pure half: what each answer of the venue leads to.

Execution never retries on its own (docs/CONTRACT.md). An order is sent once, unless the
venue's ``send_attempts`` explicitly allows more; an order the venue never received
(a lookup by client order id finds nothing once the acceptance window has passed)
is then FAILED ``EXECUTION_NOT_SENT``. A start-up resends an order an earlier run
recorded only with ``resend_window_ms > 0`` (and within ``send_attempts`` in all).

Every send is recorded (:class:`~execd.model.messages.SendAttemptRecord`), and a send is
made only once the record of the one before it is durable. So after any crash the
last record says how many sends may have reached the venue: its own number, or one
more when it announced a resend (or when there is no record at all). The next start
writes the record of that unrecorded send before deciding anything else.
"""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from execd.model import reasons
from execd.model.messages import LookupResult, OrderRecord, SendAnswer, SendAttemptRecord

Action = Literal["track", "resend", "fail"]


class Step(Struct, frozen=True):
    """What follows a send (or a start-up's lookup): follow the order, send again, or fail."""

    action: Action
    reason: str | None = None
    detail: str | None = None


TRACK = Step("track")


def attempt_record(record: OrderRecord, attempt: int, answer: SendAnswer, wall_time: int, *,
                   message: str | None = None, lookup: LookupResult | None = None,
                   venue_order_id: str | None = None, venue_status: str | None = None,
                   resend: bool = False) -> SendAttemptRecord:
    """The ledger record of send ``attempt`` of ``record``'s order."""
    return SendAttemptRecord(
        intent_id=record.intent_id, venue=record.venue, client_order_id=record.client_order_id,
        attempt=attempt, answer=answer, wall_time=wall_time, message=message, lookup=lookup,
        venue_order_id=venue_order_id, venue_status=venue_status, resend=resend)


def unrecorded(last: SendAttemptRecord | None) -> int | None:
    """The number of a send that may have been made without a record of its own.

    Before any record, the first send may have gone; after a record that announced
    a resend, the next one may have. Otherwise every send is recorded.
    """
    if last is None:
        return 1
    return last.attempt + 1 if last.resend else None


def after_send(attempt: int, answer: SendAnswer, message: str, lookup: LookupResult | None,
               send_attempts: int) -> Step:
    """What follows send ``attempt``, given its answer and (if one was needed) the lookup.

    ``lookup`` is None for answers that settle the order's fate by themselves
    (placed, rejected, unreachable).
    """
    if answer == "placed" or lookup == "found":
        return TRACK
    if answer == "rejected":
        return Step("fail", reasons.EXECUTION_REJECTED, message)
    if answer == "unreachable":
        return Step("fail", reasons.EXECUTION_NOT_AVAILABLE, message)
    if answer == "exists":
        # The venue refused a duplicate id, then could not find the original: its two
        # answers disagree, and sending again could double the order.
        return Step("fail", reasons.EXECUTION_REJECTED,
                    f"{message}; and no order with this client id was found")
    if attempt < send_attempts:
        return Step("resend")
    return Step("fail", reasons.EXECUTION_NOT_SENT,
                f"the venue did not receive it: after the acceptance window it has no order "
                f"with this client id; sent {attempt} of send_attempts={send_attempts} times, "
                f"not sent again (last answer: {message})")


def at_start(record: OrderRecord, last: SendAttemptRecord | None, found: bool,
             wall_time: int, *, send_attempts: int, resend_window_ms: int,
             age_ms: int | None, venue_order_id: str | None = None,
             venue_status: str | None = None) -> tuple[SendAttemptRecord | None, Step]:
    """What a start-up does with an order an earlier run recorded without an outcome.

    ``last`` is the order's last send record, ``found`` whether the venue has the
    order (for "no", asked again after the acceptance window). The record to write
    first, durably (None when the ledger already says all there is), and the step.
    """
    number = unrecorded(last)
    answer: SendAnswer | None = None
    message: str | None = None
    if number is not None:
        answer = "not_recorded"
        message = "the run that may have made this send stopped before recording its answer"
    elif last is not None and last.lookup == "pending":
        # The stop cut this send's lookup short; this start's lookup settles it.
        number, answer, message = last.attempt, last.answer, last.message
    lookup: LookupResult = "found" if found else "absent"
    if found:
        settle = None if number is None or answer is None else attempt_record(
            record, number, answer, wall_time, message=message, lookup=lookup,
            venue_order_id=venue_order_id, venue_status=venue_status)
        return settle, TRACK
    if number is None or answer is None:
        # Every send is recorded and settled: the earlier run was about to write the
        # outcome its last record leads to.
        assert last is not None
        if last.answer == "placed" or last.lookup == "found":
            return None, Step("fail", reasons.EXECUTION_EXPIRED,
                              f"send {last.attempt} placed it (venue order id "
                              f"{last.venue_order_id}), and the venue no longer has an order "
                              f"with this client id: it ended without a fill it still shows")
        step = after_send(last.attempt, last.answer, last.message or "", last.lookup,
                          last.attempt)
        return None, step
    if answer == "exists":
        step = after_send(number, answer, message or "", lookup, number)
        return attempt_record(record, number, answer, wall_time, message=message,
                              lookup=lookup), step
    why = _no_resend(number, send_attempts, resend_window_ms, age_ms)
    settle = attempt_record(record, number, answer, wall_time, message=message, lookup=lookup,
                            resend=why is None)
    if why is None:
        return settle, Step("resend")
    return settle, Step("fail", reasons.EXECUTION_NOT_SENT,
                        f"the venue did not receive it: after the acceptance window it has no "
                        f"order with this client id ({number} sends may have been made); not "
                        f"sent again: {why}")


def _no_resend(sends: int, send_attempts: int, resend_window_ms: int,
               age_ms: int | None) -> str | None:
    """Why a start-up does not send an unsent order again (None: it does)."""
    if sends >= send_attempts:
        return f"send_attempts={send_attempts}"
    if resend_window_ms == 0:
        return "resend_window_ms=0 (no resend at start-up)"
    if age_ms is None:
        return "its age is unknown (recorded without a wall-clock time)"
    if age_ms > resend_window_ms:
        return f"recorded {age_ms} ms ago > resend_window_ms={resend_window_ms}"
    return None
