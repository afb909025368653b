"""An execution policy applied to one intent: its rule, its default, its refusals. Pure.

The sentinel asks :func:`judge` of every intent that passed the structural checks,
before its schedule is planned: the rule that applies (:meth:`Policy.applies
<execd.policy.file.Policy.applies>`), the intent with that rule's default execution when
it named none, or the refusal of an order type or time in force the rule does not
allow. Once the schedule is planned, :func:`pacing` says whether it keeps to the rule's
pacing. Both are functions of the intent, the policy and numbers the sentinel passes in:
a replay of the same inputs under the same policy file decides the same.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec
from msgspec import Struct

from execd.model import reasons
from execd.model.messages import Constraints, Execution, OrderIntent, Plane, ScheduleRecord
from execd.model.refusal import Refusal
from execd.policy.file import Default, Policy, Rule
from execd.policy.orders import leverage_of, order_type_of, time_in_force_of
from execd.policy.rules import Match
from execd.schedule.core import slices_of
from execd.schedule.intake import TIMES_IN_FORCE

_TIMED = frozenset(("twap", "vwap", "pov"))


class Applied(Struct, frozen=True, gc=False):
    """The rule that applies (None: none does) and the intent as it executes: with the
    rule's default execution when ``defaulted``."""

    rule: str | None
    intent: OrderIntent
    defaulted: bool = False


def execution_of(default: Default) -> Execution:
    """A rule's default as the execution an intent could have named."""
    return Execution(default.algorithm, duration=default.duration, slices=default.slices,
                     interval=default.interval, visible=default.visible,
                     participation=default.participation, time_in_force=default.time_in_force)


def judge(policy: Policy, intent: OrderIntent, plane: Plane) -> Applied | Refusal:
    """The rule for ``intent`` on ``plane``, and the intent as that rule lets it execute;
    or the refusal of what the rule does not allow."""
    name = policy.applies(Match(plane, intent.venue, intent.symbol, intent.urgency,
                                intent.action, intent.source_run))
    if name is None:
        return Applied(None, intent)
    rule = policy.file.rules[name]
    defaulted = False
    if intent.execution is None:
        default = rule.algorithms.get(intent.urgency)
        if default is not None and (default.algorithm != "immediate"
                                    or default.time_in_force is not None):
            intent = msgspec.structs.replace(intent, execution=execution_of(default))
            defaulted = True
    cap = rule.max_leverage
    if cap is not None:
        constraints = intent.constraints or Constraints()
        own = constraints.max_leverage
        if own is None or cap < own:
            intent = msgspec.structs.replace(intent, constraints=msgspec.structs.replace(
                constraints, max_leverage=cap))
    order_type = order_type_of(intent)
    allowed = rule.order_types
    if allowed is not None and order_type not in allowed:
        became = "" if order_type == intent.order_type else (
            f" (order_type={intent.order_type} with a reference price, at urgency "
            f"{intent.urgency}, is sent as a limit)")
        return Refusal(reasons.POLICY_ORDER_TYPE_REFUSED,
                       f"rule {name}: a {order_type} order is not allowed (allowed: "
                       f"{', '.join(allowed)}){became}")
    tif = time_in_force_of(intent, order_type)
    # One that is no time in force at all is the schedule's intake's to refuse, as such.
    tifs = rule.times_in_force
    if tifs is not None and tif in TIMES_IN_FORCE and tif not in tifs:
        return Refusal(reasons.POLICY_TIME_IN_FORCE_REFUSED,
                       f"rule {name}: time in force {tif} is not allowed (allowed: "
                       f"{', '.join(tifs)})")
    paced = rule.pacing
    share = intent.execution.participation if intent.execution is not None else None
    most = paced.max_participation if paced is not None else None
    # Before the schedule is planned (a POV needs the market's volume to be): a share
    # that is no number is the intake's to refuse, as such.
    if most is not None and share is not None and share.is_finite() and share > most:
        return _exceeded(name, f"participation={share} is above max_participation={most}")
    return Applied(name, intent, defaulted)


def pacing(policy: Policy, name: str, intent: OrderIntent, schedule: ScheduleRecord | None,
           now: int, price: Decimal | None) -> Refusal | None:
    """Why ``intent`` (planned as ``schedule``; None: one immediate order) breaks rule
    ``name``'s pacing, or None. ``price``: what its children are valued at (the
    lakehouse's price, else the intent's own), None when there is none."""
    rule: Rule = policy.file.rules[name]
    paced = rule.pacing
    if paced is None:
        return None
    execution = intent.execution
    if schedule is not None and execution is not None and execution.algorithm in _TIMED:
        # What is left of the window when the intent is read: a window that began in the
        # past trades its due part at once.
        start = now if execution.start is None else max(execution.start, now)
        end = execution.end if execution.end is not None else (
            (now if execution.start is None else execution.start) + (execution.duration or 0))
        length = end - start
        if paced.min_duration is not None and length < paced.min_duration:
            return _exceeded(name, f"the window left, [{start}, {end}), lasts {length}: "
                                   f"shorter than min_duration={paced.min_duration}")
        if paced.max_duration is not None and length > paced.max_duration:
            return _exceeded(name, f"the window left, [{start}, {end}), lasts {length}: "
                                   f"longer than max_duration={paced.max_duration}")
    cap = paced.max_child_notional
    if cap is None or (schedule is not None and schedule.pov is not None):
        # A POV's children are sized by the market's volume as it comes: its pacing is
        # max_participation.
        return None
    if schedule is None:
        largest = intent.absolute
    else:
        slices = slices_of(schedule.slices)
        lots = max((n for due, n in slices if due > now), default=0)
        # The slices already due go out as one child (an iceberg's never merge).
        due_now = [n for due, n in slices if due <= now]
        lots = max(lots, sum(due_now) if schedule.merge else max(due_now, default=0))
        largest = lots * schedule.lot
    if price is None:
        return _exceeded(name, f"max_child_notional={cap}: no price to value a child of "
                               f"{largest} by (no lakehouse price, limit or reference price)")
    notional = largest * price
    if notional > cap:
        return _exceeded(name, f"a child of {largest} at {price} is {notional}: above "
                               f"max_child_notional={cap}")
    return None


def govern(policy: Policy, name: str, written: OrderIntent, intent: OrderIntent,
           schedule: ScheduleRecord | None, now: int, price: Decimal | None
           ) -> Refusal | ScheduleRecord | None:
    """Rule ``name`` applied to ``intent`` (``written``: as its line said) once planned
    as ``schedule``: its pacing refusal (:func:`pacing`), or the schedule record that
    keeps the rule, the execution it gave an intent that named none, and its slippage
    tolerance with the arrival price (``price``; a tolerance with no price to measure
    against is refused). None for an intent of no schedule that keeps to the rule."""
    paced = pacing(policy, name, intent, schedule, now, price)
    if paced is not None or schedule is None:
        return paced
    tolerance = policy.file.rules[name].slippage
    if tolerance is not None and price is None:
        return Refusal(reasons.POLICY_NO_ARRIVAL_PRICE,
                       f"rule {name}: a slippage tolerance, and no arrival price to measure it "
                       "against (no lakehouse price, limit or reference price)")
    capped = leverage_of(intent)
    return msgspec.structs.replace(
        schedule, rule=name, execution=None if written.execution is not None else
        intent.execution, slippage=tolerance, arrival=None if tolerance is None else price,
        max_leverage=None if capped == leverage_of(written) else capped)


def _exceeded(name: str, why: str) -> Refusal:
    return Refusal(reasons.POLICY_PACING_EXCEEDED, f"rule {name}: {why}")
