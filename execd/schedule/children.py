"""A schedule's child intents and its parent's one outcome, as values. Pure.

A child is an intent of its own (README, "Execution algorithms"): the parent's venue,
symbol, side, order type, prices, constraints, plan and run, for the child's share of
the quantity, under the id :func:`execd.model.ids.child_intent_id` gives. What only the
parent carries (its algorithm, research's context, its signature) stays on the parent,
whose line the ``schedule`` record keeps.

The parent's outcome sums its children: filled quantity their sum, average price the
fill-weighted average, and a status by the rules of any intent (FILLED when all of it
filled; PARTIALLY_FILLED or FAILED by what filled, SKIPPED when no child was sent), with
the reason the schedule ended short.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import msgspec

from execd.model import ids, reasons
from execd.model.messages import (
    Constraints,
    Execution,
    ExecutionOutcome,
    OrderIntent,
    Plane,
    ScheduleRecord,
    normal,
)
from execd.model.reasons import Status
from execd.schedule.core import Done

_parent_intent = msgspec.json.Decoder(OrderIntent).decode


def parent_intent(record: ScheduleRecord) -> OrderIntent:
    """The parent's intent as its line (kept in the record) says, with the execution the
    policy gave it when it named none (``record.execution``) and the rule's leverage cap
    where it lowered its own (``record.max_leverage``)."""
    # Its quantity is the record's: a line that gave a fraction was sized (README, "Sizing").
    intent = normal(_parent_intent(record.intent))
    if intent.quantity != record.quantity:
        intent = msgspec.structs.replace(intent, quantity=record.quantity)
    if record.execution is not None:
        intent = msgspec.structs.replace(intent, execution=record.execution)
    if record.max_leverage is not None:
        intent = msgspec.structs.replace(intent, constraints=msgspec.structs.replace(
            intent.constraints or Constraints(), max_leverage=record.max_leverage))
    return intent


def child_intent(parent: OrderIntent, child: uuid.UUID, quantity: Decimal) -> OrderIntent:
    """The child ``child`` of ``parent``, for ``quantity``: its time in force is the
    parent's (each child is sent with it), its algorithm is not."""
    execution = parent.execution
    if execution is not None and execution.time_in_force is not None:
        execution = Execution(time_in_force=execution.time_in_force,
                              expire_at=execution.expire_at)
    else:
        execution = None
    return msgspec.structs.replace(parent, intent_id=child, quantity=quantity,
                                   execution=execution, context=None, signature=None)


def measured(child: OrderIntent, record: ScheduleRecord, passive: bool,
             market: Decimal | None) -> OrderIntent:
    """A child of a schedule held to a slippage tolerance (README, "Execution policies"):
    after a ``passive`` response, a post-only limit at the arrival price (it waits for
    the market to come to it, and its time in force is PO); else, on the paper plane, a
    market child priced at the lakehouse's price as it is released (``market``: None
    on a live venue, or when there is none), so that paper fills move with the market
    and its slippage is measured as a live fill's is."""
    if passive and record.arrival is not None:
        constraints = child.constraints or Constraints()
        return msgspec.structs.replace(
            child, order_type="limit", limit_price=record.arrival, execution=None,
            constraints=msgspec.structs.replace(constraints, post_only=True))
    if market is not None and child.order_type == "market":
        return msgspec.structs.replace(child, reference_price=market)
    return child


def parent_outcome(done: Done, plane: Plane, time: int) -> ExecutionOutcome:
    """The one outcome of the parent whose schedule ``done`` ended."""
    record = done.record
    filled = done.executed
    planned = done.planned * record.lot
    status: Status
    reason: str | None = None
    detail: str | None = None
    if filled == record.quantity:
        status = "FILLED"
    else:
        # No child sent: nothing was asked of a venue.
        status = "SKIPPED" if not done.children else "PARTIALLY_FILLED" if filled else "FAILED"
        if done.ended is not None:
            reason = done.ended
        elif filled == planned:
            reason = reasons.EXECUTION_LOT_ROUNDED
        else:
            reason = reasons.SCHEDULE_INCOMPLETE
        detail = (f"filled {filled} of {record.quantity} ({planned} planned in "
                  f"{done.slices} slices, {done.children} children)")
        if done.note:
            detail += f"; {done.note}"
    average = (done.notional / filled).normalize() if filled and done.notional else None
    if average is not None and average.as_tuple().exponent > 0:  # type: ignore[operator]
        average = average.quantize(Decimal(1))
    return ExecutionOutcome(
        execution_id=ids.execution_id(record.intent_id, record.venue, plane),
        intent_id=record.intent_id, status=status, filled_quantity=filled,
        logical_time=time, plane=plane, venue=record.venue, symbol=record.symbol,
        side=record.side, requested_quantity=record.quantity, average_price=average,
        reason=reason, detail=detail, source=record.source, intent=record.intent,
        children=done.children, sizing=record.sizing)
