"""What order an intent becomes, the same on every plane, and its plan. Pure.

The live plane decides an order's type from the intent (README, "The live plane"): a
limit when it names one, or when it has a reference price and is not critical; else a
market order. The execution policy's ``order_types`` and ``times_in_force`` judge the
order the intent *becomes* (:func:`order_type_of`, :func:`time_in_force_of`), not the
words it was written with; and the paper plane's plan (:func:`paper_plan`) uses the same
type and time in force as a live venue's, so paper and live plans of the same intents
compare line by line: they differ only where the venue's rules (lot, tick, slippage
allowance) shaped the live order.
"""

from __future__ import annotations

from decimal import Decimal

from execd.model.messages import OrderIntent, OrderType, Plan


def order_type_of(intent: OrderIntent) -> OrderType:
    """The type of the order ``intent`` becomes: a limit when it names one, or when it
    has a reference price and is not critical; else market."""
    if intent.order_type == "limit":
        return "limit"
    return "market" if intent.urgency == "critical" or intent.reference_price is None else "limit"


def time_in_force_of(intent: OrderIntent, order_type: OrderType) -> str | None:
    """The time in force the order is sent with, as the policy names them: the intent's
    own; else ``PO`` when it is post-only; else ``GTC`` for a limit (the venue's
    default); None for a market order that names none (it has no time to rest)."""
    execution = intent.execution
    if execution is not None and execution.time_in_force is not None:
        return execution.time_in_force
    constraints = intent.constraints
    if constraints is not None and constraints.post_only:
        return "PO"
    return "GTC" if order_type == "limit" else None


def plan_terms(intent: OrderIntent, order_type: OrderType) -> tuple[str | None, bool]:
    """(the plan's ``time_in_force``, post-only) of an order of ``order_type``: post-only
    when the intent says so or names PO, which then shows as the ``post_only``
    constraint, not as a time in force; a market order has none (it takes what it can at
    once; the venue is sent none)."""
    tif = time_in_force_of(intent, order_type)
    constraints = intent.constraints
    post_only = tif == "PO" or (constraints is not None and constraints.post_only)
    if tif == "PO" or order_type == "market":
        tif = None
    return tif, post_only


def constraints_of(intent: OrderIntent, rule: str | None, *, from_reference: bool = False,
                   rounded: bool = False, ticked: bool = False, post_only: bool = False,
                   reduce_only: bool = False) -> tuple[str, ...]:
    """The plan's ``constraints``, in their fixed order (:class:`Plan`)."""
    named = []
    if rule is not None:
        named.append(f"policy:{rule}")
    if from_reference:
        named.append("limit_from_reference")
    if rounded:
        named.append("lot_rounding")
    if ticked:
        named.append("price_tick")
    if post_only:
        named.append("post_only")
    if reduce_only:
        named.append("reduce_only")
    if leverage_of(intent) is not None:
        named.append("leverage_cap")
    return tuple(named)


def leverage_of(intent: OrderIntent) -> Decimal | None:
    """The leverage cap ``intent`` is checked under (``constraints.max_leverage``)."""
    constraints = intent.constraints
    return constraints.max_leverage if constraints is not None else None


def paper_plan(intent: OrderIntent, rule: str | None) -> Plan:
    """The paper plane's plan of ``intent``: the whole quantity (the paper plane has no
    lot), at its limit price, or at its reference price where the live plane would make
    a limit of it (the paper plane allows no slippage: it fills at that price)."""
    order_type = order_type_of(intent)
    price: Decimal | None = None
    from_reference = False
    if order_type == "limit":
        price = intent.limit_price
        if price is None:
            price, from_reference = intent.reference_price, True
    tif, post_only = plan_terms(intent, order_type)
    constraints = intent.constraints
    reduce_only = constraints is not None and constraints.reduce_only
    named: tuple[str, ...] = ()
    leverage = None if constraints is None else constraints.max_leverage
    if rule is not None or from_reference or post_only or reduce_only or leverage is not None:
        named = constraints_of(intent, rule, from_reference=from_reference,
                               post_only=post_only, reduce_only=reduce_only)
    return Plan(order_type, intent.absolute, intent.action, tif, price, named,
                max_leverage=leverage)


def skipped_plan(intent: OrderIntent, rule: str | None, reason: str,
                 size: Decimal | None = None) -> Plan:
    """The plan of an order that was not sent because of ``reason``: what it would have
    been (``size``: after rounding, when the venue's lot was applied)."""
    rounded = size is not None and size != intent.quantity
    return Plan(order_type_of(intent), intent.absolute if size is None else size,
                intent.action, None, None, constraints_of(intent, rule, rounded=rounded),
                reason, leverage_of(intent))
